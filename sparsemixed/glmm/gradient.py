"""The gradient of the Laplace deviance in beta and theta, and beta profiled out by Newton.

    D(theta, beta) = -2 log p(y | u-hat) + ||u-hat||^2 + log|M|,   M = Lambda'Z'W Z Lambda + I,
    eta = offset + X beta + Z Lambda u-hat,  W = diag(w(eta)) (Fisher weights)

    dD/dbeta    = X'd + J'(h o w'),        J = d eta / d beta = X - Z Lambda M^-1 Lambda'Z'W X
    dD/dtheta_k = (s + t - Z'WZ Lambda v)' dLambda_k u  -  s' dLambda_k v / 2  +  tr(M^-1 dM_k)
    d_i = -2 prior_w_i (y_i - mu_i) mu_eta_i / V(mu_i),   h_i = (Z Lambda M^-1 Lambda'Z')_ii,
    s = Z'd,   t = Z'(h o w'),   v = M^-1 Lambda't,   dM_k = dLambda_k'Z'WZ Lambda + its transpose

(u-hat minimises the first two terms, so they contribute only their partial derivative;
log|M| moves with Lambda at fixed W (the linear model's trace, sparsemixed/gradient.py) and
through W with eta: sum_i h_i w'_i d eta_i, where d eta = J d beta or Z(dLambda_k u +
Lambda du/dtheta_k) and M du/dtheta_k = -(dLambda_k's/2 + Lambda'Z'WZ dLambda_k u), from
differentiating Lambda'Z'd/2 + u = 0.  Both hold exactly when the observed and Fisher
weights agree: canonical links, binomial-logit and Poisson-log.  h needs M^-1 on the pairs
of columns that share a row of Z Lambda: the selected inverse on M's pattern; every other
piece is a q-vector, so the rows give four sums, X'd, Z'd, X'(h o w'), Z'(h o w').)
For canonical links :func:`profile_beta` minimises D over beta (joint PIRLS with the
log|L| part of dD/dbeta held, repeated until the Newton decrement is small; Newton steps
with a line search as the fallback) and returns dD/dtheta at that beta, the gradient of
min_beta D (envelope): the outer optimizer sees theta alone with its gradient
(glmm/fit.py); other models keep glmer's joint derivative-free search.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from ..linalg.jit import njit, prange

from ..errors import NumericalError
from ..gradient import trace_dM
from ..linalg.pls import lambda_times
from ..linalg.threads import kernel_threads, serial_twin
from .weighted import find_sorted

MAX_NEWTON = 30
NEWTON_TOL = 1e-10        # Newton decrement g'H^-1 g/2 at which beta counts as optimal
PIRLS_SHARE = 1e-2        # a loose profile's PIRLS may stop when pdev moves by less than this share of its tolerance
SEARCH_TOL = 1e-7         # ... during the search over theta (the deviance is then within ~5e-8 of
                          # its profile; the final theta is profiled to NEWTON_TOL)
CANONICAL = {("binomial", "logit"), ("poisson", "log")}


def supported(model) -> bool:
    """A canonical link (nAGQ <= 1 is the caller's check)."""
    return (model.family.name, model.family.link.name) in CANONICAL and not getattr(model, "sparse_X", False)


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
        self.z_pattern = bool(np.array_equal(S.indptr, Z.indptr) and np.array_equal(S.indices, Z.indices))
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

        theta = np.asarray(theta, float)
        rc = self.relcov
        if self.z_pattern and rc.diagonal_Lambda:
            lam = np.zeros(rc.q)
            lam[rc.Lrows] = theta[rc.Lind]
            ZL = self.Z.data * lam[self.Z.indices]        # Z Lambda on Z's own pattern
        else:
            ZL = values_on_pattern(self.Z @ rc.Lambda(theta), self.pattern)
        kernel = _leverage if kernel_threads(self.ia.size) > 1 else _leverage_serial
        return kernel(self.row_ptr, self.ia, self.ib, self.mpos, self.coef, ZL, Minv)


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


@njit(cache=True, parallel=True)
def _leverage(row_ptr, ia, ib, mpos, coef, ZL, Minv):
    n = row_ptr.size - 1
    h = np.zeros(n)
    for i in prange(n):
        s = 0.0
        for k in range(row_ptr[i], row_ptr[i + 1]):
            if mpos[k] >= 0:
                s += coef[k] * ZL[ia[k]] * ZL[ib[k]] * Minv[mpos[k]]
        h[i] = s
    return h


_leverage_serial = serial_twin(_leverage)


class LaplaceGradient:
    """dD/dbeta and dD/dtheta at a mode (fixed beta); ``beta_logdet``, the log|L|^2 part of
    dD/dbeta (X'(h o w') - C'Lambda't); the joint PLS state at the mode's weights (R_X)."""

    def __init__(self, beta, theta, beta_logdet, state):
        self.beta, self.theta, self.beta_logdet, self.state = beta, theta, beta_logdet, state


def laplace_gradient(model, mode) -> LaplaceGradient:
    """The gradient of the Laplace deviance at ``mode`` in beta and theta (the formulas of
    the module docstring).  The q-level pieces (M^-1 on its pattern, solves with the
    factor) are formed here; the row sums by ``model.rows.gradient_sums`` (:func:`row_sums`,
    wherever the rows are)."""
    rows, relcov = model.rows, model.relcov
    theta = np.asarray(mode.theta, dtype=float)
    st, eng = mode.state, mode.engine
    if st is None or eng is None or st.RX.shape[0] != model.p:
        # a mode at fixed beta: its state has no X; the joint one at the mode's weights
        cp, _ = rows.products(rows.evaluate(mode.beta, mode.b), joint=True)
        eng = model.engine.reweighted(cp)
        st = eng.solve(theta, reml=False)
    cp = eng.crossprod
    f = st.factor
    Minv = f.selected_inverse(relcov.M_indptr, relcov.M_indices)
    p, q = model.p, relcov.q
    sums = np.asarray(rows.gradient_sums(relcov, theta, mode.beta, mode.b, Minv), dtype=float)
    Xd, s, Xh, t = sums[:p], sums[p:p + q], sums[p + q:2 * p + q], sums[2 * p + q:]
    Lt_t = lambda_times(relcov, theta, t, transpose=True)
    logdet = Xh
    if p:
        MinvB = np.asarray(f.solve_Lt(st.RZX)).reshape(q, p)      # M^-1 Lambda'Z'WX = P'L^-T R_ZX
        logdet = logdet - MinvB.T @ Lt_t
    u = np.asarray(mode.u, dtype=float)
    v = np.asarray(f.solve_Lt(f.solve_L(Lt_t))).ravel()           # M^-1 Lambda' t
    Gv = np.asarray(cp.ZtZ @ lambda_times(relcov, theta, v)).ravel()   # Z'WZ Lambda v
    nt, Lr, Lc, Lind = theta.size, relcov.Lrows, relcov.Lcols, relcov.Lind
    along = lambda a, x: np.bincount(Lind, weights=a[Lr] * x[Lc], minlength=nt)     # a' dLambda_k x
    g_theta = (along(s + t - Gv, u) - 0.5 * along(s, v)
               + trace_dM(Minv, eng.relcov, theta))
    return LaplaceGradient(Xd + logdet, g_theta, logdet, st)


def row_sums(rows, relcov, theta, beta, b, Minv) -> np.ndarray:
    """[X'd, Z'd, X'(h o w'), Z'(h o w')] over the rows of a MemoryRows (leverages cached on it)."""
    resp, wp = rows.response, rows.weighted
    eta = np.asarray(wp.Z @ b).ravel() + resp.offset
    if beta.size:
        eta = eta + wp.X @ beta
    d, dw = resp.gradient_terms(eta)
    if getattr(rows, "_leverages", None) is None:
        rows._leverages = Leverages(wp, relcov)
    hdw = rows._leverages(theta, Minv) * dw
    Zt = wp.Z.T
    return np.concatenate([wp.X.T @ d, Zt @ d, wp.X.T @ hdw, Zt @ hdw])


def profile_beta(model, theta, beta0, u0, linear=None, tol=NEWTON_TOL):
    """(the mode at theta with beta minimising the Laplace deviance, the gradient there,
    the last log|L|^2 part of dD/dbeta).

    Joint PIRLS on pdev + c'beta (glmm/pirls.py), c the log|L|^2 part of dD/dbeta at the
    last mode (``linear``: from a neighbouring theta), until the Newton decrement
    g'(2 R_X'R_X)^-1 g of the full gradient is below NEWTON_TOL: PIRLS solves the deviance
    part of beta's equation exactly, and c moves little with beta (the decrement falls by
    about 1e-4 a round).  A round that does not halve the decrement hands over to Newton
    steps with a line search (:func:`_newton_beta`)."""
    from .pirls import pirls

    p = model.p
    c = np.zeros(p) if linear is None else np.asarray(linear, dtype=float)
    beta, u, last = np.asarray(beta0, dtype=float), u0, np.inf
    slack = 0.0 if tol <= SEARCH_TOL else PIRLS_SHARE * tol      # a loose profile needs no exact mode
    for _ in range(MAX_NEWTON):
        mode = pirls(model.engine, model.rows, theta, beta, u0=u, joint=True, linear=c, slack=slack)
        g = laplace_gradient(model, mode)
        dec = _decrement(g)
        if dec < tol:
            return mode, g, g.beta_logdet
        if dec > last / 2:
            return _newton_beta(model, theta, mode, g, tol)
        beta, u, c, last = mode.beta, mode.u, g.beta_logdet, dec
    return mode, g, g.beta_logdet


def _decrement(g) -> float:
    if not g.beta.size:
        return 0.0
    RX = g.state.RX
    return float(g.beta @ np.linalg.solve(RX, np.linalg.solve(RX.T, g.beta))) / 2.0


def _newton_beta(model, theta, mode, g, tol):
    """Newton steps on beta with the Fisher Hessian 2 R_X'R_X and step halving, from mode."""
    beta = mode.beta
    for _ in range(MAX_NEWTON):
        RX = g.state.RX
        step = np.linalg.solve(RX, np.linalg.solve(RX.T, g.beta)) / 2.0
        if float(g.beta @ step) < tol:
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
        g = laplace_gradient(model, mode)
    return mode, g, g.beta_logdet
