"""Profile likelihood of an lmer fit: lme4's ``profile()`` and ``confint(method="profile")``.

For each parameter c (lme4's profile scale: ``.sig01, ...`` standard deviations and
correlations, ``.sigma``, fixed effects), with d the ML deviance minimised over all
the other parameters (:mod:`.points`) and d-hat its overall minimum,

    zeta(c) = sign(c - c_hat) sqrt(d(c) - d_hat)

As lme4 (1.1-31, ``devfun2`` starts with ``refitML``), the profile is of the ML deviance
for ML and REML fits alike: a REML fit is refitted by ML and profiled around the ML
estimates, so its profile intervals are those of the ML fit.

Grid (lme4's ``profile.merMod``): cutoff = sqrt(chi^2_{nptot}(1 - alphamax)), nptot the
number of parameters, delta = cutoff / 8.  From the estimate, the first step is to
1.01 c_hat (0.001 when c_hat = 0) for a variance parameter and c_hat + delta se(c_hat)
for a fixed effect; then, from the last two points,

    c_{i+1} = c_i + sign(c_i - c_{i-1}) * delta * (c_i - c_{i-1}) / (zeta_i - zeta_{i-1}),

the step capped at 10 |c_i - c_{i-1}| and c kept within its bounds (sd >= 0, sigma >= 0,
-1 <= cor <= 1), until |zeta| > cutoff, a bound is reached or maxpts points.

Interval (level 1 - a): the endpoints solve zeta(c) = -+ z_{1-a/2}.  lme4 inverts an
interpolating spline of the grid above; here each endpoint is bracketed by secant steps
from the estimate, each aimed 0.1 (in zeta) past the target,

    c_{i+1} = c_i + (c_i - c_{i-1}) / (zeta_i - zeta_{i-1}) * (target - zeta_i -+ 0.1),

(at most 1 in zeta and 10 |c_i - c_{i-1}| per step), and then found by Brent's method on
zeta(c) itself, so its accuracy is the optimizer's rather than the grid's.  When zeta
stays within +-z up to a bound (an sd reaching 0, a correlation reaching +-1) the
endpoint is that bound, as in lme4.  Each profiled point starts from its neighbour,
extrapolated linearly in (theta, log sigma).
"""
from __future__ import annotations

import functools
import warnings

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import chi2, norm

from ...errors import SparseMixedError, SparseMixedWarning
from ...results.varcorr import profile_names, sdcor
from .points import Point, PointProfiler

DEV_TOL = 1e-8       # a profiled deviance this far (relative) below the fit's: a better fit exists
AIM_PAST = 0.1       # interval search: each secant step aims this far (in zeta) past the target
MAX_ZETA_STEP = 1.0  # ... and at most this far from the last point


class ProfileWarning(SparseMixedWarning):
    """Profiling met a lower deviance than the fit's, or stopped at maxpts."""


