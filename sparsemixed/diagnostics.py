"""Checks after a fit, with lme4's intent and without its false alarms on large data.

* Singular fit (lme4's isSingular): a diagonal element of some T_k below 1e-4 -- a
  variance at 0 or a correlation at +-1.  Reported with a SingularFitWarning naming the
  terms (lme4 prints "boundary (singular) fit").
* Convergence: at the optimum, over the coordinates not on their bound,
      scaled gradient  s = H^-1 g        (lme4's check: max |s| < 2e-3)
  with g the analytic gradient and H its central-difference Jacobian; H must be positive
  definite.  Both, and which coordinates are on their bound, are judged in the optimizer's
  units theta / d (start.theta_scale; d = 1 for an unscaled optimizer, lme4's check), so
  the check does not change when a covariate's units or the weights' scale do.  lme4
  applies an absolute gradient tolerance to a deviance that grows with n and warns
  spuriously on large data; the scaled gradient is a Newton step and does not grow with n.
  Skipped (recorded as not checked) when it would cost more than about a tenth of the fit
  (large models), never silently passed.
* Predictor scales (lme4's check.scaleX): fixed-effect columns whose standard
  deviations differ by more than a factor 1000 -> a warning suggesting rescaling.
* The gap of an explicitly chosen optimizer (:func:`polish_stop`): a run of the default's
  optimizer from its stop.  nlopt's derivative-free methods stop on tolerances relative
  to their own last step, so a NEWUOA or Nelder-Mead run whose steps shrank early (a
  simplex collapsed against a bound, a trust region on a ridge) reports success away from
  the optimum, and an unscaled L-BFGS-B stops on a stale curvature model; the scaled
  gradient above can miss it (skipped on large models, or the stop on a bound where the
  criterion is even).  The polish sees the gap itself, and where its end is singular or
  fails the check the default fit runs from its own start too: the fit continues to the
  lowest end (FitControl.polish True) or keeps the stop and warns with the gap (False).
  The scaled-gradient warning states the gap the check can see, the decrease along the
  Newton step (``newton_decrease``).
"""
from __future__ import annotations

import warnings

import numpy as np

from .errors import ConvergenceWarning, ScaleWarning, SingularFitWarning

SCALED_GRAD_TOL = 2e-3
SCALE_RATIO = 1000.0
SINGULAR_TOL = 1e-4
GAP_TOL = 1e-6          # a polish lowering the criterion by more (relative to max(1, |f|)) is a gap


def weight_unit(crossprod) -> float:
    """sqrt of the prior weights' geometric mean (1 for unit weights).  With Cov(e) =
    sigma^2 W^-1 (lme4's convention) weights multiplied by c give theta / sqrt(c) and sigma
    sqrt(c), the same fixed effects, b and likelihood: an LMM's singular rule is applied
    to theta * weight_unit, lme4's isSingular for unit weights and the same verdict for any c."""
    return float(np.exp(crossprod.sum_log_w / (2.0 * crossprod.n))) if crossprod.n else 1.0


def singular_terms(model, theta, unit: float = 1.0) -> list[str]:
    """The terms with a diagonal element of T_k (theta * ``unit``) below SINGULAR_TOL."""
    out, off = [], 0
    for t in model.terms:
        th = theta[off: off + t.ntheta] * unit
        rows, cols = t.cov.tril_indices()
        if np.any(th[rows == cols] < SINGULAR_TOL):
            out.append(f"({t.expr} | {t.group.name})")
        off += t.ntheta
    return out


def check_singular(model, theta, stacklevel: int = 4, unit: float = 1.0) -> None:
    terms = singular_terms(model, theta, unit)
    if terms:
        warnings.warn(f"boundary (singular) fit: the covariance of {', '.join(terms)} is singular (a variance "
                      "at 0 or a correlation at +-1); consider a simpler random-effects structure",
                      SingularFitWarning, stacklevel=stacklevel)


