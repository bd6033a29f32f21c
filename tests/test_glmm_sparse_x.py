"""glmer with a sparse fixed-effects matrix X (sparse_X=True: glmm/weighted_sparse.py).

Checked against the dense-X path on the same data:

* the weighted cross-products of the compiled pass against dense numpy products, on random
  designs (unbalanced groups, shuffled rows, random weights): exact up to summation order;
* model.objective at a fixed (theta, beta) and at theta (beta inside PIRLS): the same
  function on both paths, equal to 1e-10 relative (independent of any optimizer);
* nAGQ = 0 fits: both paths run the same BOBYQA over theta on the same function, so the
  estimates agree to the last digits the optimizer sees (1e-7);
* nAGQ = 1 fits: the dense path minimises over theta with the analytic gradient (L-BFGS,
  beta profiled), the sparse path by glmer's derivative-free two stages (BOBYQA over theta
  and beta); the dense optimum is the reference: the sparse fit's deviance is not below it
  (beyond rounding) and at most RIDGE above it (BOBYQA's stop in ~60 dimensions on a flat
  ridge), its estimates within a small share of their standard errors; and the standard
  errors, computed at the same point on both paths, agree to 1e-8.
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsemixed as sm
from sparsemixed.errors import SparseMixedError
from sparsemixed.glmm.result import GlmerResult
from sparsemixed.glmm.weighted import WeightedProducts, structural_gram
from sparsemixed.glmm.weighted_sparse import SparseWeightedProducts

RIDGE = 2e-3          # the sparse (BOBYQA) nAGQ = 1 deviance above the dense (gradient) optimum, at most


# -- the compiled pass against dense numpy ----------------------------------------------------
def _design(seed, n, nf, ng, slope):
    rng = np.random.default_rng(seed)
    # unbalanced levels (geometric sizes), rows in random order
    g1 = rng.choice(ng, size=n, p=np.arange(1, ng + 1)[::-1] / (ng * (ng + 1) / 2))
    g2 = rng.integers(0, max(2, ng // 2), n)
    f = rng.choice(nf, size=n, p=np.arange(1, nf + 1) / (nf * (nf + 1) / 2))
    f[:nf] = np.arange(nf)                        # every level of the fixed factor present
    x = rng.normal(size=n)
    x[rng.random(n) < 0.2] = 0.0                  # stored zeros in X are dropped
    perm = rng.permutation(n)
    g1, g2, f, x = g1[perm], g2[perm], f[perm], x[perm]
    cols = [np.ones(n), x] + [(f == k).astype(float) for k in range(1, nf)]
    X = np.column_stack(cols)
    z = [sp.csr_matrix((np.ones(n), (np.arange(n), g1)), shape=(n, ng))]
    if slope:
        z.append(sp.csr_matrix((x, (np.arange(n), g1)), shape=(n, ng)))
    z.append(sp.csr_matrix((np.ones(n), (np.arange(n), g2)), shape=(n, max(2, ng // 2))))
    Z = sp.hstack(z, format="csr")
    Z.sort_indices()
    return Z, X, rng


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(12, 300), nf=st.integers(2, 12), ng=st.integers(1, 9),
       slope=st.booleans())
def test_cross_products_against_dense(seed, n, nf, ng, slope):
    Z, X, rng = _design(seed, n, nf, ng, slope)
    A = structural_gram(Z)
    wp = SparseWeightedProducts.build(Z, sp.csr_matrix(X), A)
    w = rng.uniform(0.01, 3.0, n)
    r = rng.normal(size=n)
    cp = wp.cross_products(w, r)
    Zd = Z.toarray()
    WZ, WX = Zd * w[:, None], X * w[:, None]
    scale = 1e-12 * (1 + np.abs(w).sum() * (1 + np.abs(X).max() ** 2 + np.abs(Zd).max() ** 2 + r @ r))
    np.testing.assert_allclose(cp.ZtZ.toarray(), Zd.T @ WZ, rtol=0, atol=scale)
    np.testing.assert_allclose(cp.ZtX.toarray(), WZ.T @ X, rtol=0, atol=scale)
    np.testing.assert_allclose(cp.XtX.toarray(), WX.T @ X, rtol=0, atol=scale)
    np.testing.assert_allclose(cp.Zty, WZ.T @ r, rtol=0, atol=scale)
    np.testing.assert_allclose(cp.Xty, WX.T @ r, rtol=0, atol=scale)
    assert abs(cp.yty - (w * r) @ r) <= scale
    assert cp.n == n
    # the patterns are the analysed ones, whatever the weights (structural: nothing dropped)
    shared = lambda a, b: np.shares_memory(a, b) and np.array_equal(a, b)
    assert shared(cp.ZtZ.indices, A.indices) and shared(cp.ZtX.indices, wp.ZX.indices)
    assert shared(cp.XtX.indices, wp.XX.indices)
    # without X: Z'WZ, Z'Wr, r'Wr as the dense-X pass gives them
    cz = wp.cross_products(w, r, with_X=False)
    cd = WeightedProducts(Z, X, A).cross_products(w, r, with_X=False)
    np.testing.assert_allclose(cz.ZtZ.data, cd.ZtZ.data, rtol=1e-13, atol=scale)
    np.testing.assert_allclose(cz.Zty, cd.Zty, rtol=1e-13, atol=scale)
    assert cz.ZtX.shape == (Z.shape[1], 0) and cz.XtX.shape == (0, 0) and cz.Xty.size == 0


def test_structural_pattern_keeps_cancelling_entries():
    """Two rows whose products cancel in Z'X and X'X: the entry stays in the pattern (scipy's
    product would drop it) and gets its value under other weights."""
    Z = sp.csr_matrix(np.array([[1.0], [1.0]]))
    X = sp.csr_matrix(np.array([[1.0, 1.0], [1.0, -1.0]]))
    wp = SparseWeightedProducts.build(Z, X, structural_gram(Z))
    ones = wp.cross_products(np.ones(2), np.zeros(2))
    assert ones.ZtX.nnz == 2 and ones.XtX.nnz == 4              # (0, 1) entries stored, value 0
    assert ones.ZtX[0, 1] == 0.0 and ones.XtX[0, 1] == 0.0
    other = wp.cross_products(np.array([2.0, 1.0]), np.zeros(2))
    assert other.ZtX[0, 1] == 1.0 and other.XtX[0, 1] == 1.0


# -- models ------------------------------------------------------------------------------------
def _binary(n=3000, nf=60, seed=1):
    rng = np.random.default_rng(seed)
    pf = rng.dirichlet(np.full(nf, 20.0))                 # unbalanced fixed factor (no level separated)
    f = rng.choice(nf, size=n, p=pf)
    f[:nf] = np.arange(nf)
    g = rng.integers(0, 40, n)
    h = rng.choice(25, size=n, p=rng.dirichlet(np.full(25, 1.0)))
    x = rng.normal(size=n)
    eta = -0.3 + 0.5 * x + rng.normal(0, 0.4, nf)[f] + rng.normal(0, 0.8, 40)[g] + rng.normal(0, 0.5, 25)[h]
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame(dict(y=y, x=x, f=pd.Categorical([f"F{i:03d}" for i in f]), g=g.astype(str),
                             h=h.astype(str)))


def _counts(n=1500, seed=2):
    rng = np.random.default_rng(seed)
    f = rng.integers(0, 8, n)
    g = rng.integers(0, 30, n)
    h = rng.integers(0, 12, n)
    x = rng.normal(size=n)
    t = rng.uniform(0.5, 3.0, n)
    eta = np.log(t) + 0.2 + 0.3 * x + 0.2 * (f - 4) / 4 + rng.normal(0, 0.5, 30)[g] + rng.normal(0, 0.3, 12)[h]
    return pd.DataFrame(dict(y=rng.poisson(np.exp(eta)), x=x, t=t, f=f.astype(str), g=g.astype(str),
                             h=h.astype(str)))


BIN = "y ~ x + f + (1 | g) + (1 | h)"
POIS = "y ~ x + f + offset(log(t)) + (1 | g) + (1 | h)"


@pytest.fixture(scope="module")
def binary():
    return _binary()


@pytest.fixture(scope="module")
def binary_models(binary):
    return {sx: sm.glmer(BIN, binary, family="binomial", sparse_X=sx) for sx in (False, True)}


def test_paths_chosen(binary, binary_models):
    dense, sparse = binary_models[False], binary_models[True]
    assert not dense.sparse_X and isinstance(dense.X, np.ndarray)
    assert sparse.sparse_X and sp.isspmatrix_csr(sparse.X) and sparse.engine.sparse_X
    assert sparse.p == dense.p == 61 and sparse.fixef_names == dense.fixef_names
    np.testing.assert_array_equal(sparse.X.toarray(), dense.X)
    # "auto" follows lmer's rule: 60 levels stay dense
    assert not sm.glmer(BIN, binary, family="binomial").sparse_X
    with pytest.raises(SparseMixedError, match="sparse_X must be"):
        sm.glmer(BIN, binary, family="binomial", sparse_X="yes")


def test_objective_identical(binary_models):
    dense, sparse = binary_models[False], binary_models[True]
    rng = np.random.default_rng(5)
    beta0 = dense.start_beta()
    np.testing.assert_allclose(sparse.start_beta(), beta0, rtol=0, atol=1e-9)
    for theta in (dense.theta0, np.array([0.3, 1.2]), np.array([1.1, 0.0])):
        beta = beta0 + rng.normal(0, 0.05, beta0.size)
        x = np.concatenate([theta, beta])
        a, b = dense.objective(x), sparse.objective(x)                    # u at fixed beta (nAGQ = 1)
        assert abs(a - b) <= 1e-10 * abs(a), (theta, a, b)
        a, b = dense.objective(theta), sparse.objective(theta)            # beta inside PIRLS (nAGQ = 0)
        assert abs(a - b) <= 1e-10 * abs(a), (theta, a, b)
        ma, mb = dense.mode(theta), sparse.mode(theta)
        np.testing.assert_allclose(mb.beta, ma.beta, rtol=0, atol=1e-7)
        np.testing.assert_allclose(mb.u, ma.u, rtol=0, atol=1e-7)


def test_nagq0_fits_agree():
    """nAGQ = 0: the same BOBYQA over theta on the same function on both paths."""
    df = _binary(n=3000, nf=150, seed=3)
    fits = {sx: sm.glmer(BIN, df, family="binomial", nAGQ=0, sparse_X=sx).fit() for sx in (False, True)}
    a, b = fits[False], fits[True]
    assert abs(a.minus2loglik - b.minus2loglik) <= 1e-10 * abs(a.minus2loglik)
    np.testing.assert_allclose(b.theta, a.theta, rtol=0, atol=1e-7)
    np.testing.assert_allclose(b.beta, a.beta, rtol=0, atol=1e-7)
    # nAGQ = 0: vcov is (R_X'R_X)^-1 on both paths
    np.testing.assert_allclose(b.fixef_se.to_numpy(), a.fixef_se.to_numpy(), rtol=1e-7)
    np.testing.assert_allclose(b.vcov().to_numpy(), a.vcov().to_numpy(), rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(b.condsd(), a.condsd(), rtol=1e-7)
    assert "Fixed effects:" in b.summary()
    # update() refits on the same path; the profile refuses the sparse path by name
    assert b.update("~ . - x").model.sparse_X and not a.update("~ . - x").model.sparse_X
    with pytest.raises(SparseMixedError, match="sparse_X=False"):
        b.profile()


def test_laplace_fit_against_dense(binary_models):
    """nAGQ = 1: the sparse path's BOBYQA against the dense path's gradient optimum."""
    dense, sparse = binary_models[False], binary_models[True]
    a, b = dense.fit(), sparse.fit()
    assert b.optsummary.method == "bobyqa" and a.optsummary.method == "lbfgsb"
    # the same criterion: the dense model at the sparse optimum gives the sparse fit's value
    x_b = np.concatenate([b.theta, b.beta])
    assert abs(dense.objective(x_b) - b.minus2loglik) <= 1e-10 * b.minus2loglik
    assert a.minus2loglik - 1e-6 <= b.minus2loglik <= a.minus2loglik + RIDGE
    se = a.vcov(use_hessian=False).to_numpy().diagonal() ** 0.5
    assert np.all(np.abs(b.beta - a.beta) <= 0.05 * se), np.max(np.abs(b.beta - a.beta) / se)
    np.testing.assert_allclose(b.theta, a.theta, rtol=0, atol=0.01)
    # standard errors: (R_X'R_X)^-1 by default on the sparse path; the dense path's at the
    # same point (the sparse fit's mode) agrees to rounding
    at_b = GlmerResult(dense, dense.mode(b.theta, b.beta, u0=b.u), b.optsummary, 1)
    np.testing.assert_allclose(b.fixef_se.to_numpy(), at_b.vcov(use_hessian=False).to_numpy().diagonal() ** 0.5,
                               rtol=1e-8)
    np.testing.assert_allclose(b.vcov().to_numpy(), at_b.vcov(use_hessian=False).to_numpy(), rtol=1e-7, atol=1e-12)
    np.testing.assert_allclose(b.condsd(), at_b.condsd(), rtol=1e-9)
    # ... and near the dense fit's own (R_X) standard errors
    np.testing.assert_allclose(b.fixef_se.to_numpy(), se, rtol=5e-3)
    text = b.summary()
    assert "Correlation matrix not shown" in text and b.model.fixef_names[-1] in text


def test_poisson_offset():
    df = _counts()
    fits = {sx: sm.glmer(POIS, df, family="poisson", sparse_X=sx).fit() for sx in (False, True)}
    a, b = fits[False], fits[True]
    assert fits[True].model.sparse_X and not fits[False].model.sparse_X
    x = np.concatenate([a.theta, a.beta])
    assert abs(a.model.objective(x) - b.model.objective(x)) <= 1e-10 * a.minus2loglik
    assert a.minus2loglik - 1e-6 <= b.minus2loglik <= a.minus2loglik + 1e-5
    se = a.fixef_se.to_numpy()
    np.testing.assert_allclose(b.beta, a.beta, rtol=0, atol=2e-3 * se.max())
    np.testing.assert_allclose(b.theta, a.theta, rtol=0, atol=2e-3)
    # the Hessian vcov (glmer's default on the dense path) on request: deviance differences
    # (sparse) against differences of the analytic gradient (dense), ~1e-4 apart
    np.testing.assert_allclose(b.vcov(use_hessian=True).to_numpy().diagonal() ** 0.5, se, rtol=5e-3)
    np.testing.assert_allclose(b.fitted().to_numpy(), a.fitted().to_numpy(), rtol=1e-3)


def test_dask_refuses_sparse_true():
    dd = pytest.importorskip("dask.dataframe")
    ddf = dd.from_pandas(_counts(n=200), npartitions=2)
    with pytest.raises(SparseMixedError, match="sparse_X=True"):
        sm.glmer(POIS, ddf, family="poisson", sparse_X=True)


def test_many_levels_auto():
    """20k rows and a 2,000-level fixed factor: "auto" keeps X sparse (the dense X would be
    320 MB); an nAGQ = 0 fit in a few seconds."""
    rng = np.random.default_rng(7)
    n, nf = 20_000, 2_000
    f = rng.integers(0, nf, n)
    f[:nf] = np.arange(nf)
    g = rng.integers(0, 100, n)
    eta = 0.3 * rng.normal(size=nf)[f] + rng.normal(0, 0.7, 100)[g]
    df = pd.DataFrame(dict(y=rng.binomial(1, 1 / (1 + np.exp(-eta))), f=f.astype(str), g=g.astype(str)))
    m = sm.glmer("y ~ f + (1 | g)", df, family="binomial", nAGQ=0)
    assert m.sparse_X and m.p == nf and sp.issparse(m.X)
    r = m.fit()
    assert r.converged and np.isfinite(r.minus2loglik) and r.theta[0] > 0.3
    se = r.fixef_se
    assert se.size == nf and np.all(np.isfinite(se)) and np.all(se > 0)


def test_auto_keeps_a_dense_x_for_laplace_while_it_fits_in_memory():
    """sparse_X="auto": lmer's rule at nAGQ = 0; at nAGQ >= 1 also only beyond
    glmm.model.DENSE_X_BYTES (the dense path's gradient search is the faster one while X
    fits), which a patched threshold shows."""
    import sparsemixed.glmm.model as gm

    rng = np.random.default_rng(9)
    n, nf = 3_000, 300
    f = np.concatenate([np.arange(nf), rng.integers(0, nf, n - nf)])
    g = rng.integers(0, 40, n)
    eta = 0.3 * rng.normal(size=nf)[f] + rng.normal(0, 0.7, 40)[g]
    df = pd.DataFrame(dict(y=rng.binomial(1, 1 / (1 + np.exp(-eta))), f=f.astype(str), g=g.astype(str)))
    assert sm.glmer("y ~ f + (1 | g)", df, nAGQ=0).sparse_X
    assert not sm.glmer("y ~ f + (1 | g)", df, nAGQ=1).sparse_X
    old = gm.DENSE_X_BYTES
    try:
        gm.DENSE_X_BYTES = 8 * n * (nf - 1)
        assert sm.glmer("y ~ f + (1 | g)", df, nAGQ=1).sparse_X
    finally:
        gm.DENSE_X_BYTES = old


def test_simplicial_factor_of_an_indefinite_matrix_is_refused_at_factorization():
    """CHOLMOD's simplicial factor is LDL' and accepts a pivot <= 0; only the first solve
    (converting to LL') raised, as a raw CholmodNotPositiveDefiniteError."""
    from sparsemixed.errors import NumericalError
    from sparsemixed.linalg.cholesky import SparseCholesky

    M = sp.csc_matrix(np.array([[2.0, 1.0, 0.0], [1.0, 0.4, 0.3], [0.0, 0.3, 1.0]]))
    f = SparseCholesky(M, "amd", mode="simplicial")
    with pytest.raises(NumericalError, match="not positive"):
        f.factorize(M)
    f.factorize(sp.csc_matrix(np.eye(3) * 2.0))               # a positive definite one still factors
    np.testing.assert_allclose(f.logdet(), 3 * np.log(2.0))


def test_separated_fixed_factor_gets_the_collinearity_error_on_the_sparse_path():
    """A 300-level fixed factor on 400 binary rows (most levels all 0 or all 1): the weights
    of those rows go to 0 and Maug becomes singular; the sparse path says so as the dense
    path does (it leaked CHOLMOD's error from a solve)."""
    from sparsemixed.errors import NumericalError

    rng = np.random.default_rng(0)
    n = 400
    df = pd.DataFrame(dict(y=rng.integers(0, 2, n), x=rng.normal(size=n), f=rng.integers(0, 300, n).astype(str),
                           g=rng.integers(0, 20, n).astype(str)))
    for sx in (True, False):
        with pytest.raises(NumericalError, match="collinear given the random effects"):
            sm.glmer("y ~ x + f + (1|g)", df, family="binomial", nAGQ=0, sparse_X=sx).fit()