class Profiler:
    """The ML fit that the profile is centred on, and zeta(c) for each parameter."""

    def __init__(self, result, alphamax: float = 0.01, delta: float | None = None,
                 delta_cutoff: float = 1 / 8, maxmult: float = 10.0):
        model = result.model
        if model.sparse_X:
            from ...linalg.augmented import UNSUPPORTED

            raise SparseMixedError("the likelihood profile (it needs c_u and R_ZX at every point) " + UNSUPPORTED)
        ml = model.fit(REML=False, start=result.theta) if result.REML else result
        self.model, self.ml = model, ml
        self.points = PointProfiler(model)
        self.names = profile_names(model)
        self.nth = model.theta0.size
        self.nvp = self.nth + 1
        self.base = float(ml.objective)
        self.opt = np.concatenate([sdcor(model.terms, ml.theta, ml.sigma), [ml.sigma], ml.beta])
        self.stderr = ml.fixef_se.to_numpy() if model.p else np.zeros(0)
        lay = self.points.layout
        diag = np.array([p.row == p.col for p in lay], bool)
        self.lower = np.concatenate([np.where(diag, 0.0, -1.0), [0.0], np.full(model.p, -np.inf)])
        self.upper = np.concatenate([np.where(diag, np.inf, 1.0), [np.inf], np.full(model.p, np.inf)])
        self.cutoff = float(np.sqrt(chi2.ppf(1 - alphamax, len(self.names))))
        self.delta = self.cutoff * delta_cutoff if delta is None else float(delta)
        self.maxmult = maxmult
        self.evaluations = 0

    # -- which parameters ---------------------------------------------------------------
    def which(self, which) -> list[int]:
        """Indices (profile order) of ``which``: None (all), names, "theta_" (variance
        parameters), "beta_" (fixed effects) or 0-based integers."""
        n = len(self.names)
        if which is None:
            return list(range(n))
        if isinstance(which, (str, int, np.integer)):
            which = [which]
        out = set()
        for w in which:
            if isinstance(w, (int, np.integer)):
                if not 0 <= w < n:
                    raise SparseMixedError(f"parameter index {w} out of range 0..{n - 1}")
                out.add(int(w))
            elif w == "theta_":
                out.update(range(self.nvp))
            elif w == "beta_":
                out.update(range(self.nvp, n))
            elif w in self.names:
                out.add(self.names.index(w))
            else:
                raise SparseMixedError(f"unknown parameter {w!r}; known: {', '.join(self.names)}")
        return sorted(out)

    # -- zeta ---------------------------------------------------------------------------
    def point(self, w: int, value: float, start: Point | None = None,
              prev: Point | None = None) -> Point:
        """The profiled point of parameter w at ``value``, searched from ``start`` (a
        neighbouring point; default the estimate), extrapolated linearly in (theta,
        log sigma) along ``prev`` -> ``start`` when ``prev`` is given."""
        if start is None:
            th, sig = self.ml.theta, self.ml.sigma
        else:
            th, sig = start.theta, start.row[self.nth]
            if prev is not None and prev.value != start.value:
                t = (value - start.value) / (start.value - prev.value)
                ext = th + t * (th - prev.theta)
                bounded = np.isfinite(self.model.lower)
                ext[bounded & (ext < self.model.lower)] = th[bounded & (ext < self.model.lower)]
                s0, s1 = prev.row[self.nth], sig
                if s0 > 0 and s1 > 0:
                    sig = s1 * (s1 / s0) ** t
                th = ext
        pt = self.points.at(w, float(value), th, sig)
        self.evaluations += 1
        if pt.dev < self.base - DEV_TOL * max(1.0, abs(self.base)):
            warnings.warn(f"profiling {self.names[w]} at {value:.6g} found a deviance "
                          f"{self.base - pt.dev:.3g} below the fit's: the fit is not at the optimum",
                          ProfileWarning, stacklevel=3)
        return pt

    def zeta(self, w: int, pt: Point) -> float:
        return float(np.sign(pt.value - self.opt[w]) * np.sqrt(max(pt.dev - self.base, 0.0)))

    def centre(self, w: int) -> Point:
        return Point(float(self.opt[w]), self.base, self.ml.theta.copy(), self.opt.copy())

    # -- lme4's grid --------------------------------------------------------------------
    def _next(self, w, a, b, za, zb):
        num, den = b.value - a.value, zb - za
        if not np.isfinite(den) or den == 0:
            step = 1e-6
        else:
            step = self.delta * num / den
            if step < 0:
                step = 1e-6
            elif abs(step) > self.maxmult * abs(num):
                step = np.sign(step) * self.maxmult * abs(num)
        return float(min(self.upper[w], max(self.lower[w], b.value + np.sign(num) * step)))

    def first_step(self, w: int) -> float:
        pw = self.opt[w]
        if w < self.nvp:
            return 0.001 if pw == 0 else pw * 1.01
        return pw + self.delta * self.stderr[w - self.nvp]

    def walk(self, w: int, direction: int, stop: float, maxpts: int = 100, first: Point | None = None):
        """Points (Point, zeta) from the estimate upwards (direction +1) or downwards (-1)
        until |zeta| > stop, a bound or maxpts; ``first`` is lme4's shifted point (1.01 times
        the estimate: below it for a negative correlation)."""
        pw = self.opt[w]
        centre = (self.centre(w), 0.0)
        if (direction < 0 and pw <= self.lower[w]) or (direction > 0 and pw >= self.upper[w]):
            return [centre]
        if first is None:
            first = self.point(w, self.first_step(w))
        sh = (first, self.zeta(w, first))
        # lme4's two walks: from (estimate, shifted) onwards, and back past the estimate
        pts = [centre, sh] if (first.value > pw) == (direction > 0) else [sh, centre]
        while len(pts) < maxpts:
            (a, za), (b, zb) = pts[-2], pts[-1]
            if not (self.lower[w] < b.value < self.upper[w]) or abs(zb) > stop:
                break
            nv = self._next(w, a, b, za, zb)
            pt = self.point(w, nv, b, a)
            pts.append((pt, self.zeta(w, pt)))
        else:
            warnings.warn(f"profile of {self.names[w]} stopped after maxpts={maxpts} points",
                          ProfileWarning, stacklevel=2)
        return pts if pts[0] is centre else pts[1:]

    # -- interval endpoints ----------------------------------------------------------------
    def limit(self, w: int, direction: int, z: float, first: Point | None = None,
              maxpts: int = 100, xtol: float = 1e-8) -> float:
        """The c on the ``direction`` side of the estimate with zeta(c) = direction * z: secant
        steps aimed just past the target until it is bracketed (or a bound is reached, which
        is then the limit), then Brent's method on the bracket."""
        target = direction * z
        pw = self.opt[w]
        bound = self.lower[w] if direction < 0 else self.upper[w]
        if pw == bound:
            return float(bound)
        if first is None or (first.value > pw) != (direction > 0):
            step = abs(self.first_step(w) - pw)
            first = self.point(w, min(self.upper[w], max(self.lower[w], pw + direction * step)))
        pts = [(self.centre(w), 0.0), (first, self.zeta(w, first))]
        while direction * (pts[-1][1] - target) < 0:
            (a, za), (b, zb) = pts[-2], pts[-1]
            if b.value == bound:
                return float(bound)
            if len(pts) >= maxpts:
                warnings.warn(f"{self.names[w]}: zeta did not reach {target:g} in {maxpts} points",
                              ProfileWarning, stacklevel=2)
                return np.nan
            num, den = b.value - a.value, zb - za
            dz = min(abs(target - zb) + AIM_PAST, MAX_ZETA_STEP)
            step = abs(num / den) * dz if den * direction > 0 else abs(num)
            step = min(step, self.maxmult * abs(num))
            nv = float(min(self.upper[w], max(self.lower[w], b.value + direction * step)))
            pt = self.point(w, nv, b, a)
            pts.append((pt, self.zeta(w, pt)))
        (a, za), (b, zb) = pts[-2], pts[-1]
        known = {a.value: (a, za), b.value: (b, zb)}

        def f(c):
            if c in known:
                return known[c][1] - target
            near = sorted((q[0] for q in known.values()), key=lambda q: abs(q.value - c))
            pt = self.point(w, c, near[0], near[1])     # start interpolated from the nearest two
            known[c] = (pt, self.zeta(w, pt))
            return known[c][1] - target

        lo, hi = sorted([a.value, b.value])
        scale = max(abs(lo), abs(hi), self.stderr[w - self.nvp] if w >= self.nvp else 0.0, 1e-8)
        return float(brentq(f, lo, hi, xtol=xtol * scale, rtol=1e-12))


