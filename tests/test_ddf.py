"""Denominator degrees of freedom (sparsemixed/inference/{ddf,satterthwaite,kenward_roger}.py)
against tests/reference/lmertest_ddf.json: lmerTest 3.1-3 summary()/anova() with
Satterthwaite's and Kenward-Roger's (pbkrtest 0.5.2) methods and lme4 1.1-31's coefficient
table (regenerate with `Rscript tests/reference/make_ddf_reference.R`).

At lme4's (theta, sigma) only lmerTest's numerical derivatives (numDeriv) differ from ours:
Kenward-Roger agrees to rounding, Satterthwaite to ~1e-6.  At our own optimum the
estimates themselves differ by up to ~2e-4 (relative), and the tolerances say so.
"""
import json
import pathlib

import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla

import sparsemixed as sm
from sparsemixed.errors import SparseMixedError
from sparsemixed.inference import kenward_roger, satterthwaite
from sparsemixed.results.lmer_result import LmerResult

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "lmertest_ddf.json").read_text())
NAMES = [k for k in REF if not k.startswith("_")]
ANOVAS = [f"anova_{t}_{d}" for t in (3, 1) for d in ("satterthwaite", "kenward_roger")]


def load(name):
    d = sm.datasets.load(name)
    if name == "sleepstudy2":   # as in make_ddf_reference.R
        d["grp"] = np.array(["a", "b", "c"])[d["Subject"].astype(int) % 3]
    return d


_FITS, _AT_LME4 = {}, {}


def fitted(name):
    if name not in _FITS:
        r = REF[name]
        _FITS[name] = sm.lmer(r["formula"], load(r["data"]), REML=r["reml"]).fit()
    return _FITS[name]


def at_lme4(name):
    """The result evaluated at lme4's theta (beta, sigma, R_X follow from it)."""
    if name not in _AT_LME4:
        r, res = REF[name], fitted(name)
        m = res.model
        _AT_LME4[name] = LmerResult.from_state(m, m.pls(np.array(r["theta"])), res.optsummary, r["reml"])
    return _AT_LME4[name]


def table(r, key):
    t = r[key]
    return pd.DataFrame(np.array(t["values"], float).reshape(len(t["rows"]), len(t["cols"])),
                        index=t["rows"], columns=t["cols"])


def check(ours, ref, rtol, cols=None):
    assert list(ours.index) == list(ref.index) and list(ours.columns) == list(ref.columns)
    for c in cols or ref.columns:
        tol = rtol[c] if isinstance(rtol, dict) else rtol
        np.testing.assert_allclose(ours[c].to_numpy(float), ref[c].to_numpy(), rtol=tol, atol=0, err_msg=c)


SATT_TOL = {"Estimate": 1e-9, "Std. Error": 1e-9, "t value": 1e-9, "df": 1e-5, "Pr(>|t|)": 1e-4,
            "Sum Sq": 1e-9, "Mean Sq": 1e-9, "F value": 1e-9, "NumDF": 0, "DenDF": 1e-5, "Pr(>F)": 1e-4}


def test_reference_covers_the_required_models():
    assert {"sleepstudy_reml", "sleepstudy2_factor", "penicillin_crossed", "pastes_nested",
            "sleepstudy2_factor_ml"} <= set(NAMES)
    assert any(not REF[n]["reml"] for n in NAMES)
    # a multi-df factor term in an F-test, with both ddf methods and both types
    assert any(np.array(REF[n][k]["values"])[:, 2].max() > 1 for n in NAMES for k in ANOVAS if k in REF[n]
               and REF[n][k]["values"])


@pytest.mark.parametrize("name", NAMES)
def test_coef_tables_at_lme4_optimum(name):
    r, res = REF[name], at_lme4(name)
    assert res.sigma == pytest.approx(r["sigma"], rel=1e-12)
    check(res.coef_table(), table(r, "lme4"), 1e-9)
    check(res.coef_table("Satterthwaite"), table(r, "satterthwaite"), SATT_TOL)
    if r["reml"]:
        check(res.coef_table("Kenward-Roger"), table(r, "kenward_roger"), 1e-9)
    else:
        with pytest.raises(SparseMixedError, match="only available for REML model fits"):
            res.coef_table("Kenward-Roger")
        assert r["kenward_roger_error"].startswith("Kenward-Roger's method is only available for REML")


@pytest.mark.parametrize("name", NAMES)
def test_anova_at_lme4_optimum(name):
    r, res = REF[name], at_lme4(name)
    for key in ANOVAS:
        if key not in r:
            continue
        _, t, ddf = key.split("_", 2)
        ours = res.anova(ddf="Satterthwaite" if ddf == "satterthwaite" else "Kenward-Roger", type=int(t))
        ref = table(r, key)
        if ref.empty:                       # intercept-only models: lmerTest's table is empty
            assert ours.empty and list(ours.columns) == list(ref.columns)
            continue
        check(ours, ref, SATT_TOL if ddf == "satterthwaite" else 1e-9)


