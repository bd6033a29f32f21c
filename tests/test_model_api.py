"""The core's promises beyond the numbers: memory (nothing of length n kept), the user's
data untouched, missing values, dtypes, offsets, optimizers and starts, refit, pickling,
rank-deficient X, input errors, G and coef().
"""
from __future__ import annotations

import dataclasses
import json
import pathlib
import pickle
import re
import types
import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

import sparsemixed as sm

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "lme4_results.json").read_text())


# ---------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------

def unbalanced(seed: int = 0, ng: int = 9, nb: int = 4) -> pd.DataFrame:
    """Unbalanced data: group sizes 1..8, a crossed factor b, covariates x, k (integer)."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 9, ng)
    sizes[0], sizes[1] = 1, 2
    g = np.repeat(np.arange(ng), sizes)
    n = g.size
    b = rng.integers(0, nb, n)
    x = rng.normal(size=n)
    k = rng.integers(0, 5, n)
    y = (2.0 + 0.7 * x - 0.3 * k + rng.normal(0, 1.2, ng)[g] + rng.normal(0, 0.5, ng)[g] * x
         + rng.normal(0, 0.8, nb)[b] + rng.normal(size=n))
    df = pd.DataFrame({"g": [f"s{v}" for v in g], "b": [f"B{v}" for v in b], "x": x,
                       "k": k.astype(np.int64), "y": y})
    return df.iloc[rng.permutation(n)].reset_index(drop=True)


FORMULA = "y ~ x + k + (1 + x|g) + (1|b)"


def quiet_fit(model, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.ConvergenceWarning)
        return model.fit(**kw)


def assert_fits_equal(r1, r2, tol=1e-4):
    """Two fits of the same problem: the same optimum, up to the optimizer's precision
    (BOBYQA stops within ~1e-5 of a regular optimum)."""
    assert r1.objective == pytest.approx(r2.objective, rel=1e-9, abs=1e-9)
    np.testing.assert_allclose(r1.theta, r2.theta, atol=tol * max(1.0, float(np.abs(r1.theta).max())))
    assert r1.sigma == pytest.approx(r2.sigma, rel=tol)
    assert list(r1.fixef.index) == list(r2.fixef.index)
    np.testing.assert_allclose(r1.fixef.to_numpy(), r2.fixef.to_numpy(), rtol=tol,
                               atol=tol * max(1.0, float(np.abs(r1.fixef).max())))


def estimates_at(model, theta):
    """The result at a given interior theta, without optimising (one evaluation at the
    start), so that two models' profiled estimates can be compared exactly."""
    theta = np.asarray(theta, float)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.ConvergenceWarning)
        res = model.fit(start=theta, maxeval=1, optimizer="bobyqa")
    np.testing.assert_array_equal(res.theta, theta)
    return res


def assert_same_estimates_at(m1, m2, theta, rel=1e-9):
    e1, e2 = estimates_at(m1, theta), estimates_at(m2, theta)
    assert e2.objective == pytest.approx(e1.objective, rel=rel)
    assert e2.sigma == pytest.approx(e1.sigma, rel=rel)
    np.testing.assert_allclose(e2.fixef.to_numpy(), e1.fixef.to_numpy(), rtol=rel,
                               atol=rel * max(1.0, float(np.abs(e1.fixef).max())))
    np.testing.assert_allclose(e2.b, e1.b, rtol=rel, atol=rel * max(1.0, float(np.abs(e1.b).max())))
    return e1, e2


def probe_thetas(model):
    """A few thetas where two models of the same data must give the same criterion."""
    return [model.theta0, np.where(model.lower == 0, 0.4, 0.25), np.where(model.lower == 0, 2.1, -0.7),
            np.where(model.lower == 0, 0.0, 0.0)]


def assert_same_criterion(m1, m2, rel=1e-11):
    for th in probe_thetas(m1):
        assert m2.objective(th) == pytest.approx(m1.objective(th), rel=rel, abs=rel)


# ---------------------------------------------------------------------------------------
# the model holds nothing of length n
# ---------------------------------------------------------------------------------------

