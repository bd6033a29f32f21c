"""Formula fuzzing: any string either parses or raises FormulaError, and ``sm.lmer`` on a
small data frame either builds a model or raises a SparseMixedError, never another
exception (numpy's, pandas', formulaic's, an AttributeError ...).

Strings come from two generators: random sequences of formula tokens and junk
characters, and near-valid formulas (response ~ fixed terms + bar terms, from a small
grammar) with a few characters inserted or deleted.  Under CI the conftest's "ci"
profile derandomizes hypothesis, so the examples are the same on every run.
"""
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import sparsemixed as sm
from sparsemixed.errors import FormulaError, SparseMixedError
from sparsemixed.formula.bars import parse_formula

NAMES = ["y", "x", "z", "g", "h", "f", "w", "nope", "1", "0", "2", "3.5", "-1", "`g`", "`a b`", "x.1",
         "I(x**2)", "C(g)", "log(x)", "é", "_u", ".v"]
OPS = ["+", "-", "*", ":", "/", "|", "||", "%in%", "^", "**"]
JUNK = ["~", "(", ")", "|", "||", "$", "#", "@", ",", "'", '"', "\\", "\n", "\t", "[", "]", "{", "}", "!",
        "=", ";", "`", " ", "+", "-", "*", ":", "/", "0", "1", "I(", "C(", "\x00", "%"]
TOKENS = NAMES + OPS + JUNK + ["~", "~", "(", ")", " ", " ", "12", "1e3"]

GROUPS = ["g", "h", "f", "g:h", "g/h", "h/g", "(g)", "g + h", "x", "nope", "1", ""]


def _small_df() -> pd.DataFrame:
    rng = np.random.default_rng(7)
    n = 48
    return pd.DataFrame({
        "y": rng.normal(size=n), "x": rng.normal(size=n), "z": rng.uniform(size=n),
        "g": np.repeat(list("abcdefgh"), 6), "h": np.tile(list("pqrs"), 12),
        "f": pd.Categorical(np.tile(list("uv"), 24)), "w": rng.uniform(0.5, 2.0, size=n),
        "a b": rng.normal(size=n), "x.1": rng.integers(0, 3, size=n),
    })


SMALL = _small_df()

name = st.sampled_from(NAMES)
expr = st.recursive(name, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from(OPS), inner).map(" ".join),
    inner.map(lambda e: f"({e})")), max_leaves=4)
bar = st.tuples(st.one_of(expr, st.sampled_from(["1", "0 + x", "1 + x", "x + z"])), st.sampled_from(["|", "||"]),
                st.one_of(st.sampled_from(GROUPS), expr)).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
rhs = st.lists(st.one_of(expr, bar, bar), max_size=4).map(" + ".join)
near_formula = st.tuples(st.sampled_from(["y", "y", "y", "log(y)", "x", "", "y + x", "g", "nope"]),
                         st.sampled_from([" ~ ", " ~ ", "~", "", " ~~ "]), rhs).map("".join)


@st.composite
def mutated(draw):
    s = draw(near_formula)
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 2, 3]))):
        i = draw(st.integers(0, len(s)))
        if s and draw(st.booleans()):
            s = s[:i] + s[i + 1:]
        else:
            s = s[:i] + draw(st.sampled_from(JUNK)) + s[i:]
    return s


token_soup = st.lists(st.sampled_from(TOKENS), max_size=16).map("".join)
formulas = st.one_of(token_soup, mutated(), mutated())

FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# strings that once escaped as other exceptions
REGRESSIONS = ["y~(((y)) | y || x)", "y ~ (x | g || h)", "y ~ (y ~ x | g)", "y ~ x + ((1 | g))"]


@FUZZ
@given(formulas)
@example("y ~ x + (1 | g)")
@example("")
@example("~")
@example("y ~ (|)")
def test_parse_formula_parses_or_raises_formula_error(text):
    try:
        parsed = parse_formula(text)
    except FormulaError as exc:
        assert str(exc)
        return
    assert parsed.response and parsed.fixed
    for b in parsed.bars:
        assert b.expr.strip() and b.factors and all(b.factors)


@FUZZ
@given(formulas)
@example("y ~ x + (1 | g)")
@example("y ~ x + (x || g) + (1 | h)")
@example("y ~ 1 + (1 | g/h)")
def test_lmer_builds_a_model_or_raises_a_sparsemixed_error(text):
    before = SMALL.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model = sm.lmer(text, SMALL)
        except SparseMixedError as exc:
            assert str(exc)
        else:
            assert model.nobs <= len(SMALL) and np.isfinite(model.objective(model.theta0))
    pd.testing.assert_frame_equal(SMALL, before)


@pytest.mark.parametrize("text", REGRESSIONS)
def test_regressions(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            sm.lmer(text, SMALL)
        except SparseMixedError:
            pass


def test_r_power_inside_calls_is_a_power_not_xor():
    """R's ``^`` inside I() or a call is a power (Python's ``^`` is xor: an integer column
    would be fitted as x xor 2 without a word); between terms it stays the interaction power."""
    rng = np.random.default_rng(3)
    n = 240
    df = pd.DataFrame({"day": rng.integers(0, 9, n), "a": rng.normal(size=n), "b": rng.normal(size=n),
                       "g": [f"g{v}" for v in rng.integers(0, 12, n)]})
    df["y"] = 0.3 * df.day ** 2 + df.a * df.b + rng.normal(0, 1, 12)[rng.integers(0, 12, n)] + rng.normal(size=n)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.SparseMixedWarning)
        r = sm.lmer("y ~ day + I(day^2) + (a + b)^2 + (1 + I(day^2) | g)", df, REML=False).fit()
        df2 = df.assign(day2=df.day.astype(float) ** 2, ab=df.a * df.b)
        ref = sm.lmer("y ~ day + day2 + a + b + ab + (1 + day2 | g)", df2, REML=False).fit()
    assert list(r.fixef.index) == ["(Intercept)", "day", "I(day^2)", "a", "b", "a:b"]
    np.testing.assert_allclose(r.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-6, atol=1e-8)
    assert r.objective == pytest.approx(ref.objective, rel=1e-10)


@given(st.text(alphabet="abxy()+^ ,'`*", max_size=30))
def test_r_power_changes_only_carets_inside_calls(text):
    from sparsemixed.formula.bars import r_power

    out = r_power(text)
    assert out.replace("**", "^") == text.replace("**", "^") or "**" in text
    if "^" not in text:
        assert out == text
