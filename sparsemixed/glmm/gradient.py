"""The gradient of the Laplace deviance in beta at fixed theta, and beta profiled out by Newton.

    D(beta) = -2 log p(y | u-hat) + ||u-hat||^2 + log|M|,   M = Lambda'Z'W Z Lambda + I,
    eta = offset + X beta + Z Lambda u-hat(beta),  W = diag(w(eta)) (Fisher weights)

    dD/dbeta = X' d  +  sum_i h_i w'_i J_i,     d_i = -2 prior_w_i (y_i - mu_i) mu_eta_i / V(mu_i)
    h_i = (Z Lambda M^-1 Lambda'Z')_ii,    J = d eta / d beta = X - Z Lambda M^-1 Lambda'Z'W X

(u-hat minimises the first two terms, so they contribute only their partial derivative;
du/dbeta = -M^-1 Lambda'Z'WX holds exactly when the observed and Fisher weights agree:
canonical links, binomial-logit and Poisson-log.  h needs M^-1 on the pairs of columns
that share a row: the selected inverse on M's pattern.)  For scalar terms (Lambda
diagonal) and canonical links :func:`profile_beta` minimises D over beta by Newton steps
with the Fisher Hessian 2 R_X'R_X and a line search, so the outer optimizer sees theta
alone (glmm/fit.py); other models keep glmer's joint derivative-free search.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from ..errors import NumericalError

MAX_NEWTON = 30
NEWTON_TOL = 1e-10        # Newton decrement g'H^-1 g at which beta counts as optimal
CANONICAL = {("binomial", "logit"), ("poisson", "log")}


def supported(model) -> bool:
    """Canonical link, every term scalar (Lambda diagonal), Laplace (nAGQ <= 1)."""
    return ((model.family.name, model.family.link.name) in CANONICAL and model.relcov.diagonal_Lambda
            and model.p > 0)


class Leverages:
    """h_i = sum_{a, b in row i} z_ia theta_a z_ib theta_b (M^-1)_ab for a diagonal Lambda:
    for each of WeightedProducts' row pairs with c_a <= c_b, the position of (c_b, c_a) in
    M's lower CSC data (relcov's diagonal layout takes column c from row c of Z'Z)."""

    def __init__(self, weighted, relcov):
        A = weighted.A
        inv_src = np.full(A.nnz, -1, dtype=np.int64)
        inv_src[relcov.src] = np.arange(relcov.src.size)
        Z = weighted.Z
        cols = Z.indices.astype(np.int64)
        # each row's pairs in WeightedProducts order: a over the row's entries, then b
        ca, cb = _pair_columns(Z.indptr.astype(np.int64), cols, weighted.row_ptr)
        upper = ca <= cb
        self.mpos = np.where(upper, inv_src[weighted.pos], -1)
        if np.any(upper & (self.mpos < 0)):
            raise NumericalError("a pair of random-effects columns is missing from M's pattern")
        self.coef = np.where(upper, np.where(ca == cb, 1.0, 2.0), 0.0) * weighted.prod
        lind = relcov.Lind                   # theta index of each column (Lambda diagonal: Lrows = 0..q-1)
        self.ta, self.tb = lind[ca], lind[cb]
        self.row_ptr = weighted.row_ptr

    def __call__(self, theta, Minv) -> np.ndarray:
        return _leverage(self.row_ptr, self.mpos, self.coef, self.ta, self.tb, np.asarray(theta, float), Minv)


@njit(cache=True)
def _pair_columns(indptr, cols, row_ptr):
    ca = np.empty(row_ptr[-1], dtype=np.int64)
    cb = np.empty(row_ptr[-1], dtype=np.int64)
    k = 0
    for i in range(indptr.size - 1):
        for ja in range(indptr[i], indptr[i + 1]):
            for jb in range(indptr[i], indptr[i + 1]):
                ca[k] = cols[ja]
                cb[k] = cols[jb]
                k += 1
    return ca, cb


@njit(cache=True)
def _leverage(row_ptr, mpos, coef, ta, tb, theta, Minv):
    n = row_ptr.size - 1
    h = np.zeros(n)
    for i in range(n):
        s = 0.0
        for k in range(row_ptr[i], row_ptr[i + 1]):
            if mpos[k] >= 0:
                s += coef[k] * theta[ta[k]] * theta[tb[k]] * Minv[mpos[k]]
        h[i] = s
    return h


def _weights(resp, eta):
    link, fam = resp.family.link, resp.family
    d = link.mu_eta(eta)
    return resp.prior_weights * d * d / fam.variance(link.linkinv(eta))


def beta_gradient(model, mode, leverages: Leverages) -> tuple[np.ndarray, object]:
    """(dD/dbeta at the mode, the joint PLS state at the mode's weights)."""
    resp, wp, relcov = model.response, model.weighted, model.relcov
    eta, mu = mode.eta, mode.mu
    link, fam = resp.family.link, resp.family
    d = -2.0 * resp.prior_weights * (resp.y - mu) * link.mu_eta(eta) / fam.variance(mu)
    g = wp.X.T @ d
    # the joint system at the mode's weights: R_ZX = L^-1 P Lambda'Z'WX (and R_X for the Hessian)
    w = mode.weights
    _, _, z = resp.working(eta)
    eng = model.engine.reweighted(wp.cross_products(w, z, with_X=True))
    st = eng.solve(mode.theta, reml=False)
    f = st.factor
    Minv = f.selected_inverse(relcov.M_indptr, relcov.M_indices)
    h = leverages(mode.theta, Minv)
    # w'(eta) by a central difference (w is smooth; relative error ~1e-10)
    step = 1e-5 * (1.0 + np.abs(eta))
    dw = (_weights(resp, eta + step) - _weights(resp, eta - step)) / (2 * step)
    # J = X - Z Lambda M^-1 Lambda'Z'WX = X - Z Lambda P'L^-T R_ZX
    MinvB = np.asarray(f.solve_Lt(st.RZX))
    J = wp.X - np.asarray(wp.Z @ (relcov.Lambda(mode.theta) @ MinvB))
    g = g + J.T @ (h * dw)
    return g, st


def profile_beta(model, theta, beta0, u0, leverages: Leverages):
    """The mode at theta with beta minimising the Laplace deviance (Newton with the Fisher
    Hessian 2 R_X'R_X and step halving), from beta0."""
    beta = np.asarray(beta0, dtype=float)
    mode = model.mode(theta, beta, u0=u0)
    for _ in range(MAX_NEWTON):
        g, st = beta_gradient(model, mode, leverages)
        RX = st.RX
        step = np.linalg.solve(RX, np.linalg.solve(RX.T, g)) / 2.0
        decrement = float(g @ step)
        if decrement < NEWTON_TOL:
            break
        t = 1.0
        for _ in range(30):
            cand = model.mode(theta, beta - t * step, u0=mode.u)
            if cand.laplace <= mode.laplace:
                break
            t /= 2
        else:
            break
        beta, mode = beta - t * step, cand
    return mode