def _walk(obj, n, path, seen, hits, depth=0):
    if depth > 25 or id(obj) in seen:
        return
    if isinstance(obj, (str, bytes, int, float, complex, bool, type(None), type, types.ModuleType,
                        types.FunctionType, types.BuiltinFunctionType, types.MethodType, np.generic)):
        return
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        if n in obj.shape or obj.size == n:
            hits.append(f"{path}: ndarray shape {obj.shape}")
        if obj.dtype == object:
            for i, v in enumerate(obj.ravel()[:1000]):
                _walk(v, n, f"{path}[{i}]", seen, hits, depth + 1)
        return
    if sp.issparse(obj):
        if n in obj.shape:
            hits.append(f"{path}: sparse shape {obj.shape}")
        for attr in ("data", "indices", "indptr", "row", "col", "offsets"):
            arr = getattr(obj, attr, None)
            if isinstance(arr, np.ndarray):
                _walk(arr, n, f"{path}.{attr}", seen, hits, depth + 1)
        return
    if isinstance(obj, (pd.Series, pd.Index, pd.DataFrame)):
        if len(obj) == n or (isinstance(obj, pd.DataFrame) and obj.shape[1] == n):
            hits.append(f"{path}: pandas object of length {len(obj)}")
        return
    if isinstance(obj, dict):
        if len(obj) == n:
            hits.append(f"{path}: dict of length {n}")
        for key, v in obj.items():
            _walk(v, n, f"{path}[{key!r}]", seen, hits, depth + 1)
        return
    if isinstance(obj, (list, tuple, set, frozenset)):
        if len(obj) == n:
            hits.append(f"{path}: {type(obj).__name__} of length {n}")
        for i, v in enumerate(list(obj)[:10_000]):
            _walk(v, n, f"{path}[{i}]", seen, hits, depth + 1)
        return
    if dataclasses.is_dataclass(obj):
        for f in dataclasses.fields(obj):
            _walk(getattr(obj, f.name, None), n, f"{path}.{f.name}", seen, hits, depth + 1)
    attrs = {}
    if hasattr(obj, "__dict__"):
        attrs.update(vars(obj))
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()) or ():
            if isinstance(slot, str) and hasattr(obj, slot):
                attrs[slot] = getattr(obj, slot)
    for key, v in attrs.items():
        _walk(v, n, f"{path}.{key}", seen, hits, depth + 1)


def find_length_n(model, n):
    hits: list[str] = []
    seen = {id(model.data)}                      # the user's own frame, not the model's
    for key, v in vars(model).items():
        if key == "data":
            continue
        _walk(v, n, f"model.{key}", seen, hits)
    return hits


def test_model_holds_nothing_of_length_n():
    rng = np.random.default_rng(1)
    n = 5003                                       # prime: no q, p, nnz or level count equals it
    a = rng.integers(0, 37, n)
    b = rng.integers(0, 11, n)
    x = rng.normal(size=n)
    y = 1 + x + rng.normal(0, 1, 37)[a] + rng.normal(0, 0.5, 11)[b] * x + rng.normal(size=n)
    df = pd.DataFrame({"a": pd.Categorical([f"a{v}" for v in a]), "b": b, "x": x, "y": y})
    model = sm.lmer("y ~ x + (1|a) + (1 + x|b)", df)
    assert model.nobs == n and model.q == 37 + 2 * 11
    hits = find_length_n(model, n)
    assert not hits, "the model keeps row-level data:\n" + "\n".join(hits)
    # the walk finds what it looks for (guard against a vacuous check)
    probe = types.SimpleNamespace(deep={"x": [np.zeros((3, n))]})
    assert find_length_n(types.SimpleNamespace(data=None, probe=probe), n)

    thetas = probe_thetas(model)
    before = [model.objective(th) for th in thetas]
    res = model.fit()
    assert not find_length_n(model, n), "fit() stored row-level data on the model"
    model.data = None
    after = [model.objective(th) for th in thetas]
    assert after == before                         # bit for bit: nothing depends on the data
    res2 = model.fit()
    np.testing.assert_array_equal(res2.theta, res.theta)
    assert res2.objective == res.objective


# ---------------------------------------------------------------------------------------
# the user's data are not modified
# ---------------------------------------------------------------------------------------

def test_user_dataframe_is_not_modified():
    df = unbalanced(3)
    df["g"] = pd.Categorical(df["g"], categories=sorted(df["g"].unique(), reverse=True) + ["unused"])
    df["b"] = df["b"].astype("string")
    df["k"] = df["k"].astype("Int64")
    df.loc[4, "k"] = pd.NA
    df.loc[7, "y"] = np.nan
    df["x32"] = df["x"].astype(np.float32)
    df["note"] = "keep me"
    df["when"] = pd.Timestamp("2024-01-01") + pd.to_timedelta(np.arange(len(df)), "D")
    df.index = pd.Index([f"r{i}" for i in range(len(df))], name="row")
    snapshot = df.copy(deep=True)
    dtypes = df.dtypes.copy()
    with pytest.warns(sm.MissingDataWarning):
        model = sm.lmer(FORMULA, df)
    res = quiet_fit(model)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.SparseMixedWarning)
        res.fitted(), res.residuals(), res.summary(), res.coef(), res.ranef, res.varcorr
        model.refit(df["y"].fillna(0.0).to_numpy() * 2)
    pd.testing.assert_frame_equal(df, snapshot, check_exact=True)
    pd.testing.assert_series_equal(df.dtypes, dtypes)
    assert list(df["g"].cat.categories) == list(snapshot["g"].cat.categories)
    assert df.index.equals(snapshot.index) and df.columns.equals(snapshot.columns)


# ---------------------------------------------------------------------------------------
# missing values
# ---------------------------------------------------------------------------------------

