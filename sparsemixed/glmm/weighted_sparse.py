"""Weighted cross-products with a sparse X, for every PIRLS iteration of a sparse-X glmer fit.

    Z'WZ = sum_i w_i z_i z_i'      on the structural pattern of Z'Z
    Z'WX = sum_i w_i z_i x_i'      on the structural pattern of Z'X   (q x p, CSR)
    X'WX = sum_i w_i x_i x_i'      on the structural pattern of X'X   (p x p, CSR, both triangles)
    Z'Wr,  X'Wr,  r'Wr

Row i of Z and of X (CSR) hold a few entries each (one per random-effects column of the
row's levels; the intercept, one column per fixed factor, the covariates); each product
z_ia z_ib, z_ia x_ib, x_ia x_ib lands at a fixed position of the CSR data of Z'Z, Z'X or
X'X.  Those positions are found once (:class:`SparseWeightedProducts`); a new weight vector
costs one compiled pass over them, O(sum_i (nnz(z_i) + nnz(x_i))^2), with no scipy product
and nothing n x p dense.  The patterns are structural (every pair of stored entries that
share a row, kept where the values cancel: weights other than the prior ones make them
nonzero), so the pattern of the augmented matrix Maug (linalg/augmented.py) analysed once
holds for every weight vector; :class:`SparseXGLMMEngine` refills Maug's values from the
pass's arrays by two fixed gathers instead of rebuilding its scatter:

    reweighted(cp) with X:     Maug's Z'WX, X'WX values = cp.ZtX.data[zx_perm], cp.XtX.data[xx_perm]
    reweighted(cp) without X:  M alone (u at fixed beta: nAGQ >= 1), the dense-X engine with p = 0
                               on M's factor (engine/dense.py)
"""
from __future__ import annotations

import dataclasses

import numpy as np
import scipy.sparse as sp

from ..crossprod import CrossProducts
from ..engine.reweight import reweighted_relcov, same_array, values_on_pattern
from ..errors import NumericalError
from ..linalg.jit import njit, prange
from ..linalg.threads import kernel_threads, serial_twin
from ..optimize import interrupt_in
from .weighted import find_sorted


def _ones(M: sp.csr_matrix) -> sp.csr_matrix:
    return sp.csr_matrix((np.ones(M.nnz), M.indices, M.indptr), shape=M.shape)


def structural_product(L: sp.csr_matrix, R: sp.csr_matrix, values: bool = True) -> sp.csr_matrix:
    """L'R (L, R CSR with the same rows) on its structural pattern: every (a, b) with a row
    holding column a of L and column b of R, stored even where the values cancel; sorted
    indices.  ``values``: L'R's values there (else zeros)."""
    S = (_ones(L).T @ _ones(R)).tocsr()
    S.sum_duplicates()
    S.sort_indices()
    data = values_on_pattern((L.T @ R).tocsr(), S) if values else np.zeros(S.nnz)
    return sp.csr_matrix((data, S.indices.copy(), S.indptr.copy()), shape=S.shape)


@njit(inline="always")
def _pair_block(ptr1, ind1, ptr2, ind2, i, P, I, out, k):
    """Row i's pairs (an entry of the first matrix, one of the second): their positions in
    the CSR data (P, I) of the product's pattern, from out[k] on; the next k, or -1 when a
    pair is outside the pattern."""
    for ja in range(ptr1[i], ptr1[i + 1]):
        ca = ind1[ja]
        for jb in range(ptr2[i], ptr2[i + 1]):
            a = find_sorted(I, P[ca], P[ca + 1], ind2[jb])
            if a < 0:
                return -1
            out[k] = a
            k += 1
    return k


@njit(cache=True)
def _positions(z_ptr, z_ind, x_ptr, x_ind, A_ptr, A_ind, ZX_ptr, ZX_ind, XX_ptr, XX_ind,
               zz_ptr, zx_ptr, xx_ptr, zz_pos, zx_pos, xx_pos):
    """For each row and each pair of its stored entries (z z, z x, x x): the position of the
    pair's (column, column) in the CSR data of A = Z'Z, Z'X, X'X; False when one is missing."""
    for i in range(z_ptr.size - 1):
        if (_pair_block(z_ptr, z_ind, z_ptr, z_ind, i, A_ptr, A_ind, zz_pos, zz_ptr[i]) < 0
                or _pair_block(z_ptr, z_ind, x_ptr, x_ind, i, ZX_ptr, ZX_ind, zx_pos, zx_ptr[i]) < 0
                or _pair_block(x_ptr, x_ind, x_ptr, x_ind, i, XX_ptr, XX_ind, xx_pos, xx_ptr[i]) < 0):
            return False
    return True


