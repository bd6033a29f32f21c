"""The direct build (sparsemixed/formula/fast.py) against formulaic's route: the same model
frame (y, X bit for bit, names, Z, grouping codes and levels, kept rows, warnings, errors),
the same formulaic specs for predict, the same criterion; shapes outside its grammar fall
back to formulaic."""
import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsemixed as sm
from sparsemixed.errors import SparseMixedError
from sparsemixed.formula import fast
from sparsemixed.formula.bars import parse_formula
from sparsemixed.formula.design import build_model_frame


@pytest.fixture(autouse=True)
def _strict(monkeypatch):
    monkeypatch.setattr(fast, "STRICT", True)       # a bug in the fast route fails, not falls back


def _route(on: bool, fn, *args, **kw):
    """(result or exception, [(category, message)]) of fn with the fast route on or off."""
    old = fast.ENABLED
    fast.ENABLED = on
    try:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                out = fn(*args, **kw)
            except SparseMixedError as exc:
                out = exc
    finally:
        fast.ENABLED = old
    return out, [(w.category, str(w.message), w.filename, w.lineno) for w in seen]


def _same_bits(a, b) -> bool:
    a, b = (x.toarray() if hasattr(x, "toarray") else np.asarray(x) for x in (a, b))
    return a.shape == b.shape and a.dtype == b.dtype and a.tobytes() == b.tobytes()


def _same_spec(s1, s2):
    assert list(s1.column_names) == list(s2.column_names)
    assert s1.encoder_state.keys() == s2.encoder_state.keys()
    for k in s1.encoder_state:
        (k1, st1), (k2, st2) = s1.encoder_state[k], s2.encoder_state[k]
        assert k1 == k2 and list(st1.get("categories", [])) == list(st2.get("categories", []))
    assert {str(t): sl for t, sl in s1.term_slices.items()} == {str(t): sl for t, sl in s2.term_slices.items()}


def assert_same_frame(a, b):
    assert _same_bits(a.y, b.y)
    assert _same_bits(a.X, b.X)
    if isinstance(b.X, np.ndarray):           # the same memory layout (BLAS sums in the same order)
        assert (a.X.flags.f_contiguous, a.X.flags.c_contiguous) == (b.X.flags.f_contiguous, b.X.flags.c_contiguous)
    assert a.X_names == b.X_names
    assert len(a.terms) == len(b.terms)
    for t1, t2 in zip(a.terms, b.terms):
        assert (t1.expr, t1.columns, t1.group.name, t1.group.factors, t1.group.levels) == \
            (t2.expr, t2.columns, t2.group.name, t2.group.factors, t2.group.levels)
        assert t1.spec.required_variables == t2.spec.required_variables
        assert t1.spec.numeric_columns == t2.spec.numeric_columns
    for r1, r2 in zip(a.rows, b.rows):
        assert _same_bits(r1.codes, r2.codes) and _same_bits(r1.values, r2.values)
        assert r1.values.flags.f_contiguous == r2.values.flags.f_contiguous
    assert _same_bits(a.kept, b.kept) and a.n_dropped == b.n_dropped
    for v1, v2 in ((a.weights, b.weights), (a.offset, b.offset)):
        assert (v1 is None) == (v2 is None) and (v1 is None or _same_bits(v1, v2))
    assert a.fixed_spec.numeric_columns == b.fixed_spec.numeric_columns
    assert a.fixed_spec.required_variables == b.fixed_spec.required_variables
    _same_spec(a.fixed_spec.spec, b.fixed_spec.spec)
    for t1, t2 in zip(a.terms, b.terms):
        _same_spec(t1.spec.spec, t2.spec.spec)


def compare(formula, data, **kw):
    """Both routes give the same frame (or the same error) and the same warnings; returns
    whether the fast route took it."""
    parsed = parse_formula(formula)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        took = fast.try_build(parsed, data, kw.get("weights"), kw.get("offset"), kw.get("na_action", "omit"),
                           kw.get("sparse_X", "auto")) is not None
    (a, wa), (b, wb) = [_route(on, build_model_frame, parsed, data, **kw) for on in (True, False)]
    assert wa == wb                       # same warnings, attributed to the same line
    if isinstance(b, Exception):
        assert type(a) is type(b) and str(a) == str(b)
    else:
        assert not isinstance(a, Exception), a
        assert_same_frame(a, b)
    return took


