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


def test_early_stop_is_flagged_by_the_scaled_gradient():
    m = sm.lmer("Reaction ~ Days + (Days|Subject)", sm.datasets.load("sleepstudy"))
    with pytest.warns(sm.ConvergenceWarning, match="scaled gradient"):
        r = m.fit(optimizer="bobyqa", maxeval=12)
    assert np.max(np.abs(r.optsummary.diagnostics["scaled_gradient"])) > 2e-3


def test_predictors_on_very_different_scales_warn():
    d = sm.datasets.load("sleepstudy").assign(big=lambda t: t["Days"] * 1e5 + np.arange(len(t)) % 3)
    with pytest.warns(ScaleWarning, match="very different scales.*big"):
        sm.lmer("Reaction ~ Days + big + (1|Subject)", d)
