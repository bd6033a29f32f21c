"""Penalized least squares at theta: the profiled solution of Henderson's equations.

    P M P' = L L',            M = Lambda' Z'WZ Lambda + I
    c_u  = L^-1 P Lambda' Z'Wy
    R_ZX = L^-1 P Lambda' Z'WX
    R_X' R_X = X'WX - R_ZX' R_ZX
    c_b  = R_X^-T (X'Wy - R_ZX' c_u),   beta = R_X^-1 c_b
    u    = P' L^-T (c_u - R_ZX beta),   b = Lambda u
    r2   = y'Wy - c_u'c_u - c_b'c_b      (penalized weighted residual sum of squares)

All work is q x (p+1) or p x p: nothing here touches the n rows.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import scipy.linalg as sla

from ..errors import NumericalError


@dataclass(eq=False)
class PLSState:
    """The solution at theta, with the factor it was computed with (``factor`` holds L at
    this theta for as long as the state lives: engine.DenseEngine leases it)."""

    theta: np.ndarray
    ldL2: float          # log|L|^2 = log|M|
    ldRX2: float         # log|R_X|^2
    r2: float
    beta: np.ndarray
    cu: np.ndarray
    RZX: np.ndarray
    RX: np.ndarray       # upper triangular p x p
    factor: object = field(default=None, repr=False)


def pls_solve(theta, crossprod, relcov, chol) -> PLSState:
    theta = np.asarray(theta, dtype=float)
    if hasattr(chol, "factorize_values"):            # the blocked factor reads M's values only
        chol.factorize_values(relcov.M_values(theta))
    else:
        chol.factorize(relcov.M(theta))
    rhs = np.column_stack([crossprod.ZtX, crossprod.Zty])
    sol = chol.solve_L(lambda_times(relcov, theta, rhs, transpose=True))
    RZX, cu = sol[:, :-1], sol[:, -1]
    p = crossprod.p
    if p:
        XtX = crossprod.XtX - RZX.T @ RZX
        RX, info = sla.lapack.dpotrf(XtX, lower=0, clean=1)     # LAPACK directly: no wrapper per call
        if info != 0:
            raise NumericalError(
                "X'V^-1X is not positive definite at this theta: the fixed-effects columns are "
                "(numerically) collinear given the random effects; remove redundant columns"
            ) from None
        cb = trsolve(RX, crossprod.Xty - RZX.T @ cu, trans=1)
        beta = trsolve(RX, cb, trans=0)
        ldRX2 = 2.0 * float(np.log(np.diag(RX)).sum())
    else:
        RX, cb, beta, ldRX2 = np.zeros((0, 0)), np.zeros(0), np.zeros(0), 0.0
    r2 = float(crossprod.yty - cu @ cu - cb @ cb)
    return PLSState(np.array(theta, float), chol.logdet(), ldRX2, max(r2, 0.0), beta, cu, RZX, RX, chol)


def trsolve(R: np.ndarray, b: np.ndarray, trans: int = 0) -> np.ndarray:
    """R^-1 b (trans 0) or R^-T b (trans 1), R upper triangular: LAPACK dtrtrs directly
    (scipy.linalg.solve_triangular's checks cost more than the solve at small p)."""
    x, info = sla.lapack.dtrtrs(R, b, lower=0, trans=trans)
    if info != 0:
        raise NumericalError(f"a triangular solve failed (LAPACK dtrtrs info={info}): singular R_X")
    return x


def lambda_times(relcov, theta, B: np.ndarray, transpose: bool = False) -> np.ndarray:
    """Lambda(theta) B (``transpose``: Lambda' B), with no sparse matrix built: a row scaling
    when Lambda is diagonal, else a scatter-add over its nonzeros per column of B, in stored
    order (a scipy matrix built per call cost more than the product on small models)."""
    theta = np.asarray(theta, dtype=float)
    if relcov.diagonal_Lambda:
        lam = np.zeros(relcov.q)
        lam[relcov.Lrows] = theta[relcov.Lind]
        return lam[:, None] * B if B.ndim == 2 else lam * B
    B = np.asarray(B, dtype=float)
    rows, cols = (relcov.Lcols, relcov.Lrows) if transpose else (relcov.Lrows, relcov.Lcols)
    vals = theta[relcov.Lind]
    column = lambda b: np.bincount(rows, weights=vals * b[cols], minlength=relcov.q)
    if B.ndim == 1:
        return column(B)
    return np.column_stack([column(B[:, j]) for j in range(B.shape[1])]) if B.shape[1] else np.zeros((relcov.q, 0))


def random_effects(state: PLSState, relcov) -> tuple[np.ndarray, np.ndarray]:
    """(u, b): spherical and original-scale conditional modes at the state's theta."""
    v = state.cu - (state.RZX @ state.beta if state.beta.size else 0.0)
    u = np.asarray(state.factor.solve_Lt(v)).ravel()
    return u, lambda_times(relcov, state.theta, u)