def _frame(prof: Profiler, rows_by_par: dict) -> pd.DataFrame:
    cols = [".zeta"] + prof.names
    parts = []
    for w, pts in rows_by_par.items():
        seen, recs = set(), []
        for pt, z in pts:
            if pt.value in seen:
                continue
            seen.add(pt.value)
            recs.append(np.concatenate([[z], pt.row]))
        recs.sort(key=lambda r: r[1 + w])
        df = pd.DataFrame(np.array(recs), columns=cols)
        df[".par"] = prof.names[w]
        df[".focal"] = df[prof.names[w]]
        parts.append(df)
    out = pd.concat(parts, ignore_index=True)
    out[".par"] = pd.Categorical(out[".par"], categories=[prof.names[w] for w in rows_by_par])
    return out


def one_blas_thread_call(f):
    """``f`` run under one BLAS thread, as a fit is (fitting.fit, linalg/threads.py): a
    profile's thousands of small evaluations would otherwise wake threaded BLAS in each,
    which with another process busy costs 10 to 50 times the evaluation (sleepstudy's
    profile confint: 0.5 s alone, 17 s beside one busy core).  The limit is closed however
    the call ends (a KeyboardInterrupt included), and a Ctrl-C inside a compiled kernel
    comes out as KeyboardInterrupt (optimize.kernel_interrupts)."""
    @functools.wraps(f)
    def call(*args, **kw):
        from ...linalg.threads import one_blas_thread
        from ...optimize import kernel_interrupts

        with one_blas_thread(), kernel_interrupts():
            return f(*args, **kw)
    return call


