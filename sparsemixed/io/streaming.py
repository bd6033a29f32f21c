"""lmer on data that are not held in memory: two passes over a chunked source.

    pass 1  scan = merge_j scan(C_j)                    levels, counts, types   (levels.py)
    pass 2  P    = combine_j partial(encode(C_j))       cross-products of [Z X y]  (partial.py)
    model        = core(finish(P))                      as the in-memory build  (streamed_model.py)

Memory: one chunk of rows at a time, plus the q x q sparse Z'WZ and the distinct
levels.  The result equals ``lmer(formula, whole_frame)`` up to rounding (the sums are
taken in a different order).  A runner supplies the two passes: :class:`StreamRunner`
folds over a :class:`~sparsemixed.io.sources.ChunkSource`; ``sparsemixed.io.dask_runner``
reduces over Dask partitions in a tree.
"""
from __future__ import annotations

from functools import reduce

from ..errors import SparseMixedError
from ..formula.bars import parse_formula
from .encode import Encoding
from .levels import Plan, Scan, scan_chunk
from ..crossprod import pairwise_sum
from .partial import combine
from ..progress import progress
from .sources import is_dask, open_source
from .streamed_model import streamed_model


class StreamRunner:
    """The two passes over a chunk source, one chunk in memory at a time."""

    def __init__(self, source, verbose: bool = False):
        self.source, self.verbose = source, verbose

    def _chunks(self, columns, what: str):
        return progress(self.source.chunks(columns), desc=what, unit=" chunks", enabled=self.verbose)

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
    return streamed_model(formula, parsed, enc, part, runner.descriptor, REML, ordering,
                          weights, offset, na_action, memory_limit)
