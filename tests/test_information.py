"""The average-information Hessian (sparsemixed/information.py) and the "scoring" optimizer
(optimize.scoring) that steps with it.

The AI matrix is checked against its definition computed densely here (V, P and the
working variates f_i = V_i P y built from Z, X, y and Lambda; the profiled Hessian as the
Schur complement of sigma^2), on unbalanced crossed designs, with weights, scalar and
correlated vector-valued terms, REML and ML, through every engine.  The optimizer is
checked against BOBYQA run to a tight tolerance and against the dense criterion, and on a
singular fit (the optimum on theta_k = 0), where it hands over to L-BFGS-B.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, HealthCheck
from hypothesis import strategies as st

import sparsemixed as sm
from sparsemixed import optimize
from sparsemixed.errors import SingularFitWarning, SparseMixedError
from test_properties import dense_design, dense_lambda, dense_profiled


def _data(seed: int, na: int = 30, nb: int = 12, weights: bool = False) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a = np.repeat(np.arange(na), rng.integers(1, 9, na))                # 1 to 8 rows per a
    n = a.size
    b = rng.choice(nb, n, p=rng.dirichlet(np.full(nb, 1.2)))            # crossed, unbalanced
    x = rng.normal(0.5, 1.3, n)
    y = (1 + 0.4 * x + rng.normal(0, 0.8, na)[a] + rng.normal(0, 0.5, na)[a] * x
         + rng.normal(0, 0.6, nb)[b] + rng.normal(0, 1, n))
    d = pd.DataFrame({"y": y, "x": x, "a": [f"a{i}" for i in a], "b": [f"b{i}" for i in b]})
    if weights:
        d["w"] = rng.uniform(0.3, 3.0, n)
    return d


def dense_ai_hessian(model, df, X, theta, reml: bool, w=None) -> np.ndarray:
    """2 (AI_tt - AI_ts AI_ss^-1 AI_st) from the definitions, with dense n x n matrices."""
    Z, blocks = dense_design(model, df)
    y = df["y"].to_numpy(float)
    Lam = dense_lambda(theta, blocks)
    prof = dense_profiled(y, X, Z, Lam, reml, w)
    s2 = prof["sigma2"]
    n = len(y)
    Winv = np.diag(1.0 / w) if w is not None else np.eye(n)
    H = Winv + Z @ Lam @ Lam.T @ Z.T
    V = s2 * H
    Vi = np.linalg.inv(V)
    P = Vi - Vi @ X @ np.linalg.solve(X.T @ Vi @ X, X.T @ Vi)
    Py = P @ y
    F = []
    for i in range(theta.size):
        e = np.zeros(theta.size)
        e[i] = 1.0
        D = dense_lambda(e, blocks)                          # dLambda / dtheta_i (Lambda is linear)
        Vt = s2 * Z @ (D @ Lam.T + Lam @ D.T) @ Z.T
        F.append(Vt @ Py)
    F.append(H @ Py)                                         # dV / dsigma^2 = H
    F = np.column_stack(F)
    AI = 0.5 * F.T @ P @ F
    k = theta.size
    return 2.0 * (AI[:k, :k] - np.outer(AI[:k, k], AI[k, :k]) / AI[k, k])


def _fixed_design(df):
    x = df["x"].to_numpy(float)
    return np.column_stack([np.ones(len(df)), x])


def _check(formula, df, theta, reml, ordering, w=None):
    model = sm.LinearMixedModel(formula, df, REML=reml, ordering=ordering,
                                **({"weights": "w"} if w is not None else {}))
    engine = model.engine
    state = engine.solve(np.asarray(theta, float), reml)
    got = engine.hessian(state, reml)
    want = dense_ai_hessian(model, df, _fixed_design(df), np.asarray(theta, float), reml, w)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9 * np.abs(want).max())
    assert np.allclose(got, got.T)
    assert np.linalg.eigvalsh(got).min() >= -1e-8 * np.abs(got).max()      # positive semidefinite
    return model


@pytest.mark.parametrize("ordering", ["auto", "natural", "blocked", "dense"])
@pytest.mark.parametrize("reml", [True, False])
def test_ai_hessian_of_crossed_intercepts_with_weights_is_its_dense_definition(ordering, reml):
    d = _data(3, weights=True)
    _check("y ~ x + (1 | a) + (1 | b)", d, [0.7, 0.45], reml, ordering, w=d["w"].to_numpy())


@pytest.mark.parametrize("ordering", ["natural", "blocked", "dense"])
@pytest.mark.parametrize("reml", [True, False])
def test_ai_hessian_of_correlated_slopes_is_its_dense_definition(ordering, reml):
    d = _data(5)
    _check("y ~ x + (1 + x | a) + (1 | b)", d, [0.8, -0.2, 0.35, 0.5], reml, ordering)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), t1=st.floats(0.02, 3.0), t2=st.floats(0.02, 3.0),
       c=st.floats(-1.5, 1.5), ordering=st.sampled_from(["natural", "blocked", "dense"]), reml=st.booleans())
def test_ai_hessian_matches_its_definition_anywhere(seed, t1, t2, c, ordering, reml):
    d = _data(seed, na=int(8 + seed % 17), nb=int(3 + seed % 7))
    if d["a"].nunique() < 3 or d["b"].nunique() < 2:
        return
    _check("y ~ x + (1 + x | a) + (1 | b)", d, [t1, c, t2, 0.6], reml, ordering)


def _default_scoring_fit(model):
    """The default fit, which must be scoring's, with no ConvergenceWarning."""
    assert model.choose_optimizer() == "scoring"
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.ConvergenceWarning)
        warnings.simplefilter("ignore", SingularFitWarning)
        return model.fit()


