"""The sparse-X path: the fixed effects inside the sparse system that CHOLMOD factors.

With A = Z'WZ, M = Lambda'A Lambda + I and X sparse (e.g. a factor with thousands of
levels), the dense path's R_ZX = L^-1 P Lambda'Z'WX (q x p dense) is never formed.
Instead the augmented matrix

    Maug(theta) = [ M                Lambda'Z'WX ]     (q+p) x (q+p), sparse, fixed pattern
                  [ X'WZ Lambda      X'WX        ]

is factored, P Maug P' = Laug Laug' (one symbolic analysis, numeric refactorization per
theta), and with c = [Lambda'Z'Wy ; X'Wy]:

    w    = Laug^-1 P c,     sol = P' Laug^-T w = Maug^-1 c = [u ; beta]
    r2   = y'Wy - w'w       (= y'Wy - c'sol, the penalized weighted RSS)
    log|Maug| = log|M| + log|R_X|^2          (Schur complement: R_X'R_X = X'V0^-1X)

    REML: -2 l_R = log|Maug| + (n-p)(1 + log(2 pi r2/(n-p)))  - sum log w
    ML:   -2 l   = log|M|    + n (1 + log(2 pi r2/n))          - sum log w
                   (log|M| from the model's own factor of M)

Maug's stored values come from a precomputed scatter, as M's do (relcov.py): the M block
is relcov.M_values(theta) put at fixed positions; each entry (a, j) of Z'WX times each
entry Lambda_ar = theta[Lind] of row a of Lambda adds to (Lambda'Z'WX)_rj (one
``bincount``); X'WX is constant.

Gradient (envelope theorem: u and beta at their optimum), dLambda_i = dLambda/dtheta_i:

    d log|Maug|  = tr(Maug^-1 dMaug_i)   (Maug^-1 on Maug's pattern: a selected inverse)
                   dMaug_i = [ dM_i                 dLambda_i'Z'WX ]
                             [ X'WZ dLambda_i       0              ]
    d log|M|     = tr(M^-1 dM_i)         (ML only; selected inverse of M's factor)
    d r2         = -2 r' dLambda_i u,    r = Z'Wy - Z'WX beta - Z'WZ Lambda u

    REML: g = d log|Maug| + (n-p) d r2 / r2;      ML: g = d log|M| + n d r2 / r2

Fixed-effect covariance: (R_X'R_X)^-1 is the X block of Maug^-1, so its diagonal (the
standard errors, times sigma^2) is read off the same selected inverse.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from ..errors import MemoryLimitError, NumericalError, SparseMixedError
from .cholesky import ORDERINGS
from ..gradient import trace_dM
from .symbolic import BYTES_PER_ENTRY, fmt_bytes, memory_budget

UNSUPPORTED = ("is not available on the sparse-X path, which never forms the dense q x p R_ZX "
               "nor the p x p R_X; build the model with sparse_X=False for it (memory permitting)")


@dataclass(eq=False)
class AugState:
    """The PLS solution at theta on the sparse-X path (the analogue of pls.PLSState), with
    the factors it was computed with: Maug's and (ML) M's, at this theta while it lives."""

    theta: np.ndarray
    ldMaug: float        # log|Maug| = log|M| + log|R_X|^2
    ldL2: float          # log|M| (ML only; NaN when not computed)
    r2: float
    beta: np.ndarray
    u: np.ndarray
    factor: object = field(default=None, repr=False)      # of Maug
    mfactor: object = field(default=None, repr=False)     # of M (ML only)

    @property
    def ldRX2(self) -> float:
        return self.ldMaug - self.ldL2

    @property
    def RZX(self):
        raise SparseMixedError("R_ZX " + UNSUPPORTED)

    @property
    def RX(self):
        raise SparseMixedError("R_X " + UNSUPPORTED)

    @property
    def cu(self):
        raise SparseMixedError("c_u " + UNSUPPORTED)


@dataclass
class Augmented:
    """Maug's fixed lower CSC pattern and the scatter filling its values (the factor is
    the engine's: engine.sparse_x.SparseXEngine)."""

    q: int
    p: int
    indptr: np.ndarray
    indices: np.ndarray
    M_pos: np.ndarray        # position in Maug.data of each stored entry of M (relcov order)
    zx_src: np.ndarray       # index into ZX_data of each Lambda'Z'WX contribution
    zx_lind: np.ndarray      # theta index of the Lambda entry
    zx_target: np.ndarray    # position in Maug.data
    ZX_data: np.ndarray      # stored values of Z'WX (CSR order)
    xx_pos: np.ndarray       # positions of X'WX's lower entries
    xx_data: np.ndarray
    xdiag_pos: np.ndarray    # positions of the X block's diagonal

    @property
    def N(self) -> int:
        return self.q + self.p

    @property
    def nnz(self) -> int:
        return self.indices.size

    @classmethod
    def build(cls, relcov, ZtX, XtX) -> "Augmented":
        q, p = relcov.q, XtX.shape[0]
        N = q + p
        # M block: (col c, row r) of each stored entry of M
        Mc = np.repeat(np.arange(q, dtype=np.int64), np.diff(relcov.M_indptr))
        Mr = relcov.M_indices.astype(np.int64)
        # Lambda'Z'WX block at (q + j, r): Z'WX entry (a, j) times each Lambda_ar
        ZX = sp.csr_matrix(ZtX)
        ZX.sum_duplicates()
        ZX.sort_indices()
        Lcsr = sp.csr_matrix((np.arange(relcov.Lrows.size) + 1.0, (relcov.Lrows, relcov.Lcols)), shape=(q, q))
        Lcsr.sort_indices()
        order = Lcsr.data.astype(np.int64) - 1
        L_col, L_lind, L_ptr = relcov.Lcols[order], relcov.Lind[order], Lcsr.indptr.astype(np.int64)
        a = np.repeat(np.arange(q, dtype=np.int64), np.diff(ZX.indptr))
        j = ZX.indices.astype(np.int64)
        na = np.diff(L_ptr)[a]
        src = np.repeat(np.arange(ZX.nnz, dtype=np.int64), na)
        from ..relcov import _ranges

        pos = np.repeat(L_ptr[a], na) + _ranges(na)
        zr, zlind = L_col[pos].astype(np.int64), L_lind[pos].astype(np.int64)
        zrow = q + j[src]
        # X'WX lower block
        XX = sp.coo_matrix(sp.tril(sp.csr_matrix(XtX)))
        xrow, xcol = XX.row.astype(np.int64) + q, XX.col.astype(np.int64) + q
        xdiag = np.arange(q, N, dtype=np.int64)
        keys = np.concatenate([Mc * N + Mr, zr * N + zrow, xcol * N + xrow, xdiag * N + xdiag])
        uniq, inv = np.unique(keys, return_inverse=True)
        indices = (uniq % N).astype(np.int64)
        cols = uniq // N
        indptr = np.concatenate([[0], np.cumsum(np.bincount(cols, minlength=N))]).astype(np.int64)
        n1, n2, n3 = Mc.size, zr.size, xrow.size
        return cls(q, p, indptr, indices, inv[:n1].astype(np.int64), src, zlind,
                   inv[n1:n1 + n2].astype(np.int64), np.asarray(ZX.data, float).copy(),
                   inv[n1 + n2:n1 + n2 + n3].astype(np.int64), np.asarray(XX.data, float).copy(),
                   inv[n1 + n2 + n3:].astype(np.int64))

    # -- values and factor -------------------------------------------------------------
    def values(self, theta, relcov) -> np.ndarray:
        out = np.zeros(self.nnz)
        out[self.M_pos] = relcov.M_values(theta)
        out += np.bincount(self.zx_target, weights=self.ZX_data[self.zx_src] * theta[self.zx_lind],
                           minlength=self.nnz)
        out[self.xx_pos] += self.xx_data          # distinct positions
        return out

    def matrix(self, theta, relcov) -> sp.csc_matrix:
        """Lower triangle of Maug(theta) in CSC."""
        return sp.csc_matrix((self.values(theta, relcov), self.indices, self.indptr), shape=(self.N, self.N))

    def analyse(self, theta0, relcov, ordering: str = "auto", memory_limit=None):
        """(factor, table): one symbolic analysis of Maug's pattern, the fill-reducing ordering
        with the fewest factor flops (select.cholmod_candidates), refused with MemoryLimitError
        before any numeric work when the factor would not fit in ``memory_limit``."""
        from .select import cholmod_candidates

        budget = memory_budget(memory_limit)
        orderings = ORDERINGS if ordering in ("auto", "blocked") else (ordering,)
        A = self.matrix(theta0, relcov)
        facs, table, need = cholmod_candidates(A, orderings, limit_entries=budget // BYTES_PER_ENTRY)
        facs = {o: f for o, f in facs.items() if need[o] <= budget}
        if not facs:
            raise MemoryLimitError(
                f"the sparse-X factor of Maug (q = {self.q:,} random effects + p = {self.p:,} fixed "
                f"effects) would need more than {budget // BYTES_PER_ENTRY:,} entries "
                f"(~{fmt_bytes(budget)}) with every ordering ({', '.join(table) or 'none'}), more than "
                "the memory limit. Options: raise memory_limit= if the machine has the memory; pool "
                "rarely observed levels of the fixed-effect factor or of the grouping factors")
        best = min(facs, key=lambda o: (table[o][2], ORDERINGS.index(o)))
        return facs[best], table

    def factorize(self, factor, theta, relcov) -> None:
        try:
            factor.factorize(self.matrix(theta, relcov))
        except NumericalError:
            raise NumericalError(
                "the sparse factorization of Maug = [M, Lambda'Z'X; X'Z Lambda, X'X] failed at theta = "
                f"{np.round(theta, 6).tolist()}: X'V^-1X is not positive definite, i.e. the fixed-effect "
                "columns are (numerically) collinear given the random effects, or the data are not "
                "finite. Remove redundant columns") from None

    # -- PLS solve and criterion ---------------------------------------------------------
    def solve(self, theta, crossprod, relcov, factor, mfactor=None) -> AugState:
        """Factor Maug(theta) into ``factor`` and solve for (u, beta); with ``mfactor`` (ML)
        also factor M for log|M|."""
        self.factorize(factor, theta, relcov)
        Lam = relcov.Lambda(theta)
        c = np.concatenate([np.asarray(Lam.T @ crossprod.Zty).ravel(), np.asarray(crossprod.Xty).ravel()])
        w = np.asarray(factor.solve_L(c)).ravel()
        sol = np.asarray(factor.solve_Lt(w)).ravel()
        r2 = float(crossprod.yty - w @ w)
        ldM = math.nan
        if mfactor is not None:
            mfactor.factorize(relcov.M(theta))
            ldM = mfactor.logdet()
        return AugState(np.array(theta, float), factor.logdet(), ldM, max(r2, 0.0),
                        sol[self.q:].copy(), sol[:self.q].copy(), factor, mfactor)

    def selected_inverse(self, factor) -> np.ndarray:
        """Maug^-1 on Maug's stored lower pattern (from ``factor``, Maug's at some theta)."""
        return factor.selected_inverse(self.indptr, self.indices)

    def xinv_diag(self, factor) -> np.ndarray:
        """diag((R_X'R_X)^-1): the X block's diagonal of Maug^-1."""
        return self.selected_inverse(factor)[self.xdiag_pos]

    def xinv(self, factor, chunk: int = 256) -> np.ndarray:
        """(R_X'R_X)^-1, p x p dense: the X block of Maug^-1, by solves with columns of
        [0; I] in chunks (memory p x p + (q+p) x chunk)."""
        out = np.empty((self.p, self.p))
        for s in range(0, self.p, chunk):
            e = min(self.p, s + chunk)
            B = np.zeros((self.N, e - s))
            B[self.q + np.arange(s, e), np.arange(e - s)] = 1.0
            out[:, s:e] = np.asarray(factor.solve_A(B)).reshape(self.N, -1)[self.q:]
        return 0.5 * (out + out.T)


def criterion(state: AugState, n: int, p: int, reml: bool, sum_log_w: float = 0.0) -> float:
    nu = n - p if reml else n
    if state.r2 <= 0.0:
        return -math.inf
    ld = state.ldMaug if reml else state.ldL2
    return ld + nu * (1.0 + math.log(2.0 * math.pi * state.r2 / nu)) - sum_log_w


def gradient(aug: Augmented, state: AugState, crossprod, relcov, reml: bool) -> np.ndarray:
    """Gradient of :func:`criterion` at state.theta (from the state's factors)."""
    theta = state.theta
    nt = theta.size
    if reml:
        S = aug.selected_inverse(state.factor)
        dlog = trace_dM(S[aug.M_pos], relcov, theta)
        dlog += 2.0 * np.bincount(aug.zx_lind, weights=aug.ZX_data[aug.zx_src] * S[aug.zx_target],
                                  minlength=nt)
    else:
        dlog = trace_dM(state.mfactor.selected_inverse(relcov.M_indptr, relcov.M_indices), relcov, theta)
    b = relcov.Lambda(theta) @ state.u
    r = (np.asarray(crossprod.Zty).ravel() - np.asarray(crossprod.ZtX @ state.beta).ravel()
         - np.asarray(crossprod.ZtZ @ b).ravel())
    dr2 = -2.0 * np.bincount(relcov.Lind, weights=r[relcov.Lrows] * state.u[relcov.Lcols], minlength=nt)
    nu = crossprod.n - (crossprod.p if reml else 0)
    return dlog + nu * dr2 / state.r2