def check_convergence(model, summary, reml: bool, budget_seconds: float, warn: bool = True,
                      one_sided: bool = False) -> dict:
    """Scaled gradient and Hessian at summary.final; fills and returns a dict stored as
    ``summary.diagnostics`` (with, where the Hessian is not positive definite, the
    direction of most negative curvature: ``descent_direction``, over all of theta);
    warns (ConvergenceWarning, :func:`warn_convergence`) when the checks fail.
    ``one_sided``: the Hessian by forward differences from the gradient at the estimate
    (k + 1 gradients instead of 2k + 1), for criteria whose gradients are dear.  The
    Hessian's definiteness (and ``hessian_min_eigenvalue``) is judged in the optimizer's
    units, theta / ``summary.scale``, and so is the scaled gradient H^-1 g."""
    from .numdiff import hessian_from_gradient

    x = np.asarray(summary.final, dtype=float)
    s_all = np.ones(x.size) if getattr(summary, "scale", None) is None else np.asarray(summary.scale, float)
    free = ~(np.isfinite(model.lower) & (x / s_all <= model.lower / s_all + 1e-10))
    diag = {"checked": False, "free": free.tolist()}
    if not free.any():
        diag.update(checked=True, reason="all parameters on the boundary")
        return diag
    n_free = int(free.sum())
    # cost estimate from the optimizer's own evaluations, before spending any: a gradient
    # costs about one evaluation of a gradient method, ~4 of a derivative-free one
    per_eval = summary.seconds / max(summary.feval, 1)
    per_grad = per_eval if summary.geval else 4.0 * per_eval
    need = (n_free + 1) if one_sided else (2 * n_free + 1)
    est = per_grad * need
    if est > budget_seconds:
        diag.update(reason=f"skipped: the check needs {need} gradient evaluations "
                           f"(~{est:.1f} s estimated); fit(check_convergence=True) forces it")
        return diag
    f, g = model.objective_and_gradient(x, reml)

    # differences and definiteness in the optimizer's units, theta / s (summary.scale,
    # start.theta_scale): in theta a slope on a covariate in large units has curvature 1e8
    # times the intercept's, and with weights c every theta scales as 1 / sqrt(c), so a
    # fixed step in theta and a relative eigenvalue test there both misjudge a good fit
    s = s_all[free]

    def grad_free(z):
        xx = x.copy()
        xx[free] = z * s
        return model.gradient(xx, reml)[free] * s
    Hs = hessian_from_gradient(grad_free, x[free] / s, step=1e-4, g0=g[free] * s if one_sided else None)
    gf = g[free]
    ev, vecs = np.linalg.eigh(Hs)
    pd = bool(ev.min() > 1e-8 * max(1.0, abs(ev).max()))
    # the Newton step, in the optimizer's units (in theta for an unscaled optimizer, as lme4's)
    scaled = np.linalg.solve(Hs, gf * s) if pd else np.full(n_free, np.nan)
    diag.update(checked=True, gradient=g.tolist(), scaled_gradient=scaled.tolist(),
                hessian_min_eigenvalue=float(ev.min()), hessian_positive_definite=pd,
                # the gap the check can see: the quadratic model's decrease along the Newton step
                newton_decrease=float(0.5 * (gf * s) @ scaled) if pd else float("nan"))
    if not pd:
        d = np.zeros(x.size)
        d[free] = s * vecs[:, 0] / np.linalg.norm(s * vecs[:, 0])
        diag["descent_direction"] = d.tolist()
    if warn:
        warn_convergence(diag, stacklevel=5)
    return diag


def warn_convergence(diag: dict, stacklevel: int = 4, tol: float = SCALED_GRAD_TOL) -> None:
    """The ConvergenceWarning of a failed check (nothing when it passed or was skipped)."""
    if not diag.get("checked") or "hessian_positive_definite" not in diag:
        return
    pd = diag["hessian_positive_definite"]
    scaled = np.asarray(diag["scaled_gradient"], dtype=float)
    if not pd:
        warnings.warn("the Hessian of the criterion at the estimate is not positive definite (smallest "
                      f"eigenvalue {diag['hessian_min_eigenvalue']:.3g}): the fit may be at a saddle point or "
                      "the model overparameterized; check is_singular, simplify the random effects or refit "
                      "with another optimizer", ConvergenceWarning, stacklevel=stacklevel)
    elif np.max(np.abs(scaled)) > tol:
        dec = diag.get("newton_decrease", float("nan"))
        gap = f" (a Newton step would lower the criterion by about {dec:.3g})" if np.isfinite(dec) else ""
        warnings.warn(f"the optimizer stopped with a scaled gradient of {np.max(np.abs(scaled)):.2g} "
                      f"(> {tol}){gap}: the estimates may not be at the optimum; refit from "
                      "result.theta (fit(start=...)) or with another optimizer", ConvergenceWarning,
                      stacklevel=stacklevel)