@pytest.mark.expect_warnings((sm.SingularFitWarning,))
def test_missing_values_are_dropped_with_a_warning():
    df = unbalanced(4)
    df = df.astype({"g": object})
    df.loc[[3, 10], "y"] = np.nan
    df.loc[[10, 15], "x"] = np.nan          # row 10 twice: 4 distinct rows
    df.loc[20, "g"] = None
    df.loc[25, "b"] = np.nan
    bad = {3, 10, 15, 20, 25}
    with pytest.warns(sm.MissingDataWarning) as rec:
        model = sm.lmer(FORMULA, df)
    msgs = [str(w.message) for w in rec if issubclass(w.category, sm.MissingDataWarning)]
    assert len(msgs) == 1
    assert re.search(rf"(?<![\d.]){len(bad)}(?![\d.])", msgs[0]), msgs[0]
    assert model.nobs == len(df) - len(bad)
    clean = df.drop(index=sorted(bad)).reset_index(drop=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.MissingDataWarning)
        ref = sm.lmer(FORMULA, clean)
    assert_same_criterion(ref, model)
    assert_fits_equal(quiet_fit(ref), quiet_fit(model))


def test_missing_values_with_na_action_fail():
    df = unbalanced(5)
    df.loc[2, "x"] = np.nan
    with pytest.raises(sm.DataError, match=r"missing"):
        sm.lmer(FORMULA, df, na_action="fail")
    with pytest.raises(sm.SparseMixedError):
        sm.lmer(FORMULA, df, na_action="drop-them-please")


def test_missing_values_in_an_unused_column_drop_nothing():
    df = unbalanced(6)
    df["unused"] = np.where(np.arange(len(df)) % 3 == 0, np.nan, 1.0)
    df["unused_str"] = pd.Series([None] * len(df), dtype=object)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.MissingDataWarning)
        model = sm.lmer(FORMULA, df)
        model_fail = sm.lmer(FORMULA, df, na_action="fail")
    assert model.nobs == len(df) == model_fail.nobs
    assert model.n_dropped == 0


def test_pandas_nullable_missing_values_are_dropped():
    df = unbalanced(7)
    nul = df.astype({"k": "Int64", "x": "Float64", "g": "string"})
    nul.loc[1, "k"] = pd.NA
    nul.loc[5, "x"] = pd.NA
    nul.loc[9, "g"] = pd.NA
    with pytest.warns(sm.MissingDataWarning, match=r"(?<![\d.])3(?![\d.])"):
        model = sm.lmer(FORMULA, nul)
    ref = sm.lmer(FORMULA, df.drop(index=[1, 5, 9]))
    assert model.nobs == len(df) - 3
    assert_same_criterion(ref, model)


# ---------------------------------------------------------------------------------------
# dtypes
# ---------------------------------------------------------------------------------------

def _dtype_variants(df):
    cats = sorted(df["g"].unique())
    yield "categorical", df.assign(g=pd.Categorical(df["g"], categories=cats[::-1] + ["never_seen"]),
                                   b=df["b"].astype("category"))
    yield "string", df.assign(g=df["g"].astype("string"), b=df["b"].astype("string"))
    yield "nullable numeric", df.assign(x=df["x"].astype("Float64"), k=df["k"].astype("Int64"),
                                        y=df["y"].astype("Float64"))
    yield "integer groups", df.assign(g=df["g"].str[1:].astype(np.int64) * 7 + 3,
                                      b=df["b"].str[1:].astype(np.int32))
    yield "float groups", df.assign(g=df["g"].str[1:].astype(float) + 0.5)
    yield "all at once", df.assign(g=pd.Categorical(df["g"]), b=df["b"].astype("string"),
                                   x=df["x"].astype("Float64"), k=df["k"].astype("Int64"))


@pytest.mark.parametrize("variant", [v for v, _ in _dtype_variants(unbalanced(8))])
def test_dtypes_give_the_same_fit(variant):
    df = unbalanced(8)
    other = dict(_dtype_variants(df))[variant]
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.MissingDataWarning)
        m1, m2 = sm.lmer(FORMULA, df), sm.lmer(FORMULA, other)
    assert m2.nobs == m1.nobs
    assert m2.fixef_names == m1.fixef_names == ["(Intercept)", "x", "k"]
    assert sorted(t.nlevels for t in m2.terms) == sorted(t.nlevels for t in m1.terms)
    assert_same_criterion(m1, m2)
    assert_fits_equal(quiet_fit(m1), quiet_fit(m2))


# ---------------------------------------------------------------------------------------
# offset
# ---------------------------------------------------------------------------------------