def _tight_bobyqa(model, reml):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return model.fit(REML=reml, optimizer="bobyqa", ftol_abs=1e-12, xtol_abs=1e-10,
                         control=sm.FitControl(polish=False))


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
@pytest.mark.parametrize("reml", [True, False])
def test_scoring_reaches_the_optimum_of_a_tight_bobyqa(seed, reml):
    """The default for crossed intercepts on a sparse factor is scoring from the moment start;
    it stops within 1e-7 of BOBYQA run to ftol 1e-12, or below it."""
    d = _data(seed, na=400, nb=60)
    model = sm.LinearMixedModel("y ~ x + (1 | a) + (1 | b)", d, REML=reml, ordering="blocked")
    r = _default_scoring_fit(model)
    ref = _tight_bobyqa(model, reml)
    assert r.optsummary.method == "scoring"
    assert r.objective <= ref.objective + 1e-7
    np.testing.assert_allclose(r.theta, ref.theta, rtol=1e-3, atol=1e-4)
    if not r.optsummary.handoff:
        assert r.optsummary.geval <= 10 and r.optsummary.returnvalue.startswith("CONVERGED")


def test_scoring_hands_a_singular_fit_to_lbfgsb_and_reaches_the_boundary_optimum():
    """b has no variance in the data: the optimum is theta_b = 0, where the AI Hessian (zero
    in that row as theta_b -> 0) is blind; a step towards the bound goes to L-BFGS-B with its
    boundary checks.  The dense criterion on a grid along theta_b confirms the boundary."""
    rng = np.random.default_rng(11)
    d = _data(11, na=300, nb=40)
    codes = d["a"].str[1:].astype(int).to_numpy()
    d["y"] = 1 + 0.4 * d["x"] + rng.normal(0, 0.9, 300)[codes] + rng.normal(0, 1, len(d))
    model = sm.LinearMixedModel("y ~ x + (1 | a) + (1 | b)", d, REML=True, ordering="blocked")
    with pytest.warns(SingularFitWarning):
        r = model.fit()
    assert r.optsummary.method == "scoring"
    ref = _tight_bobyqa(model, True)
    assert r.objective <= ref.objective + 1e-7
    Z, blocks = dense_design(model, d)
    X = _fixed_design(d)
    y = d["y"].to_numpy(float)
    crit = lambda tb: dense_profiled(y, X, Z, dense_lambda(np.array([r.theta[0], tb]), blocks), True)["objective"]
    assert r.theta[1] == 0.0 or crit(r.theta[1]) <= min(crit(t) for t in np.linspace(0, 0.3, 31)) + 1e-7
    assert crit(0.0) <= min(crit(t) for t in np.linspace(0.01, 0.3, 30))


