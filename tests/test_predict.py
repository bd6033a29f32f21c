"""Prediction, simulation, the parametric bootstrap and confint (sparsemixed/inference/
predict.py, simulate.py) against tests/reference/lme4_predict.json (lme4 1.1-31; regenerate
with `Rscript tests/reference/make_predict_reference.R`).

Predictions are compared at lme4's theta (a result rebuilt from the model's PLS state there),
so that only prediction is tested, to 1e-9 relative; from our own fit the optimizers' small
differences in theta allow 1e-5.
"""
import json
import pathlib
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.stats import norm

import sparsemixed as sm
from sparsemixed.errors import DataError, FormulaError
from sparsemixed.inference.simulate import (BootstrapWarning, _sdcor_statistic, format_perc,
                                            norm_inter)
from sparsemixed.results.lmer_result import LmerResult

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "lme4_predict.json").read_text())
Z975 = norm.ppf(0.975)


def _at_theta(res, theta):
    """The result of res.model at theta (beta, sigma, b profiled there)."""
    state = res.model.pls(np.asarray(theta, float))
    return LmerResult.from_state(res.model, state, res.optsummary, res.REML)


def _data(name):
    r = REF[name]
    d = sm.datasets.load(r["data"])
    if "weights" in r:
        d["w"], d["off"] = r["weights"], r["offset"]
    return d


@pytest.fixture(scope="module")
def fits():
    out = {}
    for name in ("sleepstudy", "penicillin", "weighted_offset"):
        r = REF[name]
        kw = dict(weights="w", offset="off") if "weights" in r else {}
        own = sm.lmer(r["formula"], _data(name), REML=r["reml"], **kw).fit()
        out[name] = (own, _at_theta(own, r["theta"]))
    return out


@pytest.fixture(scope="module")
def dyestuff():
    return sm.lmer("Yield ~ 1 + (1|Batch)", sm.datasets.load("Dyestuff")).fit()


PRED_CASES = [
    ("sleepstudy", "pred", "newdata", {}),
    ("sleepstudy", "pred_re_na", "newdata", {"re_form": "NA"}),
    ("sleepstudy", "pred_re_na", "newdata", {"re_form": "~0"}),
    ("sleepstudy", "pred_re_int", "newdata", {"re_form": "~(1|Subject)"}),
    ("sleepstudy", "pred_re_slope", "newdata", {"re_form": "~ (0 + Days | Subject)"}),
    ("sleepstudy", "pred_new", "newdata_new", {"allow_new_levels": True}),
    ("penicillin", "pred", "newdata", {}),
    ("penicillin", "pred_re_na", "newdata", {"re_form": "~0"}),
    ("penicillin", "pred_re_plate", "newdata", {"re_form": "~(1|plate)"}),
    ("penicillin", "pred_re_sample", "newdata", {"re_form": "~(1 | sample)"}),
    ("penicillin", "pred_new", "newdata_new", {"allow_new_levels": True}),
    ("penicillin", "pred_new_plate", "newdata_new", {"re_form": "~(1|plate)", "allow_new_levels": True}),
    ("weighted_offset", "pred", "newdata", {}),
    ("weighted_offset", "pred_re_na", "newdata", {"re_form": "NA"}),
]


@pytest.mark.parametrize("name,key,nd,kw", PRED_CASES, ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(PRED_CASES)])
def test_predict_matches_lme4(fits, name, key, nd, kw):
    own, at = fits[name]
    newdata = pd.DataFrame(REF[name][nd], index=np.arange(len(REF[name][key])) + 10)
    expected = np.array(REF[name][key])
    p = at.predict(newdata, **kw)
    assert isinstance(p, pd.Series) and list(p.index) == list(newdata.index)
    np.testing.assert_allclose(p.to_numpy(), expected, rtol=1e-9)
    np.testing.assert_allclose(own.predict(newdata, **kw).to_numpy(), expected, rtol=1e-5)


@pytest.mark.parametrize("name", ["sleepstudy", "weighted_offset"])
def test_predict_without_newdata_is_lme4_fitted(fits, name):
    own, at = fits[name]
    np.testing.assert_allclose(at.predict().to_numpy(), REF[name]["fitted"], rtol=1e-9)
    np.testing.assert_allclose(at.predict().to_numpy(), at.fitted(), rtol=1e-12)