@pytest.mark.expect_warnings((sm.SingularFitWarning,))
@pytest.mark.parametrize("how", ["column", "array", "series"])
@pytest.mark.parametrize("reml", [True, False])
def test_offset_equals_fitting_the_shifted_response(how, reml):
    df = unbalanced(9)
    rng = np.random.default_rng(9)
    df["o"] = rng.normal(0, 3, len(df)) + 0.8 * df["x"]      # partly collinear with x
    shifted = df.assign(y=df["y"] - df["o"])
    off = {"column": "o", "array": df["o"].to_numpy(), "series": df["o"]}[how]
    m_off = sm.lmer(FORMULA, df, REML=reml, offset=off)
    m_ref = sm.lmer(FORMULA, shifted, REML=reml)
    assert_same_criterion(m_ref, m_off)
    r_off, r_ref = quiet_fit(m_off), quiet_fit(m_ref)
    assert_fits_equal(r_ref, r_off)
    # at a fixed theta: the same estimates; fitted values include the offset, residuals
    # are those of the shifted fit
    e_ref, e_off = assert_same_estimates_at(m_ref, m_off, np.where(m_ref.lower == 0, 0.6, 0.1))
    np.testing.assert_allclose(e_off.fitted(), e_ref.fitted() + df["o"].to_numpy(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(e_off.residuals(), e_ref.residuals(), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(e_off.residuals(), df["y"].to_numpy() - e_off.fitted(), atol=1e-12)


def test_offset_with_missing_rows():
    df = unbalanced(10)
    df["o"] = np.linspace(-2, 2, len(df))
    df.loc[3, "x"] = np.nan
    with pytest.warns(sm.MissingDataWarning):
        m_off = sm.lmer(FORMULA, df, offset="o")
    clean = df.drop(index=[3])
    m_ref = sm.lmer(FORMULA, clean.assign(y=clean["y"] - clean["o"]))
    assert_same_criterion(m_ref, m_off)


# ---------------------------------------------------------------------------------------
# optimizers and starting values (sleepstudy, against lme4)
# ---------------------------------------------------------------------------------------

SLEEP = REF["sleepstudy_reml"]


@pytest.fixture(scope="module")
def sleep_model():
    return sm.lmer("Reaction ~ Days + (Days|Subject)", sm.datasets.load("sleepstudy"))


@pytest.mark.parametrize("optimizer", ["bobyqa", "newuoa", "nelder_mead", "lbfgsb"])
@pytest.mark.parametrize("start", [None, [2.0, 0.5, 0.5], [0.5, 0.1, 0.5], [0.1, 0.0, 0.1]],
                         ids=["default", "far", "near", "small"])
def test_optimizers_and_starts_reach_the_same_optimum(sleep_model, optimizer, start):
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.ConvergenceWarning)
        res = sleep_model.fit(optimizer=optimizer, start=start)
    crit = SLEEP["reml_criterion"]
    assert res.objective <= crit + 1e-7 * crit
    assert res.objective == pytest.approx(crit, rel=1e-7)
    theta = np.array(SLEEP["theta"])
    np.testing.assert_allclose(res.theta, theta, rtol=2e-3, atol=2e-4)
    assert res.sigma == pytest.approx(SLEEP["sigma"], rel=1e-4)
    np.testing.assert_allclose(res.fixef.to_numpy(), list(SLEEP["fixef"].values()), rtol=1e-5)
    assert res.optsummary.method == optimizer
    assert res.converged


def test_start_is_validated(sleep_model):
    with pytest.raises(sm.SparseMixedError, match="3"):
        sleep_model.fit(start=[1.0, 0.0])
    with pytest.raises(sm.SparseMixedError):
        sleep_model.fit(start=[1.0, np.nan, 1.0])
    with pytest.raises(sm.SparseMixedError, match="bobyqa"):
        sleep_model.fit(optimizer="no_such_optimizer")


# ---------------------------------------------------------------------------------------
# refit
# ---------------------------------------------------------------------------------------

@pytest.mark.expect_warnings((sm.SingularFitWarning,))
@pytest.mark.parametrize("reml", [True, False])
def test_refit_equals_a_fresh_fit(reml):
    df = unbalanced(11)
    model = sm.lmer(FORMULA, df, REML=reml)
    quiet_fit(model)
    rng = np.random.default_rng(12)
    new_y = df["y"].to_numpy() * 0.5 + rng.normal(0, 2, len(df)) + 3 * df["x"].to_numpy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.ConvergenceWarning)
        r_new = model.refit(new_y)
    fresh_model = sm.lmer(FORMULA, df.assign(y=new_y), REML=reml)
    fresh = quiet_fit(fresh_model)
    assert_fits_equal(fresh, r_new)
    np.testing.assert_allclose(r_new.fitted(), fresh.fitted(), atol=1e-5 * np.abs(new_y).max())
    # the model it came from is unchanged
    assert_same_criterion(sm.lmer(FORMULA, df, REML=reml), model)


@pytest.mark.expect_warnings((sm.SingularFitWarning,))
def test_refit_with_dropped_rows_and_offset():
    df = unbalanced(13)
    df["o"] = np.sin(np.arange(len(df)))
    df.loc[[2, 6], "x"] = np.nan
    with pytest.warns(sm.MissingDataWarning):
        model = sm.lmer(FORMULA, df, offset="o")
    rng = np.random.default_rng(14)
    new_y = rng.normal(5, 2, len(df)) + df["g"].map(lambda s: int(s[1:])).to_numpy()
    with pytest.warns(sm.MissingDataWarning):
        fresh = quiet_fit(sm.lmer(FORMULA, df.assign(y=new_y), offset="o"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.MissingDataWarning)
        full = model.refit(new_y)                                   # one value per data row
        kept = model.refit(new_y[df["x"].notna().to_numpy()])       # one value per used row
    assert_fits_equal(fresh, full)
    assert_fits_equal(fresh, kept)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.MissingDataWarning)
        with pytest.raises(sm.DataError):
            model.refit(new_y[:10])


# ---------------------------------------------------------------------------------------
# pickling
# ---------------------------------------------------------------------------------------

def test_pickle_model_and_result():
    df = unbalanced(15)
    model = sm.lmer(FORMULA, df)
    res = quiet_fit(model)
    thetas = probe_thetas(model) + [res.theta]
    before = [model.objective(th) for th in thetas]
    m2 = pickle.loads(pickle.dumps(model))
    assert [m2.objective(th) for th in thetas] == pytest.approx(before, rel=1e-13)
    # and the unpickled model still fits, to the same optimum
    assert_fits_equal(res, quiet_fit(m2))
    r2 = pickle.loads(pickle.dumps(res))
    pd.testing.assert_series_equal(r2.fixef, res.fixef)
    np.testing.assert_array_equal(r2.theta, res.theta)
    assert r2.sigma == res.sigma and r2.objective == res.objective
    pd.testing.assert_frame_equal(r2.vcov, res.vcov)
    pd.testing.assert_frame_equal(r2.varcorr, res.varcorr)
    # a model released from its data pickles too
    model.data = None
    m3 = pickle.loads(pickle.dumps(model))
    assert [m3.objective(th) for th in thetas] == pytest.approx(before, rel=1e-13)


# ---------------------------------------------------------------------------------------
# rank-deficient X
# ---------------------------------------------------------------------------------------

def test_rank_deficient_fixed_effects_are_dropped():
    df = unbalanced(16)
    df["x2"] = 2.0 * df["x"]
    with pytest.warns(sm.RankDeficiencyWarning, match=r"\bx2\b") as rec:
        model = sm.lmer("y ~ x + x2 + k + (1 + x|g) + (1|b)", df)
    msg = " ".join(str(w.message) for w in rec if issubclass(w.category, sm.RankDeficiencyWarning))
    assert not re.search(r"'?\bk\b'?", msg.replace("x2", "")), msg     # only x2 is named
    ref = sm.lmer(FORMULA, df)
    assert model.fixef_names == ["(Intercept)", "x", "k"]
    assert_same_criterion(ref, model)
    r, r_ref = quiet_fit(model), quiet_fit(ref)
    assert_fits_equal(r_ref, r)
    assert "x2" not in r.fixef.index


def test_rank_deficient_intercept_alias_and_linear_combination():
    df = unbalanced(17)
    df["one"] = 1.0
    df["combo"] = df["x"] - 3.0 * df["k"] + 2.0
    with pytest.warns(sm.RankDeficiencyWarning) as rec:
        model = sm.lmer("y ~ x + k + one + combo + (1 + x|g) + (1|b)", df)
    msg = " ".join(str(w.message) for w in rec if issubclass(w.category, sm.RankDeficiencyWarning))
    assert "one" in msg and "combo" in msg
    assert model.fixef_names == ["(Intercept)", "x", "k"]
    assert_same_criterion(sm.lmer(FORMULA, df), model)


# ---------------------------------------------------------------------------------------
# bad inputs
# ---------------------------------------------------------------------------------------

def _raises(err, formula, data, match=None, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.SparseMixedWarning)
        with pytest.raises(err, match=match) as info:
            sm.lmer(formula, data, **kw)
    assert isinstance(info.value, sm.SparseMixedError)
    assert len(str(info.value)) > 20            # a sentence, not a bare key
    return info.value


def test_unknown_columns_are_named():
    df = unbalanced(18)
    _raises(sm.DataError, "y ~ xx + (1|g)", df, match="xx")
    _raises(sm.DataError, "y ~ x + (1|gg)", df, match="gg")
    _raises(sm.DataError, "yy ~ x + (1|g)", df, match="yy")
    _raises(sm.DataError, "y ~ x + (zz|g)", df, match="zz")
    _raises(sm.DataError, FORMULA, df, match="ww", weights="ww")


@pytest.mark.parametrize("formula", ["y ~ x + (1|g", "y ~ x | g", "y ~ (|g)", "y ~ x + (1|)",
                                     "y ~ x + (1|g))", "y x (1|g)", "y ~ x + + (1|g)"])
def test_formula_typos(formula):
    _raises(sm.FormulaError, formula, unbalanced(19))


def test_grouping_factor_levels():
    df = unbalanced(20)
    _raises(sm.DataError, "y ~ x + (1|one)", df.assign(one="only"), match="one")
    _raises(sm.DataError, "y ~ x + (1|row)", df.assign(row=np.arange(len(df))), match="row")


@pytest.mark.parametrize("kind", ["string", "bool", "categorical", "object_mixed"])
def test_non_numeric_response(kind):
    df = unbalanced(21)
    y = {"string": df["y"].round(2).astype(str), "bool": df["y"] > 0,
         "categorical": pd.Categorical(np.where(df["y"] > 0, "hi", "lo")),
         "object_mixed": pd.Series(["a"] + list(df["y"].iloc[1:]), dtype=object)}[kind]
    _raises(sm.DataError, FORMULA, df.assign(y=y), match=r"\by\b")


@pytest.mark.parametrize("column", ["y", "x"])
@pytest.mark.parametrize("value", [np.inf, -np.inf])
def test_infinite_values(column, value):
    df = unbalanced(22)
    df.loc[5, column] = value
    _raises(sm.DataError, FORMULA, df, match=column)


def test_empty_and_malformed_frames():
    df = unbalanced(23)
    _raises(sm.DataError, FORMULA, df.iloc[:0])
    _raises(sm.DataError, FORMULA, pd.DataFrame())
    dup = pd.concat([df, df[["x"]]], axis=1)
    _raises(sm.DataError, FORMULA, dup, match="x")
    _raises(sm.DataError, FORMULA, df.assign(x=np.nan))       # nothing left after NA removal
    _raises(sm.SparseMixedError, FORMULA, [1, 2, 3])


def test_no_random_effects():
    err = _raises(sm.SparseMixedError, "y ~ x + k", unbalanced(24))
    assert "random" in str(err).lower()


def test_bad_weights_and_offsets():
    df = unbalanced(25)
    _raises(sm.DataError, FORMULA, df, weights=np.where(np.arange(len(df)) == 3, -1.0, 1.0))
    _raises(sm.DataError, FORMULA, df, offset=np.where(np.arange(len(df)) == 3, np.inf, 0.0))
    _raises(sm.DataError, FORMULA, df, weights=np.array(["a"] * len(df)), match="weights")


@pytest.mark.parametrize("arg", ["weights", "offset"])
def test_weights_or_offset_of_the_wrong_length(arg):
    df = unbalanced(25)
    _raises(sm.DataError, FORMULA, df, match=arg, **{arg: np.ones(len(df) - 1)})


def test_objective_rejects_bad_theta():
    model = sm.lmer(FORMULA, unbalanced(26))
    with pytest.raises(sm.SparseMixedError):
        model.objective(np.ones(model.theta0.size + 1))
    with pytest.raises(sm.SparseMixedError):
        model.objective(np.full(model.theta0.size, np.nan))


# ---------------------------------------------------------------------------------------
# G and coef()
# ---------------------------------------------------------------------------------------

def _own_lambda(theta, terms) -> np.ndarray:
    """Block diagonal I_L (x) T_k, T_k from the column-wise lower triangle."""
    blocks, off = [], 0
    for t in terms:
        T = np.zeros((t.k, t.k))
        pos = 0
        for j in range(t.k):
            for i in range(j, t.k):
                T[i, j] = theta[off + pos]
                pos += 1
        off += pos
        blocks.append(np.kron(np.eye(t.nlevels), T))
    q = sum(b.shape[0] for b in blocks)
    out, o = np.zeros((q, q)), 0
    for b in blocks:
        out[o: o + b.shape[0], o: o + b.shape[0]] = b
        o += b.shape[0]
    return out


@pytest.mark.parametrize("formula", [FORMULA, "y ~ x + (x||g) + (1|b)"])
def test_G_is_sigma2_Lambda_Lambda_t(formula):
    res = quiet_fit(sm.lmer(formula, unbalanced(27)))
    G = res.G
    q = res.model.q
    assert sp.issparse(G) and G.shape == (q, q)
    Lam = _own_lambda(res.theta, res.model.terms)
    np.testing.assert_allclose(G.toarray(), res.sigma ** 2 * Lam @ Lam.T, rtol=1e-12, atol=1e-12)
    # and Lambda(theta) itself is that block diagonal
    np.testing.assert_allclose(res.model.Lambda(res.theta).toarray(), Lam, atol=0)
    # sparse: no more stored entries than the blocks
    assert G.nnz <= sum(t.nlevels * t.k * t.k for t in res.model.terms)


def test_G_and_coef_on_sleepstudy_against_lme4():
    df = sm.datasets.load("sleepstudy")
    res = sm.lmer("Reaction ~ Days + (Days|Subject)", df).fit()
    vc = {(r["var1"], r["var2"]): r["vcov"] for r in SLEEP["varcorr"] if r["grp"] == "Subject"}
    S = np.array([[vc[("(Intercept)", None)], vc[("(Intercept)", "Days")]],
                  [vc[("(Intercept)", "Days")], vc[("Days", None)]]])
    G = res.G.toarray()
    assert G.shape == (36, 36)
    for j in range(18):
        np.testing.assert_allclose(G[2 * j: 2 * j + 2, 2 * j: 2 * j + 2], S, rtol=2e-3, atol=0.02)
    off_block = G.copy()
    for j in range(18):
        off_block[2 * j: 2 * j + 2, 2 * j: 2 * j + 2] = 0
    assert not off_block.any()

    coef = res.coef()["Subject"]
    fe = res.fixef
    re = res.ranef["Subject"]
    assert list(coef.columns) == ["(Intercept)", "Days"]
    np.testing.assert_allclose(coef["(Intercept)"], fe["(Intercept)"] + re["(Intercept)"], rtol=1e-14)
    np.testing.assert_allclose(coef["Days"], fe["Days"] + re["Days"], rtol=1e-14)
    # against lme4's coef = fixef + ranef
    ref = SLEEP["ranef"]["Subject"]
    levels = ref["levels"]
    for col in ("(Intercept)", "Days"):
        expected = SLEEP["fixef"][col] + np.array(ref["values"][col])
        got = coef.loc[levels, col].to_numpy()
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-3 * np.abs(ref["values"][col]).max())


