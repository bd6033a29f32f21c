"""GlmerResult.predict(se_fit=True / interval="confidence"): the conditional standard error of
x'beta-hat + z'b-hat (beta and b jointly, theta known; sparsemixed/glmm/predict.py).

Brute force: on simulated, unbalanced data (a binomial model with crossed intercepts and trials
per row; a Poisson model with an offset and a correlated random slope) the joint precision of
(u, beta) at the fitted mode,

    H = [ Lambda'Z'WZ Lambda + I   Lambda'Z'WX ]      W = prior weights (dmu/deta)^2 / V(mu),
        [ X'WZ Lambda              X'WX        ]      from the family's formulas written here,

is built densely here and inverted with numpy; se_fit^2 must be a'H^-1 a, a = [Lambda'z; x], to
1e-8 relative, on the fit's rows and on newdata (seen levels; a new level, whose effect adds its
prior variance z'Sigma z; re_form dropping terms; re_form="~0", the fixed-only formula with
(R_X'R_X)^-1 = vcov(use_hessian=False)).

glmmTMB (tests/reference/glmm/predict_se_reference.json, made by make_predict_se_reference.R):
cbpp, cbind(incidence, size - incidence) ~ period + (1 | herd).  At glmmTMB's (theta, beta) our
se_fit equals the theta-known reference a'C a (C: the inverse of the (beta, b) block of TMB's exact
AD Hessian of the joint negative log-likelihood) to 1e-10 relative: the two compute the same
quantity at the same point, glmmTMB's inner mode has a gradient of 7.6e-12 and re-evaluating it
with newdata moves eta by 2.7e-12, and we measure 1.5e-13.  Facts about glmmTMB's own se.fit there
(the reference's numbers, asserted below): its sdreport delta method also carries theta's
uncertainty, which makes it 0 to 8.1 % larger than the theta-known value on the 56 fitted rows
(row 1, herd 1 period 1: 0.37833 against 0.37073), and 0 to 5.6 % on the newdata rows; it can be
up to 0.46 % smaller, as can glmmTMB's predict from a refit with theta held fixed (map), because
glmmTMB's beta precision is the Laplace approximation's Hessian in beta (log|H_bb|'s curvature
included) rather than the Schur complement R_X'R_X of the joint Hessian used here.  For the new
herd glmmTMB also counts the prior variance sd^2 (0.7133 against 0.7133 here; without it 0.30).
"""
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from scipy.stats import norm

import sparsemixed as sm
from sparsemixed.errors import ArgumentError
from sparsemixed.glmm.result import GlmerResult

REF = Path(__file__).parent / "reference" / "glmm"
TMB = json.loads((REF / "predict_se_reference.json").read_text())
_CACHE = {}


# -- simulated models ------------------------------------------------------------------------
def _binomial_data(seed=11) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ng, nh = 14, 9
    g = np.repeat(np.arange(ng), rng.integers(3, 30, ng))           # 3 to 28 rows per g
    n = g.size
    h = rng.choice(nh, n, p=rng.dirichlet(np.full(nh, 2.0)))        # crossed, unbalanced
    x = rng.normal(size=n)
    f = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    trials = rng.integers(1, 13, n)
    eta = (-0.4 + 0.7 * x + np.where(f == "b", 0.5, 0) + np.where(f == "c", -0.6, 0)
           + rng.normal(0, 0.8, ng)[g] + rng.normal(0, 0.5, nh)[h])
    s = rng.binomial(trials, expit(eta))
    return pd.DataFrame({"s": s, "n": trials, "x": x, "f": f, "g": [f"g{i}" for i in g],
                         "h": [f"h{i}" for i in h]})


