"""Choosing how to factor M, deterministically (same data -> same choice -> same bits).

* ``"blocked"``: eliminate the first term (most levels; its block of M is block
  diagonal) analytically and factor the dense Schur complement S of the other terms
  with LAPACK.  Chosen when S is small (q2 <= MAX_DENSE_Q2) and not very sparse.
* CHOLMOD with the fill-reducing ordering ``natural`` (= grouping factor with most
  levels first, lme4's term order), ``amd`` or ``metis``: the one whose factor L needs
  the fewest flops, sum_j nnz(L_j)^2, measured on the factor at the initial theta.
"""
from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp

from ..errors import SparseMixedError
from .blocked import MAX_DENSE_Q2, BlockedCholesky
from .cholesky import ORDERINGS, SparseCholesky

SPARSE_S_DENSITY = 0.05
MAX_PAIRS = 50_000_000


def schur_density(blocked: BlockedCholesky) -> float:
    """Fraction of the lower triangle of S = M22 - L21 L21' that is structurally nonzero:
    the pattern of M22 united with that of B'B, B (levels x q2) being L21's pattern."""
    q2 = blocked.q2
    if q2 == 0:
        return 1.0
    sizes = np.diff(blocked.lev_ptr)
    if int((sizes.astype(np.int64) ** 2).sum()) > MAX_PAIRS:
        return 1.0
    B = sp.csr_matrix((np.ones(blocked.lev_rows.size, dtype=np.int32), blocked.lev_rows, blocked.lev_ptr),
                      shape=(sizes.size, q2))
    f = blocked.pos22[:, 1]
    M22 = sp.csr_matrix((np.ones(f.size, dtype=np.int32), (f // q2, f % q2)), shape=(q2, q2))
    pattern = sp.tril((B.T @ B) + M22 + M22.T)
    return pattern.nnz / (q2 * (q2 + 1) / 2)


def cholmod_candidates(M, orderings=ORDERINGS):
    """Factor M with each ordering; table: ordering -> (seconds, nnz(L), flops)."""
    table, facs = {}, {}
    for o in orderings:
        try:
            f = SparseCholesky(M, o)
            t0 = time.perf_counter()
            f.factorize(M)
            secs = time.perf_counter() - t0
        except Exception:  # e.g. METIS not compiled into this CHOLMOD
            continue
        cc = np.diff(f.L().indptr).astype(np.float64)
        table[o] = (secs, int(cc.sum()), float((cc ** 2).sum()))
        facs[o] = f
    return facs, table


def select_factor(M, q1: int, k1: int, ordering: str = "auto"):
    """Return (factor, table) for M's pattern; ``ordering`` forces a method."""
    valid = ("auto", "blocked") + ORDERINGS
    if ordering not in valid:
        raise SparseMixedError(f"ordering must be one of {valid}, got {ordering!r}")
    q2 = M.shape[0] - q1
    if ordering == "blocked" or (ordering == "auto" and q2 <= MAX_DENSE_Q2):
        try:
            blocked = BlockedCholesky(M.indptr, M.indices, q1, k1)
        except ValueError:          # the first term's block of M is not block diagonal
            if ordering == "blocked":
                raise SparseMixedError("ordering='blocked' needs the first term's block of M to be "
                                       "block diagonal (one level per row); use 'auto'") from None
            blocked = None
        if blocked is not None and (ordering == "blocked" or q2 <= 500
                                    or schur_density(blocked) >= SPARSE_S_DENSITY):
            blocked.factorize(M)
            return blocked, {"blocked": (None, None, None)}
    facs, table = cholmod_candidates(M, ORDERINGS if ordering == "auto" else (ordering,))
    if not facs:
        raise SparseMixedError(f"CHOLMOD could not factor M with ordering {ordering!r}")
    best = min(facs, key=lambda o: (table[o][2], ORDERINGS.index(o)))
    return facs[best], table
