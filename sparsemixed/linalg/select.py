"""Choosing how to factor M, deterministically (same data -> same choice -> same bits).

* ``"blocked"``: eliminate the first term (most levels; its block of M is block
  diagonal) analytically and factor the dense Schur complement S of the other terms
  with LAPACK.  Chosen when S is small (q2 <= MAX_DENSE_Q2) and not very sparse.
* CHOLMOD with the fill-reducing ordering ``natural`` (= grouping factor with most
  levels first, lme4's term order), ``amd`` or ``metis``: the one whose factor L needs
  the fewest flops, sum_j nnz(L_j)^2, counted from the symbolic analysis (exact column
  counts, linalg/symbolic.py) before any numeric factorization; simplicial when those
  flops are under 200 per entry of L (cholesky.SUPERNODAL_SWITCH, measured), supernodal otherwise.
* Memory guard: the blocked factor's dense blocks and each ordering's supernodal factor
  (nnz(L) and the zeros of its dense supernodes, supernodal_bytes) are sized first;
  nothing over ``memory_limit`` is ever factored (MemoryLimitError says what it would
  need and what to do).
* Time: the chosen factor's flops per factorization (q2^3/3 for the blocked factor,
  sum_j nnz(L_j)^2 for CHOLMOD) give an estimate of one evaluation's time at
  ASSUMED_FLOPS_PER_S; past COST_WARN_SECONDS a CostWarning says so, with the options,
  before the first numeric factorization (e.g. the full MovieLens-32M shape:
  benchmarks/results/thresholds.md).

The factor is returned analysed, not factored: the first evaluation of the criterion
factors it, at the theta the optimizer starts from (a factorization at lme4's theta = 1
during the build would be wasted work when the fit starts elsewhere).
"""
from __future__ import annotations


import numpy as np
import scipy.sparse as sp

import warnings

from ..errors import CostWarning, MemoryLimitError, SparseMixedError
from .blocked import MAX_DENSE_Q2, BlockedCholesky
from .cholesky import ORDERINGS, SUPERNODAL_SWITCH, SparseCholesky
from .symbolic import BYTES_PER_ENTRY, factor_counts, fmt_bytes, memory_budget

SPARSE_S_DENSITY = 0.05
MAX_PAIRS = 50_000_000
ASSUMED_FLOPS_PER_S = 2e10   # dense dpotrf on one core of the 2-core VM: 27-32 GFLOPS; CHOLMOD's
                             # supernodal factor on MovieLens-shaped matrices ran below that
COST_WARN_SECONDS = 600.0


