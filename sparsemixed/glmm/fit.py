"""Fitting a GLMM in glmer's two stages.

    stage 1:  theta-hat0 = argmin_theta Laplace(theta, beta-hat(theta))       (beta inside PIRLS)
    stage 2:  (theta-hat, beta-hat) = argmin Laplace(theta, beta)            (from stage 1; nAGQ >= 1)
              canonical links:  min over theta of  min_beta Laplace  (Newton on beta, glmm/gradient.py)
              otherwise:        jointly over (theta, beta), as glmer

By BOBYQA (optimize.py) within theta's bounds, with restarts and the boundary probes.  The
conditional modes are warm-started from the previous evaluation's (the optimizer's state: a
local :class:`_WarmStart`, nothing stored on the model), so an evaluation usually needs two
or three PIRLS iterations.
"""
from __future__ import annotations

import warnings

import numpy as np

from ..errors import NumericalError
from ..optimize import OptSummary, leave_boundary, merge_restart, minimize
from . import gradient
from .response import PerfectFitWarning, perfect_fit_warning


MAX_RESTARTS = 5
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


def _profiled_stage(model, s1, mode0, control, tick=None):
    """Stage 2 with beta profiled out (glmm/gradient.py: Newton on beta at each theta):
    BOBYQA over theta alone, from stage 1's theta, each evaluation warm-started from the
    previous beta and u."""
    state = {"beta": mode0.beta, "u": mode0.u}

    def f(theta):
        m = gradient.profile_beta(model, theta, state["beta"], state["u"])
        state["beta"], state["u"] = m.beta, m.u
        return m.laplace

    s2 = OptSummary(initial=np.array(s1.final, float), lower=model.lower, method="bobyqa",
                    ftol_abs=control.ftol_abs, xtol_abs=control.xtol_abs,
                    maxeval=max(1, int(control.maxeval) - s1.feval))
    fun = _safe(f)
    minimize(fun, s2, rules=control.boundary, progress=tick)
    for _ in range(MAX_RESTARTS):       # from the stop, or off a near-boundary stop (as the joint search)
        x1 = _off_boundary(fun, s2, model.lower, control)
        sub = OptSummary(initial=s2.final if x1 is None else x1, lower=model.lower, method="bobyqa",
                         ftol_abs=control.ftol_abs,
                         xtol_abs=control.xtol_abs, maxeval=max(1, s2.maxeval - s2.feval))
        minimize(fun, sub, rules=control.boundary, progress=tick)
        gain = s2.fmin - sub.fmin
        merge_restart(s2, sub)
        if gain <= RESTART_GAIN:
            break
    final = gradient.profile_beta(model, s2.final, state["beta"], state["u"])
    s2.initial = np.concatenate([s1.final, mode0.beta])
    s2.lower = np.concatenate([model.lower, np.full(model.p, -np.inf)])
    s2.final = np.concatenate([final.theta, final.beta])
    s2.fmin = final.laplace
    s2.diagnostics["beta"] = "profiled by Newton steps (glmm/gradient.py)"
    return _after_stage1(s2, s1), final


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


def fit(model, nAGQ: int, verbose: bool = False, control=None):
    from ..fitting import FitControl
    from ..progress import progress
    from .result import GlmerResult

    control = FitControl() if control is None else control
    bar = progress(desc=f"glmer fit (nAGQ={nAGQ})", unit=" evals", enabled=verbose)
    tick = None if bar is None else (lambda k, f: (bar.update(1), bar.set_postfix_str(f"{f:.6f}")))
    try:
        return _fit(model, nAGQ, control, tick, GlmerResult)
    finally:
        if bar is not None:
            bar.close()


def _fit(model, nAGQ, control, tick, GlmerResult):
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
    elif nAGQ == 1 and gradient.supported(model):
        summary, final = _profiled_stage(model, s1, mode0, control, tick)
    else:
        x0 = np.concatenate([s1.final, mode0.beta])
        lower = np.concatenate([model.lower, np.full(model.p, -np.inf)])
        # first trust region, per coordinate (nlopt's BOBYQA rescales by it): beta by its
        # conditional standard error at the stage-1 mode, theta by nlopt's default
        step = np.concatenate([np.full(nt, np.nan), _beta_scale(mode0)])
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
    msg = perfect_fit_warning(model.response, final.mu) if final.mu is not None else None
    if msg:
        warnings.warn(msg, PerfectFitWarning, stacklevel=4)
    from ..diagnostics import check_singular

    check_singular(model.lmm, final.theta, stacklevel=4)
    return GlmerResult(model, final, summary, nAGQ)

