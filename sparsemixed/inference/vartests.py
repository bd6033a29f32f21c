"""Tests of variance components: the boundary-corrected likelihood-ratio test, and the
exact theory of the balanced one-way random effects model  y_ij = mu + A_i + e_ij.

Likelihood-ratio test (Self & Liang 1987; Stram & Lee 1994)
    T = 2 (logLik_full - logLik_reduced)  (REML when the fixed effects are equal, else ML)
    Under H0 a variance sits on the boundary of its parameter space, so T is not chi2_df
    but a chi-bar-square,  P(T >= t) = sum_j w_j P(chi2_j >= t)  (chi2_0 = point mass at 0).
    Each random-effects term (k columns) of the full model whose columns the reduced model
    keeps in blocks b_1 .. b_m (r = sum b_i columns kept, d = k - r dropped) contributes
        f = r d + r(r+1)/2 - sum b_i(b_i+1)/2    free directions (chi2_f; covariances, interior)
        + the chi-bar-square of the d x d positive semidefinite cone:
              d = 1:  50:50 chi2_0 : chi2_1
              d = 2:  weights (1/2 - 1/(2 sqrt2), 1/(2 sqrt2), 1/(2 sqrt2), 1/2 - 1/(2 sqrt2))
                      on chi2_0..chi2_3 (intrinsic volumes of the 2 x 2 PSD cone)
              d >= 3: simulated (sum of squared positive eigenvalues of a GOE(d) matrix)
    Extra fixed effects of the full model (ML only) add free directions.  Components are
    treated as independent (block-orthogonal information), which makes the mixture the
    convolution of the components' mixtures.  So one scalar variance dropped -> 50:50
    chi2_0:chi2_1; a correlated slope dropped from (x|g) -> 50:50 chi2_1:chi2_2; several
    scalar variances -> binomial weights.  For d >= 2 the weights assume an orthogonally
    invariant information (Frobenius metric) for the dropped block: an approximation.
    The naive p-value P(chi2_df >= T), df = number of parameters dropped, is reported too.

Balanced one-way model (a groups of n), H0: sigma_A^2 = 0
    SSA = n sum_i (ybar_i. - ybar..)^2,  SSE = sum_ij (y_ij - ybar_i.)^2
    MSA = SSA / (a-1),  MSE = SSE / (a(n-1));  E MSA = sigma^2 + n sigma_A^2,  E MSE = sigma^2
    ANOVA (moments): sigma_A^2 = (MSA - MSE) / n,  sigma^2 = MSE
    F = MSA / MSE ~ (1 + n rho) F_{a-1, a(n-1)},  rho = sigma_A^2 / sigma^2
    size-alpha test: reject when F > F_{1-alpha};  power(rho) = P(F_{a-1,a(n-1)} > F_{1-alpha} / (1 + n rho))
    ML:   s = (SSA/a - SSE/(a(n-1))) / n;  s > 0: (s, SSE/(a(n-1)))  else (0, (SSE+SSA)/(an))
    REML: s = (MSA - MSE) / n;             s > 0: (s, MSE)           else (0, (SSE+SSA)/(an-1))
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import DataError, SparseMixedError

PSD2 = (0.5 - 0.5 / math.sqrt(2.0), 0.5 / math.sqrt(2.0), 0.5 / math.sqrt(2.0), 0.5 - 0.5 / math.sqrt(2.0))


# -- chi-bar-square --------------------------------------------------------------------------
def chibar_sf(t: float, weights: dict) -> float:
    """P(T >= t) for T ~ sum_j w_j chi2_j (chi2_0 is a point mass at 0)."""
    t = float(t)
    return float(sum(w * (float(t <= 0.0) if j == 0 else stats.chi2.sf(t, j)) for j, w in weights.items()))


def chibar_pvalue(t: float, weights: dict, simulate=(), n_sim: int = 200_000, seed: int = 0) -> float:
    """P(T >= t) for T = (sum_j w_j chi2_j) + independent PSD-cone parts of dimensions
    ``simulate`` (see :func:`psd_cone_sample`); exact when ``simulate`` is empty."""
    if not simulate:
        return chibar_sf(t, weights)
    rng = np.random.default_rng(seed)
    js = np.array(list(weights))
    dfs = js[rng.choice(len(js), n_sim, p=np.array(list(weights.values())))]
    draws = np.zeros(n_sim)
    draws[dfs > 0] = rng.chisquare(dfs[dfs > 0])
    for d in simulate:
        draws += psd_cone_sample(d, n_sim, rng)
    return float(np.mean(draws >= t))


def _convolve(a: dict, b: dict) -> dict:
    out: dict[int, float] = {}
    for i, wi in a.items():
        for j, wj in b.items():
            out[i + j] = out.get(i + j, 0.0) + wi * wj
    return out


def psd_cone_sample(d: int, n_sim: int, rng) -> np.ndarray:
    """||projection of G on the d x d PSD cone||^2 for G standard Gaussian on symmetric
    matrices (Frobenius metric): the sum of squared positive eigenvalues of GOE(d)."""
    A = rng.standard_normal((n_sim, d, d))
    S = (A + np.swapaxes(A, 1, 2)) / 2.0          # diag N(0,1), off-diagonal N(0,1/2)
    ev = np.linalg.eigvalsh(S)
    return np.sum(np.clip(ev, 0.0, None) ** 2, axis=1)


# -- structure of the difference between two models --------------------------------------------
@dataclass
class Component:
    term: str          # the full model's term, "(expr | group)"
    dropped: list      # its columns absent from the reduced model (d of them)
    kept: list         # the blocks of columns the reduced model keeps (r columns in all)
    free: int          # interior directions (covariances set to 0)

    @property
    def d(self) -> int:
        return len(self.dropped)


def random_difference(full_terms, reduced_terms) -> list[Component]:
    """Match each reduced term to a full term (same grouping factor, columns a subset of the
    full term's) and describe what each full term loses.  Raises if not nested."""
    claimed: list[list[list[str]]] = [[] for _ in full_terms]
    for rt in reduced_terms:
        for i, ft in enumerate(full_terms):
            used = {c for blk in claimed[i] for c in blk}
            if ft.group.name == rt.group.name and set(rt.columns) <= set(ft.columns) and not used & set(rt.columns):
                claimed[i].append(list(rt.columns))
                break
        else:
            raise SparseMixedError(
                f"the reduced model's term ({rt.expr} | {rt.group.name}) is not part of any term of the "
                "full model: the models are not nested in their random effects")
    out = []
    for ft, blocks in zip(full_terms, claimed):
        kept = {c for blk in blocks for c in blk}
        dropped = [c for c in ft.columns if c not in kept]
        r, d = len(kept), len(dropped)
        free = r * d + r * (r + 1) // 2 - sum(len(b) * (len(b) + 1) // 2 for b in blocks)
        if d or free:
            out.append(Component(f"({ft.expr} | {ft.group.name})", dropped, blocks, free))
    return out


def null_distribution(components: list[Component], extra_fixed: int = 0):
    """(weights {df: w} of the closed-form part, list of d >= 3 cone dimensions to simulate)."""
    w = {sum(c.free for c in components) + extra_fixed: 1.0}
    simulate = []
    for c in components:
        if c.d == 1:
            w = _convolve(w, {0: 0.5, 1: 0.5})
        elif c.d == 2:
            w = _convolve(w, dict(enumerate(PSD2)))
        elif c.d >= 3:
            simulate.append(c.d)
    return w, simulate


# -- the likelihood-ratio test -------------------------------------------------------------------
@dataclass
class VarianceTest:
    """Result of :func:`lrt_variance`.  ``weights``: the chi-bar-square mixture {df: weight}
    (before any simulated d >= 3 part); ``df``: parameters dropped (the naive test's df)."""

    statistic: float
    p_value: float
    p_naive: float
    df: int
    weights: dict
    REML: bool
    loglik_full: float
    loglik_reduced: float
    components: list = field(default_factory=list)
    method: str = "chi-bar-square"

    def to_series(self) -> pd.Series:
        mix = " + ".join(f"{w:.4g} chi2_{j}" for j, w in sorted(self.weights.items()))
        return pd.Series({"logLik full": self.loglik_full, "logLik reduced": self.loglik_reduced,
                          "REML": self.REML, "LRT": self.statistic, "Df": self.df, "null": mix,
                          "Pr(>LRT)": self.p_value, "Pr(>Chisq) naive": self.p_naive}, name=self.method)

    def __str__(self) -> str:
        rows = [f"{k:<18}{v:.6g}" if isinstance(v, float) else f"{k:<18}{v}" for k, v in self.to_series().items()]
        return "\n".join([f"Likelihood-ratio test of variance components ({self.method})", *rows])


def _same_fixed(a, b) -> bool:
    ma, mb = a.model, b.model
    if list(ma.fixef_names) != list(mb.fixef_names):
        return False
    if ma.data is None or mb.data is None:
        return True
    Xa, Xb = a.model_matrices()[0], b.model_matrices()[0]
    return Xa.shape == Xb.shape and np.allclose(Xa, Xb, rtol=1e-10, atol=1e-12)


def _check_same_data(results) -> None:
    n = [r.nobs for r in results]
    if len(set(n)) > 1:
        raise SparseMixedError(f"the models were not fitted to the same data: numbers of observations {n} differ")
    ys = [r.getME("y") if r.model.data is not None else None for r in results]
    for i, y in enumerate(ys[1:], 1):
        if y is not None and ys[0] is not None and not np.array_equal(y, ys[0]):
            raise SparseMixedError(
                f"the models were not fitted to the same data: model {i}'s response differs from model 0's "
                "(same number of rows, different values or rows); fit all models to the same rows")


def _at(res, reml: bool):
    return res if res.REML == reml else res.model.fit(REML=reml)


def lrt_variance(full, reduced=None, REML: bool | None = None, n_sim: int = 200_000,
                 seed: int = 0) -> VarianceTest:
    """Likelihood-ratio test that the variance components dropped from ``full`` are zero.

    full, reduced : fitted :class:`~sparsemixed.LmerResult`; the reduced model's
        random-effects terms must be parts of the full model's (same grouping factor,
        a subset of the columns).  ``reduced=None`` is the model without random effects
        (the full model at theta = 0, i.e. the linear model of its fixed part).
    REML : None (default) uses REML fits when both models have the same fixed effects and
        ML otherwise; the models are refitted as needed.  True with different fixed
        effects raises (restricted likelihoods with different X are not comparable).
    n_sim, seed
        simulation of the chi-bar-square when a term loses >= 3 columns at once.

    Returns a :class:`VarianceTest`: statistic T, the chi-bar-square p-value (see the module
    docstring for the mixture) and the naive chi2_df p-value alongside.
    """
    if reduced is not None:
        _check_same_data([full, reduced])
        same = _same_fixed(full, reduced)
    else:
        same = True
    if REML is None:
        REML = same
    if REML and not same:
        raise SparseMixedError("REML likelihoods of models with different fixed effects are not comparable; "
                               "use REML=False (or None) for an ML likelihood-ratio test")
    f = _at(full, REML)
    fm = full.model
    if reduced is None:
        ll_red = -fm.objective(np.zeros_like(f.theta), REML) / 2.0
        comps = random_difference(fm.terms, [])
        extra = 0
    else:
        rm = reduced.model
        ll_red = _at(reduced, REML).loglik
        comps = random_difference(fm.terms, rm.terms)
        extra = 0
        if not same:
            missing = set(rm.fixef_names) - set(fm.fixef_names)
            if missing:
                raise SparseMixedError(f"the reduced model has fixed effects {sorted(missing)} that the full "
                                       "model lacks: the models are not nested")
            extra = fm.p - rm.p
    if not comps:
        raise SparseMixedError("the two models have the same random effects: nothing to test "
                               "(for fixed effects use sparsemixed.anova)")
    T = 2.0 * (f.loglik - ll_red)
    if T < -1e-6 * max(1.0, abs(f.loglik)):
        warnings.warn(f"the full model's log-likelihood is below the reduced model's by {-T / 2:.3g}: "
                      "the full fit did not converge to its optimum", stacklevel=2)
    T = max(T, 0.0)
    df = sum(c.d * (c.d + 1) // 2 + c.free for c in comps) + extra
    weights, simulate = null_distribution(comps, extra)
    p = chibar_pvalue(T, weights, simulate, n_sim, seed)
    method = f"chi-bar-square (simulated, {n_sim} draws)" if simulate else "chi-bar-square"
    return VarianceTest(T, p, float(stats.chi2.sf(T, df)), df, weights, bool(REML),
                        f.loglik, ll_red, comps, method)


# -- balanced one-way random effects model ------------------------------------------------------
@dataclass
class OneWayAnova:
    """Result of :func:`oneway_anova` (balanced one-way random effects model)."""

    a: int
    n: int
    mean: float
    group_means: pd.Series
    SSA: float
    SSE: float

    @property
    def df_A(self) -> int:
        return self.a - 1

    @property
    def df_E(self) -> int:
        return self.a * (self.n - 1)

    @property
    def MSA(self) -> float:
        return self.SSA / self.df_A

    @property
    def MSE(self) -> float:
        return self.SSE / self.df_E

    @property
    def F(self) -> float:
        return self.MSA / self.MSE

    @property
    def p_value(self) -> float:
        """Exact P(F_{a-1, a(n-1)} >= F) under H0: sigma_A^2 = 0."""
        return float(stats.f.sf(self.F, self.df_A, self.df_E))

    @property
    def table(self) -> pd.DataFrame:
        return pd.DataFrame({"Df": [self.df_A, self.df_E], "Sum Sq": [self.SSA, self.SSE],
                             "Mean Sq": [self.MSA, self.MSE], "F value": [self.F, np.nan],
                             "Pr(>F)": [self.p_value, np.nan]}, index=["group", "Residuals"])

    @property
    def anova_estimates(self) -> dict:
        """Method of moments: sigma_A^2 = (MSA - MSE)/n (may be negative), sigma^2 = MSE."""
        return {"sigma2_A": (self.MSA - self.MSE) / self.n, "sigma2": self.MSE}

    def _closed(self, s: float, denom_boundary: float) -> dict:
        if s > 0:
            return {"mu": self.mean, "sigma2_A": s, "sigma2": self.MSE}
        return {"mu": self.mean, "sigma2_A": 0.0, "sigma2": (self.SSE + self.SSA) / denom_boundary}

    @property
    def ml(self) -> dict:
        """Closed-form ML estimates (truncated at sigma_A^2 = 0)."""
        return self._closed((self.SSA / self.a - self.MSE) / self.n, self.a * self.n)

    @property
    def reml(self) -> dict:
        """Closed-form REML estimates (truncated at sigma_A^2 = 0)."""
        return self._closed((self.MSA - self.MSE) / self.n, self.a * self.n - 1)

    def critical_value(self, alpha: float = 0.05) -> float:
        return float(stats.f.isf(alpha, self.df_A, self.df_E))

    def power(self, ratio, alpha: float = 0.05):
        """Power of the size-alpha F test at rho = sigma_A^2 / sigma^2 (array-like)."""
        rho = np.asarray(ratio, dtype=float)
        out = stats.f.sf(self.critical_value(alpha) / (1.0 + self.n * rho), self.df_A, self.df_E)
        return float(out) if out.ndim == 0 else out

    def __str__(self) -> str:
        return f"One-way random effects ANOVA (a = {self.a}, n = {self.n})\n{self.table.to_string()}"


def oneway_anova(data: pd.DataFrame, response: str, group: str) -> OneWayAnova:
    """ANOVA of the balanced one-way random effects model ``response ~ 1 + (1 | group)``:
    table, moment / ML / REML estimators, exact F test and its power (module docstring)."""
    for c in (response, group):
        if c not in data:
            raise DataError(f"column {c!r} is not in the data")
    y = np.asarray(data[response], dtype=float)
    g = data[group]
    if not np.all(np.isfinite(y)) or g.isna().any():
        raise DataError(f"{response!r} or {group!r} has missing values; drop those rows first "
                        "(the closed forms need balanced complete data)")
    sizes = g.value_counts()
    sizes = sizes[sizes > 0]
    if sizes.nunique() != 1:
        raise DataError(f"the groups of {group!r} are unbalanced (sizes {sorted(set(sizes))}); "
                        "the closed forms need equal group sizes: fit with sparsemixed.lmer instead")
    a, n = len(sizes), int(sizes.iloc[0])
    if a < 2 or n < 2:
        raise DataError(f"need at least 2 groups of at least 2 observations (a = {a}, n = {n})")
    means = pd.Series(y).groupby(np.asarray(g), sort=True).mean()
    mean = float(y.mean())
    ssa = float(n * np.sum((means.to_numpy() - mean) ** 2))
    sse = float(np.sum((y - means.loc[np.asarray(g)].to_numpy()) ** 2))
    return OneWayAnova(a, n, mean, means, ssa, sse)
