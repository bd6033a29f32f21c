"""The statsmodels-compatible interface against statsmodels itself and against lme4.

statsmodels is the reference for the interface (loglike, score and Hessian at the same
packed parameters, and the estimates where it converges); lme4's answers
(tests/reference/lme4_results.json) are the reference for the estimates always.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from sparsemixed.mixedlm import MixedLMParams
from sparsemixed.numdiff import hessian_from_gradient

import statsmodels.formula.api as smf    # the test extra installs it: a missing reference fails
from statsmodels.regression.mixed_linear_model import MixedLM as SMMixedLM
from statsmodels.regression.mixed_linear_model import MixedLMParams as SMParams

_CACHE: dict = {}


def _pair(key, build_ours, build_theirs, reml=True):
    """Fit once per session: (our model, our result, statsmodels model, its result)."""
    if key not in _CACHE:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m1, m2 = build_ours(), build_theirs()
            _CACHE[key] = (m1, m1.fit(reml=reml), m2, m2.fit(reml=reml))
    return _CACHE[key]


def sleep(reml=True, use_sqrt=True):
    d = sm.datasets.load("sleepstudy")
    kw = dict(groups="Subject", re_formula="~Days", use_sqrt=use_sqrt)
    return _pair(("sleep", reml, use_sqrt), lambda: sm.MixedLM.from_formula("Reaction ~ Days", d, **kw),
                 lambda: SMMixedLM.from_formula("Reaction ~ Days", d, **kw), reml)


def sleep2():
    """Unbalanced (some Subjects miss days): beta differs from OLS, so a wrong engine shows."""
    d = sm.datasets.load("sleepstudy2")
    kw = dict(groups="Subject", re_formula="~Days")
    return _pair("sleep2", lambda: sm.mixedlm("Reaction ~ Days", d, **kw),
                 lambda: smf.mixedlm("Reaction ~ Days", d, **kw))


def pastes():
    d = sm.datasets.load("Pastes")
    kw = dict(groups="batch", re_formula="1", vc_formula={"cask": "0 + C(cask)"})
    return _pair("pastes", lambda: sm.mixedlm("strength ~ 1", d, **kw),
                 lambda: smf.mixedlm("strength ~ 1", d, **kw))


def penicillin_one_group():
    d = sm.datasets.load("Penicillin").assign(one=1)
    kw = dict(groups="one", vc_formula={"plate": "0 + C(plate)", "sample": "0 + C(sample)"})
    return _pair("pen", lambda: sm.mixedlm("diameter ~ 1", d, **kw),
                 lambda: smf.mixedlm("diameter ~ 1", d, **kw))


def _their_params(res):
    """The MixedLMParams of a fit (relative covariances)."""
    return res.params_object.copy()


# -- the estimates: statsmodels where it converges, lme4 always ---------------------------
@pytest.mark.parametrize("reml", [True, False])
def test_random_slopes_match_statsmodels_and_lme4(reml, lme4_ref):
    m1, r1, m2, r2 = sleep(reml)
    assert r2.converged
    assert r1.llf >= r2.llf - 1e-7                       # never worse than statsmodels
    assert r1.llf == pytest.approx(r2.llf, abs=1e-6)
    np.testing.assert_allclose(r1.fe_params.to_numpy(), r2.fe_params.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(r1.cov_re.to_numpy(), np.asarray(r2.cov_re), rtol=2e-4, atol=1e-3)
    assert r1.scale == pytest.approx(r2.scale, rel=1e-5)
    np.testing.assert_allclose(r1.bse.to_numpy(), np.asarray(r2.bse), rtol=2e-4)
    np.testing.assert_allclose(r1.bse_re.to_numpy(), np.asarray(r2.bse_re), rtol=2e-4)
    assert list(r1.params.index) == list(r2.params.index)
    ref = lme4_ref["sleepstudy_reml" if reml else "sleepstudy_ml"]
    crit = ref["reml_criterion"] if reml else ref["deviance"]
    assert -2 * r1.llf <= crit * (1 + 1e-6)
    assert r1.scale == pytest.approx(ref["sigma"] ** 2, rel=1e-3)
    vc = {(v["grp"], v["var1"], v["var2"]): v["vcov"] for v in ref["varcorr"]}
    assert r1.cov_re.iloc[0, 0] == pytest.approx(vc[("Subject", "(Intercept)", None)], rel=1e-3)
    assert r1.cov_re.iloc[1, 1] == pytest.approx(vc[("Subject", "Days", None)], rel=1e-3)
    assert r1.cov_re.iloc[1, 0] == pytest.approx(vc[("Subject", "(Intercept)", "Days")], rel=1e-3)
    if not reml:
        assert r1.aic == pytest.approx(r2.aic, abs=1e-5) and r1.bic == pytest.approx(r2.bic, abs=1e-5)
    else:
        assert np.isnan(r1.aic) and np.isnan(r1.bic)


def test_unbalanced_random_slopes_match_statsmodels(lme4_ref):
    m1, r1, m2, r2 = sleep2()
    ref = lme4_ref["sleepstudy2_unbalanced"]
    assert -2 * r1.llf <= ref["reml_criterion"] * (1 + 1e-6)
    np.testing.assert_allclose(r1.fe_params.to_numpy(), list(ref["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(r1.fe_params.to_numpy(), r2.fe_params.to_numpy(), rtol=1e-5)
    np.testing.assert_allclose(r1.bse_fe.to_numpy(), np.asarray(r2.bse_fe), rtol=1e-3)


def test_nested_variance_component_matches_lme4_and_statsmodels(lme4_ref):
    m1, r1, m2, r2 = pastes()
    ref = lme4_ref["pastes_nested"]
    assert -2 * r1.llf == pytest.approx(ref["reml_criterion"], rel=1e-7)
    vc = {v["grp"]: v["vcov"] for v in ref["varcorr"]}
    assert r1.cov_re.iloc[0, 0] == pytest.approx(vc["batch"], rel=1e-3)
    assert r1.vcomp[0] == pytest.approx(vc["cask:batch"], rel=1e-3)
    assert r1.scale == pytest.approx(vc["Residual"], rel=1e-3)
    assert r1.llf >= r2.llf - 1e-7
    np.testing.assert_allclose(r1.vcomp, r2.vcomp, rtol=1e-3)
    assert list(r1.params.index) == list(r2.params.index)


def test_crossed_components_in_one_group_match_lme4(lme4_ref):
    m1, r1, m2, r2 = penicillin_one_group()
    ref = lme4_ref["penicillin_crossed"]
    assert -2 * r1.llf == pytest.approx(ref["reml_criterion"], rel=1e-7)
    vc = {v["grp"]: v["vcov"] for v in ref["varcorr"]}
    np.testing.assert_allclose(r1.vcomp, [vc["plate"], vc["sample"]], rtol=1e-3)
    assert r1.llf >= r2.llf - 1e-7
    np.testing.assert_allclose(r1.vcomp, r2.vcomp, rtol=1e-3)
    # the random effects: the same (group, column) pairs and values as statsmodels
    re1, re2 = r1.random_effects[1], r2.random_effects[1]
    assert list(re1.index) == list(re2.index)
    np.testing.assert_allclose(re1.to_numpy(), re2.to_numpy(), rtol=1e-3, atol=1e-4)


def test_insteval_crossed_components_run_at_sparse_speed(lme4_ref):
    """statsmodels' idiom for crossed effects on all 73,421 InstEval rows (statsmodels
    needs minutes for 8,000 of them): lme4's REML criterion and variances."""
    d = sm.datasets.load("InstEval").assign(one=1)
    vcf = {"s": "0 + C(s)", "d": "0 + C(d)", "ds": "0 + C(dept):C(service)"}
    r = sm.mixedlm("y ~ service", d, groups="one", vc_formula=vcf).fit()
    ref = lme4_ref["insteval_crossed"]
    assert -2 * r.llf <= ref["reml_criterion"] * (1 + 1e-9) + 1e-6
    vc = {v["grp"]: v["vcov"] for v in ref["varcorr"]}
    np.testing.assert_allclose(r.vcomp, [vc["d"], vc["dept:service"], vc["s"]], rtol=1e-3)
    assert r.scale == pytest.approx(vc["Residual"], rel=1e-3)
    cov = r.random_effects_cov[1]            # one group of 4,128 effects: variances only
    assert isinstance(cov, pd.Series) and cov.shape == (4128,)