def _poisson_data(seed=5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ng = 30
    g = np.repeat(np.arange(ng), rng.integers(2, 24, ng))           # 2 to 23 rows per group
    n = g.size
    x = rng.integers(0, 5, n).astype(float)                         # repeated rows: distinct-row path
    t = rng.choice([1.0, 2.0, 4.0], n)
    C = np.array([[0.6 ** 2, -0.6 * 0.3 * 0.4], [-0.6 * 0.3 * 0.4, 0.3 ** 2]])
    B = rng.multivariate_normal([0, 0], C, ng)
    eta = 0.3 + 0.15 * x + np.log(t) + B[g, 0] + B[g, 1] * x
    return pd.DataFrame({"y": rng.poisson(np.exp(eta)), "x": x, "t": t, "g": [f"g{i}" for i in g]})


BINOMIAL = "cbind(s, n - s) ~ x + f + (1 | g) + (1 | h)"
POISSON = "y ~ x + offset(log(t)) + (1 + x | g)"


def _fit(name, nAGQ=1) -> GlmerResult:
    if (name, nAGQ) not in _CACHE:
        if name == "binomial":
            d = _binomial_data()
            _CACHE[name, nAGQ] = (sm.glmer(BINOMIAL, d, family="binomial", nAGQ=nAGQ).fit(), d)
        else:
            d = _poisson_data()
            _CACHE[name, nAGQ] = (sm.glmer(POISSON, d, family="poisson", nAGQ=nAGQ).fit(), d)
    return _CACHE[name, nAGQ]


def _weights(name, d, eta) -> np.ndarray:
    """Working weights prior_w (dmu/deta)^2 / V(mu), written out for the canonical links."""
    if name == "binomial":                     # logit: dmu/deta = V(mu) = mu (1 - mu); prior w = trials
        mu = expit(eta)
        return d["n"].to_numpy() * mu * (1 - mu)
    return np.exp(eta)                         # log: dmu/deta = V(mu) = mu; prior w = 1


def _joint_cov(res, name, d):
    """H^-1, dense, and Lambda (dense), at the fit's mode."""
    m = res.model
    X, Z = m.X, m.Z.toarray()
    Lam = m.Lambda(res.theta).toarray()
    w = _weights(name, d, res.linear_predictor())
    ZL = Z @ Lam
    H = np.block([[ZL.T @ (w[:, None] * ZL) + np.eye(m.q), ZL.T @ (w[:, None] * X)],
                  [X.T @ (w[:, None] * ZL), X.T @ (w[:, None] * X)]])
    return np.linalg.inv(H), Lam


def _quad(Hinv, Lam, Zrows, Xrows) -> np.ndarray:
    A = np.hstack([Zrows @ Lam, Xrows])            # rows a' = [z' Lambda, x']
    return np.einsum("ij,jk,ik->i", A, Hinv, A)


def _zrow(res, term_levels: dict) -> np.ndarray:
    """A row of Z written by hand: {term index: (level, values of its columns)}; the columns of a
    term are level-major (level i, column j at offset + i k + j)."""
    z = np.zeros(res.model.q)
    off = 0
    for i, t in enumerate(res.model.terms):
        if i in term_levels:
            lev, vals = term_levels[i]
            j = list(t.group.levels).index(lev)
            z[off + j * t.k: off + (j + 1) * t.k] = vals
        off += t.q
    return z


# -- brute force -----------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["binomial", "poisson"])
def test_fitted_rows_equal_dense_joint_inverse(name):
    res, d = _fit(name)
    assert res.converged and not res.is_singular
    Hinv, Lam = _joint_cov(res, name, d)
    want = _quad(Hinv, Lam, res.model.Z.toarray(), res.model.X)
    out = res.predict(se_fit=True)
    assert list(out.columns) == ["fit", "se_fit"] and out.attrs["se_type"] == "conditional"
    np.testing.assert_allclose(out["se_fit"] ** 2, want, rtol=1e-8)
    # far from beta's uncertainty alone, and from the sum of beta's and b's variances that leaves
    # out their covariance (the data that fix b-hat also fix beta-hat's intercept: it is negative)
    fixed = res.predict(se_fit=True, se_type="fixed")["se_fit"]
    assert np.max(np.abs(out["se_fit"] / fixed - 1)) > 0.2
    Z, X, q = res.model.Z.toarray(), res.model.X, res.model.q
    separate = _quad(Hinv[:q, :q], Lam, Z, np.zeros((Z.shape[0], 0))) + np.einsum("ij,jk,ik->i", X, Hinv[q:, q:], X)
    assert np.max(np.abs(out["se_fit"] ** 2 / separate - 1)) > 0.2
    np.testing.assert_allclose(out["fit"], res.linear_predictor(), rtol=1e-14)


def test_binomial_newdata_seen_new_and_dropped_terms():
    res, d = _fit("binomial")
    Hinv, Lam = _joint_cov(res, "binomial", d)
    names = res.model.fixef_names
    assert names == ["(Intercept)", "x", "fb", "fc"]
    nd = pd.DataFrame({"x": [0.3, -1.2, 2.0, 0.0, 0.5, np.nan, 0.3],
                       "f": ["a", "c", "b", "b", "a", "a", "a"],
                       "g": ["g3", "g13", "g0", "new", "g7", "g1", "g3"],
                       "h": ["h8", "h2", "new", "h0", None, "h1", "h8"],
                       "s": 0, "n": 1})
    X = np.column_stack([np.ones(7), nd["x"].fillna(0), nd["f"] == "b", nd["f"] == "c"]).astype(float)
    S = {k: v.to_numpy()[0, 0] for k, v in res.cov_re.items()}
    gi, hi = [i for i, t in enumerate(res.model.terms) if t.group.name == "g"][0], \
        [i for i, t in enumerate(res.model.terms) if t.group.name == "h"][0]

    def rows(use_g, use_h):
        Z, prior = np.zeros((7, res.model.q)), np.zeros(7)
        for r in range(7):
            lv = {}
            for use, i, col, grp in ((use_g, gi, "g", "g"), (use_h, hi, "h", "h")):
                if not use:
                    continue
                v = nd[col].iloc[r]
                if not isinstance(v, str) or v == "new":
                    prior[r] += S[grp]                       # the new (or missing) level's prior variance
                else:
                    lv[i] = (v, [1.0])
            Z[r] = _zrow(res, lv)
        return Z, prior

    for re_form, use_g, use_h in ((None, True, True), ("~(1|g)", True, False), ("~(1|h)", False, True)):
        out = res.predict(nd, re_form=re_form, allow_new_levels=True, se_fit=True)
        Z, prior = rows(use_g, use_h)
        want = _quad(Hinv, Lam, Z, X) + prior
        ok = np.arange(7) != 5
        np.testing.assert_allclose(out["se_fit"][ok] ** 2, want[ok], rtol=1e-8)
        assert np.isnan(out["se_fit"].iloc[5]) and np.isnan(out["fit"].iloc[5])     # missing x: NaN
        assert out["se_fit"].iloc[0] == out["se_fit"].iloc[6]                     # identical rows
        eta = X @ res.beta + Z @ res.b
        np.testing.assert_allclose(out["fit"][ok], eta[ok], rtol=1e-12)
    # re_form="~0": nothing random in eta or a, the fixed-only formula with (R_X'R_X)^-1
    out = res.predict(nd, re_form="~0", se_fit=True)
    V = res.vcov(use_hessian=False).to_numpy()
    ok = np.arange(7) != 5
    xvx = np.einsum("ij,jk,ik->i", X, V, X)
    np.testing.assert_allclose(out["se_fit"][ok] ** 2, xvx[ok], rtol=1e-10)
    np.testing.assert_allclose(out["se_fit"][ok] ** 2, _quad(Hinv, Lam, np.zeros((7, res.model.q)), X)[ok],
                               rtol=1e-8)


def test_poisson_slope_newdata_new_level_prior_and_offset():
    res, d = _fit("poisson")
    Hinv, Lam = _joint_cov(res, "poisson", d)
    Sigma = res.cov_re["g"].to_numpy()
    assert Sigma[0, 1] != 0                              # a correlated slope
    nd = pd.DataFrame({"x": [0.0, 3.0, 1.0, 4.0, 2.0], "t": [1.0, 2.0, 4.0, 1.0, 3.0],
                       "g": ["g4", "g29", "brand-new", "g11", "brand-new"], "y": 0})
    X = np.column_stack([np.ones(5), nd["x"]])
    Z = np.zeros((5, res.model.q))
    prior = np.zeros(5)
    for r in range(5):
        lev, x = nd["g"].iloc[r], nd["x"].iloc[r]
        if lev == "brand-new":
            prior[r] = np.array([1.0, x]) @ Sigma @ np.array([1.0, x])
        else:
            Z[r] = _zrow(res, {0: (lev, [1.0, x])})
    out = res.predict(nd, allow_new_levels=True, se_fit=True, interval="confidence", level=0.8)
    np.testing.assert_allclose(out["se_fit"] ** 2, _quad(Hinv, Lam, Z, X) + prior, rtol=1e-8)
    assert np.all(prior[[2, 4]] > 0.1 * out["se_fit"].iloc[[2, 4]] ** 2)     # the prior part is not negligible
    eta = X @ res.beta + Z @ res.b + np.log(nd["t"].to_numpy())
    np.testing.assert_allclose(out["fit"], eta, rtol=1e-12)
    z = norm.ppf(0.9)
    np.testing.assert_allclose(out["upr"] - out["fit"], z * out["se_fit"], rtol=1e-12)
    np.testing.assert_allclose(out["fit"] - out["lwr"], z * out["se_fit"], rtol=1e-12)
    # type="response": the delta method, the endpoints through exp
    resp = res.predict(nd, type="response", allow_new_levels=True, se_fit=True, interval="confidence", level=0.8)
    np.testing.assert_allclose(resp["se_fit"], np.exp(eta) * out["se_fit"], rtol=1e-10)
    np.testing.assert_allclose(resp["lwr"], np.exp(out["lwr"]), rtol=1e-12)
    np.testing.assert_allclose(resp["upr"], np.exp(out["upr"]), rtol=1e-12)
    np.testing.assert_allclose(resp["fit"], np.exp(eta), rtol=1e-12)
    # the fit's rows, a term dropped: the fixed-only formula (R_X)
    pop = res.predict(re_form="~0", se_fit=True)["se_fit"]
    V = res.vcov(use_hessian=False).to_numpy()
    np.testing.assert_allclose(pop ** 2, np.einsum("ij,jk,ik->i", res.model.X, V, res.model.X), rtol=1e-10)


def test_se_type_fixed_is_the_vcov_formula_and_nagq0():
    res, d = _fit("binomial")
    nd = d.head(6)
    out = res.predict(nd, se_fit=True, interval="confidence", se_type="fixed")
    X = res.model.X[:6]
    V = res.vcov().to_numpy()                                    # glmer's default: the Hessian's
    np.testing.assert_allclose(out["se_fit"], np.sqrt(np.einsum("ij,jk,ik->i", X, V, X)), rtol=1e-12)
    assert out.attrs["se_type"] == "fixed"
    resp = res.predict(nd, type="response", se_fit=True, se_type="fixed")
    p = expit(out["fit"].to_numpy())
    np.testing.assert_allclose(resp["se_fit"], p * (1 - p) * out["se_fit"], rtol=1e-10)
    with pytest.raises(ArgumentError, match="se_type"):
        res.predict(nd, se_fit=True, se_type="marginal")
    # nAGQ = 0 (beta inside PIRLS): the same joint system at its mode; re_form="~0" is then vcov()
    r0, _ = _fit("binomial", nAGQ=0)
    Hinv, Lam = _joint_cov(r0, "binomial", d)
    np.testing.assert_allclose(r0.predict(se_fit=True)["se_fit"] ** 2,
                               _quad(Hinv, Lam, r0.model.Z.toarray(), r0.model.X), rtol=1e-8)
    V0 = r0.vcov().to_numpy()
    X0 = r0.model.X
    np.testing.assert_allclose(r0.predict(re_form="~0", se_fit=True)["se_fit"] ** 2,
                               np.einsum("ij,jk,ik->i", X0, V0, X0), rtol=1e-10)


# -- glmmTMB ---------------------------------------------------------------------------------
def _cbpp() -> pd.DataFrame:
    return pd.read_csv(REF / "data" / "cbpp.csv", dtype={"herd": str, "period": str})


def _cbpp_newdata() -> pd.DataFrame:
    nd = TMB["newdata"]
    return pd.DataFrame({"herd": nd["herd"], "period": nd["period"], "incidence": 0, "size": 1})


def test_against_glmmtmb_theta_known():
    d = _cbpp()
    m = sm.glmer(TMB["formula"], d, family="binomial")
    assert m.fixef_names == TMB["beta_names"]
    # glmmTMB's theta is log(SD); ours is SD / sigma with sigma = 1
    res = GlmerResult(m, m.mode([TMB["sd"]], TMB["beta"]), None, 1)
    levels = list(res.model.terms[0].group.levels)
    b_tmb = dict(zip(TMB["herd_levels"], TMB["b"]))
    np.testing.assert_allclose(res.b, [b_tmb[lv] for lv in levels], rtol=1e-9, atol=1e-10)
    for ref, out in ((TMB["fitted"], res.predict(se_fit=True)),
                     (TMB["newdata"], res.predict(_cbpp_newdata(), allow_new_levels=True, se_fit=True))):
        np.testing.assert_allclose(out["fit"], ref["fit"], rtol=1e-10, atol=1e-11)
        np.testing.assert_allclose(out["se_fit"], ref["se_known"], rtol=1e-10)
    # documented facts about glmmTMB's se.fit (theta's uncertainty included), module docstring
    f, nd = TMB["fitted"], TMB["newdata"]
    r = np.array(f["se_fit"]) / np.array(f["se_known"]) - 1
    assert 0.080 < r.max() < 0.082 and -0.0047 < r.min() < -0.0045
    assert f["se_fit"][0] == pytest.approx(0.37833, abs=1e-5) and f["se_known"][0] == pytest.approx(0.37073, abs=1e-5)
    r = np.array(nd["se_fit"]) / np.array(nd["se_known"]) - 1
    assert 0.055 < r.max() < 0.057
    r = np.array(f["se_map"] + nd["se_map"]) / np.array(f["se_known"] + nd["se_known"]) - 1
    assert np.abs(r).max() < 0.0047
    new = [i for i, h in enumerate(nd["herd"]) if h == "new"]
    assert np.allclose(np.array(nd["se_fit"])[new], np.array(nd["se_known"])[new], rtol=3e-3)


def test_against_glmmtmb_at_our_own_fit():
    """Our own Laplace fit agrees with glmmTMB's optimum to ~1e-6, and its se_fit with the
    theta-known reference to that order (2e-7 measured)."""
    res = sm.glmer(TMB["formula"], _cbpp(), family="binomial").fit()
    np.testing.assert_allclose(res.theta, [TMB["sd"]], rtol=1e-5)
    np.testing.assert_allclose(res.beta, TMB["beta"], rtol=1e-5)
    out = res.predict(_cbpp_newdata(), allow_new_levels=True, se_fit=True, interval="confidence")
    np.testing.assert_allclose(out["se_fit"], TMB["newdata"]["se_known"], rtol=1e-5)
    np.testing.assert_allclose(out["upr"] - out["lwr"], 2 * norm.ppf(0.975) * out["se_fit"], rtol=1e-12)
