"""The fast paths of the blocked factor and the gradient against the serial kernels and a
dense numpy brute force, on random unbalanced crossed designs:

* _schur_blocks_tiled (S for a vector-valued leading term, k1 > 1) against _factor_blocks'
  serial scatter: the same bits, with the parallel kernel and its serial twin;
* _selected_inverse (gathered columns of S^-1) against inv(M) on M's pattern, log|M|
  against slogdet, the gradient against finite differences of the criterion;
* gradient._trace_dM against the two np.bincount of its formula;
* L21 @ B on both sides of the parallel threshold.
"""
import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import sparsemixed as sm
import sparsemixed.gradient as gradient_mod
import sparsemixed.linalg.blocked as blocked
from sparsemixed.linalg import threads

FORMULAS = {
    "k1=2": "y ~ x + (1 + x | g) + (1 | h)",
    "k1=3": "y ~ x + z + (1 + x + z | g) + (1 + z | h)",
    "k1=2, ||": "y ~ x + (1 + x || g) + (1 + z | h)",
    "k1=1": "y ~ x + (1 | g) + (1 | h)",
}


def _design(seed: int, ng: int, nh: int, frac: float) -> pd.DataFrame:
    """Each level of g sees a random subset of h's levels (at least three), 2-4 rows per pair."""
    rng = np.random.default_rng(seed)
    g, h = [], []
    for j in range(ng):
        seen = np.flatnonzero(rng.random(nh) < frac)
        if seen.size < 3:
            seen = np.sort(rng.choice(nh, 3, replace=False))
        reps = rng.integers(2, 5, seen.size)
        g += [j] * int(reps.sum())
        h += list(np.repeat(seen, reps))
    g, h = np.asarray(g), np.asarray(h)
    n = g.size
    x, z = rng.normal(size=n), rng.choice([-0.5, 0.5], n)
    y = (x + rng.normal(size=ng)[g] + 0.5 * rng.normal(size=ng)[g] * x + rng.normal(size=nh)[h]
         + 0.3 * rng.normal(size=nh)[h] * z + rng.normal(size=n))
    return pd.DataFrame({"g": [f"g{v:03d}" for v in g], "h": [f"h{v:03d}" for v in h], "x": x, "z": z, "y": y})


def _model(data, formula):
    return sm.lmer(formula, data, ordering="blocked")


def _theta(m, seed):
    rng = np.random.default_rng(seed)
    th = np.asarray(m.theta0, dtype=float).copy()
    lower = np.asarray(m.lower)
    free = ~np.isfinite(lower) | (lower < 0)
    th[~free] = rng.uniform(0.3, 1.5, (~free).sum())
    th[free] = rng.uniform(-0.4, 0.4, free.sum())
    return th


