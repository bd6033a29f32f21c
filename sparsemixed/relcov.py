"""Lambda(theta), the relative covariance factor, and M(theta) = Lambda' Z'Z Lambda + I.

Lambda is block diagonal, I_{l_k} (x) T_k per term, with a fixed sparsity pattern;
its stored values are ``theta[Lind]`` (lme4's Lind).  M is assembled from the stored
entries of A = Z'WZ without any sparse product:

    M_rc = sum_{a,b} Lambda_ar A_ab Lambda_bc  (+1 if r == c),  r >= c

Each contribution is A.data[src] * theta[t1] * theta[t2], summed into the fixed lower
pattern of M by one compiled scatter-add (in stored order: deterministic).  For scalar terms every entry of M
gets exactly one contribution.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import wraps

import numpy as np
import scipy.sparse as sp
from .linalg.jit import njit, prange

from .linalg.threads import kernel_threads, one_blas_thread, serial_twin


def lambda_pattern(terms) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows, cols and theta index (Lind) of Lambda's nonzeros, in term/level order."""
    rows, cols, lind = [], [], []
    offset, toff = 0, 0
    for t in terms:
        tr, tc = t.cov.tril_indices()
        lev = np.arange(t.nlevels)[:, None] * t.k + offset
        rows.append((lev + tr[None, :]).ravel())
        cols.append((lev + tc[None, :]).ravel())
        lind.append(np.tile(np.arange(t.ntheta) + toff, t.nlevels))
        offset += t.q
        toff += t.ntheta
    cat = lambda xs: np.concatenate(xs).astype(np.int64) if xs else np.zeros(0, np.int64)
    return cat(rows), cat(cols), cat(lind)


def _structural(method):
    """A property computed once from the structure and kept in ``self.derived``."""
    name = method.__name__

    @property
    @wraps(method)
    def get(self):
        d = self.derived
        if name not in d:
            d[name] = method(self)
        return d[name]
    return get


