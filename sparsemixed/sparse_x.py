"""Choosing the sparse-X path (linalg/augmented.py) and the model-side glue for it.

``sparse_X=True`` always uses it, ``False`` never, ``"auto"`` (the default) when it pays:

    p >= SPARSE_X_MIN_P   and   density(X) <= SPARSE_X_MAX_DENSITY

i.e. many fixed-effect columns (a factor with hundreds or thousands of levels: firm,
item, site) that are mostly zeros.  The dense path holds R_ZX (8 q p bytes), spends
~ q p^2 flops per evaluation on R_ZX'R_ZX, and builds a dense n x p X and X'X (n p^2
flops); the sparse path factors Maug, whose extra fill from X's columns is that of one
more grouping factor, but its gradient (a selected inverse of Maug) is dear, so it fits
with BOBYQA (more evaluations).  Per evaluation the dense path leads up to p ~ 800 at
small q, but its build (~ n p^2) makes build + fit cross near p ~ 100-200, and its memory
grows as n p; "auto" switches at p = 200, under which the dense path is as fast or faster
and keeps every inference method (Satterthwaite, Kenward-Roger).  Measured:
benchmarks/results/2026-12-04-sparse-x.md (``python benchmarks/sparse_x.py --threshold``).

To decide before encoding X (a dense n x p X may not fit in memory), the fixed-effects
part is encoded sparse when its categorical covariates have together at least
SPARSE_X_MIN_P levels; the rule above is then applied to the encoded X and a small or
dense X is converted to the dense path.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .errors import SparseMixedError

SPARSE_X_MIN_P = 200
SPARSE_X_MAX_DENSITY = 0.05


def check_mode(sparse_X):
    if sparse_X == "auto" or isinstance(sparse_X, (bool, np.bool_)):
        return sparse_X if sparse_X == "auto" else bool(sparse_X)
    raise SparseMixedError(f"sparse_X must be 'auto', True or False, got {sparse_X!r}")


def encode_sparse(mode, sub: pd.DataFrame, fixed_vars, numeric_cols) -> bool:
    """Whether to ask formulaic for a sparse fixed-effects model matrix."""
    if mode is True or mode is False:
        return mode
    nlev = sum(int(sub[c].nunique()) for c in fixed_vars if c in sub.columns and c not in numeric_cols)
    return nlev >= SPARSE_X_MIN_P


def density(X) -> float:
    n, p = X.shape
    if n * p == 0:
        return 1.0
    nnz = X.nnz if sp.issparse(X) else int(np.count_nonzero(X))
    return nnz / (n * p)


def use_sparse(mode, X) -> bool:
    """The "auto" rule on an encoded X (see module doc)."""
    if mode is True or mode is False:
        return mode
    return X.shape[1] >= SPARSE_X_MIN_P and density(X) <= SPARSE_X_MAX_DENSITY


def column_sd(X) -> np.ndarray:
    """Column standard deviations of a sparse X, without densifying it."""
    X = sp.csc_matrix(X)
    n = X.shape[0]
    m = np.asarray(X.sum(axis=0)).ravel() / n
    cnt = np.diff(X.indptr)
    dev = X.data - np.repeat(m, cnt)                 # two-pass: no cancellation for constants
    ss = np.bincount(np.repeat(np.arange(X.shape[1]), cnt), weights=dev * dev, minlength=X.shape[1])
    return np.sqrt((ss + (n - cnt) * m * m) / n)


def shift(X, y, w) -> np.ndarray:
    """OLS coefficients gamma for a sparse X (normal equations by CHOLMOD): cross-products
    use y - X gamma (model._shift)."""
    from .linalg.cholesky import SparseCholesky

    if X.shape[1] == 0:
        return np.zeros(0)
    Xw = X.multiply(w[:, None]).tocsr() if w is not None else X
    A = sp.tril(sp.csc_matrix(Xw.T @ X)).tocsc()
    f = SparseCholesky(A, "amd")
    f.factorize(A)
    return np.asarray(f.solve_A(np.asarray(Xw.T @ y).ravel())).ravel()
