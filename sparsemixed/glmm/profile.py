"""Profile likelihood of a glmer fit: ``confint(method="profile")`` and ``profile()``.

For a parameter c on lme4's profile scale (``.sig01 ...``, the fixed effects), with d the
Laplace deviance (-2 log L) minimised over every other parameter and d-hat the fit's,

    zeta(c) = sign(c - c_hat) sqrt(d(c) - d-hat)

and the interval's endpoints solve zeta = -+ z_{1 - a/2}: the grid, the secant search and
Brent's method of the linear model's profiler (inference/profile/core.py), on these points:

    .sigNN = s of a scalar term:  theta_k = s (no residual scale: the SD is theta itself);
                                  min over the other theta by L-BFGS-B with the gradient of
                                  the profiled deviance, beta profiled (glmm/gradient.py)
    beta_j = c:                   x_j c moves into the offset and column j leaves X (a model
                                  on the same engine and random effects, p - 1 columns); min
                                  over theta as above, the other beta profiled

Canonical links and nAGQ = 1 (the analytic gradient), rows in memory.  The SDs and
correlations of vector-valued terms ((1 + x | g)) are not profiled yet: asked for by name
they raise; with ``parm=None`` their rows are NaN with a warning.
"""
from __future__ import annotations

import copy
import types
import warnings

import numpy as np
import pandas as pd
from scipy.stats import chi2

from ..errors import ArgumentError, SparseMixedError
from ..inference.profile.core import Profiler, ProfileWarning, _check_level, _frame, intervals
from ..inference.profile.points import Point
from ..optimize import OptSummary, minimize
from ..results.varcorr import sdcor
from . import gradient
from .pirls import pirls
from .response import GLMResponse
from .rows import MemoryRows
from .weighted import WeightedProducts


class _FixedBeta:
    """The GLMM with beta_j held at c: x_j c in the offset, X without column j; what
    glmm/gradient.py's profile_beta and laplace_gradient read (rows, engine, relcov, p, mode)."""

    def __init__(self, model, j: int, weighted: WeightedProducts):
        self.model, self.j, self.weighted = model, j, weighted
        self.engine, self.relcov, self.lower = model.engine, model.relcov, model.lower
        self.p = model.p - 1
        self.rows = None

    def at(self, c: float) -> "_FixedBeta":
        r = self.model.response
        out = copy.copy(self)
        resp = GLMResponse(r.y, r.prior_weights, r.offset + self.model.X[:, self.j] * c, r.family, r.trials_weights)
        out.rows = MemoryRows(self.weighted, resp)
        return out

    def mode(self, theta, beta, u0=None):
        return pirls(self.engine, self.rows, np.asarray(theta, float), np.asarray(beta, float), u0=u0)


