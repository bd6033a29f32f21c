"""GlmerResult's lme4 vocabulary beyond the fit: predict, simulate, bootstrap, confint, anova,
to_dict/to_frame/HTML, pickling and the command line.

Against R (tests/reference/glmm/predict_reference.json, made by make_predict_reference.R):
predict() at glmer's estimates (converged conditional modes on both sides) to 1e-6 relative;
anova's table from glmer's -2logLik to 1e-10, and our statistic from our own fits within 1e-3.
"""
import json
import pickle
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit

import sparsemixed as sm
from sparsemixed.cli import main
from sparsemixed.errors import ArgumentError, DataError, SparseMixedError, SparseMixedWarning
from sparsemixed.glmm.compare import lrt_table
from sparsemixed.glmm.result import GlmerResult

REF = Path(__file__).parent / "reference" / "glmm"
MODELS = pd.read_csv(REF / "models.tsv", sep="\t", dtype=str, keep_default_na=False).set_index("name")
GLMER = json.loads((REF / "glmer_results.json").read_text())
PRED = json.loads((REF / "predict_reference.json").read_text())
CBPP = "cbind(incidence, size - incidence) ~ period + (1 | herd)"
_CACHE = {}


def _data(name) -> pd.DataFrame:
    row = MODELS.loc[name]
    df = pd.read_csv(REF / "data" / f"{row['data']}.csv")
    for c in filter(None, row["factors"].split(",")):
        df[c] = df[c].astype(str)
    return df


def _model(name, **kw):
    row = MODELS.loc[name]
    return sm.glmer(row["formula"], _data(name), family=row["family"], nAGQ=int(row["nAGQ"]), **kw)


def _at_glmer(name) -> GlmerResult:
    """A GlmerResult at glmer's (theta, fixef) of glmer_results.json (PIRLS to convergence)."""
    if ("at", name) not in _CACHE:
        m = _model(name)
        ref = GLMER[name]
        theta = np.atleast_1d(np.array(ref["theta"], dtype=float))
        beta = np.array(list(ref["fixef"].values()), dtype=float)
        _CACHE["at", name] = GlmerResult(m, m.mode(theta, beta), None, m.nAGQ)
    return _CACHE["at", name]


def _fit(name) -> GlmerResult:
    if ("fit", name) not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE["fit", name] = _model(name).fit()
    return _CACHE["fit", name]


# -- predict ---------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PRED["predict"]))
def test_predict_against_lme4(name):
    ref = PRED["predict"][name]
    res = _at_glmer(name)
    # the same point on both sides: glmer_results.json's estimates, converged modes
    np.testing.assert_array_equal(np.atleast_1d(ref["theta"]), np.atleast_1d(GLMER[name]["theta"]))
    assert list(ref["fixef"].values()) == list(GLMER[name]["fixef"].values())
    assert res.minus2loglik == pytest.approx(ref["minus2loglik_converged"], rel=1e-9)
    newdata = pd.DataFrame(ref["newdata"])
    assert len(ref["predictions"]) >= 4
    for p in ref["predictions"]:
        rf = "NA" if p["re_form"] == "NA" else p["re_form"]
        ours = res.predict(newdata, type=p["type"], re_form=rf, allow_new_levels=True)
        assert list(ours.index) == list(newdata.index)
        np.testing.assert_allclose(ours.to_numpy(), p["values"], rtol=1e-6, err_msg=f"{rf} {p['type']}")


