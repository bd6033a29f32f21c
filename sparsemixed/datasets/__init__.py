"""Data sets bundled with sparsemixed (from R's lme4 1.1-31; GPL >= 2).

``load(name)`` returns a pandas DataFrame with factors as pandas categoricals, as R
holds them; ``describe(name)`` returns its documentation (columns, source, licence);
``names()`` lists them.  Names: sleepstudy, sleepstudy2 (unbalanced sleepstudy with a
``phase`` factor), Dyestuff, Dyestuff2, Penicillin, Pastes, InstEval.
"""
from __future__ import annotations

from importlib import resources

import pandas as pd

from ..errors import SparseMixedError

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


def _check_name(name: str) -> None:
    if name not in _FACTORS:
        raise SparseMixedError(f"unknown data set {name!r}; available: {', '.join(names())}")


def load(name: str) -> pd.DataFrame:
    """Load a bundled data set by name (see :func:`names`)."""
    _check_name(name)
    path = resources.files(__package__) / "data" / f"{name}.csv"
    with resources.as_file(path) as p:
        df = pd.read_csv(p, dtype={c: str for c in _FACTORS[name]})
    for c in _FACTORS[name]:
        vals = df[c]
        cats = sorted(vals.unique(), key=lambda v: (0, int(v)) if v.lstrip("-").isdigit() else (1, v))
        df[c] = pd.Categorical(vals, categories=cats)
    return df


_DAVIES_GOLDSMITH = ("O. L. Davies and P. L. Goldsmith (eds), Statistical Methods in Research and "
                     "Production, 4th ed., Oliver and Boyd (1972)")
_FROM_LME4 = "Copied from R's lme4 1.1-31 (data/{name}.rda), licensed GPL (>= 2)."

