"""The lme4-style entry point:  lmer(formula, data, REML=True) -> LinearMixedModel."""
from __future__ import annotations

import pandas as pd

from . import io
from .model import LinearMixedModel


def lmer(formula: str, data, REML: bool = True, weights=None, offset=None,
         na_action: str = "omit", ordering: str = "auto", memory_limit=None,
         chunksize: int | None = None, verbose: bool = False, sparse_X="auto") -> LinearMixedModel:
    """Build (not fit) a linear mixed model from an lme4 formula; call ``.fit()`` on it.

    Parameters
    ----------
    formula : lme4 syntax, e.g. ``"Reaction ~ Days + (Days | Subject)"``.
    data : pandas DataFrame (it is never modified); or, built in bounded memory by
        :mod:`sparsemixed.io` (no rows kept, so no fitted()/residuals()): a path to a CSV or
        Parquet file, ``sparsemixed.io.CSV/Parquet(...)``, a pyarrow Dataset or Table, a list
        of DataFrame chunks or a function returning an iterator of them, a dask DataFrame.
    REML : fit by REML (default) or maximum likelihood.
    weights, offset : column name or array (prior weights: residual variance sigma^2 / w);
        column names only for streamed sources.
    na_action : ``"omit"`` drops rows with missing values with a warning; ``"fail"`` raises.
    ordering : fill-reducing ordering of the sparse factor, ``"auto"`` (timed choice among
        natural = grouping factor with most levels first, AMD and METIS) or one of them.
    memory_limit : bytes or a string such as ``"12GB"`` (default: 80% of the available
        memory); a model whose factor would need more is refused with MemoryLimitError
        before any factorization.
    chunksize : rows per chunk when ``data`` is a file path (default 250,000).
    verbose : progress on stderr (tqdm) over the chunks of the cross-products pass(es);
        silent by default.  ``fit(verbose=True)`` does the same for the optimization.
    sparse_X : ``"auto"`` (default), True or False: keep X sparse and put the fixed effects
        into the sparse factored system (for fixed-effect factors with hundreds or thousands
        of levels; see :mod:`sparsemixed.sparse_x` for the "auto" rule and
        :mod:`sparsemixed.linalg.augmented` for the equations).  DataFrame data only.
    """
    if not isinstance(data, (pd.DataFrame, dict)):
        if sparse_X is True:
            from .errors import SparseMixedError

            raise SparseMixedError("sparse_X=True is supported for DataFrame data only, not for streamed "
                                   "sources (they accumulate a dense X'X); pass a DataFrame or sparse_X=False")
        return io.build_streamed(formula, data, REML=REML, weights=weights, offset=offset,
                                 na_action=na_action, ordering=ordering, memory_limit=memory_limit,
                                 chunksize=chunksize, verbose=verbose)
    return LinearMixedModel(formula, data, REML=REML, weights=weights, offset=offset,
                            na_action=na_action, ordering=ordering, memory_limit=memory_limit,
                            verbose=verbose, sparse_X=sparse_X)
