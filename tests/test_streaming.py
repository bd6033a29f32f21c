"""Streamed builds (CSV, Parquet, pyarrow Dataset/Table, chunk lists) equal the in-memory one.

Agreement demanded: cross-products to 1e-10 relative, the criterion at a fixed theta to
1e-10 relative, the fitted estimates to 1e-6.  pyarrow is imported directly: a missing
``parquet`` extra fails the run rather than skipping it.
"""
import importlib.abc
import pickle
import sys
import warnings

import formulaic
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

import sparsemixed as sm
from sparsemixed.io import CSV, StreamedDataError, StreamedModel
from sparsemixed.io.levels import stateless

IE_FORMULA = "y ~ service + lectage + studage + (1|s) + (1|d) + (1|dept:service)"


def assert_same_model(m0, m1, tol=1e-10):
    """Cross-products, names, levels and the criterion at two thetas agree."""
    assert m0.fixef_names == m1.fixef_names
    assert [t.name for t in m0.terms] == [t.name for t in m1.terms]
    assert [t.group.levels for t in m0.terms] == [t.group.levels for t in m1.terms]
    assert (m0.nobs, m0.n_dropped) == (m1.nobs, m1.n_dropped)
    a, b = m0.crossprod, m1.crossprod
    assert (a.ZtZ != b.ZtZ).nnz == 0 or abs(a.ZtZ - b.ZtZ).max() <= tol * abs(a.ZtZ).max()
    for name in ("ZtX", "Zty", "XtX"):
        x, y = getattr(a, name), getattr(b, name)
        assert np.abs(x - y).max() <= tol * np.abs(x).max(), name
    assert abs(a.yty - b.yty) <= tol * a.yty
    assert a.sum_log_w == pytest.approx(b.sum_log_w, rel=tol, abs=1e-12)
    # X'Wr is ~0 (r is the OLS residual): judged on the scale of its terms
    scale = np.sqrt(np.diag(a.XtX).max() * a.yty)
    assert np.abs(a.Xty - b.Xty).max() <= tol * scale
    for theta in (m0.theta0 * 0.7, m0.theta0 * 0.2 + 0.05):
        f0, f1 = m0.objective(theta), m1.objective(theta)
        assert abs(f0 - f1) <= tol * abs(f0)


def assert_same_fit(r0, r1, tol=1e-6):
    np.testing.assert_allclose(r1.theta, r0.theta, rtol=tol, atol=tol)
    np.testing.assert_allclose(r1.beta, r0.beta, rtol=tol, atol=tol)
    assert r1.sigma == pytest.approx(r0.sigma, rel=tol)
    assert r1.objective == pytest.approx(r0.objective, rel=1e-10)


@pytest.fixture(scope="module")
def inst(tmp_path_factory):
    """InstEval with text-coded fixed-effect factors (s, d, dept stay integer codes)."""
    d = tmp_path_factory.mktemp("inst")
    df = sm.datasets.load("InstEval")
    df = pd.DataFrame({
        "s": df.s.astype(int), "d": df.d.astype(int), "dept": df.dept.astype(int),
        "studage": "a" + df.studage.astype(str), "lectage": "l" + df.lectage.astype(str),
        "service": "v" + df.service.astype(str), "y": df.y.astype(float)})
    csv, pq = d / "inst.csv", d / "inst.parquet"
    df.to_csv(csv, index=False)
    df.to_parquet(pq, row_group_size=20_000)
    frame = pd.read_csv(csv)
    model = sm.lmer(IE_FORMULA, frame)
    return {"csv": csv, "parquet": pq, "frame": frame, "model": model, "fit": model.fit()}


def test_csv_equals_in_memory(inst):
    m = sm.lmer(IE_FORMULA, str(inst["csv"]), chunksize=15_000)
    assert isinstance(m, StreamedModel)
    assert_same_model(inst["model"], m)
    assert_same_fit(inst["fit"], m.fit())


def test_parquet_file(inst):
    assert_same_model(inst["model"], sm.lmer(IE_FORMULA, inst["parquet"], chunksize=9_000))


SMALL = "y ~ x + f + (1|g) + (1|h)"


@pytest.fixture(scope="module")
def small():
    df = _awkward().dropna()
    return df, sm.lmer(SMALL, df)


