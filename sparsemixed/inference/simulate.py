"""Simulation from a fitted model, the parametric bootstrap and confidence intervals.

simulate (lme4's ``simulate.merMod``, re.form = NA unless use_u):

    y* = X beta + Z Lambda u* + offset + e*,   u* ~ N(0, sigma^2 I_q),  e*_i ~ N(0, sigma^2 / w_i)
    use_u=True:  u* = u-hat (the conditional modes), so y* = fitted + e*

Each replicate draws u* (q values, skipped with use_u) and then e* (n values) from one
``numpy.random.Generator``, so column j of ``simulate(nsim, seed)`` is the j-th response of
``bootstrap(n, seed=seed)``.

bootstrap (lme4's ``bootMer(type="parametric", use.u=FALSE)``): for each y*, refit with
``model.refit(y*)`` (same cross-products of Z and X, same symbolic factorization, REML as
the fit, started at theta-hat) and record ``statistic(refit)``.

confint (lme4's ``confint.merMod``), rows ``.sig01 ...`` (Cv_to_Sv: for each term, in
theta's order, the standard deviation sigma sqrt((T T')_rr) on the diagonal and the
correlation (T T')_rc / sqrt((T T')_rr (T T')_cc) below it), ``.sigma``, fixed effects:

    Wald:  beta_j +/- Phi^-1(a) se_j,  a = (1 -/+ level) / 2;  NaN for variance parameters
    boot:  percentile interval of the bootstrap sample of those quantities, boot::boot.ci's
           type "perc": order statistics interpolated on the normal scale (norm.inter)
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy.stats import norm

from ..progress import progress as progress_bar
from ..errors import ArgumentError, NumericalError, SparseMixedError, SparseMixedWarning
from ..results.varcorr import profile_names, sdcor


class BootstrapWarning(SparseMixedWarning):
    """Some bootstrap refits failed, or a percentile interval used extreme order statistics."""


def _rng(seed):
    return seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)


def format_perc(probs) -> list[str]:
    """R's ``paste(format(100 * p, trim=TRUE, scientific=FALSE, digits=3), "%")``: every value
    to 3 significant digits, with the decimals of the one needing most."""
    vals = [100.0 * float(p) for p in probs]
    decimals = 0
    for v in vals:
        s = f"{float(f'{v:.3g}'):f}".rstrip("0")
        decimals = max(decimals, len(s.split(".")[1]) if "." in s else 0)
    return [f"{v:.{decimals}f} %" for v in vals]


def norm_inter(t, alpha) -> np.ndarray:
    """boot's norm.inter: quantiles ``alpha`` of the finite values of ``t``, interpolating
    between order statistics k = floor((R + 1) alpha) and k + 1 on the normal scale (the
    smallest/largest value when k falls outside 1..R-1)."""
    t = np.sort(np.asarray(t, dtype=float)[np.isfinite(t)])
    R = t.size
    alpha = np.asarray(alpha, dtype=float)
    if R == 0:
        return np.full(alpha.shape, np.nan)
    rk = (R + 1) * alpha
    k = np.trunc(rk).astype(int)
    out = np.empty(alpha.shape)
    for i, (a, ki, ri) in enumerate(zip(alpha, k, rk)):
        if ki == ri and 0 < ki <= R:
            out[i] = t[ki - 1]
        elif ki <= 0:
            out[i] = t[0]
        elif ki >= R:
            out[i] = t[R - 1]
        else:
            z, z0, z1 = norm.ppf(a), norm.ppf(ki / (R + 1)), norm.ppf((ki + 1) / (R + 1))
            out[i] = t[ki - 1] + (z - z0) / (z1 - z0) * (t[ki] - t[ki - 1])
    return out


def _sdcor_statistic(res) -> pd.Series:
    vals = np.concatenate([sdcor(res.model.terms, res.theta, res.sigma), [res.sigma], res.beta])
    return pd.Series(vals, index=profile_names(res.model))


def _default_statistic(res) -> pd.Series:
    from .varpar import theta_names

    vals = np.concatenate([res.beta, [res.sigma], res.theta])
    return pd.Series(vals, index=list(res.model.fixef_names) + ["sigma"] + theta_names(res.model.terms))


def _select_parm(parm, names: list[str], nvp: int) -> list[int]:
    """lme4's get.which: names, "theta_" (variance parameters), "beta_" (fixed effects), or
    0-based positions; the result is in the table's order."""
    if parm is None:
        return list(range(len(names)))
    parm = [parm] if isinstance(parm, (str, int, np.integer)) else list(parm)
    idx: set[int] = set()
    for p in parm:
        if isinstance(p, (int, np.integer)):
            if not 0 <= p < len(names):
                raise SparseMixedError(f"parm position {p} is out of range 0..{len(names) - 1}")
            idx.add(int(p))
        elif p == "theta_":
            idx |= set(range(nvp))
        elif p == "beta_":
            idx |= set(range(nvp, len(names)))
        elif p in names:
            idx.add(names.index(p))
        else:
            raise SparseMixedError(f"parm {p!r} is not a parameter of the model; use 'theta_', 'beta_' "
                                   f"or one of {', '.join(names)}")
    return sorted(idx)


