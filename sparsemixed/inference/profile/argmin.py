"""Bounded minimisation of one profiled point (small, smooth problems):

    x* = argmin f(x)  subject to  lower <= x <= upper,   f and grad f analytic

by L-BFGS (nlopt's Luksan implementation; scipy's L-BFGS-B finishes from the best point
when nlopt's line search gives up).  The criteria are even in each diagonal theta_k, so
their gradient vanishes on theta_k = 0 and a gradient method can stop there although
the optimum is interior, or at a corner of the parametrisation: sparsemixed.optimize's
boundary checks (steps into the interior, the reflected column, the curvature of a zero
column) are tried at every coordinate on its bound, and the search restarts from the
first point that lowers f.
"""
from __future__ import annotations

import nlopt
import numpy as np
from scipy.optimize import minimize as sp_minimize

from ...errors import NumericalError
from ...optimize import FAILED_VALUE, Aborted, leave_boundary, run_nlopt

BIG = FAILED_VALUE       # a point whose criterion cannot be computed (optimize.FAILED_VALUE)
MAX_RESTARTS = 10
FTOL_REL, XTOL_REL, MAXEVAL = 1e-12, 1e-10, 20_000
STATS = {"nlopt_failures": 0}      # how often the scipy fallback ran (diagnostics)


def _lbfgs(wrapped, x0, lower, upper):
    """nlopt's L-BFGS (Luksan) within bounds; its per-iteration cost is far below scipy's
    L-BFGS-B, which matters for these small problems.  False when nlopt failed (the caller
    then finishes with scipy).  An exception of the objective -- KeyboardInterrupt above all,
    which nlopt's wrapper would turn into a failure or drop -- is raised, never taken for a
    failure (optimize.Aborted)."""
    opt = nlopt.opt(nlopt.LD_LBFGS, x0.size)

    def obj(x, grad):
        f, g = wrapped(x)
        if grad.size:
            grad[:] = g
        return f

    abort = Aborted(stop=opt.force_stop)
    opt.set_min_objective(abort.guard(obj))
    opt.set_lower_bounds(lower)        # -inf / inf where unbounded
    opt.set_upper_bounds(upper)
    opt.set_ftol_rel(FTOL_REL)
    opt.set_xtol_rel(XTOL_REL)
    opt.set_maxeval(MAXEVAL)
    # nlopt's failures (roundoff, a line search that cannot progress): its own exceptions
    return run_nlopt(opt, x0, abort, failures=_NLOPT_FAILURES) is None


_NLOPT_FAILURES = (nlopt.RoundoffLimited, nlopt.ForcedStop, RuntimeError) + tuple(
    e for e in vars(nlopt.nlopt).values() if isinstance(e, type) and issubclass(e, Exception)
    and e.__module__.startswith("nlopt"))


def _scipy_lbfgsb(wrapped, x0, lower, upper):
    bounds = [(lo if np.isfinite(lo) else None, hi if np.isfinite(hi) else None)
              for lo, hi in zip(lower, upper)]
    sp_minimize(wrapped, x0, jac=True, method="L-BFGS-B", bounds=bounds,
                options={"ftol": 1e-13, "gtol": 1e-7, "maxiter": 5000, "maxfun": MAXEVAL})


def argmin(fg, x0, lower, upper):
    """min fg(x) (fg -> (f, grad)) within [lower, upper]: L-BFGS, then lme4-style
    restarts when a point on a zero lower bound (where the criterion is even, so its
    gradient vanishes) is not a local minimum.  Returns (x, f)."""
    lower, upper = np.asarray(lower, float), np.asarray(upper, float)
    x = np.clip(np.asarray(x0, float), lower, upper)
    if x.size == 0:
        return x, float(fg(x)[0])
    best = {"f": np.inf, "x": x.copy()}

    def wrapped(v):
        try:
            f, g = fg(v)
        except NumericalError:
            f, g = np.inf, None
        if not np.isfinite(f):
            return BIG, np.zeros_like(v)
        if f < best["f"]:
            best["f"], best["x"] = f, np.array(v, float)
        return f, g

    start = x
    for _ in range(MAX_RESTARTS + 1):
        if not _lbfgs(wrapped, start, lower, upper):
            STATS["nlopt_failures"] += 1        # finish from the best point with scipy
            _scipy_lbfgsb(wrapped, best["x"], lower, upper)
        # on a zero bound: the same second-order checks as the fit's (sparsemixed.optimize)
        start = leave_boundary(lambda v: wrapped(v)[0], best["x"], best["f"], lower)
        if start is None:
            break
    return best["x"], best["f"]
