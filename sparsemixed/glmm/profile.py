"""Profile likelihood of a glmer fit: ``confint(method="profile")`` and ``profile()``.

For a parameter c on lme4's profile scale (``.sig01 ...``, the fixed effects), with d the
Laplace deviance (-2 log L) minimised over every other parameter and d-hat the fit's,

    zeta(c) = sign(c - c_hat) sqrt(d(c) - d-hat)

and the interval's endpoints solve zeta = -+ z_{1 - a/2}: the grid, the secant search and
Brent's method of the linear model's profiler (inference/profile/core.py), on these points:

    .sigNN = s of a scalar term:  theta_k = s (no residual scale: the SD is theta itself);
                                  min over the other theta by L-BFGS-B with the gradient of
                                  the profiled deviance, beta profiled (glmm/gradient.py)
    sd or cor of a vector term:   that term's other sd/cor entries and every other theta
                                  free, its theta the PSD Cholesky factor of D R D (lme4's
                                  scale: sd >= 0, -1 <= cor <= 1)
    beta_j = c:                   x_j c moves into the offset and column j leaves X (a model
                                  on the same engine and random effects, p - 1 columns); min
                                  over theta as above, the other beta profiled

Canonical links and nAGQ = 1 (the analytic gradient), rows in memory.
"""
from __future__ import annotations

import copy
import types
import warnings

import numpy as np
import pandas as pd
from scipy.stats import chi2

from ..errors import SparseMixedError
from ..inference.profile.core import Profiler, ProfileWarning, _check_level, _frame, intervals, one_blas_thread_call
from ..inference.profile.points import Point
from ..inference.profile.scale import chol_psd, theta_layout
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
        if getattr(model, "sparse_X", False):
            raise SparseMixedError("the likelihood profile of a glmer fit needs the dense-X path (it uses the "
                                   "analytic gradient of the Laplace deviance, which needs R_X); refit with "
                                   "glmer(..., sparse_X=False), or use confint(method='Wald') or 'boot'")
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
        self.layout = theta_layout(model.lmm)
        diag = np.array([p.row == p.col for p in theta_layout(model.lmm)], dtype=bool)
        self.lower = np.concatenate([np.where(diag, 0.0, -1.0), np.full(model.p, -np.inf)])
        self.upper = np.concatenate([np.where(diag, np.inf, 1.0), np.full(model.p, np.inf)])
        self.cutoff = float(np.sqrt(chi2.ppf(1 - alphamax, len(self.names))))
        self.delta = self.cutoff * delta_cutoff if delta is None else float(delta)
        self.maxmult = maxmult
        self.evaluations = 0
        self._fixed = {}

    def point(self, w: int, value: float, start: Point | None = None, prev: Point | None = None) -> Point:
        value = float(min(self.upper[w], max(self.lower[w], value)))
        th = self.ml.theta.copy() if start is None else start.theta.copy()
        if prev is not None and start is not None and prev.value != start.value:
            t = (value - start.value) / (start.value - prev.value)
            ext = th + t * (th - prev.theta)
            th = np.where(np.isfinite(self.model.lower) & (ext < self.model.lower), th, ext)
        beta0 = self.ml.beta if start is None else start.row[self.nth:]
        if w >= self.nvp:
            pt = self._beta_point(w - self.nvp, value, th, beta0)
        elif self.scalar[w]:
            pt = self._theta_point(w, value, th, beta0)
        else:
            pt = self._sdcor_point(w, value, th, beta0)
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

    def _sdcor_point(self, w, value, theta, beta):
        """An SD or correlation of a vector-valued term held at ``value``: that term's other
        sd/cor entries (sd >= 0, -1 <= cor <= 1) and every other term's theta free; its
        theta from Sigma = D R D by a PSD Cholesky factor (scale.chol_psd), the gradient
        through that map by central differences (a k x k factorisation: no model work)."""
        lay = self.layout[w]
        lo, hi = lay.off, lay.off + self.model.terms[lay.term].ntheta
        sd_rows = [p.row == p.col for p in self.layout[lo:hi]]
        s0 = np.nan_to_num(sdcor(self.model.terms, theta, 1.0)[lo:hi], nan=0.0)
        own = np.arange(lo, hi) != w
        other = np.ones(self.nth, bool)
        other[lo:hi] = False
        s_lo = np.where(sd_rows, 0.0, -1.0)
        s_hi = np.where(sd_rows, np.inf, 1.0)

        def block(z_own):
            sv = s0.copy()
            sv[own] = z_own
            sv[w - lo] = value
            return _term_theta(self.layout[lo:hi], sv)

        def to_theta(z):
            b = block(z[other.sum():])
            if b is None:
                return None
            th = theta.copy()
            th[other] = z[: other.sum()]
            th[lo:hi] = b
            return th

        def jac(z):
            n_o = int(other.sum())
            J = np.zeros((self.nth, z.size))
            J[np.flatnonzero(other), np.arange(n_o)] = 1.0
            zo = z[n_o:]
            for i in range(zo.size):
                h = 1e-6 * max(1.0, abs(zo[i]))
                e = np.zeros(zo.size)
                e[i] = h
                up = np.clip(zo + e, s_lo[own], s_hi[own])
                dn = np.clip(zo - e, s_lo[own], s_hi[own])
                J[lo:hi, n_o + i] = (block(up) - block(dn)) / (up[i] - dn[i])
            return J

        z0 = np.concatenate([theta[other], s0[own]])
        bounds = ([(lo_ if np.isfinite(lo_) else None, None) for lo_ in self.model.lower[other]]
                  + [(a, b if np.isfinite(b) else None) for a, b in zip(s_lo[own], s_hi[own])])
        m = self._search_map(self.model, to_theta, jac, z0, bounds, beta)
        return Point(float(value), m.laplace, m.theta.copy(),
                     np.concatenate([sdcor(self.model.terms, m.theta, 1.0), m.beta]))

    def _search_map(self, model, to_theta, jac, z0, bounds, beta):
        """min over z of the profiled deviance at theta = to_theta(z) (L-BFGS-B with the
        bounds, gradient jac(z)' dD/dtheta)."""
        from scipy.optimize import minimize as sp_minimize

        state = {"beta": beta, "u": None, "c": None}

        def fg(z):
            th = to_theta(z)
            if th is None:
                return 1e300, np.zeros_like(z)
            m, g, c = gradient.profile_beta(model, th, state["beta"], state["u"], state["c"])
            state.update(beta=m.beta, u=m.u, c=c)
            return m.laplace, jac(z).T @ g.theta

        if z0.size:
            z0 = np.array([min(max(v, b[0] if b[0] is not None else -np.inf), b[1] if b[1] is not None else np.inf)
                           for v, b in zip(z0, bounds)])
            res = sp_minimize(fg, z0, jac=True, method="L-BFGS-B", bounds=bounds,
                              options={"ftol": 1e-12, "gtol": 1e-6, "maxiter": 1000})
            z0 = res.x
        m, _, _ = gradient.profile_beta(model, to_theta(z0), state["beta"], state["u"], state["c"])
        return m

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