def test_scoring_needs_an_engine_that_gives_the_information():
    d = _data(2)
    model = sm.LinearMixedModel("y ~ x + (1 | a) + (1 | b)", d, REML=True, sparse_X=True)
    with pytest.raises(SparseMixedError, match="scoring.*lbfgsb"):
        model.fit(optimizer="scoring")


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("ordering", ["blocked", "natural"])
def test_scoring_after_em_reaches_the_optimum_of_correlated_slopes(seed, ordering):
    """Correlated slopes crossed with intercepts: EM steps from lme4's start, then scoring
    (the default on a sparse factor); the optimum of BOBYQA run to ftol 1e-12, or lower."""
    d = _data(seed, na=300, nb=40)
    model = sm.LinearMixedModel("y ~ x + (1 + x | a) + (1 | b)", d, REML=True, ordering=ordering)
    r = _default_scoring_fit(model)
    ref = _tight_bobyqa(model, True)
    assert r.optsummary.method == "scoring" and r.optsummary.em_start
    assert r.objective <= ref.objective + 1e-7
    np.testing.assert_allclose(r.theta, ref.theta, rtol=2e-3, atol=1e-3)


@pytest.mark.parametrize("ordering", ["natural", "dense"])
def test_ai_hessian_without_fixed_effects_is_its_dense_definition(ordering):
    """p = 0: P = V^-1, and the criterion has no log|R_X|."""
    d = _data(8)
    model = sm.LinearMixedModel("y ~ 0 + (1 + x | a) + (1 | b)", d, REML=False, ordering=ordering)
    theta = np.array([0.9, 0.3, 0.4, 0.7])
    got = model.engine.hessian(model.engine.solve(theta, False), False)
    want = dense_ai_hessian(model, d, np.zeros((len(d), 0)), theta, False)
    np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-9 * np.abs(want).max())


# -- optimize.scoring on functions whose optimum is known ----------------------------------------
def _quad(A, c):
    """f = (x - c)'A(x - c)/2 with its gradient and exact Hessian, counting calls."""
    calls = {"fgh": 0, "f": 0}

    def fgh(x):
        calls["fgh"] += 1
        r = x - c
        return float(r @ A @ r / 2), A @ r, A.copy()

    def f_only(x):
        calls["f"] += 1
        r = x - c
        return float(r @ A @ r / 2)
    return fgh, f_only, calls


def test_scoring_takes_one_newton_step_on_a_quadratic():
    A = np.array([[4.0, 1.0], [1.0, 2.0]])
    fgh, f_only, calls = _quad(A, np.array([0.7, -0.3]))
    start, msg = optimize.scoring(fgh, f_only, np.array([2.0, 1.0]), np.array([0.0, -np.inf]))
    assert start is None and msg.startswith("CONVERGED")
    assert calls["fgh"] <= 2


def test_scoring_holds_a_scalar_diagonal_on_its_bound_and_checks_it():
    """The minimum of the quadratic lies at x0 < 0; with x0 >= 0 (a scalar term's theta: nothing
    below it) the search stops at the constrained minimum, x0 = 0 and x1 = c1 - A10 (0 - c0) / A11,
    after the boundary check (here: no better point)."""
    A = np.array([[4.0, 1.0], [1.0, 2.0]])
    c = np.array([-0.5, 0.4])
    fgh, f_only, calls = _quad(A, c)
    seen = []
    leave = lambda x, fx: seen.append(x.copy()) or None
    lower = np.array([0.0, 0.0])
    start, msg = optimize.scoring(fgh, f_only, np.array([1.0, 1.0]), lower, leave=leave)
    assert start is None and "on the boundary" in msg
    assert len(seen) == 1
    x = seen[0]
    assert x[0] == 0.0
    assert x[1] == pytest.approx(c[1] - A[1, 0] * (0 - c[0]) / A[1, 1], abs=1e-6)


