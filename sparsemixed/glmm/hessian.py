"""The Hessian of the deviance in (theta, beta).

Canonical links at nAGQ = 1: central differences of the analytic gradient
(glmm/gradient.py), symmetrised, 2 d gradients for d = ntheta + p parameters,

    H_.j = (g(x + h_j e_j) - g(x - h_j e_j)) / 2 h_j,   h_j = GRAD_STEP max(1, |x_j|)

(a one-sided second-order difference where theta_j - h_j would cross its bound);
otherwise central differences of the deviance with one Richardson step:

    H_ii = (f(x + h e_i) - 2 f(x) + f(x - h e_i)) / h^2
    H_ij = (f(x + h e_i + h e_j) - f(x + h e_i - h e_j) - f(x - h e_i + h e_j) + f(x - h e_i - h e_j)) / 4h^2
    H    = (4 H(h/2) - H(h)) / 3                                   (error O(h^4))

f is the Laplace (or AGQ) deviance with PIRLS converged to 1e-10, so that its values are
accurate far below h^2; glmer's default vcov is 2 H^-1 (beta block), from a similar
finite-difference Hessian of its less tightly converged objective.
"""
from __future__ import annotations

import numpy as np

STEP = 4e-3
GRAD_STEP = 1e-4


def _central(f, x, h):
    d = x.size
    f0 = f(x)
    H = np.empty((d, d))
    E = np.eye(d) * h
    fp = np.array([f(x + E[i]) for i in range(d)])
    fm = np.array([f(x - E[i]) for i in range(d)])
    for i in range(d):
        H[i, i] = (fp[i] - 2 * f0 + fm[i]) / h**2
        for j in range(i):
            H[i, j] = H[j, i] = (f(x + E[i] + E[j]) - f(x + E[i] - E[j]) - f(x - E[i] + E[j])
                                 + f(x - E[i] - E[j])) / (4 * h**2)
    return H


def deviance_hessian(model, theta, beta, u, nAGQ: int, step: float = STEP) -> np.ndarray:
    from . import gradient

    nt = theta.size
    if nAGQ == 1 and gradient.supported(model):
        from ..numdiff import hessian_from_gradient

        def g(x):
            m = model.mode(x[:nt], x[nt:], u0=u)
            lg = gradient.laplace_gradient(model, m)
            return np.concatenate([lg.theta, lg.beta])

        x = np.concatenate([theta, beta]).astype(float)
        lower = np.concatenate([model.lower, np.full(beta.size, -np.inf)])
        return hessian_from_gradient(g, x, step=GRAD_STEP, lower=lower)

    def f(x):
        m = model.mode(x[:nt], x[nt:], u0=u)
        if nAGQ > 1:
            from .agq import agq_deviance

            return agq_deviance(model, m, nAGQ)
        return m.laplace

    x = np.concatenate([theta, beta]).astype(float)
    return (4 * _central(f, x, step / 2) - _central(f, x, step)) / 3
