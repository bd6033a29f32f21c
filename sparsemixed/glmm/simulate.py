"""Simulation from a glmer fit, the parametric bootstrap and confidence intervals.

    y* ~ family(mu*),  mu* = g^-1(offset + X beta + Z Lambda u*),  u* ~ N(0, I_q)   (lme4's simulate.merMod)
    use_u=True: u* = u-hat.   binomial: y* = rbinom(trials, mu*) / trials (the prior weights;
    proportions, also for cbind responses), Poisson: y* = rpois(mu*)

Each replicate draws u* (q values, skipped with use_u) and then y* (n values) from one
``numpy.random.Generator``, so column j of ``simulate(nsim, seed)`` is the j-th response of
``bootstrap(n, seed=seed)``.

bootstrap (lme4's ``bootMer(type="parametric")``): each y* is refitted on a shallow copy of
the model with a new :class:`~sparsemixed.glmm.response.GLMResponse` (:func:`with_response`:
same design, prior weights, offset, family and symbolic analysis; nothing else of the model
holds y), with the fit's nAGQ, and ``stat(refit)`` is recorded.

confint (lme4's ``confint.merMod``), rows ``.sig01 ...`` (per term the standard deviation
and the correlations, in theta's order: lme4's Cv_to_Sv with sigma = 1), then the fixed effects:

    Wald:  beta_j +/- Phi^-1(a) se_j,  a = (1 -/+ level) / 2,  se from vcov();  NaN for .sig rows
    boot:  percentile intervals of the bootstrap sample (boot.ci's "perc", norm.inter)
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from ..errors import ArgumentError, DataError, NumericalError, SparseMixedError
from ..inference.simulate import _select_parm, bootstrap_frame, interval_table
from ..progress import progress as progress_bar
from ..results.varcorr import sdcor
from .predict import fitted_index


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def _positive(n, what: str) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ArgumentError(f"{what} must be a positive whole number, got {n!r}")
    return int(n)


class _Simulator:
    """The fixed parts of a replicate: X beta + offset, Z, Lambda, prior weights."""

    def __init__(self, res, use_u: bool):
        m = res.model
        self.family, self.w = m.family, m.response.prior_weights
        self.mean = m.weighted.X @ res.beta + m.response.offset
        self.Z, self.Lam = m.weighted.Z, m.Lambda(res.theta)
        self.u = np.asarray(res.u, dtype=float) if use_u else None

    def draw(self, rng) -> np.ndarray:
        u = self.u if self.u is not None else rng.standard_normal(self.Lam.shape[1])
        mu = self.family.link.linkinv(self.mean + self.Z @ (self.Lam @ u))
        return np.asarray(self.family.simulate(mu, self.w, rng), dtype=float)


def simulate(res, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
    """``nsim`` responses from the fitted model, columns ``sim_1 ...`` indexed as the fit's
    rows, on the response's scale (module docstring)."""
    nsim = _positive(nsim, "nsim")
    rng = _rng(seed)
    sim = _Simulator(res, use_u)
    return pd.DataFrame({f"sim_{j + 1}": sim.draw(rng) for j in range(nsim)}, index=fitted_index(res.model))


def with_response(model, y):
    """The model for a new response ``y`` (:meth:`GeneralizedLinearMixedModel.with_response`)."""
    return model.with_response(y)


def refit(res, y):
    """Fit the response ``y`` with the design and nAGQ of ``res``."""
    return with_response(res.model, y).fit(nAGQ=res.nAGQ)


def default_statistic(res) -> pd.Series:
    """The fixed effects and theta (named as lme4's getME(fit, "theta"))."""
    from ..inference.varpar import theta_names

    return pd.Series(np.concatenate([res.beta, res.theta]),
                     index=list(res.model.fixef_names) + theta_names(res.model.terms))


def _sdcor_statistic(res) -> pd.Series:
    return pd.Series(np.concatenate([sdcor(res.model.terms, res.theta, 1.0), res.beta]), index=profile_names(res))


def profile_names(res) -> list[str]:
    """.sig01, .sig02, ... (one per theta; no .sigma: the dispersion is 1), then the fixed effects."""
    return [f".sig{i + 1:02d}" for i in range(res.theta.size)] + list(res.model.fixef_names)


def bootstrap(res, nsim: int = 100, seed=None, stat=None, use_u: bool = False, progress: bool = False) -> pd.DataFrame:
    """Parametric bootstrap: ``nsim`` rows of ``stat(refit)`` (default: fixed effects and theta).
    A refit that fails (a simulated response with nothing to estimate, PIRLS failing) gives a
    row of NaN (``.attrs["nfail"]``, a BootstrapWarning); the refits' warnings (singular fits,
    separation) are summarised in one BootstrapWarning per kind (``.attrs["warnings"]``);
    ``.attrs["t0"]`` holds the statistic of this fit."""
    nsim = _positive(nsim, "nsim")
    stat = default_statistic if stat is None else stat
    t0 = stat(res)
    t0s = pd.Series(t0) if np.ndim(t0) else pd.Series([t0], index=["statistic"])
    rng = _rng(seed)
    sim = _Simulator(res, use_u)
    rows, failures, warned = [], [], {}
    for i in progress_bar(range(nsim), desc="bootstrap", unit="refit", enabled=progress, leave=True):
        y = sim.draw(rng)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                fit = refit(res, y)
            except (NumericalError, DataError, np.linalg.LinAlgError) as exc:
                fit = None
                failures.append(f"replicate {i + 1}: {exc}")
        for w in caught:
            warned.setdefault(w.category.__name__, (set(), str(w.message)))[0].add(i)
        rows.append(np.full(t0s.size, np.nan) if fit is None else np.asarray(stat(fit), dtype=float).reshape(-1))
    return bootstrap_frame(rows, t0s, failures, warned, nsim, stacklevel=4)


def confint(res, parm=None, level: float = 0.95, method: str = "Wald", nsim: int = 500, seed=None,
            progress: bool = False) -> pd.DataFrame:
    """lme4's ``confint`` for a glmer fit: rows ``.sig01 ...`` then the fixed effects, columns
    such as ``"2.5 %"``, ``"97.5 %"``; ``method`` "Wald" (NaN for the .sig rows) or "boot"
    (``nsim`` parametric bootstrap refits) or "profile" (likelihood profile: glmm/profile.py)."""
    if not 0 < level < 1:
        raise ArgumentError(f"level must be between 0 and 1, got {level!r}")
    if method == "profile":
        from .profile import profile_confint

        return profile_confint(res, parm=parm, level=level)
    names = profile_names(res)
    nvp = res.theta.size
    which = _select_parm(parm, names, nvp)
    a = np.array([(1 - level) / 2, (1 + level) / 2])
    boot = lambda: bootstrap(res, nsim, seed=seed, stat=_sdcor_statistic, progress=progress)
    return interval_table(method, names, nvp, res.beta, res.fixef_se.to_numpy(), boot, a, which, stacklevel=4)
