"""Dask builds: cross-products reduced over partitions on a LocalCluster equal the in-memory ones.

Agreement demanded: cross-products to 1e-10 relative, the criterion at a fixed theta to
1e-10 relative, the fitted estimates to 1e-6.  dask is imported directly: a missing
``dask`` extra fails the run rather than skipping it.
"""
import pickle
import warnings

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.distributed import Client, LocalCluster

import sparsemixed as sm
from sparsemixed.io import StreamedDataError, StreamedModel
from sparsemixed.io.dask_runner import DaskRunner, tree_reduce
from sparsemixed.io.encode import Encoding
from sparsemixed.io.levels import Plan
from sparsemixed.formula.bars import parse_formula

IE_FORMULA = "y ~ service + lectage + studage + (1|s) + (1|d) + (1|dept:service)"


def assert_same_model(m0, m1, tol=1e-10):
    assert m0.fixef_names == m1.fixef_names
    assert [t.group.levels for t in m0.terms] == [t.group.levels for t in m1.terms]
    assert (m0.nobs, m0.n_dropped) == (m1.nobs, m1.n_dropped)
    a, b = m0.crossprod, m1.crossprod
    assert abs(a.ZtZ - b.ZtZ).max() <= tol * abs(a.ZtZ).max()
    for name in ("ZtX", "Zty", "XtX"):
        x, y = getattr(a, name), getattr(b, name)
        assert np.abs(x - y).max() <= tol * np.abs(x).max(), name
    assert abs(a.yty - b.yty) <= tol * a.yty
    assert np.abs(a.Xty - b.Xty).max() <= tol * np.sqrt(np.diag(a.XtX).max() * a.yty)
    for theta in (m0.theta0 * 0.7, m0.theta0 * 0.2 + 0.05):
        f0, f1 = m0.objective(theta), m1.objective(theta)
        assert abs(f0 - f1) <= tol * abs(f0)


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


@pytest.fixture(scope="module")
def inst():
    df = sm.datasets.load("InstEval")
    return df, sm.lmer(IE_FORMULA, df)


def test_insteval_on_cluster(client, inst):
    df, m0 = inst
    ddf = dd.from_pandas(df, npartitions=6)
    m = sm.lmer(IE_FORMULA, ddf)
    assert isinstance(m, StreamedModel) and "npartitions=6" in repr(m.data)
    assert_same_model(m0, m)
    tasks = client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.task_prefixes))
    assert tasks > 0                                  # the work went through the cluster


def _sorted_late(n=8000, seed=11):
    """Sorted by a row counter, so the levels that sort first occur only in the last
    partition; NAs in the response and the weights."""
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, 60, n), rng.integers(0, 20, n)
    df = pd.DataFrame({"g": "g" + pd.Series(g).astype(str), "h": h, "f": rng.choice(["b", "c"], n),
                       "x": rng.normal(size=n), "w": rng.uniform(0.5, 2.0, n)})
    slope = rng.normal(0.5, 0.3, 20)
    df["y"] = 10 + 0.05 * g + 0.3 * np.cos(h) + slope[h] * df.x + rng.normal(size=n)
    df.loc[n - 40:, "g"] = "a_late"
    df.loc[n - 30:, "f"] = "a_late"
    df.loc[n - 20:, "h"] = -3
    df.loc[[7, 1999, n - 1], "y"] = np.nan
    df.loc[3, "w"] = np.nan
    return df


def test_late_levels_na_weights_and_fit(client):
    df = _sorted_late()
    f = "y ~ x + f + (1|g) + (x|h)"
    ddf = dd.from_pandas(df, npartitions=5, sort=False)
    assert "a_late" not in set(ddf.partitions[0].g.compute())
    with pytest.warns(sm.MissingDataWarning, match="4 of 8000 rows"):
        m = sm.lmer(f, ddf, weights="w", REML=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.MissingDataWarning)
        m0 = sm.lmer(f, df, weights="w", REML=False)
    assert_same_model(m0, m)
    r0, r = m0.fit(), m.fit()
    np.testing.assert_allclose(r.theta, r0.theta, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(r.beta, r0.beta, rtol=1e-6, atol=1e-6)
    assert r.sigma == pytest.approx(r0.sigma, rel=1e-6)
    with pytest.raises(StreamedDataError, match="built from a stream"):
        r.residuals()
    with pytest.raises(sm.DataError, match="na_action='omit'"):
        sm.lmer(f, ddf, weights="w", na_action="fail")


def test_shipped_pieces_pickle_and_tree(client):
    """A process-based cluster pickles the plan, the encoding and the partials."""
    df = _sorted_late().dropna()
    parsed = parse_formula("y ~ x + f + (1|g) + (1|h)")
    runner = DaskRunner(dd.from_pandas(df, npartitions=3))
    plan = pickle.loads(pickle.dumps(Plan.make(parsed, None, None, "omit", runner.columns())))
    enc = pickle.loads(pickle.dumps(Encoding.from_scan(runner.scan(plan), plan)))
    part = pickle.loads(pickle.dumps(enc.partial(df)))
    whole = runner.accumulate(enc)
    np.testing.assert_allclose(part.cp.ZtZ.toarray(), whole.cp.ZtZ.toarray())
    items = [dask.delayed(i) for i in range(20)]
    assert tree_reduce(items, lambda a, b: a + b, split_every=3).compute() == sum(range(20))


def test_unsupported_dask_collections(client):
    ddf = dd.from_pandas(_sorted_late(), npartitions=2)
    with pytest.raises(sm.DataError, match="dask.dataframe.DataFrame"):
        sm.lmer("y ~ x + (1|g)", ddf.y)
    with pytest.raises(sm.DataError, match="column name"):
        sm.lmer("y ~ x + (1|g)", ddf, weights=np.ones(8000))
    with pytest.raises(sm.DataError, match="not found in the data"):
        sm.lmer("y ~ z + (1|g)", ddf)