# -- random data and formulas of the grammar ---------------------------------------------------------
@st.composite
def frames(draw):
    n = draw(st.integers(12, 40))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))

    def with_nan(v, p):
        v = v.astype(float)
        v[rng.random(n) < p] = np.nan
        return v

    p_na = draw(st.sampled_from([0.0, 0.0, 0.05, 0.15]))
    df = pd.DataFrame({
        "y": with_nan(rng.normal(size=n) * 3 + 1, p_na),
        "x": with_nan(rng.normal(size=n), p_na),
        "z": rng.integers(-3, 5, size=n),                       # integer covariate
        "b": rng.random(n) < 0.4,                               # bool: numeric in formulaic
    })
    nlev = draw(st.integers(2, 4))
    levels = [f"l{k}" for k in range(nlev)]
    probs = rng.dirichlet(np.ones(nlev) * 0.7)                   # unbalanced
    f = rng.choice(levels, size=n, p=probs)
    unused = draw(st.booleans())
    cats = levels[::-1] + (["zz"] if unused else [])            # categories not sorted, maybe unused
    df["f"] = pd.Categorical(f, categories=cats)
    if p_na:
        df.loc[rng.random(n) < p_na, "f"] = np.nan
    h = rng.choice(["b", "a", "c"], size=n)
    h_kind = draw(st.sampled_from(["object", "str", "category"]))
    df["h"] = pd.Series(h, dtype=object) if h_kind == "object" else pd.Series(h, dtype=h_kind)
    if p_na and h_kind == "object":
        df.loc[rng.random(n) < p_na, "h"] = None
    ng = draw(st.integers(3, 6))
    g_kind = draw(st.sampled_from(["int", "str", "category", "float"]))
    g = rng.integers(0, ng, size=n)
    df["g"] = {"int": g, "float": g.astype(float) + 0.5, "str": np.array([f"s{v}" for v in g], dtype=object),
               "category": pd.Categorical([f"c{v}" for v in g], categories=[f"c{v}" for v in range(ng + 1)])}[g_kind]
    df["k"] = pd.Categorical(rng.integers(0, 3, size=n))        # integer categories
    df["w"] = rng.uniform(0.5, 2, size=n)
    if draw(st.booleans()):
        df["x"] = df["x"].astype("Float64")                     # nullable
    order = rng.permutation(n)
    df = df.iloc[order]
    if draw(st.booleans()):
        df.index = pd.Index(rng.permutation(n) * 3 + 7)
    return df


FIXED = ["x", "z", "b", "f", "h", "k", "x:f", "x*h", "f:h", "z:x", "f*k", "x:z:f"]
BARS = ["(1 | g)", "(x | g)", "(x || g)", "(1 | g/k)", "(1 | g:k)", "(0 + x | g)", "(1 + z | k)",
        "(0 + f | g)", "(h | k)", "(1 | h)", "(x + z || g)"]


@st.composite
def formulas(draw):
    fixed = draw(st.lists(st.sampled_from(FIXED), max_size=3, unique=True))
    icpt = draw(st.sampled_from(["", "1 + ", "0 + ", "-1"]))
    bars = draw(st.lists(st.sampled_from(BARS), min_size=1, max_size=2, unique=True))
    rhs = " + ".join(fixed) if fixed else "1"
    if icpt == "-1":
        rhs = rhs + " - 1" if fixed else "1"
    else:
        rhs = icpt + rhs
    return f"y ~ {rhs} + {' + '.join(bars)}"


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=frames(), formula=formulas(), opts=st.sampled_from([{}, {"weights": "w"}, {"offset": "z"},
                                                                {"na_action": "fail"}, {"sparse_X": False}]))