@njit(cache=True)
def _pass_rows(lo, hi, z_ptr, z_ind, z_val, x_ptr, x_ind, x_val, zz_ptr, zx_ptr, xx_ptr,
               zz_pos, zx_pos, xx_pos, w, r, with_X, A, ZX, XX, Ztr, Xtr, rtr):
    """Rows lo..hi-1 added into the values of Z'WZ (A), Z'WX (ZX), X'WX (XX) on their
    patterns, Z'Wr, X'Wr and rtr[0] (``with_X`` False: A, Z'Wr and r'Wr only)."""
    rr = 0.0
    for i in range(lo, hi):
        wi = w[i]
        wr = wi * r[i]
        rr += wr * r[i]
        _square_block(z_ptr, z_ind, z_val, i, wi, wr, zz_pos, zz_ptr[i], A, Ztr)
        if with_X:
            k = zx_ptr[i]
            for ja in range(z_ptr[i], z_ptr[i + 1]):
                f = wi * z_val[ja]
                for jb in range(x_ptr[i], x_ptr[i + 1]):
                    ZX[zx_pos[k]] += f * x_val[jb]
                    k += 1
            _square_block(x_ptr, x_ind, x_val, i, wi, wr, xx_pos, xx_ptr[i], XX, Xtr)
    rtr[0] = rr


@njit(inline="always")
def _square_block(ptr, ind, val, i, wi, wr, pos, k, out, rhs):
    """Row i of one matrix (Z or X) into its Gram values ``out`` (pairs from position k of
    ``pos``) and into ``rhs`` (Z'Wr or X'Wr)."""
    for ja in range(ptr[i], ptr[i + 1]):
        f = wi * val[ja]
        rhs[ind[ja]] += val[ja] * wr
        for jb in range(ptr[i], ptr[i + 1]):
            out[pos[k]] += f * val[jb]
            k += 1


@njit(cache=True, parallel=True)
def _pass(z_ptr, z_ind, z_val, x_ptr, x_ind, x_val, zz_ptr, zx_ptr, xx_ptr, zz_pos, zx_pos, xx_pos,
          w, r, with_X, nA, nZX, nXX, q, p, nthreads):
    """One pass over the rows; with ``nthreads`` > 1 each thread sums a block of rows into
    its own arrays, added at the end (the same sums in another order)."""
    n = z_ptr.size - 1
    T = max(1, nthreads)
    if not with_X:
        nZX, nXX, p = 0, 0, 0
    As = np.zeros((T, nA))
    ZXs = np.zeros((T, nZX))
    XXs = np.zeros((T, nXX))
    Ztrs = np.zeros((T, q))
    Xtrs = np.zeros((T, p))
    rtrs = np.zeros((T, 1))
    for t in prange(T):
        _pass_rows(n * t // T, n * (t + 1) // T, z_ptr, z_ind, z_val, x_ptr, x_ind, x_val, zz_ptr, zx_ptr, xx_ptr,
                   zz_pos, zx_pos, xx_pos, w, r, with_X, As[t], ZXs[t], XXs[t], Ztrs[t], Xtrs[t], rtrs[t])
    for t in range(1, T):
        As[0] += As[t]
        ZXs[0] += ZXs[t]
        XXs[0] += XXs[t]
        Ztrs[0] += Ztrs[t]
        Xtrs[0] += Xtrs[t]
        rtrs[0] += rtrs[t]
    return As[0], ZXs[0], XXs[0], Ztrs[0], Xtrs[0], rtrs[0, 0]


_pass_serial = serial_twin(_pass)


def _pointers(counts: np.ndarray) -> np.ndarray:
    return np.concatenate([[0], np.cumsum(counts, dtype=np.int64)]).astype(np.int64)


