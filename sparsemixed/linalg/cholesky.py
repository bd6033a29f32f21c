"""The sparse Cholesky factor  P M P' = L L'  (CHOLMOD, through scikit-sparse).

This is the only module that imports ``sksparse``.  The symbolic analysis (fill-
reducing permutation P, supernodal structure) is done once per model; every
evaluation of the objective refactors the same pattern with new values.

scikit-sparse 0.4 (SuiteSparse 5, Debian 12) and 0.5 (SuiteSparse >= 7) differ in
their Python API; both are handled here so the rest of the package sees one class.
"""
from __future__ import annotations

import warnings
from contextlib import nullcontext

import numpy as np
import scipy.sparse as sp

from ..errors import NumericalError
from .threads import all_blas_threads

try:  # pragma: no cover - import guard
    from sksparse import cholmod as _cholmod
except ImportError as exc:  # pragma: no cover
    raise ImportError(
        "sparsemixed needs scikit-sparse (CHOLMOD). Install SuiteSparse's headers "
        "(Debian: apt-get install libsuitesparse-dev) and then 'pip install scikit-sparse' "
        "('scikit-sparse<0.5' with SuiteSparse 5.x); 'make test' in the source tree does both."
    ) from exc

ORDERINGS = ("natural", "amd", "metis")
SUPERNODAL_SWITCH = 200.0 # supernodal only when flops / nnz(L) >= 200 (flops = sum of squared column
                          # counts; measured: benchmarks/results/thresholds.md)
THREADED_FLOPS = 1e10     # from here CHOLMOD's BLAS runs on all threads; below, one (thresholds.md)
if not hasattr(_cholmod, "analyze"):  # pragma: no cover - the symbolic/numeric split is required
    raise ImportError(
        "sparsemixed needs scikit-sparse's cholmod.analyze (one symbolic analysis, numeric "
        "refactorizations in place); this scikit-sparse has no such function. Install "
        "'scikit-sparse>=0.4.12,<0.5' (SuiteSparse 5) or 'scikit-sparse>=0.5' (SuiteSparse >= 7)")
# what a failed numeric factorization raises (not positive definite, non-finite values);
# a programming error elsewhere is not turned into a NumericalError
_FACTOR_ERRORS = (getattr(_cholmod, "CholmodError", Exception), ArithmeticError, ValueError)


def _not_pd(exc: Exception) -> NumericalError:
    return NumericalError(
        "the sparse Cholesky factorization of M = Lambda'Z'Z Lambda + I failed "
        f"({exc}). M is positive definite for every finite theta, so this signals "
        "non-finite values: check that theta and the data (response, covariates, weights) are finite "
        "and not of extreme magnitude (rescale columns with values above ~1e8)."
    )


