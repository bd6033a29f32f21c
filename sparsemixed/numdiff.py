"""Finite-difference Hessians from analytic gradients.

    H[:, j] ~ (g(x + h_j e_j) - g(x - h_j e_j)) / (2 h_j),   H := (H + H') / 2

with h_j = step * max(|x_j|, 1) (central differences: error O(h^2) on top of the
gradient's rounding error / h).  Used for sampling covariances of variance parameters,
as lme4 and MixedModels.jl do, where an analytic second derivative would need products
of M^-1 beyond its selected inverse.
"""
from __future__ import annotations

import numpy as np

DEFAULT_STEP = 1e-4


def hessian_from_gradient(grad, x, step: float = DEFAULT_STEP, lower=None, g0=None) -> np.ndarray:
    """Symmetrised central-difference Jacobian of ``grad`` at ``x``.

    Where ``x_j - h_j`` would cross ``lower[j]`` a one-sided (forward, second-order)
    difference is used instead, so the gradient is never evaluated outside the bounds.
    With ``g0`` (the gradient at x) given: forward differences (g(x + h e_j) - g0) / h,
    k gradients instead of 2k, first-order accurate (enough for a convergence check).
    """
    x = np.asarray(x, dtype=float)
    k = x.size
    H = np.empty((k, k))
    if g0 is not None:
        g0 = np.asarray(g0, dtype=float)
        for j in range(k):
            h = step * max(abs(x[j]), 1.0)
            e = np.zeros(k)
            e[j] = h
            H[:, j] = (np.asarray(grad(x + e), dtype=float) - g0) / h
        return (H + H.T) / 2
    for j in range(k):
        h = step * max(abs(x[j]), 1.0)
        e = np.zeros(k)
        e[j] = h
        if lower is not None and np.isfinite(lower[j]) and x[j] - h < lower[j]:
            if g0 is None:
                g0 = np.asarray(grad(x), dtype=float)
            g1 = np.asarray(grad(x + e), dtype=float)
            g2 = np.asarray(grad(x + 2 * e), dtype=float)
            H[:, j] = (-3 * g0 + 4 * g1 - g2) / (2 * h)
        else:
            H[:, j] = (np.asarray(grad(x + e), dtype=float) - np.asarray(grad(x - e), dtype=float)) / (2 * h)
    return (H + H.T) / 2
