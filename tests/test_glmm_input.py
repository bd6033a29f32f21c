"""glmer's bad input: each a specific error or warning naming the column and the remedy;
the user's frame unchanged.  And invariances of the fit (row order, level labels)."""
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsemixed as sm
from sparsemixed.errors import ArgumentError, DataError, FormulaError


def _frame(n=200, seed=0):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.8 * x + rng.normal(0, 0.7, 12)[g]
    return pd.DataFrame({"y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int), "x": x,
                         "g": [f"g{v}" for v in g], "k": rng.poisson(np.exp(eta)), "t": rng.uniform(0.5, 2, n)})


def test_errors_name_the_problem_and_leave_the_frame_alone():
    df = _frame()
    before = df.copy()
    with pytest.raises(ArgumentError, match="binomial"):
        sm.glmer("y ~ x + (1|g)", df, family="binomal")
    with pytest.raises(ArgumentError, match="lmer"):
        sm.glmer("y ~ x + (1|g)", df, family="gaussian")
    with pytest.raises(ArgumentError, match="dispersion"):
        sm.glmer("k ~ x + (1|g)", df, family="Gamma")
    with pytest.raises(ArgumentError, match="logit"):
        sm.glmer("y ~ x + (1|g)", df, family="binomial(link = 'lgoit')")
    bad = df.assign(y=df["y"] * 2)
    with pytest.raises(DataError, match="'y'.*0 and 1.*weights"):
        sm.glmer("y ~ x + (1|g)", bad, family="binomial")
    with pytest.raises(DataError, match="negative counts"):
        sm.glmer("k ~ x + (1|g)", df.assign(k=-df["k"] - 1), family="poisson")
    with pytest.raises(DataError, match="0 in every row"):
        sm.glmer("y ~ x + (1|g)", df.assign(y=0), family="binomial")
    with pytest.raises(DataError, match="three|3 levels"):
        sm.glmer("c ~ x + (1|g)", df.assign(c=np.array(["a", "b", "c"] * 67)[:200]), family="binomial")
    with pytest.raises(ArgumentError, match="single scalar"):
        sm.glmer("y ~ x + (1|g) + (0 + x|g)", df, family="binomial", nAGQ=5)
    with pytest.raises(ArgumentError, match="nAGQ"):
        sm.glmer("y ~ x + (1|g)", df, family="binomial", nAGQ=-1)
    with pytest.raises(FormulaError, match="cbind"):
        sm.glmer("cbind(k, t) ~ x + (1|g)", df, family="poisson")
    with pytest.warns(sm.SparseMixedWarning, match="non-integer counts"):
        sm.glmer("t ~ x + (1|g)", df, family="poisson")
    pd.testing.assert_frame_equal(df, before)


def test_response_forms_agree():
    """0/1, logical, a two-level text factor and cbind(y, 1 - y) are one model; a
    proportion with weights equals cbind of the counts."""
    df = _frame()
    fits = []
    for formula, data in [("y ~ x + (1|g)", df), ("yb ~ x + (1|g)", df.assign(yb=df["y"] == 1)),
                          ("yf ~ x + (1|g)", df.assign(yf=np.where(df["y"] == 1, "yes", "no"))),
                          ("cbind(y, 1 - y) ~ x + (1|g)", df)]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fits.append(sm.glmer(formula, data, family="binomial").fit(nAGQ=0))
    for f in fits[1:]:
        assert f.minus2loglik == pytest.approx(fits[0].minus2loglik, rel=1e-9)
        np.testing.assert_allclose(f.theta, fits[0].theta, rtol=1e-6)
    agg = df.assign(m=3, s=np.minimum(df["k"], 3))
    a = sm.glmer("cbind(s, m - s) ~ x + (1|g)", agg, family="binomial").fit(nAGQ=0)
    b = sm.glmer("p ~ x + (1|g)", agg.assign(p=agg["s"] / 3), family="binomial", weights="m").fit(nAGQ=0)
    assert a.minus2loglik == pytest.approx(b.minus2loglik, rel=1e-10)


