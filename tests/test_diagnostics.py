"""Checks after the fit: singular fits, convergence (scaled gradient, Hessian), scales."""
import warnings

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from sparsemixed import ScaleWarning, SingularFitWarning


def test_singular_fit_is_reported_like_lme4():
    with pytest.warns(SingularFitWarning, match=r"boundary \(singular\) fit.*\(1 \| Batch\)"):
        r = sm.lmer("Yield ~ 1 + (1|Batch)", sm.datasets.load("Dyestuff2")).fit()
    assert r.is_singular
    assert "boundary (singular) fit" in r.summary()


@pytest.mark.parametrize("name, formula", [
    ("sleepstudy", "Reaction ~ Days + (Days|Subject)"),
    ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
    ("Pastes", "strength ~ 1 + (1|batch/cask)"),
    ("InstEval", "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)"),
])
def test_no_false_alarms_at_a_regular_optimum(name, formula):
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.ConvergenceWarning)
        warnings.simplefilter("error", SingularFitWarning)
        r = sm.lmer(formula, sm.datasets.load(name)).fit(check_convergence=True)
    d = r.optsummary.diagnostics
    assert d["checked"] and d["hessian_positive_definite"]
    assert np.max(np.abs(d["scaled_gradient"])) < 1e-4


@pytest.mark.expect_warnings((sm.ConvergenceWarning,))
def test_early_stop_is_flagged_by_the_scaled_gradient():
    m = sm.lmer("Reaction ~ Days + (Days|Subject)", sm.datasets.load("sleepstudy"))
    with pytest.warns(sm.ConvergenceWarning, match="scaled gradient"):
        r = m.fit(optimizer="bobyqa", maxeval=12)
    assert np.max(np.abs(r.optsummary.diagnostics["scaled_gradient"])) > 2e-3


def test_predictors_on_very_different_scales_warn():
    d = sm.datasets.load("sleepstudy").assign(big=lambda t: t["Days"] * 1e5 + np.arange(len(t)) % 3)
    with pytest.warns(ScaleWarning, match="very different scales.*big"):
        sm.lmer("Reaction ~ Days + big + (1|Subject)", d)


# A random slope model on 21 unbalanced rows (found by hypothesis, tests/test_properties.py):
# fitted to 2y, L-BFGS-B stopped after 11 evaluations at a saddle point, theta ~ (1e-4,
# -0.009, 0.917): an intercept variance near 0 leaves the correlation undetermined, and the
# criterion falls only along a curved valley to the optimum at theta ~ (0.006, -0.92, 0).
SADDLE_ROWS = """\
g x y
G0 -0.088444 -0.715464
G0 -2.276582 3.200451
G0 0.431936 -1.620822
G0 -1.902721 -1.581713
G0 -1.106372 1.707671
G0 1.224597 -1.191956
G0 0.827391 -1.345651
G1 -0.332320 1.689709
G1 -0.346103 2.360539
G2 -1.348296 -3.122115
G2 1.398203 4.129854
G2 -0.036745 -1.747229
G3 0.666592 2.100026
G4 -0.132653 -1.820704
G4 0.013028 -2.923160
G5 0.875318 -1.767095
G5 -0.314463 0.959254
G5 1.654154 4.015881
G5 -0.497764 -2.139226
G5 -0.901425 -1.670453
G5 -0.107530 2.031611
"""


def test_a_saddle_point_is_left_for_the_minimum():
    import io

    from scipy.optimize import minimize as sp_minimize

    df = pd.read_csv(io.StringIO(SADDLE_ROWS), sep=" ").assign(y=lambda d: 2 * d["y"])
    m = sm.lmer("y ~ x + (1 + x | g)", df)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.ConvergenceWarning)
        warnings.simplefilter("ignore", SingularFitWarning)
        r = m.fit(optimizer="lbfgsb")
    assert r.optsummary.saddle_restarts >= 1          # the first stop was the saddle point
    assert r.optsummary.diagnostics["hessian_positive_definite"]
    # the minimum by an independent method (Nelder-Mead from several starts)
    best = min((sp_minimize(m.objective, x0, method="Nelder-Mead",
                            options=dict(xatol=1e-10, fatol=1e-12, maxiter=20000))
                for x0 in ([0.5, -0.5, 0.5], [0.01, -1.0, 0.01], [1.0, 0.0, 1.0])), key=lambda o: o.fun)
    assert r.objective == pytest.approx(best.fun, abs=1e-7)
    assert abs(r.theta[1]) > 0.9 and r.theta[2] < 1e-3       # the correlation at -1, not 0


def test_an_early_stop_states_the_gap_the_check_can_see():
    """An optimizer out of evaluations is not polished (maxeval is the user's budget), but the
    scaled-gradient warning states the decrease a Newton step would bring, close to the gap
    to the optimum."""
    import re

    m = sm.lmer("Reaction ~ Days + (Days|Subject)", sm.datasets.load("sleepstudy"))
    best = m.fit().objective
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        r = m.fit(optimizer="bobyqa", maxeval=12)
    assert "polish" not in r.optsummary.diagnostics
    said = [re.search(r"lower the criterion by about ([0-9.e+-]+)", str(w.message)) for w in caught]
    said = [float(s.group(1)) for s in said if s]
    assert len(said) == 1
    gap = r.objective - best
    assert gap > 0 and 0.2 * gap < said[0] < 5 * gap
    assert r.optsummary.diagnostics["newton_decrease"] == pytest.approx(said[0], rel=1e-2)