def test_pyarrow_dataset_table_and_chunks(tmp_path, small):
    df, m0 = small
    df.to_parquet(tmp_path / "part-0.parquet", row_group_size=300)
    assert_same_model(m0, sm.lmer(SMALL, pads.dataset(str(tmp_path / "part-0.parquet"))))
    assert_same_model(m0, sm.lmer(SMALL, tmp_path, chunksize=200))       # a directory
    assert_same_model(m0, sm.lmer(SMALL, pa.Table.from_pandas(df), chunksize=250))
    assert_same_model(m0, sm.lmer(SMALL, [df.iloc[i:i + 500] for i in range(0, len(df), 500)]))
    assert_same_model(m0, sm.lmer(SMALL, lambda: (df.iloc[i:i + 700] for i in range(0, len(df), 700))))


def test_rows_are_not_kept(tmp_path, small):
    df, _ = small
    df.to_csv(tmp_path / "s.csv", index=False)
    m = sm.lmer(SMALL, CSV(tmp_path / "s.csv", chunksize=1000))
    r = m.fit()
    assert "Scaled residuals" not in r.summary() and "REML criterion" in r.summary()
    for call in (r.fitted, r.residuals, lambda: r.getME("X"), lambda: m.refit(np.zeros(m.nobs))):
        with pytest.raises(StreamedDataError, match="built from a stream"):
            call()
    assert "CSV(" in repr(m.data)
    assert pickle.loads(pickle.dumps(r)).fixef.equals(r.fixef)


def _awkward(n=3000, seed=3):
    """Levels that sort first but appear only in the last rows; a level only on NA rows;
    NAs in the response, a covariate and the weights."""
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, 30, n), rng.integers(0, 12, n)
    df = pd.DataFrame({
        "g": "g" + pd.Series(g).astype(str), "h": h, "k": rng.choice(["p", "q", "r"], n),
        "f": rng.choice(["b", "c", "d"], n), "x": rng.normal(size=n), "n": rng.integers(1, 4, n),
        "w": rng.uniform(0.5, 2.0, n), "o": rng.normal(size=n)})
    df["x2"] = 2.0 * df.x
    df["y"] = 50.0 + 0.1 * g + np.sin(h) + df.x + rng.normal(size=n)
    df.loc[n - 25:, "g"] = "a_late"          # grouping level, sorts first
    df.loc[n - 15:, "f"] = "a_late"          # fixed-effect level, becomes the reference
    df.loc[n - 8:, "h"] = -1                 # numeric grouping level, sorts first
    df.loc[n - 5:, "n"] = 0                  # C(n) level, sorts first
    df.loc[[3, 17, 400], "y"] = np.nan
    df.loc[17, "g"] = "only_on_a_dropped_row"
    df.loc[[40, 41], "x"] = np.nan
    df.loc[50, "w"] = np.nan
    return df


@pytest.mark.parametrize("formula, kw", [
    ("y ~ x + f + C(n) + (1|g) + (x|h)", {}),
    ("y ~ x + x2 + f + (1|g) + (1|h:k:g) + (0 + f|k)", {"weights": "w", "offset": "o"}),
    ("y ~ f*x + (1|g/h)", {"weights": "w"}),
])
def test_late_levels_na_weights_offset(tmp_path, formula, kw):
    df = _awkward()
    with warnings.catch_warnings(record=True) as w0:
        warnings.simplefilter("always")
        m0 = sm.lmer(formula, df, **kw)
    csv = tmp_path / "a.csv"
    df.to_csv(csv, index=False)
    for source in ([df.iloc[i:i + 400] for i in range(0, len(df), 400)], CSV(csv, chunksize=700)):
        with warnings.catch_warnings(record=True) as w1:
            warnings.simplefilter("always")
            m1 = sm.lmer(formula, source, **kw)
        assert_same_model(m0, m1)
        assert sorted((w.category.__name__, str(w.message)) for w in w1) == \
            sorted((w.category.__name__, str(w.message)) for w in w0)
    (g,) = [t for t in m1.terms if t.name == "g"]
    assert g.group.levels[0] == "a_late" and "only_on_a_dropped_row" not in g.group.levels


