"""Closed-form ML and REML estimates of the balanced one-way random-effects model

    y_ij = mu + A_i + e_ij,   A_i ~ N(0, sA2),  e_ij ~ N(0, se2),   i = 1..a, j = 1..n

    SSA = n sum_i (ybar_i - ybar)^2,    SSE = sum_ij (y_ij - ybar_i)^2

ML:   sA2_dot = (SSA/a - SSE/(a(n-1))) / n
      sA2_dot > 0:  (mu, sA2, se2) = (ybar, sA2_dot, SSE/(a(n-1)))
      otherwise:    (ybar, 0, (SSE + SSA)/(an))
REML: sA2_dot = (SSA/(a-1) - SSE/(a(n-1))) / n
      sA2_dot > 0:  (ybar, sA2_dot, SSE/(a(n-1)))
      otherwise:    (ybar, 0, (SSE + SSA)/(an - 1))

and, with lambda = se2 + n sA2, the maximised criteria (lme4's -2 log-likelihood; REML
without the log|X'X| term):

ML:   a n log(2 pi) + a(n-1) log se2 + a log lambda + SSE/se2 + SSA/lambda
REML: (a n - 1) log(2 pi) + a(n-1) log se2 + a log lambda + log(a n / lambda) + SSE/se2 + SSA/lambda

The fit of ``y ~ 1 + (1|g)`` is checked against them at an interior and at a boundary
(sA2 = 0) case, with levels and rows shuffled so that nothing relies on sorted data.
"""
from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm

REL = 1e-5


def simulate(seed: int, a: int, n: int, mu: float, sd_a: float, sd_e: float) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    A = rng.normal(0.0, sd_a, a) if sd_a > 0 else np.zeros(a)
    g = np.repeat(np.arange(a), n)
    y = mu + A[g] + rng.normal(0.0, sd_e, a * n)
    df = pd.DataFrame({"g": [f"batch{v:02d}" for v in g], "y": y})
    return df.iloc[rng.permutation(len(df))].reset_index(drop=True)


def sums_of_squares(df: pd.DataFrame) -> tuple[float, float, float, int, int]:
    y = df["y"].to_numpy(float)
    groups = df["g"].to_numpy()
    labels = np.unique(groups)
    a = labels.size
    n = len(df) // a
    ybar = y.mean()
    ssa = sse = 0.0
    for lab in labels:
        yi = y[groups == lab]
        assert yi.size == n                         # balanced
        ssa += n * (yi.mean() - ybar) ** 2
        sse += float(np.sum((yi - yi.mean()) ** 2))
    return ssa, sse, ybar, a, n


def closed_form(df: pd.DataFrame, reml: bool) -> dict:
    ssa, sse, ybar, a, n = sums_of_squares(df)
    if reml:
        dot = (ssa / (a - 1) - sse / (a * (n - 1))) / n
        if dot > 0:
            sa2, se2 = dot, sse / (a * (n - 1))
        else:
            sa2, se2 = 0.0, (sse + ssa) / (a * n - 1)
    else:
        dot = (ssa / a - sse / (a * (n - 1))) / n
        if dot > 0:
            sa2, se2 = dot, sse / (a * (n - 1))
        else:
            sa2, se2 = 0.0, (sse + ssa) / (a * n)
    lam = se2 + n * sa2
    N = a * n
    crit = a * (n - 1) * math.log(se2) + a * math.log(lam) + sse / se2 + ssa / lam
    if reml:
        crit += (N - 1) * math.log(2 * math.pi) + math.log(N / lam)
    else:
        crit += N * math.log(2 * math.pi)
    return {"mu": ybar, "sA2": sa2, "se2": se2, "dot": dot, "criterion": crit,
            "var_mu": lam / N, "a": a, "n": n}


def fit(df: pd.DataFrame, reml: bool):
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.ConvergenceWarning)
        return sm.lmer("y ~ 1 + (1|g)", df, REML=reml).fit()


def random_effect_variance(res) -> float:
    vc = res.varcorr
    row = vc[(vc["grp"] == "g") & (vc["var1"] == "(Intercept)") & vc["var2"].isna()]
    assert len(row) == 1, vc
    return float(row["vcov"].iloc[0])


def residual_variance(res) -> float:
    vc = res.varcorr
    row = vc[vc["grp"] == "Residual"]
    assert len(row) == 1, vc
    assert float(row["vcov"].iloc[0]) == pytest.approx(res.sigma ** 2, rel=1e-12)
    return res.sigma ** 2


# (seed, a groups, n per group, mu, sigma_A, sigma_e)
INTERIOR = [
    (11, 8, 5, 10.0, 2.0, 1.0),
    (12, 6, 3, -3.0, 0.7, 1.5),
    (13, 20, 2, 100.0, 5.0, 3.0),
]
# sigma_A = 0; seeds chosen so that the REML (hence also the ML) sA2_dot is negative
BOUNDARY = [
    (3, 8, 5, 10.0, 0.0, 1.0),
    (4, 12, 4, -2.0, 0.0, 2.0),
]


