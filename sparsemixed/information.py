"""The average information (AI) matrix: a Hessian of the profiled criterion from solves only.

With V = sigma^2 H(theta), H = W^-1 + Z Lambda Lambda' Z', the REML (or ML) log-likelihood
in psi = (theta, sigma^2) has the average information matrix (Gilmour, Thompson and
Cullis 1995; the mean of the observed and the expected information, whose difference has
expectation zero)

    AI_ij = 1/2 f_i' P f_j,      f_i = V_i P y,      P = V^-1 - V^-1 X (X'V^-1X)^-1 X'V^-1.

At the PLS solution, with u the spherical modes, r = y - X beta - Z Lambda u and
zeta = Z'W r (so Lambda' zeta = u, and P y = W r / sigma^2):

    f_theta_i = Z a_i,    a_i = dLambda_i u + Lambda dLambda_i' zeta
    f_sigma2  = (y - X beta) / sigma^2

Each f is [Z X y] c for a short c, so every product comes from the cross-products:
with t_f = L^-1 P Lambda' Z'W f and s_f = R_X^-T (X'W f - R_ZX' t_f),

    sigma^2 f'P g = f'W g - t_f' t_g - s_f' s_g

(one solve with L for all the f at once; nothing touches the n rows).  Profiling sigma^2
out of -2 log L (the criterion) is a Schur complement:

    Hessian of the criterion in theta  ~  2 (AI_tt - AI_ts AI_ss^-1 AI_st).

It is positive semidefinite, and close to the criterion's Hessian near the optimum (InstEval:
every entry within 4%); optimize's "scoring" method takes Newton steps with it.  ML uses
the same P (the fixed effects' share of the ML information is O(p / n)).
"""
from __future__ import annotations

import numpy as np

from .gradient import _sparse_times
from .linalg.pls import lambda_times, random_effects, trsolve
from .objective import sigma2 as profiled_sigma2


def working_coefficients(state, crossprod, relcov) -> np.ndarray:
    """(A, Z'W(y - X beta)) at the state's theta: A the q x ntheta matrix of the a_i."""
    theta = state.theta
    q, ntheta = relcov.q, theta.size
    u, b = random_effects(state, relcov)
    Zr = crossprod.Zty - crossprod.ZtX @ state.beta                       # Z'W(y - X beta)
    zeta = Zr - np.asarray(crossprod.ZtZ @ b, dtype=float).ravel()
    rows, cols, lind = relcov.Lrows, relcov.Lcols, relcov.Lind
    A = np.zeros((q, ntheta))
    np.add.at(A, (rows, lind), u[cols])                   # dLambda_i u
    B = np.zeros((q, ntheta))
    np.add.at(B, (cols, lind), zeta[rows])                # dLambda_i' zeta
    return A + lambda_times(relcov, theta, B), Zr


def average_information(state, crossprod, relcov, reml: bool) -> np.ndarray:
    """The (ntheta + 1) x (ntheta + 1) AI matrix in (theta, sigma^2) at the state."""
    p, ntheta = crossprod.p, state.theta.size
    sigma2 = profiled_sigma2(state, crossprod.n, p, reml)
    beta = state.beta
    A, Zr = working_coefficients(state, crossprod, relcov)
    ZWA = _sparse_times(crossprod.ZtZ, A)                            # Z'W f_i
    ZWf = np.column_stack([ZWA, Zr / sigma2])
    G = np.empty((ntheta + 1, ntheta + 1))                           # f'W g
    G[:ntheta, :ntheta] = A.T @ ZWA
    G[:ntheta, ntheta] = G[ntheta, :ntheta] = (A.T @ Zr) / sigma2
    Xr = crossprod.Xty - crossprod.XtX @ beta                                  # X'W(y - X beta)
    G[ntheta, ntheta] = (crossprod.yty - 2.0 * beta @ crossprod.Xty + beta @ crossprod.XtX @ beta) / sigma2**2
    t = np.asarray(state.factor.solve_L(lambda_times(relcov, state.theta, ZWf, transpose=True)),
                   dtype=float).reshape(relcov.q, ntheta + 1)
    G -= t.T @ t
    if p:
        XWf = np.column_stack([np.asarray(crossprod.ZtX.T @ A).reshape(p, ntheta), Xr / sigma2])
        s = trsolve(state.RX, XWf - state.RZX.T @ t, trans=1)
        G -= s.T @ s
    return (G + G.T) / (4.0 * sigma2)


def criterion_hessian(state, crossprod, relcov, reml: bool) -> np.ndarray:
    """The AI approximation of the Hessian of the profiled criterion (-2 log L, sigma^2
    profiled out) with respect to theta."""
    AI = average_information(state, crossprod, relcov, reml)
    k = AI.shape[0] - 1
    H = AI[:k, :k] - np.outer(AI[:k, k], AI[k, :k]) / AI[k, k]
    return (H + H.T)     # 2 x the Schur complement, symmetric
