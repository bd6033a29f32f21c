"""The small-model engine (engine/small.py: one dense factor of the augmented system) against
the sparse engines on the same models: the criterion, its gradient, the state (beta, u,
log-determinants) and fits; the gradient against central differences; DenseCholesky
against numpy (its criterion's bits from several threads: tests/test_threads.py)."""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsemixed as sm
from sparsemixed.engine.small import SmallEngine
from sparsemixed.linalg.dense_cholesky import DenseCholesky

FORMS = ["y ~ x + (1 | g) + (1 | h)",
         "y ~ x + (1 + x | g)",
         "y ~ x + (1 + x | g) + (1 | h)",
         "y ~ x + (1 + x || g) + (1 | h)",
         "y ~ x + (1 | g/h)",
         "y ~ x + f + (0 + f | g)",
         "y ~ 0 + x + (1 | g)",
         "y ~ 1 + (1 + x + z | g)"]


def _data(seed, n, ng, nh):
    rng = np.random.default_rng(seed)
    g = rng.choice(ng, n, p=rng.dirichlet(np.ones(ng)))            # unbalanced
    h = rng.integers(0, nh, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    f = rng.choice(["u", "v", "w"], n)
    y = (1 + x + rng.normal(0, 0.7, ng)[g] * (1 + 0.5 * x) + rng.normal(0, 0.4, nh)[h]
         + 0.3 * z + rng.normal(size=n))
    return pd.DataFrame(dict(y=y, x=x, z=z, f=f, g=[f"g{v}" for v in g], h=[f"h{v}" for v in h]))


def _theta(model, rng):
    th = rng.uniform(0.05, 2.0, model.theta0.size)
    free = ~np.isfinite(model.lower)
    th[free] = rng.normal(0, 0.5, free.sum())
    return th


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), form=st.sampled_from(FORMS), reml=st.booleans(),
       n=st.integers(40, 400), ng=st.integers(3, 12), nh=st.integers(2, 8), weighted=st.booleans())
@pytest.mark.expect_warnings((sm.IdentifiabilityWarning,))
def test_dense_engine_equals_the_sparse_engines(seed, form, reml, n, ng, nh, weighted):
    df = _data(seed, n, ng, nh)
    w = np.random.default_rng(seed + 1).uniform(0.5, 2.0, n) if weighted else None
    dense = sm.lmer(form, df, REML=reml, weights=w)
    assert isinstance(dense.engine, SmallEngine) and dense.factor.ordering == "dense"
    theta = _theta(dense, np.random.default_rng(seed + 2))
    for ordering in ("natural", "blocked"):
        try:
            other = sm.lmer(form, df, REML=reml, weights=w, ordering=ordering)
        except sm.SparseMixedError:               # blocked needs a block-diagonal first term
            continue
        assert not isinstance(other.engine, SmallEngine)
        f1, g1 = dense.objective_and_gradient(theta)
        f2, g2 = other.objective_and_gradient(theta)
        assert f1 == pytest.approx(f2, rel=1e-11, abs=1e-9)
        np.testing.assert_allclose(g1, g2, rtol=1e-7, atol=1e-7 * max(1.0, np.abs(g2).max()))
        s1, s2 = dense.pls(theta), other.pls(theta)
        for name in ("ldL2", "ldRX2", "r2"):
            assert getattr(s1, name) == pytest.approx(getattr(s2, name), rel=1e-10, abs=1e-10)
        np.testing.assert_allclose(s1.beta, s2.beta, rtol=1e-9, atol=1e-9)
        u1, b1 = dense.random_effects(theta)
        u2, b2 = other.random_effects(theta)
        np.testing.assert_allclose(b1, b2, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("reml", [True, False])
def test_dense_gradient_against_central_differences(form, reml):
    df = _data(5, 250, 9, 5)
    m = sm.lmer(form, df, REML=reml)
    assert isinstance(m.engine, SmallEngine)
    theta = _theta(m, np.random.default_rng(3))
    g = m.gradient(theta)
    h = 1e-5
    fd = np.array([(m.objective(theta + h * e) - m.objective(theta - h * e)) / (2 * h)
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-5, atol=1e-5 * max(1.0, np.abs(fd).max()))


@pytest.mark.expect_warnings((sm.SingularFitWarning,))
@pytest.mark.parametrize("form", FORMS[:5])
def test_dense_fit_matches_the_sparse_fit(form):
    df = _data(11, 300, 10, 6)
    a = sm.lmer(form, df).fit()
    b = sm.lmer(form, df, ordering="natural").fit(optimizer="lbfgsb")     # the same optimizer
    assert a.model.factor.ordering == "dense"
    assert a.objective == pytest.approx(b.objective, rel=1e-9, abs=1e-7)
    np.testing.assert_allclose(a.theta, b.theta, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(a.vcov, b.vcov, rtol=1e-3, atol=1e-8)
    from sparsemixed.inference.condvar import relative_condvar_diag

    theta = b.theta
    np.testing.assert_allclose(relative_condvar_diag(a.model, theta), relative_condvar_diag(b.model, theta),
                               rtol=1e-9, atol=1e-12)


def test_dense_cholesky_serves_the_factor_protocol():
    rng = np.random.default_rng(0)
    q = 30
    A = rng.normal(size=(q, q))
    M = A @ A.T + q * np.eye(q)
    M[np.abs(M) < 2.0] = 0.0                      # a sparse pattern
    M = (M + M.T) / 2 + q * np.eye(q)
    import scipy.sparse as sp

    low = sp.csc_matrix(np.tril(M))
    f = DenseCholesky(low.indptr, low.indices, q)
    f.factorize_values(low.data)
    L = np.linalg.cholesky(M)
    assert f.logdet() == pytest.approx(2 * np.log(np.diag(L)).sum(), rel=1e-13)
    B = rng.normal(size=(q, 3))
    np.testing.assert_allclose(f.solve_L(B), np.linalg.solve(L, B), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(f.solve_Lt(B[:, 0]), np.linalg.solve(L.T, B[:, 0]), rtol=1e-11, atol=1e-12)
    Minv = np.linalg.inv(M)
    cols = np.repeat(np.arange(q), np.diff(low.indptr))
    np.testing.assert_allclose(f.selected_inverse(low.indptr, low.indices), Minv[low.indices, cols],
                               rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(f.inverse_diagonal(), np.diag(Minv), rtol=1e-11)
    g = f.clone()
    assert g.L is None and f.L is not None
    g.factorize(low)
    np.testing.assert_array_equal(g.L, f.L)
    np.testing.assert_array_equal(f.perm(), np.arange(q))


def test_ordering_dense_refuses_a_sparse_X():
    df = _data(1, 200, 5, 4)
    with pytest.raises(sm.SparseMixedError, match="dense X"):
        sm.lmer("y ~ x + (1 | g)", df, ordering="dense", sparse_X=True)


def test_larger_models_keep_the_sparse_engines():
    df = _data(4, 2000, 130, 6)                    # q = 136 > 120
    m = sm.lmer("y ~ x + (1 | g) + (1 | h)", df)
    assert not isinstance(m.engine, SmallEngine)
    forced = sm.lmer("y ~ x + (1 | g) + (1 | h)", df, ordering="dense")
    assert isinstance(forced.engine, SmallEngine)
    theta = np.array([0.7, 0.3])
    assert forced.objective(theta) == pytest.approx(m.objective(theta), rel=1e-11)
