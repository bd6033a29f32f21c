"""The sparse-X path (linalg/augmented.py): fixed effects inside the CHOLMOD system.

Checked against the dense-X path (same model, sparse_X=False), against an independent
dense brute-force likelihood (tests/test_properties.py's helpers), and against central
finite differences for the gradient.  Designs are unbalanced (random group sizes, a fixed
factor with unequal level counts), since balanced designs hide errors in beta.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import sparsemixed as sm
from sparsemixed.errors import MemoryLimitError, RankDeficiencyWarning, SparseMixedError

from test_properties import dense_design, dense_lambda, dense_profiled


def frame(n=500, nf=40, ng=25, nb=9, seed=0, nested=False):
    """Unbalanced data: fixed factor f (nf levels, skewed sizes), covariate x, crossed
    g x b or nested a/h groupings, positive weights w."""
    rng = np.random.default_rng(seed)
    f = np.minimum((rng.pareto(1.5, n) * nf / 4).astype(int), nf - 1)
    f[:nf] = np.arange(nf)                         # every level present
    g = rng.integers(0, ng, n) if not nested else np.repeat(np.arange(ng), rng.multinomial(n - ng, np.ones(ng) / ng) + 1)
    b = rng.integers(0, nb, n)
    h = rng.integers(0, 3, n)
    x = rng.normal(size=n)
    y = (1.0 + 0.4 * x + rng.normal(size=nf)[f] + 0.8 * rng.normal(size=ng)[g]
         + 0.5 * rng.normal(size=nb)[b] + 0.3 * rng.normal(size=(ng, 3))[g, h] + rng.normal(size=n))
    return pd.DataFrame({"y": y, "x": x, "f": [f"F{v:03d}" for v in f], "g": [f"G{v}" for v in g],
                         "a": [f"G{v}" for v in g], "h": [f"H{v}" for v in h], "b": [f"B{v}" for v in b],
                         "w": rng.uniform(0.3, 3.0, n)})


CROSSED = "y ~ x + f + (1|g) + (1|b)"
NESTED = "y ~ x + f + (1|a/h)"


def pair(formula, df, **kw):
    return sm.lmer(formula, df, sparse_X=True, **kw), sm.lmer(formula, df, sparse_X=False, **kw)


@pytest.mark.parametrize("formula,nested,weighted", [(CROSSED, False, False), (NESTED, True, False),
                                                     (CROSSED, False, True)])
@pytest.mark.parametrize("reml", [True, False])
def test_objective_and_gradient_match_dense_path(formula, nested, weighted, reml):
    df = frame(nested=nested)
    kw = {"weights": "w"} if weighted else {}
    ms, md = pair(formula, df, REML=reml, **kw)
    assert ms.sparse_X and not md.sparse_X and ms.engine.aug is not None
    assert ms.fixef_names == md.fixef_names and ms.p == 41
    rng = np.random.default_rng(1)
    for theta in [ms.theta0, np.array([0.3, 2.0]), np.array([0.0, 0.7]), rng.uniform(0.05, 3, 2)]:
        fs, fd = ms.objective(theta), md.objective(theta)
        assert fs == pytest.approx(fd, rel=1e-9)
        gs, gd = ms.gradient(theta), md.gradient(theta)
        np.testing.assert_allclose(gs, gd, rtol=1e-7, atol=1e-7 * np.abs(gd).max())


@pytest.mark.parametrize("reml", [True, False])
def test_gradient_central_differences(reml):
    ms = sm.lmer(CROSSED, frame(seed=3), REML=reml, sparse_X=True)
    for theta in (np.array([0.6, 1.3]), np.array([1.7, 0.2])):
        g = ms.gradient(theta)
        h = 1e-5
        fd = np.array([(ms.objective(theta + h * e) - ms.objective(theta - h * e)) / (2 * h)
                       for e in np.eye(theta.size)])
        np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)


def test_gradient_central_differences_slope_term():
    """A vector-valued term (1 + x | g): several theta per term, off-diagonal Lambda."""
    df = frame(seed=5)
    ms, md = pair("y ~ x + f + (1 + x|g) + (1|b)", df)
    theta = np.array([0.8, 0.3, 0.5, 1.1])
    g = ms.gradient(theta)
    fd = np.array([(ms.objective(theta + 1e-5 * e) - ms.objective(theta - 1e-5 * e)) / 2e-5 for e in np.eye(4)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5)
    assert ms.objective(theta) == pytest.approx(md.objective(theta), rel=1e-9)


@pytest.mark.parametrize("formula,nested", [(CROSSED, False), (NESTED, True)])
@pytest.mark.parametrize("reml", [True, False])
def test_fit_matches_dense_path(formula, nested, reml):
    df = frame(seed=7, nested=nested)
    ms, md = pair(formula, df, REML=reml)
    rs, rd = ms.fit(optimizer="lbfgsb"), md.fit(optimizer="lbfgsb")   # same optimizer: compare paths
    assert type(rs).__name__ == "SparseXLmerResult"
    np.testing.assert_allclose(rs.theta, rd.theta, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rs.beta, rd.beta, rtol=1e-6, atol=1e-6)
    assert rs.sigma == pytest.approx(rd.sigma, rel=1e-6)
    assert rs.objective == pytest.approx(rd.objective, rel=1e-9)
    # compare at the same theta, free of optimizer tolerance: SEs from the selected inverse
    rs_at = ms.pls(rd.theta)
    np.testing.assert_allclose(rs_at.beta + ms.fixed.shift, rd.beta, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(rs.fixef_se.to_numpy(), rd.fixef_se.to_numpy(), rtol=1e-6)
    np.testing.assert_allclose(rs.vcov.to_numpy(), rd.vcov.to_numpy(), rtol=1e-5, atol=1e-8)
    assert rs.loglik == pytest.approx(rd.loglik, rel=1e-9)
    assert rs.aic == pytest.approx(rd.aic, rel=1e-9) and rs.bic == pytest.approx(rd.bic, rel=1e-9)
    np.testing.assert_allclose(rs.b, rd.b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(rs.fitted(), rd.fitted(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(rs.residuals(), rd.residuals(), rtol=1e-6, atol=1e-6)
    for k in rd.ranef:
        np.testing.assert_allclose(rs.ranef[k].to_numpy(), rd.ranef[k].to_numpy(), rtol=1e-5, atol=1e-6)
    assert rs.varcorr.shape == rd.varcorr.shape
    text = rs.summary()
    assert "Correlation matrix not shown" in text and "fF039" in text
    pd.testing.assert_frame_equal(rs.coef_table(), rd.coef_table(), rtol=1e-5)
    np.testing.assert_allclose(rs.predict(df.iloc[:20]), rd.predict(df.iloc[:20]), rtol=1e-6, atol=1e-6)


def _fixed_matrix(df, levels):
    X = [np.ones(len(df)), df["x"].to_numpy(float)]
    X += [(df["f"].to_numpy() == v).astype(float) for v in levels[1:]]
    return np.column_stack(X)


@pytest.mark.expect_warnings((sm.SingularFitWarning,))
@pytest.mark.parametrize("reml", [True, False])
@pytest.mark.parametrize("formula", ["y ~ x + f + (1|g) + (1|b)", "y ~ x + f + (1|a/h)"])
def test_against_dense_brute_force(formula, reml):
    """An independent likelihood: V0 = Z Lambda Lambda'Z' + I built densely by hand."""
    df = frame(n=120, nf=30, ng=8, nb=5, seed=11, nested="a/h" in formula)
    ms = sm.lmer(formula, df, REML=reml, sparse_X=True)
    Z, blocks = dense_design(ms, df)
    X = _fixed_matrix(df, sorted(df["f"].unique()))
    assert X.shape[1] == ms.p
    y = df["y"].to_numpy(float)
    for theta in (ms.theta0, np.linspace(0.2, 1.7, ms.theta0.size)):
        ref = dense_profiled(y, X, Z, dense_lambda(theta, blocks), reml)
        assert ms.objective(theta) == pytest.approx(ref["objective"], rel=1e-9)
        st_ = ms.pls(theta)
        np.testing.assert_allclose(st_.beta + ms.fixed.shift, ref["beta"], rtol=1e-7, atol=1e-8)
    res = ms.fit()
    ref = dense_profiled(y, X, Z, dense_lambda(res.theta, blocks), reml)
    se = np.sqrt(np.diag(ref["vcov_rel"]) * ref["sigma2"])
    np.testing.assert_allclose(res.fixef_se.to_numpy(), se, rtol=1e-7)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), nf=st.integers(3, 25), reml=st.booleans(),
       theta=st.tuples(st.floats(0.0, 3.0), st.floats(0.0, 3.0)))
def test_property_sparse_equals_dense_criterion(seed, nf, reml, theta):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(nf + 12, 4 * nf + 40))
    df = frame(n=n, nf=nf, ng=int(rng.integers(3, 10)), nb=int(rng.integers(2, 6)), seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            ms, md = pair(CROSSED, df, REML=reml)
        except sm.DataError:
            return
    assert ms.fixef_names == md.fixef_names
    th = np.array(theta)
    assert ms.objective(th) == pytest.approx(md.objective(th), rel=1e-9)


def test_auto_chooses_by_size_and_density():
    from sparsemixed.sparse_x import SPARSE_X_MIN_P

    big = frame(n=3 * SPARSE_X_MIN_P, nf=SPARSE_X_MIN_P + 10, seed=2)
    m = sm.lmer(CROSSED, big)
    assert m.sparse_X and m.p == SPARSE_X_MIN_P + 11
    small = frame(seed=2)                 # 40 levels: p = 41, the usual dense path
    assert not sm.lmer(CROSSED, small).sparse_X
    assert not sm.lmer("y ~ x + (1|g)", small).sparse_X
    # forcing works both ways
    assert sm.lmer("y ~ x + (1|g)", small, sparse_X=True).sparse_X
    assert not sm.lmer(CROSSED, big, sparse_X=False).sparse_X
    with pytest.raises(SparseMixedError, match="sparse_X"):
        sm.lmer(CROSSED, small, sparse_X="yes")


def test_rank_deficient_drops_same_columns_as_dense():
    df = frame(seed=4)
    df["x2"] = 2.0 * df["x"] - 1.0                       # aliased with intercept and x
    df["fc"] = df["f"].str[:3]                          # a coarsening of f: all its columns aliased
    formula = "y ~ x + f + x2 + fc + (1|g) + (1|b)"
    with pytest.warns(RankDeficiencyWarning) as ws:
        ms = sm.lmer(formula, df, sparse_X=True)
    with pytest.warns(RankDeficiencyWarning):
        md = sm.lmer(formula, df, sparse_X=False)
    assert ms.dropped_fixef == md.dropped_fixef and "x2" in ms.dropped_fixef
    assert ms.fixef_names == md.fixef_names
    assert any("x2" in str(w.message) for w in ws)
    theta = np.array([0.5, 0.9])
    assert ms.objective(theta) == pytest.approx(md.objective(theta), rel=1e-9)


def test_unsupported_methods_refuse_clearly():
    ms = sm.lmer(CROSSED, frame(seed=6), sparse_X=True)
    res = ms.fit()
    for call in (lambda: res.coef_table(ddf="Satterthwaite"), lambda: res.coef_table(ddf="Kenward-Roger"),
                 lambda: res.vcov_varpar(), lambda: res.getME("RZX"), lambda: res.getME("RX")):
        with pytest.raises(SparseMixedError, match="sparse_X=False"):
            call()


def test_memory_guard_applies_to_augmented_factor():
    ms = sm.lmer(CROSSED, frame(seed=8), sparse_X=True)
    with pytest.raises(MemoryLimitError, match="Maug"):
        ms.engine.aug.analyse(ms.theta0, ms.relcov, memory_limit=2000)


def test_refit_and_cross_products_stay_sparse():
    import scipy.sparse as sp

    df = frame(seed=9)
    ms, md = pair(CROSSED, df)
    assert sp.issparse(ms.crossprod.ZtX) and sp.issparse(ms.crossprod.XtX)
    y2 = df["y"].to_numpy() * 2 + 3
    # the sparse-X default (BOBYQA from moment estimates), the same settings on the dense path
    rs, rd = ms.refit(y2), md.refit(y2, optimizer="bobyqa", start="moments")
    assert rs.optsummary.method == "bobyqa"
    np.testing.assert_allclose(rs.optsummary.initial, rd.optsummary.initial, rtol=1e-12)
    assert rs.optsummary.diagnostics["checked"] is False
    np.testing.assert_allclose(rs.beta, rd.beta, rtol=1e-6, atol=1e-6)
    assert rs.objective == pytest.approx(rd.objective, rel=1e-9)


def _independent_columns_reference(XtX, tol):
    """The previous O(p k^3) greedy loop, kept here as the reference of R's rule."""
    keep = []
    for j in range(XtX.shape[0]):
        d = XtX[j, j]
        if d <= 0:
            continue
        if keep:
            g = XtX[keep, j]
            res = d - g @ np.linalg.solve(XtX[np.ix_(keep, keep)], g)
        else:
            res = d
        if res > tol ** 2 * d:
            keep.append(j)
    return np.array(keep, dtype=np.int64)