def test_fast_frame_equals_formulaic(df, formula, opts):
    compare(formula, df, **opts)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(df=frames(), formula=formulas())
def test_fast_model_equals_formulaic(df, formula):
    """The models built both ways: same errors and warnings, the same criterion at a theta."""
    (a, wa), (b, wb) = [_route(on, sm.lmer, formula, df, REML=True) for on in (True, False)]
    assert wa == wb
    if isinstance(b, Exception):
        assert type(a) is type(b) and str(a) == str(b)
        return
    assert a.fixef_names == b.fixef_names and a.dropped_fixef == b.dropped_fixef
    theta = a.theta0 * 0.7 + 0.1 * (a.lower == 0)
    for reml in (True, False):
        assert a.objective(theta, REML=reml) == b.objective(theta, REML=reml)


def test_panel_shapes_take_the_fast_route():
    rng = np.random.default_rng(1)
    n = 60
    df = pd.DataFrame({"y": rng.normal(size=n), "Days": rng.integers(0, 10, n).astype(float),
                       "Subject": pd.Categorical(rng.choice(list("ABCDEF"), n)),
                       "batch": rng.choice(list("pqr"), n), "cask": rng.choice(list("uvw"), n),
                       "recipe": pd.Categorical(rng.choice(list("ABC"), n)), "temp": rng.normal(size=n)})
    for f in ["y ~ 1 + Days + (1 + Days | Subject)", "y ~ Days + (Days || Subject)", "y ~ 1 + (1 | batch/cask)",
              "y ~ recipe * temp + (1 | recipe:batch)", "y ~ 0 + recipe + (0 + recipe | Subject)",
              "y ~ 1 + (1 | batch) + (1 | cask)", "y ~ recipe + temp:recipe + (temp | Subject)"]:
        assert compare(f, df), f


@pytest.mark.parametrize("formula, change", [
    ("y ~ scale(x) + (1 | g)", None),
    ("y ~ poly(x, 2) + (1 | g)", None),
    ("y ~ I(x**2) + (1 | g)", None),
    ("y ~ x + offset(z) + (1 | g)", None),
    ("y ~ log(w) + (1 | g)", None),
    ("y ~ C(z) + (1 | g)", None),
    ("y ~ x + (scale(x) | g)", None),
    ("log(y + 10) ~ x + (1 | g)", None),
    ("y ~ x + 2 + (1 | g)", None),
    ("y ~ t + (1 | g)", "datetime"),
    ("y ~ s + (1 | g)", "text numbers"),
    ("y ~ x + (1 | g)", "inf"),
    ("y ~ x + (1 | g)", "fail"),
    ("y ~ x + (1 | g)", "sparse"),
    ("y ~ one + (1 | g)", None),
    ("y ~ x + nothere + (1 | g)", None),
    ("b ~ x + (1 | g)", None),
    ("h ~ x + (1 | g)", None),
    ("y ~ x + (1 | g)", "weights"),
    ("y ~ x + (1 | mixed)", "agree"),      # a grouping column of ints and text: either route, the same
])
@pytest.mark.expect_warnings((sm.errors.MissingDataWarning,))
def test_outside_the_grammar_falls_back(formula, change):
    rng = np.random.default_rng(3)
    n = 30
    df = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n), "z": rng.integers(0, 4, n),
                       "w": rng.uniform(1, 2, n), "g": rng.choice(list("abcde"), n), "b": rng.random(n) < 0.5,
                       "h": rng.choice(list("pq"), n), "one": pd.Categorical(["u"] * n),
                       "t": pd.date_range("2020-01-01", periods=n), "s": [str(v) for v in rng.normal(size=n)],
                       "mixed": pd.Series([1, "a"] * (n // 2), dtype=object)})
    kw = {}
    if change == "text numbers":
        df["s"] = df["s"].astype(object)
        df.loc[df.index[:2], "s"] = "n/a"
    elif change == "inf":
        df.loc[df.index[3], "x"] = np.inf
    elif change == "fail":
        df.loc[df.index[3], "x"] = np.nan
        kw["na_action"] = "fail"
    elif change == "sparse":
        kw["sparse_X"] = True
    elif change == "weights":
        df.loc[df.index[2], "w"] = -1.0
        kw["weights"] = "w"
    parsed = parse_formula(formula)
    if change == "agree":
        compare(formula, df, **kw)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert fast.try_build(parsed, df, kw.get("weights"), None, kw.get("na_action", "omit"),
                           kw.get("sparse_X", "auto")) is None
    assert not compare(formula, df, **kw)


def test_many_fixed_levels_fall_back_to_sparse_x():
    rng = np.random.default_rng(4)
    n = 900
    df = pd.DataFrame({"y": rng.normal(size=n), "item": rng.choice([f"i{k}" for k in range(250)], n),
                       "g": rng.choice(list("abcdefgh"), n)})
    assert fast.try_build(parse_formula("y ~ item + (1 | g)"), df, None, None, "omit", "auto") is None
    assert fast.try_build(parse_formula("y ~ item + (1 | g)"), df, None, None, "omit", False) is not None


def test_fast_model_predicts_pickles_and_refits_as_formulaic():
    rng = np.random.default_rng(5)
    n = 80
    df = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n),
                       "f": pd.Categorical(rng.choice(list("abc"), n)), "g": rng.choice(list("pqrstu"), n)})
    df["y"] += df["x"] + (df["f"] == "b") + rng.normal(size=6)[pd.factorize(df["g"])[0]]
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        fits = []
        for on in (True, False):
            fast.ENABLED = on
            try:
                m = sm.lmer("y ~ x * f + (x | g)", df)
                fits.append(pickle.loads(pickle.dumps(m.fit())))
            finally:
                fast.ENABLED = True
        new = df.iloc[:7].assign(f=pd.Categorical(["c"] * 7, categories=["a", "b", "c"]))
        pa, pb = fits[0].predict(new), fits[1].predict(new)
        assert np.array_equal(np.asarray(pa), np.asarray(pb))
        assert np.array_equal(np.asarray(fits[0].fitted()), np.asarray(fits[1].fitted()))
        assert np.array_equal(fits[0].fixef.to_numpy(), fits[1].fixef.to_numpy())