@pytest.mark.parametrize("name", ["sleepstudy", "penicillin", "weighted_offset"])
def test_interval_variances_match_lme4(fits, name):
    """se_fit^2 = x'Vx and (prediction half-width / z)^2 = x'Vx + z'Var(b|y)z + sigma^2,
    with lme4's vcov and sigma^2 Lambda M^-1 Lambda' (dense, in R)."""
    _, at = fits[name]
    r = REF[name]
    nd = pd.DataFrame(r["newdata"])
    conf = at.predict(nd, interval="confidence", se_fit=True)
    assert list(conf.columns) == ["fit", "lwr", "upr", "se_fit"]
    np.testing.assert_allclose(conf["se_fit"], r["se_fixed"], rtol=1e-8)
    np.testing.assert_allclose(conf["fit"], r["pred"], rtol=1e-9)
    np.testing.assert_allclose(conf["upr"] - conf["fit"], Z975 * conf["se_fit"], rtol=1e-10)
    np.testing.assert_allclose(conf["fit"] - conf["lwr"], Z975 * conf["se_fit"], rtol=1e-10)
    pred = at.predict(nd, interval="prediction", level=0.9)
    assert list(pred.columns) == ["fit", "lwr", "upr"]
    var = ((pred["upr"] - pred["fit"]) / norm.ppf(0.95)) ** 2
    np.testing.assert_allclose(var - conf["se_fit"] ** 2 - at.sigma ** 2, r["condvar"], rtol=1e-7)
    se_only = at.predict(nd, se_fit=True)
    assert list(se_only.columns) == ["fit", "se_fit"]


def test_new_level_adds_its_prior_variance(fits):
    """Row 1 of Penicillin's newdata_new: plate 'zz' is new, sample 'B' is seen."""
    _, at = fits["penicillin"]
    nd = pd.DataFrame(REF["penicillin"]["newdata_new"])
    full = at.predict(nd, allow_new_levels=True, interval="prediction")
    only_sample = at.predict(nd, re_form="~(1|sample)", interval="prediction", allow_new_levels=True)
    v = lambda df: ((df["upr"] - df["fit"]) / Z975) ** 2
    theta_plate = at.theta[0]                     # terms in lme4 order: plate (24 levels) first
    assert at.model.terms[0].group.name == "plate"
    assert v(full)[1] - v(only_sample)[1] == pytest.approx(at.sigma ** 2 * theta_plate ** 2, rel=1e-9)
    # a row whose both levels are new: fixed-part variance + both prior variances + sigma^2
    se2 = at.predict(nd, se_fit=True, allow_new_levels=True)["se_fit"][3] ** 2
    expect = se2 + at.sigma ** 2 * (1 + theta_plate ** 2 + at.theta[1] ** 2)
    assert v(full)[3] == pytest.approx(expect, rel=1e-9)


def test_missing_values_give_nan_predictions(fits):
    _, at = fits["sleepstudy"]
    nd = pd.DataFrame({"Days": [1.0, np.nan, 3.0], "Subject": ["308", "309", "310"]})
    p = at.predict(nd)
    assert np.isnan(p.iloc[1]) and np.isfinite(p.iloc[[0, 2]]).all()
    assert p.iloc[2] == pytest.approx(at.predict(nd.iloc[[2]]).iloc[0], rel=1e-12)
    df = at.predict(nd.iloc[[1]], interval="prediction")
    assert list(df.columns) == ["fit", "lwr", "upr"] and df.isna().all().all()


# -- errors --------------------------------------------------------------------------------
def test_new_grouping_level_is_an_error_naming_it(fits):
    _, at = fits["sleepstudy"]
    nd = pd.DataFrame({"Days": [1, 2], "Subject": ["308", "999"]})
    with pytest.raises(DataError, match=r"'999'.*'Subject'.*allow_new_levels=True"):
        at.predict(nd)
    assert np.isfinite(at.predict(nd, re_form="NA")).all()          # not needed without the term
    with pytest.raises(DataError, match=r"'Subject' has missing values.*allow_new_levels"):
        at.predict(pd.DataFrame({"Days": [1, 2], "Subject": ["308", None]}))