def _term_theta(layout, s) -> np.ndarray | None:
    """One term's theta from its sd/cor entries (layout: scale.theta_layout's of the term):
    Sigma = D R D and its lower PSD Cholesky factor; None when R is not PSD."""
    k = layout[0].k
    sd = np.zeros(k)
    R = np.eye(k)
    for p, v in zip(layout, s):
        if p.row == p.col:
            sd[p.row] = v
        else:
            R[p.row, p.col] = R[p.col, p.row] = v
    T = chol_psd(sd[:, None] * R * sd[None, :])
    if T is None:
        return None
    return np.array([T[p.row, p.col] for p in layout])


@one_blas_thread_call
def profile_confint(result, parm=None, level: float = 0.95) -> pd.DataFrame:
    """Profile intervals: rows ``.sig01 ...`` and the fixed effects (or ``parm``)."""
    _check_level(level)
    prof = GlmerProfiler(result)
    return intervals(prof, prof.which(parm), level)


@one_blas_thread_call
def profile(result, which=None, alphamax: float = 0.01, maxpts: int = 100, delta: float | None = None,
            delta_cutoff: float = 1 / 8, maxmult: float = 10.0) -> pd.DataFrame:
    """lme4's ``as.data.frame(profile(fit))`` for a glmer fit: ``.zeta``, every parameter,
    ``.par`` and ``.focal`` (see the linear model's ``profile``)."""
    prof = GlmerProfiler(result, alphamax, delta, delta_cutoff, maxmult)
    rows = {}
    for w in prof.which(which):
        first = prof.point(w, prof.first_step(w))
        rows[w] = prof.walk(w, -1, prof.cutoff, maxpts, first) + prof.walk(w, +1, prof.cutoff, maxpts, first)
    out = _frame(types.SimpleNamespace(names=prof.names), rows)
    out.attrs.update(deviance=prof.base, estimates=dict(zip(prof.names, prof.opt)),
                     cutoff=prof.cutoff, evaluations=prof.evaluations)
    return out