@one_blas_thread_call
def profile(result, which=None, alphamax: float = 0.01, maxpts: int = 100,
            delta: float | None = None, delta_cutoff: float = 1 / 8, maxmult: float = 10.0) -> pd.DataFrame:
    """lme4's ``as.data.frame(profile(fit))``: columns ``.zeta``, every parameter on the
    profile scale (``.sig01 ...``, ``.sigma``, fixed effects), ``.par`` (the profiled
    parameter) and ``.focal`` (its value); rows sorted by ``.focal`` within ``.par``.
    ``which``: None (all), names, ``"theta_"``, ``"beta_"`` or 0-based indices.
    ``.attrs`` holds the ML deviance, the estimates and the number of profiled points."""
    prof = Profiler(result, alphamax, delta, delta_cutoff, maxmult)
    rows = {}
    for w in prof.which(which):
        first = prof.point(w, prof.first_step(w))
        up = prof.walk(w, +1, prof.cutoff, maxpts, first)
        down = prof.walk(w, -1, prof.cutoff, maxpts, first)
        rows[w] = down + up
    out = _frame(prof, rows)
    out.attrs.update(deviance=prof.base, estimates=dict(zip(prof.names, prof.opt)),
                     cutoff=prof.cutoff, evaluations=prof.evaluations)
    return out


def _perc_labels(a, digits: int = 3) -> list[str]:
    """R's format.perc: a common number of decimals giving each ``digits`` significant digits."""
    vals = [100 * x for x in a]
    dec = 0
    for v in vals:
        s = f"{v:.{digits}g}"
        if "e" not in s and "." in s:
            dec = max(dec, len(s.split(".")[1]))
    return [f"{v:.{dec}f} %" for v in vals]


@one_blas_thread_call
def profile_confint(result, parm=None, level: float = 0.95) -> pd.DataFrame:
    """lme4's ``confint(fit, method="profile")``: rows ``.sig01 ...``, ``.sigma`` and the
    fixed effects (or those in ``parm``), columns e.g. ``"2.5 %"``, ``"97.5 %"``.

    Endpoints solve zeta(c) = -+ qnorm(1 - (1 - level)/2) on the ML profile (also for REML
    fits, as lme4); a bound (sd = 0, cor = +-1) when zeta does not reach that value."""
    _check_level(level)
    prof = Profiler(result)
    return intervals(prof, prof.which(parm), level)


def _check_level(level) -> None:
    if not 0 < level < 1:
        raise SparseMixedError(f"level must be in (0, 1), got {level}")


def intervals(prof, ws, level: float) -> pd.DataFrame:
    """The profile intervals of parameters ``ws`` of a profiler."""
    _check_level(level)
    a = (1 - level) / 2
    z = float(norm.ppf(1 - a))
    out = np.full((len(ws), 2), np.nan)
    for i, w in enumerate(ws):
        first = prof.point(w, prof.first_step(w))
        out[i, 0] = prof.limit(w, -1, z, first)
        out[i, 1] = prof.limit(w, +1, z, first)
    df = pd.DataFrame(out, index=[prof.names[w] for w in ws], columns=_perc_labels([a, 1 - a]))
    df.attrs.update(evaluations=prof.evaluations, deviance=prof.base)
    return df
