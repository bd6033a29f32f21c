"""Simulation recovery on large data: a crossed Bernoulli GLMM fitted to data simulated from
stated true values recovers them within three standard errors.

120,000 rows, 2,000 users x 300 items with heavy-tailed (lognormal) activity, seed 2026:
acc ~ x + (1|user) + (1|item), beta = (-0.5, 0.8), sd(user) = 1.0, sd(item) = 0.5 (theta
is the SD itself: no residual scale).  Standard errors from 2 H^-1, H the Hessian of the
Laplace deviance in (theta, beta) (glmm/hessian.py).
"""
import numpy as np
import pandas as pd

import sparsemixed as sm

TRUTH = {"beta": np.array([-0.5, 0.8]), "theta": np.array([1.0, 0.5])}


def _simulate(n=120_000, users=2_000, items=300, seed=2026):
    rng = np.random.default_rng(seed)
    wu, wi = rng.lognormal(0, 1, users), rng.lognormal(0, 1, items)
    user = rng.choice(users, n, p=wu / wu.sum())
    item = rng.choice(items, n, p=wi / wi.sum())
    x = rng.normal(size=n)
    eta = (TRUTH["beta"][0] + TRUTH["beta"][1] * x + rng.normal(0, TRUTH["theta"][0], users)[user]
           + rng.normal(0, TRUTH["theta"][1], items)[item])
    acc = (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(int)
    return pd.DataFrame({"acc": acc, "x": x, "user": pd.Categorical(user), "item": pd.Categorical(item)})


def test_large_crossed_bernoulli_recovers_the_truth():
    res = sm.glmer("acc ~ x + (1|user) + (1|item)", _simulate(), family="binomial").fit()
    est = np.concatenate([res.theta, res.fixef.to_numpy()])
    truth = np.concatenate([TRUTH["theta"], TRUTH["beta"]])
    se = np.sqrt(np.diag(2 * np.linalg.inv(res.hessian())))
    assert np.all(se > 0) and np.all(se < 0.1)
    z = (est - truth) / se
    assert np.all(np.abs(z) < 3), dict(zip(["sd_user", "sd_item", "(Intercept)", "x"], np.round(z, 2)))
    # the Wald SEs of beta are the same block (vcov's default)
    np.testing.assert_allclose(np.sqrt(np.diag(res.vcov().to_numpy())), se[2:], rtol=1e-10)