designs = st.tuples(st.integers(0, 10**6), st.integers(15, 40), st.integers(3, 14), st.floats(0.15, 0.9))  # g first
SETTINGS = settings(max_examples=12, deadline=None,      # monkeypatch: each example sets what it uses
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def _dense_M(m, theta):
    L = m.relcov.M(theta).toarray()
    return L + np.tril(L, -1).T


@pytest.mark.parametrize("name", ["k1=2", "k1=3", "k1=2, ||"])
@SETTINGS
@given(d=designs)
def test_tiled_block_schur_is_the_serial_scatter_bit_for_bit(name, d, monkeypatch):
    m = _model(_design(*d), FORMULAS[name])
    f = m.factor
    assert f.k1 > 1 and f.schur_method == "blocks"
    theta = _theta(m, d[0])
    Mdata = m.relcov.M_values(theta)
    out = {}
    for label, method, min_work in (("serial", "serial", 0), ("par", "blocks", 0), ("twin", "blocks", np.inf)):
        monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", min_work)
        g = f.clone()
        g.schur_method = method
        g.factorize_values(Mdata)
        low = np.tril_indices(g.q2)
        out[label] = (g.logdet(), g.R22[np.triu_indices(g.q2)].copy(), g.W.copy(), g.L11.copy())
    for label in ("par", "twin"):
        assert out[label][0] == out["serial"][0]
        for a, b in zip(out[label][1:], out["serial"][1:]):
            assert np.array_equal(a, b)
    # and S itself (before the Cholesky), to a brute force
    g = f.clone()
    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", 0)
    blocked._factor_blocks(Mdata, g.q1, g.k1, g.pos11, g.pos21, g.w_off, g.lev_ptr, g.lev_rows, g.pos22,
                           g.S.reshape(-1), g.q2, g.L11, g.W, True)
    for nt in (1, 2, 3):
        blocked._schur_blocks_tiled(Mdata, g._pos22s, g._ptr22, g.W, g.WT, g.lev_ptr, g.lev_rows, g.k1,
                                    g.S.reshape(-1), g.q2, g._row_tiles(), nt)
        P = f.perm()
        Mf = _dense_M(m, theta)[np.ix_(P, P)]
        q1 = f.q1
        S_ref = Mf[q1:, q1:] - Mf[q1:, :q1] @ np.linalg.solve(Mf[:q1, :q1], Mf[:q1, q1:])
        np.testing.assert_allclose(g.S[low], S_ref[low], rtol=1e-10, atol=1e-10 * np.abs(S_ref).max())


@pytest.mark.parametrize("name", list(FORMULAS))
@pytest.mark.parametrize("min_work", [0, np.inf])         # parallel kernels / serial twins
@SETTINGS
@given(d=designs)
def test_selected_inverse_and_logdet_against_dense(name, min_work, d, monkeypatch):
    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", min_work)
    m = _model(_design(*d), FORMULAS[name])
    theta = _theta(m, d[0] + 1)
    state = m.pls(theta)
    rc = m.relcov
    sel = state.factor.selected_inverse(rc.M_indptr, rc.M_indices)
    Mf = _dense_M(m, theta)
    Minv = np.linalg.inv(Mf)
    cols = np.repeat(np.arange(rc.q), np.diff(rc.M_indptr))
    ref = Minv[rc.M_indices, cols]
    np.testing.assert_allclose(sel, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
    assert state.factor.logdet() == pytest.approx(np.linalg.slogdet(Mf)[1], rel=1e-10, abs=1e-8)
    again = m.pls(theta).factor.selected_inverse(rc.M_indptr, rc.M_indices)
    assert np.array_equal(sel, again)                       # deterministic


@pytest.mark.parametrize("name", list(FORMULAS))
@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(d=designs)
def test_gradient_against_finite_differences(name, d):
    m = _model(_design(*d), FORMULAS[name])
    theta = _theta(m, d[0] + 2)
    g = m.gradient(theta)
    h = 1e-6
    fd = np.array([(m.objective(theta + h * e) - m.objective(theta - h * e)) / (2 * h)
                   for e in np.eye(theta.size)])
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-4 * max(1.0, np.abs(fd).max()))


def test_gradient_same_bits_for_parallel_and_serial_block_kernels(monkeypatch):
    """The criterion does not depend on the thread count (the Schur kernel gives the same
    bits); the gradient agrees to rounding, and repeats bit for bit."""
    m = _model(_design(7, 60, 20, 0.4), FORMULAS["k1=3"])
    theta = _theta(m, 7)
    res = {}
    for min_work in (0, np.inf):
        monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", min_work)
        res[min_work] = [m.objective_and_gradient(theta) for _ in range(2)]
        assert res[min_work][0][0] == res[min_work][1][0]
        assert np.array_equal(res[min_work][0][1], res[min_work][1][1])
    assert res[0][0][0] == res[np.inf][0][0]
    np.testing.assert_allclose(res[0][0][1], res[np.inf][0][1], rtol=1e-10)


@pytest.mark.parametrize("name", list(FORMULAS))
def test_trace_kernel_against_bincount(name):
    m = _model(_design(11, 30, 9, 0.5), FORMULAS[name])
    rc = m.relcov
    theta = _theta(m, 3)
    S_M = np.random.default_rng(5).standard_normal(rc.nnz_M)
    w = rc.A_data[rc.src] * S_M[rc.target] * rc.mult[rc.target]
    nt = theta.size
    ref = (np.bincount(rc.t1, weights=w * theta[rc.t2], minlength=nt)
           + np.bincount(rc.t2, weights=w * theta[rc.t1], minlength=nt))
    for nthreads in (1, 2, 3, 7):
        for kernel in (gradient_mod._trace_dM, gradient_mod._trace_dM_serial):
            if kernel is gradient_mod._trace_dM_serial and nthreads > 1:
                continue
            out = kernel(rc.A_data, rc.src, rc.target, S_M * rc.mult, rc.t1, rc.t2, theta, nthreads)
            np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())
            again = kernel(rc.A_data, rc.src, rc.target, S_M * rc.mult, rc.t1, rc.t2, theta, nthreads)
            assert np.array_equal(out, again)
    np.testing.assert_allclose(gradient_mod.trace_dM(S_M, rc, theta), ref, rtol=1e-12, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("min_work", [0, np.inf])        # both sides of the parallel threshold
def test_L21_products_on_both_sides_of_the_threshold(min_work, monkeypatch):
    m = _model(_design(13, 50, 12, 0.5), FORMULAS["k1=2"])
    f = m.pls(_theta(m, 13)).factor
    B1 = np.random.default_rng(1).standard_normal((f.q1, 3))
    B2 = np.random.default_rng(2).standard_normal((f.q2, 3))
    ref1 = blocked._L21_product_serial(f.W, f.lev_ptr, f.lev_rows, f.k1, B1, f.q2, False, 1)
    ref2 = blocked._L21_product_serial(f.W, f.lev_ptr, f.lev_rows, f.k1, B2, f.q1, True, 1)
    monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", min_work)
    np.testing.assert_allclose(f._L21_product(B1, f.q2, False), ref1, rtol=1e-13, atol=1e-13)
    np.testing.assert_allclose(f._L21_product(B2, f.q1, True), ref2, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", ["k1=3", "k1=1"])
def test_selected_inverse_tiles_threads_and_buffer_limit(name, monkeypatch):
    """One thread: the same bits whatever the tiles (columns are summed in order); several:
    the same to rounding, and a buffer limit that forces one thread gives the serial bits."""
    m = _model(_design(17, 40, 12, 0.5), FORMULAS[name])
    theta = _theta(m, 17)
    rc = m.relcov
    runs = {}
    cases = (("serial", np.inf, 2**19, 2**26), ("serial, 8 columns", np.inf, 1, 2**26),
             ("serial, one tile", np.inf, 2**40, 2**26), ("parallel", 0, 2**19, 2**26),
             ("parallel, 8 columns", 0, 1, 2**26), ("parallel, no buffer room", 0, 2**19, 0))
    for label, min_work, tile_bytes, buffer in cases:
        monkeypatch.setattr(threads, "PARALLEL_MIN_WORK", min_work)
        monkeypatch.setattr(blocked, "SELINV_TILE_BYTES", tile_bytes)
        monkeypatch.setattr(blocked, "L21_BUFFER_BYTES", buffer)
        runs[label] = m.pls(theta).factor.selected_inverse(rc.M_indptr, rc.M_indices)
    ref = runs["serial"]
    for label in ("serial, 8 columns", "serial, one tile", "parallel, no buffer room"):
        assert np.array_equal(runs[label], ref), label
    for label in ("parallel", "parallel, 8 columns"):
        np.testing.assert_allclose(runs[label], ref, rtol=1e-12, atol=1e-14 * np.abs(ref).max())


def _structure_by_numpy(indptr, indices, q1, k1):
    """The general structure's arrays by numpy set operations (the definition): entries in
    column order; each level's rows beyond q1 the sorted union over its k1 columns."""
    q = indptr.size - 1
    q2 = q - q1
    col = np.repeat(np.arange(q, dtype=np.int64), np.diff(indptr))
    row = np.asarray(indices, dtype=np.int64)
    pos = np.arange(row.size)
    in11, in21, in22 = (col < q1) & (row < q1), (col < q1) & (row >= q1), col >= q1
    lev = col // k1
    pos11 = np.column_stack([pos[in11], lev[in11], row[in11] % k1, col[in11] % k1])
    uk, inv = np.unique(lev[in21] * q2 + row[in21] - q1, return_inverse=True)
    lev_ptr = np.concatenate([[0], np.cumsum(np.bincount(uk // q2, minlength=q1 // k1))])
    pos22 = np.column_stack([pos[in22], (row[in22] - q1) * q2 + col[in22] - q1])
    return pos11, pos[in21], inv.reshape(-1) * k1 + col[in21] % k1, uk % q2, lev_ptr, pos22


@pytest.mark.parametrize("formula", ["y ~ x + (1 + x | a) + (1 | b)", "y ~ f + (0 + f | a) + (1 | b)",
                                     "y ~ x + (1 + x | a) + (1 + x | b)"])
@pytest.mark.parametrize("seed", [0, 1])
def test_vector_structure_equals_its_definition(formula, seed):
    from sparsemixed.linalg.blocked import _vector_structure

    rng = np.random.default_rng(seed)
    n = 3000
    a = rng.choice(200, n, p=rng.dirichlet(np.full(200, 0.7)))
    b = rng.choice(30, n, p=rng.dirichlet(np.ones(30)))
    d = pd.DataFrame({"y": rng.normal(size=n), "x": rng.normal(size=n), "f": rng.choice(list("pqr"), n),
                      "a": a.astype(str), "b": b.astype(str)})
    m = sm.lmer(formula, d, ordering="blocked")
    fct, rc = m.factor, m.relcov
    got = _vector_structure(rc.M_indptr, rc.M_indices, fct.q1, fct.k1)
    for x, y in zip(got, _structure_by_numpy(rc.M_indptr, rc.M_indices, fct.q1, fct.k1)):
        np.testing.assert_array_equal(x, y)