class SimulateMixin:
    """simulate, bootstrap and confint, mixed into LmerResult (through PredictMixin)."""

    def _sim_parts(self):
        fr = self._frame()
        X, Z = self.model_matrices()
        mean = X @ self.beta + (fr.offset if fr.offset is not None else 0.0)
        sd_e = self.sigma / np.sqrt(fr.weights) if fr.weights is not None else np.full(X.shape[0], self.sigma)
        index = self.model.data.index[fr.kept] if fr.kept is not None else self.model.data.index
        return mean, Z, self.model.Lambda(self.theta), sd_e, index

    def _draw(self, parts, rng, use_u: bool) -> np.ndarray:
        mean, Z, Lam, sd_e, _ = parts
        u = self.u if use_u else self.sigma * rng.standard_normal(Lam.shape[1])
        return mean + Z @ (Lam @ u) + sd_e * rng.standard_normal(mean.shape[0])

    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
        """``nsim`` responses from the fitted model (columns ``sim_1`` ...); see the module
        docstring.  ``seed``: None, an int or a ``numpy.random.Generator``."""
        nsim = int(nsim)
        if nsim < 1:
            raise SparseMixedError(f"nsim must be a positive integer, got {nsim}")
        rng = _rng(seed)
        parts = self._sim_parts()
        cols = {f"sim_{j + 1}": self._draw(parts, rng, use_u) for j in range(nsim)}
        return pd.DataFrame(cols, index=parts[-1])

    def bootstrap(self, n: int, statistic=None, seed=None, progress: bool = False,
                  use_u: bool = False) -> pd.DataFrame:
        """Parametric bootstrap: ``n`` rows of ``statistic(refit)`` (default: fixed effects,
        sigma and theta, named as lme4's getME).  A refit that fails gives a row of NaN
        (counted in ``.attrs["nfail"]``, with a BootstrapWarning); warnings of the refits
        (e.g. ConvergenceWarning) are summarised in one BootstrapWarning per kind and counted
        in ``.attrs["warnings"]``; ``.attrs["t0"]`` holds the statistic of this fit.
        ``progress=True`` shows a tqdm bar."""
        n = int(n)
        if n < 1:
            raise SparseMixedError(f"n must be a positive integer, got {n}")
        stat = _default_statistic if statistic is None else statistic
        t0 = stat(self)
        t0s = pd.Series(t0) if np.ndim(t0) else pd.Series([t0], index=["statistic"])
        rng = _rng(seed)
        parts = self._sim_parts()
        it = progress_bar(range(n), desc="bootstrap", unit="refit", enabled=progress, leave=True)
        rows, failures, warned = [], [], {}
        for i in it:
            y = self._draw(parts, rng, use_u)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                try:
                    res = self.model.refit(y, REML=self.REML, start=self.theta)
                except (NumericalError, np.linalg.LinAlgError) as exc:
                    res = None
                    failures.append(f"replicate {i + 1}: {exc}")
            for w in caught:                     # one summary below instead of n warnings
                entry = warned.setdefault(w.category.__name__, (set(), str(w.message)))
                entry[0].add(i)
            if res is None:
                rows.append(np.full(t0s.size, np.nan))
                continue
            rows.append(np.asarray(stat(res), dtype=float).reshape(-1))
        return bootstrap_frame(rows, t0s, failures, warned, n, stacklevel=3)

    def confint(self, parm=None, level: float = 0.95, method: str = "Wald", nsim: int = 500,
                seed=None, progress: bool = False) -> pd.DataFrame:
        """lme4's ``confint``: rows ``.sig01 ... .sigma`` then the fixed effects, columns such
        as ``"2.5 %"``, ``"97.5 %"``.  ``method``: "Wald" (NaN for the variance parameters),
        "boot" (percentile intervals from ``nsim`` parametric bootstrap refits, on the sd /
        correlation scale) or "profile" (``sparsemixed.inference.profile.profile_confint``)."""
        if not 0 < level < 1:
            raise SparseMixedError(f"level must be between 0 and 1, got {level!r}")
        vn = profile_names(self.model, fixef=False)
        names = vn + list(self.model.fixef_names)
        a = np.array([(1 - level) / 2, (1 + level) / 2])
        cols = format_perc(a)
        if method == "profile":
            try:
                from .profile import profile_confint
            except ImportError as exc:
                raise ImportError("confint(method='profile') needs profile_confint from "
                                  f"sparsemixed/inference/profile/, which cannot be imported ({exc}); "
                                  "use method='Wald' or 'boot' meanwhile") from exc
            return profile_confint(self, parm=parm, level=level)
        which = _select_parm(parm, names, len(vn))
        boot = lambda: self.bootstrap(nsim, statistic=_sdcor_statistic, seed=seed, progress=progress)
        return interval_table(method, names, len(vn), self.beta, self.fixef_se.to_numpy(), boot, a, which)


