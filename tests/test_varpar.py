"""Covariance of the variance parameters (sigma, theta): sparsemixed/inference/varpar.py
against tests/reference/lme4_varpar.json (numDeriv Hessian of the same deviance built from
lme4 1.1-31's internals; regenerate with `Rscript tests/reference/make_varpar_reference.R`).

Matrices are compared entrywise relative to sqrt(|A_ii A_jj|) (covariances near 0 have no
relative scale of their own).
"""
import json
import pathlib
import warnings

import numpy as np
import pytest

import sparsemixed as sm
from conftest import fit_reference
from sparsemixed.inference import varpar
from sparsemixed.inference.varpar import VarParWarning

VP = json.loads((pathlib.Path(__file__).parent / "reference" / "lme4_varpar.json").read_text())
NAMES = [k for k in VP if not k.startswith("_")]


def _maxrel(A, B):
    A, B = np.asarray(A, float), np.asarray(B, float)
    s = np.sqrt(np.outer(np.abs(np.diag(B)), np.abs(np.diag(B))))
    return float(np.max(np.abs(A - B) / s))


def test_reference_covers_the_required_models():
    required = {"sleepstudy_reml", "sleepstudy_ml", "penicillin_crossed", "pastes_nested",
                "sleepstudy2_unbalanced"}
    assert required <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_against_lme4_at_our_optimum(name, lme4_ref):
    r = VP[name]
    res = fit_reference(name, lme4_ref)
    V = res.vcov_varpar()
    assert list(V.index) == r["names"] and list(V.columns) == r["names"]
    assert V.attrs["positive_definite"] and not V.attrs["boundary"].any() and V.attrs["note"] == ""
    assert _maxrel(V.attrs["hessian"], r["hessian"]) < 1e-3
    assert _maxrel(V.to_numpy(), r["cov"]) < 1e-3
    assert np.allclose(res.varpar_se.to_numpy(), r["se"], rtol=1e-3, atol=0)
    assert list(res.varpar_se.index) == r["names"]


@pytest.mark.parametrize("name", NAMES)
def test_against_lme4_at_lme4_optimum(name, lme4_ref):
    """At lme4's (sigma, theta) only the two finite-difference schemes differ."""
    r = VP[name]
    model = fit_reference(name, lme4_ref).model
    theta = np.array(r["theta"], float)
    assert varpar.deviance(model, r["sigma"], theta, r["reml"]) == pytest.approx(r["deviance_at_sigma"], rel=1e-9)
    vc = varpar.varpar_cov(model, r["sigma"], theta, r["reml"])
    assert _maxrel(vc.hessian, r["hessian"]) < 3e-4
    assert _maxrel(vc.cov, r["cov"]) < 3e-4


@pytest.mark.parametrize("name", NAMES)
def test_deviance_at_sigma_hat_is_the_profiled_criterion(name, lme4_ref):
    res = fit_reference(name, lme4_ref)
    m = res.model
    # at the optimum and away from it, for both criteria
    for theta in (res.theta, res.theta * 1.3 + 0.1 * (m.lower == 0)):
        for reml in (True, False):
            s = m.pls(theta)
            sigma = np.sqrt(s.r2 / (m.nobs - (m.p if reml else 0)))
            assert varpar.deviance(m, sigma, theta, reml) == pytest.approx(m.objective(theta, reml), rel=1e-12)
            # sigma-hat is where dd/dsigma = 0; elsewhere it is not
            g = varpar.gradient(m, sigma, theta, reml)
            assert abs(g[0]) < 1e-10 * m.nobs / sigma
            assert abs(varpar.gradient(m, 1.1 * sigma, theta, reml)[0]) > 0.1 * m.nobs / sigma


@pytest.mark.parametrize("name", ["sleepstudy_reml", "sleepstudy_ml", "penicillin_crossed",
                                  "pastes_nested_ml", "sleepstudy2_unbalanced", "sleepstudy2_factor_slope"])
def test_analytic_gradient_matches_finite_differences(name, lme4_ref):
    res = fit_reference(name, lme4_ref)
    m = res.model
    # away from the optimum, where the gradient is not ~0
    x = np.concatenate([[res.sigma * 0.8], res.theta * 1.2 + 0.05])
    for reml in (True, False):
        g = varpar.gradient(m, x[0], x[1:], reml)
        fd = np.empty_like(x)
        for j in range(x.size):
            h = 1e-5 * max(abs(x[j]), 1.0)
            e = np.zeros_like(x)
            e[j] = h
            xp, xm = x + e, x - e
            fd[j] = (varpar.deviance(m, xp[0], xp[1:], reml) - varpar.deviance(m, xm[0], xm[1:], reml)) / (2 * h)
        assert np.max(np.abs(g - fd)) < 1e-5 * max(np.max(np.abs(g)), 1.0), (g, fd)
        assert np.max(np.abs(g)) > 1.0          # the check is not trivially at a stationary point