def test_model_that_interpolates_the_data_is_refused():
    # 8 rows; (1|g) + (1|h) form an 8-cycle (rank 7) and x adds the eighth dimension:
    # y is reproduced exactly as theta -> infinity and the likelihood has no maximum
    df = pd.DataFrame({"g": list("aabbccdd"), "h": list("ABBCCDDA"),
                       "x": [0.3, -1.2, 0.8, 2.0, -0.4, 1.1, 0.05, -2.2],
                       "y": [1.0, 2.5, 0.3, -1.0, 2.2, 0.7, 1.9, -0.6]})
    with pytest.raises(sm.DataError, match="span all 8 observations"):
        sm.lmer("y ~ x + (1|g) + (1|h)", df)
    # one observation fewer per dimension: the same terms without x are a proper model
    sm.lmer("y ~ 1 + (1|g) + (1|h)", df)


def test_term_with_more_parameters_than_levels_warns():
    rng = np.random.default_rng(3)
    df = pd.DataFrame({"g": np.repeat(list("abcd"), 6), "x": rng.normal(size=24), "y": rng.normal(size=24),
                       "f": np.tile(list("pqr"), 8)})
    with pytest.warns(sm.IdentifiabilityWarning, match=r"6 variance-covariance parameters.*only 4 levels"):
        sm.lmer("y ~ 1 + (0 + f | g)", df)
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.IdentifiabilityWarning)
        sm.lmer("y ~ 1 + (1 + x | g)", df)      # 3 parameters, 4 levels


