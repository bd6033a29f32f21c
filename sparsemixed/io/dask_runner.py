"""The two passes over a dask DataFrame, each a tree reduction over its partitions.

    pass 1  scan  = tree_merge( scan(partition_j) )                  (distinct levels, counts)
    pass 2  P     = tree_combine( partial(encode(partition_j)) )      (sparse Z'WZ, Z'WX ...)

Each partition is turned into a small summary on the worker that holds it; summaries
are merged ``split_every`` at a time up a tree, so no worker ever holds more than a
partition plus a few q x q sparse matrices.  The model is then optimised locally.
Computation runs on dask's current scheduler: the active ``distributed.Client`` if one
exists (``Client("tcp://scheduler:8786")``), else the local threads.  dask is imported
only here, when a dask collection is given.
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

    def _reduce(self, columns, per_part, arg, fn):
        import dask

        arg = dask.delayed(arg, traverse=False)
        parts = self.ddf[list(columns)].to_delayed()
        leaves = [dask.delayed(per_part, pure=True)(p, arg) for p in parts]
        (out,) = dask.compute(tree_reduce(leaves, fn, self.split_every))
        return out

    def scan(self, plan) -> Scan:
        return self._reduce(plan.columns, _scan, plan, _merge_scans)

    def accumulate(self, enc):
        return self._reduce(enc.plan.columns, _partial, enc, combine)
