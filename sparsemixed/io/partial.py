"""Partial cross-products of a set of rows, summed chunk by chunk or in a tree.

A partial holds the cross-products of [Z X y0] with y0 = y - X a for its own shift a
(the chunk's least-squares coefficients, so y0'Wy0 is small and free of cancellation).
Re-basing to another shift a' (y - X a' = y0 + X d, d = a - a'):

    Z'Wy'  = Z'Wy0 + Z'WX d,     X'Wy' = X'Wy0 + X'WX d,
    y'Wy'  = y0'Wy0 + 2 d'X'Wy0 + d'X'WX d

so ``combine(P, Q) = P + rebase(Q, P.a)`` is associative and exact in exact arithmetic.
``finish`` keeps the independent columns k and moves to the in-memory shift,
gamma = (X_k'WX_k)^-1 X_k'Wy, computed as a refinement of a_k:
    gamma = a_k + (X_k'WX_k)^-1 X_k'W(y - X_k a_k),   X_k'W(y - X_k a_k) = (X'Wy0 + X'WX_{.,-k} a_{-k})_k
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..crossprod import CrossProducts, cross_products


@dataclass
class Partial:
    cp: CrossProducts       # of [Z X y - X shift], all fixed-effect columns
    shift: np.ndarray


def chunk_partial(rows, nlevels, X, y, w=None) -> Partial:
    """The partial of one chunk (y already net of any offset)."""
    p = X.shape[1]
    if p:
        Xw = X * w[:, None] if w is not None else X
        a = np.linalg.lstsq(Xw.T @ X, Xw.T @ y, rcond=None)[0]
    else:
        a = np.zeros(0)
    return Partial(cross_products(rows, nlevels, X, y - X @ a, w, chunk_rows=max(len(y), 1)), a)


def rebase(part: Partial, shift: np.ndarray) -> CrossProducts:
    cp = part.cp
    d = part.shift - shift
    XtXd = cp.XtX @ d
    return CrossProducts(cp.ZtZ, cp.ZtX, cp.Zty + cp.ZtX @ d, cp.XtX, cp.Xty + XtXd,
                         float(cp.yty + 2.0 * d @ cp.Xty + d @ XtXd), cp.n, cp.sum_log_w)


def combine(a: Partial | None, b: Partial | None) -> Partial | None:
    """Sum of two partials (None, a chunk with no rows kept, is the identity)."""
    if a is None:
        return b
    if b is None:
        return a
    return Partial(a.cp + rebase(b, a.shift), a.shift)


def finish(part: Partial, keep: np.ndarray) -> tuple[CrossProducts, np.ndarray]:
    """Cross-products of [Z X_k r], r = y - X_k gamma, as the in-memory build has them."""
    cp, a = part.cp, part.shift
    p = a.shape[0]
    keep = np.asarray(keep, dtype=np.int64)
    drop = np.setdiff1d(np.arange(p), keep)
    G = cp.XtX[np.ix_(keep, keep)]
    if keep.size:
        resid = cp.Xty[keep] + cp.XtX[np.ix_(keep, drop)] @ a[drop]
        gamma = a[keep] + np.linalg.solve(G, resid)
    else:
        gamma = np.zeros(0)
    full = np.zeros(p)
    full[keep] = gamma
    total = rebase(part, full)
    ZtZ = total.ZtZ.tocsr()
    ZtZ.sum_duplicates()
    ZtZ.sort_indices()
    out = CrossProducts(ZtZ, np.ascontiguousarray(total.ZtX[:, keep]), total.Zty, np.ascontiguousarray(G),
                        total.Xty[keep], total.yty, total.n, total.sum_log_w)
    return out, gamma