def test_missing_columns_are_errors_naming_them(fits):
    _, at = fits["sleepstudy"]
    with pytest.raises(DataError, match=r"lacks column\(s\) 'Days'"):
        at.predict(pd.DataFrame({"Subject": ["308"]}))
    with pytest.raises(DataError, match=r"lacks column\(s\) 'Subject'.*\(Days \| Subject\)"):
        at.predict(pd.DataFrame({"Days": [1.0]}))
    _, wat = fits["weighted_offset"]
    nd = pd.DataFrame(REF["weighted_offset"]["newdata"]).drop(columns="off")
    with pytest.raises(DataError, match=r"'off'.*offset"):
        wat.predict(nd)


def test_unseen_fixed_factor_level_is_an_error(fits):
    _, wat = fits["weighted_offset"]
    nd = pd.DataFrame(REF["weighted_offset"]["newdata"])
    nd.loc[1, "phase"] = "middle"
    with pytest.raises(DataError, match=r"column 'phase'.*'middle'.*early, late"):
        wat.predict(nd)


def test_bad_re_form_is_an_error(fits):
    _, at = fits["sleepstudy"]
    nd = pd.DataFrame(REF["sleepstudy"]["newdata"])
    with pytest.raises(FormulaError, match=r"'Item' is not among.*Subject"):
        at.predict(nd, re_form="~(1|Item)")
    with pytest.raises(ValueError, match="interval"):
        at.predict(nd, interval="tolerance")


# -- residuals (item 5) -------------------------------------------------------------------
def test_pearson_residuals_are_lme4s(fits):
    _, at = fits["weighted_offset"]
    r = REF["weighted_offset"]
    np.testing.assert_allclose(at.residuals("pearson"), r["resid_pearson"], rtol=1e-7)
    np.testing.assert_allclose(at.residuals("pearson", scaled=True), r["resid_pearson_scaled"], rtol=1e-7)
    np.testing.assert_allclose(at.residuals("response"), r["resid_response"], rtol=1e-7)


# -- simulate ------------------------------------------------------------------------------
def test_simulate_moments_match_the_model(fits):
    """Mean X beta + offset and covariance sigma^2 (Z Lambda Lambda' Z' + W^-1), use_u=False;
    mean fitted and variance sigma^2 / w with use_u=True (weighted, offset model)."""
    own, _ = fits["weighted_offset"]
    X, Z = own.model_matrices()
    w = np.asarray(REF["weighted_offset"]["weights"])
    off = np.asarray(REF["weighted_offset"]["offset"])
    sims = own.simulate(nsim=3000, seed=11).to_numpy()
    assert sims.shape == (own.nobs, 3000)
    ZL = (Z @ own.model.Lambda(own.theta)).toarray()
    var = own.sigma ** 2 * ((ZL ** 2).sum(axis=1) + 1.0 / w)
    se_mean = np.sqrt(var / 3000)
    z = (sims.mean(axis=1) - (X @ own.beta + off)) / se_mean
    assert np.abs(z).max() < 4.5 and abs(z.mean()) < 0.5
    ratio = sims.var(axis=1, ddof=1) / var
    assert abs(ratio.mean() - 1) < 0.02 and np.abs(ratio - 1).max() < 0.2
    # two rows of one subject share its random effect
    i, j = np.flatnonzero(ZL[:, 0] != 0)[:2]
    cov = np.cov(sims[i], sims[j])[0, 1]
    assert cov == pytest.approx(own.sigma ** 2 * ZL[i] @ ZL[j], rel=0.15)
    cond = own.simulate(nsim=3000, seed=12, use_u=True).to_numpy()
    z = (cond.mean(axis=1) - own.fitted()) / (own.sigma / np.sqrt(w * 3000))
    assert np.abs(z).max() < 4.5
    ratio = cond.var(axis=1, ddof=1) / (own.sigma ** 2 / w)
    assert abs(ratio.mean() - 1) < 0.02