class SparseCholesky:
    """Factor of M's fixed pattern with a chosen ordering; ``factorize`` refactors in place
    (a :class:`~sparsemixed.linalg.factor.Factor`)."""

    def __init__(self, M: sp.csc_matrix, ordering: str = "natural", mode: str = "supernodal"):
        if ordering not in ORDERINGS:
            raise ValueError(f"ordering must be one of {ORDERINGS}, got {ordering!r}")
        if mode not in ("supernodal", "simplicial"):
            raise ValueError(f"mode must be 'supernodal' or 'simplicial', got {mode!r}")
        self.ordering, self.mode = ordering, mode
        self.q = M.shape[0]
        self.flops = 0.0          # of one factorization, when known (select_factor sets it)
        self._analyze(M)

    def _analyze(self, M: sp.csc_matrix) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # CholmodTypeConversionWarning for int64 indices
            self._f = _cholmod.analyze(M, mode=self.mode, ordering_method=self.ordering)
        self._minv_pos = None

    def clone(self) -> "SparseCholesky":
        """A workspace on the same symbolic analysis (CHOLMOD copies the factor object)."""
        new = object.__new__(SparseCholesky)
        new.__dict__.update(self.__dict__)
        new._f = None if self._f is None else self._f.copy()
        return new

    def __getstate__(self):
        return {"ordering": self.ordering, "mode": self.mode, "q": self.q, "flops": self.flops}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self.__dict__.setdefault("flops", 0.0)
        self.__dict__.setdefault("mode", "supernodal")
        self._f = None
        self._minv_pos = None

    def ensure(self, M: sp.csc_matrix) -> None:
        if self._f is None:
            self._analyze(M)

    def factorize(self, M: sp.csc_matrix) -> None:
        self.ensure(M)
        try:
            with warnings.catch_warnings(), (all_blas_threads() if self.flops >= THREADED_FLOPS else nullcontext()):
                warnings.simplefilter("ignore")
                self._f.cholesky_inplace(M)
        except _FACTOR_ERRORS as exc:  # CholmodNotPositiveDefiniteError and friends
            raise _not_pd(exc) from None
        if self.mode == "simplicial":
            # a simplicial factor is LDL': CHOLMOD accepts a D entry <= 0 there (an indefinite
            # matrix factors), and only the first solve, converting to LL', would raise
            d = np.asarray(self._f.D())
            if not np.all(d > 0):
                raise _not_pd(ValueError(f"a pivot of the LDL' factor is {float(np.nanmin(d)):.3g}, not positive"))

    def logdet(self) -> float:
        """log|M| = log|L|^2."""
        return float(self._f.logdet())

    def solve_L(self, B: np.ndarray) -> np.ndarray:
        """L^-1 P B."""
        return self._f.solve_L(self._f.apply_P(B), use_LDLt_decomposition=False)

    def solve_Lt(self, B: np.ndarray) -> np.ndarray:
        """P' L^-T B."""
        return self._f.apply_Pt(self._f.solve_Lt(B, use_LDLt_decomposition=False))

    def solve_A(self, B: np.ndarray) -> np.ndarray:
        """M^-1 B."""
        return self._f(B)

    def perm(self) -> np.ndarray:
        return np.asarray(self._f.P())

    def selected_inverse(self, M_indptr, M_indices) -> np.ndarray:
        """M^-1 on M's stored lower pattern (Takahashi's recurrences on L's pattern)."""
        return cholmod_selected_inverse(self, M_indptr, M_indices)

    def inverse_diagonal(self) -> None:
        """None: CHOLMOD's factor gives diag(M^-1) no cheaper than the selected inverse."""
        return None

    def L(self) -> sp.csc_matrix:
        """The factor L (a copy; for inspection, not for the hot path)."""
        return self._f.L()


def _takahashi_kernel():
    from .jit import njit

    @njit(cache=True)
    def kernel(indptr, indices, data, Z, k, Z22):
        """Selected inverse on L's pattern (lower CSC, sorted rows, diagonal first):
        Z = (L L')^-1 restricted to the pattern, by Takahashi's recurrences, for the
        columns j < k; entries with both indices >= k are read from the dense Z22."""
        for j in range(k - 1, -1, -1):
            p0, p1 = indptr[j], indptr[j + 1]
            ljj = data[p0]
            # off-diagonal entries, from the bottom up
            for pi in range(p1 - 1, p0, -1):
                i = indices[pi]
                s = 0.0
                for pk in range(p0 + 1, p1):
                    kk = indices[pk]
                    # Z[i, kk] with (max, min) lookup in column min(i, kk)
                    a, b = (i, kk) if i >= kk else (kk, i)
                    if b >= k:
                        s += data[pk] * Z22[a - k, b - k]
                        continue
                    lo, hi = indptr[b], indptr[b + 1] - 1
                    while lo < hi:
                        mid = (lo + hi) // 2
                        if indices[mid] < a:
                            lo = mid + 1
                        else:
                            hi = mid
                    s += data[pk] * Z[lo]
                Z[pi] = -s / ljj
            s = 0.0
            for pk in range(p0 + 1, p1):
                s += data[pk] * Z[pk]
            Z[p0] = 1.0 / (ljj * ljj) - s / ljj
        return Z

    return kernel


_TAKAHASHI = None
SCALAR_PER_FLOP = 300.0      # one scalar Takahashi step (binary search) / one LAPACK flop (measured order)
MAX_DENSE_TAIL = 12_000      # dense trailing block: 2 x 8 m^2 bytes (L22 and Z22), 2.3 GB at most


