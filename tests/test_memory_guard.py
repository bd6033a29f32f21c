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