# -- loglike, score, Hessian at the same parameters ----------------------------------------
def _points(res, k=3, seed=0):
    """Packed points around statsmodels' estimate (relative scale), kept positive definite."""
    rng = np.random.default_rng(seed)
    base = _their_params(res)
    out = []
    for _ in range(k):
        p = base.copy()
        if p.k_re:
            A = rng.normal(scale=0.3, size=(p.k_re, p.k_re))
            T = np.linalg.cholesky(p.cov_re) @ (np.eye(p.k_re) + 0.3 * np.tril(A))
            p.cov_re = T @ T.T
        p.vcomp = p.vcomp * rng.uniform(0.5, 2.0, p.k_vc)
        p.fe_params = p.fe_params + rng.normal(scale=0.5, size=p.k_fe)
        out.append(p)
    return out


@pytest.mark.parametrize("case", ["sleep", "sleep_full", "sleep2", "pastes", "pen"])
def test_loglike_and_score_equal_statsmodels(case):
    m1, r1, m2, r2 = {"sleep": lambda: sleep(), "sleep_full": lambda: sleep(use_sqrt=False),
                      "sleep2": sleep2, "pastes": pastes, "pen": penicillin_one_group}[case]()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for p in _points(r1):          # ours: statsmodels' own use_sqrt=False fit is not PD here
            packed = p.get_packed(use_sqrt=m2.use_sqrt, has_fe=False)
            assert m1.loglike(packed) == pytest.approx(m2.loglike(packed), rel=1e-10)
            np.testing.assert_allclose(m1.score(packed), m2.score(packed), rtol=1e-6,
                                       atol=1e-8 * np.abs(m2.score(packed)).max())
            sp = SMParams.from_components(p.fe_params, cov_re=p.cov_re, vcomp=p.vcomp)
            assert m1.loglike(sp, profile_fe=False) == pytest.approx(m2.loglike(sp, profile_fe=False), rel=1e-10)
            s2 = m2.score(sp, profile_fe=False)
            np.testing.assert_allclose(m1.score(sp, profile_fe=False), s2, rtol=1e-6, atol=1e-8 * np.abs(s2).max())