def test_simulate_is_seeded(dyestuff):
    a = dyestuff.simulate(3, seed=5)
    assert list(a.columns) == ["sim_1", "sim_2", "sim_3"] and a.shape == (30, 3)
    pd.testing.assert_frame_equal(a, dyestuff.simulate(3, seed=5))
    assert not np.allclose(a.to_numpy(), dyestuff.simulate(3, seed=6).to_numpy())
    pd.testing.assert_series_equal(a["sim_1"], dyestuff.simulate(1, seed=5)["sim_1"])


# -- bootstrap -----------------------------------------------------------------------------
@pytest.mark.expect_warnings((sm.inference.simulate.BootstrapWarning,))
def test_bootstrap_reuses_the_factor_and_refits_simulated_responses(dyestuff, monkeypatch):
    import sparsemixed.engine as model_mod

    def no_analysis(*a, **k):
        raise AssertionError("the bootstrap must not redo the symbolic analysis")

    monkeypatch.setattr(model_mod, "select_factor", no_analysis)
    model = dyestuff.model
    factor, perm = model.factor, model.factor.perm().copy()
    seen = []

    def stat(res):
        seen.append((res.model.factor is factor, res.model.relcov is model.relcov, res.REML,
                     np.array_equal(res.model.factor.perm(), perm)))
        return pd.Series({"mu": res.beta[0], "sigma": res.sigma})

    bb = dyestuff.bootstrap(4, statistic=stat, seed=21)
    assert bb.shape == (4, 2) and list(bb.columns) == ["mu", "sigma"]
    assert seen and all(all(s) for s in seen)
    assert bb.attrs["nfail"] == 0 and bb.attrs["t0"]["mu"] == pytest.approx(dyestuff.beta[0])
    # replicate 2 is the refit of simulate(seed)'s second column
    y2 = dyestuff.simulate(2, seed=21)["sim_2"].to_numpy()
    ref = model.refit(y2, REML=True)
    assert bb["sigma"][1] == pytest.approx(ref.sigma, rel=1e-6)
    assert bb["mu"][1] == pytest.approx(ref.beta[0], rel=1e-8)


def test_bootstrap_failed_refits_and_warnings_are_summarised(dyestuff, monkeypatch):
    model = dyestuff.model
    real = model.refit
    calls = []

    def flaky(y, REML=None, **kw):
        calls.append(kw.get("start"))
        if len(calls) == 2:
            raise sm.NumericalError("factorization failed")
        warnings.warn("did not converge", sm.ConvergenceWarning)
        return real(y, REML=REML, **kw)

    monkeypatch.setattr(model, "refit", flaky)
    with pytest.warns(BootstrapWarning) as rec:
        bb = dyestuff.bootstrap(3, seed=2)
    msgs = [str(w.message) for w in rec]
    assert any("1 of 3 bootstrap refits failed" in m for m in msgs)
    assert any("2 of 3 bootstrap refits raised a ConvergenceWarning" in m for m in msgs)
    assert bb.attrs["nfail"] == 1 and bb.attrs["warnings"] == {"ConvergenceWarning": 2}
    assert bb.iloc[1].isna().all() and bb.iloc[[0, 2]].notna().all().all()
    assert all(np.array_equal(s, dyestuff.theta) for s in calls)      # started at theta-hat


def test_bootstrap_default_statistic_and_progress(dyestuff):
    bb = dyestuff.bootstrap(2, seed=1, progress=True)
    assert list(bb.columns) == ["(Intercept)", "sigma", "Batch.(Intercept)"]
    assert np.isfinite(bb.to_numpy()).all()


# -- confint -------------------------------------------------------------------------------
def test_wald_confint_matches_lme4(fits):
    own, at = fits["sleepstudy"]
    for key, kw in (("confint_wald", {}), ("confint_wald90", {"level": 0.9, "parm": ["Days", ".sig02"]})):
        r = REF["sleepstudy"][key]
        ci = at.confint(method="Wald", **kw)
        assert list(ci.index) == r["rownames"] and list(ci.columns) == r["colnames"]
        lo = np.array([np.nan if v == "NA" else v for v in r["lower"]], float)
        hi = np.array([np.nan if v == "NA" else v for v in r["upper"]], float)
        np.testing.assert_allclose(ci.iloc[:, 0], lo, rtol=1e-9)
        np.testing.assert_allclose(ci.iloc[:, 1], hi, rtol=1e-9)
        np.testing.assert_allclose(own.confint(**kw).to_numpy(), np.column_stack([lo, hi]), rtol=1e-5)
    assert list(at.confint(parm="beta_").index) == ["(Intercept)", "Days"]
    assert list(at.confint(parm="theta_").index) == [".sig01", ".sig02", ".sig03", ".sigma"]
    with pytest.raises(ValueError, match="'Dayz'"):
        at.confint(parm="Dayz")