@pytest.mark.parametrize("seed", range(6))
def test_rank_rules_match_reference_greedy(seed):
    import scipy.sparse as sp

    from sparsemixed.linalg.rank import independent_columns_sparse
    from sparsemixed.assemble import RANK_TOL, independent_columns

    rng = np.random.default_rng(seed)
    p = int(rng.integers(8, 40))
    X = rng.normal(size=(120, p)) * rng.uniform(0.01, 100, p)
    X[rng.random((120, p)) < 0.5] = 0.0
    for _ in range(int(rng.integers(1, 5))):
        j = int(rng.integers(2, p))
        a, b = rng.integers(0, j, 2)
        X[:, j] = rng.normal() * X[:, a] + rng.normal() * X[:, b]
    X[:, int(rng.integers(0, p))] = 0.0
    X[:, 0] = 1.0
    G = X.T @ X
    ref = _independent_columns_reference(G, RANK_TOL)
    np.testing.assert_array_equal(independent_columns(G), ref)
    np.testing.assert_array_equal(independent_columns_sparse(sp.csc_matrix(G), RANK_TOL), ref)


@pytest.mark.parametrize("reml", [True, False])
def test_selected_inverse_dense_tail_equals_scalar_takahashi(monkeypatch, reml):
    """The selected inverse's dense trailing block (dpotri) against pure Takahashi."""
    from sparsemixed.linalg import cholesky as ch

    df = frame(n=900, nf=150, seed=12)
    ms = sm.lmer(CROSSED, df, REML=reml, sparse_X=True, ordering="amd")
    theta = np.array([0.7, 1.2])
    st_ = ms.pls(theta)
    L = st_.factor.L().tocsc()
    assert ch.dense_tail_start(L) < L.shape[0] - 64         # the hybrid is exercised
    S_hybrid = ms.engine.aug.selected_inverse(st_.factor)
    g_hybrid = ms.gradient(theta)
    monkeypatch.setattr(ch, "MAX_DENSE_TAIL", 0)             # no dense block: scalar only
    S_scalar = ms.engine.aug.selected_inverse(st_.factor)
    np.testing.assert_allclose(S_hybrid, S_scalar, rtol=1e-10, atol=1e-13 * np.abs(S_scalar).max())
    np.testing.assert_allclose(ms.gradient(theta), g_hybrid, rtol=1e-9)
    # and against a dense inverse of Maug
    A = ms.engine.aug.matrix(theta, ms.relcov).toarray()
    A = A + np.tril(A, -1).T
    Ainv = np.linalg.inv(A)
    aug = ms.engine.aug
    r, c = aug.indices, np.repeat(np.arange(aug.N), np.diff(aug.indptr))
    np.testing.assert_allclose(S_hybrid, Ainv[r, c], rtol=1e-8, atol=1e-12)