class GlmerProfiler(Profiler):
    """The fit the profile is centred on and zeta(c) for each parameter (see the module)."""

    def __init__(self, result, alphamax: float = 0.01, delta: float | None = None,
                 delta_cutoff: float = 1 / 8, maxmult: float = 10.0):
        model = result.model
        if result.nAGQ != 1 or not gradient.supported(model):
            raise SparseMixedError("the likelihood profile of a glmer fit needs nAGQ = 1 and a canonical link "
                                   "(binomial-logit, Poisson-log): it uses the analytic gradient of the Laplace "
                                   "deviance; use confint(method='boot') here")
        if not model.rows.in_memory:
            raise SparseMixedError("the likelihood profile needs the rows in memory (the model was built from a "
                                   "Dask DataFrame); use confint(method='Wald')")
        from .simulate import profile_names

        self.model, self.ml = model, result
        self.names = profile_names(result)
        self.nth = self.nvp = result.theta.size
        self.base = float(result.minus2loglik)
        self.opt = np.concatenate([sdcor(model.terms, result.theta, 1.0), result.beta])
        self.stderr = result.fixef_se.to_numpy() if model.p else np.zeros(0)
        self.scalar = np.concatenate([np.full(t.ntheta, t.k == 1) for t in model.terms]).astype(bool)
        self.lower = np.concatenate([np.zeros(self.nth), np.full(model.p, -np.inf)])
        self.upper = np.full(self.nth + model.p, np.inf)
        self.cutoff = float(np.sqrt(chi2.ppf(1 - alphamax, len(self.names))))
        self.delta = self.cutoff * delta_cutoff if delta is None else float(delta)
        self.maxmult = maxmult
        self.evaluations = 0
        self._fixed = {}

    def supported(self, w: int) -> bool:
        return w >= self.nvp or bool(self.scalar[w])

    def point(self, w: int, value: float, start: Point | None = None, prev: Point | None = None) -> Point:
        if not self.supported(w):
            raise ArgumentError(f"{self.names[w]} belongs to a vector-valued random-effects term: its profile is not "
                                "available for glmer fits yet; use confint(method='boot')")
        th = self.ml.theta.copy() if start is None else start.theta.copy()
        if prev is not None and start is not None and prev.value != start.value:
            t = (value - start.value) / (start.value - prev.value)
            ext = th + t * (th - prev.theta)
            th = np.where(np.isfinite(self.model.lower) & (ext < self.model.lower), th, ext)
        beta0 = self.ml.beta if start is None else start.row[self.nth:]
        pt = self._theta_point(w, value, th, beta0) if w < self.nvp else self._beta_point(w - self.nvp, value, th, beta0)
        self.evaluations += 1
        if pt.dev < self.base - 1e-8 * max(1.0, abs(self.base)):
            warnings.warn(f"profiling {self.names[w]} at {value:.6g} found a deviance {self.base - pt.dev:.3g} below "
                          "the fit's: the fit is not at the optimum", ProfileWarning, stacklevel=3)
        return pt

    def _search(self, model, free, theta, beta, u):
        """min over theta[free] of the profiled deviance of ``model`` (beta profiled)."""
        state = {"beta": beta, "u": u, "c": None, "mode": None}

        def fg(z):
            th = theta.copy()
            th[free] = z
            m, g, c = gradient.profile_beta(model, th, state["beta"], state["u"], state["c"])
            state.update(beta=m.beta, u=m.u, c=c, mode=m)
            return m.laplace, g.theta[free]

        if free.any():
            s = OptSummary(initial=theta[free], lower=model.lower[free], method="lbfgsb")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                minimize(lambda z: fg(z)[0], s, fun_grad=fg)
            theta = theta.copy()
            theta[free] = s.final
        m, _, _ = gradient.profile_beta(model, theta, state["beta"], state["u"], state["c"])
        return m

    def _theta_point(self, k, value, theta, beta):
        theta = theta.copy()
        theta[k] = value
        free = np.ones(self.nth, bool)
        free[k] = False
        m = self._search(self.model, free, theta, beta, None)
        return Point(float(value), m.laplace, m.theta.copy(),
                     np.concatenate([sdcor(self.model.terms, m.theta, 1.0), m.beta]))

    def _beta_point(self, j, value, theta, beta):
        if j not in self._fixed:
            X = self.model.X
            keep = np.arange(X.shape[1]) != j
            self._fixed[j] = _FixedBeta(self.model, j, WeightedProducts(self.model.Z, X[:, keep],
                                                                        self.model.weighted.A))
        sub = self._fixed[j].at(value)
        rest = np.delete(np.asarray(beta, float), j)
        m = self._search(sub, np.ones(self.nth, bool), theta, rest, None)
        full = np.insert(m.beta, j, value)
        return Point(float(value), m.laplace, m.theta.copy(),
                     np.concatenate([sdcor(self.model.terms, m.theta, 1.0), full]))


def _which(prof: GlmerProfiler, parm):
    ws = prof.which(parm)
    skipped = [w for w in ws if not prof.supported(w)]
    if skipped and parm is not None:
        prof.point(skipped[0], prof.opt[skipped[0]])          # raises the explanation
    if skipped:
        warnings.warn(f"{', '.join(prof.names[w] for w in skipped)} (of vector-valued random-effects terms) are not "
                      "profiled for glmer fits yet: their rows are NaN; confint(method='boot') gives them",
                      ProfileWarning, stacklevel=4)
    return ws, skipped


def profile_confint(result, parm=None, level: float = 0.95) -> pd.DataFrame:
    """Profile intervals: rows ``.sig01 ...`` and the fixed effects (or ``parm``)."""
    _check_level(level)
    prof = GlmerProfiler(result)
    ws, skipped = _which(prof, parm)
    return intervals(prof, ws, level, skipped)


def profile(result, which=None, alphamax: float = 0.01, maxpts: int = 100, delta: float | None = None,
            delta_cutoff: float = 1 / 8, maxmult: float = 10.0) -> pd.DataFrame:
    """lme4's ``as.data.frame(profile(fit))`` for a glmer fit: ``.zeta``, every parameter,
    ``.par`` and ``.focal`` (see the linear model's ``profile``)."""
    prof = GlmerProfiler(result, alphamax, delta, delta_cutoff, maxmult)
    ws, skipped = _which(prof, which)
    rows = {}
    for w in ws:
        if w in skipped:
            continue
        first = prof.point(w, prof.first_step(w))
        rows[w] = prof.walk(w, -1, prof.cutoff, maxpts, first) + prof.walk(w, +1, prof.cutoff, maxpts, first)
    out = _frame(types.SimpleNamespace(names=prof.names), rows)
    out.attrs.update(deviance=prof.base, estimates=dict(zip(prof.names, prof.opt)),
                     cutoff=prof.cutoff, evaluations=prof.evaluations)
    return out
