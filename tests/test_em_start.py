"""EM steps before the gradient search (sparsemixed/start.py: em_start; fitting._fit).

The step is checked against a dense EM step written here from the model's definition
(Z and X built from the data, not from the package's design), and the default fit that
takes EM steps against the same fit without them (FitControl(em_start=False)): the same
optimum, on unbalanced crossed designs with correlated slopes, by both CHOLMOD and the
blocked factor.
"""
import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from sparsemixed.errors import SingularFitWarning
from sparsemixed.fitting import FitControl
from sparsemixed.start import em_start

FORMULA = "y ~ x + (1 + x | a) + (1 | b)"


def _data(seed: int, na: int = 40, nb: int = 25) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(na), rng.integers(2, 12, na))            # 2 to 11 rows per a
    n = a.size
    b = rng.choice(nb, n, p=rng.dirichlet(np.full(nb, 1.5)))          # crossed, unbalanced
    x = rng.normal(1.0, 1.5, n)
    Ua = rng.multivariate_normal([0, 0], [[1.0, 0.3], [0.3, 0.4]], na)
    y = 2 + 0.5 * x + Ua[a, 0] + Ua[a, 1] * x + rng.normal(0, 0.7, nb)[b] + rng.normal(0, 1, n)
    return pd.DataFrame({"y": y, "x": x, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]})


def _dense_em_step(d: pd.DataFrame, theta: np.ndarray, reml: bool) -> np.ndarray:
    """One EM step from theta, densely: u-hat, sigma^2 and M^-1 from Henderson's equations
    with Lambda = blockdiag(T_a per level of a, theta_b I), Var(u | y) = sigma^2 M^-1."""
    la, lb = sorted(d.a.unique()), sorted(d.b.unique())
    ia, ib = d.a.map({v: i for i, v in enumerate(la)}).to_numpy(), d.b.map({v: i for i, v in enumerate(lb)}).to_numpy()
    n, na, nb = len(d), len(la), len(lb)
    Z = np.zeros((n, 2 * na + nb))
    Z[np.arange(n), 2 * ia] = 1.0
    Z[np.arange(n), 2 * ia + 1] = d.x
    Z[np.arange(n), 2 * na + ib] = 1.0
    X = np.column_stack([np.ones(n), d.x])
    y = d.y.to_numpy()
    T = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
    Lam = np.zeros((Z.shape[1], Z.shape[1]))
    for j in range(na):
        Lam[2 * j: 2 * j + 2, 2 * j: 2 * j + 2] = T
    Lam[2 * na:, 2 * na:] = theta[3] * np.eye(nb)
    ZL = Z @ Lam
    q, p = ZL.shape[1], X.shape[1]
    A = np.block([[ZL.T @ ZL + np.eye(q), ZL.T @ X], [X.T @ ZL, X.T @ X]])
    sol = np.linalg.solve(A, np.concatenate([ZL.T @ y, X.T @ y]))
    u, beta = sol[:q], sol[q:]
    r2 = float(np.sum((y - X @ beta - ZL @ u) ** 2) + u @ u)
    sig2 = r2 / (n - p if reml else n)
    Minv = np.linalg.inv(ZL.T @ ZL + np.eye(q))
    Sa = sum(np.outer(u[2 * j: 2 * j + 2], u[2 * j: 2 * j + 2]) / sig2 + Minv[2 * j: 2 * j + 2, 2 * j: 2 * j + 2]
             for j in range(na)) / na
    Ta = np.linalg.cholesky(T @ Sa @ T.T)
    sb = (u[2 * na:] @ u[2 * na:] / sig2 + np.trace(Minv[2 * na:, 2 * na:])) / nb
    return np.array([Ta[0, 0], Ta[1, 0], Ta[1, 1], np.sqrt(theta[3] ** 2 * sb)])


@pytest.mark.parametrize("ordering", ["blocked", "amd"])
@pytest.mark.parametrize("reml", [True, False])
def test_em_step_equals_the_dense_em_step(ordering, reml):
    d = _data(3)
    m = sm.lmer(FORMULA, d, REML=reml, ordering=ordering)
    theta = np.array([0.8, 0.2, 0.5, 0.6])
    new, fvals, step = em_start(m.engine, m.relcov, m.terms, theta, reml, max_steps=1)
    np.testing.assert_allclose(new, _dense_em_step(d, theta, reml), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(step, new - theta)
    assert fvals == [pytest.approx(m.objective(theta))]


@pytest.mark.expect_warnings((SingularFitWarning,))
@pytest.mark.parametrize("seed", [1, 2, 5, 8])
@pytest.mark.parametrize("ordering", ["auto", "amd"])
def test_default_fit_with_em_steps_reaches_the_optimum_without_them(seed, ordering):
    """The same criterion (1e-9 relative: both searches stop at L-BFGS-B's ftol_rel 1e-12 and
    pass the convergence check) and estimates, with the EM steps recorded and counted."""
    d = _data(seed, na=60, nb=30)
    m = sm.lmer(FORMULA, d, ordering=ordering)
    with_em = m.fit()
    without = m.fit(control=FitControl(em_start=False))
    assert 1 <= len(with_em.optsummary.em_start) <= 3 and without.optsummary.em_start == []
    assert with_em.optsummary.em_start[0] == pytest.approx(m.objective(m.theta0 * _scaled_start(m)))
    assert with_em.objective == pytest.approx(without.objective, rel=1e-9)
    np.testing.assert_allclose(with_em.theta, without.theta, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(with_em.fixef, without.fixef, rtol=1e-4, atol=1e-6)
    assert with_em.converged and without.converged


def _scaled_start(m):
    from sparsemixed.start import theta_scale

    return theta_scale(m.terms, m.crossprod)


def test_no_em_steps_for_scalar_terms_or_the_small_engine():
    d = _data(4)
    assert sm.lmer("y ~ x + (1 | a) + (1 | b)", d, ordering="amd").fit().optsummary.em_start == []
    small = sm.lmer(FORMULA, d.iloc[:60])          # q + p + 1 <= 120: the dense small engine
    assert small.fit().optsummary.em_start == []
