"""Every model of tests/reference/models.tsv against lme4 1.1-31's answers.

Criterion: -2 log-likelihood within 1e-6 relative of lme4's, or lower (lme4 stops at
its own tolerance); theta, sigma, variance components, fixed effects and their
standard errors within 1e-3 relative; conditional modes within 1e-3 of the largest
|mode| of their term.
"""
import json
import pathlib

import numpy as np
import pandas as pd
import pytest

from conftest import fit_reference, fit_warnings

from sparsemixed.errors import SingularFitWarning

NAMES = list(json.loads((pathlib.Path(__file__).parent / "reference" / "lme4_results.json").read_text()))


def _crit(r):
    return r["reml_criterion"] if r["reml"] else r["deviance"]


@pytest.mark.parametrize("name", NAMES)
def test_objective(name, lme4_ref):
    r = lme4_ref[name]
    res = fit_reference(name, lme4_ref)
    assert res.nobs == r["nobs"]
    assert res.objective <= _crit(r) + 1e-6 * abs(_crit(r))
    assert res.loglik == pytest.approx(r["loglik"], rel=1e-6)
    assert res.aic == pytest.approx(r["aic"], rel=1e-6)
    assert res.bic == pytest.approx(r["bic"], rel=1e-6)
    assert res.is_singular == r["singular"]
    assert (SingularFitWarning in fit_warnings(name)) == r["singular"]     # warned exactly when lme4 is singular
    assert res.converged


@pytest.mark.parametrize("name", NAMES)
def test_parameters(name, lme4_ref):
    r = lme4_ref[name]
    res = fit_reference(name, lme4_ref)
    theta = np.array(r["theta"], dtype=float).reshape(-1)
    scale = np.maximum(np.abs(theta), 1.0)
    assert np.all(np.abs(res.theta - theta) <= 1e-3 * scale), (res.theta, theta)
    assert res.sigma == pytest.approx(r["sigma"], rel=1e-3)
    fe = pd.Series(r["fixef"])
    se = pd.Series(r["fixef_se"])
    assert list(res.fixef.index) == list(fe.index)
    assert np.all(np.abs(res.fixef - fe) <= 1e-3 * np.maximum(np.abs(fe), se))
    assert np.allclose(res.fixef_se, se, rtol=1e-3)


@pytest.mark.parametrize("name", NAMES)
def test_varcorr(name, lme4_ref):
    r = lme4_ref[name]
    res = fit_reference(name, lme4_ref)
    ref = pd.DataFrame(r["varcorr"])
    ours = res.varcorr
    assert list(ours.grp) == list(ref.grp)
    assert [v if isinstance(v, str) else None for v in ours.var1] == [v if isinstance(v, str) else None for v in ref.var1]
    assert [v if isinstance(v, str) else None for v in ours.var2] == [v if isinstance(v, str) else None for v in ref.var2]
    # variances relative to themselves, covariances relative to sd_i sd_j, correlations absolute
    var = {(g, v): x for g, v, v2, x in zip(ref.grp, ref.var1, ref.var2, ref.vcov) if not isinstance(v2, str)}
    for (g, v1, v2, vc, sdc), (mvc, msdc) in zip(ref[["grp", "var1", "var2", "vcov", "sdcor"]].itertuples(index=False),
                                                 ours[["vcov", "sdcor"]].itertuples(index=False)):
        if isinstance(v2, str):
            scale = np.sqrt(var[(g, v1)] * var[(g, v2)])
            assert abs(mvc - vc) <= 1e-3 * max(scale, 1e-12), (g, v1, v2)
            assert abs(msdc - sdc) <= 1e-3, (g, v1, v2)
        else:
            assert abs(mvc - vc) <= 1e-3 * max(abs(vc), 1e-10), (g, v1)
            assert abs(msdc - sdc) <= 1e-3 * max(abs(sdc), 1e-5), (g, v1)


@pytest.mark.parametrize("name", NAMES)
def test_conditional_modes(name, lme4_ref):
    r = lme4_ref[name]
    res = fit_reference(name, lme4_ref)
    ours = res.ranef
    assert set(ours) == set(r["ranef"])
    for g, block in r["ranef"].items():
        ref = pd.DataFrame(block["values"], index=block["levels"])
        mine = ours[g].loc[ref.index, list(ref.columns)]
        for col in ref.columns:
            tol = 1e-3 * max(np.abs(ref[col]).max(), 1e-8)
            assert np.abs(mine[col].to_numpy() - ref[col].to_numpy()).max() <= tol, (g, col)