def interval_table(method: str, names, n_var: int, beta, se, boot, a, which, stacklevel: int = 3) -> pd.DataFrame:
    """confint's table: "Wald" z intervals for the fixed effects (NaN for the ``n_var``
    variance parameters), or "boot" percentile intervals of ``boot()``'s replicates (one
    column per name); rows ``which``, columns such as "2.5 %"."""
    cols = format_perc(a)
    if method == "Wald":
        ci = np.full((len(names), 2), np.nan)
        ci[n_var:] = np.asarray(beta)[:, None] + np.asarray(se)[:, None] * norm.ppf(a)[None, :]
    elif method == "boot":
        bb = boot()
        ci = np.vstack([norm_inter(bb[c].to_numpy(), a) for c in bb.columns])
        R = int(np.isfinite(bb.to_numpy()).sum(axis=0).min())
        if not np.all(((R + 1) * a > 1) & ((R + 1) * a < R)):
            warnings.warn(f"extreme order statistics used as endpoints (as boot.ci warns): with {R} finite "
                          f"bootstrap values the {cols[0]} / {cols[1]} percentiles fall at or beyond the "
                          "smallest/largest; use a larger nsim", BootstrapWarning, stacklevel=stacklevel)
    else:
        raise ArgumentError(f"method must be 'Wald', 'boot' or 'profile', got {method!r}")
    return pd.DataFrame(ci[which], index=[names[i] for i in which], columns=cols)


def bootstrap_frame(rows, t0s, failures, warned, n: int, stacklevel: int) -> pd.DataFrame:
    """The bootstrap's replicates as a DataFrame (columns t0s' index; attrs t0, nfail,
    failures, warnings), warning of failed refits and of warnings raised in refits."""
    out = pd.DataFrame(np.vstack(rows), columns=t0s.index)
    counts = {k: len(reps) for k, (reps, _) in warned.items()}
    out.attrs.update(t0=t0s, nfail=len(failures), failures=failures[:10], warnings=counts)
    if failures:
        warnings.warn(f"{len(failures)} of {n} bootstrap refits failed (their rows are NaN); first: "
                      f"{failures[0]}", BootstrapWarning, stacklevel=stacklevel)
    for k, (reps, msg) in warned.items():
        warnings.warn(f"{len(reps)} of {n} bootstrap refits raised a {k} (kept in the sample, as "
                      f"lme4's bootMer keeps them); e.g. {msg}", BootstrapWarning, stacklevel=stacklevel)
    return out
