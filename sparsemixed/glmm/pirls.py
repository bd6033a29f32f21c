"""Penalized iteratively reweighted least squares and the Laplace deviance.

At theta (and beta, for nAGQ >= 1), the conditional mode u minimises the penalized deviance

    pdev(u [, beta]) = sum_i d_i(y_i, mu_i) + ||u||^2,   mu = linkinv(offset + X beta + Z Lambda u)

by Newton steps, each a weighted penalized least-squares solve on the engine (the working
weights w and response z of response.GLMResponse; the same symbolic analysis every time,
glmm/weighted.py supplies the values), halving the step while pdev does not decrease.
At the mode, with L the factor of Lambda'Z'WZ Lambda + I at the mode's weights,

    Laplace deviance  = -2 log p(y | u) + ||u||^2 + log|L|^2          (lme4's glmer, nAGQ = 1)

``joint=True`` updates beta with u (lme4's nAGQ = 0, MixedModels.jl's fast=true):
beta is then the PIRLS solution at theta, not a parameter.  With ``linear`` = c as well,
PIRLS minimises pdev(u, beta) + c'beta (the normal equations' X'Wz less c/2): with c the
log|L|^2 part of the Laplace deviance's beta-gradient, its beta is the Laplace optimum to
the extent c stays put (glmm/gradient.py profiles beta this way).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from ..errors import NumericalError
from ..linalg.pls import lambda_times

MAX_ITER = 100
MAX_HALVINGS = 20
STILL = 1e-13        # a last step that moves eta less leaves the factor as it is
TOL = 1e-13           # relative change of pdev at which PIRLS stops (lme4's tolPwrss is 1e-7)
NOISE = 1e-13         # a full step that raises pdev by less (relative) is taken: at the mode its gain is
                      # below the last digits of pdev (a few ulp: kernels._deviance sums compensated)


@dataclass(eq=False)
class Mode:
    """The conditional mode at (theta, beta) and what the Laplace deviance needs."""

    theta: np.ndarray
    beta: np.ndarray
    u: np.ndarray
    b: np.ndarray
    eta: np.ndarray
    mu: np.ndarray
    weights: np.ndarray       # working weights at the mode
    ldL2: float               # log|L|^2 at the mode's weights
    sqrL: float               # ||u||^2
    cond_m2ll: float          # -2 log p(y | u)
    deviance_sum: float       # sum of deviance residuals (glmer's deviance())
    iterations: int
    halvings: int
    state: object = field(default=None, repr=False)   # the engine's PLS state at the mode's weights
    engine: object = field(default=None, repr=False)  # the reweighted engine of that state

    @property
    def laplace(self) -> float:
        return self.cond_m2ll + self.sqrL + self.ldL2


def pirls(engine, rows, theta, beta, u0=None, joint: bool = False, tol: float = TOL,
          max_iter: int = MAX_ITER, linear=None, slack: float = 0.0) -> Mode:
    """The conditional mode (and, ``joint``, beta) at theta by PIRLS from ``u0`` (zeros);
    ``rows`` does the passes over the rows (glmm/rows.py: in memory or on Dask);
    ``linear``: c of pdev + c'beta (joint only); ``slack``: a change of pdev (absolute) at
    which PIRLS may stop before the relative ``tol`` (a profile during the search that needs
    the deviance to about 100 times that: glmm/gradient.py PIRLS_SHARE)."""
    theta = np.asarray(theta, dtype=float)
    beta = np.asarray(beta, dtype=float)
    c = None if linear is None or not joint else np.asarray(linear, dtype=float)
    extra = (lambda b: 0.0) if c is None else (lambda b: float(c @ b))
    q = engine.relcov.q
    Lam = lambda x: lambda_times(engine.relcov, theta, x)        # Lambda x
    u = np.zeros(q) if u0 is None else np.asarray(u0, dtype=float).copy()
    cur = rows.evaluate(beta, Lam(u), joint)
    pdev = cur.deviance + u @ u + extra(beta)
    if not np.isfinite(pdev):
        raise NumericalError("the penalized deviance is not finite at the start of PIRLS")
    halvings = 0
    for it in range(1, max_iter + 1):
        cp, w = rows.products(cur, joint)
        eng = engine.reweighted(cp if c is None else dataclasses.replace(cp, Xty=cp.Xty - c / 2))
        st = eng.solve(theta, reml=False)
        u_new, _ = eng.random_effects(st)
        beta_new = st.beta if joint else beta
        # step halving on the penalized deviance
        for h in range(MAX_HALVINGS + 1):
            new = rows.evaluate(beta_new, Lam(u_new), joint)
            pdev_new = new.deviance + u_new @ u_new + extra(beta_new)
            if np.isfinite(pdev_new) and pdev_new <= pdev + NOISE * abs(pdev) + 1e-300:
                break
            halvings += 1
            u_new = 0.5 * (u + u_new)
            beta_new = 0.5 * (beta + beta_new) if joint else beta
        else:
            raise NumericalError(
                f"PIRLS could not lower the penalized deviance at theta = {np.round(theta, 6).tolist()} "
                f"(iteration {it}, {MAX_HALVINGS} step halvings): the model may be too complex for the data, "
                "or the response separates the fixed effects")
        change = pdev - pdev_new
        moved = rows.moved(cur, new)
        u, beta, cur, pdev = u_new, beta_new, new, pdev_new
        if change <= max(tol * (abs(pdev) + tol), slack) and h == 0:
            break           # (a halved step is not a converged one: its u is off by the rest)
    else:
        raise NumericalError(f"PIRLS did not converge in {max_iter} iterations at theta = "
                             f"{np.round(theta, 6).tolist()} (last change of the penalized deviance "
                             f"{change:.3g}); the model may be too complex for the data")
    # the factor at the mode's own weights, the Laplace approximation's curvature: the last
    # solve's, when its step moved eta by at most STILL (log|L| then moves by ~ STILL tr(H))
    if moved > STILL:
        cp, w = rows.products(cur, joint)
        eng = engine.reweighted(cp)
        st = eng.solve(theta, reml=False)
    return Mode(theta, beta, u, cur.b, cur.eta, cur.mu, w, float(st.ldL2), float(u @ u), rows.minus2loglik(cur),
                cur.deviance, it, halvings, st, eng)
