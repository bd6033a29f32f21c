"""The order of the random-effects terms (and so of theta) is lme4's, on every formula shape.

Reference: tests/reference/term_order/make_term_order.R (lme4 1.1-31) on the unbalanced
data set written next to it (unequal group sizes, missing (a, b) and (a, c) cells).  lme4's
rule: findbars expands ``||`` first (``1`` then ``0 + t`` per terms() label), then each
term's ``a/b/c`` as ``c:(b:a), b:a, a``; mkReTrms then, if the numbers of levels nl are not
non-increasing, reorders by ``rev(order(nl))``: decreasing nl, ties in reverse order of
appearance.

Per shape: the expansion (before sorting) is lme4's findbars, the terms' names, columns
and numbers of levels and theta's names are lme4's in lme4's order, ``model.objective`` at
lme4's theta is lme4's REML criterion to 1e-6 relative (a theta packed in another term order
gives another value), and our fit is not above lme4's criterion by more than 1e-6 relative.

One documented difference in names only: lme4 deparses a three-level nesting ``a/b/e`` as
``e:(b:a)``; sparsemixed names that factor ``e:b:a`` (same levels, same place in the order).
lme4's VarCorr also passes the names through make.names when a grouping factor repeats
(``b.a``, ``b.a.1``); sparsemixed keeps R's make.unique of the factor names (``b:a``,
``b:a.1``), which is what the reference's ``term_names`` holds.
"""
import json
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from sparsemixed.formula.bars import parse_formula
from sparsemixed.inference.varpar import theta_names

REF_DIR = pathlib.Path(__file__).parent / "reference" / "term_order"
REF = json.loads((REF_DIR / "term_order.json").read_text())
SHAPES = list(REF)
_MODELS: dict = {}


def _data() -> pd.DataFrame:
    if "data" not in _MODELS:
        _MODELS["data"] = pd.read_csv(REF_DIR / "data.csv")
    return _MODELS["data"]


def _model(shape):
    if shape not in _MODELS:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _MODELS[shape] = sm.lmer(REF[shape]["formula"], _data())
    return _MODELS[shape]


def _plain(group: str) -> str:
    """lme4's ``e:(b:a)`` -> sparsemixed's ``e:b:a`` (the one naming difference)."""
    return group.replace("(", "").replace(")", "")


def _expected_theta_names(r) -> list:
    """lme4's theta names, with each term's grouping-factor prefix made paren-free."""
    out, names = [], list(r["theta_names"])
    for g, cols in zip(r["groups"], r["columns"]):
        k = len(cols)
        for _ in range(k * (k + 1) // 2):
            name = names.pop(0)
            assert name.startswith(g + ".")
            out.append(_plain(g) + name[len(g):])
    assert not names
    return out


def test_reference_covers_the_shapes():
    assert len(SHAPES) >= 15
    formulas = " ".join(REF[s]["formula"] for s in SHAPES)
    for piece in ["||", "/b)", "/b/e)", "a:b", "b:a", "0 +", "- 1", "(0 + f", "(f ||", "a:c", "x * z ||"]:
        assert piece in formulas, piece


@pytest.mark.parametrize("shape", SHAPES)
def test_expansion_is_findbars(shape):
    """parse_formula's bars, before sorting, are lme4's findbars expansion in its order."""
    ours = [(b.expr.replace(" ", ""), b.group_name) for b in parse_formula(REF[shape]["formula"]).bars]
    lme4 = []
    for text in REF[shape]["bars"]:
        expr, group = text.split("|")
        lme4.append((expr.replace(" ", ""), _plain(group.strip())))
    assert ours == lme4


@pytest.mark.parametrize("shape", SHAPES)
def test_terms_in_lme4_order(shape):
    r, m = REF[shape], _model(shape)
    assert [t.group.name for t in m.terms] == [_plain(g) for g in r["groups"]]
    assert [t.name for t in m.terms] == [_plain(g) for g in r["term_names"]]
    assert [list(t.columns) for t in m.terms] == r["columns"]
    assert [t.nlevels for t in m.terms] == list(r["nl"])
    assert theta_names(m.terms) == _expected_theta_names(r)


@pytest.mark.parametrize("shape", SHAPES)
def test_objective_at_lme4_theta(shape):
    r, m = REF[shape], _model(shape)
    crit = r["reml_criterion"]
    assert m.objective(np.asarray(r["theta"], dtype=float)) == pytest.approx(crit, rel=1e-6, abs=0)


@pytest.mark.parametrize("shape", SHAPES)
def test_fit_not_above_lme4(shape):
    r, m = REF[shape], _model(shape)
    crit = r["reml_criterion"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = m.fit()
    assert res.objective <= crit + 1e-6 * abs(crit)


def test_wrong_order_is_detected():
    """The data tell the orders apart: the brief's (1|a/b) + (0 + x|a) with the two terms of
    a swapped (sparsemixed's former order) misses lme4's criterion by far more than 1e-6."""
    r, m = REF["nested_slope"], _model("nested_slope")
    theta = np.asarray(r["theta"], dtype=float)
    crit = r["reml_criterion"]
    assert abs(m.objective(theta[[0, 2, 1]]) - crit) > 1e-4 * abs(crit)


@pytest.mark.parametrize("shape", ["nested_slope", "nested_dv_c", "dv_degree", "mixed"])
def test_streamed_order(shape, tmp_path):
    """A model streamed from CSV chunks (io.encode) orders and names its terms the same way."""
    r = REF[shape]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sm.lmer(r["formula"], sm.io.CSV(REF_DIR / "data.csv", chunksize=150))
    assert [t.name for t in m.terms] == [_plain(g) for g in r["term_names"]]
    assert theta_names(m.terms) == _expected_theta_names(r)
    crit = r["reml_criterion"]
    assert m.objective(np.asarray(r["theta"], dtype=float)) == pytest.approx(crit, rel=1e-6, abs=0)