def test_offset_in_formula_equals_offset_argument():
    df = _frame()
    a = sm.glmer("k ~ x + offset(log(t)) + (1|g)", df, family="poisson").fit(nAGQ=0)
    b = sm.glmer("k ~ x + (1|g)", df, family="poisson", offset=np.log(df["t"].to_numpy())).fit(nAGQ=0)
    assert a.minus2loglik == pytest.approx(b.minus2loglik, rel=1e-12)
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-8)


@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), perm_seed=st.integers(0, 10_000))
def test_invariant_to_row_order_and_level_labels(seed, perm_seed):
    """Unbalanced random data: shuffling the rows and renaming the levels changes nothing
    (the Laplace deviance at a fixed point, to 1e-10)."""
    df = _frame(n=120, seed=seed)
    rng = np.random.default_rng(perm_seed)
    shuffled = df.iloc[rng.permutation(len(df))].reset_index(drop=True)
    labels = {g: f"L{rng.integers(1_000_000)}_{g}" for g in df["g"].unique()}
    shuffled["g"] = shuffled["g"].map(labels)
    try:
        m1 = sm.glmer("y ~ x + (1|g)", df, family="binomial")
    except DataError:
        return
    m2 = sm.glmer("y ~ x + (1|g)", shuffled, family="binomial")
    x = np.array([0.7, -0.2, 0.5])
    assert m2.objective(x) == pytest.approx(m1.objective(x), rel=1e-10)
    assert m2.objective(x[:1]) == pytest.approx(m1.objective(x[:1]), rel=1e-10)


def test_quadrature_against_numerical_integration():
    """One scalar term: -2 log of the marginal likelihood by scipy.integrate.quad per group
    equals the AGQ value with 25 nodes plus the saturated constant (1e-7 relative), and
    the Laplace value is within the Laplace error of it."""
    from scipy.integrate import quad
    from scipy.stats import binom

    from sparsemixed.glmm.agq import agq_deviance

    df = _frame(n=90, seed=3)
    m = sm.glmer("y ~ x + (1|g)", df, family="binomial", nAGQ=25)
    theta, beta = 0.9, np.array([-0.2, 0.6])
    y = df["y"].to_numpy()
    eta_fixed = beta[0] + beta[1] * df["x"].to_numpy()
    total = 0.0
    for g in df["g"].unique():
        rows = (df["g"] == g).to_numpy()

        def integrand(u):
            p = 1 / (1 + np.exp(-(eta_fixed[rows] + theta * u)))
            return np.exp(binom.logpmf(y[rows], 1, p).sum()) * np.exp(-u * u / 2) / np.sqrt(2 * np.pi)
        val, _ = quad(integrand, -12, 12, epsabs=0, epsrel=1e-12, limit=200)
        total += -2 * np.log(val)
    mode = m.mode([theta], beta)
    agq = agq_deviance(m, mode, 25) + m.response.saturated_minus2loglik()
    assert agq == pytest.approx(total, rel=1e-7)
    assert mode.laplace == pytest.approx(total, rel=2e-2)
    assert abs(mode.laplace - total) > abs(agq - total)