def test_late_levels_fit(tmp_path):
    df = _awkward()
    pq = tmp_path / "a.parquet"
    df.to_parquet(pq, row_group_size=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.MissingDataWarning)
        m0 = sm.lmer("y ~ x + f + (1|g) + (1|h)", df, REML=False)
        m1 = sm.lmer("y ~ x + f + (1|g) + (1|h)", pq, REML=False, chunksize=300)
    assert_same_model(m0, m1)
    assert_same_fit(m0.fit(), m1.fit())


def test_categorical_columns_keep_category_order(tmp_path):
    df = _awkward().dropna()
    df["g"] = pd.Categorical(df.g, categories=sorted(df.g.unique(), reverse=True) + ["unused"])
    df["f"] = pd.Categorical(df.f, categories=["d", "c", "b", "a_late", "never"])
    pq = tmp_path / "c.parquet"
    df.to_parquet(pq, row_group_size=600)
    f = "y ~ x + f + (1|g) + (1|h)"
    with warnings.catch_warnings(record=True):
        m0, m1 = sm.lmer(f, pd.read_parquet(pq)), sm.lmer(f, pq, chunksize=250)
    (g,) = [t for t in m1.terms if t.name == "g"]
    assert g.group.levels == [c for c in df.g.cat.categories if c in set(df.g)]
    assert m1.all_fixef_names == m0.all_fixef_names and "fnever" in m1.all_fixef_names
    assert_same_model(m0, m1)


def test_missing_values_fail_and_all_missing(tmp_path):
    df = _awkward()
    chunks = [df.iloc[:1500], df.iloc[1500:]]
    with pytest.raises(sm.DataError, match=r"6 of 3000 rows have missing values .*na_action='omit'"):
        sm.lmer("y ~ x + (1|g)", chunks, weights="w", na_action="fail")
    empty = [df.assign(y=np.nan)]
    with pytest.raises(sm.DataError, match="no rows are left"):
        sm.lmer("y ~ x + (1|g)", empty)
    with pytest.warns(sm.MissingDataWarning, match="3 of 3000 rows"):
        sm.lmer("y ~ f + (1|g)", chunks)


def test_unsupported_sources_and_inputs(tmp_path, inst):
    f = "y ~ x + (1|g)"
    df = _awkward().dropna()
    with pytest.raises(sm.DataError, match="data must be a pandas DataFrame, a path"):
        sm.lmer(f, np.zeros((3, 3)))
    with pytest.raises(sm.DataError, match="data must be"):
        sm.lmer(f, 42)
    with pytest.raises(sm.DataError, match="one-shot iterator"):
        sm.lmer(f, (c for c in [df]))
    with pytest.raises(sm.DataError, match="read only once"), pd.read_csv(inst["csv"], chunksize=1000) as reader:
        sm.lmer(IE_FORMULA, reader)
    with pytest.raises(sm.DataError, match="no such file"):
        sm.lmer(f, tmp_path / "nope.csv")
    odd = tmp_path / "data.xyz"
    odd.write_text("a\n1\n")
    with pytest.raises(sm.DataError, match="cannot tell the format"):
        sm.lmer(f, odd)
    with pytest.raises(sm.DataError, match=r"'servce' \(did you mean 'service'\?\)"):
        sm.lmer("y ~ servce + (1|d)", inst["csv"])
    with pytest.raises(sm.DataError, match="column name"):
        sm.lmer(f, [df], weights=np.ones(len(df)))
    spec = formulaic.model_matrix("y ~ center(x)", df).model_spec
    with pytest.raises(sm.FormulaError, match="stateful transform"):
        stateless([spec.lhs, spec.rhs], "fixed-effects part")
    with pytest.raises(sm.DataError, match="numbers in some chunks and as text"):
        sm.lmer("y ~ h + (1|g)", [df.iloc[:100], df.iloc[100:].assign(h="t")])


class _NoDask(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "dask" or name.startswith("dask."):
            raise ImportError("dask is blocked in this test")


def test_core_does_not_import_dask(monkeypatch, tmp_path, small):
    """Streamed builds run with dask unimportable (the core imports it only for dask input)."""
    df, m0 = small
    for name in [m for m in sys.modules if m == "dask" or m.startswith("dask.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(sys, "meta_path", [_NoDask()] + sys.meta_path)
    df.to_csv(tmp_path / "s.csv", index=False)
    assert_same_model(m0, sm.lmer(SMALL, tmp_path / "s.csv", chunksize=900))
    assert not any(m == "dask" or m.startswith("dask.") for m in sys.modules)