@pytest.mark.parametrize("use_sqrt", [True, False])
def test_score_equals_finite_differences_of_loglike(use_sqrt):
    m1, r1, _, r2 = sleep(use_sqrt=use_sqrt)
    for p in _points(r1, k=2, seed=5):
        x = p.get_packed(use_sqrt=use_sqrt, has_fe=False)
        h = 1e-6 * np.maximum(np.abs(x), 1e-2)
        fd = np.array([(m1.loglike(x + h * e) - m1.loglike(x - h * e)) / (2 * h[j])
                       for j, e in enumerate(np.eye(x.size))])
        np.testing.assert_allclose(m1.score(x), fd, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["sleep", "sleep2", "pastes"])
def test_hessian_equals_statsmodels_and_numerical(case):
    m1, r1, m2, r2 = {"sleep": lambda: sleep(), "sleep2": sleep2, "pastes": pastes}[case]()
    p = _their_params(r2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        H2, _ = m2.hessian(p)
    H1, sing = m1.hessian(p)
    assert not sing
    np.testing.assert_allclose(H1, H2, rtol=1e-4, atol=1e-6 * np.abs(H2).max())
    # and a numerical Hessian of our loglike itself (second differences, no score used)
    x0 = p.get_packed(use_sqrt=False, has_fe=True)
    f = lambda x: m1.loglike(MixedLMParams.from_packed(x, m1.k_fe, m1.k_re, False, True), profile_fe=False)
    k = x0.size
    H3 = np.empty((k, k))
    h = 1e-3 * np.maximum(np.abs(x0), 1e-1)
    for i in range(k):
        for j in range(k):
            ei, ej = np.eye(k)[i] * h[i], np.eye(k)[j] * h[j]
            H3[i, j] = (f(x0 + ei + ej) - f(x0 + ei - ej) - f(x0 - ei + ej) + f(x0 - ei - ej)) / (4 * h[i] * h[j])
    np.testing.assert_allclose(H1, H3, rtol=2e-3, atol=1e-5 * np.abs(H3).max())


def test_random_effects_and_their_covariance_match_statsmodels():
    m1, r1, m2, r2 = sleep()
    for g in m2.group_labels:
        np.testing.assert_allclose(r1.random_effects[g].to_numpy(), r2.random_effects[g].to_numpy(),
                                   rtol=1e-3, atol=1e-3)
        np.testing.assert_allclose(r1.random_effects_cov[g].to_numpy(), r2.random_effects_cov[g].to_numpy(),
                                   rtol=1e-3)
    np.testing.assert_allclose(r1.fittedvalues, np.asarray(r2.fittedvalues), rtol=1e-6)


def test_inference_tables_match_statsmodels():
    m1, r1, m2, r2 = sleep()
    np.testing.assert_allclose(r1.tvalues.iloc[:2], np.asarray(r2.tvalues)[:2], rtol=1e-4)
    np.testing.assert_allclose(r1.pvalues.iloc[:2], np.asarray(r2.pvalues)[:2], rtol=1e-3, atol=1e-12)
    np.testing.assert_allclose(r1.conf_int().to_numpy()[:2], np.asarray(r2.conf_int())[:2], rtol=1e-4)
    t1 = r1.t_test(np.array([[0.0, 1.0]]))
    t2 = r2.t_test(np.array([[0.0, 1.0]]))
    assert t1.effect[0] == pytest.approx(float(np.squeeze(t2.effect)), rel=1e-6)
    assert t1.sd[0] == pytest.approx(float(np.squeeze(t2.sd)), rel=1e-4)
    assert r1.t_test("Days = 10").tvalue[0] == pytest.approx((r1.fe_params["Days"] - 10) / r1.bse_fe["Days"])
    text = r1.summary()
    for s in ("Mixed Linear Model Regression Results", "Subject Var", "Days Var", "Converged"):
        assert s in text


# -- parameters and the array interface ---------------------------------------------------
def test_params_packing_roundtrip_matches_statsmodels():
    rng = np.random.default_rng(1)
    T = np.tril(rng.normal(size=(3, 3))) + 3 * np.eye(3)
    cov, vc, fe = T @ T.T, np.array([0.5, 2.0]), np.array([1.0, -2.0])
    ours = MixedLMParams.from_components(fe, cov_re=cov, vcomp=vc)
    theirs = SMParams.from_components(fe, cov_re=cov, vcomp=vc)
    for use_sqrt in (True, False):
        for has_fe in (True, False):
            a, b = ours.get_packed(use_sqrt, has_fe), theirs.get_packed(use_sqrt, has_fe)
            np.testing.assert_allclose(a, b, rtol=1e-12)
            back = MixedLMParams.from_packed(a, 2, 3, use_sqrt, has_fe)
            np.testing.assert_allclose(back.cov_re, cov, rtol=1e-12)
            np.testing.assert_allclose(back.vcomp, vc, rtol=1e-12)
    # a singular cov_re still has a lower factor that reproduces it
    v = np.array([1.0, 2.0, 0.0])
    sing = MixedLMParams.from_components(cov_re=np.outer(v, v))
    S = sing.cov_re_sqrt()
    np.testing.assert_allclose(S @ S.T, np.outer(v, v), atol=1e-12)
    assert np.allclose(S, np.tril(S))


def test_array_interface_with_vcspec_equals_formula_interface():
    d = sm.datasets.load("Pastes")
    f = sm.mixedlm("strength ~ 1", d, groups="batch", re_formula="1", vc_formula={"cask": "0 + C(cask)"})
    spec = f.exog_vc
    a = sm.MixedLM(d["strength"].to_numpy(), np.ones((len(d), 1)), d["batch"].to_numpy(),
                   exog_re=np.ones((len(d), 1)), exog_vc=spec)
    x = np.array([1.2, 0.7])
    assert a.loglike(x) == pytest.approx(f.loglike(x), rel=1e-12)
    # the older dict format for variance components
    dct = {"cask": {g: spec.mats[0][i] for i, g in enumerate(a.group_labels)}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        b = sm.MixedLM(d["strength"].to_numpy(), np.ones((len(d), 1)), d["batch"].to_numpy(),
                       exog_re=np.ones((len(d), 1)), exog_vc=dct)
    assert b.loglike(x) == pytest.approx(f.loglike(x), rel=1e-12)
    assert (a.k_fe, a.k_re, a.k_re2, a.k_vc) == (1, 1, 1, 1)


def test_default_random_intercept_and_names():
    d = sm.datasets.load("sleepstudy")
    m = sm.MixedLM(d["Reaction"], d[["Days"]].assign(Intercept=1.0)[["Intercept", "Days"]], d["Subject"])
    assert m.k_re == 1 and m.param_names == ["Intercept", "Days", "Group Var"]
    r = m.fit()
    ref = sm.lmer("Reaction ~ Days + (1|Subject)", d).fit()
    assert -2 * r.llf == pytest.approx(ref.objective, rel=1e-8)


def test_formula_options_subset_and_missing():
    d = sm.datasets.load("sleepstudy").copy()
    d.loc[3, "Reaction"] = np.nan
    with pytest.raises(sm.DataError, match="missing='drop'"):
        sm.mixedlm("Reaction ~ Days", d, groups="Subject")
    with pytest.warns(sm.MissingDataWarning, match="dropped 1 row"):
        m = sm.mixedlm("Reaction ~ Days", d, groups="Subject", missing="drop")
    assert m.nobs == 179
    sub = d["Days"] < 5
    m2 = sm.mixedlm("Reaction ~ Days", d.dropna(), groups="Subject", subset=sub[d["Reaction"].notna()])
    assert m2.nobs == int((sub & d["Reaction"].notna()).sum())
    with pytest.raises(TypeError, match="groups"):
        sm.mixedlm("Reaction ~ Days", d.dropna())
    assert d["Reaction"].isna().sum() == 1            # the user's frame is not modified
