"""Analytic gradient of the profiled criterion with respect to theta.

With A = Z'WZ, M = Lambda'A Lambda + I, dLambda_i = dLambda/dtheta_i (ones where Lind == i):

    d log|M|      = tr(M^-1 dM_i),  dM_i = dLambda_i' A Lambda + Lambda' A dLambda_i
                    (needs M^-1 only on the pattern of M: a selected inverse)
    d r2          = -2 r' dLambda_i u,          r = Z'W(y - X beta) - Z'WZ b      (envelope)
    d log|R_X|^2  = -2 tr(G K H' dLambda_i),    H = Z'V0^-1 X = Z'WX - Z'WZ Lambda C,
                    C = M^-1 Lambda'Z'WX,  G = Lambda'H,  K = (R_X'R_X)^-1

    ML:   g = d log|M| + n d r2 / r2
    REML: g = d log|M| + d log|R_X|^2 + (n - p) d r2 / r2

Everything is q- or pattern-sized; the cost is one selected inversion plus O(nnz(M)).
The criterion is even in each scalar theta_i, so the gradient is 0 on the boundary
theta_i = 0 (these formulas give that value there without special cases).

When Lambda is diagonal (scalar terms), dLambda_i = E_i (rows with Lind == i) and
E_i Lambda = theta_i E_i, so with A_theta = Lambda'A Lambda = M - I

    tr(M^-1 dM_i) = (2 / theta_i) tr(E_i M^-1 A_theta) = (2 / theta_i) (q_i - tr(E_i M^-1)):

only diag(M^-1) is needed, which the blocked factor gives without M^-1's off-diagonal
blocks (BlockedCholesky.inverse_diagonal).  This form loses accuracy as theta_i -> 0
(q_i - tr(E_i M^-1) = O(theta_i^2) by cancellation), so it is used only when every
theta_i >= DIAG_TRACE_MIN; otherwise the selected inverse.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from .linalg.pls import lambda_times

DIAG_TRACE_MIN = 1e-3


def gradient(state, crossprod, relcov, reml: bool) -> np.ndarray:
    """Gradient of the profiled criterion (ML deviance or REML criterion) at state.theta."""
    dlogM, dlogRX, dr2 = gradient_parts(state, crossprod, relcov, reml)
    nu = crossprod.n - (crossprod.p if reml else 0)
    return dlogM + dlogRX + nu * dr2 / state.r2


def gradient_parts(state, crossprod, relcov, reml: bool):
    """(d log|M|, d log|R_X|^2 (zeros for ML), d r2) with respect to theta, each a vector;
    the pieces of any criterion built from log|M|, log|R_X|^2 and r2 (e.g. the deviance
    as a function of (sigma, theta)).  Uses the state's factor (L at state.theta)."""
    theta, chol = state.theta, state.factor
    ntheta = theta.size
    g = dlogdet_M(theta, relcov, chol)
    Lam = lambda B, transpose=False: lambda_times(relcov, theta, B, transpose)
    ZtZ = crossprod.ZtZ
    v = state.cu - (state.RZX @ state.beta if state.beta.size else 0.0)
    u = np.asarray(chol.solve_Lt(v)).ravel()
    b = Lam(u)
    r = crossprod.Zty - (crossprod.ZtX @ state.beta if state.beta.size else 0.0) - ZtZ @ b
    rows, cols, lind = relcov.Lrows, relcov.Lcols, relcov.Lind
    dr2 = -2.0 * np.bincount(lind, weights=r[rows] * u[cols], minlength=ntheta)
    dlogRX = np.zeros(ntheta)
    if reml and crossprod.p:
        C = np.asarray(chol.solve_Lt(state.RZX)).reshape(relcov.q, -1)
        H = crossprod.ZtX - ZtZ @ Lam(C)
        G = Lam(np.asarray(H), transpose=True)
        Rinv = sla.solve_triangular(state.RX, np.eye(state.RX.shape[0]), lower=False)
        GK = G @ (Rinv @ Rinv.T)
        dlogRX = -2.0 * np.bincount(lind, weights=np.einsum("ij,ij->i", GK[cols], H[rows]), minlength=ntheta)
    return g, dlogRX, dr2


def dlogdet_M(theta, relcov, chol) -> np.ndarray:
    """d log|M| / dtheta_i = tr(M^-1 dM_i), from diag(M^-1) when Lambda is diagonal and the
    factor gives it cheaply, else from the selected inverse on M's pattern."""
    ntheta = theta.size
    if relcov.diagonal_Lambda and ntheta and theta.min() >= DIAG_TRACE_MIN:
        diag = chol.inverse_diagonal()
        if diag is not None:
            lind = relcov.Lind
            qi = np.bincount(lind, minlength=ntheta)
            tr = np.bincount(lind, weights=diag[relcov.Lrows], minlength=ntheta)
            return 2.0 / theta * (qi - tr)
    return trace_dM(chol.selected_inverse(relcov.M_indptr, relcov.M_indices), relcov, theta)


def trace_dM(S_M, relcov, theta) -> np.ndarray:
    """tr(S dM_i) for S symmetric given on M's stored lower pattern (relcov order): each
    contribution A_ab Lambda_ar Lambda_bc to M_rc (r >= c) enters the symmetric trace twice
    when r != c."""
    w = relcov.A_data[relcov.src] * S_M[relcov.target] * relcov.mult[relcov.target]
    nt = theta.size
    return (np.bincount(relcov.t1, weights=w * theta[relcov.t2], minlength=nt)
            + np.bincount(relcov.t2, weights=w * theta[relcov.t1], minlength=nt))
