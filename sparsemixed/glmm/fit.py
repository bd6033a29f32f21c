"""Fitting a GLMM: the Laplace deviance (nAGQ = 1), its quadrature form (nAGQ > 1) or
glmer's nAGQ = 0 criterion, minimised over theta within its bounds.

    canonical links, nAGQ = 1:  theta-hat = argmin_theta min_beta Laplace(theta, beta)
        by L-BFGS-B with the analytic gradient (glmm/gradient.py: beta by joint PIRLS
        rounds with the log|L| term of its gradient held, dLaplace/dtheta there), from
        lme4's theta and the nAGQ = 0 beta there (MixedModels.jl's start: no separate
        nAGQ = 0 search first), then lme4's convergence check (:func:`_check`);
    otherwise, glmer's two stages by BOBYQA:
        stage 1:  theta-hat0 = argmin_theta Laplace(theta, beta-hat(theta))      (beta inside PIRLS)
        stage 2:  (theta-hat, beta-hat) = argmin Laplace(theta, beta)           (from stage 1; nAGQ >= 1)

with optimize.py's restarts and boundary probes.  The conditional modes are warm-started
from the previous evaluation's (the optimizer's state: a local :class:`_WarmStart`, nothing
stored on the model), so an evaluation usually needs two or three PIRLS iterations.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np

from ..errors import NumericalError
from ..linalg.threads import one_blas_thread
from ..optimize import OptSummary, kernel_interrupts, leave_boundary, merge_restart, minimize
from . import gradient
from .response import PerfectFitWarning, perfect_fit_warning


MAX_RESTARTS = 5
LOOSE_TOL = 1e-2         # the loosest Newton decrement of beta's profile during the search
LOOSE_SHARE = 1e-4       # ... as a share of the last change of the deviance between evaluations
RESTART_GAIN = 1e-7      # a restart that lowers the deviance less ends the restarts


class _WarmStart:
    """The last conditional mode, to start the next PIRLS from."""

    def __init__(self, model):
        self.model, self.u, self.last = model, None, None

    def stage1(self, theta):
        m = self.model.mode(theta, u0=self.u, beta0=None if self.last is None else self.last.beta)
        self.u, self.last = m.u, m
        return m.laplace

    def stage2(self, params):
        nt = self.model.theta0.size
        m = self.model.mode(params[:nt], params[nt:], u0=self.u)
        self.u, self.last = m.u, m
        if self.model.nAGQ > 1:
            from .agq import agq_deviance

            return agq_deviance(self.model, m, self.model.nAGQ)
        return m.laplace


def _off_boundary(fun, summary, lower, control):
    """A better point from the bound, for each diagonal theta_k within ``near_boundary`` of
    it (the stop's other coordinates kept), or None."""
    x = np.asarray(summary.final, dtype=float)
    near = np.isfinite(lower) & (x - lower < control.near_boundary)
    if not near.any():
        return None
    snapped = x.copy()
    snapped[near] = lower[near]
    counted = lambda v: (setattr(summary, "feval", summary.feval + 1), fun(v))[1]
    trial = leave_boundary(counted, snapped, summary.fmin, lower, control.boundary)
    return trial


def _beta_scale(mode) -> np.ndarray:
    """sqrt(diag((R_X'R_X)^-1)) from the joint PLS state of a stage-1 mode."""
    RX = mode.state.RX
    if not RX.size:
        return np.zeros(0)
    Rinv = np.linalg.solve(RX, np.eye(RX.shape[0]))
    se = np.sqrt(np.sum(Rinv * Rinv, axis=1))
    return np.where(np.isfinite(se) & (se > 0), se, 0.01)


class _ProfiledState:
    """The search's warm start between evaluations: the last mode's beta and u, and c, the
    log|L|^2 part of dLaplace/dbeta (glmm/gradient.py: profile_beta), predicted at a new
    theta as c + J (theta - theta_last) with J (p x ntheta) from Broyden updates along the
    search's path: a predicted c leaves PIRLS's beta nearer the profile's; beta and u are
    predicted alike (:meth:`start`), so PIRLS starts a first-order step from the mode."""

    def __init__(self, mode, p, nt):
        self.beta, self.u, self.c, self.theta = mode.beta, mode.u, None, None
        self.J = np.zeros((p, nt))
        self.Ju, self.Jb = np.zeros((mode.u.size, nt)), np.zeros((p, nt))
        self.at = None
        self.f = []
        self.g = None          # the last gradient in theta

    def tolerance(self, theta) -> float:
        """The Newton decrement beta is profiled to: gradient.SEARCH_TOL, or up to
        LOOSE_TOL while the deviance still moves by much more between evaluations (its
        error, at most half the decrement, is then far below those moves): the last move,
        or before there is one, the first-order prediction g'(theta - theta_0)."""
        if len(self.f) >= 2:
            moved = abs(self.f[-1] - self.f[-2])
        elif self.g is not None:
            moved = abs(float(self.g @ (np.asarray(theta, dtype=float) - self.theta)))
        else:
            return LOOSE_TOL          # the start: only the search's direction depends on it
        return float(min(LOOSE_TOL, max(gradient.SEARCH_TOL, LOOSE_SHARE * moved)))

    def predict(self, theta):
        if self.c is None:
            return None
        return self.c + self.J @ (theta - self.theta)

    def start(self, theta):
        """(beta, u) to start the profile at theta from: the last ones moved along the path
        by their Broyden Jacobians (a first-order prediction of the mode there)."""
        if self.theta is None:
            return self.beta, self.u
        s = theta - self.theta
        return self.beta + self.Jb @ s, self.u + self.Ju @ s

    def update(self, theta, mode, c, g=None):
        if self.c is not None:
            s = theta - self.theta
            ss = float(s @ s)
            if ss > 0:
                self.J += np.outer(c - self.c - self.J @ s, s) / ss
                self.Ju += np.outer(mode.u - self.u - self.Ju @ s, s) / ss
                self.Jb += np.outer(mode.beta - self.beta - self.Jb @ s, s) / ss
        self.beta, self.u, self.c, self.theta = mode.beta, mode.u, c, np.array(theta, dtype=float)
        self.at = (self.theta, mode)
        self.f.append(mode.laplace)
        self.g = None if g is None else np.asarray(g, dtype=float)


def _profiled_search(model, control, tick=None):
    """Laplace with beta profiled out (glmm/gradient.py: beta by PIRLS and Newton-type
    rounds at each theta, and the gradient in theta there): L-BFGS-B over theta from
    lme4's start, beta from the nAGQ = 0 mode there; each evaluation warm-started."""
    start = model.mode(model.theta0)
    state = _ProfiledState(start, model.p, model.theta0.size)

    def fg(theta):
        b0, u0 = state.start(theta)
        m, g, c = gradient.profile_beta(model, theta, b0, u0, state.predict(theta), state.tolerance(theta))
        state.update(theta, m, c, g.theta)
        return m.laplace, g.theta

    summary = OptSummary(initial=np.array(model.theta0, float), lower=model.lower, method="lbfgsb",
                         ftol_abs=control.ftol_abs, xtol_abs=control.xtol_abs, maxeval=int(control.maxeval))
    minimize(_safe(lambda th: fg(th)[0]), summary, fun_grad=_safe_grad(fg, model.theta0.size),
             rules=control.boundary, progress=tick)
    x = np.asarray(summary.final, dtype=float)
    warm = state.at[1] if state.at is not None and np.array_equal(state.at[0], x) else None
    final, g, c = gradient.profile_beta(model, x, state.beta if warm is None else warm.beta,
                                        state.u if warm is None else warm.u, state.predict(x))
    state.update(x, final, c)
    summary.diagnostics = _check(model, summary, final, g.theta, control, state)
    summary.initial = np.concatenate([model.theta0, start.beta])
    summary.lower = np.concatenate([model.lower, np.full(model.p, -np.inf)])
    summary.final = np.concatenate([final.theta, final.beta])
    summary.fmin = final.laplace
    summary.diagnostics["beta"] = "profiled (glmm/gradient.py)"
    return summary, final


class _Profiled:
    """The profiled Laplace deviance as diagnostics.check_convergence reads a model:
    ``lower``, ``objective_and_gradient(theta, reml)``, ``gradient(theta, reml)``; each
    point profiled to NEWTON_TOL from the search's prediction there (beta, u and c by
    :class:`_ProfiledState`'s Broyden updates, which end at the fit's final mode)."""

    def __init__(self, model, final, g_final, state):
        self.model, self.final, self.g_final, self.state, self.lower = model, final, g_final, state, model.lower

    def objective_and_gradient(self, theta, reml=False):
        theta = np.asarray(theta, float)
        if np.array_equal(theta, self.final.theta):            # the fit's own point: known
            return self.final.laplace, self.g_final
        beta, u = self.state.start(theta)
        m, g, _ = gradient.profile_beta(self.model, theta, beta, u, self.state.predict(theta))
        return m.laplace, g.theta

    def gradient(self, theta, reml=False):
        return self.objective_and_gradient(theta)[1]


def _check(model, summary, final, g_final, control, state) -> dict:
    """lme4's convergence check on the profiled deviance: the gradient in theta scaled by
    the inverse of its Hessian (forward differences of the analytic gradient from the
    final point's, each profile started from the search's prediction there), when its k + 1 gradients cost under ``control.check_budget`` of the fit (FitControl:
    check_convergence True forces it, False skips it); beta's own gradient is below the
    profile's Newton tolerance by construction.  Warns as the linear model's check."""
    from ..diagnostics import check_convergence, warn_convergence

    cc = control.check_convergence
    budget = {True: np.inf, False: -1.0}.get(cc, max(control.check_budget_min, control.check_budget * summary.seconds))
    if budget < 0:
        return {"checked": False, "reason": "check_convergence=False"}
    probe = dataclasses.replace(summary, final=final.theta)
    diag = check_convergence(_Profiled(model, final, g_final, state), probe, False, budget_seconds=budget, warn=False,
                             one_sided=True)
    warn_convergence(diag, stacklevel=7, tol=control.scaled_grad_tol)
    return diag


def _after_stage1(s2, s1):
    """Stage 2's summary with stage 1's counts and time added and its end recorded."""
    s2.feval += s1.feval
    s2.seconds += s1.seconds
    s2.diagnostics["stage1"] = {"theta": s1.final, "fmin": s1.fmin, "feval": s1.feval}
    return s2


def _safe(f):
    def g(x):
        try:
            return f(np.asarray(x, dtype=float))
        except NumericalError:
            return np.inf
    return g


def _safe_grad(fg, n):
    def g(x):
        try:
            return fg(np.asarray(x, dtype=float))
        except NumericalError:
            return np.inf, np.zeros(n)
    return g


def fit(model, nAGQ: int, verbose: bool = False, control=None):
    from ..fitting import FitControl
    from ..progress import progress
    from .result import GlmerResult

    control = FitControl() if control is None else control
    bar = progress(desc=f"glmer fit (nAGQ={nAGQ})", unit=" evals", enabled=verbose)
    tick = None if bar is None else (lambda k, f: (bar.update(1), bar.set_postfix_str(f"{f:.6f}")))
    try:
        # BLAS threads left spinning slow the parallel row passes; a Ctrl-C inside a compiled
        # kernel comes out as KeyboardInterrupt (optimize.kernel_interrupts)
        with one_blas_thread(), kernel_interrupts():
            from ..recentre import fit_glmm_recentred     # slopes on covariates far from 0: fit centred

            res = fit_glmm_recentred(model, nAGQ, _fit, control, tick, GlmerResult)
            return res if res is not None else _fit(model, nAGQ, control, tick, GlmerResult)
    finally:
        if bar is not None:
            bar.close()


def _fit(model, nAGQ, control, tick, GlmerResult):
    from .weighted_sparse import beta_scale as sparse_beta_scale     # sparse X: no R_X (its diagonal from Maug)

    if nAGQ == 1 and gradient.supported(model):
        summary, final = _profiled_search(model, control, tick)
        return _result(model, final, summary, nAGQ, GlmerResult)
    warm = _WarmStart(model)
    nt = model.theta0.size
    s1 = OptSummary(initial=np.array(model.theta0, float), lower=model.lower, method="bobyqa",
                    ftol_abs=control.ftol_abs, xtol_abs=control.xtol_abs, maxeval=int(control.maxeval))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PerfectFitWarning)
        minimize(_safe(warm.stage1), s1, rules=control.boundary, progress=tick)
    mode0 = model.mode(s1.final)                 # from glm's start: independent of the path
    if nAGQ == 0:
        summary, final = s1, mode0
    else:
        x0 = np.concatenate([s1.final, mode0.beta])
        lower = np.concatenate([model.lower, np.full(model.p, -np.inf)])
        # first trust region, per coordinate (nlopt's BOBYQA rescales by it): beta by its
        # conditional standard error at the stage-1 mode, theta by nlopt's default
        step = np.concatenate([np.full(nt, np.nan), (sparse_beta_scale if model.sparse_X else _beta_scale)(mode0)])
        s2 = OptSummary(initial=x0, lower=lower, method="bobyqa", ftol_abs=control.ftol_abs,
                        xtol_abs=control.xtol_abs, maxeval=max(1, int(control.maxeval) - s1.feval),
                        initial_step=step)
        warm.u = mode0.u
        minimize(_safe(warm.stage2), s2, rules=control.boundary, progress=tick)
        # BOBYQA over theta and beta together can stop early on a flat ridge (a correlation
        # with a small SD): restart from its stop while that still lowers the deviance
        # and off a near-boundary stop where the deviance is even in a diagonal theta_k
        # (flat at 0, falling further out: optimize.leave_boundary's probes from the bound)
        fun = _safe(warm.stage2)
        for _ in range(MAX_RESTARTS):
            x1 = _off_boundary(fun, s2, lower, control)
            sub = OptSummary(initial=s2.final if x1 is None else x1, lower=lower, method="bobyqa",
                             ftol_abs=control.ftol_abs, xtol_abs=control.xtol_abs,
                             maxeval=max(1, s2.maxeval - s2.feval), initial_step=step)
            minimize(fun, sub, rules=control.boundary, progress=tick)
            gain = s2.fmin - sub.fmin
            merge_restart(s2, sub)
            if gain <= RESTART_GAIN:
                break
        summary = _after_stage1(s2, s1)
        final = model.mode(s2.final[:nt], s2.final[nt:], u0=mode0.u)
    return _result(model, final, summary, nAGQ, GlmerResult)


def _result(model, final, summary, nAGQ, GlmerResult):
    msg = perfect_fit_warning(model.response, final.mu) if final.mu is not None else None
    if msg:
        warnings.warn(msg, PerfectFitWarning, stacklevel=5)
    from ..diagnostics import check_singular

    check_singular(model.lmm, final.theta, stacklevel=5)
    return GlmerResult(model, final, summary, nAGQ)