def test_odd_column_names_take_the_fast_route():
    """Columns R reads as written but formulaic only under aliases (names.py): dotted names,
    names of functions, names in backticks or Q()."""
    rng = np.random.default_rng(6)
    n = 50
    df = pd.DataFrame({"y": rng.normal(size=n), "IQ.verb": rng.normal(size=n), "log": rng.normal(size=n),
                       "C": rng.choice(list("abc"), n), "my col": rng.normal(size=n),
                       "my grp": rng.choice(list("pqrst"), n), "Treatment": pd.Categorical(rng.choice(list("uv"), n))})
    for f in ["y ~ IQ.verb + log + C + (1 | `my grp`)", "y ~ `my col` * Treatment + (IQ.verb || C)",
              "y ~ 0 + (1 | C)", "y ~ Q('my col') + (0 + Treatment | C)", "y ~ C:log + (1 | C/Treatment)"]:
        assert compare(f, df), f


def test_the_route_is_on_only_for_formulaic_versions_it_reproduces(monkeypatch):
    """Another formulaic may encode differently: the direct route is then off and formulaic
    builds the frame (this test fails when the installed formulaic is not one the route
    reproduces, which is the signal to check the encoding and extend TESTED_FORMULAIC)."""
    from sparsemixed.formula import fast

    assert fast.formulaic_reproduced()
    import formulaic

    fast.formulaic_reproduced.cache_clear()
    monkeypatch.setattr(formulaic, "__version__", "9.0.0")
    try:
        d = sm.datasets.load("sleepstudy")
        assert not fast.formulaic_reproduced()
        calls = []
        monkeypatch.setattr(fast, "_build", lambda *a: calls.append(a))
        sm.lmer("Reaction ~ Days + (Days | Subject)", d)
        assert calls == []
    finally:
        fast.formulaic_reproduced.cache_clear()
