"""glmer on a Dask DataFrame (a LocalCluster): the rows stay on the workers, PIRLS sums the
partitions' passes; the same deviance as in memory at any point (1e-10 relative) and the
same fit (1e-8 in -2 log L, estimates to the optimizer's tolerance: the partitions' sums
round differently)."""
import warnings

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from dask.distributed import Client, LocalCluster

import sparsemixed as sm
from sparsemixed.design import StreamedDataError
from sparsemixed.errors import ArgumentError, DataError


@pytest.fixture(scope="module")
def client():
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                      dashboard_address=None) as cluster, Client(cluster) as c:
        yield c


def _frame(n=2500, seed=1):
    rng = np.random.default_rng(seed)
    g = rng.integers(0, 40, n)
    h = rng.integers(0, 25, n)
    x = rng.normal(size=n)
    t = rng.uniform(0.5, 2.0, n)
    eta = -0.3 + 0.7 * x + rng.normal(0, 0.8, 40)[g] + rng.normal(0, 0.4, 25)[h]
    return pd.DataFrame({"y": (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int), "x": x,
                         "k": rng.poisson(t * np.exp(eta)), "t": t,
                         "g": [f"g{v}" for v in g], "h": [f"h{v}" for v in h]})


@pytest.mark.parametrize("formula, family, nagq", [("y ~ x + (1|g) + (1|h)", "binomial", 1),
                                                   ("k ~ x + offset(log(t)) + (1 + x|g)", "poisson", 0)])
def test_same_answer_as_in_memory(client, formula, family, nagq):
    df = _frame()
    m0 = sm.glmer(formula, df, family=family, nAGQ=nagq)
    m1 = sm.glmer(formula, dd.from_pandas(df, npartitions=5), family=family, nAGQ=nagq)
    assert m1.nobs == m0.nobs and m1.fixef_names == m0.fixef_names
    theta = m0.theta0 * 0.7
    assert m1.objective(theta) == pytest.approx(m0.objective(theta), rel=1e-10)
    x = np.concatenate([theta, m0.mode(theta).beta + 0.05])
    assert m1.objective(x) == pytest.approx(m0.objective(x), rel=1e-10)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r0, r1 = m0.fit(), m1.fit()
    assert r1.minus2loglik == pytest.approx(r0.minus2loglik, rel=1e-8)
    np.testing.assert_allclose(r1.theta, r0.theta, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(r1.fixef, r0.fixef, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(r1.vcov(use_hessian=False), r0.vcov(use_hessian=False), rtol=1e-3)
    if nagq == 1:      # the Hessian of the deviance (glmer's default standard errors), summed on the cluster
        np.testing.assert_allclose(r1.fixef_se, r0.fixef_se, rtol=1e-3)
    assert "Fixed effects" in r1.summary()
    with pytest.raises(StreamedDataError, match="Dask"):
        r1.fitted()
    with pytest.raises(StreamedDataError, match="Dask"):
        r1.residuals()
    for kw in ({}, {"re_form": "~0"}, {"se_fit": True}):        # the fit's rows: not on the client
        with pytest.raises(StreamedDataError, match="Dask"):
            r1.predict(**kw)


def test_refusals(client):
    df = _frame(n=600)
    ddf = dd.from_pandas(df, npartitions=3)
    with pytest.raises(ArgumentError, match="nAGQ"):
        sm.glmer("y ~ x + (1|g)", ddf, family="binomial", nAGQ=5)
    with pytest.raises(DataError, match="text"):
        sm.glmer("yt ~ x + (1|g)", dd.from_pandas(df.assign(yt=np.where(df.y == 1, "a", "b")), npartitions=3),
                 family="binomial")
    with pytest.raises(DataError, match="column name"):
        sm.glmer("y ~ x + (1|g)", ddf, family="binomial", weights=np.ones(len(df)))
    with pytest.raises(DataError, match="every row"):
        sm.glmer("y ~ x + (1|g)", dd.from_pandas(df.assign(y=0), npartitions=3), family="binomial")


@pytest.mark.expect_warnings((sm.SingularFitWarning,))      # the data have no slope variance
def test_slope_far_from_zero_warns_on_dask(client):
    """A Dask build keeps no rows, so a random slope on a covariate far from 0 cannot be
    fitted centred (recentre.GLMM_QUIET_RATIO) as in memory: a ScaleWarning says to centre it."""
    from sparsemixed.errors import ScaleWarning

    df = _frame(seed=4).assign(x=lambda d: d.x + 5.0)          # 5 sd from 0
    m = sm.glmer("y ~ x + (x | g)", dd.from_pandas(df, npartitions=3), family="binomial", nAGQ=0)
    with pytest.warns(ScaleWarning, match="Dask DataFrame"):
        m.fit()
    centred = sm.glmer("y ~ x + (x | g)", dd.from_pandas(df.assign(x=df.x - 5.0), npartitions=3),
                       family="binomial", nAGQ=0)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error", ScaleWarning)
        centred.fit()