@pytest.mark.parametrize("name", NAMES)
def test_at_our_optimum(name):
    """The brief's criterion: df (and t, F, DenDF) within 1e-3 of lmerTest's at our own fit."""
    r, res = REF[name], fitted(name)
    tol = {"Estimate": 1e-3, "Std. Error": 1e-3, "t value": 1e-3, "df": 1e-3}
    check(res.coef_table("Satterthwaite"), table(r, "satterthwaite"), tol, cols=list(tol))
    if r["reml"]:
        check(res.coef_table("KR"), table(r, "kenward_roger"), tol, cols=list(tol))
    for key in ANOVAS:
        if key in r and r[key]["values"]:
            _, t, ddf = key.split("_", 2)
            ours, ref = res.anova(ddf=ddf, type=int(t)), table(r, key)
            check(ours, ref, {"NumDF": 0, "DenDF": 1e-3, "F value": 1e-3},
                  cols=["NumDF", "DenDF", "F value"])
            assert np.all(np.abs(np.log(ours["Pr(>F)"].to_numpy(float) / ref["Pr(>F)"].to_numpy())) < 1e-2)


@pytest.mark.parametrize("name", ["sleepstudy_reml", "sleepstudy2_slope", "pastes_nested",
                                  "sleepstudy2_factor_ml"])
def test_jacobian_and_varpar_match_lmertest(name):
    """lmerTest's Jac_list and vcov_varpar are in (theta, sigma); ours in (sigma, theta)."""
    r, res = REF[name], at_lme4(name)
    pc = satterthwaite.pieces(res.model, res.theta, res.sigma, res.REML)
    J = satterthwaite.jacobian(pc)
    JR = np.array(r["jacobian"], float)
    JR = np.concatenate([JR[-1:], JR[:-1]])
    for a, b in zip(J, JR):
        assert np.max(np.abs(a - b)) < 1e-6 * np.max(np.abs(b))
    AR = np.array(r["vcov_varpar"], float)
    perm = np.r_[AR.shape[0] - 1, 0: AR.shape[0] - 1]
    AR = AR[np.ix_(perm, perm)]
    s = np.sqrt(np.outer(np.diag(AR), np.diag(AR)))
    assert np.max(np.abs(pc.A - AR) / s) < 3e-4


@pytest.mark.parametrize("name", [n for n in NAMES if REF[n]["reml"]])
def test_vcov_kr_matches_pbkrtest(name):
    r, res = REF[name], at_lme4(name)
    V = res.vcov_kr()
    assert list(V.index) == r["fixef_names"]
    np.testing.assert_allclose(V.to_numpy(), np.array(r["vcov_adj"], float).reshape(V.shape), rtol=1e-9)


# -- beyond the reference: weights, the analytic Jacobian, the q-space algebra ------------
@pytest.fixture(scope="module")
def weighted():
    d = load("sleepstudy")
    w = 1.0 + (d["Days"].to_numpy() % 3) / 2
    return sm.lmer("Reaction ~ Days + (Days|Subject)", d, weights=w).fit(), w


def test_weighted_jacobian_against_finite_differences(weighted):
    res, _ = weighted
    m = res.model
    pc = satterthwaite.pieces(m, res.theta, res.sigma, True)
    J = satterthwaite.jacobian(pc)

    def C(x):
        RX = m.pls(x[1:]).RX
        Ri = sla.solve_triangular(RX, np.eye(RX.shape[0]))
        return x[0] ** 2 * Ri @ Ri.T

    x = np.r_[res.sigma, res.theta]
    for j in range(x.size):
        h = 1e-5 * max(abs(x[j]), 1)
        e = np.zeros(x.size)
        e[j] = h
        fd = (C(x + e) - C(x - e)) / (2 * h)
        assert np.max(np.abs(J[j] - fd)) < 1e-6 * np.max(np.abs(J[j])) + 1e-9
    # and one t-test's gradient is l' J l
    l = np.array([1.0, 2.0])
    v, g = satterthwaite.variance_and_gradient(pc, l)
    assert np.allclose(g[0], [l @ Jj @ l for Jj in J], rtol=1e-10)
    assert v[0] == pytest.approx(l @ res.vcov.to_numpy() @ l, rel=1e-12)


