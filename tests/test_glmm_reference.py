"""glmer against lme4's glmer on 10 reference models (tests/reference/glmm/: data, models.tsv,
glmer_results.json made by glmer_reference.R) and against exact references made by
make_exact_reference.R (a fully converged Laplace deviance at glmer's estimates, numDeriv
Hessian standard errors, conditional SDs).

glmer stops where its optimizer and PIRLS tolerance (tolPwrss 1e-7) leave it, so against
glmer: our -2logLik at most glmer's + 1e-6 relative; fixed effects within 0.02 of glmer's
standard error; theta within 5e-3 relative or 5e-4 absolute; standard errors within 2%.
Against the exact references: 1e-8 relative for the deviance at the same point, 1e-3
relative for standard errors and conditional SDs.
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm

REF = Path(__file__).parent / "reference" / "glmm"
MODELS = pd.read_csv(REF / "models.tsv", sep="\t", dtype=str, keep_default_na=False)
GLMER = json.loads((REF / "glmer_results.json").read_text())
EXACT_PATH = REF / "exact_reference.json"
EXACT = json.loads(EXACT_PATH.read_text()) if EXACT_PATH.exists() else {}
_FITS = {}


def _data(row) -> pd.DataFrame:
    df = pd.read_csv(REF / "data" / f"{row['data']}.csv")
    for c in filter(None, row["factors"].split(",")):
        df[c] = df[c].astype(str)
    return df


def _model(name):
    row = MODELS.set_index("name").loc[name]
    return sm.glmer(row["formula"], _data(row), family=row["family"], nAGQ=int(row["nAGQ"]))


def _fit(name):
    if name not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = _model(name)
            _FITS[name] = (m, m.fit())
    return _FITS[name]


NAMES = list(MODELS["name"])


@pytest.mark.parametrize("name", NAMES)
def test_against_glmer(name):
    ref = GLMER[name]
    m, r = _fit(name)
    assert r.nobs == int(ref["nobs"])
    assert list(r.fixef.index) == list(ref["fixef"]), (list(r.fixef.index), list(ref["fixef"]))
    # the criterion: no higher than glmer's (lower is fine)
    assert r.minus2loglik <= ref["minus2loglik"] * (1 + 1e-6), (r.minus2loglik, ref["minus2loglik"])
    assert r.minus2loglik >= ref["minus2loglik"] - 0.01, "more than 0.01 below glmer: a missing constant?"
    se = np.array(list(ref["fixef_se"].values()))
    np.testing.assert_array_less(np.abs(r.fixef.to_numpy() - np.array(list(ref["fixef"].values()))), 0.02 * se)
    th_ref = np.atleast_1d(np.array(ref["theta"], dtype=float))
    ok = (np.abs(r.theta - th_ref) <= 5e-3 * np.abs(th_ref)) | (np.abs(r.theta - th_ref) <= 5e-4)
    assert ok.all(), (r.theta, th_ref)
    np.testing.assert_allclose(r.fixef_se.to_numpy(), se, rtol=0.02)
    assert r.aic == pytest.approx(ref["aic"], abs=0.01 + 1e-6 * abs(ref["aic"]))
    assert r.bic == pytest.approx(ref["bic"], abs=0.01 + 1e-6 * abs(ref["bic"]))
    assert r.deviance() == pytest.approx(ref["deviance"], rel=1e-4)


def _at_glmer(name):
    """The model and its mode at glmer's (theta, beta) (exact_reference.json)."""
    ex = EXACT[name]
    m = _fit(name)[0]
    theta = np.atleast_1d(np.array(ex["theta"], dtype=float))
    beta = np.array(list(ex["fixef"].values()), dtype=float)
    return m, ex, theta, beta


def _requires_exact():
    if not EXACT:
        pytest.fail("tests/reference/glmm/exact_reference.json is missing: run "
                    "Rscript tests/reference/glmm/make_exact_reference.R")


@pytest.mark.parametrize("name", NAMES)
def test_deviance_at_glmer_estimates(name):
    """The fully converged Laplace (or AGQ) deviance at glmer's estimates: 1e-8 relative."""
    _requires_exact()
    m, ex, theta, beta = _at_glmer(name)
    lag = ex["laplace_at_glmer"]
    if lag["devfun_argument"] == "theta":                 # nAGQ = 0: beta inside PIRLS
        assert m.objective(theta) == pytest.approx(lag["value"], rel=1e-8)
        np.testing.assert_allclose(m.mode(theta).beta, list(lag["beta_at_theta"].values()), rtol=1e-6, atol=1e-7)
        return
    x = np.concatenate([theta, beta])
    if m.nAGQ > 1:
        assert m.objective(x) == pytest.approx(lag["agq"]["value"], rel=1e-8)
        from sparsemixed.glmm.agq import agq_deviance

        mode = m.mode(theta, beta)
        assert mode.laplace == pytest.approx(lag["value"], rel=1e-8)
        return
    assert m.objective(x) == pytest.approx(lag["value"], rel=1e-8)


