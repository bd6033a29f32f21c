"""linalg.dense.inverse_from_cholesky (S^-1 by tiles on Python threads, for the gradient)
against numpy's inverse and LAPACK dpotri: unbalanced sizes, both memory conventions of the
factor, the same bits from run to run and for any thread count, dpotri's info; and through
BlockedCholesky (inverse_diagonal, selected_inverse) against a dense inverse of M."""
import numba
import numpy as np
import pandas as pd
import pytest
import scipy.linalg as sla

import sparsemixed as sm
import sparsemixed.linalg.blocked as blocked
from sparsemixed.linalg import dense
from sparsemixed.linalg.threads import one_blas_thread


def _spd(n, seed):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, max(1, n // 2)))
    return A @ A.T / n + np.eye(n)


def _factor(S0, how, seed):
    """The factor as cholesky_lower_inplace leaves it (C-ordered, L in the lower triangle) or
    as dpotrf does (Fortran, R = L' in the upper), junk in the other triangle."""
    n = S0.shape[0]
    junk = np.random.default_rng(seed + 1).normal(size=(n, n)) * 1e3
    if how == "tiles":
        S = np.tril(S0) + np.triu(junk, 1)
        assert dense.cholesky_lower_inplace(S, nthreads=2) == 0
        return S
    R, info = sla.lapack.dpotrf(np.asfortranarray(S0), lower=0, clean=0)
    assert info == 0
    return np.asfortranarray(np.triu(R) + np.tril(junk, -1))


def _inverse(R, nthreads, panel=None):
    with one_blas_thread():
        U, info = dense.inverse_from_cholesky(R, nthreads=nthreads, panel=panel)
    assert info == 0 and U.flags.f_contiguous and U.shape == R.shape
    return np.triu(U)


@pytest.mark.parametrize("how", ["tiles", "dpotrf"])
@pytest.mark.parametrize("n,panel", [(1, None), (2, None), (5, 2), (37, None), (37, 8), (100, 48), (255, None),
                                     (256, None), (257, None), (300, 100), (513, None), (1300, None)])
def test_inverse_equals_numpy_and_dpotri(n, panel, how):
    S0 = _spd(n, n)
    R = _factor(S0, how, n)
    U = _inverse(R, 2, panel)
    ref = np.triu(np.linalg.inv(S0))
    np.testing.assert_allclose(U, ref, rtol=0, atol=1e-10 * np.abs(ref).max())
    P, info = sla.lapack.dpotri(R if how == "dpotrf" else R.T, lower=0)
    assert info == 0
    np.testing.assert_allclose(U, np.triu(P), rtol=0, atol=1e-12 * np.abs(ref).max())


@pytest.mark.parametrize("n,panel", [(300, 64), (700, None), (1300, None), (1700, 256)])
def test_same_bits_on_repeated_calls_and_any_thread_count(n, panel):
    """Each tile task is the same BLAS calls on the same data whichever thread runs it."""
    R = _factor(_spd(n, 3), "tiles", 3)
    ref = _inverse(R, 1, panel)
    for nthreads in (2, 2, 3):
        assert np.array_equal(_inverse(R, nthreads, panel), ref), nthreads


def test_zero_diagonal_gives_dpotri_info():
    S0 = _spd(300, 9)
    R = _factor(S0, "dpotrf", 9)
    R[130, 130] = 0.0
    _, ref = sla.lapack.dpotri(R, lower=0)
    assert ref == 131
    assert dense.inverse_from_cholesky(R, nthreads=2)[1] == ref
    assert dense.inverse_from_cholesky(np.zeros((0, 0)))[1] == 0
    with pytest.raises(ValueError):
        dense.inverse_from_cholesky(np.ones((3, 4)))


def _crossed(seed, n=3000, nu=500, ni=260):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, nu, n)
    i = rng.integers(0, ni, n)
    y = rng.normal(size=nu)[u] + rng.normal(size=ni)[i] + rng.normal(size=n)
    return pd.DataFrame({"u": u.astype(str), "i": i.astype(str), "x": rng.normal(size=n), "y": y})


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="the tiled inverse needs 2 threads")
@pytest.mark.parametrize("parallel_q2", [1, 10**9])          # S factored by tiles / by dpotrf
def test_blocked_inverse_diagonal_and_selected_inverse(parallel_q2, monkeypatch):
    """BlockedCholesky on the tiled S^-1 (thresholds lowered, small tiles): diag(M^-1) and M^-1
    on M's pattern against a dense inverse of M, and against the dpotri path."""
    m = sm.lmer("y ~ x + (1|u) + (1|i)", _crossed(4), ordering="blocked")
    theta = np.array([0.8, 1.3])
    rc = m.relcov
    monkeypatch.setattr(blocked, "PARALLEL_Q2", parallel_q2)
    monkeypatch.setattr(dense, "INV_PANELS", ((np.inf, 48),))
    calls = []
    tiled = dense.inverse_from_cholesky
    monkeypatch.setattr(dense, "inverse_from_cholesky", lambda *a, **k: calls.append(1) or tiled(*a, **k))
    runs = {}
    for label, q2 in (("dpotri", 10**9), ("tiles", 1)):
        monkeypatch.setattr(blocked, "INVERSE_Q2", q2)
        n_calls = len(calls)
        f = m.pls(theta).factor
        assert f.k1 == 1 and f.q2 > 200
        runs[label] = (f.inverse_diagonal(), f.selected_inverse(rc.M_indptr, rc.M_indices), m.gradient(theta))
        assert (len(calls) > n_calls) == (label == "tiles")
    L = rc.M(theta).toarray()
    Minv = np.linalg.inv(L + np.tril(L, -1).T)
    cols = np.repeat(np.arange(rc.q), np.diff(rc.M_indptr))
    diag, sel, grad = runs["tiles"]
    np.testing.assert_allclose(diag, np.diag(Minv), rtol=1e-10)
    ref = Minv[rc.M_indices, cols]
    np.testing.assert_allclose(sel, ref, rtol=1e-8, atol=1e-10 * np.abs(ref).max())
    np.testing.assert_allclose(diag, runs["dpotri"][0], rtol=1e-12)
    np.testing.assert_allclose(sel, runs["dpotri"][1], rtol=1e-12, atol=1e-14 * np.abs(ref).max())
    np.testing.assert_allclose(grad, runs["dpotri"][2], rtol=1e-10)


@pytest.mark.parametrize("nthreads", [1, 2])
def test_a_task_that_raises_stops_the_graph_and_the_pool_works_after(nthreads):
    """A task's exception (a Ctrl-C above all) comes out of _run_graph: the tasks waiting for
    it do not run, no thread waits for them forever, and the pool serves the next call."""
    calls = []

    def boom():
        raise KeyboardInterrupt("stop")

    graph = {"a": (0, boom, []), "b": (1, lambda: calls.append("b"), ["a"]),
             "c": (2, lambda: calls.append("c"), ["b"])}
    with pytest.raises(KeyboardInterrupt):
        dense._run_graph(graph, nthreads)
    assert calls == []
    S = _spd(300, 3)
    R = S.copy()
    assert dense.cholesky_lower_inplace(R, 2) == 0
    U, info = dense.inverse_from_cholesky(R, 2)
    assert info == 0
    np.testing.assert_allclose(np.triu(U), np.triu(np.linalg.inv(S)), rtol=1e-9, atol=1e-12)