def _dense_vcov_adj(X, Z, w, D_list, gammas, s2):
    """pbkrtest's vcovAdj written out with dense n x n matrices (residual G = W^-1)."""
    G = [Z @ D @ Z.T for D in D_list] + [np.diag(1 / w)]
    g = list(gammas) + [s2]
    Sigma = sum(gi * Gi for gi, Gi in zip(g, G))
    Si = np.linalg.inv(Sigma)
    Phi = np.linalg.inv(X.T @ Si @ X)
    H = [Gi @ Si for Gi in G]
    O = [Hi @ X for Hi in H]
    P = [-(Oi.T @ Si @ X) for Oi in O]
    Q = [[Oi.T @ Si @ Oj for Oj in O] for Oi in O]
    k = len(G)
    IE = np.array([[np.sum(H[i].T * H[j]) - 2 * np.sum(Phi * Q[i][j]) + np.trace(Phi @ P[i] @ Phi @ P[j])
                    for j in range(k)] for i in range(k)])
    W = 2 * np.linalg.inv(IE)
    U = sum(W[i, j] * (Q[i][j] - P[i] @ Phi @ P[j]) for i in range(k) for j in range(k))
    return Phi, Phi + 2 * Phi @ U @ Phi


def test_weighted_kr_against_dense_formulas(weighted):
    res, w = weighted
    X, Z = res.model_matrices()
    Z = Z.toarray()
    S = res.cov_re["Subject"].to_numpy()
    nl = Z.shape[1] // 2
    D_list, gammas = [], []
    for a, b in [(0, 0), (1, 0), (1, 1)]:
        E = np.zeros((2, 2))
        E[a, b] = E[b, a] = 1
        D_list.append(np.kron(np.eye(nl), E))
        gammas.append(S[a, b])
    Phi, PhiA = _dense_vcov_adj(X, Z, w, D_list, gammas, res.sigma ** 2)
    np.testing.assert_allclose(Phi, res.vcov.to_numpy(), rtol=1e-8)
    np.testing.assert_allclose(res.vcov_kr().to_numpy(), PhiA, rtol=1e-8)


# -- errors and arguments -----------------------------------------------------------------
def test_kr_refuses_large_q_but_satterthwaite_scales():
    nl = kenward_roger.KR_MAX_Q + 1
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(nl), 2)
    x = rng.normal(size=g.size)
    y = 1 + 0.5 * x + rng.normal(size=nl)[g] + rng.normal(size=g.size)
    res = sm.lmer("y ~ x + (1|g)", pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})).fit()
    assert res.model.q == nl
    with pytest.raises(SparseMixedError, match=rf"q = {nl} random effects, above the limit KR_MAX_Q = "
                                               rf"{kenward_roger.KR_MAX_Q}.*ddf='Satterthwaite'"):
        res.coef_table("Kenward-Roger")
    with pytest.raises(SparseMixedError, match="KR_MAX_Q"):
        res.anova(ddf="Kenward-Roger")
    tab = res.coef_table("Satterthwaite")
    assert np.all(np.isfinite(tab["df"])) and 100 < tab.loc["x", "df"] < 2 * nl


def test_type3_needs_treatment_coding_and_arguments_are_checked():
    res = sm.lmer("Reaction ~ Days + C(grp, contr.sum) + (1|Subject)", load("sleepstudy2")).fit()
    with pytest.raises(SparseMixedError, match="treatment contrasts.*SumContrasts.*type=1"):
        res.anova(type=3)
    a1 = res.anova(type="I")
    assert list(a1.index) == ["Days", "C(grp, contr.sum)"] and list(a1["NumDF"]) == [1, 2]
    with pytest.raises(SparseMixedError, match="ddf must be"):
        res.coef_table("Wald")
    with pytest.raises(SparseMixedError, match="type must be 1, 2 or 3"):
        res.anova(type=4)
    # type 2 needs no particular coding: with main effects only, each term's own coefficients
    a2 = res.anova(type="II")
    assert list(a2["NumDF"]) == [1, 2] and a2.attrs["heading"].startswith("Type II ")
    np.testing.assert_allclose(a2.to_numpy(float), res.drop1().to_numpy(float), rtol=1e-12)


def test_contest_joint_and_separate():
    res = at_lme4("sleepstudy2_factor")
    names = list(res.fixef.index)
    L = np.zeros((2, len(names)))
    L[0, names.index("Days:grpb")] = L[1, names.index("Days:grpc")] = 1
    ref = table(REF["sleepstudy2_factor"], "anova_3_satterthwaite").loc[["Days:grp"]]
    check(res.contest(L).set_axis(["Days:grp"]), ref, SATT_TOL)
    sep = res.contest(L, joint=False)
    check(sep.set_axis(["Days:grpb", "Days:grpc"]),
          res.coef_table("Satterthwaite").loc[["Days:grpb", "Days:grpc"]], 1e-12)
