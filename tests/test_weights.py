"""Prior weights (residual variance sigma^2 / w_i) against lme4 on unbalanced data.

The weights are the deterministic functions of the data that
tests/reference/make_weights_reference.R used to make tests/reference/lme4_weights.json.
"""
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "lme4_weights.json").read_text())


def _data(name):
    if name.startswith("sleepstudy2"):
        d = sm.datasets.load("sleepstudy2")
        return d.assign(w=0.5 + 0.5 * (d["Days"] % 4))
    d = sm.datasets.load("Penicillin")
    codes = pd.Categorical(d["plate"]).codes + 1          # R's as.integer(factor)
    return d.assign(w=1.0 + (codes % 3))


_FITS = {}


def _fit(name):
    if name not in _FITS:
        r = REF[name]
        _FITS[name] = sm.lmer(r["formula"], _data(name), REML=r["reml"], weights="w").fit()
    return _FITS[name]


@pytest.mark.parametrize("name", list(REF))
def test_weighted_fit_matches_lme4(name):
    r, res = REF[name], _fit(name)
    assert res.objective <= r["objective"] * (1 + 1e-7) + 1e-7
    assert res.objective == pytest.approx(r["objective"], rel=1e-6)
    assert res.loglik == pytest.approx(r["loglik"], rel=1e-6)
    np.testing.assert_allclose(res.theta, r["theta"], rtol=1e-3, atol=1e-4)
    assert res.sigma == pytest.approx(r["sigma"], rel=1e-3)
    np.testing.assert_allclose(res.fixef.to_numpy(), list(r["fixef"].values()), rtol=1e-4)
    np.testing.assert_allclose(res.fixef_se.to_numpy(), list(r["fixef_se"].values()), rtol=1e-3)


@pytest.mark.parametrize("name", list(REF))
def test_weighted_modes_variances_and_residuals_match_lme4(name):
    r, res = REF[name], _fit(name)
    ref = pd.DataFrame(r["ranef"])
    ours = res.ranef_frame().merge(ref, on=["grpvar", "term", "grp"], suffixes=("", "_lme4"))
    assert len(ours) == len(ref)
    scale = ours["condval_lme4"].abs().max()
    np.testing.assert_allclose(ours["condval"], ours["condval_lme4"], atol=1e-3 * scale)
    np.testing.assert_allclose(ours["condsd"], ours["condsd_lme4"], rtol=2e-3)
    np.testing.assert_allclose(res.fitted(), r["fitted"], rtol=1e-5)
    rp = np.asarray(r["resid_pearson"])
    np.testing.assert_allclose(res.residuals("pearson"), rp, rtol=1e-3, atol=1e-4 * np.abs(rp).max())
    np.testing.assert_allclose(res.residuals("pearson", scaled=True), rp / r["sigma"], rtol=2e-3, atol=1e-4)


def test_weights_change_the_fit():
    d = _data("sleepstudy2_weighted_reml")
    a = sm.lmer("Reaction ~ Days + (Days|Subject)", d).fit()
    b = _fit("sleepstudy2_weighted_reml")
    assert abs(a.objective - b.objective) > 1.0
