import json
import pathlib

import os

import pytest
from hypothesis import settings

# CI runs a fixed, derandomized set of examples (reproducible); locally hypothesis explores.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

import sparsemixed as sm

REF = pathlib.Path(__file__).parent / "reference"


@pytest.fixture(scope="session")
def lme4_ref():
    return json.loads((REF / "lme4_results.json").read_text())


_FITS = {}


def fit_reference(name, ref):
    """Fit each reference model once per session (as MixedModels.jl's tests do)."""
    if name not in _FITS:
        r = ref[name]
        model = sm.lmer(r["formula"], sm.datasets.load(r["data"]), REML=r["reml"])
        _FITS[name] = model.fit()
    return _FITS[name]