@pytest.fixture(scope="module")
def dyestuff2():
    model = sm.lmer("Yield ~ 1 + (1|Batch)", sm.datasets.load("Dyestuff2"), REML=True)
    with pytest.warns(sm.SingularFitWarning, match=r"\(1 \| Batch\)"):        # lme4's too: theta = 0
        return model.fit()


def test_singular_fit_boundary_rule(dyestuff2):
    """theta = 0: NaN row/column for theta with a VarParWarning; sigma's variance is then
    2 / H_sigma,sigma with theta held at 0, which is sigma^2 / (2 nu) in closed form."""
    res = dyestuff2
    assert res.is_singular and res.theta[0] < 1e-4
    with pytest.warns(VarParWarning, match="boundary"):
        V = res.vcov_varpar()
    assert list(V.index) == ["sigma", "Batch.(Intercept)"]
    assert V.attrs["boundary"].tolist() == [False, True]
    assert "Batch.(Intercept)" in V.attrs["note"]
    C = V.to_numpy()
    assert np.isnan(C[1, :]).all() and np.isnan(C[:, 1]).all()
    nu = res.nobs - res.model.p
    assert C[0, 0] == pytest.approx(res.sigma ** 2 / (2 * nu), rel=1e-6)
    H = V.attrs["hessian"]                       # still returned, finite
    assert np.isfinite(H).all() and H[1, 1] > 0
    with pytest.warns(VarParWarning):
        se = res.varpar_se
    assert se["sigma"] == pytest.approx(res.sigma / np.sqrt(2 * nu), rel=1e-6) and np.isnan(se["Batch.(Intercept)"])


def test_boundary_hessian_never_steps_below_zero(dyestuff2, monkeypatch):
    seen = []
    real = varpar.gradient

    def spy(model, sigma, theta, reml):
        seen.append(np.array(theta, float))
        return real(model, sigma, theta, reml)

    monkeypatch.setattr(varpar, "gradient", spy)
    with pytest.warns(VarParWarning):
        varpar.varpar_cov(dyestuff2.model, dyestuff2.sigma, dyestuff2.theta, True)
    assert seen and min(t.min() for t in seen) >= 0.0


def test_not_positive_definite_gives_nan_and_warning(lme4_ref):
    """Far from the minimum in sigma (sigma^2 > 3 r2 / nu: d is concave in sigma) the
    Hessian is indefinite: it is returned, flagged, and nothing is inverted."""
    res = fit_reference("sleepstudy_reml", lme4_ref)
    with pytest.warns(VarParWarning, match="not positive definite"):
        vc = varpar.varpar_cov(res.model, 2.0 * res.sigma, res.theta, True)
    assert not vc.positive_definite
    assert np.isfinite(vc.hessian).all() and vc.hessian[0, 0] < 0
    assert np.isnan(vc.cov).all()


def test_no_warning_for_a_regular_fit(lme4_ref):
    res = fit_reference("pastes_nested", lme4_ref)
    with warnings.catch_warnings():
        warnings.simplefilter("error", VarParWarning)
        res.vcov_varpar()


def test_boundary_rule_inverts_the_interior_block(lme4_ref, monkeypatch):
    """With a boundary parameter coupled to the others, the covariance of the interior ones
    is 2 (H_II)^-1 (boundary held at 0), not the interior block of 2 H^-1."""
    res = fit_reference("sleepstudy_uncorr", lme4_ref)
    H = np.array([[4.0, 1.0, 0.5], [1.0, 3.0, 0.2], [0.5, 0.2, 2.0]])
    monkeypatch.setattr(varpar, "hessian", lambda *a, **k: H.copy())
    with pytest.warns(VarParWarning, match="Subject.Days"):
        vc = varpar.varpar_cov(res.model, res.sigma, np.array([res.theta[0], 0.0]), True)
    assert vc.boundary.tolist() == [False, False, True]
    assert np.allclose(vc.cov[:2, :2], 2 * np.linalg.inv(H[:2, :2]), rtol=1e-14)
    assert not np.allclose(vc.cov[:2, :2], 2 * np.linalg.inv(H)[:2, :2], rtol=1e-3)
    assert np.isnan(vc.cov[2]).all() and np.isnan(vc.cov[:, 2]).all()
    assert np.array_equal(vc.hessian, H)