def test_scoring_stops_short_of_the_bound_of_a_diagonal_with_entries_below_it():
    """lower = [0, -inf]: x0 is a diagonal with x1 below it in its column; the unconstrained
    minimum has x0 < 0, so the steps go to_edge of the way to the bound, and after edge_steps
    of them the point (still inside) is handed to L-BFGS-B."""
    A = np.array([[4.0, 1.0], [1.0, 2.0]])
    fgh, f_only, calls = _quad(A, np.array([-0.5, 0.4]))
    rules = optimize.ScoringRules()
    start, msg = optimize.scoring(fgh, f_only, np.array([1.0, 1.0]), np.array([0.0, -np.inf]), rules)
    assert start is not None and "entries below" in msg
    assert 0.0 < start[0] <= (1 - rules.to_edge) ** rules.edge_steps * 1.0 + 1e-12


def test_scoring_hands_over_when_the_model_hessian_is_poor():
    """A model Hessian 10x too large in one direction: the decrement falls by ~0.8 per step,
    and the search is handed over (slow_rate) instead of crawling."""
    A = np.array([[4.0, 0.0], [0.0, 2.0]])
    c = np.array([0.3, 0.2])

    def fgh(x):
        r = x - c
        return float(r @ A @ r / 2), A @ r, np.diag([40.0, 2.0])
    start, msg = optimize.scoring(fgh, lambda x: fgh(x)[0], np.array([0.5, 0.5]), np.array([0.0, 0.0]))
    assert start is not None and "slow convergence" in msg


@pytest.mark.expect_warnings((sm.ConvergenceWarning,))      # also the convergence check's, at 1 evaluation
@pytest.mark.parametrize("maxeval", [1, 2, 3])
def test_scoring_stops_at_maxeval_and_says_so(maxeval):
    """maxeval counts scoring's evaluations (each with its gradient): the fit stops there,
    unconverged, with lme4's warning; with enough evaluations the same model converges."""
    d = _data(4, na=400, nb=60)
    model = sm.LinearMixedModel("y ~ x + (1 | a) + (1 | b)", d, REML=True, ordering="blocked")
    with pytest.warns(sm.ConvergenceWarning, match="scoring.*MAXEVAL_REACHED"):
        r = model.fit(maxeval=maxeval)
    assert r.optsummary.method == "scoring" and not r.converged
    assert r.optsummary.feval == maxeval
    assert model.fit().converged


@pytest.mark.parametrize("c", [1e-12, 1e-3, 1e6])
def test_the_default_fit_is_equivariant_to_the_weights_scale(c):
    """Weights c w are the model of weights w with theta / sqrt(c) (sigma^2 c): the moment
    start (weighted ANOVA, clipped on the unit-weight scale) and the scoring fit from it must
    follow.  Before, the start ignored the weights' scale and, at c = 1e-12, BOBYQA and scoring
    both stopped near theta = 0.3 where the optimum is 3e5 (a silently wrong, 'singular' fit)."""
    d = _data(6, na=400, nb=60, weights=True)
    f = "y ~ x + (1 | a) + (1 | b)"
    ref = sm.LinearMixedModel(f, d, REML=True, ordering="blocked", weights="w")
    scaled = sm.LinearMixedModel(f, d.assign(w=d.w * c), REML=True, ordering="blocked", weights="w")
    np.testing.assert_allclose(scaled.moment_start()[0] * np.sqrt(c), ref.moment_start()[0], rtol=1e-9)
    r0, r1 = _default_scoring_fit(ref), _default_scoring_fit(scaled)
    np.testing.assert_allclose(r1.theta * np.sqrt(c), r0.theta, rtol=1e-6)
    assert r1.objective == pytest.approx(r0.objective, abs=1e-7)