def test_moment_start_is_the_one_way_anova_estimate():
    """For one scalar intercept term the moment start is the classical ANOVA estimator
    (MSB - MSW) / n0 relative to MSW, computed here directly from the data (unbalanced)."""
    rng = np.random.default_rng(7)
    sizes = rng.integers(2, 9, 25)
    g = np.repeat(np.arange(25), sizes)
    y = 3.0 + rng.normal(0, 1.3, 25)[g] + rng.normal(0, 0.8, g.size)
    d = pd.DataFrame({"g": g.astype(str), "y": y})
    theta, estimated = sm.lmer("y ~ 1 + (1|g)", d).moment_start()
    assert estimated.all()
    n, J = g.size, 25
    means = np.bincount(g, y) / sizes
    ssb = float((sizes * (means - y.mean()) ** 2).sum())
    ssw = float(((y - means[g]) ** 2).sum())
    msw = ssw / (n - J)
    n0 = (n - (sizes ** 2).sum() / n) / (J - 1)
    s2a = (ssb / (J - 1) - msw) / n0
    s2e = ((y - y.mean()) ** 2).sum() / n - s2a
    assert theta[0] == pytest.approx(np.sqrt(s2a / s2e), rel=1e-10)


def test_moment_start_lands_near_lme4_on_insteval(lme4_ref):
    """The crossed design's moment start is within 0.04 of lme4's theta in every entry, and
    the default fit (scoring from it) reaches lme4's criterion."""
    ref = lme4_ref["insteval_crossed"]
    m = sm.lmer(ref["formula"], sm.datasets.load("InstEval"), REML=True)
    theta, estimated = m.moment_start()
    assert estimated.all()
    np.testing.assert_allclose(theta, np.ravel(ref["theta"]), atol=0.04)
    assert m.choose_optimizer() == "scoring"
    res = m.fit()
    np.testing.assert_allclose(res.optsummary.initial, theta)
    assert res.objective <= ref["reml_criterion"] + 1e-6