@dataclass
class RelCov:
    """The fixed structures mapping theta to Lambda and to M's stored values."""

    q: int
    Lrows: np.ndarray
    Lcols: np.ndarray
    Lind: np.ndarray
    M_indptr: np.ndarray      # CSC lower pattern of M
    M_indices: np.ndarray
    src: np.ndarray           # index into A.data of each contribution
    t1: np.ndarray            # theta index of Lambda_ar
    t2: np.ndarray            # theta index of Lambda_bc
    target: np.ndarray        # position in M.data of each contribution
    diag_pos: np.ndarray      # positions of M's diagonal in M.data
    A_data: np.ndarray        # stored values of A = Z'WZ (CSR order)
    # what follows from the structure alone, computed once and shared by the copies with
    # new values of A (engine/reweight.py: dataclasses.replace keeps this dict)
    derived: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def build(cls, terms, A: sp.csr_matrix) -> "RelCov":
        q = A.shape[0]
        Lr, Lc, Lind = lambda_pattern(terms)
        fast = cls._build_diagonal(q, Lr, Lc, Lind, A)
        if fast is not None:
            return fast
        # Lambda in CSR by row a: the (r, theta index) with Lambda_ar != 0
        Lcsr = sp.csr_matrix((np.arange(Lr.size) + 1.0, (Lr, Lc)), shape=(q, q))
        Lcsr.sort_indices()
        order = Lcsr.data.astype(np.int64) - 1
        L_col, L_lind, L_ptr = Lc[order], Lind[order], Lcsr.indptr.astype(np.int64)
        A = A.tocsr()
        M_indptr, M_indices = _lower_pattern(q, Lcsr, A)
        src, t12, t2, target, diag_pos = _contributions(
            A.indptr.astype(np.int64), A.indices.astype(np.int64), L_ptr, L_col.astype(np.int64),
            L_lind.astype(np.int64), M_indptr, M_indices)
        if (target < 0).any() or (diag_pos < 0).any():
            raise AssertionError("RelCov: a contribution to M outside its symbolic pattern")
        return cls(q, Lr, Lc, Lind, M_indptr, M_indices, src, t12, t2, target, diag_pos,
                   _values(A))

    @classmethod
    def _build_diagonal(cls, q, Lr, Lc, Lind, A) -> "RelCov | None":
        """The same structures when Lambda is diagonal (scalar terms) and A stores its whole
        diagonal: then M's lower pattern is A's, each entry gets the one contribution
        A_rc theta[Lind_r] theta[Lind_c], and no expansion or sort is needed -- O(nnz(A)),
        where the general path sorts every contribution (seconds at 27M rows).  Column c of
        M's lower CSC pattern is row c of A's CSR from the diagonal on (A symmetric)."""
        if not (Lr.size == q and np.array_equal(Lr, np.arange(q)) and np.array_equal(Lc, Lr)):
            return None
        A = A.tocsr()
        if not A.has_sorted_indices:
            A = A.sorted_indices()
        out = _upper_rows(A.indptr.astype(np.int64), A.indices.astype(np.int64), np.asarray(Lind, dtype=np.int64))
        if out is None:
            return None                    # a structurally zero diagonal entry: general path
        M_indptr, M_indices, src, t1, t2 = out
        target = np.arange(src.size, dtype=np.int64)
        diag_pos = M_indptr[:-1].copy()       # rows ascend within a column, the diagonal first
        return cls(q, Lr, Lc, Lind, M_indptr, M_indices, src, t1, t2, target,
                   diag_pos, _values(A))

    @_structural
    def mult(self) -> np.ndarray:
        """2 for off-diagonal stored entries of M, 1 on the diagonal (symmetric trace weights)."""
        m = np.full(self.nnz_M, 2.0)
        m[self.diag_pos] = 1.0
        return m

    @_structural
    def diagonal_Lambda(self) -> bool:
        """Lambda is diagonal (every term scalar, or split by '||'): then dLambda/dtheta_i is
        the indicator E_i of the rows with Lind == i, and E_i Lambda = theta_i E_i."""
        return bool(np.array_equal(self.Lrows, self.Lcols))

    @property
    def nnz_M(self) -> int:
        return self.M_indices.size

    def Lambda(self, theta: np.ndarray) -> sp.csc_matrix:
        order, indices, indptr = self._lambda_csc
        return sp.csc_matrix((np.asarray(theta, dtype=float)[self.Lind[order]], indices, indptr),
                             shape=(self.q, self.q), copy=False)

    @_structural
    def _lambda_csc(self):
        """Lambda's CSC structure, found once (a COO build per call cost ~0.2 ms on small
        models): the order of the (Lrows, Lcols) entries, row indices, column pointers."""
        order = np.lexsort((self.Lrows, self.Lcols))
        indptr = np.zeros(self.q + 1, dtype=np.int32 if self.q < 2**31 - 1 else np.int64)
        np.cumsum(np.bincount(self.Lcols, minlength=self.q), out=indptr[1:])
        return order, self.Lrows[order].astype(indptr.dtype), indptr

    @_structural
    def _one_to_one(self) -> bool:
        """Each stored entry of M gets exactly one contribution, in order (diagonal Lambda)."""
        return self.target.size == self.nnz_M and bool(np.array_equal(self.target, np.arange(self.nnz_M)))

    def M_values(self, theta: np.ndarray) -> np.ndarray:
        theta = np.asarray(theta, dtype=np.float64)
        if self._one_to_one:
            kernel = _m_values_direct if kernel_threads(self.nnz_M) > 1 else _m_values_direct_serial
            return kernel(self.A_data, self.src, self.t1, self.t2, self.diag_pos, theta)
        return _m_values(self.A_data, self.src, self.t1, self.t2, self.target, self.diag_pos, theta, self.nnz_M)

    def M(self, theta: np.ndarray) -> sp.csc_matrix:
        """Lower triangle of M(theta) in CSC (the pattern is fixed; only values change)."""
        return sp.csc_matrix((self.M_values(theta), self.M_indices, self.M_indptr), shape=(self.q, self.q))


@njit(cache=True)
def _upper_rows(indptr, indices, lind):
    """Row r of A's sorted CSR from the diagonal on is column r of M's lower CSC pattern:
    M_indptr, M_indices, src (positions in A.data), theta indices of its column and row;
    None when a row lacks its diagonal entry."""
    q = indptr.shape[0] - 1
    M_indptr = np.zeros(q + 1, dtype=np.int64)
    for r in range(q):
        a, b = indptr[r], indptr[r + 1]
        p = a + np.searchsorted(indices[a:b], r)
        if p == b or indices[p] != r:
            return None
        M_indptr[r + 1] = M_indptr[r] + (b - p)
    nnz = M_indptr[q]
    M_indices = np.empty(nnz, dtype=np.int64)
    src = np.empty(nnz, dtype=np.int64)
    t1 = np.empty(nnz, dtype=np.int64)
    t2 = np.empty(nnz, dtype=np.int64)
    for r in range(q):
        b = indptr[r + 1]
        o = M_indptr[r]
        p0 = b - (M_indptr[r + 1] - o)
        for p in range(p0, b):
            c = indices[p]
            M_indices[o + p - p0] = c
            src[o + p - p0] = p
            t1[o + p - p0] = lind[c]
            t2[o + p - p0] = lind[r]
    return M_indptr, M_indices, src, t1, t2


DENSE_PATTERN_Q = 120      # up to this q the symbolic product is formed densely (cheaper than scipy's)


