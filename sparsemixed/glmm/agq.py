"""Adaptive Gauss-Hermite quadrature for a model with one scalar random-effects term.

Given beta, the groups are independent: with g_j(u) = sum_{i in j} d_i(u) + u^2 (d the
deviance residuals), u-hat_j its minimiser and L_jj = sqrt(M_jj) at the mode,

    -2 log I_j = g_j(u-hat_j) + log L_jj^2 - 2 log sum_k w_k exp(-(g_j(u-hat_j + z_k / L_jj) - g_j(u-hat_j) - z_k^2) / 2)

(z_k, w_k: Gauss-Hermite nodes and weights for the standard normal density).  Summed over
the groups this is glmer's nAGQ > 1 value

    sum d_i + ||u-hat||^2 + log|L|^2 - 2 sum_j log(multiplier_j)

which, being built on deviance residuals, leaves out the saturated model's -2 log-likelihood
(GLMResponse.saturated_minus2loglik: 83.957 for lme4's cbpp); nAGQ = 1 gives the Laplace
value on the same footing.  glmer's printed -2logLik and AIC for nAGQ > 1 use this value;
we report it alike and keep the constant apart (``GlmerResult.minus2loglik_full``).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np


@lru_cache(maxsize=64)
def gauss_hermite(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[f(Z)], Z ~ N(0, 1) (probabilists' Hermite rule)."""
    z, w = np.polynomial.hermite_e.hermegauss(n)
    return z, w / w.sum()


def agq_deviance(model, mode, nAGQ: int) -> float:
    resp = model.response
    term = model.terms[0]
    Z = model.weighted.Z
    group = Z.indices.astype(np.int64)            # one entry per row: its level
    zval = Z.data
    theta = float(mode.theta[0])
    J = term.nlevels
    # M_jj = theta^2 sum_{i in j} w_i z_i^2 + 1 at the mode's working weights
    Mjj = theta * theta * np.bincount(group, weights=mode.weights * zval * zval, minlength=J) + 1.0
    L = np.sqrt(Mjj)
    u = mode.u

    def g(uu):
        eta = mode.eta + zval * theta * (uu - u)[group]
        d = resp.family.dev_resids(resp.y, resp.mu(eta), resp.prior_weights)
        return np.bincount(group, weights=d, minlength=J) + uu * uu

    g0 = g(u)
    z, w = gauss_hermite(int(nAGQ))
    mult = np.zeros(J)
    for zk, wk in zip(z, w):
        mult += wk * np.exp(-(g(u + zk / L) - g0 - zk * zk) / 2.0)
    return float(g0.sum() + 2.0 * np.log(L).sum() - 2.0 * np.log(mult).sum())
