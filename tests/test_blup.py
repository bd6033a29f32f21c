"""BLUPs and their variances: lme4's ranef(condVar=TRUE) and the lecture's dense formulas.

    b-hat = G Z' V^-1 (y - X beta-hat),           V = Z G Z' + sigma^2 I
    Var(b | y, beta) = G - G Z' V^-1 Z G          (lme4's condVar)
    PEV = Var(b-hat - b) = G - G Z' P Z G,        P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1
"""
import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from conftest import fit_reference
from test_lme4_reference import NAMES


@pytest.mark.expect_warnings((sm.SingularFitWarning,))
@pytest.mark.parametrize("name", NAMES)
def test_ranef_frame_matches_lme4_condvar(name, lme4_ref):
    res = fit_reference(name, lme4_ref)
    ours = res.ranef_frame()
    assert list(ours.columns) == ["grpvar", "term", "grp", "condval", "condsd"]
    ref = pd.DataFrame(lme4_ref[name]["ranef_condsd"])
    key = ["grpvar", "term", "grp"]
    merged = ref.merge(ours, on=key, suffixes=("_lme4", ""), how="outer", indicator=True)
    assert (merged["_merge"] == "both").all(), merged[merged["_merge"] != "both"].head()
    for (g, t), part in merged.groupby(["grpvar", "term"]):
        scale = max(1e-8, float(part["condval_lme4"].abs().max()))
        np.testing.assert_allclose(part["condval"], part["condval_lme4"], atol=1e-3 * scale)
        sd_scale = max(1e-8, float(part["condsd_lme4"].abs().max()))
        np.testing.assert_allclose(part["condsd"], part["condsd_lme4"], rtol=2e-3, atol=1e-3 * sd_scale)


def _dense(res):
    X, Z = res.model_matrices()
    X, Z = np.asarray(X), np.asarray(Z.todense())
    G = res.G.toarray()
    s2 = res.sigma ** 2
    V = Z @ G @ Z.T + s2 * np.eye(len(X))
    Vi = np.linalg.inv(V)
    P = Vi - Vi @ X @ np.linalg.solve(X.T @ Vi @ X, X.T @ Vi)
    return X, Z, G, Vi, P


@pytest.mark.parametrize("formula", ["Reaction ~ Days + (Days|Subject)",
                                     "Reaction ~ Days + (1|Subject) + (0 + Days|Subject)"])
def test_blup_and_variances_equal_dense_formulas(formula):
    # unbalanced (sleepstudy2): beta-hat is not OLS, so the PEV's second term matters
    d = sm.datasets.load("sleepstudy2")
    res = sm.lmer(formula, d).fit()
    X, Z, G, Vi, P = _dense(res)
    y = d["Reaction"].to_numpy(float)
    np.testing.assert_allclose(res.b, G @ Z.T @ Vi @ (y - X @ res.beta), rtol=1e-7, atol=1e-7)
    cond = G - G @ Z.T @ Vi @ Z @ G
    pev = G - G @ Z.T @ P @ Z @ G
    np.testing.assert_allclose(res.ranef_var(), np.diag(cond), rtol=1e-7)
    np.testing.assert_allclose(res.ranef_var("pev"), np.diag(pev), rtol=1e-7)
    assert np.all(res.ranef_var("pev") > res.ranef_var())
    # the per-level blocks (lme4's postVar)
    off = 0
    for t in res.model.terms:
        blocks = res.ranef_postvar()[t.name]
        for j in range(t.nlevels):
            ix = slice(off + j * t.k, off + (j + 1) * t.k)
            np.testing.assert_allclose(blocks[j], cond[ix, ix], rtol=1e-7, atol=1e-10)
        off += t.q


def test_crossed_blocked_and_cholmod_agree_on_conditional_variances():
    d = sm.datasets.load("Penicillin")
    f = "diameter ~ 1 + (1|plate) + (1|sample)"
    a = sm.lmer(f, d, ordering="blocked").fit()
    b = sm.lmer(f, d, ordering="amd").fit(start=a.theta)
    X, Z, G, Vi, P = _dense(a)
    np.testing.assert_allclose(a.ranef_var(), np.diag(G - G @ Z.T @ Vi @ Z @ G), rtol=1e-7)
    np.testing.assert_allclose(b.ranef_var(), a.ranef_var(), rtol=1e-5)


def test_unknown_kind_is_refused():
    res = sm.lmer("Yield ~ 1 + (1|Batch)", sm.datasets.load("Dyestuff")).fit()
    with pytest.raises(sm.SparseMixedError, match="kind must be one of"):
        res.ranef_var("posterior")