class SparseWeightedProducts:
    """The map from row weights to the values of Z'WZ, Z'WX and X'WX on the structural
    patterns ``A`` (Z'Z), ``ZX`` (Z'X) and ``XX`` (X'X), with Z'Wr, X'Wr, r'Wr: the contract
    of :class:`~sparsemixed.glmm.weighted.WeightedProducts` for a scipy CSR ``X``."""

    def __init__(self, Z: sp.csr_matrix, X: sp.csr_matrix, A: sp.csr_matrix, ZX: sp.csr_matrix,
                 XX: sp.csr_matrix):
        Z = sp.csr_matrix(Z)
        Z.sort_indices()
        X = prepare_X(X)
        for name, M in (("A", A), ("ZX", ZX), ("XX", XX)):
            if not M.has_sorted_indices:
                raise ValueError(f"{name} must have sorted indices")
        kz = np.diff(Z.indptr).astype(np.int64)
        kx = np.diff(X.indptr).astype(np.int64)
        self.zz_ptr, self.zx_ptr, self.xx_ptr = _pointers(kz * kz), _pointers(kz * kx), _pointers(kx * kx)
        self.zz_pos = np.empty(int(self.zz_ptr[-1]), dtype=np.int64)
        self.zx_pos = np.empty(int(self.zx_ptr[-1]), dtype=np.int64)
        self.xx_pos = np.empty(int(self.xx_ptr[-1]), dtype=np.int64)
        i64 = lambda a: np.asarray(a, dtype=np.int64)
        ok = _positions(i64(Z.indptr), i64(Z.indices), i64(X.indptr), i64(X.indices), i64(A.indptr), i64(A.indices),
                        i64(ZX.indptr), i64(ZX.indices), i64(XX.indptr), i64(XX.indices),
                        self.zz_ptr, self.zx_ptr, self.xx_ptr, self.zz_pos, self.zx_pos, self.xx_pos)
        if not ok:
            raise NumericalError("a row's columns fall outside the analysed patterns of Z'Z, Z'X or X'X")
        self.A, self.ZX, self.XX = A, ZX, XX
        self.Z, self.X = Z, X
        self.z_ptr, self.z_ind, self.z_val = i64(Z.indptr), i64(Z.indices), np.asarray(Z.data, dtype=np.float64)
        self.x_ptr, self.x_ind, self.x_val = i64(X.indptr), i64(X.indices), np.asarray(X.data, dtype=np.float64)

    @classmethod
    def build(cls, Z, X, A) -> "SparseWeightedProducts":
        """With the structural patterns of Z'X and X'X computed here (A: Z'Z's, analysed)."""
        X = prepare_X(X)
        Z = sp.csr_matrix(Z)
        return cls(Z, X, A, structural_product(Z, X), structural_product(X, X))

    @property
    def n(self) -> int:
        return self.Z.shape[0]

    @property
    def p(self) -> int:
        return self.X.shape[1]

    def cross_products(self, w: np.ndarray, r: np.ndarray, with_X: bool = True) -> CrossProducts:
        """Cross-products of [Z X r] weighted by w (``with_X`` False: of [Z r] only, for a
        solve for u at fixed beta; ZtX q x 0 and XtX 0 x 0 dense, as WeightedProducts gives);
        Z'WZ, Z'WX, X'WX on the analysed patterns, sharing their index arrays."""
        w = np.ascontiguousarray(w, dtype=float)
        r = np.ascontiguousarray(r, dtype=float)
        with_X = bool(with_X and self.p)
        q = self.A.shape[0]
        work = self.zz_ptr[-1] + (self.zx_ptr[-1] + self.xx_ptr[-1] if with_X else 0) + self.n
        threads = kernel_threads(work)
        try:
            A, ZX, XX, Ztr, Xtr, rtr = (_pass if threads > 1 else _pass_serial)(
                self.z_ptr, self.z_ind, self.z_val, self.x_ptr, self.x_ind, self.x_val,
                self.zz_ptr, self.zx_ptr, self.xx_ptr, self.zz_pos, self.zx_pos, self.xx_pos,
                w, r, with_X, self.A.nnz, self.ZX.nnz, self.XX.nnz, q, self.p, threads)
        except SystemError as exc:      # a Ctrl-C in the parallel pass: KeyboardInterrupt (optimize.interrupt_in)
            if interrupt_in(exc) is None:
                raise
            raise KeyboardInterrupt("interrupted in a compiled kernel") from exc
        ZtWZ = sp.csr_matrix((A, self.A.indices, self.A.indptr), shape=self.A.shape, copy=False)
        if with_X:
            ZtX = sp.csr_matrix((ZX, self.ZX.indices, self.ZX.indptr), shape=self.ZX.shape, copy=False)
            XtX = sp.csr_matrix((XX, self.XX.indices, self.XX.indptr), shape=self.XX.shape, copy=False)
        else:
            ZtX, XtX, Xtr = np.zeros((q, 0)), np.zeros((0, 0)), np.zeros(0)
        return CrossProducts(ZtWZ, ZtX, Ztr, XtX, Xtr, float(rtr), self.n)


