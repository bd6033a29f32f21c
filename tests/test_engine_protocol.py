"""The engine protocol (sparsemixed/engine): both engines satisfy it, and new weighted
cross-products on the analysed pattern (the step of a GLMM's PIRLS) give what a model
built with those weights gives -- without a new symbolic analysis."""
import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from sparsemixed.engine import Engine
from sparsemixed.engine.reweight import values_on_pattern
from sparsemixed.errors import NumericalError
from sparsemixed.linalg.factor import Factor


def _frame(seed=4, n=900):
    rng = np.random.default_rng(seed)
    a = rng.choice(40, n, p=rng.dirichlet(np.ones(40)))
    b = rng.integers(0, 15, n)
    f = rng.integers(0, 250, n)
    x = rng.normal(size=n)
    y = 1 + x + rng.normal(size=40)[a] + 0.5 * rng.normal(size=15)[b] * x + rng.normal(size=n)
    return pd.DataFrame(dict(y=y, x=x, a=[f"a{v}" for v in a], b=[f"b{v}" for v in b],
                             f=[f"f{v}" for v in f], w=rng.uniform(0.2, 3.0, n)))


@pytest.mark.parametrize("formula,sparse_X", [("y ~ x + (1 | a) + (1 + x | b)", False),
                                              ("y ~ x + f + (1 | a) + (1 | b)", True)])
@pytest.mark.parametrize("reml", [True, False])
def test_reweighted_engine_equals_a_model_built_with_the_weights(formula, sparse_X, reml):
    df = _frame()
    plain = sm.lmer(formula, df, REML=reml, sparse_X=sparse_X)
    weighted = sm.lmer(formula, df, REML=reml, sparse_X=sparse_X, weights="w")
    assert isinstance(plain.engine, Engine) and isinstance(plain.factor, Factor)
    eng = plain.engine.reweighted(plain.design().cross_products(weights=df["w"].to_numpy()))
    assert eng.pool is plain.engine.pool                  # same symbolic analysis, no new one
    for theta in (plain.theta0, np.linspace(0.3, 1.4, plain.theta0.size)):
        st = eng.solve(theta, reml=reml)
        assert eng.criterion(st, reml) == pytest.approx(weighted.objective(theta), rel=1e-10)
        # the reweighted cross-products are of y itself (no OLS shift): beta on the user's scale
        ref = weighted.pls(theta, reml)
        np.testing.assert_allclose(st.beta, weighted.fixef_from(ref.beta), rtol=1e-8, atol=1e-10)
        np.testing.assert_allclose(eng.random_effects(st)[1], weighted.engine.random_effects(ref)[1],
                                   rtol=1e-7, atol=1e-9)
        if not sparse_X:
            np.testing.assert_allclose(eng.gradient(st, reml), weighted.gradient(theta), rtol=1e-7, atol=1e-7)


def test_values_outside_the_analysed_pattern_are_refused():
    import scipy.sparse as sp

    old = sp.csr_matrix(np.array([[2.0, 1.0], [1.0, 3.0]]))
    old[0, 1] = 0.0
    old.eliminate_zeros()
    new = sp.csr_matrix(np.array([[2.0, 1.0], [1.0, 3.0]]))
    with pytest.raises(NumericalError, match="outside the analysed pattern"):
        values_on_pattern(new, old)
    sub = sp.csr_matrix(np.array([[5.0, 0.0], [0.0, 7.0]]))
    assert old.nnz == 3                                   # (0,0), (1,0), (1,1)
    np.testing.assert_array_equal(values_on_pattern(sub, old), [5.0, 0.0, 7.0])
