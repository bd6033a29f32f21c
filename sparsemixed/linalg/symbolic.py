"""Sizes of a Cholesky factor before computing it: elimination tree and column counts.

For the pattern of A = P M P' (lower triangle), the elimination tree is

    parent(j) = min { i > j : L_ij != 0 }

and row i of L holds exactly the nodes of the "row subtree": the nodes met walking up
the tree from each k with A_ik != 0 (k < i) until a node already marked for row i
(Liu, 1986).  Walking every row subtree counts nnz(L) column by column in O(nnz(L))
time and O(q) memory, with no factor in memory; the walk stops as soon as the count
passes ``limit`` entries, so a catastrophic ordering costs at most ``limit`` steps.

    nnz(L) = sum_j c_j,     flops(L) ~ sum_j c_j^2,     bytes(L) ~ 8 nnz(L) (+ indices)

CHOLMOD's supernodal factor stores these values plus padding (up to 20% more:
benchmarks/results/thresholds.md); the memory guard counts 16 bytes per entry.
"""
from __future__ import annotations

import os

import numpy as np
import scipy.sparse as sp
from .jit import njit

BYTES_PER_ENTRY = 16      # 8 for the value, 4 for its row index, ~1/3 for supernodal padding


@njit(cache=True)
def _etree(colptr, rowind, n):
    """Elimination tree from the upper pattern (CSC: column i lists rows k <= i)."""
    parent = np.full(n, -1, np.int64)
    ancestor = np.full(n, -1, np.int64)
    for i in range(n):
        for p in range(colptr[i], colptr[i + 1]):
            r = rowind[p]
            while r != -1 and r < i:
                t = ancestor[r]
                ancestor[r] = i
                if t == -1:
                    parent[r] = i
                r = t
    return parent


@njit(cache=True)
def _colcounts(colptr, rowind, parent, n, limit):
    """Column counts of L (diagonal included) by row subtrees; total -1 past ``limit``."""
    count = np.ones(n, np.int64)
    mark = np.full(n, -1, np.int64)
    total = n
    for i in range(n):
        mark[i] = i
        for p in range(colptr[i], colptr[i + 1]):
            j = rowind[p]
            while j != -1 and j < i and mark[j] != i:
                mark[j] = i
                count[j] += 1
                total += 1
                j = parent[j]
            if total > limit:
                return count, -1
    return count, total


@njit(cache=True)
def _supernodal_padding(parent, count, n):
    """Entries a supernodal factor stores beyond nnz(L).  Column j continues the supernode
    of its parent p when its structure is p's plus itself (count[j] == count[p] + 1); a
    parent continues one such child (the longest chain), so supernodes are chains of
    consecutive columns in a postorder.  A supernode of c columns is a dense r x c block
    holding c (c - 1) / 2 zeros above its diagonal.  (CHOLMOD amalgamates further, merging
    small supernodes at the cost of some zeros: supernodal_bytes allows 10% for that.)"""
    length = np.ones(n, np.int64)          # columns of the supernode that ends at j
    chosen = np.full(n, -1, np.int64)      # the child whose supernode j continues
    for j in range(n):                     # parent[j] > j: children come first
        if chosen[j] != -1:
            length[j] = length[chosen[j]] + 1
        p = parent[j]
        if p != -1 and count[j] == count[p] + 1 and (chosen[p] == -1 or length[j] > length[chosen[p]]):
            chosen[p] = j
    pad = 0
    for j in range(n):
        p = parent[j]
        if p == -1 or chosen[p] != j:       # the top column of a supernode
            pad += length[j] * (length[j] - 1) // 2
    return pad


def factor_counts(M_lower: sp.csc_matrix, perm=None, limit: int = 2**62, return_padding: bool = False):
    """(column counts, nnz(L)) of the Cholesky factor of P M P' (P = perm, None = identity);
    nnz is -1 when it exceeds ``limit`` (the counts are then partial).  ``return_padding``:
    also the zeros a supernodal factor stores in its fundamental supernodes (-1 past the
    limit)."""
    A = sp.csc_matrix(M_lower)
    if perm is not None:
        perm = np.asarray(perm, dtype=np.int64)
        A = sp.csc_matrix(A + A.T)[perm][:, perm]
    A = sp.triu(sp.csc_matrix(A + A.T)).tocsc()       # upper: column i holds rows k <= i
    A.sort_indices()
    n = A.shape[0]
    indptr, indices = A.indptr.astype(np.int64), A.indices.astype(np.int64)
    parent = _etree(indptr, indices, n)
    counts, total = _colcounts(indptr, indices, parent, n, int(limit))
    if return_padding:
        return counts, int(total), (int(_supernodal_padding(parent, counts, n)) if total >= 0 else -1)
    return counts, int(total)


def available_memory() -> int:
    """Bytes the operating system reports available (MemAvailable), or 8 GiB if unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:  # pragma: no cover
        pass
    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover
        return 8 * 2**30


def memory_budget(memory_limit) -> int:
    """Bytes a factorization may use: ``memory_limit`` (bytes or "12GB"), by default 80% of
    the available memory."""
    return parse_memory(memory_limit) if memory_limit is not None else int(0.8 * available_memory())


def parse_memory(limit) -> int:
    """A memory limit in bytes from an int or a string such as "12GB", "500MiB"."""
    if isinstance(limit, (int, np.integer)):
        return int(limit)
    if isinstance(limit, float):
        return int(limit)
    s = str(limit).strip().upper().replace(" ", "")
    units = {"TIB": 2**40, "GIB": 2**30, "MIB": 2**20, "KIB": 2**10, "TB": 10**12, "GB": 10**9,
             "MB": 10**6, "KB": 10**3, "T": 2**40, "G": 2**30, "M": 2**20, "K": 2**10, "B": 1}
    try:
        for u, f in units.items():
            if s.endswith(u):
                return int(float(s[: -len(u)]) * f)
        return int(float(s))
    except ValueError:
        from ..errors import SparseMixedError

        raise SparseMixedError(f"memory_limit must be a number of bytes or a size such as '12GB' or "
                               f"'500MiB', got {limit!r}") from None


def fmt_bytes(b: float) -> str:
    return f"{b / 2**30:.1f} GiB" if b >= 2**30 else f"{b / 2**20:.0f} MiB"