def check_scales(X: np.ndarray, names, sd=None) -> None:
    """``sd``: the column standard deviations when given (a sparse X)."""
    if X.shape[1] < 2:
        return
    sd = X.std(axis=0) if sd is None else sd
    nz = sd > 0
    if nz.sum() < 2:
        return
    hi, lo = sd[nz].max(), sd[nz].min()
    if hi / lo > SCALE_RATIO:
        nm = np.array(names)[nz]
        warnings.warn(f"fixed-effect predictors are on very different scales (standard deviations from "
                      f"{lo:.3g} ({nm[sd[nz].argmin()]}) to {hi:.3g} ({nm[sd[nz].argmax()]})); consider "
                      "rescaling them for numerical stability", ScaleWarning, stacklevel=5)


def is_default_run(model, summary) -> bool:
    """The fit ran the default's optimizer as the default runs it (``fit(optimizer="auto")``:
    fitting.choose_optimizer's method, L-BFGS-B in the units of start.theta_scale)."""
    from .fitting import choose_optimizer

    default = choose_optimizer(model)
    return summary.method == default and (default != "lbfgsb" or summary.scale is not None)


def _dubious(model, diag: dict, theta, tol: float) -> bool:
    """An end the default fit should be asked about: a singular fit (a local minimum on a
    face theta_k = 0 can hide an interior optimum), or one the convergence check failed (a
    saddle point: the Hessian not positive definite; a scaled gradient above ``tol``)."""
    if singular_terms(model, np.asarray(theta, float), weight_unit(model.crossprod)):
        return True
    if diag.get("hessian_positive_definite") is False:
        return True
    scaled = np.asarray(diag.get("scaled_gradient", []), dtype=float)
    return bool(scaled.size and np.nanmax(np.abs(scaled)) > tol)


