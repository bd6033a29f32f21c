"""Profile likelihood of an lmer fit: lme4's ``profile()`` and ``confint(method="profile")``.

    core     the grid of zeta(c) per parameter and the interval endpoints (Profiler)
    points   one profiled point: the ML deviance minimised with one parameter fixed
    argmin   the bounded minimisation of a profiled point
    scale    where each theta sits on lme4's sd/cor scale, and a PSD Cholesky factor

The sd/cor parameters and their names (``sdcor``, ``profile_names``) are those of
:mod:`sparsemixed.results.varcorr`.  ``result.profile()`` (LmerResult and GlmerResult) returns
a :class:`LikelihoodProfile` (:func:`profile_result`), with the warnings of a REML fit's ML
refit caught and only those that concern the model shown (:func:`quietly_refitted`).
"""
from ...errors import SparseMixedError
from ...results.varcorr import profile_names, sdcor
from .core import Profiler, ProfileWarning, profile, profile_confint
from ..compare import quietly_refitted
from .points import Point, PointProfiler

__all__ = ["LikelihoodProfile", "Point", "PointProfiler", "ProfileWarning", "Profiler", "profile", "profile_confint",
           "profile_names", "profile_result", "quietly_refitted", "sdcor"]


# -- the result method: profile(fit) -----------------------------------------------------
import numpy as _np

from ...results.display import Table as _Table


class LikelihoodProfile(_Table):
    """lme4's ``profile(fit)`` (its ``as.data.frame``): one row per profiled point, columns
    ``.zeta``, every parameter on the profile scale, ``.par`` (the profiled parameter) and
    ``.focal`` (its value).  ``.attrs``: the ML deviance, the estimates, the cutoff, the number
    of profiled points and ``refit_warnings`` (those of the ML refit of a REML fit).

    ``confint(parm=None, level=0.95)`` is lme4's ``confint(profile)``: each endpoint where zeta
    = -+ z_{1 - a/2}, interpolated (monotone cubic) in the profile's points -- a bound (an SD
    at 0, a correlation at -+1) when the profile reaches it first, NaN when the profile stops
    before.  ``result.confint(method="profile")`` finds the endpoints by root finding instead.
    ``plot_zeta()`` draws zeta against each parameter (lme4's ``xyplot(profile)``)."""

    @property
    def _constructor(self):
        return LikelihoodProfile

    def confint(self, parm=None, level: float = 0.95):
        import pandas as pd
        from scipy.interpolate import PchipInterpolator
        from scipy.stats import norm

        from .core import _check_level, _perc_labels

        _check_level(level)
        pars = list(self[".par"].cat.categories if hasattr(self[".par"], "cat") else dict.fromkeys(self[".par"]))
        if parm is not None:
            parm = [parm] if isinstance(parm, str) else list(parm)
            unknown = [p for p in parm if p not in pars]
            if unknown:
                raise SparseMixedError(f"not profiled: {unknown}; this profile has {pars}")
            pars = parm
        z = float(norm.ppf((1 + level) / 2))
        out = _np.full((len(pars), 2), _np.nan)
        for i, p in enumerate(pars):
            sub = self[self[".par"] == p].sort_values(".focal")
            zeta, val = sub[".zeta"].to_numpy(float), sub[".focal"].to_numpy(float)
            ok = _np.isfinite(zeta) & _np.isfinite(val)
            zeta, val = zeta[ok], val[ok]
            keep = _np.concatenate([[True], _np.diff(zeta) > 0])        # zeta increasing in the value
            zeta, val = zeta[keep], val[keep]
            if zeta.size < 2:
                continue
            f = PchipInterpolator(zeta, val, extrapolate=False)
            for k, target in enumerate((-z, z)):
                v = float(f(target))
                if not _np.isfinite(v) and p.startswith(".sig"):
                    edge = val[0] if k == 0 else val[-1]
                    if edge in (0.0, -1.0, 1.0):                        # the profile reached a bound
                        v = float(edge)
                out[i, k] = v
        return pd.DataFrame(out, index=pars, columns=_perc_labels([(1 - level) / 2, (1 + level) / 2]))

    def plot_zeta(self, level: float = 0.95):
        """zeta against each profiled parameter (:func:`sparsemixed.plots.profile_zeta`)."""
        from ...plots import profile_zeta

        return profile_zeta(self, level=level)


def profile_result(result, which=None, alphamax: float = 0.01, maxpts: int = 100, **kw) -> LikelihoodProfile:
    """``result.profile()``: the profile (:func:`profile`, or glmm/profile.py's for a glmer fit)
    as a :class:`LikelihoodProfile`, the ML refit's warnings handled by :func:`quietly_refitted`."""
    if hasattr(result, "nAGQ"):
        from ...glmm.profile import profile as glmer_profile

        run = lambda: glmer_profile(result, which=which, alphamax=alphamax, maxpts=maxpts)
    else:
        run = lambda: profile(result, which=which, alphamax=alphamax, maxpts=maxpts, **kw)
    frame = quietly_refitted(result, run, "profile()")
    out = LikelihoodProfile(frame)
    out.attrs = dict(frame.attrs)
    out.attrs.setdefault("refit_warnings", [])
    return out