def test_predict_fitted_rows_and_consistency():
    res = _at_glmer("poisson_slope_offset")
    d = res.model.data
    np.testing.assert_array_equal(res.predict().to_numpy(), res.linear_predictor())
    np.testing.assert_allclose(res.predict(type="response").to_numpy(), res.fitted(), rtol=1e-15)
    # the training rows as newdata: the offset(log(t)) term evaluated on newdata
    np.testing.assert_allclose(res.predict(d).to_numpy(), res.linear_predictor(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(res.predict(d, re_form="~0").to_numpy(), res.predict(re_form="~0").to_numpy(),
                               rtol=1e-12, atol=1e-12)
    pop = res.model.X @ res.beta + np.log(d["t"].to_numpy())
    np.testing.assert_allclose(res.predict(re_form=np.nan).to_numpy(), pop, rtol=1e-12)
    # doubling the exposure adds log 2 to the linear predictor
    d2 = d.head(5).assign(t=d["t"].head(5) * 2)
    np.testing.assert_allclose(res.predict(d2) - res.predict(d.head(5)), np.log(2), rtol=1e-12)


def test_predict_rows_dropped_from_the_fit():
    """A row the fit dropped (missing response) is absent from predict() and simulate(), and
    predicted from newdata (the response is not needed)."""
    d = _data("cbpp_laplace")
    d.loc[3, "incidence"] = np.nan
    d.index = [f"r{i}" for i in range(len(d))]
    with pytest.warns(SparseMixedWarning, match="missing"):
        m = sm.glmer(CBPP, d, family="binomial")
    ref = _at_glmer("cbpp_laplace")
    res = GlmerResult(m, m.mode(ref.theta, ref.beta), None, 1)
    p = res.predict()
    assert len(p) == 55 and "r3" not in p.index and list(res.simulate(1, seed=0).index) == list(p.index)
    full = res.predict(d)
    np.testing.assert_allclose(full.drop(index="r3").to_numpy(), p.to_numpy(), rtol=1e-12)
    assert d.loc["r3", ["herd", "period"]].tolist() == ["1", "4"]
    assert full["r3"] == pytest.approx(res.beta[0] + res.beta[3] + res.ranef["herd"].loc["1", "(Intercept)"], rel=1e-12)


def test_predict_errors_and_missing_values():
    res = _at_glmer("poisson_slope_offset")
    nd = pd.DataFrame({"g": ["g2", "brand_new"], "x": [0.1, 0.2], "t": [1.0, 1.0]})
    with pytest.raises(DataError, match="allow_new_levels=True"):
        res.predict(nd)
    assert res.predict(nd, allow_new_levels=True).iloc[1] == pytest.approx(res.beta @ [1, 0.2])
    with pytest.raises(ArgumentError, match="'link' or 'response'"):
        res.predict(nd, type="probability")
    with pytest.raises(SparseMixedError, match="'t'"):                       # the offset's column
        res.predict(nd.drop(columns="t"))
    with pytest.raises(DataError, match="'x'"):
        res.predict(nd.drop(columns="x"))
    # a missing covariate: NaN (na.pass); a missing grouping value: a new level (lme4's rule:
    # an error unless allow_new_levels, then the population-level prediction)
    na = pd.DataFrame({"g": ["g2", "g2", None], "x": [0.1, np.nan, 0.3], "t": [1.0, 1.0, 1.0]})
    out = res.predict(na, allow_new_levels=True)
    assert np.isfinite(out.iloc[0]) and np.isnan(out.iloc[1])
    assert out.iloc[2] == pytest.approx(res.beta @ [1, 0.3])
    with pytest.raises(DataError, match="missing values"):
        res.predict(na)
    # glmer's offset= argument is left out of predict(newdata), as lme4 does: a warning says so
    d = _data("poisson_slope_offset")
    m = sm.glmer("y ~ x + (1 + x | g)", d, family="poisson", offset=np.log(d["t"].to_numpy()))
    r2 = GlmerResult(m, m.mode(res.theta, res.beta), None, 1)
    with pytest.warns(SparseMixedWarning, match="offset= argument"):
        r2.predict(d.head(3))
    np.testing.assert_allclose(r2.predict().to_numpy(), res.linear_predictor(), rtol=1e-10)


# -- simulate --------------------------------------------------------------------------------
def test_simulate_mean_matches_the_model():
    """cbpp (56 rows, 2 to 34 trials): the mean of 4000 simulated proportions per row against
    (a) mu-hat with use_u=True, (b) the marginal mean E[expit(eta_fixed + b)], b ~ N(0, theta^2)
    (Gauss-Hermite, 60 nodes) with new random effects.  z = (mean - expected) / (sd / sqrt(nsim))
    with sd the sample SD: max |z| over the rows below 4.5 (a false alarm has probability ~4e-4)."""
    res = _at_glmer("cbpp_laplace")
    nsim = 4000
    for use_u in (True, False):
        sims = res.simulate(nsim, seed=11, use_u=use_u).to_numpy()
        w = res.model.response.prior_weights
        np.testing.assert_allclose(sims * w[:, None], np.round(sims * w[:, None]), atol=1e-9)  # whole successes
        if use_u:
            expected = res.fitted()
        else:
            z, wq = np.polynomial.hermite_e.hermegauss(60)
            eta0 = res.predict(re_form="~0").to_numpy()
            expected = (expit(eta0[:, None] + res.theta[0] * z[None, :]) * (wq / wq.sum())).sum(axis=1)
        zs = (sims.mean(axis=1) - expected) / (sims.std(axis=1, ddof=1) / np.sqrt(nsim))
        assert np.max(np.abs(zs)) < 4.5, (use_u, np.max(np.abs(zs)))


def test_simulate_poisson_mean_and_seeds():
    """Poisson with an offset, use_u=True: sum over the 1,500 rows of (mean of 300 draws - mu)
    is N(0, sum mu / 300): |z| < 4.5."""
    res = _at_glmer("poisson_slope_offset")
    sims = res.simulate(300, seed=np.random.default_rng(3), use_u=True)
    assert sims.shape == (1500, 300) and list(sims.columns[:2]) == ["sim_1", "sim_2"]
    assert np.all(sims.to_numpy() == np.round(sims.to_numpy()))
    mu = res.fitted()
    z = (sims.to_numpy().mean(axis=1) - mu).sum() / np.sqrt(mu.sum() / 300)
    assert abs(z) < 4.5, z
    a, b = res.simulate(3, seed=5), res.simulate(3, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(res.simulate(3, seed=6))
    np.testing.assert_array_equal(res.simulate(1, seed=5)["sim_1"], a["sim_1"])
    with pytest.raises(ArgumentError):
        res.simulate(0)


# -- bootstrap and confint -------------------------------------------------------------------
def test_bootstrap_refits_the_simulated_responses():
    res = _fit("cbpp_laplace")
    # the statistic sees the refit's response: it is column j of simulate(seed=...)
    ys = res.bootstrap(2, seed=7, stat=lambda f: pd.Series(f.model.response.y))
    np.testing.assert_array_equal(ys.to_numpy(), res.simulate(2, seed=7).to_numpy().T)
    assert np.array_equal(res.model.response.y, _data("cbpp_laplace").eval("incidence / size"))  # untouched
    bb = res.bootstrap(2, seed=1)
    assert list(bb.columns) == ["(Intercept)", "period2", "period3", "period4", "herd.(Intercept)"]
    assert bb.shape == (2, 5) and np.isfinite(bb.to_numpy()).all() and bb.attrs["nfail"] == 0
    np.testing.assert_allclose(bb.attrs["t0"].to_numpy(), np.r_[res.beta, res.theta])
    # the refits move around the estimates (a loose sanity bound: 5 standard errors)
    assert np.all(np.abs(bb.iloc[:, :4].to_numpy() - res.beta) < 5 * res.fixef_se.to_numpy())


def test_confint():
    res = _fit("cbpp_laplace")
    ci = res.confint()
    assert list(ci.index) == [".sig01", "(Intercept)", "period2", "period3", "period4"]
    assert list(ci.columns) == ["2.5 %", "97.5 %"] and ci.loc[".sig01"].isna().all()
    half = 1.959963984540054 * res.fixef_se.to_numpy()
    np.testing.assert_allclose(ci.iloc[1:, 0], res.beta - half, rtol=1e-12)
    np.testing.assert_allclose(ci.iloc[1:, 1], res.beta + half, rtol=1e-12)
    assert list(res.confint(parm="beta_", level=0.9).columns) == ["5 %", "95 %"]
    with pytest.warns(SparseMixedWarning, match="extreme order statistics"):
        cb = res.confint(method="boot", nsim=4, seed=2)
    assert np.isfinite(cb.to_numpy()).all() and (cb.iloc[:, 0] <= cb.iloc[:, 1]).all()
    assert cb.loc[".sig01"].min() >= 0
    with pytest.raises(ArgumentError):
        res.confint(method="bayes")


# -- anova -----------------------------------------------------------------------------------
def test_anova_table_from_glmer_loglik_equals_lme4():
    """The table from R's logLik values: every column to 1e-10; from glmer_results.json's
    -2logLik (R's refits agree with them to ~1e-12 relative, 1e-8 absolute in Chisq): 1e-7."""
    a = PRED["anova"]
    names = a["models"]
    m2ll = np.array([GLMER[n]["minus2loglik"] for n in names])
    np.testing.assert_allclose(a["deviance"], m2ll, rtol=1e-12)        # R's fits are glmer_results.json's
    npar = [len(GLMER[n]["fixef"]) + len(np.atleast_1d(GLMER[n]["theta"])) for n in names]
    tab = lrt_table(a["logLik"], npar, GLMER[names[0]]["nobs"], names)
    assert list(tab.index) == names and tab["npar"].tolist() == a["npar"]
    for col, key in [("AIC", "AIC"), ("BIC", "BIC"), ("logLik", "logLik"), ("deviance", "deviance")]:
        np.testing.assert_allclose(tab[col], a[key], rtol=1e-12)
    assert np.isnan(tab["Chisq"].iloc[0]) and np.isnan(tab["Pr(>Chisq)"].iloc[0])
    assert tab["Chisq"].iloc[1] == pytest.approx(a["Chisq"][1], rel=1e-10)
    assert tab["Df"].iloc[1] == a["Df"][1]
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(a["p_value"][1], rel=1e-10)
    tab = lrt_table(-0.5 * m2ll, npar, GLMER[names[0]]["nobs"], names)
    assert tab["Chisq"].iloc[1] == pytest.approx(a["Chisq"][1], abs=1e-7)
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(a["p_value"][1], abs=1e-7)


def test_anova_of_our_fits_against_lme4():
    a = PRED["anova"]
    r0, r1 = _fit("bernoulli_crossed_intercepts"), _fit("bernoulli_crossed_slope")
    tab = sm.anova(r1, r0)                       # any order: sorted by npar
    assert list(tab.index) == ["m1", "m0"] and tab["npar"].tolist() == [4, 6]
    assert tab["Chisq"].iloc[1] == pytest.approx(a["Chisq"][1], abs=1e-3)
    assert tab["Pr(>Chisq)"].iloc[1] == pytest.approx(a["p_value"][1], abs=1e-3)
    assert r0.anova(r1, names=["a", "b"])["Df"].iloc[1] == 2


def test_anova_refuses_incomparable_fits():
    r1 = _at_glmer("cbpp_laplace")
    r25 = _at_glmer("cbpp_agq25")
    with pytest.raises(ArgumentError, match="nAGQ"):
        sm.anova(r1, r25)
    d = _data("cbpp_laplace")
    m_sub = sm.glmer(CBPP, d.iloc[4:], family="binomial")
    sub = GlmerResult(m_sub, m_sub.mode(r1.theta, r1.beta), None, 1)
    with pytest.raises(ArgumentError, match="numbers of observations"):
        sm.anova(r1, sub)
    m_other = sm.glmer("cbind(size - incidence, incidence) ~ period + (1 | herd)", d, family="binomial")
    other = GlmerResult(m_other, m_other.mode(r1.theta, -r1.beta), None, 1)
    with pytest.raises(ArgumentError, match="different responses"):
        sm.anova(r1, other)
    lm = sm.lmer("Yield ~ 1 + (1|Batch)", sm.datasets.load("Dyestuff"), REML=False).fit()
    with pytest.raises(ArgumentError, match="GlmerResult"):
        sm.anova(r1, lm)
    with pytest.raises(ArgumentError, match="at least two"):
        sm.anova(r1)


# -- export, pickling ------------------------------------------------------------------------
def test_to_dict_to_frame_html():
    res = _fit("cbpp_laplace")
    doc = json.loads(json.dumps(res.to_dict()))
    assert doc["family"] == "binomial" and doc["link"] == "logit" and doc["nAGQ"] == 1 and doc["nobs"] == 56
    assert doc["minus2loglik"] == pytest.approx(res.minus2loglik) and doc["converged"] is True
    assert [f["term"] for f in doc["fixef"]] == list(res.fixef.index)
    np.testing.assert_allclose([f["std_error"] for f in doc["fixef"]], res.fixef_se)
    assert len(doc["ranef"]) == 15 and "ranef" not in res.to_dict(ranef=False)
    tidy = res.to_frame()
    assert list(tidy.columns) == ["effect", "group", "term", "estimate", "std_error", "statistic", "p_value"]
    fixed = tidy[tidy["effect"] == "fixed"].set_index("term")
    pd.testing.assert_series_equal(fixed["p_value"], res.coef_table()["Pr(>|z|)"], check_names=False)
    assert tidy.iloc[-1]["term"] == "sd__(Intercept)" and tidy.iloc[-1]["estimate"] == pytest.approx(res.theta[0])
    h = res._repr_html_()
    assert "Fixed effects" in h and "binomial" in h and "cbind(incidence, size - incidence)" in h
    slope = _at_glmer("bernoulli_crossed_slope").to_frame()
    assert "cor__(Intercept).cond" in set(slope["term"]) and slope["p_value"].notna().sum() == 2


def test_pickle_result_and_model():
    res = _fit("cbpp_laplace")
    res.summary()
    back = pickle.loads(pickle.dumps(res))
    pd.testing.assert_series_equal(back.fixef, res.fixef)
    assert back.summary() == res.summary()
    back._hessian = None                               # recomputed on the unpickled model
    np.testing.assert_allclose(back.vcov().to_numpy(), res.vcov().to_numpy(), rtol=1e-8)
    m = pickle.loads(pickle.dumps(res.model))
    assert m.mode(res.theta, res.beta).laplace == pytest.approx(res.minus2loglik, rel=1e-12)
    np.testing.assert_allclose(back.predict(_data("cbpp_laplace").head(3)), res.predict().head(3), rtol=1e-12)


# -- the command line ------------------------------------------------------------------------
def test_cli_glmer(tmp_path, capsys):
    csv = tmp_path / "cbpp.csv"
    _data("cbpp_laplace").to_csv(csv, index=False)
    f = "cbind(incidence, size - incidence) ~ C(period) + (1 | herd)"
    assert main(["fit", str(csv), f, "--family", "binomial"]) == 0
    out = capsys.readouterr().out
    assert "Family: binomial  ( logit )" in out and "Laplace Approximation" in out and "z value" in out
    assert main(["fit", str(csv), f, "--family", "binomial(link=probit)", "--nagq", "5", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["link"] == "probit" and doc["nAGQ"] == 5 and doc["nobs"] == 56
    for args, msg in [(["--nagq", "2"], "--nagq applies"), (["--family", "Gamma"], "dispersion"),
                      (["--family", "binomial", "--optimizer", "lbfgsb"], "--optimizer")]:
        assert main(["fit", str(csv), f, *args]) == 2
        err = capsys.readouterr().err
        assert err.startswith("sparsemixed: error:") and msg in err, err


# -- profile intervals ------------------------------------------------------------------
PROFILE = REF / "profile_reference.json"


@pytest.mark.parametrize("name", ["cbpp_laplace", "bernoulli_crossed_intercepts", "grouseticks_poisson",
                                  "poisson_slope_offset"])
def test_profile_intervals_against_lme4_and_a_direct_minimisation(name):
    """confint(method="profile") of a glmer fit (scalar terms; a correlated slope) against lme4's
    (make_profile_reference.R: its spline of the grid around its own fit): each endpoint
    within 1% of the interval's width; and, independently of the profiler, at the endpoints
    of the first SD the deviance minimised over every other parameter by Nelder-Mead on
    model.objective([theta, beta]) is the fit's + 1.96^2."""
    from scipy.optimize import minimize as sp_minimize
    from scipy.stats import norm

    ref = json.loads(PROFILE.read_text())[name]
    res = _fit(name)
    ci = res.confint(method="profile")
    assert list(ci.index) == ref["rows"]
    width = np.array(ref["upper"]) - np.array(ref["lower"])
    np.testing.assert_array_less(np.abs(ci.iloc[:, 0].to_numpy() - ref["lower"]), 0.01 * width)
    np.testing.assert_array_less(np.abs(ci.iloc[:, 1].to_numpy() - ref["upper"]), 0.01 * width)
    if name != "cbpp_laplace":
        return
    m = res.model
    z2 = norm.ppf(0.975) ** 2
    for end in ci.iloc[0]:
        f = lambda b: m.objective(np.concatenate([[end], b]))
        best = sp_minimize(f, res.beta, method="Nelder-Mead",
                           options={"xatol": 1e-8, "fatol": 1e-10, "maxiter": 20000, "maxfev": 20000})
        assert best.fun - res.minus2loglik == pytest.approx(z2, abs=2e-4)


def test_profile_refuses_what_it_cannot_profile():
    probit = _fit("cbpp_probit")
    with pytest.raises(SparseMixedError, match="canonical link"):
        probit.confint(method="profile")
    with pytest.raises(SparseMixedError, match="level"):
        _fit("cbpp_laplace").confint(method="profile", level=1.5)


def test_predict_standard_errors_and_confidence_intervals():
    """se_fit and interval="confidence" with se_type="fixed" (beta-hat's uncertainty only; the
    default, conditional, is tested in test_glmm_predict_se.py): sqrt(x'Vx) from vcov() on the
    link scale (computed here from the design directly), the link interval's endpoints through g^-1 on the
    response scale, the delta-method SE there; NaN rows stay NaN; prediction intervals are
    refused."""
    from scipy.special import expit
    from scipy.stats import norm

    res = _fit("cbpp_laplace")
    V = res.vcov().to_numpy()
    nd = pd.DataFrame({"herd": ["1", "3", "new", None], "period": ["1", "4", "2", "3"],
                       "incidence": 0, "size": 1})
    out = res.predict(nd, allow_new_levels=True, se_fit=True, interval="confidence", level=0.9, se_type="fixed")
    X = np.array([[1, 0, 0, 0], [1, 0, 0, 1], [1, 1, 0, 0], [1, 0, 1, 0]], dtype=float)
    se = np.sqrt(np.einsum("ij,jk,ik->i", X, V, X))
    np.testing.assert_allclose(out["se_fit"], se, rtol=1e-12)
    z = norm.ppf(0.95)
    np.testing.assert_allclose(out["lwr"], out["fit"] - z * se, rtol=1e-12)
    np.testing.assert_allclose(out["upr"], out["fit"] + z * se, rtol=1e-12)
    eta = res.predict(nd, allow_new_levels=True).to_numpy()
    np.testing.assert_allclose(out["fit"], eta, rtol=1e-14)
    resp = res.predict(nd, type="response", allow_new_levels=True, se_fit=True, interval="confidence", level=0.9,
                       se_type="fixed")
    np.testing.assert_allclose(resp["lwr"], expit(out["lwr"]), rtol=1e-12)
    np.testing.assert_allclose(resp["upr"], expit(out["upr"]), rtol=1e-12)
    p = expit(eta)
    np.testing.assert_allclose(resp["se_fit"], p * (1 - p) * se, rtol=1e-10)
    assert list(resp.columns) == ["fit", "lwr", "upr", "se_fit"]
    fitted = res.predict(se_fit=True)
    assert len(fitted) == res.nobs and np.isfinite(fitted["se_fit"]).all()
    na = nd.assign(period=["1", None, "2", "3"])
    assert np.isnan(res.predict(na, allow_new_levels=True, se_fit=True)["se_fit"].iloc[1])
    with pytest.raises(ArgumentError, match="prediction interval"):
        res.predict(nd, interval="prediction", allow_new_levels=True)
