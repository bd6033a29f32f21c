"""Formulas as lme4 users write them (sparsemixed/formula: names.py, design.py, bars.py).

Against lme4 (tests/reference/make_formula_reference.R -> lme4_formula.json, data included):
``scale(x)``, ``scale(x, scale = FALSE)`` / ``center(x)``, ``poly(x, 2)``, ``log(x + 1)``,
``I(x^2)`` in the fixed part and in random terms; the states (means, sds, polynomial
bases) learned from every row of the data, before rows with missing values are dropped
(R's model frame); ``offset(log(t))`` alone and added to ``offset=``; columns named like
functions (``Treatment`` in CO2 and PBG, ``log``, ``exp``, ``C``, ``I``, ``Q``, ``center``,
``scale``, ``poly``); dotted names (mlmRev's ``IQ.verb``); backticks and ``Q("...")``,
also for the grouping factor; text levels "K", "1", "2", "3" as a factor.  Per case and
spelling: lme4's fixed-effect names, our criterion at lme4's theta equals lme4's (the
same X, Z, y and offset), our fit is not above it, the fixed effects and predictions on
new data (which replay the training states) agree.

Hypothesis: a fit does not depend on the names of the columns (random names with dots,
spaces, built-in names, keywords); scale/center/poly/log are the columns computed by
hand (ddof 1, R's orthogonal polynomials) on unbalanced data with missing values, and
predict(newdata) on any subset of rows equals the fitted values (training state, not
newdata's).
"""
import json
import keyword
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsemixed as sm
from sparsemixed.errors import DataError, FormulaError
from sparsemixed.formula.bars import parse_formula
from sparsemixed.formula.names import Names, required

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "lme4_formula.json").read_text())
CASES = [(name, i) for name, r in REF.items() if not name.startswith("_") for i in range(len(r["py_formulas"]))]


def frame(spec) -> pd.DataFrame:
    if isinstance(spec, str):
        return sm.datasets.load(spec)
    cols = {}
    for name in spec["names"]:
        vals = spec["columns"][name]
        if name in spec["factors"]:
            cols[name] = pd.Categorical(vals, categories=spec["factors"][name])
        elif any(isinstance(v, str) for v in vals):
            cols[name] = pd.Series(vals, dtype=object)
        else:
            cols[name] = np.array([np.nan if v is None else v for v in vals], dtype=float)
    return pd.DataFrame(cols)


_FITS: dict = {}


def fitted_case(name: str, i: int):
    if (name, i) not in _FITS:
        r = REF[name]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model = sm.lmer(r["py_formulas"][i], frame(r["data"]), REML=r["reml"], offset=r.get("offset_arg"))
            _FITS[name, i] = model.fit()
    return _FITS[name, i]


