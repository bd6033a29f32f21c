"""Conditional variances of the random effects, from a selected inverse of M.

    Var(b | y, beta) = sigma^2 Lambda M^-1 Lambda'        (lme4's condVar)

Lambda is block diagonal by level, and M's stored pattern holds each term's full
within-level blocks (relcov.py), so diag(Lambda M^-1 Lambda') needs M^-1 only on M's
pattern: a selected inverse (Takahashi / blocked), never a dense q x q inverse.  Blocks
of Var(b | y) that span levels (statsmodels' per-group covariance) come from solves
with the factor, a batch of columns at a time.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

BATCH = 256


def _factor_at(model, theta):
    """(state, factor of M at theta): the factor is the state's (held while the state lives;
    a sparse-X state solved for ML holds M's factor beside Maug's)."""
    state = model.pls(theta, REML=False)
    return state, model.engine.m_factor(state)


def selected_inverse_and_lambda(model, theta):
    """(S, Lambda) at theta: S = M^-1 on M's pattern as a symmetric sparse matrix (the
    selected inverse of the factor of M at theta), Lambda in CSR.  Products such as
    Lambda S Lambda' are exact on each level's block, which lies in M's pattern."""
    theta = np.asarray(theta, dtype=float)
    state, factor = _factor_at(model, theta)
    rc = model.relcov
    Minv = factor.selected_inverse(rc.M_indptr, rc.M_indices)
    S = sp.csc_matrix((Minv, rc.M_indices, rc.M_indptr), shape=(rc.q, rc.q))
    return S + S.T - sp.diags(S.diagonal()), rc.Lambda(theta).tocsr()


def relative_condvar_diag(model, theta) -> np.ndarray:
    """diag(Lambda M^-1 Lambda') at theta (multiply by sigma^2 for variances)."""
    S, Lam = selected_inverse_and_lambda(model, theta)
    return np.asarray((Lam @ S).multiply(Lam).sum(axis=1)).ravel()


def relative_condcov_blocks(model, theta, index_sets) -> list[np.ndarray]:
    """(Lambda M^-1 Lambda')[E, E] for each index set E (dense |E| x |E| blocks), from
    L^-1 P Lambda' e_E computed BATCH columns at a time."""
    theta = np.asarray(theta, dtype=float)
    state, factor = _factor_at(model, theta)
    LamT = model.relcov.Lambda(theta).T.tocsc()
    out: list[np.ndarray] = [None] * len(index_sets)
    batch, cols = [], []
    def flush():
        if not batch:
            return
        idx = np.concatenate([np.asarray(index_sets[i], np.int64) for i in batch])
        X = np.asarray(factor.solve_L(LamT[:, idx].toarray())).reshape(LamT.shape[0], -1)
        off = 0
        for i in batch:
            k = len(index_sets[i])
            B = X[:, off: off + k]
            out[i] = B.T @ B
            off += k
        batch.clear()
        cols.clear()
    for i, E in enumerate(index_sets):
        batch.append(i)
        cols.append(len(E))
        if sum(cols) >= BATCH:
            flush()
    flush()
    return out