# Per data set: title, description, columns (name -> meaning), source, origin.  The
# column names are checked against the CSV files by tests/test_docs.py.
DOCS = {
    "sleepstudy": dict(
        title="Reaction times in a sleep deprivation study",
        description=(
            "The average reaction time per day (ms) of 18 subjects in a sleep deprivation study, "
            "10 days each (180 rows, balanced). Days 0-1 were adaptation and training, day 2 the "
            "baseline; the subjects were restricted to 3 hours in bed per night from then on. The "
            "data are the most sleep-deprived group of the study, for its first 10 days, up to the "
            "recovery period. The classic random-slope example: "
            "Reaction ~ Days + (Days | Subject)."),
        columns={"Reaction": "average reaction time (ms) on the day's tests (float)",
                 "Days": "day of the study, 0-9 (int); lme4: 'number of days of sleep deprivation' "
                         "(the restriction began after day 2)",
                 "Subject": "subject number, a factor with 18 levels (308 ... 372)"},
        source=("G. Belenky, N. J. Wesensten, D. R. Thorne, M. L. Thomas, H. C. Sing, D. P. Redmond, "
                "M. B. Russo and T. J. Balkin (2003). Patterns of performance degradation and "
                "restoration during sleep restriction and subsequent recovery: a sleep dose-response "
                "study. Journal of Sleep Research 12, 1-12."),
        origin=_FROM_LME4.format(name="sleepstudy")),
    "sleepstudy2": dict(
        title="sleepstudy made unbalanced, with a two-level factor",
        description=(
            "sleepstudy with 29 of its 180 rows removed (one or two days per subject on a rotating "
            "pattern, five for subject 309), so that subjects have 5 to 9 observations and "
            "estimates differ from OLS; the reaction times are unchanged. A factor phase marks "
            "days 0-4 (early) and 5-9 (late). Used by the tests for unbalanced designs, weights and "
            "factor-valued random slopes such as (0 + phase | Subject)."),
        columns={"Reaction": "average reaction time (ms), as in sleepstudy",
                 "Days": "number of days of sleep deprivation, 0-9",
                 "Subject": "subject number, a factor with 18 levels",
                 "phase": "factor: early (days 0-4) or late (days 5-9)"},
        source="Derived from sleepstudy (Belenky et al. 2003) for sparsemixed's tests.",
        origin="Made for sparsemixed from lme4 1.1-31's sleepstudy (GPL >= 2)."),
    "Dyestuff": dict(
        title="Yield of dyestuff by batch",
        description=(
            "The yield of dyestuff (Naphthalene Black 12B) from 5 preparations from each of 6 "
            "batches of an intermediate product (H-acid): 30 rows, balanced one-way layout. From an "
            "investigation of how much the batch-to-batch variation of the intermediate contributes "
            "to the variation of the yield. Model: Yield ~ 1 + (1 | Batch)."),
        columns={"Batch": "batch of the intermediate product, a factor with 6 levels A-F",
                 "Yield": "yield of the preparation, grams of standard colour (int)"},
        source=_DAVIES_GOLDSMITH + ", section 6.4.",
        origin=_FROM_LME4.format(name="Dyestuff")),
    "Dyestuff2": dict(
        title="Constructed data like Dyestuff with a large residual variance",
        description=(
            "Data constructed in the layout of Dyestuff (6 batches x 5) to illustrate a "
            "between-batch mean square smaller than the within-batch mean square: the REML and ML "
            "estimates of the batch variance are zero (a singular fit)."),
        columns={"Batch": "batch, a factor with 6 levels A-F",
                 "Yield": "simulated yield (float)"},
        source=("G. E. P. Box and G. C. Tiao, Bayesian Inference in Statistical Analysis, "
                "Addison-Wesley (1973), section 5.1.2."),
        origin=_FROM_LME4.format(name="Dyestuff2")),
    "Penicillin": dict(
        title="Variation in penicillin testing",
        description=(
            "Six samples of penicillin tested by the B. subtilis plate method on each of 24 plates "
            "(144 rows): the response is the diameter of the zone where the organism's growth is "
            "inhibited. Every sample is on every plate, so plate and sample are fully crossed: "
            "diameter ~ 1 + (1 | plate) + (1 | sample)."),
        columns={"diameter": "diameter (mm) of the zone of inhibition of growth (int)",
                 "plate": "assay plate, a factor with 24 levels a-x",
                 "sample": "penicillin sample, a factor with 6 levels A-F"},
        source=_DAVIES_GOLDSMITH + ", section 6.6.",
        origin=_FROM_LME4.format(name="Penicillin")),
    "Pastes": dict(
        title="Paste strength by batch and cask",
        description=(
            "Strength of a chemical paste product delivered in casks: 10 delivery batches, 3 casks "
            "sampled at random from each, two analytical tests per sample (60 rows). Casks are "
            "nested in batches: strength ~ 1 + (1 | batch/cask), equivalently "
            "(1 | batch) + (1 | sample)."),
        columns={"strength": "paste strength (float)",
                 "batch": "delivery batch, a factor with 10 levels A-J",
                 "cask": "cask within the batch, a factor with 3 levels a-c (labels repeat across batches)",
                 "sample": "the sample (batch:cask) whose strength was assayed, 30 levels A:a ... J:c"},
        source=_DAVIES_GOLDSMITH + ", section 6.5.",
        origin=_FROM_LME4.format(name="Pastes")),
    "InstEval": dict(
        title="University lecture evaluations by students at ETH Zurich",
        description=(
            "73,421 ratings of lectures by students at ETH Zurich, anonymised (and slightly "
            "simplified on purpose). One row is one student's rating of one lecture (one lecturer, "
            "one semester). Students and lecturers are partially crossed; a medium-sized benchmark: "
            "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service) has 4,128 random effects."),
        columns={"s": "student, a factor with 2,972 levels",
                 "d": "lecturer (professor), a factor with 1,128 levels (codes from 1 to 2160)",
                 "studage": "the student's semester number, a factor with levels 2, 4, 6, 8 "
                            "(ordered in R)",
                 "lectage": "how many semesters back the lecture took place, levels 1-6 (ordered in R)",
                 "service": "1 if the lecture was held for a department other than the lecturer's "
                            "main one, else 0",
                 "dept": "department of the lecture (random code), a factor with 14 levels",
                 "y": "the rating, 1 (poor) to 5 (very good) (int)"},
        source=("ETH Zurich's lecture evaluations, anonymised for privacy and provided with lme4 "
                "by its authors (the source is not public)."),
        origin=_FROM_LME4.format(name="InstEval")),
}


def describe(name: str) -> str:
    """The documentation of a bundled data set: title, description, columns, source and
    origin/licence, as plain text (also in docs/datasets.md)."""
    _check_name(name)
    d = DOCS[name]
    width = max(len(c) for c in d["columns"])
    cols = "\n".join(f"  {c:<{width}}  {text}" for c, text in d["columns"].items())
    return (f"{name}: {d['title']}\n\n{d['description']}\n\nColumns:\n{cols}\n\n"
            f"Source: {d['source']}\nOrigin: {d['origin']}")