@pytest.mark.parametrize("name", [n for n in NAMES if n.startswith("cbpp")])
def test_agq_values_at_glmer_estimates(name):
    """nAGQ = 1, 2, 5, 9, 25 at the same point, in glmer's convention, and the saturated
    constant that convention leaves out."""
    _requires_exact()
    from sparsemixed.glmm.agq import agq_deviance

    m, ex, theta, beta = _at_glmer(name)
    mode = m.mode(theta, beta)
    agq = ex["agq"]
    for k, ref, full in zip(agq["nAGQ"], agq["values"], agq["values_full_minus2loglik"]):
        ours = mode.laplace if k == 1 else agq_deviance(m, mode, k)
        assert ours == pytest.approx(ref, rel=1e-8), k
        if k > 1:
            assert ours + m.response.saturated_minus2loglik() == pytest.approx(full, rel=1e-8)
    assert m.response.saturated_minus2loglik() == pytest.approx(agq["saturated_minus2loglik"], rel=1e-10)


@pytest.mark.parametrize("name", NAMES)
def test_standard_errors_and_conditional_sds_at_glmer_estimates(name):
    """At glmer's estimates: Hessian standard errors (2 H^-1, beta block; numDeriv in R)
    and R_X-based ones within 1e-3 relative; conditional SDs and modes, fitted values and
    the four kinds of residuals."""
    _requires_exact()
    from sparsemixed.glmm.hessian import deviance_hessian
    from sparsemixed.glmm.result import GlmerResult

    m, ex, theta, beta = _at_glmer(name)
    nagq = max(int(ex["nAGQ"]), 0)
    mode = m.mode(theta, beta) if nagq >= 1 else m.mode(theta)
    res = GlmerResult(m, mode, None, nagq)
    if ex["hessian"] is not None:
        H = deviance_hessian(m, theta, beta, mode.u, nagq)
        se = np.sqrt(np.diag(2 * np.linalg.inv(H))[theta.size:])
        ref_se = ex["hessian"]["se"]
        np.testing.assert_allclose(se, list(ref_se.values()) if isinstance(ref_se, dict) else ref_se, rtol=1e-3)
    np.testing.assert_allclose(res.vcov(use_hessian=False).to_numpy().diagonal() ** 0.5,
                               list(ex["rx_se"].values()), rtol=1e-3)
    ref = pd.DataFrame(ex["condsd"])
    ours = res.ranef_frame()
    key = ["grpvar", "term", "grp"]
    merged = ref.merge(ours, on=key, suffixes=("_r", ""))
    assert len(merged) == len(ref) == len(ours)
    np.testing.assert_allclose(merged["condsd"], merged["condsd_r"], rtol=1e-3)
    np.testing.assert_allclose(merged["condval"], merged["condval_r"], rtol=1e-5, atol=1e-6)
    # the conditional modes against R's PIRLS run to convergence (tolPwrss 1e-12): with
    # scalar terms R's u is in the order of its condsd rows, b = theta_term u ...
    if all(t.k == 1 for t in m.terms):
        th_of = dict(zip(ref["grpvar"].unique(), theta))
        b_conv = ref["grpvar"].map(th_of).to_numpy() * np.asarray(ex["u_converged"])
        np.testing.assert_allclose(merged["condval"], b_conv, atol=1e-7)
    # ... and the row-level values against the glmer object's, whose PIRLS stopped at its
    # default tolerance (u off by up to u_converged_max_abs_diff, ~1e-8 to 2e-7): 1e-5
    np.testing.assert_allclose(res.fitted()[:20], ex["fitted"][:20], rtol=1e-5)
    np.testing.assert_allclose(res.linear_predictor()[:20], ex["predict_link_head"], rtol=1e-5, atol=1e-8)
    for kind, r in ex["residuals"].items():
        np.testing.assert_allclose(res.residuals(kind)[:20], r["head"], rtol=1e-5, atol=1e-8, err_msg=kind)
        assert np.sum(res.residuals(kind) ** 2) == pytest.approx(r["ss"], rel=1e-6), kind
