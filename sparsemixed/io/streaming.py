"""lmer on data that are not held in memory: two passes over a chunked source.

    pass 1  scan = merge_j scan(C_j)                    levels, counts, types   (levels.py)
    pass 2  P    = combine_j partial(encode(C_j))       cross-products of [Z X y]  (partial.py)
    model        = core(finish(P))                      as the in-memory build  (streamed_model.py)

Memory: one chunk of rows at a time, plus the q x q sparse Z'WZ and the distinct
levels.  The result equals ``lmer(formula, whole_frame)`` up to rounding (the sums are
taken in a different order).  A runner supplies the two passes: :class:`StreamRunner`
folds over a :class:`~sparsemixed.io.sources.ChunkSource`; ``sparsemixed.io.dask_runner``
reduces over Dask partitions in a tree.

The two passes must see the same rows: a :class:`~sparsemixed.io.sources.Ledger` made
per build compares each file's stamp in pass 2 with pass 1's, and the rows kept in pass 2
(the n of the summed cross-products) must equal pass 1's count, whatever the source (a
chunk function that returns other rows the second time is refused too).  An interrupt
(Ctrl-C) propagates as KeyboardInterrupt before the next chunk; nothing of a build is
stored until it completes, so the source object and models built before stay usable.
"""
from __future__ import annotations

from functools import reduce

from ..errors import DataError, SparseMixedError
from ..formula.bars import parse_formula
from .encode import Encoding
from .levels import Plan, Scan, scan_chunk
from ..crossprod import pairwise_sum
from .partial import combine
from ..progress import progress
from .sources import Ledger, is_dask, open_source, read_pass
from .streamed_model import streamed_model


class StreamRunner:
    """The two passes over a chunk source, one chunk in memory at a time."""

    def __init__(self, source, verbose: bool = False):
        self.source, self.verbose = source, verbose
        self.ledger = Ledger()              # one per build: what pass 1 saw of each file

    def _chunks(self, columns, what: str):
        return progress(read_pass(self.source, columns, self.ledger), desc=what, unit=" chunks",
                        enabled=self.verbose)

    def columns(self):
        return self.source.columns()

    def scan(self, plan: Plan) -> Scan:
        return reduce(lambda acc, chunk: acc.merge(scan_chunk(chunk, plan)),
                      self._chunks(plan.columns, "levels (pass 1)"), Scan())

    def accumulate(self, enc: Encoding):
        return pairwise_sum((enc.partial(chunk) for chunk in self._chunks(enc.plan.columns, "cross-products (pass 2)")),
                            combine)

    @property
    def descriptor(self):
        return self.source


def build_streamed(formula: str, data, REML: bool = True, weights=None, offset=None,
                   na_action: str = "omit", ordering: str = "auto", memory_limit=None,
                   chunksize: int | None = None, verbose: bool = False):
    """``lmer`` for a file, a pyarrow dataset, DataFrame chunks or a dask DataFrame;
    ``verbose`` shows progress over the chunks of both passes (tqdm, stderr)."""
    parsed = parse_formula(formula)
    if not parsed.bars:
        raise SparseMixedError(
            f"formula {formula!r} has no random-effects term such as '(1 | g)'; "
            "for a model without random effects use ordinary least squares")
    if is_dask(data):
        from .dask_runner import DaskRunner

        runner = DaskRunner(data)
    else:
        runner = StreamRunner(open_source(data, chunksize), verbose)
    plan = Plan.make(parsed, weights, offset, na_action, runner.columns())
    enc = Encoding.from_scan(runner.scan(plan), plan)
    part = runner.accumulate(enc)
    kept = 0 if part is None else part.cp.n
    if kept != enc.n:
        raise DataError(f"the data gave {enc.n} rows without missing values in the first pass (levels) and {kept} in "
                        "the second (cross-products): the source changed between the passes. A streamed build "
                        "reads its source twice; it must give the same rows both times (a function returning "
                        "chunks must return the same chunks on every call)")
    return streamed_model(formula, parsed, enc, part, runner.descriptor, REML, ordering,
                          weights, offset, na_action, memory_limit)