@pytest.mark.parametrize("formula, family, theta", [
    ("y ~ x + (1|g) + (1|h)", "binomial", [0.8, 0.4]),
    ("k ~ x + (1|g) + (1|h)", "poisson", [0.8, 0.4]),
    ("y ~ x + (1 + x|g) + (1|h)", "binomial", [0.8, 0.3, 0.5, 0.4]),
    ("k ~ x + (1 + x|g)", "poisson", [0.6, -0.2, 0.3]),
    ("y ~ x + (1|g) + (1|h)", "binomial", [0.0, 0.4]),
    ("k ~ 0 + (1|g)", "poisson", [0.7]),
])
def test_laplace_gradient_against_finite_differences(formula, family, theta):
    """glmm/gradient.py's dD/dbeta and dD/dtheta (envelope parts, the trace, leverages,
    d u-hat / d beta and d u-hat / d theta) equal central differences of the Laplace
    deviance at fixed beta, on crossed unbalanced terms, correlated slopes and a bound."""
    from sparsemixed.glmm.gradient import laplace_gradient

    df = _frame(n=300, seed=11)
    df["h"] = [f"h{v}" for v in np.random.default_rng(2).integers(0, 7, len(df))]
    m = sm.glmer(formula, df, family=family)
    theta = np.array(theta)
    beta = m.mode(theta).beta + 0.05
    mode = m.mode(theta, beta)
    g = laplace_gradient(m, mode)

    def central(f, x):
        out = np.empty_like(x)
        for j in range(x.size):
            e = np.zeros_like(x)
            e[j] = 1e-5
            out[j] = (f(x + e) - f(x - e)) / 2e-5
        return out

    fd_beta = central(lambda b: m.mode(theta, b, u0=mode.u).laplace, beta)
    fd_theta = central(lambda t: m.mode(t, beta, u0=mode.u).laplace, theta)
    np.testing.assert_allclose(g.beta, fd_beta, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(g.theta, fd_theta, rtol=1e-6, atol=1e-6)
    assert np.all(np.abs(g.theta) > 1e-3) or theta.min() == 0.0     # not a vanishing gradient


def test_profiled_and_joint_searches_agree():
    """The gradient search with beta profiled by Newton (the default for canonical links)
    reaches glmer's joint derivative-free optimum: same deviance, same estimates."""
    from sparsemixed.glmm import fit as fit_mod

    df = _frame(n=400, seed=5)
    m = sm.glmer("y ~ x + (1|g)", df, family="binomial")
    profiled = m.fit()
    real = fit_mod.gradient.supported
    try:
        fit_mod.gradient.supported = lambda model: False
        joint = m.fit()
    finally:
        fit_mod.gradient.supported = real
    assert profiled.minus2loglik <= joint.minus2loglik + 1e-7
    np.testing.assert_allclose(profiled.theta, joint.theta, rtol=2e-3, atol=1e-4)
    np.testing.assert_allclose(profiled.fixef, joint.fixef, rtol=1e-3, atol=1e-4)
    assert profiled.optsummary.feval < joint.optsummary.feval


@pytest.mark.parametrize("family", ["binomial", "poisson"])
def test_fused_kernels_equal_the_family_functions(family):
    """glmm/kernels.py's one-pass mu, working weights and response, and deviance equal
    families.py's vectorised functions (R's arithmetic), the clamps at extreme eta included."""
    from sparsemixed.families import family_from
    from sparsemixed.glmm import kernels

    fam = family_from(family)
    k = kernels.kind(fam)
    rng = np.random.default_rng(4)
    eta = np.concatenate([rng.normal(0, 3, 2000), [-800, -40, -30.5, -30, 29.9, 30, 30.5, 40, 700]])
    if family == "poisson":
        eta = np.clip(eta, -700, 50)
    n = eta.size
    pw = rng.integers(1, 6, n).astype(float)
    y = rng.integers(0, 6, n) / pw if family == "binomial" else rng.poisson(3, n).astype(float)
    y = np.clip(y, 0, 1) if family == "binomial" else y
    off = rng.normal(size=n)
    mu, w, z = np.empty(n), np.empty(n), np.empty(n)
    kernels.working(k, eta, y, pw, off, mu, w, z)
    mu_ref = fam.linkinv(eta)
    d_ref = fam.mu_eta(eta)
    np.testing.assert_allclose(mu, mu_ref, rtol=1e-15, atol=0)
    np.testing.assert_allclose(w, pw * d_ref ** 2 / fam.variance(mu_ref), rtol=1e-14)
    # z = (eta - off) + (y - mu)/d is a sum that can cancel: its rounding is relative to the
    # summands (mu for eta < 0 is e^eta/(1 + e^eta) here, 1/(1 + e^-eta) in R: an ulp apart)
    step = (y - mu_ref) / d_ref
    assert np.all(np.abs(z - (eta - off + step)) <= 1e-13 * (np.abs(eta - off) + np.abs(step)))
    assert kernels.deviance(k, y, mu, pw) == pytest.approx(np.sum(fam.dev_resids(y, mu_ref, pw)), rel=1e-12)
    # the gradient's terms: d = -2 pw (y - mu) mu_eta / V, and w' = dw/deta (central differences
    # of the family's w, away from the clamps)
    d, dw = np.empty(n), np.empty(n)
    kernels.gradient_terms(k, eta, y, pw, d, dw)
    np.testing.assert_allclose(d, -2 * pw * (y - mu_ref) * d_ref / fam.variance(mu_ref), rtol=1e-13, atol=1e-300)
    inner = np.abs(eta) < 25
    h = 1e-5
    weight = lambda e: pw[inner] * fam.mu_eta(e) ** 2 / fam.variance(fam.linkinv(e))
    fd = (weight(eta[inner] + h) - weight(eta[inner] - h)) / (2 * h)
    np.testing.assert_allclose(dw[inner], fd, rtol=1e-7, atol=1e-12 * pw.max())
    if family == "binomial":      # w is constant beyond the clamps
        assert np.all(dw[np.abs(eta) > 30] == 0)


def test_offset_terms_leave_the_rest_of_the_formula_alone():
    """Removing offset() keeps an explicit '0 +' (no intercept) and the term order."""
    df = _frame()
    m = sm.glmer("k ~ 0 + x + offset(log(t)) + (1|g)", df, family="poisson")
    assert m.fixef_names == ["x"]
    m = sm.glmer("k ~ offset(log(t)) + x + (1|g)", df, family="poisson")
    assert m.fixef_names == ["(Intercept)", "x"]
    np.testing.assert_allclose(m.response.offset, np.log(df["t"]), rtol=1e-15)


def test_gaussian_identity_through_the_engine_equals_the_dense_likelihood():
    """PIRLS on the engine with the Gaussian family (sigma fixed at 1; the public glmer
    refuses Gaussian) gives the exact -2 log L(theta, beta, sigma = 1) of the linear mixed
    model, y ~ N(X beta, Z Lambda Lambda'Z' + I), computed densely: to 1e-10."""
    from sparsemixed.families import Gaussian
    from sparsemixed.glmm.pirls import pirls
    from sparsemixed.glmm.response import GLMResponse
    from sparsemixed.glmm.rows import MemoryRows
    from sparsemixed.glmm.weighted import WeightedProducts

    class GaussianRows(MemoryRows):
        def minus2loglik(self, s):      # -2 log p(y | u) with sigma = 1
            return s.deviance + self.n * np.log(2 * np.pi)

    df = _frame(n=150, seed=8)
    df["h"] = [f"h{v}" for v in np.random.default_rng(3).integers(0, 6, len(df))]
    lmm = sm.lmer("x ~ t + (1 + t|g) + (1|h)", df)
    d = lmm.design()
    rows = GaussianRows(WeightedProducts(d.Z, d.X, lmm.crossprod.ZtZ),
                        GLMResponse(d.y, np.ones(d.n), np.zeros(d.n), Gaussian()))
    theta = np.array([0.8, 0.3, 0.5, 0.6])
    beta = np.array([0.2, -0.1])
    mode = pirls(lmm.engine, rows, theta, beta)
    ZL = d.Z.toarray() @ lmm.Lambda(theta).toarray()
    V = ZL @ ZL.T + np.eye(d.n)
    r = d.y - d.X @ beta
    dense = d.n * np.log(2 * np.pi) + np.linalg.slogdet(V)[1] + r @ np.linalg.solve(V, r)
    assert mode.laplace == pytest.approx(dense, rel=1e-10)
    assert mode.iterations <= 2          # one Newton step is exact for the identity link


def test_builder_messages_speak_of_the_users_columns():
    """Errors and warnings from the linear-model builder name the user's response and
    columns, not the columns glmer adds to its copy of the data."""
    df = _frame()
    with pytest.raises(DataError) as info:
        sm.glmer("y ~ xx + (1|g)", df, family="binomial")
    assert "glmer_" not in str(info.value) and "'xx'" in str(info.value) and "y ~" in str(info.value)
    with pytest.warns(sm.MissingDataWarning, match="in 'y'") as rec:
        sm.glmer("y ~ x + (1|g)", df.assign(y=df["y"].where(df.index % 9 != 0)), family="binomial")
    assert not any("glmer_" in str(w.message) for w in rec)


@pytest.mark.parametrize("p", [3, 12])
def test_weighted_cross_products_against_dense_products(p):
    """glmm/weighted.py's pass (X'WX in the pass for small p, by BLAS for large) equals the dense weighted products, on crossed unbalanced factors
    with a random slope; with_X False gives Z'Wr alone."""
    import scipy.sparse as sp

    from sparsemixed.glmm.weighted import WeightedProducts, structural_gram

    rng = np.random.default_rng(p)
    n = 3000
    a = rng.integers(0, 200, n)
    b = rng.choice(40, n, p=np.arange(1, 41) / np.arange(1, 41).sum()) + 200
    x = rng.normal(size=n)
    rows = np.repeat(np.arange(n), 3)
    cols = np.stack([a, b, b + 40], 1).ravel()
    vals = np.stack([np.ones(n), np.ones(n), x], 1).ravel()
    Z = sp.csr_matrix((vals, (rows, cols)), shape=(n, 280))
    X = rng.normal(size=(n, p))
    w, r = rng.uniform(0.05, 3, n), rng.normal(size=n)
    wp = WeightedProducts(Z, X, structural_gram(Z))
    cp = wp.cross_products(w, r, True)
    Zd, W = Z.toarray(), np.diag(w)
    np.testing.assert_allclose(cp.ZtZ.toarray(), Zd.T @ W @ Zd, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(cp.ZtX, Zd.T @ W @ X, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(cp.XtX, X.T @ W @ X, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(cp.Xty, X.T @ (w * r), rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(cp.Zty, Zd.T @ (w * r), rtol=1e-12, atol=1e-10)
    assert cp.yty == pytest.approx(float((w * r) @ r), rel=1e-12)
    cz = wp.cross_products(w, r, False)
    np.testing.assert_allclose(cz.Zty, Zd.T @ (w * r), rtol=1e-12, atol=1e-10)
    assert cz.ZtX.shape == (280, 0) and cz.XtX.shape == (0, 0)


@pytest.mark.parametrize("form", ["bernoulli", "cbind", "proportion", "poisson"])
def test_conditional_loglik_from_the_deviance_equals_family_aic(form):
    """-2 log p(y | u) as the deviance plus the saturated model's value (the shortcut of
    GLMResponse.minus2loglik) equals R's family$aic at any mu; not taken where R's aic
    rounds non-integer successes."""
    from sparsemixed.families import family_from
    from sparsemixed.glmm.response import GLMResponse

    rng = np.random.default_rng(9)
    n = 500
    if form == "poisson":
        fam, y, w, trials = family_from("poisson"), rng.poisson(2.5, n).astype(float), rng.uniform(0.5, 2, n), False
    else:
        fam = family_from("binomial")
        m = rng.integers(1, 9, n).astype(float) if form != "bernoulli" else np.ones(n)
        y, w, trials = rng.binomial(m.astype(int), 0.4) / m, m, form != "bernoulli"
    resp = GLMResponse(y, w, np.zeros(n), fam, trials)
    assert resp.saturated_offset() is not None
    for _ in range(3):
        mu = rng.uniform(0.05, 0.95, n) * (5 if form == "poisson" else 1)
        full = float(fam.aic(y, resp.trials, mu, w))
        assert resp.minus2loglik(mu, resp.deviance(mu)) == pytest.approx(full, rel=1e-12)
    odd = GLMResponse(np.full(n, 0.25), np.full(n, 3.0), np.zeros(n), family_from("binomial"), True)
    assert odd.saturated_offset() is None               # 0.75 successes: R rounds, the identity fails
    mu = np.full(n, 0.3)
    assert odd.minus2loglik(mu, odd.deviance(mu)) == pytest.approx(float(odd.family.aic(odd.y, odd.trials, mu,
                                                                                          odd.prior_weights)))


def test_deviance_sum_is_compensated_and_independent_of_threads():
    """kernels._deviance sums in fixed blocks with compensation: its value is that of
    math.fsum over the terms to a few ulp, the same serial and threaded."""
    import math

    from sparsemixed.families import family_from
    from sparsemixed.glmm import kernels

    rng = np.random.default_rng(3)
    n = 400_000
    mu = 1 / (1 + np.exp(-rng.normal(0, 3, n)))
    y = (rng.random(n) < mu).astype(float)
    pw = np.ones(n)
    exact = math.fsum(family_from("binomial").dev_resids(y, mu, pw))
    threaded = kernels._deviance(kernels.LOGIT, y, mu, pw)
    serial = kernels._SERIAL[kernels._deviance](kernels.LOGIT, y, mu, pw)
    assert threaded == serial
    assert abs(threaded - exact) <= 8 * np.spacing(exact)


def test_convergence_check_scales_the_profiled_gradient():
    """After a default fit the check has run (small model: within its budget) and the
    scaled gradient is far below lme4's 2e-3; a fit stopped after a few evaluations fails
    it with a ConvergenceWarning."""
    from sparsemixed.errors import ConvergenceWarning

    df = _frame(n=400, seed=5)
    df["h"] = [f"h{v}" for v in np.random.default_rng(7).integers(0, 9, len(df))]
    m = sm.glmer("y ~ x + (1|g) + (1|h)", df, family="binomial")
    d = m.fit().optsummary.diagnostics
    assert d["checked"] and d["hessian_positive_definite"]
    assert np.max(np.abs(d["scaled_gradient"])) < 1e-5
    with pytest.warns(ConvergenceWarning):
        early = m.fit(control=sm.FitControl(maxeval=3, check_convergence=True))
    e = early.optsummary.diagnostics
    assert e["checked"] and (not e["hessian_positive_definite"] or np.max(np.abs(e["scaled_gradient"])) > 2e-3)


def test_file_sources_are_read_into_memory(tmp_path):
    """glmer on a CSV file, a Parquet file and a Parquet directory gives the fit of the same
    rows in memory (only the columns the formula names are read); a missing file is a
    DataError naming it."""
    df = _frame(n=300, seed=21)
    df["unused"] = "zz"
    ref = sm.glmer("k ~ x + offset(log(t)) + (1|g)", df, family="poisson").fit()
    df.to_csv(tmp_path / "d.csv", index=False)
    df.to_parquet(tmp_path / "d.parquet")
    (tmp_path / "parts").mkdir()
    df.iloc[:120].to_parquet(tmp_path / "parts" / "a.parquet")
    df.iloc[120:].to_parquet(tmp_path / "parts" / "b.parquet")
    for src in (tmp_path / "d.csv", str(tmp_path / "d.parquet"), tmp_path / "parts"):
        m = sm.glmer("k ~ x + offset(log(t)) + (1|g)", src, family="poisson")
        assert "unused" not in m.data.columns
        r = m.fit()
        assert r.minus2loglik == pytest.approx(ref.minus2loglik, rel=1e-12)
        np.testing.assert_allclose(r.fixef, ref.fixef, rtol=1e-8)
    with pytest.raises(DataError, match="no such file"):
        sm.glmer("k ~ x + (1|g)", tmp_path / "missing.csv", family="poisson")
