"""Profile likelihood of an lmer fit: lme4's ``profile()`` and ``confint(method="profile")``.

    core     the grid of zeta(c) per parameter and the interval endpoints (Profiler)
    points   one profiled point: the ML deviance minimised with one parameter fixed
    argmin   the bounded minimisation of a profiled point
    scale    where each theta sits on lme4's sd/cor scale, and a PSD Cholesky factor

The sd/cor parameters and their names (``sdcor``, ``profile_names``) are those of
:mod:`sparsemixed.results.varcorr`.
"""
from ...results.varcorr import profile_names, sdcor
from .core import Profiler, ProfileWarning, profile, profile_confint
from .points import Point, PointProfiler

__all__ = ["Point", "PointProfiler", "ProfileWarning", "Profiler", "profile", "profile_confint",
           "profile_names", "sdcor"]
