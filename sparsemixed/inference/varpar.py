"""Approximate sampling covariance of the variance parameters (sigma, theta) of an lmer fit.

With beta profiled out, the deviance as a function of (sigma, theta) is

    ML:   d(sigma, theta) = log|M| + n log(2 pi sigma^2) + r2(theta) / sigma^2 - sum log w
    REML: d(sigma, theta) = log|M| + log|R_X|^2 + (n - p) log(2 pi sigma^2) + r2(theta) / sigma^2
                            - sum log w

(M = L L', r2 the penalised weighted RSS).  At sigma^2 = r2 / nu, nu = n (ML) or n - p
(REML), it equals the profiled criterion of objective.py.  Its gradient is analytic:

    dd/dsigma   = 2 nu / sigma - 2 r2 / sigma^3
    dd/dtheta_i = d log|M| + d log|R_X|^2 (REML only) + d r2 / sigma^2     (gradient_parts)

H = Hessian of d: central differences of that gradient (numdiff.hessian_from_gradient),
one-sided where a step would cross a bound (sigma >= 0, diagonal theta >= 0).
Cov(sigma-hat, theta-hat) ~ 2 H^-1, as MixedModels.jl and lme4 (vcov(full = TRUE)) use.

Boundary rule.  A diagonal theta_k below BOUNDARY_TOL (lme4's isSingular tolerance) is
on its bound, where the quadratic approximation does not hold: its row and column of the
covariance are NaN, the other entries are 2 (H_II)^-1 over the interior parameters I
(their covariance with the boundary parameters held at 0), and a VarParWarning says so.
If H_II is not positive definite the whole covariance is NaN (with a warning); nothing
singular is inverted.  The Hessian is always returned, with ``positive_definite``.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np

from ..diagnostics import SINGULAR_TOL
from ..errors import SparseMixedWarning
from ..gradient import gradient_parts
from ..numdiff import DEFAULT_STEP, hessian_from_gradient

BOUNDARY_TOL = SINGULAR_TOL        # lme4's isSingular tolerance


class VarParWarning(SparseMixedWarning):
    """The covariance of the variance parameters is (partly) undefined: boundary or not PD."""


@dataclass
class VarParCov:
    names: list
    x: np.ndarray                 # (sigma, theta)
    hessian: np.ndarray
    cov: np.ndarray               # 2 H^-1, NaN rows/columns for boundary parameters
    boundary: np.ndarray          # bool, per parameter
    positive_definite: bool       # of the full Hessian
    note: str = ""


def theta_names(terms) -> list:
    """lme4's getME(fit, "theta") names: "g.c" on the diagonal, "g.row.col" below it."""
    out = []
    for t in terms:
        rows, cols = t.cov.tril_indices()
        for r, c in zip(rows, cols):
            out.append(f"{t.group.name}.{t.columns[r]}" if r == c
                       else f"{t.group.name}.{t.columns[r]}.{t.columns[c]}")
    return out


def _nu(model, reml: bool) -> int:
    return model.nobs - (model.p if reml else 0)


def deviance(model, sigma: float, theta, reml: bool) -> float:
    """d(sigma, theta)."""
    s = model.pls(theta)
    nu = _nu(model, reml)
    val = s.ldL2 + nu * math.log(2 * math.pi * sigma ** 2) + s.r2 / sigma ** 2 - model.crossprod.sum_log_w
    return val + s.ldRX2 if reml else val


def gradient(model, sigma: float, theta, reml: bool) -> np.ndarray:
    """Analytic gradient of d with respect to (sigma, theta)."""
    s = model.pls(theta)
    dlogM, dlogRX, dr2 = gradient_parts(s, model.crossprod, model.relcov, reml)
    nu = _nu(model, reml)
    dsigma = 2 * nu / sigma - 2 * s.r2 / sigma ** 3
    return np.concatenate([[dsigma], dlogM + dlogRX + dr2 / sigma ** 2])


def hessian(model, sigma: float, theta, reml: bool, step: float = DEFAULT_STEP) -> np.ndarray:
    x = np.concatenate([[sigma], np.asarray(theta, float)])
    lower = np.concatenate([[0.0], model.lower])
    return hessian_from_gradient(lambda v: gradient(model, v[0], v[1:], reml), x, step, lower)


def varpar_cov(model, sigma: float, theta, reml: bool, step: float = DEFAULT_STEP) -> VarParCov:
    """Hessian and covariance 2 H^-1 of (sigma, theta), with the boundary rule above."""
    theta = np.asarray(theta, float)
    x = np.concatenate([[sigma], theta])
    names = ["sigma"] + theta_names(model.terms)
    H = hessian(model, sigma, theta, reml, step)
    boundary = np.concatenate([[False], (model.lower == 0) & (theta < BOUNDARY_TOL)])
    pd_full = _is_pd(H)
    cov = np.full_like(H, np.nan)
    inner = np.flatnonzero(~boundary)
    notes = []
    if boundary.any():
        notes.append(f"parameters on the boundary ({', '.join(n for n, b in zip(names, boundary) if b)} "
                     f"< {BOUNDARY_TOL:g}, a singular fit): their rows and columns are NaN, the rest "
                     "is 2 H^-1 over the interior parameters with these held at 0")
    Hi = H[np.ix_(inner, inner)]
    if _is_pd(Hi):
        cov[np.ix_(inner, inner)] = 2 * np.linalg.inv(Hi)
    else:
        notes.append("the Hessian of the deviance over the interior parameters is not positive "
                     "definite (not at a minimum?): covariance not computed (all NaN)")
    note = "; ".join(notes)
    if note:
        warnings.warn(f"covariance of the variance parameters: {note}", VarParWarning, stacklevel=3)
    return VarParCov(names, x, H, cov, boundary, pd_full, note)


def _is_pd(H: np.ndarray) -> bool:
    if H.size == 0:
        return True
    try:
        np.linalg.cholesky(H)
    except np.linalg.LinAlgError:
        return False
    ev = np.linalg.eigvalsh(H)
    return bool(ev[0] > 1e-12 * ev[-1])