def dense_tail_start(L: sp.csc_matrix) -> int:
    """Where the dense trailing block of the selected inverse starts: the k minimising

        SCALAR_PER_FLOP * sum_{j<k} c_j^2  +  (2/3) (n-k)^3

    (c_j = nnz of L's column j; Takahashi steps on the sparse leading columns against
    LAPACK dpotri on L22 = L[k:, k:] as a dense matrix), with n - k <= MAX_DENSE_TAIL."""
    n = L.shape[0]
    c = np.diff(L.indptr).astype(np.float64)
    before = np.concatenate([[0.0], np.cumsum(c * c)])           # sum_{j<k} c_j^2, k = 0..n
    m = n - np.arange(n + 1, dtype=np.float64)
    cost = SCALAR_PER_FLOP * before + (2.0 / 3.0) * m ** 3
    cost[m > MAX_DENSE_TAIL] = np.inf
    cost[m < 64] = cost[n]          # tiny tails: not worth a dense block
    return int(np.argmin(cost))


def cholmod_selected_inverse(chol: SparseCholesky, M_indptr, M_indices) -> np.ndarray:
    """M^-1 on M's stored lower pattern from a CHOLMOD factor.

    Takahashi's recurrences on L's pattern for the sparse leading columns; the trailing
    block, where fill makes L dense (crossed factors), is inverted densely:

        L = [L11 0; L21 L22]  =>  (L L')^-1 [k:, k:] = L22^-T L22^-1     (LAPACK dpotri)
    """
    global _TAKAHASHI
    if _TAKAHASHI is None:
        _TAKAHASHI = _takahashi_kernel()
    L = chol.L().tocsc()
    L.sort_indices()
    n = L.shape[0]
    k = dense_tail_start(L)
    Z = np.zeros(L.nnz)
    if k < n:
        import scipy.linalg as sla

        L22 = L[k:, k:].toarray()
        Z22, info = sla.lapack.dpotri(L22, lower=1, overwrite_c=1)
        if info != 0:
            raise NumericalError(f"dense inversion of the factor's trailing block failed (info {info})")
        del L22
        cols = np.repeat(np.arange(n, dtype=np.int64), np.diff(L.indptr))
        tail = np.flatnonzero(cols >= k)
        Z[tail] = Z22[L.indices[tail] - k, cols[tail] - k]
    else:
        Z22 = np.zeros((1, 1))
    Z = _TAKAHASHI(L.indptr.astype(np.int64), L.indices.astype(np.int64), L.data, Z, k, Z22)
    if getattr(chol, "_minv_pos", None) is None or chol._minv_pos.size != M_indices.size:
        chol._minv_pos = _pattern_positions(chol.perm(), L, M_indptr, M_indices)
    return Z[chol._minv_pos]


def _pattern_positions(perm, L, M_indptr, M_indices) -> np.ndarray:
    """Position in L's (permuted, lower) pattern of each stored entry of M; fixed once the
    symbolic analysis is, so computed once per factor."""
    q = M_indptr.size - 1
    iperm = np.empty_like(perm)
    iperm[perm] = np.arange(perm.size)
    c = iperm[np.repeat(np.arange(q), np.diff(M_indptr))].astype(np.int64)
    r = iperm[M_indices].astype(np.int64)
    hi, lo = np.maximum(r, c), np.minimum(r, c)
    Lcol = np.repeat(np.arange(q, dtype=np.int64), np.diff(L.indptr))
    keys = Lcol * q + L.indices.astype(np.int64)       # sorted: CSC with sorted rows
    return np.searchsorted(keys, lo * q + hi)


def min_pivot(A_lower: sp.csc_matrix, ordering: str = "amd") -> float:
    """min_j L_jj^2 of P A P' = L L' (CHOLMOD, ``ordering``), or -inf when A is not
    (numerically) positive definite.  With A scaled to unit diagonal, L_jj^2 is the
    residual fraction of column j after projection on the columns before it in P's order:
    the fixed-effects rank check of the sparse-X path (model.independent_columns_sparse)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            f = _cholmod.cholesky(sp.csc_matrix(A_lower), mode="supernodal", ordering_method=ordering)
        except _FACTOR_ERRORS:   # CholmodNotPositiveDefiniteError
            return -np.inf
        d = f.L().diagonal()
    return float(np.min(d) ** 2) if d.size else np.inf