@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
@pytest.mark.parametrize("case", INTERIOR, ids=[f"interior{i}" for i in range(len(INTERIOR))])
def test_interior(case, reml):
    df = simulate(*case)
    cf = closed_form(df, reml)
    assert cf["dot"] > 0, "the interior case must have a positive sA2_dot"
    res = fit(df, reml)
    assert res.fixef["(Intercept)"] == pytest.approx(cf["mu"], rel=1e-9, abs=1e-9)
    assert random_effect_variance(res) == pytest.approx(cf["sA2"], rel=REL)
    assert residual_variance(res) == pytest.approx(cf["se2"], rel=REL)
    assert res.objective == pytest.approx(cf["criterion"], rel=1e-9)
    assert res.loglik == pytest.approx(-cf["criterion"] / 2, rel=1e-9)
    # Var(mu-hat) = (sA2 + se2/n)/a at the estimates
    assert res.vcov.loc["(Intercept)", "(Intercept)"] == pytest.approx(cf["var_mu"], rel=REL)
    assert not res.is_singular
    # conditional modes: BLUP of A_i = n sA2/(se2 + n sA2) (ybar_i - ybar)
    shrink = cf["n"] * cf["sA2"] / (cf["se2"] + cf["n"] * cf["sA2"])
    means = df.groupby("g")["y"].mean()
    re = res.ranef["g"]["(Intercept)"]
    np.testing.assert_allclose(re.loc[means.index].to_numpy(), shrink * (means - cf["mu"]).to_numpy(),
                               rtol=REL, atol=REL * float(np.abs(means - cf["mu"]).max()))


@pytest.mark.expect_warnings((sm.SingularFitWarning,))
@pytest.mark.parametrize("reml", [False, True], ids=["ML", "REML"])
@pytest.mark.parametrize("case", BOUNDARY, ids=[f"boundary{i}" for i in range(len(BOUNDARY))])
def test_boundary(case, reml):
    df = simulate(*case)
    cf = closed_form(df, reml)
    assert cf["dot"] <= 0, f"seed {case[0]} does not give a boundary case (sA2_dot = {cf['dot']})"
    assert closed_form(df, reml=True)["dot"] <= 0      # REML's dot <= 0 implies ML's
    res = fit(df, reml)
    assert res.fixef["(Intercept)"] == pytest.approx(cf["mu"], rel=1e-9, abs=1e-9)
    # sA2 = 0: compare on the scale of the residual variance
    assert random_effect_variance(res) == pytest.approx(0.0, abs=REL * cf["se2"])
    assert residual_variance(res) == pytest.approx(cf["se2"], rel=REL)
    assert res.objective == pytest.approx(cf["criterion"], rel=1e-9)
    assert res.vcov.loc["(Intercept)", "(Intercept)"] == pytest.approx(cf["se2"] / (cf["a"] * cf["n"]), rel=REL)
    assert res.is_singular
    assert np.all(np.abs(res.ranef["g"]["(Intercept)"].to_numpy()) <= REL * math.sqrt(cf["se2"]))


def test_ml_and_reml_differ_by_the_degrees_of_freedom():
    """Interior case: REML's residual variance is SSE/(a(n-1)) for both criteria, but the
    group variances differ by SSA/n (1/(a-1) - 1/a): a check that REML= is honoured."""
    df = simulate(*INTERIOR[0])
    ssa, sse, _, a, n = sums_of_squares(df)
    ml, reml = fit(df, False), fit(df, True)
    diff = ssa / n * (1 / (a - 1) - 1 / a)
    assert random_effect_variance(reml) - random_effect_variance(ml) == pytest.approx(diff, rel=1e-4)
    assert ml.REML is False and reml.REML is True


@pytest.mark.expect_warnings((sm.SingularFitWarning,))
def test_ml_on_the_boundary_while_reml_is_interior():
    """A data set where ML's sA2_dot <= 0 < REML's: ML must report sA2 = 0 and
    se2 = (SSE+SSA)/(an), REML the positive moment solution."""
    df = simulate(53, 6, 4, 0.0, 0.3, 1.0)
    ml_cf, reml_cf = closed_form(df, False), closed_form(df, True)
    assert ml_cf["dot"] <= 0 < reml_cf["dot"]
    ml, reml = fit(df, False), fit(df, True)
    assert random_effect_variance(ml) == pytest.approx(0.0, abs=REL * ml_cf["se2"])
    assert residual_variance(ml) == pytest.approx(ml_cf["se2"], rel=REL)
    assert ml.objective == pytest.approx(ml_cf["criterion"], rel=1e-9)
    assert random_effect_variance(reml) == pytest.approx(reml_cf["sA2"], rel=REL)
    assert residual_variance(reml) == pytest.approx(reml_cf["se2"], rel=REL)
    assert reml.objective == pytest.approx(reml_cf["criterion"], rel=1e-9)
