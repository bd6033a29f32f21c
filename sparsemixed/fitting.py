"""The fit policy: optimizer choice, start, restarts, saddle escape, convergence check.

    theta-hat = argmin objective(theta)  over  theta >= lower
    fit = minimize -> check -> (restart from the stop | step off a saddle) -> ... -> result

Every tolerance and threshold of this policy is a field of :class:`FitControl` (lme4's
``lmerControl``), passed as ``model.fit(control=FitControl(...))``; the model supplies the
objective and gradient (model.py), the optimizers are small adapters (optimize.py), the
checks live in diagnostics.py.
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from .diagnostics import GAP_TOL, SCALED_GRAD_TOL, polish_stop
from .errors import SparseMixedError
from .optimize import (BOUNDARY, SCORING, DEFAULT_METHOD, MAX_GRADIENT_RESTARTS, MAX_SADDLE_RESTARTS, SADDLE_STEPS,
                       BoundaryRules, OptSummary, ScoringRules, escape_saddle, merge_restart, minimize)
from .progress import progress
from .start import EM_SCALE_MIN, em_start, moment_step, theta_scale


@dataclass(frozen=True)
class FitControl:
    """Tolerances and thresholds of :func:`fit` (defaults: today's measured values).

    maxeval, ftol_abs, xtol_abs
        the optimizer's stops (evaluations; absolute change of the criterion; of theta).
    check_convergence
        the scaled-gradient/Hessian check after the fit: always (True), never (False), or
        when it costs under ``check_budget`` of the fit's time (None).
    check_budget, check_budget_min
        that share (0.25) and a floor in seconds (0.2).
    near_boundary, near_boundary_budget
        a diagonal theta_k within ``near_boundary`` of its bound but off it raises the
        check's budget to ``near_boundary_budget`` times the fit's time (gradient methods
        stall there, on a flat even criterion or a saddle).
    scaled_grad_tol
        a scaled gradient H^-1 g above this fails the check (lme4's 2e-3).
    max_saddle_restarts, saddle_steps
        steps off a saddle point along the direction of negative curvature.
    max_gradient_restarts
        restarts from the stop when the scaled gradient is above ``scaled_grad_tol``.
    em_start
        the default gradient fit (scoring) of a model with a vector-valued term on a sparse factor
        takes up to start.EM_STEPS EM steps from lme4's start first (start.em_start).
    second_start
        a fit started elsewhere than lme4's start (the moment start, or lme4's start in
        scaled units, of the default fit) that ends singular, some theta_k on its bound, is
        run again from lme4's start and the lower optimum kept: with nearly confounded terms
        (``(1|a/b)`` with few b per a) the criterion can have one local optimum on each face
        theta_k = 0, and a start near one face finds that one; factor-valued slopes
        ``(0 + f | a)`` stop at corners of T with several diagonals 0 (lme4_agreement seed 7,
        data set 16: 38.5 above the optimum from the scaled start alone).
    face_probe
        an interior stop is compared with the same point with each bounded theta_k set to
        its bound (one evaluation each; a second local optimum on a face is common with
        crossed or nested scalar terms on small data); a better one is restarted from.
        True: always; False: never; None: when those evaluations cost under
        ``check_budget`` of the fit's time.  Only the terms of fewer than
        ``face_probe_levels`` levels are probed (the criterion's curvature in a term's
        theta grows with its levels; the two-minima cases had under ten).
    boundary
        the thresholds of the boundary checks (:class:`~sparsemixed.optimize.BoundaryRules`:
        restarts off a bound, the steps and curvature probes tried there, the snap onto it).
    scoring
        the stops of the "scoring" optimizer (:class:`~sparsemixed.optimize.ScoringRules`).
    polish, gap_tol
        an explicitly chosen optimizer (``fit(optimizer=...)``) that reports success is
        followed by the default's optimizer from its stop, and by the default fit when that
        end is singular or fails the convergence check (diagnostics.polish_stop): True
        continues to the lowest end, False keeps the stop and warns when the gap exceeds
        ``gap_tol`` (relative to ``max(1, |criterion|)``), None skips the check.
    """

    maxeval: int = 100_000
    ftol_abs: float = 1e-8
    xtol_abs: float = 1e-8
    check_convergence: bool | None = None
    check_budget: float = 0.25
    check_budget_min: float = 0.2
    near_boundary: float = 0.01
    near_boundary_budget: float = 1.0
    scaled_grad_tol: float = SCALED_GRAD_TOL
    max_saddle_restarts: int = MAX_SADDLE_RESTARTS
    saddle_steps: tuple = SADDLE_STEPS
    max_gradient_restarts: int = MAX_GRADIENT_RESTARTS
    em_start: bool = True
    second_start: bool = True
    face_probe: bool | None = None
    face_probe_levels: int = 100
    boundary: BoundaryRules = BOUNDARY
    scoring: ScoringRules = SCORING
    polish: bool | None = True
    gap_tol: float = GAP_TOL


def choose_optimizer(model) -> str:
    """The default optimizer ("auto"), chosen by measurement (benchmarks/optimizers.py,
    benchmarks/peers.py, benchmarks/lme4_agreement.py; results in benchmarks/results/):

    * a sparse factor whose gradient is cheap (the dense-X engine): "scoring", Newton steps
      with the average-information Hessian (information.py), which hand over to L-BFGS-B
      when a step would cross a bound (optimize.scoring).  From the moment start when every
      theta is a scalar intercept term's (:meth:`moment_start`; InstEval 4 gradients and 6
      evaluations against BOBYQA's 33 evaluations), else after EM steps from lme4's start
      in scaled units (crossed correlated slopes: 3 EM steps and 4 gradients against
      L-BFGS-B's 17; 2026-12-06-peers-f.md).
    * an engine whose gradient is dear (``cheap_gradient`` False: sparse X, where a gradient
      needs the selected inverse of Maug): BOBYQA; also when the dense Schur block is large
      (q2 >= blocked.LARGE_DENSE_Q2: a gradient costs about four evaluations) and theta is
      short, from the moment start where there is one.
    * the small-model engine (engine/small.py), whose gradient costs about one evaluation:
      L-BFGS-B with the analytic gradient (the 14 small reference models: 161 evaluations,
      230 in theta from lme4's start, against 621 for BOBYQA from the moment start; lme4's
      criterion or lower on each; Penicillin 15 against 81).  Stops on the boundary
      theta_k = 0 are checked by optimize.leave_boundary.

    Gradient methods run on theta / start.theta_scale (random-effect columns of unit rms)
    from lme4's start in those units (``start="scaled"``): on the 42 models of
    benchmarks/panel.tsv below 20,000 random effects, 944 evaluations against 1,035 from
    lme4's start in theta (Sitka 44 -> 18, Spruce 52 -> 14), the same optima; a singular
    stop is run again from lme4's start (``second_start``).  An explicit
    ``optimizer=`` runs in theta from lme4's theta unless ``start=`` says otherwise."""
    from .engine.small import SmallEngine
    from .linalg import blocked

    if isinstance(model.engine, SmallEngine):
        return "lbfgsb"
    f = model.factor
    dear = not model.engine.cheap_gradient or (f.ordering == "blocked" and f.q2 >= blocked.LARGE_DENSE_Q2)
    if model.moment_start()[1].all():
        return "bobyqa" if dear else "scoring"
    if dear and (not model.engine.cheap_gradient or model.theta0.size <= 4):
        return "bobyqa"
    return "scoring"


def _start(model, start, optimizer, scale=None):
    """(x0, initial trust-region step or None); ``scale``: start.theta_scale's, if known."""
    if isinstance(start, str):
        if start not in ("lme4", "moments", "scaled"):
            raise SparseMixedError(f"start must be 'lme4', 'moments', 'scaled' or a vector of "
                                   f"{model.theta0.size} numbers, got {start!r}")
        if start == "scaled":         # lme4's start in the units of start.theta_scale
            d = theta_scale(model.terms, model.crossprod) if scale is None else scale
            return model.theta0 * d, None
        if start == "moments":
            x0, estimated = model.moment_start()
            # near the optimum: a first trust region as small as the start's error (nlopt's default elsewhere)
            return x0, moment_step(model.terms, x0, estimated)
        return model.theta0, None
    return (model.theta0 if start is None else model._theta(start)), None


def fit(model, reml: bool, start=None, optimizer: str = DEFAULT_METHOD, verbose: bool = False,
        control: FitControl = FitControl()):
    """Optimise theta (see LinearMixedModel.fit) and return the engine's result.

    The whole fit runs under one BLAS thread: the optimizer's own BLAS calls (L-BFGS-B's)
    then do not wake idle threads, and the evaluations' contexts do not switch the count
    back and forth, which costs more than a small model's evaluation when another process
    is busy (linalg/threads.py; benchmarks/results/2026-12-06-small-panel*.md)."""
    from .linalg.threads import one_blas_thread

    from .optimize import kernel_interrupts

    with one_blas_thread(), kernel_interrupts():    # a Ctrl-C in a compiled kernel: KeyboardInterrupt
        return _fit(model, reml, start, optimizer, verbose, control)


def _fit(model, reml: bool, start, optimizer: str, verbose: bool, control: FitControl):
    from .diagnostics import check_singular, warn_convergence, weight_unit
    from . import recentre

    p = recentre.plan(model)       # random slopes on covariates far from 0: fit them centred
    if p is not None:
        res = recentre.fit_recentred(model, p, reml, start, optimizer, verbose, control, _fit)
        if res is not None:
            return res
    scale, em = None, False
    if optimizer == "auto":
        optimizer = choose_optimizer(model)
        if optimizer in ("lbfgsb", "scoring"):      # (scoring's steps do not care; its boundary steps and the check do)
            scale = theta_scale(model.terms, model.crossprod)
        if start is None and optimizer in ("bobyqa", "scoring") and model.moment_start()[1].all():
            start = "moments"
        elif optimizer in ("lbfgsb", "scoring"):
            em = start is None and _em_pays(model, control)
            start = "scaled" if start is None else start
    x0, step = _start(model, start, optimizer, scale)
    em_f, em_seconds = [], 0.0
    if em:                 # vector-valued terms on a sparse factor: EM steps first (start.em_start)
        t0 = time.perf_counter()
        x0, em_f, em_step = em_start(model.engine, model.relcov, model.terms, x0, reml)
        em_seconds = time.perf_counter() - t0
        # the search's first (unit) step as long as the last EM step, in theta / d
        scale = scale * float(np.clip(np.linalg.norm(em_step / scale), EM_SCALE_MIN, 1.0))
    summary = OptSummary(initial=np.array(x0, float), lower=model.lower, method=optimizer,
                         ftol_abs=control.ftol_abs, xtol_abs=control.xtol_abs, maxeval=int(control.maxeval),
                         initial_step=step, scale=scale)
    summary.feval, summary.em_start = len(em_f), em_f
    bar = progress(desc=f"fit ({optimizer})", unit=" evals", enabled=verbose)
    engine = model.engine               # the optimizer's thetas are valid float vectors: no checks per call

    def fun(th):
        return engine.criterion(engine.solve(th, reml), reml)

    def fun_grad(th):
        state = engine.solve(th, reml)
        return engine.criterion(state, reml), engine.gradient(state, reml)

    def fun_grad_hess(th):
        state = engine.solve(th, reml)
        return engine.criterion(state, reml), engine.gradient(state, reml), engine.hessian(state, reml)

    run = lambda s: minimize(fun, s, fun_grad=fun_grad, fun_grad_hess=fun_grad_hess, scoring_rules=control.scoring,
                             progress=None if bar is None else
                             lambda k, f: (bar.update(1), bar.set_postfix_str(f"{f:.6f}")),
                             rules=control.boundary, defer_abnormal=True)
    restart = lambda x1: dataclasses.replace(
        summary, initial=x1, initial_step=None, final=None, fmin=np.inf, feval=0, geval=0, seconds=0.0,
        trace=[], diagnostics={}, maxeval=max(1, summary.maxeval - summary.feval))

    def polish():
        """The convergence check, and restarts from where it points, until it passes."""
        _check_fit(model, summary, reml, control)
        while summary.feval < summary.maxeval:
            x1 = _restart_point(model, summary, fun, control)
            if x1 is None:
                break
            sub = restart(x1)
            run(sub)
            merge_restart(summary, sub)
            _check_fit(model, summary, reml, control)

    try:
        run(summary)
        summary.seconds += em_seconds
        polish()
        x1 = _face_point(model, summary, fun, control)
        if x1 is not None:
            sub = restart(x1)
            run(sub)
            merge_restart(summary, sub)
            polish()
        if (control.second_start and summary.feval < summary.maxeval
                and not np.array_equal(summary.initial, model.theta0) and _on_bound(model, summary.final)):
            before = summary.fmin
            sub = restart(np.array(model.theta0, float))
            run(sub)
            merge_restart(summary, sub)
            if summary.fmin < before:
                polish()
    finally:
        if bar is not None:
            bar.close()
    judged = polish_stop(model, summary, reml, fun, fun_grad, control, fun_grad_hess)     # an explicit optimizer's gap
    settle_abnormal(summary, control)
    warn_convergence(summary.diagnostics, stacklevel=4, tol=control.scaled_grad_tol)
    check_singular(model, judged, stacklevel=4, unit=weight_unit(model.crossprod))
    state = model.pls(summary.final, reml)       # the factor at the best theta seen
    return model.engine.result_class.from_state(model, state, summary, reml)


def settle_abnormal(summary, control: FitControl) -> None:
    """An L-BFGS-B stop on a failed line search ("ABNORMAL") is a converged fit when the
    convergence check at the stop passed (positive definite Hessian, scaled gradient within
    tolerance): the line search failed at the criterion's rounding level (with weights times
    1e-17 on an unbalanced slope model the same optimum as with unit weights, and a warning
    that said otherwise).  Unchecked or failed: lme4's warning, as before."""
    if summary.converged or not str(summary.returnvalue).startswith("ABNORMAL"):
        return
    diag = summary.diagnostics or {}
    scaled = np.asarray(diag.get("scaled_gradient", [np.inf]), dtype=float)
    if diag.get("checked") and diag.get("hessian_positive_definite") and scaled.size \
            and np.max(np.abs(scaled)) <= control.scaled_grad_tol:
        summary.converged = True
        summary.returnvalue += " (a line search at the criterion's rounding level; the convergence check passed)"
        return
    import warnings

    from .errors import ConvergenceWarning

    warnings.warn(f"the optimizer ({summary.method}) stopped with {summary.returnvalue} after {summary.feval} "
                  "evaluations; the estimates may not be at the optimum. Raise maxeval or try another "
                  "optimizer (fit(optimizer=...)).", ConvergenceWarning, stacklevel=4)


def _em_pays(model, control: FitControl) -> bool:
    """EM steps before L-BFGS-B (start.em_start): for a vector-valued term on a sparse
    factor (the small engine's evaluations cost too little to need them), unless
    ``control.em_start`` is False."""
    from .engine.small import SmallEngine

    return (control.em_start and not isinstance(model.engine, SmallEngine)
            and not model.engine.sparse_X and any(t.k > 1 for t in model.terms))


def _on_bound(model, theta) -> bool:
    """Some bounded theta_k on its bound (a singular fit)."""
    lower = model.lower
    return bool(np.any(np.isfinite(lower) & (np.asarray(theta) <= lower)))


def _face_point(model, summary, fun, control: FitControl):
    """The best point among the stop with one bounded theta_k moved onto its bound, if it
    is lower than the stop (by 1e-8 relative), else None (see FitControl.face_probe)."""
    x, lower = np.asarray(summary.final, dtype=float), model.lower
    levels = np.concatenate([np.full(t.ntheta, t.nlevels) for t in model.terms]) if model.terms else np.zeros(0)
    off = np.flatnonzero(np.isfinite(lower) & (x > lower) & (levels < control.face_probe_levels))
    per_eval = summary.seconds / max(1, summary.feval)
    if (control.face_probe is False or not off.size or summary.feval + off.size > summary.maxeval
            or (control.face_probe is None and off.size * per_eval > max(control.check_budget_min,
                                                                         control.check_budget * summary.seconds))):
        return None
    best, fbest = None, summary.fmin - 1e-8 * max(1.0, abs(summary.fmin))
    for k in off:
        trial = x.copy()
        trial[k] = lower[k]
        f = fun(trial)
        summary.feval += 1
        if f < fbest:
            best, fbest = trial, f
    return best


def _restart_point(model, summary, fun, control: FitControl):
    """Where to restart after the convergence check, or None: off a saddle point (the
    check found negative curvature; up to ``max_saddle_restarts``), or from the stop itself
    when the scaled gradient H^-1 g is above tolerance although the Hessian is positive
    definite (a quasi-Newton stop on a stale curvature model; up to ``max_gradient_restarts``)."""
    diag = summary.diagnostics
    if diag.get("hessian_positive_definite") is False:
        if summary.saddle_restarts >= control.max_saddle_restarts:
            return None
        x1 = escape_saddle(fun, summary.final, summary.fmin, model.lower, diag["descent_direction"],
                           steps=control.saddle_steps)
        summary.feval += 2 * len(control.saddle_steps)
        summary.saddle_restarts += x1 is not None
        return x1
    scaled = diag.get("scaled_gradient")
    if (diag.get("hessian_positive_definite") and scaled is not None and len(scaled)
            and np.max(np.abs(scaled)) > control.scaled_grad_tol
            and summary.gradient_restarts < control.max_gradient_restarts):
        summary.gradient_restarts += 1
        return np.array(summary.final, dtype=float)
    return None


def _check_fit(model, summary, reml: bool, control: FitControl) -> None:
    """summary.diagnostics: the convergence check at summary.final (without warning),
    when its cost fits the budget (``control.check_convergence``)."""
    from .diagnostics import check_convergence

    cc = control.check_convergence
    budget = {True: np.inf, False: -1.0}.get(cc, max(control.check_budget_min, control.check_budget * summary.seconds))
    x = np.asarray(summary.final, dtype=float)
    if getattr(summary, "scale", None) is not None:          # in the optimizer's units
        x = x / np.asarray(summary.scale, float)
    near = np.isfinite(model.lower) & (x > model.lower + 1e-10) & (x < model.lower + control.near_boundary)
    if cc is None and near.any():
        budget = max(budget, control.near_boundary_budget * summary.seconds)
    reason = "check_convergence=False"
    if not model.engine.cheap_gradient and cc is None:
        budget, reason = -1.0, ("skipped by default: each gradient of this engine needs a selected inverse "
                                "(sparse X: of Maug); fit(check_convergence=True) forces it")
    summary.diagnostics = (check_convergence(model, summary, reml, budget_seconds=budget, warn=False)
                           if budget >= 0 else {"checked": False, "reason": reason})
