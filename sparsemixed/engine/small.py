"""The small-model engine: one dense Cholesky of the augmented system (q + p + 1 <= SMALL_M, dense X).

    Omega  = [Z X y]'W[Z X y]                        (m x m, m = q + p + 1, formed once)
    T      = blockdiag(Lambda(theta), I_{p+1})
    T'Omega T + blockdiag(I_q, 0) = F F'             (F lower: one LAPACK dpotrf)

    F = [ L                 0      0     ]           L L'     = Lambda'Z'WZ Lambda + I = M
        [ R_ZX'             R_X'   0     ]           R_ZX, R_X, c_u, c_b, r2 as linalg/pls.py
        [ c_u'              c_b'   sqrt(r2) ]        beta = R_X^-1 c_b

(MixedModels.jl's blocked form, taken whole: for m up to SMALL_M one dense factor costs less
than building or walking any sparse structure: benchmarks/results/2026-12-06-evaluation.md;
above it a single term's block-diagonal M or a sparse crossing makes the sparse factors
cheaper.)  The gradient is gradient.py's, densely:

    d log|M|_i      = 2 sum_{(r,c): Lind = i} (A Lambda M^-1)_rc               A = Z'WZ
    d r2_i          = -2 sum_{(r,c): Lind = i} r_r u_c
    d log|R_X|^2_i  = -2 sum_{(r,c): Lind = i} (G K)_c . H_r

A state carries its own arrays (nothing shared between evaluations or threads) and a
:class:`~sparsemixed.linalg.dense_cholesky.DenseCholesky` holding L for everything that
reads the factor through the Factor protocol (conditional variances, predictions, GLMMs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla

from ..errors import NumericalError
from ..linalg.dense_cholesky import DenseCholesky
from ..linalg.jit import njit
from ..linalg.pls import PLSState
from .dense import DenseEngine

SMALL_M = 120       # largest m = q + p + 1: OpenBLAS's dpotrf runs threaded from m = 128, and
                    # then rounds differently from threads the BLAS limit does not reach (linalg/threads.py)

_dpotrf = sla.lapack.dpotrf


@dataclass(eq=False)
class SmallState(PLSState):
    """A PLS state holding the augmented factor F of its theta (for the gradient)."""

    F: np.ndarray = field(default=None, repr=False)


class SmallEngine(DenseEngine):
    """:class:`~sparsemixed.engine.Engine` for q + p + 1 <= SMALL_M and a dense X."""

    def __init__(self, crossprod, relcov, factor: DenseCholesky, table=None, pool=None):
        super().__init__(crossprod, relcov, factor, table, pool)
        q, p = crossprod.q, crossprod.p
        m = q + p + 1
        omega = np.zeros((m, m))
        omega[:q, :q] = crossprod.ZtZ.toarray()
        omega[q:q + p, :q] = np.asarray(crossprod.ZtX).T
        omega[q + p, :q] = crossprod.Zty
        omega[q:q + p, q:q + p] = crossprod.XtX
        omega[q + p, q:q + p] = crossprod.Xty
        omega[q + p, q + p] = crossprod.yty
        omega = np.tril(omega)
        self.omega = omega + np.tril(omega, -1).T          # symmetric [Z X y]'W[Z X y]
        self._L = (relcov.Lrows.astype(np.int64), relcov.Lcols.astype(np.int64), relcov.Lind.astype(np.int64))

    @classmethod
    def build(cls, crossprod, relcov) -> "SmallEngine":
        return cls(crossprod, relcov, DenseCholesky(relcov.M_indptr, relcov.M_indices, relcov.q),
                   {"dense": (None, relcov.q * (relcov.q + 1) // 2, relcov.q ** 3 / 3)})

    def solve(self, theta, reml: bool = True) -> SmallState:
        theta = np.array(theta, dtype=float)
        q, p = self.crossprod.q, self.crossprod.p
        m = q + p + 1
        W = np.empty((m, m), order="F")
        _assemble(self.omega, theta, *self._L, q, W)
        F, info = _dpotrf(W, lower=1, clean=1, overwrite_a=1)
        if q < info < m:
            raise NumericalError(
                "X'V^-1X is not positive definite at this theta: the fixed-effects columns are "
                "(numerically) collinear given the random effects; remove redundant columns")
        if 0 < info <= q:
            raise NumericalError(f"M is not positive definite (LAPACK dpotrf info={info})")
        ldL2, ldRX2, r2, beta, cu, RZX, RX = _extract(F, q, p, info == m)
        return SmallState(theta, ldL2, ldRX2, r2, beta, cu, RZX, RX,
                          DenseCholesky.of(F[:q, :q], self.pool.template), F=F)

    def gradient(self, state: SmallState, reml: bool) -> np.ndarray:
        cp = self.crossprod
        nu = cp.n - (cp.p if reml else 0)
        return _gradient(state.F, state.factor.inverse_lower(), self.omega, state.theta, *self._L, state.beta,
                         state.RX, cp.q, cp.p, float(nu), state.r2, bool(reml and cp.p))

    def reweighted(self, crossprod) -> DenseEngine:
        """For new weights (a GLMM's PIRLS step): linalg/pls.py's solve on the dense factor of M."""
        from .reweight import reweighted_relcov

        return DenseEngine(crossprod, reweighted_relcov(self.relcov, self.crossprod.ZtZ, crossprod.ZtZ),
                           None, self.table, self.pool)


@njit(cache=True)
def _assemble(omega, theta, Lrows, Lcols, Lind, q, W):
    """The lower triangle of T'Omega T + blockdiag(I_q, 0) into W (m x m, Fortran order),
    Lambda applied entry by entry (its nonzeros: Lrows, Lcols, theta[Lind])."""
    m = omega.shape[0]
    LtOm = np.zeros((q, m))                                # Lambda' Omega[:q, :]
    for e in range(Lrows.size):
        r, c, t = Lrows[e], Lcols[e], theta[Lind[e]]
        for j in range(m):
            LtOm[c, j] += t * omega[r, j]
    for c in range(q):
        for i in range(q):
            W[i, c] = 0.0
        for i in range(q, m):
            W[i, c] = LtOm[c, i]
    for e in range(Lrows.size):                            # (Lambda' A) Lambda
        r, c, t = Lrows[e], Lcols[e], theta[Lind[e]]
        for i in range(q):
            W[i, c] += LtOm[i, r] * t
    for i in range(q):
        W[i, i] += 1.0
    for j in range(q, m):
        for i in range(j, m):
            W[i, j] = omega[i, j]


@njit(cache=True)
def _extract(F, q, p, exact):
    """(log|L|^2, log|R_X|^2, r2, beta, c_u, R_ZX, R_X) from the augmented factor; ``exact``:
    the last pivot was not positive (r2 = 0)."""
    m = q + p + 1
    ldL2 = 0.0
    for i in range(q):
        ldL2 += np.log(F[i, i])
    ldRX2 = 0.0
    RX = np.zeros((p, p))
    for i in range(p):
        ldRX2 += np.log(F[q + i, q + i])
        for j in range(i, p):
            RX[i, j] = F[q + j, q + i]
    beta = np.empty(p)
    for i in range(p - 1, -1, -1):
        s = F[m - 1, q + i]
        for j in range(i + 1, p):
            s -= RX[i, j] * beta[j]
        beta[i] = s / RX[i, i]
    cu = np.empty(q)
    RZX = np.empty((q, p))
    for i in range(q):
        cu[i] = F[m - 1, i]
        for j in range(p):
            RZX[i, j] = F[q + j, i]
    r2 = 0.0 if exact else F[m - 1, m - 1] ** 2
    return 2.0 * ldL2, 2.0 * ldRX2, r2, beta, cu, RZX, RX


@njit(cache=True)
def _solve_Lt(F, q, v):
    """L^-T v in place (L = F[:q, :q], lower)."""
    for i in range(q - 1, -1, -1):
        s = v[i]
        for k in range(i + 1, q):
            s -= F[k, i] * v[k]
        v[i] = s / F[i, i]


@njit(cache=True)
def _gradient(F, Minv, omega, theta, Lrows, Lcols, Lind, beta, RX, q, p, nu, r2, with_rx):
    """The criterion's gradient (module docstring); Minv: M^-1's lower triangle (dpotri)."""
    m = q + p + 1
    nL, nt = Lrows.size, theta.size
    g = np.zeros(nt)
    AL = np.zeros((q, q))                                  # A Lambda
    for e in range(nL):
        r, c, t = Lrows[e], Lcols[e], theta[Lind[e]]
        for i in range(q):
            AL[i, c] += omega[i, r] * t
    for e in range(nL):                                    # d log|M|: 2 (A Lambda M^-1)_rc
        r, c = Lrows[e], Lcols[e]
        s = 0.0
        for k in range(q):
            s += AL[r, k] * (Minv[k, c] if k >= c else Minv[c, k])
        g[Lind[e]] += 2.0 * s
    u = np.empty(q)                                        # u = L^-T (c_u - R_ZX beta)
    for i in range(q):
        s = F[m - 1, i]
        for j in range(p):
            s -= F[q + j, i] * beta[j]
        u[i] = s
    _solve_Lt(F, q, u)
    b = np.zeros(q)
    for e in range(nL):
        b[Lrows[e]] += theta[Lind[e]] * u[Lcols[e]]
    res = np.empty(q)                                      # Z'W(y - X beta) - Z'WZ b
    for i in range(q):
        s = omega[i, m - 1]
        for j in range(p):
            s -= omega[i, q + j] * beta[j]
        for k in range(q):
            s -= omega[i, k] * b[k]
        res[i] = s
    for e in range(nL):                                    # nu d r2 / r2, d r2 = -2 r' dLambda u
        g[Lind[e]] -= 2.0 * nu * res[Lrows[e]] * u[Lcols[e]] / r2
    if with_rx:                                            # d log|R_X|^2 = -2 tr(G K H' dLambda)
        C = np.empty((q, p))                               # M^-1 Lambda'Z'WX = L^-T R_ZX
        col = np.empty(q)
        for j in range(p):
            for i in range(q):
                col[i] = F[q + j, i]
            _solve_Lt(F, q, col)
            C[:, j] = col
        LC = np.zeros((q, p))
        for e in range(nL):
            t = theta[Lind[e]]
            for j in range(p):
                LC[Lrows[e], j] += t * C[Lcols[e], j]
        H = np.empty((q, p))                               # Z'WX - A Lambda C
        for i in range(q):
            for j in range(p):
                s = omega[i, q + j]
                for k in range(q):
                    s -= omega[i, k] * LC[k, j]
                H[i, j] = s
        Rinv = np.zeros((p, p))                            # R_X^-1 (upper)
        for j in range(p):
            Rinv[j, j] = 1.0 / RX[j, j]
            for i in range(j - 1, -1, -1):
                s = 0.0
                for k in range(i + 1, j + 1):
                    s += RX[i, k] * Rinv[k, j]
                Rinv[i, j] = -s / RX[i, i]
        K = Rinv @ Rinv.T                                  # (R_X'R_X)^-1
        G = np.zeros((q, p))                               # Lambda'H
        for e in range(nL):
            t = theta[Lind[e]]
            for j in range(p):
                G[Lcols[e], j] += t * H[Lrows[e], j]
        GK = G @ K
        for e in range(nL):
            s = 0.0
            for j in range(p):
                s += GK[Lcols[e], j] * H[Lrows[e], j]
            g[Lind[e]] -= 2.0 * s
    return g