def polish_stop(model, summary, reml: bool, fun, fun_grad, control, fun_grad_hess=None) -> np.ndarray:
    """The honesty check of an explicitly chosen optimizer (``fit(optimizer=...)``).

    When the optimizer reported success and is not the default's run (:func:`is_default_run`):

    1. the default's optimizer (fitting.choose_optimizer: L-BFGS-B in scaled units with the
       analytic gradient ``fun_grad`` and optimize.py's boundary checks, scoring with
       ``fun_grad_hess``, or BOBYQA) runs
       from the stop, within what is left of ``maxeval``;
    2. if the better of the two ends is dubious (:func:`_dubious`: singular, or failing
       the convergence check -- which runs there when its budget allows), the default fit
       itself runs too, from its own start, with its saddle escapes and second start: an
       unscaled L-BFGS-B stopped 1.56 above the optimum at a local minimum on a face
       theta_k = 0 and called the fit singular, BOBYQA 0.44 above at a saddle point that a
       gradient method does not leave.

    Their evaluations count in ``summary.feval``; ``summary.diagnostics["polish"]`` records
    the lowest end (``method``, ``feval``, ``fmin``, ``theta``, ``default_fit``) and the
    ``gap``, the stop's criterion less that end's.  Then, with ``control.polish``:

    * True (the default): a lower end is taken (the fit continues to the optimum); a gap
      above ``control.gap_tol`` (relative to max(1, |criterion|)) is noted in
      ``summary.returnvalue``; the convergence check is that end's.  A ConvergenceWarning
      with the gap only when the end stopped short too (maxeval).
    * False: the optimizer's own stop is kept (comparisons of optimizers, lme4's allFit)
      and a gap above tolerance is a ConvergenceWarning stating it.
    * None: no check.

    Returns the theta at which singularity is to be judged: that end when the stop is kept
    but the optimum is elsewhere (a stop on a bound whose optimum is interior is not a
    singular fit), else ``summary.final``."""
    import dataclasses

    from . import fitting
    from .optimize import OptSummary, minimize
    from .start import theta_scale

    mode = getattr(control, "polish", True)
    budget = int(summary.maxeval - summary.feval)
    if mode is None or not summary.converged or budget < 1 or is_default_run(model, summary):
        return summary.final
    method = fitting.choose_optimizer(model)
    scale = theta_scale(model.terms, model.crossprod) if method in ("lbfgsb", "scoring") else None
    sub = OptSummary(initial=np.array(summary.final, dtype=float), lower=model.lower, method=method,
                     ftol_abs=control.ftol_abs, xtol_abs=control.xtol_abs, maxeval=budget, scale=scale)
    with warnings.catch_warnings(record=True):        # the polish's own stop is reported below
        warnings.simplefilter("always", ConvergenceWarning)
        minimize(fun, sub, fun_grad=fun_grad if method in ("lbfgsb", "scoring") else None,
                 fun_grad_hess=fun_grad_hess, rules=control.boundary, scoring_rules=control.scoring)
    summary.feval += sub.feval
    summary.geval += sub.geval
    summary.seconds += sub.seconds
    end = {"method": method, "feval": int(sub.feval), "fmin": float(sub.fmin), "default_fit": False,
           "theta": np.asarray(sub.final, dtype=float), "converged": bool(sub.converged),
           "returnvalue": sub.returnvalue}
    # the convergence check at the better end (the optimizer's stop, or the polish's)
    at_polish = end["fmin"] < summary.fmin
    probe = dataclasses.replace(summary, final=end["theta"] if at_polish else np.asarray(summary.final, float),
                                fmin=min(end["fmin"], summary.fmin), diagnostics={})
    fitting._check_fit(model, probe, reml, control)
    left = int(summary.maxeval - summary.feval)
    if left >= 1 and _dubious(model, probe.diagnostics, probe.final, control.scaled_grad_tol):
        with warnings.catch_warnings(record=True):     # its verdicts are this fit's, below
            warnings.simplefilter("always")
            ref = fitting.fit(model, reml, None, "auto", False, dataclasses.replace(control, maxeval=left))
        rs = ref.optsummary
        summary.feval += rs.feval
        summary.geval += rs.geval
        summary.seconds += rs.seconds
        if rs.fmin < end["fmin"]:
            end = {"method": rs.method, "feval": int(rs.feval), "fmin": float(rs.fmin), "default_fit": True,
                   "theta": np.asarray(rs.final, dtype=float), "converged": bool(rs.converged),
                   "returnvalue": rs.returnvalue, "diagnostics": rs.diagnostics}
    f = end["fmin"]
    gap = float(summary.fmin - f)
    tol = getattr(control, "gap_tol", GAP_TOL) * max(1.0, abs(f))
    diagnostics = end.pop("diagnostics", probe.diagnostics)
    info = dict(end, theta=end["theta"].tolist(), gap=gap, kept="polish" if mode and gap > 0 else "stop")
    judged = summary.final
    how = f"the default fit ({end['method']})" if end["default_fit"] else f"{end['method']} from the stop"
    if mode and gap > 0:
        if gap > tol:
            summary.returnvalue = f"{summary.returnvalue}; then {how}: {gap:.3g} lower ({end['feval']} evaluations)"
            summary.converged = end["converged"]
        summary.final, summary.fmin = end["theta"], f
        summary.diagnostics = dict(diagnostics)         # the convergence check at the new end
        judged = summary.final
    elif gap > tol:
        judged = end["theta"]
    summary.diagnostics["polish"] = info
    if gap > tol and (not mode or not end["converged"]):
        where = ("the estimates are the optimizer's own stop (FitControl(polish=False))" if not mode else
                 f"that stopped too ({end['returnvalue']}), the estimates are its end")
        warnings.warn(f"the optimizer ({summary.method}) stopped {gap:.3g} above the criterion's minimum "
                      f"({gap / max(1.0, abs(f)):.2g} relative: {f + gap:.10g} against {f:.10g}) that "
                      f"{how} reached in {end['feval']} evaluations; {where}. Refit with the default "
                      "optimizer (fit()) or from result.theta", ConvergenceWarning, stacklevel=5)
    return judged