def test_optimizer_choice_by_terms(sleep_model):
    """Slopes, or any model on the small engine: L-BFGS-B from lme4's start; scalar
    intercept terms on a sparse factor: scoring (BOBYQA where a gradient is dear: sparse X);
    an explicit optimizer starts from lme4's theta;
    start= takes 'lme4', 'moments' or a vector and nothing else."""
    assert sleep_model.choose_optimizer() == "lbfgsb"
    assert not sleep_model.moment_start()[1].any()
    d = sm.datasets.load("Penicillin")
    m = sm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", d)
    assert m.choose_optimizer() == "lbfgsb"             # scalar terms, but the small engine
    assert sm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", d, ordering="natural").choose_optimizer() == "scoring"
    assert sm.lmer("diameter ~ 1 + (1|plate) + (1|sample)", d, sparse_X=True).choose_optimizer() == "bobyqa"
    res = m.fit(optimizer="bobyqa")
    np.testing.assert_array_equal(res.optsummary.initial, m.theta0)
    res_m = m.fit(optimizer="lbfgsb", start="moments")
    np.testing.assert_array_equal(res_m.optsummary.initial, m.moment_start()[0])
    assert res_m.objective == pytest.approx(res.objective, abs=1e-6)
    with pytest.raises(sm.SparseMixedError, match="start must be 'lme4', 'moments', 'scaled' or a vector"):
        m.fit(start="ols")


