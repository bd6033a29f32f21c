"""The tiled parallel Schur kernel (used for large dense blocks) equals the serial one."""
import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
import sparsemixed.linalg.blocked as blocked


def _crossed(seed, n=4000, nu=600, ni=300):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, nu, n)
    i = (rng.zipf(1.6, n) - 1) % ni
    y = rng.normal(size=nu)[u] + rng.normal(size=ni)[i] + rng.normal(size=n)
    return pd.DataFrame({"u": u.astype(str), "i": i.astype(str), "x": rng.normal(size=n), "y": y})


@pytest.mark.parametrize("tile", [1, 7, 64])
def test_tiled_schur_equals_serial(monkeypatch, tile):
    d = _crossed(tile)
    m = sm.lmer("y ~ x + (1|u) + (1|i)", d, ordering="blocked")
    theta = np.array([0.8, 1.3])
    m.factor.schur_method = "serial"
    serial = (m.objective(theta), m.gradient(theta), m.factor.S.copy())
    monkeypatch.setattr(blocked, "TILE_ROWS", tile)
    m.factor.schur_method = "tiled"
    tiled = (m.objective(theta), m.gradient(theta), m.factor.S.copy())
    assert tiled[0] == pytest.approx(serial[0], rel=1e-13)
    np.testing.assert_allclose(tiled[1], serial[1], rtol=1e-10)
    low = np.tril_indices(m.factor.q2)
    # S itself was overwritten by its Cholesky factor; compare the factors
    np.testing.assert_allclose(tiled[2][low], serial[2][low], rtol=1e-12, atol=1e-12)


def test_dense_schur_product_equals_scatter():
    """A dense core (most users rate most items): S = M22 - W'W by one BLAS product."""
    rng = np.random.default_rng(3)
    nu, ni = 120, 40
    u, i = np.divmod(np.flatnonzero(rng.random(nu * ni) < 0.6), ni)
    y = rng.normal(size=nu)[u] + rng.normal(size=ni)[i] + rng.normal(size=u.size)
    d = pd.DataFrame({"u": u.astype(str), "i": i.astype(str), "y": y})
    m = sm.lmer("y ~ 1 + (1|u) + (1|i)", d, ordering="blocked")
    assert m.factor.schur_method == "dense"
    theta = np.array([0.7, 1.1])
    dense = (m.objective(theta), m.gradient(theta))
    m.factor.schur_method = "serial"
    serial = (m.objective(theta), m.gradient(theta))
    assert dense[0] == pytest.approx(serial[0], rel=1e-12)
    np.testing.assert_allclose(dense[1], serial[1], rtol=1e-9)
