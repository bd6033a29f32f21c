"""Model comparison, tests of variance components, the balanced one-way ANOVA and
Nakagawa's R^2 (sparsemixed/inference/compare.py, vartests.py) against
tests/reference/lme4_compare.json (lme4 1.1-31; regenerate with
`Rscript tests/reference/make_compare_reference.R`) and against closed forms / simulation.
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy import stats

import sparsemixed as sm
from sparsemixed.inference import vartests
from sparsemixed.inference.vartests import PSD2, chibar_pvalue, chibar_sf, psd_cone_sample

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "lme4_compare.json").read_text())
TOL = 1e-6

_FITS = {}


def fit(data, formula, reml=True):
    key = (data, formula, reml)
    if key not in _FITS:
        _FITS[key] = sm.lmer(formula, sm.datasets.load(data), REML=reml).fit()
    return _FITS[key]


def _close_p(a, b):
    return (np.isnan(a) and b is None) or abs(a - b) <= TOL * abs(b)


# -- anova ----------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REF["anova"]))
def test_anova_matches_lme4(name):
    c = REF["anova"][name]
    fits = [fit(c["data"], f, c["reml"]) for f in c["formulas"]]
    a = sm.anova(*fits, refit=c["refit"])
    assert list(a.columns) == ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]
    assert list(a.index) == [r["name"] for r in c["rows"]]
    for row in c["rows"]:
        got = a.loc[row["name"]]
        assert got["npar"] == row["npar"]
        for k in ("logLik", "deviance", "AIC", "BIC"):
            assert abs(got[k] - row[k]) < TOL, (k, got[k], row[k])
        if row["Chisq"] is None:
            assert np.isnan(got["Chisq"]) and np.isnan(got["Df"]) and np.isnan(got["Pr(>Chisq)"])
        else:
            assert abs(got["Chisq"] - row["Chisq"]) < TOL
            assert got["Df"] == row["Df"]
            assert _close_p(got["Pr(>Chisq)"], row["p"]), (got["Pr(>Chisq)"], row["p"])


def test_anova_orders_by_npar_and_keeps_names():
    c = REF["anova"]["sleepstudy_three"]
    m0, m1, m2 = (fit(c["data"], f, c["reml"]) for f in c["formulas"])
    a = sm.anova(m2, m0, m1, names=["slope", "intercept", "uncorr"])
    assert list(a.index) == ["intercept", "uncorr", "slope"]
    assert list(a["npar"]) == [4, 5, 6]
    ref = {r["npar"]: r for r in c["rows"]}
    assert np.allclose(a["Chisq"].to_numpy()[1:], [ref[5]["Chisq"], ref[6]["Chisq"]], atol=TOL)
    assert a.attrs["refit"] and all(not f.REML for f in a.attrs["fits"])
    with pytest.raises(sm.SparseMixedError, match="distinct names"):
        sm.anova(m0, m1, names=["a"])


def test_anova_refit_false_needs_equal_fixed_effects():
    c = REF["anova"]["sleepstudy_fixed"]
    m0, m1 = (fit(c["data"], f, True) for f in c["formulas"])
    with pytest.raises(sm.SparseMixedError, match="different fixed effects"):
        sm.anova(m0, m1, refit=False)
    ml = fit(c["data"], c["formulas"][0], False)
    with pytest.raises(sm.SparseMixedError, match="same criterion"):
        sm.anova(ml, m1, refit=False)
    # ML fits with different fixed effects need no refit: refit=False is the ML test itself
    a = sm.anova(ml, fit(c["data"], c["formulas"][1], False), refit=False)
    assert abs(a["Chisq"].iloc[1] - c["rows"][1]["Chisq"]) < TOL


def test_anova_refuses_models_fitted_to_different_data():
    d = sm.datasets.load("sleepstudy")
    full = fit("sleepstudy", "Reaction ~ Days + (Days|Subject)")
    sub = sm.lmer("Reaction ~ Days + (1|Subject)", d.iloc[:170]).fit()
    with pytest.raises(sm.SparseMixedError, match="numbers of observations"):
        sm.anova(sub, full)
    d2 = d.copy()
    d2["Reaction"] = d2["Reaction"].to_numpy()[::-1]
    other = sm.lmer("Reaction ~ Days + (1|Subject)", d2).fit()
    with pytest.raises(sm.SparseMixedError, match="response differs"):
        sm.anova(other, full)
    with pytest.raises(sm.SparseMixedError, match="response differs"):
        sm.lrt_variance(full, other)


def test_anova_of_one_model_dispatches_to_its_anova_method():
    class Stub:
        def anova(self, **kw):
            return ("F table", kw)

    assert sm.anova(Stub(), type=3, ddf="Satterthwaite") == ("F table", {"type": 3, "ddf": "Satterthwaite"})
    with pytest.raises(TypeError, match="unexpected keyword"):
        sm.anova(Stub(), Stub(), type=3)


# -- tests of variance components ---------------------------------------------------------------
@pytest.mark.expect_warnings((sm.SingularFitWarning,))
@pytest.mark.parametrize("name", sorted(REF["variance"]))
def test_variance_lrt_matches_reference(name):
    v = REF["variance"][name]
    full = fit(v["data"], v["full"])                      # REML fits; refitted by ML when needed
    red = fit(v["data"], v["reduced"]) if v.get("reduced") else None
    t = full.test_variance_component(red)
    assert t.REML == v["reml"]
    assert abs(t.loglik_full - v["logLik_full"]) < TOL
    assert abs(t.loglik_reduced - v["logLik_reduced"]) < TOL
    assert abs(t.statistic - v["statistic"]) < TOL
    assert t.weights == pytest.approx(dict(zip(v["mixture_df"], v["mixture_weights"])))
    assert t.df == v["naive_df"]
    assert t.p_value == pytest.approx(v["p_value"], rel=TOL)
    assert t.p_naive == pytest.approx(v["p_naive"], rel=TOL)
    assert "LRT" in str(t)


def test_chibar_weights_of_several_and_whole_blocks():
    # both scalar variances of Penicillin dropped: binomial 1/4, 1/2, 1/4
    t = sm.lrt_variance(fit("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"))
    assert t.weights == pytest.approx({0: 0.25, 1: 0.5, 2: 0.25})
    assert t.df == 2
    # a whole 2 x 2 block dropped: intrinsic volumes of the PSD cone
    t = sm.lrt_variance(fit("sleepstudy", "Reaction ~ Days + (Days|Subject)"))
    assert t.weights == pytest.approx(dict(enumerate(PSD2)))
    assert t.df == 3 and t.p_value < t.p_naive
    # the uncorrelated model (Days||Subject) is two scalar terms of one factor
    t = sm.lrt_variance(fit("sleepstudy", "Reaction ~ Days + (Days||Subject)"),
                        fit("sleepstudy", "Reaction ~ Days + (1|Subject)"))
    assert t.weights == pytest.approx({0: 0.5, 1: 0.5})


def test_chibar_mixtures_against_simulation():
    rng = np.random.default_rng(20240601)
    x1 = psd_cone_sample(1, 100_000, rng)            # = max(0, z)^2
    x2 = psd_cone_sample(2, 100_000, rng)
    for t in (0.3, 1.0, 2.5, 5.0):
        assert np.mean(x1 >= t) == pytest.approx(chibar_sf(t, {0: 0.5, 1: 0.5}), abs=5e-3)
        assert np.mean(x2 >= t) == pytest.approx(chibar_sf(t, dict(enumerate(PSD2))), abs=5e-3)
    assert np.mean(x2 == 0) == pytest.approx(PSD2[0], abs=5e-3)
    # the simulated route with a 2 x 2 cone reproduces the closed-form mixture
    w = {1: 1.0}
    exact = chibar_sf(3.0, vartests._convolve(w, dict(enumerate(PSD2))))
    assert chibar_pvalue(3.0, w, [2], n_sim=200_000, seed=3) == pytest.approx(exact, abs=5e-3)
    # d = 3 against an independent construction (GOE from a symmetric Gaussian with scipy)
    g = stats.norm.rvs(size=(100_000, 6), random_state=11)
    S = np.zeros((100_000, 3, 3))
    iu = np.triu_indices(3, 1)
    S[:, [0, 1, 2], [0, 1, 2]] = g[:, :3]
    S[:, iu[0], iu[1]] = g[:, 3:] / np.sqrt(2)
    S[:, iu[1], iu[0]] = g[:, 3:] / np.sqrt(2)
    ref = np.sum(np.clip(np.linalg.eigvalsh(S), 0, None) ** 2, axis=1)
    for t in (1.0, 4.0):
        assert chibar_pvalue(t, {0: 1.0}, [3], n_sim=100_000, seed=5) == pytest.approx(np.mean(ref >= t), abs=6e-3)


def test_three_column_block_is_simulated():
    rng = np.random.default_rng(7)
    a, n = 12, 8
    g = np.repeat(np.arange(a), n)
    x1, x2 = rng.normal(size=a * n), rng.normal(size=a * n)
    y = 0.3 * rng.normal(size=a)[g] + 0.2 * rng.normal(size=a)[g] * x1 + rng.normal(size=a * n)
    d = pd.DataFrame({"y": y, "x1": x1, "x2": x2, "g": pd.Categorical(g)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        full = sm.lmer("y ~ x1 + x2 + (x1 + x2 | g)", d).fit()
        t = sm.lrt_variance(full, n_sim=20_000)
    assert t.method.startswith("chi-bar-square (simulated") and t.df == 6
    assert t.p_value <= t.p_naive + 0.01


def test_variance_lrt_refuses_bad_comparisons():
    full = fit("sleepstudy", "Reaction ~ Days + (Days|Subject)")
    red_fixed = fit("sleepstudy", "Reaction ~ 1 + (1|Subject)")
    with pytest.raises(sm.SparseMixedError, match="not comparable"):
        sm.lrt_variance(full, red_fixed, REML=True)
    with pytest.raises(sm.SparseMixedError, match="not nested"):
        sm.lrt_variance(fit("sleepstudy", "Reaction ~ Days + (1|Subject)"), full)
    with pytest.raises(sm.SparseMixedError, match="nothing to test"):
        sm.lrt_variance(full, fit("sleepstudy", "Reaction ~ 1 + (Days|Subject)"))


# -- balanced one-way random effects model --------------------------------------------------------
@pytest.mark.parametrize("name", ["Dyestuff", "Dyestuff2"])
def test_oneway_table_by_hand(name):
    r = REF["oneway"][name]
    o = sm.oneway_anova(sm.datasets.load(name), "Yield", "Batch")
    assert (o.a, o.n, o.df_A, o.df_E) == (r["a"], r["n"], r["df_A"], r["df_E"])
    for k in ("SSA", "SSE", "MSA", "MSE", "F"):
        assert getattr(o, k) == pytest.approx(r[k], rel=1e-12), k
    assert o.mean == pytest.approx(r["mean"], rel=1e-12)
    assert o.p_value == pytest.approx(r["p_value"], rel=1e-9)
    tab = o.table
    assert tab.loc["group", "Sum Sq"] == pytest.approx(r["SSA"], rel=1e-12)
    assert tab.loc["Residuals", "Mean Sq"] == pytest.approx(r["MSE"], rel=1e-12)
    mom = o.anova_estimates
    assert mom["sigma2_A"] == pytest.approx((r["MSA"] - r["MSE"]) / r["n"], rel=1e-12)
    # lecture closed forms = lme4's fits (Dyestuff interior, Dyestuff2 on the boundary)
    for closed, lme4 in ((o.reml, r["lme4_reml"]), (o.ml, r["lme4_ml"])):
        assert closed["sigma2_A"] == pytest.approx(lme4[0], rel=1e-6, abs=1e-8)
        assert closed["sigma2"] == pytest.approx(lme4[1], rel=1e-6)


def _balanced(seed, a=8, n=5, s2a=1.0):
    rng = np.random.default_rng(seed)
    g = np.repeat([f"g{i:02d}" for i in range(a)], n)
    y = 10 + np.repeat(rng.normal(0, np.sqrt(s2a), a), n) + rng.normal(0, 1, a * n)
    return pd.DataFrame({"y": y, "g": g})


@pytest.mark.parametrize("seed,s2a,case", [(0, 1.0, "interior"), (1, 0.0, "both_boundary"),
                                           (12, 0.0, "ml_boundary_only")])
def test_oneway_closed_forms_equal_lmer_fits(seed, s2a, case):
    d = _balanced(seed, s2a=s2a)
    o = sm.oneway_anova(d, "y", "g")
    got = ("interior" if o.SSA / o.a > o.MSE else "ml_boundary_only" if o.MSA > o.MSE else "both_boundary")
    assert got == case                                 # the data exercise the intended branch
    for reml, closed in ((True, o.reml), (False, o.ml)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            r = sm.lmer("y ~ 1 + (1|g)", d, REML=reml).fit()
        assert r.beta[0] == pytest.approx(closed["mu"], rel=1e-10)
        assert r.sigma ** 2 == pytest.approx(closed["sigma2"], rel=1e-6)
        assert (r.theta[0] * r.sigma) ** 2 == pytest.approx(closed["sigma2_A"], rel=1e-6, abs=1e-6 * closed["sigma2"])
        boundary = closed["sigma2_A"] == 0.0
        assert boundary == (case == "both_boundary" or (case == "ml_boundary_only" and not reml))


def test_oneway_f_test_and_power():
    o = sm.oneway_anova(_balanced(0, a=6, n=5), "y", "g")
    assert o.p_value == pytest.approx(stats.f.sf(o.MSA / o.MSE, 5, 24), rel=1e-12)
    assert o.power(0.0, 0.05) == pytest.approx(0.05, rel=1e-10)
    assert o.power(0.0, 0.01) == pytest.approx(0.01, rel=1e-10)
    pw = o.power([0.1, 0.5, 2.0])
    assert np.all(np.diff(pw) > 0)
    # power by simulation of the model itself (seeded): rejection rate of MSA/MSE > F_crit
    rng = np.random.default_rng(99)
    a, n, reps = 6, 5, 20_000
    for rho in (0.3, 1.0):
        A = rng.normal(0, np.sqrt(rho), (reps, a, 1))
        y = A + rng.normal(0, 1, (reps, a, n))
        gm = y.mean(axis=2)
        msa = n * ((gm - gm.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) / (a - 1)
        mse = ((y - gm[:, :, None]) ** 2).sum(axis=(1, 2)) / (a * (n - 1))
        rate = np.mean(msa / mse > o.critical_value(0.05))
        p = o.power(rho, 0.05)
        assert abs(rate - p) < 4 * np.sqrt(p * (1 - p) / reps), (rho, rate, p)


def test_oneway_refuses_unbalanced_or_missing():
    d = sm.datasets.load("Dyestuff")
    with pytest.raises(sm.DataError, match="unbalanced"):
        sm.oneway_anova(d.iloc[1:], "Yield", "Batch")
    d2 = d.copy()
    d2.loc[0, "Yield"] = np.nan
    with pytest.raises(sm.DataError, match="missing"):
        sm.oneway_anova(d2, "Yield", "Batch")


# -- Nakagawa's R^2 ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", sorted(REF["nakagawa"]))
def test_r2_nakagawa_matches_hand_computation_in_r(name):
    r = REF["nakagawa"][name]
    got = fit(r["data"], r["formula"], r["reml"]).r2_nakagawa()
    for k in ("marginal", "conditional"):
        assert abs(got[k] - r[k]) < TOL, (k, got[k], r[k])
    for k in ("var_fixed", "var_random", "var_residual"):
        assert got[k] == pytest.approx(r[k], rel=1e-5, abs=1e-9)