def test_boot_percentiles_and_statistic_are_lme4s(fits):
    """boot.ci(type="perc") on lme4's own bootstrap sample, and lme4's bootFun at the fit."""
    _, at = fits["sleepstudy"]
    r = REF["sleepstudy"]
    t = np.array(r["boot_t"], float)
    for key, level in (("boot_perc", 0.95), ("boot_perc90", 0.90)):
        a = [(1 - level) / 2, (1 + level) / 2]
        ci = np.vstack([norm_inter(t[:, j], a) for j in range(t.shape[1])])
        np.testing.assert_allclose(ci[:, 0], r[key]["lower"], rtol=1e-12)
        np.testing.assert_allclose(ci[:, 1], r[key]["upper"], rtol=1e-12)
        assert format_perc(a) == r[key]["colnames"]
    for f in REF["format_perc"]:
        assert format_perc([(1 - f["level"]) / 2, (1 + f["level"]) / 2]) == f["names"]
    t0 = _sdcor_statistic(at)
    assert list(t0.index) == r["boot_names"] == r["boot_perc"]["rownames"]
    np.testing.assert_allclose(t0.to_numpy(), [r["boot_t0"][k] for k in r["boot_names"]], rtol=1e-9)


def test_confint_boot_is_seeded_and_reproducible(dyestuff):
    with pytest.warns(BootstrapWarning, match="extreme order statistics"):
        ci = dyestuff.confint(method="boot", nsim=6, seed=3)
    assert list(ci.index) == [".sig01", ".sigma", "(Intercept)"] and list(ci.columns) == ["2.5 %", "97.5 %"]
    assert (ci.iloc[:, 0] < ci.iloc[:, 1]).all()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", BootstrapWarning)
        again = dyestuff.confint(method="boot", nsim=6, seed=3)
        other = dyestuff.confint(method="boot", nsim=6, seed=4, level=0.5, parm="beta_")
    pd.testing.assert_frame_equal(ci, again)
    bb = dyestuff.bootstrap(6, statistic=_sdcor_statistic, seed=3)
    np.testing.assert_allclose(ci.to_numpy(), np.vstack([norm_inter(bb[c], [0.025, 0.975]) for c in bb]), rtol=1e-10)
    assert list(other.index) == ["(Intercept)"] and list(other.columns) == ["25 %", "75 %"]
    assert other.iloc[0, 0] != ci.iloc[2, 0]


def test_confint_profile_dispatches_lazily(dyestuff, monkeypatch):
    import types

    prof = types.ModuleType("sparsemixed.inference.profile")
    calls = []
    prof.profile_confint = lambda res, parm=None, level=0.95: calls.append((res, parm, level)) or "ok"
    monkeypatch.setitem(sys.modules, "sparsemixed.inference.profile", prof)
    assert dyestuff.confint(method="profile", parm="beta_", level=0.9) == "ok"
    assert calls == [(dyestuff, "beta_", 0.9)]
    monkeypatch.setitem(sys.modules, "sparsemixed.inference.profile", None)
    with pytest.raises(ImportError, match="profile_confint"):
        dyestuff.confint(method="profile")


@pytest.mark.slow
def test_boot_confint_close_to_lme4_with_500_replicates(fits):
    """Different random streams: agreement is within Monte Carlo error only."""
    own, _ = fits["sleepstudy"]
    r = REF["sleepstudy"]["boot500"]
    ci = own.confint(method="boot", nsim=500, seed=1)
    width = np.array(r["upper"]) - np.array(r["lower"])
    assert np.all(np.abs(ci.iloc[:, 0].to_numpy() - r["lower"]) < 0.15 * width)
    assert np.all(np.abs(ci.iloc[:, 1].to_numpy() - r["upper"]) < 0.15 * width)
