"""The two passes over a dask DataFrame, each a tree reduction over its partitions.

    pass 1  scan  = tree_merge( scan(partition_j) )                  (distinct levels, counts)
    pass 2  P     = tree_combine( partial(encode(partition_j)) )      (sparse Z'WZ, Z'WX ...)

Each partition is turned into a small summary on the worker that holds it; summaries
are merged ``split_every`` at a time up a tree, so no worker ever holds more than a
partition plus a few q x q sparse matrices.  The model is then optimised locally.
Computation runs on dask's current scheduler: the active ``distributed.Client`` if one
exists (``Client("tcp://scheduler:8786")``), else the local threads.  dask is imported
only here, when a dask collection is given.

A worker that dies mid-reduction loses only its in-flight tasks: the scheduler runs them
again elsewhere from the partitions' lineage, so the sums are the same (every partition
enters once; the build also checks the rows of pass 2 against pass 1's count).  When the
same task has killed ``distributed.scheduler.allowed-failures`` workers, distributed
raises ``KilledWorker``; it propagates with a note saying which pass failed and what to do.
"""
from __future__ import annotations

from functools import reduce

from ..errors import DataError
from .levels import Scan, scan_chunk
from .partial import combine

SPLIT_EVERY = 8


def _fold(fn, *items):
    return reduce(fn, items)


def _merge_scans(a: Scan, b: Scan) -> Scan:
    return a.merge(b)


def _scan(part, plan):
    return scan_chunk(part, plan)


def _partial(part, enc):
    return enc.partial(part)


def tree_reduce(items, fn, split_every: int = SPLIT_EVERY):
    """fn-fold of delayed ``items``, split_every at a time per node of the tree."""
    import dask

    node = dask.delayed(_fold, pure=True)
    items = list(items)
    while len(items) > 1:
        items = [node(fn, *items[i:i + split_every]) for i in range(0, len(items), split_every)]
    return items[0]


class DaskSource:
    """model.data of a model built from a dask DataFrame (it keeps a reference, no rows)."""

    def __init__(self, ddf):
        self.ddf = ddf

    def __repr__(self):
        return f"DaskSource(npartitions={self.ddf.npartitions}, columns={list(self.ddf.columns)})"


class DaskRunner:
    def __init__(self, ddf, split_every: int = SPLIT_EVERY):
        import dask.dataframe as dd

        if not isinstance(ddf, dd.DataFrame):
            raise DataError(f"a dask collection must be a dask.dataframe.DataFrame, got {type(ddf).__name__}")
        self.ddf, self.split_every = ddf, split_every
        self.descriptor = DaskSource(ddf)

    def columns(self):
        return [str(c) for c in self.ddf.columns]

    def _reduce(self, columns, per_part, arg, fn, what: str = "reduction over the partitions"):
        import dask

        arg = dask.delayed(arg, traverse=False)
        parts = self.ddf[list(columns)].to_delayed()
        leaves = [dask.delayed(per_part, pure=True)(p, arg) for p in parts]
        try:
            (out,) = dask.compute(tree_reduce(leaves, fn, self.split_every))
        except Exception as exc:
            if type(exc).__name__ == "KilledWorker":
                exc.add_note(
                    f"sparsemixed: Dask workers died while computing the {what} of a streamed build, each time "
                    "on the same task, so the build stopped (nothing was fitted). A worker usually dies from "
                    "running out of memory: give the workers more memory, or the data more and smaller "
                    "partitions (ddf.repartition(npartitions=...)), then build again.")
            raise
        return out

    def scan(self, plan) -> Scan:
        return self._reduce(plan.columns, _scan, plan, _merge_scans, "levels (pass 1)")

    def accumulate(self, enc):
        return self._reduce(enc.plan.columns, _partial, enc, combine, "cross-products (pass 2)")