def schur_density(blocked: BlockedCholesky) -> float:
    """Fraction of the lower triangle of S = M22 - L21 L21' that is structurally nonzero:
    the pattern of M22 united with that of B'B, B (levels x q2) being L21's pattern."""
    q2 = blocked.q2
    if q2 == 0:
        return 1.0
    sizes = np.diff(blocked.lev_ptr)
    if int((sizes.astype(np.int64) ** 2).sum()) > MAX_PAIRS:
        return 1.0
    B = sp.csr_matrix((np.ones(blocked.lev_rows.size, dtype=np.int32), blocked.lev_rows, blocked.lev_ptr),
                      shape=(sizes.size, q2))
    f = blocked.pos22[:, 1]
    M22 = sp.csr_matrix((np.ones(f.size, dtype=np.int32), (f // q2, f % q2)), shape=(q2, q2))
    pattern = sp.tril((B.T @ B) + M22 + M22.T)
    return pattern.nnz / (q2 * (q2 + 1) / 2)


def blocked_bytes(q1: int, k1: int, q2: int, nnz_M: int) -> int:
    """Memory of the blocked factor: the dense Schur complement S (q2 x q2) and, for the
    gradient, S^-1 of the same size, plus L11 and the per-level L21 values (~ nnz(M))."""
    return 8 * 2 * q2 * q2 + 8 * (q1 * k1 + 3 * nnz_M)


def _memory_error(what: str, need: float, budget: float, q: int, q2: int) -> MemoryLimitError:
    return MemoryLimitError(
        f"the factor of M (q = {q:,} random effects) would need {what} = {fmt_bytes(need)}, more than "
        f"the memory limit of {fmt_bytes(budget)}. Options: raise memory_limit= if the machine has "
        f"the memory; drop or pool rarely observed levels of the grouping factors (the dense block "
        f"after the first term has {q2:,} levels); put the factor with the most levels first; or "
        "fit on a machine with more memory")


def supernodal_bytes(nnz: int, padding: int) -> float:
    """Memory of CHOLMOD's supernodal factor: nnz(L) values plus the zeros stored above the
    diagonal of its dense supernodes (symbolic.factor_counts), 10% more for the amalgamation of
    small supernodes and 4 bytes per entry for row indices and workspace.  (The full
    MovieLens shape, METIS: 0.89e9 entries + padding; the process peaked at 20.2 GB where
    16 bytes per entry of nnz(L) alone had said 14 GB.)"""
    return 8.0 * 1.1 * (nnz + padding) + 4.0 * nnz


def simplicial_bytes(nnz: int) -> float:
    """CHOLMOD's simplicial factor: values and row indices of nnz(L) entries, 20% slack."""
    return 1.2 * 12.0 * nnz


def cholmod_candidates(M, orderings=ORDERINGS, limit_entries: int = 2**62):
    """Symbolic analysis with each ordering and the exact size of its factor, counted
    without computing it (symbolic.factor_counts), stopping past ``limit_entries``.
    table: ordering -> (None, nnz(L) or -1 if over the limit, flops); need: ordering ->
    the supernodal factor's bytes (supernodal_bytes), for those within the limit."""
    table, facs, need = {}, {}, {}
    for o in orderings:
        try:
            f = SparseCholesky(M, o)
        except Exception:  # e.g. METIS not compiled into this CHOLMOD
            continue
        counts, nnz, pad = factor_counts(M, f.perm(), limit_entries, return_padding=True)
        cc = counts.astype(np.float64)
        table[o] = (None, nnz, float((cc ** 2).sum()) if nnz >= 0 else np.inf)
        if nnz >= 0:
            if table[o][2] < SUPERNODAL_SWITCH * max(nnz, 1):     # tiny supernodes: simplicial
                f = SparseCholesky(M, o, "simplicial")
                need[o] = simplicial_bytes(nnz)
            else:
                need[o] = supernodal_bytes(nnz, pad)
            f.flops = table[o][2]
            facs[o] = f
    return facs, table, need


def leading_block(terms) -> tuple[int, int, np.ndarray | None]:
    """(q1, k1, perm) of the blocked factor's leading block: every term on the first term's
    grouping factor (``(1 + x || g)`` is two, ``(1 | g) + (0 + x | g)`` too), their effects
    gathered level by level (perm[i] = column of M that goes to place i; the other terms
    follow in their order), so that M's leading block stays block diagonal with blocks of
    k1 = the sum of the terms' sizes.  perm is None when only the first term qualifies.
    (1 + x || g) with 1,651 levels next to (1 + x | b) with 277: the dense Schur block
    2,205 -> 554.)"""
    first = terms[0]
    offsets = np.cumsum([0] + [t.q for t in terms])
    same = [i for i, t in enumerate(terms)
            if t.group.name == first.group.name and t.nlevels == first.nlevels]
    if len(same) == 1:
        return first.q, first.k, None
    k1, nlev = sum(terms[i].k for i in same), first.nlevels
    parts = [offsets[i] + np.arange(nlev)[:, None] * terms[i].k + np.arange(terms[i].k)[None, :] for i in same]
    merged = np.concatenate(parts, axis=1).reshape(-1)          # level-major: level j's k1 effects
    rest = np.concatenate([np.arange(offsets[i], offsets[i + 1]) for i in range(len(terms)) if i not in same]
                          or [np.zeros(0, dtype=np.int64)])
    return nlev * k1, k1, np.concatenate([merged, rest]).astype(np.int64)


def select_factor(M, q1: int, k1: int, ordering: str = "auto", memory_limit=None, perm=None):
    """Return (factor, table) for M's pattern; ``ordering`` forces a method.  ``perm``:
    the blocked factor's leading-block permutation (:func:`leading_block`).

    No factorization starts unless its size fits ``memory_limit`` (bytes or "12GB";
    default 80% of the available memory): a catastrophic ordering is refused with
    :class:`MemoryLimitError` before any numeric work."""
    valid = ("auto", "blocked") + ORDERINGS
    if ordering not in valid:
        raise SparseMixedError(f"ordering must be one of {valid}, got {ordering!r}")
    budget = memory_budget(memory_limit)
    q = M.shape[0]
    q2 = q - q1
    need_blocked = blocked_bytes(q1, k1, q2, M.nnz)
    if ordering == "blocked" and need_blocked > budget:
        raise _memory_error("a dense Schur complement and its inverse", need_blocked, budget, q, q2)
    if ordering == "blocked" or (ordering == "auto" and q2 <= MAX_DENSE_Q2 and need_blocked <= budget):
        try:
            blocked = BlockedCholesky(M.indptr, M.indices, q1, k1, perm)
        except ValueError:          # the first term's block of M is not block diagonal
            if ordering == "blocked":
                raise SparseMixedError("ordering='blocked' needs the first term's block of M to be "
                                       "block diagonal (one level per row); use 'auto'") from None
            blocked = None
        if blocked is not None and (ordering == "blocked" or q2 <= 500
                                    or schur_density(blocked) >= SPARSE_S_DENSITY):
            flops = float(q2) ** 3 / 3
            _warn_cost(flops, f"a dense Cholesky of the {q2:,} x {q2:,} Schur block")
            return blocked, {"blocked": (None, q1 * k1 + q2 * (q2 + 1) // 2, flops)}
    facs, table, need = cholmod_candidates(M, ORDERINGS if ordering in ("auto", "blocked") else (ordering,),
                                           limit_entries=budget // BYTES_PER_ENTRY)
    if not facs:
        if table:
            raise _memory_error("a sparse factor L with more than "
                                f"{budget // BYTES_PER_ENTRY:,} entries (every ordering: "
                                f"{', '.join(table)})", budget + 1, budget, q, q2)
        raise SparseMixedError(f"CHOLMOD could not analyse M with ordering {ordering!r}")
    fits = {o: f for o, f in facs.items() if need[o] <= budget}
    if not fits:
        o = min(need, key=need.get)
        raise _memory_error(f"a supernodal factor with {table[o][1]:,} entries and its dense "
                            f"supernodes (ordering {o!r}, the smallest)", need[o], budget, q, q2)
    facs = fits
    best = min(facs, key=lambda o: (table[o][2], ORDERINGS.index(o)))
    _warn_cost(table[best][2], f"a sparse Cholesky factor with {table[best][1]:,} entries "
               f"(CHOLMOD, ordering {best!r})")
    return facs[best], table


def _warn_cost(flops: float, what: str) -> None:
    seconds = flops / ASSUMED_FLOPS_PER_S
    if seconds > COST_WARN_SECONDS:
        warnings.warn(
            f"one evaluation of the criterion needs {what}: about {flops:.2g} flops, roughly "
            f"{seconds / 60:,.0f} minutes at {ASSUMED_FLOPS_PER_S / 1e9:.0f} GFLOPS, and a fit takes "
            "20-40 evaluations (the model is built; the first evaluation factors it). To make it cheaper: drop or pool "
            "rarely observed levels of the grouping factors (the random effects after the first term "
            "make the dense part of the factor), or fit a subset first", CostWarning, stacklevel=2)
