"""Data sets bundled with sparsemixed (from R's lme4 1.1-31; GPL >= 2).

``load(name)`` returns a pandas DataFrame with factors as pandas categoricals, as R
holds them.  Names: sleepstudy, sleepstudy2 (unbalanced sleepstudy with a ``phase``
factor), Dyestuff, Dyestuff2, Penicillin, Pastes, InstEval.
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

_FACTORS = {
    "sleepstudy": ["Subject"], "sleepstudy2": ["Subject", "phase"], "Dyestuff": ["Batch"],
    "Dyestuff2": ["Batch"], "Penicillin": ["plate", "sample"], "Pastes": ["batch", "cask", "sample"],
    "InstEval": ["s", "d", "studage", "lectage", "service", "dept"],
}
DESCRIPTIONS = {
    "sleepstudy": "Reaction times (ms) of 18 subjects over 10 days of sleep deprivation (Belenky et al. 2003).",
    "sleepstudy2": "sleepstudy made unbalanced, with a factor phase (early: days 0-4, late: 5-9).",
    "Dyestuff": "Yield of dyestuff (grams) in 6 batches of an intermediate product, 5 preparations each.",
    "Dyestuff2": "Simulated data like Dyestuff where the batch variance estimate is zero.",
    "Penicillin": "Diameter of growth-inhibition zones: 6 penicillin samples on 24 plates (crossed).",
    "Pastes": "Strength of a chemical paste: 10 batches, 3 casks within each (nested), 2 assays.",
    "InstEval": "University lecture evaluations (ETH Zurich): 73,421 ratings by 2,972 students of 1,128 lecturers.",
}


def names() -> list[str]:
    return sorted(_FACTORS)


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set by name (see :func:`names`)."""
    if name not in _FACTORS:
        raise ValueError(f"unknown data set {name!r}; available: {', '.join(names())}")
    path = resources.files(__package__) / "data" / f"{name}.csv"
    with resources.as_file(path) as p:
        df = pd.read_csv(p, dtype={c: str for c in _FACTORS[name]})
    for c in _FACTORS[name]:
        vals = df[c]
        cats = sorted(vals.unique(), key=lambda v: (0, int(v)) if v.lstrip("-").isdigit() else (1, v))
        df[c] = pd.Categorical(vals, categories=cats)
    return df
