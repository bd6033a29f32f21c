"""One pass over the rows: the cross-products of [Z X y] (weighted).

    ZtZ = Z'WZ (sparse q x q),  ZtX = Z'WX,  Zty = Z'Wy,
    XtX = X'WX,  Xty = X'Wy,  yty = y'Wy,  n,  sum(log w)

(ZtX and XtX are dense arrays, or sparse CSR when X is a scipy sparse matrix: the
sparse-X path, linalg/augmented.py; X is then never densified.)

with y already net of any offset.  Rows are processed in chunks and the sums
accumulated, so the row data need never be held twice; after this step the model
keeps nothing of length n.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from .progress import progress
from .terms.random_term import TermRows

CHUNK_ROWS = 1_000_000


@dataclass
class CrossProducts:
    ZtZ: sp.csr_matrix
    ZtX: np.ndarray
    Zty: np.ndarray
    XtX: np.ndarray
    Xty: np.ndarray
    yty: float
    n: int
    sum_log_w: float = 0.0

    def __add__(self, other: "CrossProducts") -> "CrossProducts":
        return CrossProducts(self.ZtZ + other.ZtZ, self.ZtX + other.ZtX, self.Zty + other.Zty,
                             self.XtX + other.XtX, self.Xty + other.Xty, self.yty + other.yty,
                             self.n + other.n, self.sum_log_w + other.sum_log_w)

    @property
    def q(self) -> int:
        return self.ZtZ.shape[0]

    @property
    def p(self) -> int:
        return self.XtX.shape[0]

    def with_response(self, Zty, Xty, yty) -> "CrossProducts":
        return CrossProducts(self.ZtZ, self.ZtX, np.asarray(Zty, float), self.XtX,
                             np.asarray(Xty, float), float(yty), self.n, self.sum_log_w)


def z_matrix(rows, nlevels, chunk: slice | None = None) -> sp.csr_matrix:
    """Z (or the rows ``chunk`` of it) as CSR, the terms' blocks side by side."""
    if rows and all(isinstance(r, TermRows) for r in rows):
        return _z_row_regular(rows, nlevels, chunk)
    blocks = [r.Z(nl, chunk) for r, nl in zip(rows, nlevels)]
    return sp.hstack(blocks, format="csr") if blocks else None


def _z_row_regular(rows, nlevels, chunk: slice | None) -> sp.csr_matrix:
    """Z when every term gives each row its k values at columns offset + code * k + c: row i
    of Z then holds K = sum of the k's entries, written straight into CSR arrays (ascending
    within a row) without stacking the terms' blocks (1M rows: 0.21 -> 0.03 s)."""
    sl = chunk if chunk is not None else slice(None)
    codes = [r.codes[sl] for r in rows]
    vals = [r.values[sl] for r in rows]
    n = codes[0].shape[0]
    ks = [v.shape[1] for v in vals]
    K, q = sum(ks), sum(k * nl for k, nl in zip(ks, nlevels))
    idx_dtype = np.int32 if max(q, n * K) < 2**31 else np.int64
    indices = np.empty((n, K), dtype=idx_dtype)
    data = np.empty((n, K))
    col, off = 0, 0
    for c, v, k, nl in zip(codes, vals, ks, nlevels):
        indices[:, col: col + k] = np.asarray(c, dtype=idx_dtype)[:, None] * k + (off + np.arange(k, dtype=idx_dtype))
        data[:, col: col + k] = v
        col, off = col + k, off + k * nl
    indptr = np.arange(0, n * K + 1, K, dtype=idx_dtype)
    Z = sp.csr_matrix((data.reshape(-1), indices.reshape(-1), indptr), shape=(n, q))
    Z.has_sorted_indices = True
    return Z


def pairwise_sum(items, add=operator.add):
    """The sum of ``items`` formed like a binary counter: partial sums of 1, 2, 4 ... items
    are merged when equal in count, so each item takes part in O(log k) additions, where a
    running total would add the growing sum k times -- quadratic for sparse Z'Z, whose
    pattern grows with every chunk (27M rows in 27 chunks: 10 s of the build).  At most
    log2(k) partial sums are held; the grouping depends only on k (deterministic)."""
    stack: list[tuple[int, object]] = []
    for item in items:
        count, value = 1, item
        while stack and stack[-1][0] == count:
            c, older = stack.pop()
            value, count = add(older, value), count + c
        stack.append((count, value))
    if not stack:
        return None
    _, value = stack.pop()
    while stack:
        value = add(stack.pop()[1], value)
    return value


def cross_products(rows, nlevels, X, y, weights=None, chunk_rows: int = CHUNK_ROWS,
                   verbose: bool = False) -> CrossProducts:
    """Accumulate the cross-products over row chunks of at most ``chunk_rows`` rows
    (``verbose``: a tqdm bar over the chunks on stderr)."""
    n = y.shape[0]
    chunks = progress(range(0, n, chunk_rows), desc="cross-products", unit=" chunks", enabled=verbose)
    total = pairwise_sum(_chunk_products(rows, nlevels, X, y, weights, chunk_rows, start) for start in chunks)
    total.ZtZ.sum_duplicates()
    total.ZtZ.sort_indices()
    return total


def _chunk_products(rows, nlevels, X, y, weights, chunk_rows, start) -> CrossProducts:
    """The cross-products of rows start .. start + chunk_rows."""
    n = y.shape[0]
    sl = slice(start, min(n, start + chunk_rows))
    return products(z_matrix(rows, nlevels, sl), X[sl], y[sl], weights[sl] if weights is not None else None)


def products(Z, Xc, yc, w=None) -> CrossProducts:
    """The cross-products of [Z X y] for the rows given (Z CSR), weighted by ``w``."""
    if w is not None:
        Zw = sp.diags(w) @ Z
        Xw = Xc.multiply(w[:, None]).tocsr() if sp.issparse(Xc) else Xc * w[:, None]
        yw = yc * w
        slw = float(np.log(w).sum())
    else:
        Zw, Xw, yw, slw = Z, Xc, yc, 0.0
    Zt = Zw.T.tocsr()
    if sp.issparse(Xc):      # sparse X (linalg/augmented.py): Z'WX, X'WX stay sparse
        ZtX, XtX = (Zt @ Xc).tocsr(), (Xw.T @ Xc).tocsr()
        Zty = np.asarray(Zt @ yc).ravel()
    else:                    # one product with [X y], C-ordered as the sparse kernel reads it
        Xy = np.empty((yc.shape[0], Xc.shape[1] + 1))
        Xy[:, :-1], Xy[:, -1] = Xc, yc
        ZtXy = np.asarray(Zt @ Xy)
        ZtX, Zty, XtX = ZtXy[:, :-1].copy(), ZtXy[:, -1].copy(), Xw.T @ Xc
    with np.errstate(over="ignore"):     # an overflowing y'Wy is refused by name (degenerate.py)
        Xty, yty = np.asarray(Xw.T @ yc).ravel(), float(yw @ yc)
    return CrossProducts(
        ZtZ=(Zt @ Z).tocsr(),
        ZtX=ZtX,
        Zty=Zty,
        XtX=XtX,
        Xty=Xty,
        yty=yty,
        n=Z.shape[0],
        sum_log_w=slw,
    )
