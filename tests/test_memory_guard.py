"""The factor's size is known before it is computed, and a factor that would not fit
is refused with a clear message (never an out-of-memory kill)."""
import numpy as np
import pytest
import scipy.sparse as sp

import sparsemixed as sm
from sparsemixed.linalg.cholesky import SparseCholesky
from sparsemixed.linalg.symbolic import factor_counts, parse_memory


def _random_spd_pattern(rng, n, density):
    A = sp.random(n, n, density=density, random_state=rng, format="csc")
    A = A + A.T + sp.eye(n) * n
    return sp.tril(A).tocsc()


@pytest.mark.parametrize("seed", range(5))
def test_column_counts_equal_a_dense_factorization(seed):
    rng = np.random.default_rng(seed)
    M = _random_spd_pattern(rng, 60, 0.04)
    perm = rng.permutation(60)
    counts, nnz = factor_counts(M, perm)
    Md = M.toarray()
    Md = Md + np.tril(Md, -1).T
    L = np.linalg.cholesky(Md[np.ix_(perm, perm)])
    np.testing.assert_array_equal(counts, (np.abs(L) > 0).sum(axis=0))
    assert nnz == int((np.abs(L) > 0).sum())
    # and the count stops early past a limit
    assert factor_counts(M, perm, limit=nnz - 1)[1] == -1


