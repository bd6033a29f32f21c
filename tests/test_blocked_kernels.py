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


@pytest.mark.parametrize("n,panel,nthreads", [(1, 4, 2), (37, 8, 2), (300, 64, 2), (301, 384, 3), (500, 50, 1),
                                                 (1000, None, 2), (1601, None, 2)])   # default panels
def test_tile_cholesky_equals_lapack(n, panel, nthreads):
    """linalg.dense: the tile Cholesky on Python threads gives LAPACK's factor, reads only
    the lower triangle, and is the same bit for bit on a second run."""
    import scipy.linalg as sla
    from sparsemixed.linalg import dense

    rng = np.random.default_rng(n)
    A = rng.standard_normal((n, max(1, n // 2)))
    S0 = A @ A.T / n + np.eye(n)
    runs = []
    for _ in range(2):
        S = np.tril(S0) + np.triu(rng.normal(size=(n, n)) * 1e3, 1)     # junk above the diagonal
        assert dense.cholesky_lower_inplace(S, nthreads=nthreads, panel=panel) == 0
        runs.append(np.tril(S))
    ref = np.tril(sla.cholesky(S0, lower=True))
    np.testing.assert_allclose(runs[0], ref, rtol=1e-12, atol=1e-13)
    assert np.array_equal(runs[0], runs[1])


def test_tile_cholesky_reports_the_failing_minor():
    """Not positive definite: LAPACK's info (order of the first non-PD leading minor)."""
    import scipy.linalg as sla
    from sparsemixed.linalg import dense

    rng = np.random.default_rng(5)
    n = 200
    A = rng.standard_normal((n, n))
    S0 = A @ A.T / n + np.eye(n)
    S0[130, 130] = -1.0
    _, info = sla.lapack.dpotrf(S0.copy(), lower=1)
    assert info > 0
    assert dense.cholesky_lower_inplace(S0.copy(), nthreads=2, panel=48) == info


def test_blocked_factor_with_tile_cholesky(monkeypatch):
    """The blocked factor gives the same criterion and gradient with its Schur block
    factored by tiles on threads as by one LAPACK call."""
    d = _crossed(11)
    m = sm.lmer("y ~ x + (1|u) + (1|i)", d, ordering="blocked")
    theta = np.array([0.8, 1.3])
    monkeypatch.setattr(blocked, "PARALLEL_Q2", 10**9)
    ref = (m.objective(theta), m.gradient(theta))
    monkeypatch.setattr(blocked, "PARALLEL_Q2", 1)
    monkeypatch.setattr(blocked.dense, "PANEL", 32)
    got = (m.objective(theta), m.gradient(theta))
    assert got[0] == pytest.approx(ref[0], rel=1e-13)
    np.testing.assert_allclose(got[1], ref[1], rtol=1e-10)


@pytest.mark.parametrize("k", [0, 1, 2, 3, 7, 8, 27, 64])
def test_pairwise_sum_keeps_order_and_total(k):
    """crossprod.pairwise_sum (the chunk reduction): the same total as a running sum, the
    items' order kept (string concatenation is not commutative), None for no items."""
    from sparsemixed.crossprod import pairwise_sum

    words = [f"<{i}>" for i in range(k)]
    assert pairwise_sum(words) == ("".join(words) if k else None)
    assert pairwise_sum(iter(range(k))) == (sum(range(k)) if k else None)


def test_serial_twins_have_their_own_cache_entries():
    """A serial twin is a separate function for numba's on-disk cache (else the parallel
    kernel and its twin would load each other's machine code)."""
    from sparsemixed.linalg.threads import serial_twin

    twin = serial_twin(blocked._schur_scalar_tiled)
    assert twin.py_func.__qualname__ != blocked._schur_scalar_tiled.py_func.__qualname__
    assert not twin.targetoptions.get("parallel")
    assert blocked._schur_scalar_tiled.targetoptions.get("parallel")


def test_parallel_kernels_equal_serial_and_sparse_products(monkeypatch):
    """With every kernel forced onto its parallel version (PARALLEL_MIN_WORK = 0): the
    criterion and gradient equal the serial kernels'; L21 @ B and L21' @ B equal scipy's
    sparse products with L21 assembled from (W, lev_rows, lev_ptr); M's values from the
    one-contribution-per-entry kernel equal the general scatter kernel's."""
    import scipy.sparse as sp
    from sparsemixed.linalg import threads
    from sparsemixed.relcov import _m_values

    m = sm.lmer("y ~ x + (1|u) + (1|i)", _crossed(5), ordering="blocked")
    f = m.factor
    f.schur_method = "tiled"
    theta = np.array([0.8, 1.3])
    serial = (m.objective(theta), m.gradient(theta))
    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 0)
    parallel = (m.objective(theta), m.gradient(theta))
    assert parallel[0] == pytest.approx(serial[0], rel=1e-13)
    np.testing.assert_allclose(parallel[1], serial[1], rtol=1e-10)

    nlev = f.lev_ptr.size - 1
    L21 = sp.csr_matrix((f.W, (f.lev_rows, np.repeat(np.arange(nlev), np.diff(f.lev_ptr)))),
                        shape=(f.q2, f.q1))
    rng = np.random.default_rng(0)
    B, C = rng.standard_normal((f.q1, 3)), rng.standard_normal((f.q2, 4))
    np.testing.assert_allclose(f._L21_product(B, f.q2, False), L21 @ B, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(f._L21_product(C, f.q1, True), L21.T @ C, rtol=1e-12, atol=1e-12)

    rc = m.relcov
    assert rc._one_to_one
    general = _m_values(rc.A_data, rc.src, rc.t1, rc.t2, rc.target, rc.diag_pos, theta, rc.nnz_M)
    np.testing.assert_array_equal(rc.M_values(theta), general)


@pytest.mark.parametrize("formula,k1", [("y ~ x + (1 + x || g) + (1 + x | h)", 2),
                                        ("y ~ x + (1 | g) + (0 + x | g) + (1 | h)", 2),
                                        ("y ~ x + z + (1 + x | g) + (0 + z | g) + (1 | h)", 3)])
def test_terms_on_the_first_factor_are_eliminated_together(formula, k1):
    """select.leading_block: every term on the first grouping factor joins the leading block
    (P gathers their effects level by level), and the permuted blocked factor gives P M P'
    = L L' exactly as a dense Cholesky: log|M|, L^-1 P B, P' L^-T B, and M^-1 on M's pattern
    against a dense inverse; the criterion equals the unamalgamated factor's."""
    from sparsemixed.linalg import select
    import sparsemixed.engine as model_mod

    rng = np.random.default_rng(11)
    n, ng, nh = 600, 40, 9
    g = rng.choice(ng, n, p=rng.dirichlet(np.ones(ng)))
    h = rng.integers(0, nh, n)
    x, z = rng.normal(size=n), rng.normal(size=n)
    y = rng.normal(size=ng)[g] * (1 + x) + rng.normal(size=nh)[h] + 0.5 * z + rng.normal(size=n)
    df = pd.DataFrame(dict(y=y, x=x, z=z, g=[f"g{v}" for v in g], h=[f"h{v}" for v in h]))
    m = sm.lmer(formula, df, ordering="blocked")        # (auto: the dense engine at this size)
    f = m.factor
    ng = df.g.nunique()
    assert f.ordering == "blocked" and f.k1 == k1 and f.q1 == ng * k1 and f.q2 == m.q - ng * k1
    perm = f.perm()
    assert sorted(perm) == list(range(m.q)) and not np.array_equal(perm, np.arange(m.q))
    theta = np.linspace(0.4, 1.3, m.theta0.size) * np.where(np.isfinite(m.lower), 1.0, -0.3)
    m.pls(theta)                                  # factors M at theta
    M = m.relcov.M(theta).toarray()
    M = M + np.tril(M, -1).T
    L = np.linalg.cholesky(M[np.ix_(perm, perm)])
    assert f.logdet() == pytest.approx(2 * np.log(np.diag(L)).sum(), rel=1e-12)
    B = rng.normal(size=(m.q, 3))
    np.testing.assert_allclose(f.solve_L(B), np.linalg.solve(L, B[perm]), rtol=1e-9, atol=1e-11)
    back = np.empty_like(B)
    back[perm] = np.linalg.solve(L.T, B)
    np.testing.assert_allclose(f.solve_Lt(B), back, rtol=1e-9, atol=1e-11)
    Minv = np.linalg.inv(M)
    rc = m.relcov
    cols = np.repeat(np.arange(m.q), np.diff(rc.M_indptr))
    np.testing.assert_allclose(f.selected_inverse(rc.M_indptr, rc.M_indices), Minv[rc.M_indices, cols],
                               rtol=1e-9, atol=1e-12)
    one = model_mod.leading_block
    try:
        model_mod.leading_block = lambda terms: (terms[0].q, terms[0].k, None)
        m0 = sm.lmer(formula, df, ordering="blocked")
    finally:
        model_mod.leading_block = one
    assert m0.factor.q2 > f.q2
    assert m.objective(theta) == pytest.approx(m0.objective(theta), rel=1e-12)
    np.testing.assert_allclose(m.gradient(theta), m0.gradient(theta), rtol=1e-8, atol=1e-9)
    assert select.leading_block(m.terms)[2] is not None