def test_small_n_interpolation_check_and_profile_refusal():
    """q + p >= n runs the [Z X] rank check on the sparse cross-products too; the
    likelihood profile (it needs c_u and R_ZX) is refused clearly."""
    df = frame(n=60, nf=20, ng=25, nb=9, seed=13)
    outcomes = []
    for sx in (True, False):
        try:
            m = sm.lmer(CROSSED, df, sparse_X=sx)
            outcomes.append(("ok", round(m.objective([0.5, 0.5]), 8)))
        except sm.DataError as e:
            outcomes.append(("DataError", str(e)[:40]))
    assert outcomes[0] == outcomes[1]
    res = sm.lmer(CROSSED, frame(seed=14), sparse_X=True).fit()
    from sparsemixed.inference.profile import profile

    with pytest.raises(SparseMixedError, match="sparse_X=False"):
        profile(res)


def test_random_effects_at_theta_match_dense():
    ms, md = pair(NESTED, frame(seed=15, nested=True))
    theta = np.array([0.9, 0.4])
    for a, b in zip(ms.random_effects(theta), md.random_effects(theta)):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
    rs, rd = ms.fit(optimizer="lbfgsb"), md.fit(optimizer="lbfgsb")
    np.testing.assert_allclose(rs.ranef_var(), rd.ranef_var(), rtol=1e-5)
    for k, v in rd.ranef_postvar().items():
        np.testing.assert_allclose(rs.ranef_postvar()[k], v, rtol=1e-5)
    with pytest.raises(SparseMixedError, match="sparse_X=False"):
        rs.ranef_var("pev")
