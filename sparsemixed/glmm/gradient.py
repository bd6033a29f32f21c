"""The gradient of the Laplace deviance in beta at fixed theta, and beta profiled out by Newton.

    D(beta) = -2 log p(y | u-hat) + ||u-hat||^2 + log|M|,   M = Lambda'Z'W Z Lambda + I,
    eta = offset + X beta + Z Lambda u-hat(beta),  W = diag(w(eta)) (Fisher weights)

    dD/dbeta = X' d  +  sum_i h_i w'_i J_i,     d_i = -2 prior_w_i (y_i - mu_i) mu_eta_i / V(mu_i)
    h_i = (Z Lambda M^-1 Lambda'Z')_ii,    J = d eta / d beta = X - Z Lambda M^-1 Lambda'Z'W X

(u-hat minimises the first two terms, so they contribute only their partial derivative;
du/dbeta = -M^-1 Lambda'Z'WX holds exactly when the observed and Fisher weights agree:
canonical links, binomial-logit and Poisson-log.  h needs M^-1 on the pairs of columns
that share a row of Z Lambda: the selected inverse on M's pattern.)  For canonical links
:func:`profile_beta` minimises D over beta by Newton steps
with the Fisher Hessian 2 R_X'R_X and a line search, so the outer optimizer sees theta
alone (glmm/fit.py); other models keep glmer's joint derivative-free search.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from numba import njit

from ..errors import NumericalError
from .weighted import find_sorted

MAX_NEWTON = 30
NEWTON_TOL = 1e-10        # Newton decrement g'H^-1 g at which beta counts as optimal
QUADRATIC = 1e-5          # after a full step from a decrement this small, beta is optimal to ~1e-10
CANONICAL = {("binomial", "logit"), ("poisson", "log")}


def supported(model) -> bool:
    """A canonical link and fixed effects to profile (nAGQ <= 1 is the caller's check)."""
    return (model.family.name, model.family.link.name) in CANONICAL and model.p > 0


class Leverages:
    """h_i = (Z Lambda)_i M^-1 (Z Lambda)_i': for each row, the pairs of its entries in the
    structural pattern of Z Lambda (every column of each of its levels' blocks), their
    positions in M's lower CSC data (M's pattern holds every such pair: relcov.py), found
    once; per call the values of Z Lambda(theta) on that pattern and one pass."""

    def __init__(self, weighted, relcov):
        Z = weighted.Z
        ones = lambda m: sp.csr_matrix((np.ones(m.nnz), m.indices, m.indptr), shape=m.shape)
        L1 = sp.csr_matrix((np.ones(relcov.Lrows.size), (relcov.Lrows, relcov.Lcols)), shape=(relcov.q, relcov.q))
        S = (ones(Z) @ L1).tocsr()
        S.sort_indices()
        self.pattern = S
        self.Z = Z
        counts = np.diff(S.indptr).astype(np.int64)
        self.row_ptr = np.concatenate([[0], np.cumsum(counts * counts)]).astype(np.int64)
        self.ia, self.ib, self.mpos, self.coef = _pairs_in_M(
            S.indptr.astype(np.int64), S.indices.astype(np.int64), self.row_ptr,
            relcov.M_indptr.astype(np.int64), relcov.M_indices.astype(np.int64))
        if np.any(self.mpos == -2):
            raise NumericalError("a pair of random-effects columns is missing from M's pattern")
        self.relcov = relcov

    def __call__(self, theta, Minv) -> np.ndarray:
        from ..engine.reweight import values_on_pattern

        ZL = values_on_pattern(self.Z @ self.relcov.Lambda(np.asarray(theta, float)), self.pattern)
        return _leverage(self.row_ptr, self.ia, self.ib, self.mpos, self.coef, ZL, Minv)


@njit(cache=True)
def _pairs_in_M(indptr, indices, row_ptr, M_indptr, M_indices):
    """Per row, every ordered pair (a, b) of its stored entries with column c_a >= c_b: the
    data indices a, b, the position of (c_a, c_b) in M's lower CSC data (-1 for the pairs
    with c_a < c_b, counted through their mirror; -2 if missing) and the multiplicity."""
    total = row_ptr[-1]
    ia = np.empty(total, dtype=np.int64)
    ib = np.empty(total, dtype=np.int64)
    mpos = np.full(total, -1, dtype=np.int64)
    coef = np.zeros(total)
    k = 0
    for i in range(indptr.size - 1):
        for ja in range(indptr[i], indptr[i + 1]):
            for jb in range(indptr[i], indptr[i + 1]):
                ia[k], ib[k] = ja, jb
                r, c = indices[ja], indices[jb]
                if r >= c:
                    a = find_sorted(M_indices, M_indptr[c], M_indptr[c + 1], r)
                    mpos[k] = a if a >= 0 else -2
                    coef[k] = 1.0 if r == c else 2.0
                k += 1
    return ia, ib, mpos, coef


@njit(cache=True)
def _leverage(row_ptr, ia, ib, mpos, coef, ZL, Minv):
    n = row_ptr.size - 1
    h = np.zeros(n)
    for i in range(n):
        s = 0.0
        for k in range(row_ptr[i], row_ptr[i + 1]):
            if mpos[k] >= 0:
                s += coef[k] * ZL[ia[k]] * ZL[ib[k]] * Minv[mpos[k]]
        h[i] = s
    return h


def _weights(resp, eta):
    link, fam = resp.family.link, resp.family
    d = link.mu_eta(eta)
    return resp.prior_weights * d * d / fam.variance(link.linkinv(eta))


def beta_gradient(model, mode) -> tuple[np.ndarray, object]:
    """(dD/dbeta at the mode, the joint PLS state at the mode's weights).  The q-level
    pieces (M^-1 on its pattern, M^-1 Lambda'Z'WX) are formed here; the row sums by
    ``model.rows.beta_gradient`` (:func:`row_part`, wherever the rows are)."""
    rows, relcov = model.rows, model.relcov
    # the joint system at the mode's weights: R_ZX = L^-1 P Lambda'Z'WX (and R_X for the Hessian)
    cp, _ = rows.products(rows.evaluate(mode.beta, mode.b), joint=True)
    st = model.engine.reweighted(cp).solve(mode.theta, reml=False)
    f = st.factor
    Minv = f.selected_inverse(relcov.M_indptr, relcov.M_indices)
    MinvB = np.asarray(f.solve_Lt(st.RZX))              # M^-1 Lambda'Z'WX = P'L^-T R_ZX
    return rows.beta_gradient(relcov, mode.theta, mode.beta, mode.b, Minv, MinvB), st


def row_part(rows, relcov, theta, beta, b, Minv, MinvB) -> np.ndarray:
    """X'd + J'(h w') over the rows of a MemoryRows (leverages cached on it)."""
    resp, wp = rows.response, rows.weighted
    s = rows.evaluate(beta, b)
    eta, mu = s.eta, s.mu
    link, fam = resp.family.link, resp.family
    d = -2.0 * resp.prior_weights * (resp.y - mu) * link.mu_eta(eta) / fam.variance(mu)
    if getattr(rows, "_leverages", None) is None:
        rows._leverages = Leverages(wp, relcov)
    h = rows._leverages(theta, Minv)
    # w'(eta) by a central difference (w is smooth; relative error ~1e-10)
    step = 1e-5 * (1.0 + np.abs(eta))
    dw = (_weights(resp, eta + step) - _weights(resp, eta - step)) / (2 * step)
    J = wp.X - np.asarray(wp.Z @ (relcov.Lambda(theta) @ MinvB))
    return wp.X.T @ d + J.T @ (h * dw)


def profile_beta(model, theta, beta0, u0):
    """The mode at theta with beta minimising the Laplace deviance (Newton with the Fisher
    Hessian 2 R_X'R_X and step halving), from beta0."""
    beta = np.asarray(beta0, dtype=float)
    mode = model.mode(theta, beta, u0=u0)
    for _ in range(MAX_NEWTON):
        g, st = beta_gradient(model, mode)
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
        if t == 1.0 and decrement < QUADRATIC:
            break          # a full Newton step from this close leaves ~decrement^2: no gradient to check
    return mode