@pytest.mark.parametrize("name,i", CASES, ids=[f"{n}-{i}" for n, i in CASES])
def test_against_lme4(name, i):
    r = REF[name]
    res = fitted_case(name, i)
    if i == 0:                                  # R's own spelling: R's names
        assert list(res.fixef.index) == r["fixef_names"]
    else:
        assert len(res.fixef) == len(r["fixef_names"])
    # the same model: the criterion at lme4's theta is lme4's
    at_lme4 = res.model.objective(np.asarray(r["theta"]))
    assert at_lme4 == pytest.approx(r["criterion"], rel=1e-8)
    assert res.objective <= r["criterion"] * (1 + 1e-7)
    scale = max(1.0, float(np.max(np.abs(r["fixef"]))))
    np.testing.assert_allclose(res.fixef.to_numpy(), r["fixef"], rtol=2e-4, atol=2e-4 * scale)
    assert res.sigma == pytest.approx(r["sigma"], rel=2e-4)
    if "newdata" in r:
        nd = frame(r["newdata"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pred = res.predict(nd)
            pred_na = res.predict(nd, re_form="NA")
        ref_pred = r.get("pred_plus_o", r["pred"])
        if "pred_plus_o" in r:
            ref_na = np.asarray(r["pred_re_na"]) + nd[r["offset_arg"]].to_numpy()
        else:
            ref_na = r["pred_re_na"]
        ysd = float(np.std(r["fixef"])) + 1.0
        np.testing.assert_allclose(pred.to_numpy(), ref_pred, rtol=2e-4, atol=2e-4 * ysd)
        np.testing.assert_allclose(pred_na.to_numpy(), ref_na, rtol=2e-4, atol=2e-4 * ysd)
    if "fitted" in r:
        np.testing.assert_allclose(res.fitted().to_numpy(), r["fitted"], rtol=2e-4)


def test_scale_state_is_r_mean_and_sd():
    r = REF["scale"]
    res = fitted_case("scale", 0)
    state = res.model.fixed_spec.transform_state["scale(Days)"]
    assert state["center"] == pytest.approx(r["center"], rel=1e-12)
    assert state["scale"] == pytest.approx(r["scale"], rel=1e-12)         # sd with n - 1, as R's


def test_poly_basis_is_r_poly():
    res = fitted_case("poly", 0)
    X, _ = res.model_matrices()
    np.testing.assert_allclose(X[:10, 1:], np.asarray(REF["poly"]["basis"]), rtol=1e-10, atol=1e-12)


def test_predict_uses_training_states_not_newdata():
    res = fitted_case("scale", 0)
    d = sm.datasets.load("sleepstudy")
    one = d[d.Days == 9]                        # newdata's own mean and sd would map Days to 0/NaN
    pred = res.predict(one)
    np.testing.assert_allclose(pred.to_numpy(), res.fitted().to_numpy()[d.Days.to_numpy() == 9], rtol=1e-10)


def test_scale_in_random_term_replayed():
    res = fitted_case("scale", 0)
    t = res.model.terms[0]
    assert t.columns == ["(Intercept)", "scale(Days)"]
    d = sm.datasets.load("sleepstudy").iloc[[5]]
    v = t.values_for(d)
    assert v[0, 1] == pytest.approx((5 - REF["scale"]["center"]) / REF["scale"]["scale"], rel=1e-12)


# -- offsets ---------------------------------------------------------------------------------------

def test_offset_in_formula_equals_offset_argument():
    d = sm.datasets.load("sleepstudy").assign(t=lambda f: 1 + f.Days / 10)
    d["lt"] = np.log(d.t)
    a = quiet(sm.lmer("Reaction ~ Days + offset(log(t)) + (Days | Subject)", d).fit)
    b = quiet(sm.lmer("Reaction ~ Days + (Days | Subject)", d, offset="lt").fit)
    c = quiet(sm.lmer("Reaction ~ Days + offset(0.5 * log(t)) + offset(log(t) / 2) + (Days | Subject)", d).fit)
    assert a.objective == pytest.approx(b.objective, rel=1e-10) == pytest.approx(c.objective, rel=1e-10)
    nd = d.iloc[[0, 15, 99]].assign(t=[1.0, 5.0, 0.5])
    np.testing.assert_allclose(a.predict(nd), b.predict(nd.assign(lt=np.log(nd.t))), rtol=1e-9)


def test_offset_with_missing_values_drops_the_row():
    d = sm.datasets.load("sleepstudy").assign(t=lambda f: 1 + f.Days / 10)
    d.loc[[3, 7], "t"] = np.nan
    with pytest.warns(sm.MissingDataWarning, match="2 of 180 rows"):
        m = sm.lmer("Reaction ~ Days + offset(log(t)) + (1 | Subject)", d)
    assert m.nobs == 178
    res = quiet(m.fit)
    assert np.isnan(res.predict(d.iloc[[3]])).all()


def test_offset_syntax_errors():
    d = sm.datasets.load("sleepstudy")
    with pytest.raises(FormulaError, match="offset"):
        sm.lmer("Reaction ~ offset(Days) * Days + (1 | Subject)", d)
    with pytest.raises(FormulaError, match="offset"):
        sm.lmer("Reaction ~ Days - offset(Days) + (1 | Subject)", d)
    with pytest.raises(DataError, match="not found|Dayz"):
        sm.lmer("Reaction ~ Days + offset(log(Dayz)) + (1 | Subject)", d)
    assert parse_formula("y ~ offset(t) - 1 + x + (1 | g)").offsets == ("t",)


def test_glmer_offset_in_formula_and_argument():
    rng = np.random.default_rng(3)
    n = 240
    d = pd.DataFrame({"g": np.repeat(np.arange(24), 10).astype(str), "x.a": rng.normal(2, 1, n),
                      "t": rng.uniform(1, 4, n), "o": rng.normal(0, 0.1, n)})
    d["y"] = rng.poisson(np.exp(0.2 + 0.3 * d["x.a"] + np.log(d.t) + d.o + np.repeat(rng.normal(0, .4, 24), 10)))
    a = quiet(sm.glmer("y ~ scale(x.a) + offset(log(t)) + (1 | g)", d, family="poisson", offset="o").fit)
    b = quiet(sm.glmer("y ~ scale(x.a) + (1 | g)", d.assign(lt=np.log(d.t) + d.o), family="poisson",
                       offset="lt").fit)
    assert list(a.fixef.index) == ["(Intercept)", "scale(x.a)"]
    np.testing.assert_allclose(a.fixef, b.fixef, rtol=1e-8)


def test_streamed_build_refuses_offset_in_formula():
    d = sm.datasets.load("sleepstudy")
    with pytest.raises(FormulaError, match="offset=.column"):
        sm.lmer("Reaction ~ Days + offset(Days) + (1 | Subject)", [d.iloc[:90], d.iloc[90:]])


def test_streamed_build_reads_dotted_and_backticked_names():
    d = sm.datasets.load("sleepstudy")
    a = quiet(sm.lmer("Reaction ~ log(Days + 1) + (Days | Subject)", d).fit)
    d2 = d.rename(columns={"Days": "Days.c", "Subject": "my subj"})
    b = quiet(sm.lmer("Reaction ~ log(Days.c + 1) + (Days.c | `my subj`)", [d2.iloc[:90], d2.iloc[90:]]).fit)
    assert list(b.fixef.index) == ["(Intercept)", "log(Days.c + 1)"]
    assert b.objective == pytest.approx(a.objective, rel=1e-9)
    np.testing.assert_allclose(b.predict(d2.iloc[:5]), a.predict(d.iloc[:5]), rtol=1e-8)
    # a column named like a formulaic built-in
    s2 = sm.datasets.load("sleepstudy2").rename(columns={"phase": "Treatment"})
    c = quiet(sm.lmer("Reaction ~ Days + Treatment + (1 | Subject)", [s2.iloc[:90], s2.iloc[90:]]).fit)
    e = quiet(sm.lmer("Reaction ~ Days + Treatment + (1 | Subject)", s2).fit)
    assert list(c.fixef.index) == ["(Intercept)", "Days", "Treatmentlate"]
    np.testing.assert_allclose(c.fixef.to_numpy(), e.fixef.to_numpy(), rtol=1e-8)


# -- names ------------------------------------------------------------------------------------------

def test_names_read_as_r_reads_them():
    cols = ["y", "log", "x", "C", "f", "IQ.verb", "IQ", "my col", "Treatment", "x.y"]
    text = "y ~ log + log(x) + C + C(f) + IQ.verb + `my col` + Q('my col') + Treatment + x.fillna(0) + scale(x, scale = FALSE)"
    assert required(text, cols) == {"y", "log", "x", "C", "f", "IQ.verb", "my col", "Treatment"}
    n = Names.build([text], cols)
    out = n.text(text)
    assert "log(x)" in out and "C(f)" in out and "scale=False" not in out and "scale = False" in out
    assert dict(n.aliases).keys() == {"log", "C", "IQ.verb", "my col", "Treatment"}
    # a dotted name that is not a column, whose root is: Python's attribute access
    assert required("y ~ x.fillna(0) + IQ.mean()", cols) == {"y", "x", "IQ"}
    # unknown names are reported (as missing columns) with their whole dotted name
    assert required("y ~ IQ.nope", cols) == {"y", "IQ"}
    assert required("y ~ nope.x + np.log(x)", cols) == {"y", "nope.x", "x"}


def test_builtin_named_column_used_and_called():
    rng = np.random.default_rng(0)
    d = pd.DataFrame({"g": np.repeat(list("abcdefgh"), 8), "x": rng.uniform(1, 2, 64), "y": rng.normal(size=64)})
    d["log"] = rng.normal(size=64)
    d["exp"] = rng.normal(size=64)
    res = quiet(sm.lmer("y ~ log + log(x) + exp + exp(x) + (1 | g)", d).fit)
    assert list(res.fixef.index) == ["(Intercept)", "log", "log(x)", "exp", "exp(x)"]
    ref = quiet(sm.lmer("y ~ a + lx + b + ex + (1 | g)",
                        d.assign(a=d["log"], lx=np.log(d.x), b=d["exp"], ex=np.exp(d.x))).fit)
    np.testing.assert_allclose(res.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-9)


def test_r_functions_and_r_names():
    d = sm.datasets.load("sleepstudy")
    res = quiet(sm.lmer("Reaction ~ sqrt(Days) + ceiling(Days/3) + (sqrt(Days) | Subject)", d).fit)
    assert list(res.fixef.index) == ["(Intercept)", "sqrt(Days)", "ceiling(Days/3)"]     # R's deparse
    ref = quiet(sm.lmer("Reaction ~ a + b + (a | Subject)", d.assign(a=np.sqrt(d.Days), b=np.ceil(d.Days / 3))).fit)
    np.testing.assert_allclose(res.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-9)
    np.testing.assert_allclose(res.predict(d.iloc[:5]), ref.predict(d.iloc[:5].assign(
        a=np.sqrt(d.Days[:5]), b=np.ceil(d.Days[:5] / 3))), rtol=1e-9)


def test_grouping_factor_spellings():
    d = sm.datasets.load("sleepstudy").rename(columns={"Subject": "my subj"})
    a = quiet(sm.lmer("Reaction ~ Days + (Days | `my subj`)", d).fit)
    b = quiet(sm.lmer('Reaction ~ Days + (Days | Q("my subj"))', d).fit)
    c = quiet(sm.lmer("Reaction ~ Days + (Days | Q('my subj'))", d).fit)
    assert a.objective == b.objective == c.objective
    assert [t.group.name for t in b.model.terms] == ["my subj"]
    assert a.predict(d.iloc[:3]).to_numpy() == pytest.approx(b.predict(d.iloc[:3]).to_numpy())


def test_text_levels_mostly_numbers_are_a_factor():
    rng = np.random.default_rng(1)
    grade = rng.choice(["K", "1", "2", "3"], 120)
    d = pd.DataFrame({"s": np.repeat(np.arange(12), 10).astype(str), "grade": grade, "y": rng.normal(size=120)})
    for col in (d.grade.astype(object), d.grade.astype("string")):
        m = quiet(sm.lmer, "y ~ grade + (1 | s)", d.assign(grade=col))
        assert m.fixef_names == ["(Intercept)", "grade2", "grade3", "gradeK"]
    # stray entries in a numeric column are still refused (missing-value codes, decimals)
    for bad in (["n/a"], ["x", "3.5"]):
        vals = rng.integers(0, 9, 120).astype(str).astype(object)
        vals[: len(bad)] = bad
        with pytest.raises(DataError, match="mostly reads as numbers"):
            sm.lmer("y ~ v + (1 | s)", d.assign(v=vals))


def test_missing_value_rows_scale_learns_from_every_row():
    """R's model frame evaluates scale(x) before na.omit: the state is x's over every row."""
    r = REF["scale_na"]
    d = frame(r["data"])
    res = fitted_case("scale_na", 0)
    state = res.model.fixed_spec.transform_state["scale(Days)"]
    assert state["center"] == pytest.approx(np.nanmean(d.Days), rel=1e-12)
    assert state["scale"] == pytest.approx(np.nanstd(d.Days, ddof=1), rel=1e-12)
    assert res.model.terms[0].spec.transform_state["scale(Days)"]["center"] == state["center"]


# -- hypothesis --------------------------------------------------------------------------------------

def quiet(f, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return f(*args, **kw)


def _base_data(seed: int, n_groups: int, unbalanced: bool, na: bool) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sizes = rng.integers(3, 10, n_groups) if unbalanced else np.full(n_groups, 5)
    g = np.repeat([f"g{i}" for i in range(n_groups)], sizes)
    n = len(g)
    x = rng.normal(3, 2, n)
    z = rng.uniform(0.5, 4, n)
    f = rng.choice(["a", "b", "c"], n)
    y = 1 + 0.5 * x - np.log(z) + (f == "b") + rng.normal(0, 1, n_groups)[np.unique(g, return_inverse=True)[1]] \
        + rng.normal(0, 1, n)
    d = pd.DataFrame({"y": y, "x": x, "z": z, "f": f, "g": g})
    if na:
        idx = rng.choice(n, max(1, n // 15), replace=False)
        for k, i in enumerate(idx):
            d.loc[i, ["y", "x", "z", "g"][k % 4]] = np.nan if k % 4 < 3 else None
    return d


NAME_PIECES = st.sampled_from(["IQ", "verb", "Days", "c", "my", "col", "x", "1", "_", "é"])
BUILTINS = st.sampled_from(["C", "I", "Q", "log", "exp", "poly", "scale", "center", "Treatment", "Sum",
                            "np", "bs", "lambda", "class", "in", "sum", "T", "F"])
SEPS = st.sampled_from([".", " ", "-", "_", ".."])
col_name = st.one_of(
    BUILTINS,
    st.tuples(NAME_PIECES, SEPS, NAME_PIECES).map("".join),
    st.tuples(BUILTINS, st.just("."), NAME_PIECES).map("".join),
)


def spell(col: str, how: int) -> str:
    """A column as written in a formula: bare when R reads it so, else backticks or Q()."""
    import re

    bare_ok = re.match(r"^(?:[A-Za-z]|\.(?![0-9]))[\w.]*$", col) and not keyword.iskeyword(col)
    if bare_ok and how == 0:
        return col
    return f"`{col}`" if how < 2 else f'Q("{col}")'


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(names=st.lists(col_name, min_size=4, max_size=4, unique=True), how=st.integers(0, 2),
       seed=st.integers(0, 10_000), unbalanced=st.booleans())
def test_fit_does_not_depend_on_column_names(names, how, seed, unbalanced):
    d = _base_data(seed, 9, unbalanced, na=False)
    base = "y ~ scale(x) + log(z) + f + (1 + center(x) | g)"
    ref = quiet(sm.lmer(base, d).fit)
    ren = dict(zip(["x", "z", "f", "g"], names))
    d2 = d.rename(columns=ren)
    X, Z, F, G = (spell(ren[c], how) for c in ["x", "z", "f", "g"])
    res = quiet(sm.lmer(f"y ~ scale({X}) + log({Z}) + {F} + (1 + center({X}) | {G})", d2).fit)
    assert res.objective == pytest.approx(ref.objective, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(res.fixef.to_numpy(), ref.fixef.to_numpy(), rtol=1e-6, atol=1e-8)
    assert res.model.terms[0].group.name == ren["g"]
    nd = d2.sample(7, random_state=seed)
    np.testing.assert_allclose(res.predict(nd).to_numpy(), ref.predict(d.loc[nd.index]).to_numpy(), rtol=1e-7)


def _r_poly(x: np.ndarray, degree: int) -> np.ndarray:
    """R's poly(): Q of the QR of outer(x - mean, 0:degree, '^'), columns scaled to norm 1, the
    sign of the monic polynomials (Z = Q diag(diag(R)))."""
    xc = x - x.mean()
    V = np.vander(xc, degree + 1, increasing=True)
    Q, R = np.linalg.qr(V)
    Z = Q * np.diag(R)
    Z /= np.sqrt((Z ** 2).sum(axis=0))
    return Z[:, 1:]


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), n_groups=st.integers(5, 12), unbalanced=st.booleans(), na=st.booleans())
def test_transforms_are_the_hand_made_columns(seed, n_groups, unbalanced, na):
    d = _base_data(seed, n_groups, unbalanced, na)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = sm.lmer("y ~ scale(x) + poly(z, 2) + log(z) + I(x^2) + (1 + center(z) | g) + (0 + scale(z) | f)", d)
    design = m.design()
    rows = np.ones(len(d), bool) if design.kept is None else design.kept
    X = pd.DataFrame(design.X, columns=m.fixef_names)
    # R: the state over every row where the variable is present (before na.omit)
    zok = d.z.notna().to_numpy()
    P = np.full((len(d), 2), np.nan)
    P[zok] = _r_poly(d.z.to_numpy()[zok], 2)
    want = {"scale(x)": (d.x - np.nanmean(d.x)) / np.nanstd(d.x, ddof=1), "log(z)": np.log(d.z),
            "I(x^2)": d.x ** 2, "poly(z, 2)1": P[:, 0], "poly(z, 2)2": P[:, 1]}
    for name, vals in want.items():
        if name in X:                       # (a column aliased in a small sample is dropped)
            np.testing.assert_allclose(X[name], np.asarray(vals)[rows], rtol=1e-8, atol=1e-10)
    terms = {t.group.name: t for t in m.terms}
    np.testing.assert_allclose(terms["g"].values_for(d.loc[rows])[:, 1], (d.z - np.nanmean(d.z))[rows], rtol=1e-10)
    np.testing.assert_allclose(terms["f"].values_for(d.loc[rows])[:, 0],
                               ((d.z - np.nanmean(d.z)) / np.nanstd(d.z, ddof=1))[rows], rtol=1e-10)


@pytest.mark.expect_warnings((sm.MissingDataWarning,))
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), unbalanced=st.booleans(), na=st.booleans(), k=st.integers(1, 6))
def test_predict_on_a_subset_replays_training_states(seed, unbalanced, na, k):
    d = _base_data(seed, 8, unbalanced, na)
    res = quiet(sm.lmer("y ~ scale(x) + poly(z, 2) + offset(log(z)) + (1 + center(x) | g)", d).fit)
    fitted = res.fitted()
    sub = d.loc[fitted.index].sample(min(k, len(fitted)), random_state=seed)
    np.testing.assert_allclose(res.predict(sub).to_numpy(), fitted.loc[sub.index].to_numpy(), rtol=1e-9, atol=1e-9)