@pytest.mark.parametrize("sizes", [[1] * 7, [12], [3, 5, 1, 9], [40, 2]])
def test_supernodal_padding_of_dense_blocks(sizes):
    """Dense diagonal blocks are one supernode each, stored as a full b x b square:
    b (b - 1) / 2 zeros above the diagonal; a diagonal matrix stores none."""
    M = sp.tril(sp.block_diag([np.ones((b, b)) + b * np.eye(b) for b in sizes])).tocsc()
    perm = np.random.default_rng(len(sizes)).permutation(M.shape[0])
    counts, nnz, pad = factor_counts(M, perm, return_padding=True)
    assert nnz == sum(b * (b + 1) // 2 for b in sizes)
    assert pad == sum(b * (b - 1) // 2 for b in sizes)


def test_supernodal_padding_of_an_arrow_and_a_chain():
    n = 30
    arrow = sp.lil_matrix((n, n))
    arrow.setdiag(n)
    arrow[n - 1, :] = 1.0
    arrow[n - 1, n - 1] = n
    # leaves 0..n-2 (count 2) all hang from node n-1 (count 1): the root continues one of
    # them, a supernode of two columns, and the other leaves are supernodes of one
    assert factor_counts(arrow.tocsc(), return_padding=True)[2] == 1
    # a tridiagonal matrix: a chain of counts 2, 2, ..., 2, 1 -- only the last two columns
    # (counts 2 and 1) form a supernode of two
    tri = sp.tril(sp.diags([np.ones(n - 1), 3 * np.ones(n), np.ones(n - 1)], [-1, 0, 1])).tocsc()
    assert factor_counts(tri, return_padding=True)[2] == 1
    # past the count limit the padding is unknown
    assert factor_counts(tri, limit=5, return_padding=True)[1:] == (-1, -1)


def test_counts_bound_cholmods_factor_on_insteval():
    d = sm.datasets.load("InstEval")
    m = sm.lmer("y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", d, ordering="amd")
    M = m.relcov.M(m.theta0)
    f = SparseCholesky(M, "amd")
    f.factorize(M)
    nnz = factor_counts(M, f.perm())[1]
    assert nnz <= f.L().nnz <= 1.25 * nnz          # CHOLMOD pads supernodes


def test_insteval_refused_under_a_small_memory_limit():
    d = sm.datasets.load("InstEval")
    f = "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)"
    with pytest.raises(sm.MemoryLimitError, match=r"would need .* more than the memory limit of 1 MiB") as e:
        sm.lmer(f, d, memory_limit="1MiB")
    assert "memory_limit=" in str(e.value) and "4,128" in str(e.value)
    with pytest.raises(sm.MemoryLimitError, match="dense Schur complement"):
        sm.lmer(f, d, ordering="blocked", memory_limit="5MB")
    # enough for a sparse factor but not for the dense blocks: CHOLMOD is chosen instead
    m = sm.lmer(f, d, memory_limit="16MB")
    assert m.factor.ordering in ("natural", "amd", "metis")
    assert np.isfinite(m.objective(m.theta0))


def test_memory_strings():
    assert parse_memory("12GB") == 12 * 10**9
    assert parse_memory("1.5GiB") == int(1.5 * 2**30)
    assert parse_memory(1000) == 1000
    assert parse_memory("500 MiB") == 500 * 2**20


@pytest.mark.parametrize("ordering,what", [("blocked", r"dense Cholesky of the 1,156 x 1,156 Schur block"),
                                           ("amd", r"sparse Cholesky factor with [\d,]+ entries \(CHOLMOD, ordering 'amd'\)")])
def test_cost_warning_before_an_expensive_factorization(monkeypatch, ordering, what):
    """A factor that fits in memory but would take very long per evaluation is announced,
    with its flops and the options, before the first factorization (here by pretending the
    machine does 1e4 flops a second); a fast one is not."""
    import warnings

    from sparsemixed.linalg import select

    d = sm.datasets.load("InstEval")
    f = "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)"
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.CostWarning)
        sm.lmer(f, d, ordering=ordering)
    monkeypatch.setattr(select, "ASSUMED_FLOPS_PER_S", 1e4)
    with pytest.warns(sm.CostWarning, match=what + r".*flops, roughly [\d,]+ minutes.*drop or pool"):
        sm.lmer(f, d, ordering=ordering)


def test_a_large_cholmod_factorization_runs_its_blas_on_all_threads(monkeypatch):
    """Past THREADED_FLOPS the factorization lifts the one-BLAS-thread limit (and restores
    it); the factor is the same."""
    from threadpoolctl import threadpool_info

    import sparsemixed.linalg.cholesky as chol
    from sparsemixed.linalg.threads import one_blas_thread

    k = 12
    T = sp.diags([-1.0, 2.1, -1.0], [-1, 0, 1], shape=(k, k))
    I = sp.eye(k)
    A = sp.kron(sp.kron(T, I), I) + sp.kron(sp.kron(I, T), I) + sp.kron(sp.kron(I, I), T)
    M = sp.tril(A).tocsc()
    f = SparseCholesky(M, "metis")
    seen = []
    real = chol.all_blas_threads

    def spy():
        seen.append(True)
        return real()
    monkeypatch.setattr(chol, "all_blas_threads", spy)
    with one_blas_thread():
        f.factorize(M)
        ld1 = f.logdet()
        assert not seen
        f.flops = chol.THREADED_FLOPS
        f.factorize(M)
        assert seen
        blas = [d for d in threadpool_info() if d["user_api"] == "blas"]
        assert all(d["num_threads"] == 1 for d in blas)          # the limit is back
    assert f.logdet() == pytest.approx(ld1, rel=1e-12)
    assert ld1 == pytest.approx(np.linalg.slogdet(A.toarray())[1], rel=1e-10)


def test_the_supernodes_zeros_count_against_the_limit():
    """InstEval with the natural ordering: nnz(L) = 749,072 entries pass a 13 MB limit at
    16 bytes each (12 MB), but the supernodal factor with its dense supernodes' zeros
    (~14 MiB) does not: refused before any numeric work, with what it would need."""
    from sparsemixed.linalg.select import cholmod_candidates, supernodal_bytes

    d = sm.datasets.load("InstEval")
    f = "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)"
    m = sm.lmer(f, d, ordering="natural", memory_limit="64MB")
    M = m.relcov.M(m.theta0)
    _, table, need = cholmod_candidates(M, ("natural",))
    counts, nnz, pad = factor_counts(M, m.factor.perm(), return_padding=True)
    assert nnz == table["natural"][1] == 749_072 and pad > 0
    assert need["natural"] == supernodal_bytes(nnz, pad) > 13e6 > 16 * nnz
    with pytest.raises(sm.MemoryLimitError, match=r"supernodal factor with 749,072 entries .* more than "
                                                  r"the memory limit of 12 MiB\. Options: raise memory_limit="):
        sm.lmer(f, d, ordering="natural", memory_limit="13MB")
