"""sparsemixed.optimize: stops on the bound T_kk = 0 are checked, against lme4's best optimum.

The criterion depends on theta only through G = T T', so a gradient method can stop at a
corner of the parametrisation -- T_kk = 0 -- where the model is not at a minimum.  The two
synthetic functions below are of that form, f(theta) = ||T T' - A||_F^2 with T 2 x 2 lower
triangular (theta = [T00, T10, T11], lme4's order); the data sets are where L-BFGS-B used to
stop 0.03-3 units of deviance above lme4 (tests/reference/make_optimizer_reference.R): at
such corners, just inside one, or with a large scaled gradient (model.fit restarts then).
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from sparsemixed import optimize

REF = Path(__file__).parent / "reference"
LOWER = np.array([0.0, -np.inf, 0.0])


def _frobenius(A):
    A = np.asarray(A, dtype=float)

    def f(theta):
        T = np.array([[theta[0], 0.0], [theta[1], theta[2]]])
        return float(np.sum((T @ T.T - A) ** 2))
    return f


def test_reflected_column_leaves_a_corner_of_the_parametrisation():
    """T00 = 0 with T10 < 0: a KKT point of the box (the derivative in T00 is > 0), but
    T10 -> -T10 is the same G, where the derivative in T00 is < 0."""
    f = _frobenius([[1.0, 0.5], [0.5, 1.0]])
    x = np.array([0.0, -0.8, 0.6])           # min over {T00 = 0}: T10^2 + T11^2 = 1
    fx = f(x)
    assert fx == pytest.approx(1.5)
    # the stop is a KKT point: no step into the interior along T00 alone helps
    assert all(f(x + [t, 0, 0]) > fx for t in (1e-3, 1e-2, 0.05, 0.2))
    trial = optimize.leave_boundary(f, x, fx, LOWER)
    assert trial is not None and f(trial) < fx - 1e-3
    # and L-BFGS-B restarted from there reaches G = A (f = 0)
    grad = lambda th: (f(th), _numgrad(f, th))
    s = optimize.minimize(f, optimize.OptSummary(initial=trial, lower=LOWER, method="lbfgsb"), fun_grad=grad)
    assert s.fmin < 1e-8


def test_zero_column_negative_curvature_off_the_diagonal():
    """T = 0 and A indefinite with a negative diagonal: every single coordinate raises f,
    the column direction (1, 1) lowers it (second order, v'Cv with C = -2A)."""
    f = _frobenius([[-0.1, 0.5], [0.5, -0.1]])
    x = np.zeros(3)
    fx = f(x)
    for k in range(3):
        for t in (1e-3, 0.05):
            e = np.zeros(3)
            e[k] = t
            assert f(x + e) > fx
    trial = optimize.leave_boundary(f, x, fx, LOWER)
    assert trial is not None and f(trial) < fx
    assert trial[0] > 0 and trial[1] > 0            # along (1, 1), the diagonal entry >= 0


def _numgrad(f, x, h=1e-6):
    g = np.zeros_like(x)
    for k in range(x.size):
        e = np.zeros_like(x)
        e[k] = h
        g[k] = (f(x + e) - f(x - e)) / (2 * h)
    return g


CASES = json.loads((REF / "lme4_optimizer.json").read_text())


@pytest.mark.expect_warnings((sm.IdentifiabilityWarning,))
@pytest.mark.parametrize("name", sorted(CASES))
def test_default_fit_reaches_lme4s_best_optimum(name):
    """The default fit (L-BFGS-B with the analytic gradient, the boundary checks and the
    restart on a large scaled gradient) reaches
    the best criterion of lme4's three optimizers, or lower."""
    case = CASES[name]
    d = pd.read_csv(REF / "optimizer_cases" / case["file"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.SingularFitWarning)
        r = sm.lmer(case["formula"], d, REML=case["reml"]).fit()
    assert r.optsummary.method == "lbfgsb"
    assert r.objective <= case["objective"] + 1e-6 * abs(case["objective"])


@pytest.mark.parametrize("ordering", ["natural", "auto"])
@pytest.mark.parametrize("name, formula", [("nested_face", "y ~ x + (1|a/h)"),
                                           ("crossed_interior", "y ~ x + (1|g) + (1|b)")])
def test_fit_reaches_the_lower_of_two_local_minima(name, formula, ordering):
    """REML criteria with two local minima (tests/reference/two_modes/): the default fit
    starts from moment estimates, near the higher minimum; the face probe and the second
    start from lme4's theta (FitControl.face_probe, second_start) must reach the lower one.
    The reference is a brute-force grid over theta of a dense computation
    (test_properties.dense_profiled), refined by Nelder-Mead on the dense function."""
    from scipy.optimize import minimize as sp_min
    from test_properties import dense_design, dense_lambda, dense_profiled

    df = pd.read_csv(REF / "two_modes" / f"{name}.csv", dtype={"b": str})
    model = sm.LinearMixedModel(formula, df, REML=True, ordering=ordering)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = model.fit()
    Z, blocks = dense_design(model, df)
    X = np.column_stack([np.ones(len(df)), df["x"].to_numpy(float)])
    y = df["y"].to_numpy(float)
    dense = lambda th: dense_profiled(y, X, Z, dense_lambda(np.abs(th), blocks), reml=True)["objective"]
    grid = np.linspace(0.0, 3.0, 61)
    values = np.array([[dense(np.array([u, v])) for v in grid] for u in grid])
    i, j = np.unravel_index(np.argmin(values), values.shape)
    best = sp_min(dense, [grid[i], grid[j]], method="Nelder-Mead", options={"xatol": 1e-9, "fatol": 1e-12})
    # the dense criterion where the fit stopped is what the fit reports
    assert dense(res.theta) == pytest.approx(res.objective, rel=1e-10)
    assert res.objective <= best.fun + 1e-7
    # and it is the lower minimum, not only a lower value: the same theta
    np.testing.assert_allclose(res.theta, np.abs(best.x), atol=2e-3)
    # without the probes the fit stops at the higher minimum (on the sparse factor's rounding;
    # the dense engine's path (auto) may reach the lower one alone).  From the moment start
    # scoring reaches the lower one alone (its steps towards the face go to the boundary
    # check), so there the probes are shown with BOBYQA from the moment start (the default
    # where a gradient is dear)
    plain_kw = (dict(optimizer="bobyqa", start="moments") if model.moment_start()[1].all() else {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = model.fit(**plain_kw, control=sm.FitControl(face_probe=False, second_start=False, polish=False))
    if ordering == "natural":
        assert plain.objective > best.fun + 0.1


@pytest.mark.expect_warnings((sm.SingularFitWarning,))
@pytest.mark.parametrize("s", [1e-3, 1e3, 1e4])
def test_default_fit_is_equivariant_to_a_slope_covariates_units(s):
    """x -> s x in ``y ~ x + (x | g)``: the same model (theta's slope row / s, REML criterion
    + 2 log s from log|R_X|^2); the default L-BFGS-B runs on theta / start.theta_scale, so it
    needs about as many evaluations as in the original units (in theta it took 76-215 where
    the original took 22), and its convergence check passes in those units too (in theta the
    Hessian's eigenvalues spread over 1e8 and read as indefinite: a false ConvergenceWarning)."""
    rng = np.random.default_rng(5)
    n = 600
    g = rng.integers(0, 30, n)
    x = rng.uniform(0, 10, n)
    y = 2 + 0.5 * x + rng.normal(0, 1, 30)[g] + rng.normal(0, 0.3, 30)[g] * x + rng.normal(size=n)
    base = pd.DataFrame({"y": y, "x": x, "g": [f"g{v}" for v in g]})
    r0 = sm.lmer("y ~ x + (x|g)", base).fit()
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.ConvergenceWarning)
        r = sm.lmer("y ~ x + (x|g)", base.assign(x=base.x * s)).fit()
    assert r.optsummary.diagnostics["hessian_positive_definite"]
    assert r.objective == pytest.approx(r0.objective + 2 * np.log(s), abs=1e-6)
    np.testing.assert_allclose(r.theta * np.array([1, s, s]), r0.theta, rtol=1e-4, atol=1e-6)
    assert r.optsummary.feval <= 2 * r0.optsummary.feval + 5
