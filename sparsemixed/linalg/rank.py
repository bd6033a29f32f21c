"""Fixed-effects rank check for a sparse X (thousands of columns), R's rule.

R (dqrdc2, lm, lme4) keeps column j of X when its residual after projection on the kept
columns before it is more than ``tol`` of its norm, and drops it otherwise (later aliased
columns go).  On the Gram matrix, scaled to unit diagonal, A = D^-1/2 X'WX D^-1/2, that
residual fraction is the pivot L_jj^2 of the Cholesky factor of A in natural order with
the dropped columns skipped:

    keep j  <=>  L_jj^2 = A_jj - sum_{k kept, k < j} L_jk^2  >  tol^2

1. All-zero columns are dropped (their d = 0).
2. Fast path, sparse: A is factored by CHOLMOD with a fill-reducing (AMD) ordering.  When
   every pivot exceeds tol^2 no column is aliased on any practical account and all are
   kept: O(nnz(L)) memory, no p x p dense matrix.  (The pivots are then residuals in AMD's
   order rather than in natural order; the two rules can only differ for columns that are
   collinear to within ``tol``, not for the exact aliasing met in practice.)
3. Otherwise (rank deficient): R's rule exactly, by LAPACK's unpivoted Cholesky (dpotrf)
   on the dense A: the first pivot <= tol^2 (or failure) names the first aliased column,
   which is dropped; the factorization restarts on the Schur complement of the columns
   after it given the leading kept block.  Dense p x p (8 p^2 bytes), O(p^3/3) flops per
   restart, one restart per aliased column.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .cholesky import min_pivot


def _greedy_dense(A: np.ndarray, tol: float) -> np.ndarray:
    """Boolean keep-mask of R's rule on a unit-diagonal Gram matrix A, by dpotrf restarts."""
    n = A.shape[0]
    keep = np.ones(n, bool)
    rem = np.arange(n)
    S = A.copy()
    tol2 = tol * tol
    while rem.size:
        c, info = sla.lapack.dpotrf(S, lower=1, clean=1, overwrite_a=0)
        done = info - 1 if info > 0 else rem.size          # pivots 0..done-1 were computed
        piv = np.diag(c)[:done] ** 2
        bad = np.flatnonzero(piv <= tol2)
        first = int(bad[0]) if bad.size else (done if info > 0 else -1)
        if first < 0:
            break
        keep[rem[first]] = False
        if first > 0:
            L11 = c[:first, :first]
            L21 = sla.solve_triangular(L11, S[first + 1:, :first].T, lower=True).T
            S = S[first + 1:, first + 1:] - L21 @ L21.T
        else:
            S = S[1:, 1:]
        rem = rem[first + 1:]
        # S is now the Schur complement of the remaining columns given all kept columns
        # before them; its leading pivots continue R's rule
    return keep


def independent_columns_sparse(XtX, tol: float) -> np.ndarray:
    """Indices of the columns kept by R's rule, from a sparse X'WX (see module doc)."""
    XtX = sp.csc_matrix(XtX)
    d = XtX.diagonal()
    idx = np.flatnonzero(d > 0)
    if idx.size == 0:
        return idx.astype(np.int64)
    s = 1.0 / np.sqrt(d[idx])
    A = sp.csc_matrix(XtX[idx][:, idx])
    A = sp.csc_matrix(sp.diags(s) @ A @ sp.diags(s))
    if min_pivot(sp.tril(A).tocsc(), "amd") > tol * tol:
        return idx.astype(np.int64)
    keep = _greedy_dense(A.toarray(), tol)
    return idx[keep].astype(np.int64)