def prepare_X(X) -> sp.csr_matrix:
    """X as float CSR with sorted indices and no stored zeros (a zero times any weight stays
    zero: dropping it shrinks the patterns, never loses an entry)."""
    X = sp.csr_matrix(X, dtype=float, copy=False)
    if X.nnz and (not X.has_sorted_indices or np.any(X.data == 0)):
        X = X.copy()
        X.eliminate_zeros()
        X.sort_indices()
    return X


class SparseXGLMMEngine:
    """The linear model's :class:`~sparsemixed.engine.sparse_x.SparseXEngine` (Maug analysed
    on the structural patterns) as PIRLS reweights it: cross-products with X refill Maug's
    values by fixed gathers (no new scatter, no pattern comparison per iteration);
    cross-products without X (u at fixed beta) solve with M's factor alone."""

    sparse_X = True
    cheap_gradient = False

    def __init__(self, base, ZX: sp.csr_matrix, XX: sp.csr_matrix):
        from ..linalg.augmented import Augmented

        self.base = base
        self.ZX, self.XX = ZX, XX
        # where each stored value of ZX / XX goes in Maug's scatter: build it once on markers
        marks = lambda M: sp.csr_matrix((np.arange(1.0, M.nnz + 1), M.indices, M.indptr), shape=M.shape)
        probe = Augmented.build(base.relcov, marks(ZX), marks(XX))
        if not (np.array_equal(probe.indptr, base.aug.indptr) and np.array_equal(probe.indices, base.aug.indices)
                and np.array_equal(probe.zx_src, base.aug.zx_src) and probe.xx_data.size == base.aug.xx_data.size):
            raise NumericalError("the structural patterns of Z'X and X'X do not give the analysed Maug")
        self.zx_perm = probe.ZX_data.astype(np.int64) - 1
        self.xx_perm = probe.xx_data.astype(np.int64) - 1

    relcov = property(lambda self: self.base.relcov)
    crossprod = property(lambda self: self.base.crossprod)
    aug = property(lambda self: self.base.aug)
    factor = property(lambda self: self.base.factor)
    aug_factor = property(lambda self: self.base.aug_factor)
    result_class = property(lambda self: self.base.result_class)

    def __getattr__(self, name):
        if name == "base":
            raise AttributeError(name)
        return getattr(self.base, name)

    def solve(self, theta, reml: bool = True):
        return self.base.solve(theta, reml)

    def criterion(self, state, reml: bool) -> float:
        return self.base.criterion(state, reml)

    def random_effects(self, state):
        return self.base.random_effects(state)

    @staticmethod
    def m_factor(state):
        """M's factor of a state: an AugState's (solved with reml=False) or a p = 0 solve's."""
        f = getattr(state, "mfactor", None)
        return f if f is not None else state.factor

    def reweighted(self, crossprod):
        from ..engine.dense import DenseEngine
        from ..engine.sparse_x import SparseXEngine

        base = self.base
        relcov = reweighted_relcov(base.relcov, base.crossprod.ZtZ, crossprod.ZtZ)
        if crossprod.p == 0:        # u at fixed beta: M alone, on M's analysed factor
            return DenseEngine(crossprod, relcov, None, base.table, base.pool)
        ZtX, XtX = crossprod.ZtX, crossprod.XtX
        if not (sp.issparse(ZtX) and sp.issparse(XtX) and same_array(ZtX.indices, self.ZX.indices)
                and same_array(ZtX.indptr, self.ZX.indptr) and same_array(XtX.indices, self.XX.indices)
                and same_array(XtX.indptr, self.XX.indptr)):
            return base.reweighted(crossprod)           # other cross-products: the checked path
        aug = dataclasses.replace(base.aug, ZX_data=np.asarray(ZtX.data)[self.zx_perm],
                                  xx_data=np.asarray(XtX.data)[self.xx_perm])
        return SparseXEngine(crossprod, relcov, aug, base.pool, base.augpool, base.table, base.aug_table)


def beta_scale(mode) -> np.ndarray:
    """sqrt(diag((R_X'R_X)^-1)) from the joint state of a stage-1 mode on the sparse-X path
    (the X block's diagonal of Maug^-1, a selected inverse: glmm/fit.py's first trust region)."""
    eng, st = mode.engine, mode.state
    if not st.beta.size:
        return np.zeros(0)
    se = np.sqrt(np.clip(eng.aug.xinv_diag(st.factor), 0.0, None))
    return np.where(np.isfinite(se) & (se > 0), se, 0.01)


__all__ = ["SparseWeightedProducts", "SparseXGLMMEngine", "structural_product", "beta_scale"]
