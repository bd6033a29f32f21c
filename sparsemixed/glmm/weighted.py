"""Weighted cross-products on a fixed pattern, for every PIRLS iteration.

    Z'WZ = sum_i w_i z_i z_i'      on the stored entries of Z'Z (the analysed pattern)
    Z'W[X r],  X'WX,  X'Wr,  r'Wr

Row i of Z has a few entries (one per random-effects column of its levels); each product
z_ia z_ib lands at a fixed position of Z'Z's CSR data.  Those positions and products are
found once (:class:`WeightedProducts`); a new weight vector then costs one compiled pass
over them (O(sum_i nnz(z_i)^2)) and dense products for X, with no sparse matrix built
and nothing n x n.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from ..linalg.jit import njit, prange

from ..crossprod import CrossProducts
from ..engine.reweight import values_on_pattern
from ..errors import NumericalError
from ..linalg.threads import kernel_threads, serial_twin
from ..optimize import interrupt_in


def structural_gram(Z: sp.csr_matrix) -> sp.csr_matrix:
    """Z'Z on its structural pattern: every (a, b) with a row holding both columns, stored
    even where the values cancel to 0 (scipy's product drops such entries, and weights
    other than the prior ones make them nonzero)."""
    Z = sp.csr_matrix(Z)
    ones = sp.csr_matrix((np.ones(Z.nnz), Z.indices, Z.indptr), shape=Z.shape)
    S = (ones.T @ ones).tocsr()
    S.sort_indices()
    A = (Z.T @ Z).tocsr()
    return sp.csr_matrix((values_on_pattern(A, S), S.indices.copy(), S.indptr.copy()), shape=S.shape)


@njit(inline="always")
def find_sorted(values, lo, hi, key):
    """The index of ``key`` in the sorted ``values[lo:hi]``, or -1 (binary search)."""
    a, b = lo, hi
    while a < b:
        m = (a + b) // 2
        if values[m] < key:
            a = m + 1
        else:
            b = m
    return a if a < hi and values[a] == key else -1


@njit(cache=True)
def _pairs(indptr, indices, data, A_indptr, A_indices, pos, prod):
    """For each row i and each pair (a, b) of its entries: the position of (c_a, c_b) in
    A's CSR data and z_ia z_ib; returns False when a pair is outside A's pattern."""
    k = 0
    for i in range(indptr.size - 1):
        for ja in range(indptr[i], indptr[i + 1]):
            ca = indices[ja]
            for jb in range(indptr[i], indptr[i + 1]):
                a = find_sorted(A_indices, A_indptr[ca], A_indptr[ca + 1], indices[jb])
                if a < 0:
                    return False
                pos[k] = a
                prod[k] = data[ja] * data[jb]
                k += 1
    return True


@njit(cache=True)
def _pass_rows(lo, hi, row_ptr, pos, prod, z_ptr, z_ind, z_val, w, r, X, p, px, A, Ztr, ZtX, XtX, Xtr, rtr):
    """Rows lo..hi-1 added into A (Z'WZ's values on the pattern), Ztr, ZtX (p
    columns) and, for px = p columns, XtX (lower triangle), Xtr and rtr[0] (summed locally
    first: the threads' small outputs share cache lines)."""
    xx = np.zeros((px, px))
    xr = np.zeros(px)
    rr = 0.0
    for i in range(lo, hi):
        wi = w[i]
        for k in range(row_ptr[i], row_ptr[i + 1]):
            A[pos[k]] += wi * prod[k]
        wr = wi * r[i]
        for j in range(z_ptr[i], z_ptr[i + 1]):
            c = z_ind[j]
            v = z_val[j]
            Ztr[c] += v * wr
            f = wi * v
            for col in range(p):
                ZtX[c, col] += f * X[i, col]
        if px:
            rr += wr * r[i]
            for a in range(px):
                xa = wi * X[i, a]
                xr[a] += xa * r[i]
                for b in range(a + 1):
                    xx[a, b] += xa * X[i, b]
    XtX[:, :] = xx
    Xtr[:] = xr
    rtr[0] = rr


@njit(cache=True, parallel=True)
def _pass(row_ptr, pos, prod, z_ptr, z_ind, z_val, w, r, X, with_X, small_p, nnz, q, nthreads):
    """One pass over the rows: Z'WZ's values on the pattern, Z'Wr and (with_X) Z'WX, and
    (small_p) X'WX's lower triangle, X'Wr and r'Wr; with ``nthreads`` > 1 each thread sums
    a block of rows into its own arrays, added at the end (the same sums in another
    order: last-bit differences only)."""
    p = X.shape[1] if with_X else 0
    px = p if small_p else 0
    n = row_ptr.size - 1
    T = max(1, nthreads)
    As = np.zeros((T, nnz))
    Ztrs = np.zeros((T, q))
    ZtXs = np.zeros((T, q, p))
    XtXs = np.zeros((T, px, px))
    Xtrs = np.zeros((T, px))
    rtrs = np.zeros((T, 1))
    for t in prange(T):
        _pass_rows(n * t // T, n * (t + 1) // T, row_ptr, pos, prod, z_ptr, z_ind, z_val, w, r, X, p, px,
                   As[t], Ztrs[t], ZtXs[t], XtXs[t], Xtrs[t], rtrs[t])
    for t in range(1, T):
        As[0] += As[t]
        Ztrs[0] += Ztrs[t]
        ZtXs[0] += ZtXs[t]
        XtXs[0] += XtXs[t]
        Xtrs[0] += Xtrs[t]
        rtrs[0] += rtrs[t]
    return As[0], Ztrs[0], ZtXs[0], XtXs[0], Xtrs[0], rtrs[0, 0]


_pass_serial = serial_twin(_pass)
SMALL_P = 8          # X'WX in the pass up to this many columns (beyond, BLAS on X * w)


class WeightedProducts:
    """The map from row weights to Z'WZ's values on ``A``'s pattern (A = Z'Z, CSR,
    sorted), and the products with X."""

    def __init__(self, Z: sp.csr_matrix, X: np.ndarray, A: sp.csr_matrix):
        Z = sp.csr_matrix(Z)
        Z.sort_indices()
        if not A.has_sorted_indices:
            raise ValueError("A must have sorted indices")
        counts = np.diff(Z.indptr).astype(np.int64)
        self.row_ptr = np.concatenate([[0], np.cumsum(counts * counts)]).astype(np.int64)
        total = int(self.row_ptr[-1])
        self.pos = np.empty(total, dtype=np.int64)
        self.prod = np.empty(total, dtype=np.float64)
        ok = _pairs(Z.indptr.astype(np.int64), Z.indices.astype(np.int64), Z.data.astype(np.float64),
                    A.indptr.astype(np.int64), A.indices.astype(np.int64), self.pos, self.prod)
        if not ok:
            raise NumericalError("a row's random-effects columns fall outside the analysed pattern of Z'Z")
        self.A = A
        self.Z = Z
        self.z_ptr, self.z_ind = Z.indptr.astype(np.int64), Z.indices.astype(np.int64)
        self.z_val = Z.data.astype(np.float64)
        self.X = np.ascontiguousarray(X, dtype=float)

    @property
    def n(self) -> int:
        return self.Z.shape[0]

    def cross_products(self, w: np.ndarray, r: np.ndarray, with_X: bool = True) -> CrossProducts:
        """Cross-products of [Z X r] weighted by w (``with_X`` False: of [Z r] only, for a
        solve for u at fixed beta); Z'WZ on A's pattern, sharing A's index arrays."""
        w = np.ascontiguousarray(w, dtype=float)
        r = np.ascontiguousarray(r, dtype=float)
        p = self.X.shape[1]
        with_X = bool(with_X and p)
        small = with_X and p <= SMALL_P
        threads = kernel_threads(self.row_ptr[-1] + self.n)
        try:
            A, Ztr, ZtX, XtX, Xtr, rtr = (_pass if threads > 1 else _pass_serial)(
                self.row_ptr, self.pos, self.prod, self.z_ptr, self.z_ind, self.z_val, w, r,
                self.X, with_X, small, self.A.nnz, self.A.shape[0], threads)
        except SystemError as exc:      # a Ctrl-C in the parallel pass: KeyboardInterrupt (optimize.interrupt_in)
            if interrupt_in(exc) is None:
                raise
            raise KeyboardInterrupt("interrupted in a compiled kernel") from exc
        if small:
            XtX = XtX + np.tril(XtX, -1).T
        elif with_X:
            wr = w * r
            XtX, Xtr, rtr = self.X.T @ (self.X * w[:, None]), self.X.T @ wr, float(wr @ r)
        else:
            XtX, Xtr, rtr = np.zeros((0, 0)), np.zeros(0), float((w * r) @ r)
        ZtWZ = sp.csr_matrix((A, self.A.indices, self.A.indptr), shape=self.A.shape, copy=False)
        return CrossProducts(ZtWZ, ZtX, Ztr, XtX, Xtr, float(rtr), self.n)
