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
"""
from __future__ import annotations

import warnings

import numpy as np

from .errors import ConvergenceWarning, ScaleWarning, SingularFitWarning

SCALED_GRAD_TOL = 2e-3
SCALE_RATIO = 1000.0
SINGULAR_TOL = 1e-4


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
                hessian_min_eigenvalue=float(ev.min()), hessian_positive_definite=pd)
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
        warnings.warn(f"the optimizer stopped with a scaled gradient of {np.max(np.abs(scaled)):.2g} "
                      f"(> {tol}): the estimates may not be at the optimum; refit from "
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