def _lower_pattern(q: int, Lcsr: sp.csr_matrix, A: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    """M's lower CSC pattern (indptr, sorted row indices): the structure of Lambda'A Lambda
    (a symbolic product: every contribution A_ab Lambda_ar Lambda_bc is a path a -> b),
    the diagonal, and Lambda's own pattern, so that a selected inverse has all of
    diag(Lambda M^-1 Lambda')'s inputs."""
    # the stored entries, zeros included (Z'WZ can store exact zeros)
    ones = lambda m: sp.csr_matrix((np.ones(m.nnz), m.indices, m.indptr), shape=m.shape)
    Ls, As = ones(Lcsr), ones(A)
    if q <= DENSE_PATTERN_Q:
        L, S = Ls.toarray(), As.toarray()
        with one_blas_thread():                        # (threaded BLAS at this size only waits)
            P = (L.T @ S @ L + L + L.T + np.eye(q)) != 0
        cols, rows = np.nonzero(np.tril(P).T)          # column-major, rows ascending
        indptr = np.zeros(q + 1, dtype=np.int64)
        np.cumsum(np.bincount(cols, minlength=q), out=indptr[1:])
        return indptr, rows.astype(np.int64)
    low = sp.tril(Ls.T @ As @ Ls + sp.identity(q, format="csr") + Ls + Ls.T).tocsc()
    low.sort_indices()
    return low.indptr.astype(np.int64), low.indices.astype(np.int64)


@njit(cache=True)
def _find(M_indptr, M_indices, r, c):
    """Position of (r, c), r >= c, in M's lower CSC pattern (rows sorted in each column);
    -1 when it is not in the pattern."""
    lo, hi = M_indptr[c], M_indptr[c + 1]
    p = lo + np.searchsorted(M_indices[lo:hi], r)
    return p if p < hi and M_indices[p] == r else -1


@njit(cache=True)
def _contributions(A_ptr, A_idx, L_ptr, L_col, L_lind, M_indptr, M_indices):
    """Every contribution A_ab Lambda_ar Lambda_bc to M_rc with r >= c, in the order of A's
    stored entries, then of row a's and row b's Lambda entries: (src = position in A.data,
    theta index of Lambda_ar, of Lambda_bc, target = position in M.data), and the
    positions of M's diagonal."""
    none = np.empty(0, dtype=np.int64)
    n = _walk(A_ptr, A_idx, L_ptr, L_col, L_lind, M_indptr, M_indices, none, none, none, none, False)
    src, t1 = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    t2, target = np.empty(n, dtype=np.int64), np.empty(n, dtype=np.int64)
    _walk(A_ptr, A_idx, L_ptr, L_col, L_lind, M_indptr, M_indices, src, t1, t2, target, True)
    diag_pos = np.empty(A_ptr.size - 1, dtype=np.int64)
    for r in range(diag_pos.size):
        diag_pos[r] = _find(M_indptr, M_indices, r, r)
    return src, t1, t2, target, diag_pos


@njit(cache=True)
def _walk(A_ptr, A_idx, L_ptr, L_col, L_lind, M_indptr, M_indices, src, t1, t2, target, fill):
    """The contributions in order: counted, or (``fill``) written out; returns their number."""
    k = 0
    for a in range(A_ptr.size - 1):
        for p in range(A_ptr[a], A_ptr[a + 1]):
            b = A_idx[p]
            for i in range(L_ptr[a], L_ptr[a + 1]):
                r = L_col[i]
                for j in range(L_ptr[b], L_ptr[b + 1]):
                    c = L_col[j]
                    if r >= c:
                        if fill:
                            src[k], t1[k], t2[k] = p, L_lind[i], L_lind[j]
                            target[k] = _find(M_indptr, M_indices, r, c)
                        k += 1
    return k


@njit(cache=True)
def _m_values(A_data, src, t1, t2, target, diag_pos, theta, nnz):
    """M's stored values: sum of A_data[src] theta[t1] theta[t2] into ``target``, + I."""
    out = np.zeros(nnz)
    for e in range(src.shape[0]):
        out[target[e]] += A_data[src[e]] * theta[t1[e]] * theta[t2[e]]
    for d in diag_pos:
        out[d] += 1.0
    return out


@njit(cache=True, parallel=True)
def _m_values_direct(A_data, src, t1, t2, diag_pos, theta):
    """_m_values when entry e of M gets contribution e alone (disjoint writes: parallel)."""
    out = np.empty(src.shape[0])
    for e in prange(src.shape[0]):
        out[e] = A_data[src[e]] * theta[t1[e]] * theta[t2[e]]
    for d in diag_pos:
        out[d] += 1.0
    return out


_m_values_direct_serial = serial_twin(_m_values_direct)


def _values(A) -> np.ndarray:
    """A's stored values, shared (A = Z'WZ is the model's and never written after the
    cross-products), read-only here; copying 16 MB at 1M rows cost 20 ms of the build."""
    v = np.asarray(A.data, dtype=float).view()
    v.flags.writeable = False
    return v


def _ranges(counts: np.ndarray) -> np.ndarray:
    """concatenate(arange(c) for c in counts), vectorised."""
    counts = np.asarray(counts, dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    starts = np.repeat(np.cumsum(counts) - counts, counts)
    return np.arange(total, dtype=np.int64) - starts
