"""The Hessian of the deviance in (theta, beta), by central differences with one Richardson step.

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
    nt = theta.size

    def f(x):
        m = model.mode(x[:nt], x[nt:], u0=u)
        if nAGQ > 1:
            from .agq import agq_deviance

            return agq_deviance(model, m, nAGQ)
        return m.laplace

    x = np.concatenate([theta, beta]).astype(float)
    return (4 * _central(f, x, step / 2) - _central(f, x, step)) / 3