def test_lbfgsb_leaves_a_boundary_stop_with_a_tied_value():
    """A design where L-BFGS-B from lme4's start stops on theta_1 = 0 at a point whose value
    ties the best seen: the boundary check must still run and find the interior optimum
    (it used to restart from the tied point until the restarts ran out)."""
    from test_sparse_x import frame

    m = sm.lmer("y ~ x + f + (1|a/h)", frame(seed=7, nested=True), REML=False, sparse_X=False)
    res = m.fit(optimizer="lbfgsb", check_convergence=False)
    ref = m.fit(optimizer="bobyqa", check_convergence=False)
    assert res.theta[0] > 0.3
    assert res.objective == pytest.approx(ref.objective, abs=1e-6)
    assert res.objective < m.objective([0.0, res.theta[1]]) - 1.0


def test_moment_step_shrinks_with_the_levels_and_still_reaches_the_optimum():
    """BOBYQA's first trust region from a moment start is theta x clip(0.45 / sqrt(J), 1%,
    10%): small for a term with thousands of levels, 10% for a handful.  The fit from
    there reaches the optimum that L-BFGS-B finds from lme4's start (an unbalanced crossed
    design, where a wrong start or step would show)."""
    from sparsemixed.start import moment_step

    rng = np.random.default_rng(11)
    nu, ni, n = 3000, 40, 30_000
    u = rng.integers(0, nu, n)
    i = (rng.zipf(1.5, n) - 1) % ni
    y = 0.6 * rng.normal(size=nu)[u] + 1.2 * rng.normal(size=ni)[i] + rng.normal(size=n)
    d = pd.DataFrame({"u": u, "i": i, "y": y})
    m = sm.lmer("y ~ 1 + (1|u) + (1|i)", d, REML=False)
    theta, estimated = m.moment_start()
    step = moment_step(m.terms, theta, estimated)
    rel = step / theta
    assert rel[0] == pytest.approx(0.01)                    # 3,000 levels: the 1% floor
    assert rel[1] == pytest.approx(0.45 / np.sqrt(40))      # 40 levels: 7.1%
    res = m.fit(optimizer="bobyqa", start="moments")     # the default where a gradient is dear
    assert res.optsummary.initial_step is not None
    ref = m.fit(optimizer="lbfgsb", start="lme4")
    np.testing.assert_allclose(m.fit().theta, ref.theta, rtol=1e-3)       # and the default's (scoring)
    assert res.objective == pytest.approx(ref.objective, abs=1e-6)
    np.testing.assert_allclose(res.theta, ref.theta, rtol=1e-3)
    # entries that are not moment estimates keep nlopt's default step (NaN)
    sleep = sm.lmer("Reaction ~ Days + (Days | Subject)", sm.datasets.load("sleepstudy"))
    t0, est0 = sleep.moment_start()
    assert np.isnan(moment_step(sleep.terms, t0, est0)).all()


def test_unused_categories_of_a_grouping_factor_are_dropped_in_order():
    """A categorical grouping column with unused categories (first, middle, last) gives the
    levels in the categories' order without them, and the fit of the column as text."""
    from sparsemixed.terms.grouping import encode_column

    s = pd.Series(pd.Categorical(["c", "a", "c", "e", "a"], categories=["z", "c", "b", "a", "e", "y"]))
    codes, labels = encode_column(s, "g")
    assert labels == ["c", "a", "e"]
    np.testing.assert_array_equal(codes, [0, 1, 0, 2, 1])
    df = unbalanced(3)
    cats = ["zz"] + sorted(df["g"].unique(), reverse=True)
    cats.insert(2, "mid")
    a = quiet_fit(sm.lmer(FORMULA, df.assign(g=pd.Categorical(df["g"], categories=cats + ["yy"]))))
    b = quiet_fit(sm.lmer(FORMULA, df))
    assert a.objective == pytest.approx(b.objective, rel=1e-10)
    assert sorted(a.ranef["g"].index) == sorted(b.ranef["g"].index)
