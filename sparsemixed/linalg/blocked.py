"""Blocked Cholesky of M when its leading block is block diagonal (MixedModels.jl's scheme).

Order M's rows as [term 1 (most levels); the other terms].  The leading block M11 is
block diagonal (k1 x k1 per level of term 1, diagonal for a scalar term), so

    M = [M11  M21'] = [L11   0 ] [L11'  L21']      L11 = chol(M11) level by level
        [M21  M22 ]   [L21  L22] [ 0    L22']      L21 = M21 L11^-T
                                                   L22 L22' = S = M22 - L21 L21'  (dense)

    log|M| = log|L11|^2 + log|L22|^2.

Forming S costs sum over levels of (rows of L21 touched)^2 * k1 multiply-adds,
done by a compiled scatter kernel; S is factored by LAPACK.  Worth it when the other
terms have few random effects (q2 up to a few thousand).  The permutation is the
identity, P = I, unless several terms share the first grouping factor (``(1 + x || g)``,
``(1 | g) + (0 + x | g)``): P then gathers their effects level by level into one leading
block of k1 = sum of their sizes (MixedModels.jl's amalgamation), so that they are
eliminated together instead of joining the dense Schur block.
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla
import numba
from .jit import njit, prange

from ..errors import NumericalError
from . import dense
from .threads import kernel_threads, one_blas_thread, serial_twin

TILED_Q2 = 512           # from this size on, S is formed by the tiled parallel kernel
TILE_ROWS = 128          # S in about q2 / 128 tiles of equal area (_row_tiles): at most
                         # 128 x 2,000 doubles = 2 MiB, one L2
                         # (both measured: benchmarks/results/thresholds.md)
LARGE_DENSE_Q2 = 8000     # from here a gradient (S^-1 by dpotri, a pass over all pairs) costs
                          # ~4 criterion evaluations: the default optimizer is then BOBYQA
DENSE_W_BYTES = 400 * 2**20   # the dense-W Schur product is used only below this size
MAX_DENSE_Q2 = 40000      # beyond, even a dense S that fits is slower than CHOLMOD
PARALLEL_Q2 = 800         # from this size on, S is factored by tiles on Python threads (linalg.dense;
                          # 1M rows, n = 2,000: 75 -> 44 ms; n = 900: 7.0 -> 5.4 ms, n = 700 about even;
                          # InstEval, n = 1,156: one evaluation 16.6 -> 13.7 ms)
INVERSE_Q2 = 400          # from this size on, S^-1 (the gradient's) by tiles on Python threads too
                          # (linalg.dense; 2 threads, dpotri ->: n = 300, 0.9 -> 0.8 ms; n = 400, 1.7 -> 1.3;
                          # InstEval, n = 1,156: 25 -> 11 ms, its gradient 30 -> 15 ms)


@njit(inline="always")
def _chol_level(L11, j, k1, out, o):
    """L11[j] := its lower Cholesky factor, in place (the upper triangle zeroed); out[o + c] =
    2 log L11[j, c, c]; False when the block is not positive definite."""
    for c in range(k1):
        s = L11[j, c, c]
        for t in range(c):
            s -= L11[j, c, t] * L11[j, c, t]
        if s <= 0.0:
            return False
        d = np.sqrt(s)
        L11[j, c, c] = d
        out[o + c] = 2.0 * np.log(d)
        for r in range(c + 1, k1):
            s = L11[j, r, c]
            for t in range(c):
                s -= L11[j, r, t] * L11[j, c, t]
            L11[j, r, c] = s / d
        for r in range(c):
            L11[j, r, c] = 0.0
    return True


@njit(cache=True)
def _factor_blocks(Mdata, q1, k1, pos11, pos21, w_off, lev_ptr, lev_rows, pos22, S_flat, q2, L11, W,
                   skip_schur=False):
    """L11 (nlev x k1 x k1), W = L21 per level (flat), S = M22 - L21 L21' (lower, dense)."""
    nlev = q1 // k1
    logdet = 0.0
    # M11 blocks -> L11
    for e in range(pos11.shape[0]):
        p, j, a, b = pos11[e, 0], pos11[e, 1], pos11[e, 2], pos11[e, 3]
        L11[j, a, b] = Mdata[p]
    ld = np.zeros(k1)
    for j in range(nlev):
        if not _chol_level(L11, j, k1, ld, 0):
            return np.nan
        for c in range(k1):
            logdet += ld[c]
    # M21 -> W, then W := W L11^-T per level
    W[:] = 0.0
    for e in range(pos21.shape[0]):
        W[w_off[e]] += Mdata[pos21[e]]
    for j in range(nlev):
        base = lev_ptr[j]
        nr = lev_ptr[j + 1] - base
        for i in range(nr):
            o = (base + i) * k1
            for c in range(k1):
                s = W[o + c]
                for t in range(c):
                    s -= W[o + t] * L11[j, c, t]
                W[o + c] = s / L11[j, c, c]
    if skip_schur:
        return logdet
    # S = M22 - sum_j W_j W_j'
    for i in range(S_flat.shape[0]):
        S_flat[i] = 0.0
    for e in range(pos22.shape[0]):
        S_flat[pos22[e, 1]] += Mdata[pos22[e, 0]]
    for j in range(nlev):
        base = lev_ptr[j]
        nr = lev_ptr[j + 1] - base
        for i in range(nr):
            ri = lev_rows[base + i]
            oi = (base + i) * k1
            for m in range(i + 1):
                rm = lev_rows[base + m]
                om = (base + m) * k1
                s = 0.0
                for c in range(k1):
                    s += W[oi + c] * W[om + c]
                # lower triangle, row-major flat index of (ri, rm) with ri >= rm
                if ri >= rm:
                    S_flat[ri * q2 + rm] -= s
                else:
                    S_flat[rm * q2 + ri] -= s
    return logdet


@njit(cache=True, parallel=True)
def _factor_levels(Mdata, src11, src21, lev_ptr, k1, L11, W):
    """_factor_blocks without S, level by level in parallel (disjoint writes): L11_j from
    M11's entries (``src11[j, a, b]``: position in Mdata, or -1), W_j from M21's
    (``src21``: position per entry of W, or -1), W_j := W_j L11_j^-T; the log-determinant's
    terms are summed afterwards in _factor_blocks' order: the same bits as that kernel."""
    nlev = L11.shape[0]
    terms = np.zeros(nlev * k1)
    for j in prange(nlev):
        for a in range(k1):
            for b in range(a + 1):
                p = src11[j, a, b]
                if p >= 0:
                    L11[j, a, b] = Mdata[p]
        if not _chol_level(L11, j, k1, terms, j * k1):
            terms[j * k1] = np.nan
            continue
        for i in range(lev_ptr[j], lev_ptr[j + 1]):
            o = i * k1
            for c in range(k1):
                p = src21[o + c]
                W[o + c] = 0.0 + Mdata[p] if p >= 0 else 0.0
            for c in range(k1):
                s = W[o + c]
                for t in range(c):
                    s -= W[o + t] * L11[j, c, t]
                W[o + c] = s / L11[j, c, c]
    logdet = 0.0
    for i in range(nlev * k1):
        logdet += terms[i]
    return logdet


@njit(cache=True, parallel=True)
def _factor_scalar(Mdata, pos11, pos21, lev_ptr, L11, W):
    """_factor_blocks for a scalar first term without S (formed apart): L11_j = sqrt(M11_jj),
    w_j = M21_j / L11_j, level by level in parallel (disjoint writes); the log-determinant
    is summed afterwards in level order, so it does not depend on the threads."""
    nlev = lev_ptr.shape[0] - 1
    ld = np.empty(nlev)
    for j in prange(nlev):
        s = Mdata[pos11[j, 0]]
        if not s > 0.0:                  # also NaN
            ld[j] = np.nan
            continue
        d = np.sqrt(s)
        L11[j, 0, 0] = d
        ld[j] = 2.0 * np.log(d)
        for i in range(lev_ptr[j], lev_ptr[j + 1]):
            W[i] = Mdata[pos21[i]] / d
    return ld.sum()


@njit(cache=True)
def _rows_within(lev_rows, a, e, lo, hi):
    """Positions s0 .. s1 - 1 of a level's rows lev_rows[a:e] (ascending) that lie in the
    block of rows [lo, hi); s0 == s1 when none do."""
    if a == e or lev_rows[e - 1] < lo or lev_rows[a] >= hi:
        return a, a
    return a + np.searchsorted(lev_rows[a:e], lo), a + np.searchsorted(lev_rows[a:e], hi)


@njit(cache=True, parallel=True)
def _schur_scalar_tiled(Mdata, pos22, W, lev_ptr, lev_rows, S_flat, q2, tiles, nthreads):
    """S = M22 - sum_j w_j w_j' for a scalar first term, by tiles of S: the row blocks are
    dealt round-robin to the threads (disjoint writes, balanced work), and each thread
    updates one block of rows at a time, which stays in cache."""
    nblocks = tiles.shape[0] - 1
    nlev = lev_ptr.shape[0] - 1
    for t in prange(nthreads):
        for bi in range(t, nblocks, nthreads):
            lo, hi = tiles[bi], tiles[bi + 1]
            for i in range(lo, hi):
                for c in range(i + 1):
                    S_flat[i * q2 + c] = 0.0
            for j in range(nlev):
                a = lev_ptr[j]
                s0, s1 = _rows_within(lev_rows, a, lev_ptr[j + 1], lo, hi)
                for x in range(s0, s1):
                    wx = W[x]
                    row = S_flat[lev_rows[x] * q2: (lev_rows[x] + 1) * q2]
                    cols, ws = lev_rows[a: x + 1], W[a: x + 1]
                    for y in range(cols.shape[0]):
                        row[np.uint64(cols[y])] -= wx * ws[y]     # unsigned: no wraparound test
    for e in range(pos22.shape[0]):          # M22's own entries (few: serial)
        S_flat[pos22[e, 1]] += Mdata[pos22[e, 0]]


@njit(cache=True, parallel=True)
def _quadforms_scalar_tiled(Uflat, W, lev_ptr, lev_rows, q2, tiles, nthreads):
    """w_j' U w_j for every level j of a scalar first term (w_j: level j's entries of W, at
    rows lev_rows), with U = S^-1 as dpotri leaves it: the upper triangle in column-major
    order, U[c, r] (c <= r) at r * q2 + c.  The traversal is _schur_scalar_tiled's (rows of
    U by blocks, dealt round-robin to the threads, so a block of U stays in cache); each
    thread sums into its own row of ``partial``, which are then added in thread order, so
    the result does not depend on scheduling."""
    nblocks = tiles.shape[0] - 1
    nlev = lev_ptr.shape[0] - 1
    partial = np.zeros((nthreads, nlev))
    for t in prange(nthreads):
        for bi in range(t, nblocks, nthreads):
            lo, hi = tiles[bi], tiles[bi + 1]
            for j in range(nlev):
                a = lev_ptr[j]
                s0, s1 = _rows_within(lev_rows, a, lev_ptr[j + 1], lo, hi)
                if s0 == s1:
                    continue
                acc = 0.0
                for x in range(s0, s1):
                    ri = lev_rows[x]
                    row = Uflat[ri * q2: (ri + 1) * q2]
                    cols, ws = lev_rows[a: x], W[a: x]
                    s = 0.0
                    for y in range(cols.shape[0]):
                        s += ws[y] * row[np.uint64(cols[y])]
                    acc += W[x] * (2.0 * s + W[x] * row[ri])
                partial[t, j] += acc
    out = np.zeros(nlev)
    for t in range(nthreads):
        for j in range(nlev):
            out[j] += partial[t, j]
    return out


_schur_scalar_tiled_serial = serial_twin(_schur_scalar_tiled)
_quadforms_scalar_tiled_serial = serial_twin(_quadforms_scalar_tiled)


@njit(cache=True, parallel=True)
def _schur_blocks_tiled(Mdata, pos22s, ptr22, W, WT, lev_ptr, lev_rows, k1, S_flat, q2, tiles, nthreads):
    """S = M22 - sum_j W_j W_j' for a leading term of any k1 (W_j: level j's nr x k1 block of
    L21', entry-major in W), by tiles of S's rows (``tiles``: row boundaries, dealt
    round-robin to the threads; disjoint writes).  First WT, each level's W_j transposed
    (column c of W_j contiguous at WT[k1 a + c nr:], a = lev_ptr[j]), in parallel over levels.
    Then per tile: zero its rows, add M22's entries (``pos22s``: pos22 stably sorted by
    target, ``ptr22``: where each row of S starts in it), and subtract the levels in order,
    row x of level j as one vectorised pass over its k1 columns into ``tmp`` and one
    scatter into the row of S.  Every entry of S receives exactly the operations of
    _factor_blocks' serial loop in the same order: the result is the same bit for bit, for
    any thread count."""
    nlev = lev_ptr.shape[0] - 1
    maxnr = 0
    for j in range(nlev):
        maxnr = max(maxnr, lev_ptr[j + 1] - lev_ptr[j])
    for j in prange(nlev):
        a = lev_ptr[j]
        nr = lev_ptr[j + 1] - a
        for y in range(nr):
            for c in range(k1):
                WT[a * k1 + c * nr + y] = W[(a + y) * k1 + c]
    ntiles = tiles.shape[0] - 1
    for t in prange(nthreads):
        tmp = np.empty(maxnr)
        for bi in range(t, ntiles, nthreads):
            lo, hi = tiles[bi], tiles[bi + 1]
            for i in range(lo, hi):
                for c in range(i + 1):
                    S_flat[i * q2 + c] = 0.0
            for e in range(ptr22[lo], ptr22[hi]):
                S_flat[pos22s[e, 1]] += Mdata[pos22s[e, 0]]
            for j in range(nlev):
                a = lev_ptr[j]
                nr = lev_ptr[j + 1] - a
                s0, s1 = _rows_within(lev_rows, a, lev_ptr[j + 1], lo, hi)
                for x in range(s0, s1):
                    n = x - a + 1
                    for y in range(n):
                        tmp[y] = 0.0
                    for c in range(k1):
                        wc = W[x * k1 + c]
                        col = WT[a * k1 + c * nr: a * k1 + c * nr + n]
                        for y in range(n):
                            tmp[y] += wc * col[y]
                    ri = lev_rows[x]
                    row = S_flat[ri * q2: (ri + 1) * q2]
                    cols = lev_rows[a: x + 1]
                    for y in range(n):
                        row[np.uint64(cols[y])] -= tmp[y]     # unsigned: no wraparound test


_schur_blocks_tiled_serial = serial_twin(_schur_blocks_tiled)


def _tile_rows(q2: int, ntiles: int) -> np.ndarray:
    """Row boundaries of ``ntiles`` tiles of the lower triangle of S of about equal area."""
    cuts = [0] + [int(round(q2 * np.sqrt(t / ntiles))) for t in range(1, ntiles)] + [q2]
    return np.unique(np.asarray(cuts, dtype=np.int64))


@njit(cache=True)
def _solve_L11(L11, B, k1, transpose):
    nlev = L11.shape[0]
    out = B.copy()
    ncol = B.shape[1]
    for j in range(nlev):
        o = j * k1
        for col in range(ncol):
            if not transpose:
                for c in range(k1):
                    s = out[o + c, col]
                    for t in range(c):
                        s -= L11[j, c, t] * out[o + t, col]
                    out[o + c, col] = s / L11[j, c, c]
            else:
                for c in range(k1 - 1, -1, -1):
                    s = out[o + c, col]
                    for t in range(c + 1, k1):
                        s -= L11[j, t, c] * out[o + t, col]
                    out[o + c, col] = s / L11[j, c, c]
    return out


@njit(cache=True, parallel=True)
def _L21_product(W, lev_ptr, lev_rows, k1, B, nout, transpose, nthreads):
    """L21 @ B (q2 x ncol) or, with ``transpose``, L21' @ B (q1 x ncol).  The levels are
    split into ``nthreads`` runs of about equal entries; L21' @ B writes disjoint rows per
    level, L21 @ B sums each run into its own buffer, added in run order afterwards (the
    result does not depend on scheduling; the caller bounds nthreads x nout x ncol)."""
    ncol = B.shape[1]
    nlev = lev_ptr.shape[0] - 1
    cuts = np.searchsorted(lev_ptr, np.linspace(0, lev_ptr[nlev], nthreads + 1)[1:-1])
    bounds = np.concatenate((np.zeros(1, np.int64), cuts.astype(np.int64), np.full(1, nlev, np.int64)))
    part = np.zeros((1 if transpose else nthreads, nout, ncol))
    for t in prange(nthreads):
        o = np.int64(t) * (part.shape[0] > 1)          # run t's buffer (the one buffer for L21')
        for j in range(bounds[t], bounds[t + 1]):
            for i in range(lev_ptr[j], lev_ptr[j + 1]):
                r = lev_rows[i]
                for c in range(k1):
                    w = W[i * k1 + c]
                    a = j * k1 + c
                    for col in range(ncol):
                        if transpose:
                            part[o, a, col] += w * B[r, col]
                        else:
                            part[o, r, col] += w * B[a, col]
    out = part[0].copy()
    for t in range(1, part.shape[0]):
        out += part[t]
    return out


_factor_scalar_serial = serial_twin(_factor_scalar)
_L21_product_serial = serial_twin(_L21_product)
L21_BUFFER_BYTES = 64 * 2**20    # L21 @ B in parallel only while the per-thread buffers stay below this
SELINV_TILE_BYTES = 2**19        # columns of S^-1 per tile of the selected inverse (L2-sized; 1 thread,
                                 # slopes case: 81 -> 62 ms against level by level)


@njit(cache=True)
def _vector_structure(indptr, indices, q1, k1):
    """pos11, pos21, w_off, lev_rows, lev_ptr, pos22 of a first term of k1 columns per level
    (P = I) from M's CSC lower pattern, in one compiled pass: the entries in column order,
    each level's rows beyond q1 the sorted union over its k1 columns, w_off the entry's
    place in W (its row's index in that union times k1 plus its column in the level);
    None when M11 is not block diagonal.  (The same arrays as the general path's numpy
    unique, which sorted every entry: crossed slopes, 1.2M entries, 0.23 -> 0.03 s.)"""
    q = indptr.shape[0] - 1
    q2 = q - q1
    nlev = q1 // k1
    n11 = 0
    for col in range(q1):
        for p in range(indptr[col], indptr[col + 1]):
            if indices[p] < q1:
                n11 += 1
    n21 = indptr[q1] - n11
    pos11 = np.empty((n11, 4), dtype=np.int64)
    pos21 = np.empty(n21, dtype=np.int64)
    w_off = np.empty(n21, dtype=np.int64)
    lev_rows = np.empty(n21, dtype=np.int64)
    lev_ptr = np.zeros(nlev + 1, dtype=np.int64)
    mark = np.full(max(q2, 1), -1, dtype=np.int64)
    buf = np.empty(max(q2, 1), dtype=np.int64)
    a, b, total = 0, 0, 0
    for lev in range(nlev):
        m = 0
        for c in range(k1):
            col = lev * k1 + c
            for p in range(indptr[col], indptr[col + 1]):
                r = indices[p]
                if r < q1:
                    if r // k1 != lev:
                        return None
                    pos11[a, 0], pos11[a, 1], pos11[a, 2], pos11[a, 3] = p, lev, r % k1, c
                    a += 1
                elif mark[r - q1] != lev:
                    mark[r - q1] = lev
                    buf[m] = r - q1
                    m += 1
        rows = np.sort(buf[:m])
        lev_rows[total: total + m] = rows
        for c in range(k1):
            col = lev * k1 + c
            for p in range(indptr[col], indptr[col + 1]):
                r = indices[p]
                if r >= q1:
                    pos21[b] = p
                    w_off[b] = (total + np.searchsorted(rows, r - q1)) * k1 + c
                    b += 1
        total += m
        lev_ptr[lev + 1] = total
    pos22 = np.empty((indptr[q] - indptr[q1], 2), dtype=np.int64)
    e = 0
    for col in range(q1, q):
        for p in range(indptr[col], indptr[col + 1]):
            pos22[e, 0], pos22[e, 1] = p, (indices[p] - q1) * q2 + (col - q1)
            e += 1
    return pos11, pos21, w_off, lev_rows[:total].copy(), lev_ptr, pos22


@njit(cache=True)
def _scalar_structure(indptr, indices, q1):
    """pos11, pos21, lev_rows, lev_ptr, pos22 of a scalar first term from M's CSC lower
    pattern, or None when a column of term 1 does not hold its diagonal first followed by
    rows >= q1 in strictly ascending order."""
    q = indptr.shape[0] - 1
    q2 = q - q1
    n21 = indptr[q1] - q1
    pos11 = np.zeros((q1, 4), dtype=np.int64)
    pos21 = np.empty(max(n21, 0), dtype=np.int64)
    lev_rows = np.empty(max(n21, 0), dtype=np.int64)
    lev_ptr = np.zeros(q1 + 1, dtype=np.int64)
    e = 0
    for c in range(q1):
        a, b = indptr[c], indptr[c + 1]
        if b == a or indices[a] != c:
            return None
        pos11[c, 0], pos11[c, 1] = a, c
        prev = q1 - 1
        for p in range(a + 1, b):
            r = indices[p]
            if r <= prev or e >= n21:
                return None
            prev = r
            pos21[e] = p
            lev_rows[e] = r - q1
            e += 1
        lev_ptr[c + 1] = e
    if e != n21:
        return None
    pos22 = np.empty((indptr[q] - indptr[q1], 2), dtype=np.int64)
    for c in range(q1, q):
        for p in range(indptr[c], indptr[c + 1]):
            pos22[p - indptr[q1], 0] = p
            pos22[p - indptr[q1], 1] = (indices[p] - q1) * q2 + (c - q1)
    return pos11, pos21, lev_rows, lev_ptr, pos22


class BlockedCholesky:
    """A :class:`~sparsemixed.linalg.factor.Factor`, as CHOLMOD's.  P = I, or
    ``perm`` gathering several terms on the first grouping factor into one leading block
    (their effects level by level: ``select.leading_block``)."""

    ordering = "blocked"

    def __init__(self, indptr, indices, q1: int, k1: int, perm=None):
        q = indptr.size - 1
        self.q, self.q1, self.k1, self.q2 = q, q1, k1, q - q1
        perm = None if perm is None or np.array_equal(perm, np.arange(q)) else np.asarray(perm, dtype=np.int64)
        self._perm = perm
        self.scalar = perm is None and k1 == 1 and self._scalar_structure(indptr, indices)
        if not self.scalar:
            self._general_structure(indptr, indices)
        nlev = q1 // k1
        self.L11 = np.zeros((nlev, k1, k1))
        self.W = np.zeros(self.lev_rows.size * k1)
        self.S = np.zeros((self.q2, self.q2))
        self._logdet = np.nan
        sizes = np.diff(self.lev_ptr).astype(np.float64)
        self.pairs = float((sizes * (sizes + 1) / 2).sum())     # level pairs: the kernels' work
        self.schur_method = self._schur_method()
        if self.schur_method == "blocks":
            order = np.argsort(self.pos22[:, 1], kind="stable")
            self._pos22s = np.ascontiguousarray(self.pos22[order])
            self._ptr22 = np.searchsorted(self._pos22s[:, 1], np.arange(self.q2 + 1, dtype=np.int64) * self.q2)
            self.WT = np.zeros_like(self.W)
            src11 = np.full((nlev, k1, k1), -1, dtype=np.int64)
            src11[self.pos11[:, 1], self.pos11[:, 2], self.pos11[:, 3]] = self.pos11[:, 0]
            src21 = np.full(self.W.size, -1, dtype=np.int64)
            src21[self.w_off] = self.pos21
            one_each = (not self.w_off.size or np.bincount(self.w_off, minlength=self.W.size).max() <= 1) \
                and bool(np.all(self.pos11[:, 2] >= self.pos11[:, 3]))
            self._src = (src11, src21) if one_each else None       # for _factor_levels

    def clone(self) -> "BlockedCholesky":
        """A workspace on the same structure (index arrays shared, values new)."""
        new = object.__new__(BlockedCholesky)
        new.__dict__.update(self.__dict__)
        new.L11, new.W, new.S = np.zeros_like(self.L11), np.zeros_like(self.W), np.zeros_like(self.S)
        if "WT" in self.__dict__:
            new.WT = np.zeros_like(self.WT)
        new._logdet = np.nan
        new.__dict__.pop("R22", None)
        return new

    def _scalar_structure(self, indptr, indices) -> bool:
        """The index arrays for a scalar first term in one compiled pass over M's pattern
        (1M rows: 0.15 -> 0.01 s); False (general path) unless every column of term 1 holds
        its diagonal first and then rows beyond q1, ascending, as RelCov builds them."""
        out = _scalar_structure(np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64), self.q1)
        if out is None:
            return False
        self.pos11, self.pos21, self.lev_rows, self.lev_ptr, self.pos22 = out
        self.w_off = np.arange(self.pos21.size, dtype=np.int64)
        return True

    def _general_structure(self, indptr, indices) -> None:
        q, q1, k1 = self.q, self.q1, self.k1
        if self._perm is None and q1 % k1 == 0:
            out = _vector_structure(np.asarray(indptr, dtype=np.int64), np.asarray(indices, dtype=np.int64), q1, k1)
            if out is None:
                raise ValueError("leading block of M is not block diagonal")
            self.pos11, self.pos21, self.w_off, self.lev_rows, self.lev_ptr, self.pos22 = out
            return
        col = np.repeat(np.arange(q, dtype=np.int64), np.diff(indptr))
        row = indices.astype(np.int64)
        pos = np.arange(row.size, dtype=np.int64)
        if self._perm is not None:      # the entries of P M P' (lower: swap what crossed over)
            iperm = np.empty(q, dtype=np.int64)
            iperm[self._perm] = np.arange(q)
            row, col = iperm[row], iperm[col]
            row, col = np.maximum(row, col), np.minimum(row, col)
        in11 = (col < q1) & (row < q1)
        in21 = (col < q1) & (row >= q1)
        in22 = col >= q1
        lev = col // k1
        if np.any(row[in11] // k1 != lev[in11]):
            raise ValueError("leading block of M is not block diagonal")
        self.pos11 = np.column_stack([pos[in11], lev[in11], row[in11] % k1, col[in11] % k1]).astype(np.int64)
        # per level: union of rows (in q2 space) of its k1 columns
        r21, l21, c21 = row[in21] - q1, lev[in21], col[in21] % k1
        nlev = q1 // k1
        keys = l21 * self.q2 + r21
        uk, inv = np.unique(keys, return_inverse=True)
        self.lev_rows = (uk % max(self.q2, 1)).astype(np.int64)
        self.lev_ptr = np.concatenate([[0], np.cumsum(np.bincount(uk // max(self.q2, 1), minlength=nlev))]).astype(np.int64)
        self.w_off = (inv.reshape(-1) * k1 + c21).astype(np.int64)
        self.pos21 = pos[in21]
        r22, c22 = row[in22] - q1, col[in22] - q1
        self.pos22 = np.column_stack([pos[in22], r22 * self.q2 + c22]).astype(np.int64)

    def _row_tiles(self) -> np.ndarray:
        """Row boundaries of the tiles of S (or S^-1) for the tiled kernels: an even number
        of tiles (at least 8), as many as rows / TILE_ROWS, of about equal area of the lower
        triangle, so that the round-robin deals the threads equal work (row blocks of
        TILE_ROWS gave the second thread 55% of InstEval's)."""
        return _tile_rows(self.q2, max(8, 2 * -(-self.q2 // (2 * TILE_ROWS))))

    def _schur_method(self) -> str:
        """"dense" (S = M22 - W'W by one BLAS product on a dense W) when the level blocks
        are dense enough that the product's flops beat the scatter's pair updates (a pair
        update costs about as much as ~100 flops of a BLAS-3 product) and W fits in
        DENSE_W_BYTES; "tiled" for a large S; else the serial scatter.  A vector-valued
        leading term (k1 > 1): "blocks", _schur_blocks_tiled at any size (the same bits as
        the serial scatter, and 3.5x faster on one thread: 2,000 levels x 200 rows, k1 = 3,
        q2 = 800: 152 -> 42 ms)."""
        if self.q2 == 0:
            return "serial"
        if self.k1 != 1:
            return "blocks"
        nlev = self.lev_ptr.size - 1
        if 8.0 * nlev * self.q2 <= DENSE_W_BYTES and nlev * float(self.q2) ** 2 < 100 * self.pairs:
            return "dense"
        return "tiled" if self.q2 >= TILED_Q2 else "serial"

    def factorize_values(self, Mdata: np.ndarray) -> None:
        method = self.schur_method
        tiled = method in ("tiled", "dense", "blocks")
        if tiled and self.scalar:
            nt = kernel_threads(self.W.size)
            ld11 = (_factor_scalar if nt > 1 else _factor_scalar_serial)(
                Mdata, self.pos11, self.pos21, self.lev_ptr, self.L11, self.W)
        elif method == "blocks" and self._src is not None and kernel_threads(self.W.size * self.k1) > 1:
            ld11 = _factor_levels(Mdata, *self._src, self.lev_ptr, self.k1, self.L11, self.W)
        else:
            ld11 = _factor_blocks(Mdata, self.q1, self.k1, self.pos11, self.pos21, self.w_off,
                                  self.lev_ptr, self.lev_rows, self.pos22, self.S.reshape(-1),
                                  self.q2, self.L11, self.W, tiled)
        if method == "dense" and np.isfinite(ld11):
            nlev = self.lev_ptr.size - 1
            lev_of = np.repeat(np.arange(nlev), np.diff(self.lev_ptr))
            Wd = np.zeros((nlev, self.q2))
            Wd[lev_of, self.lev_rows] = self.W
            with one_blas_thread():
                G = sla.blas.dsyrk(1.0, Wd, trans=1, lower=0)      # upper of W'W (Fortran)
            S = self.S
            S[...] = -G.T                     # row-major lower triangle of -W'W
            f = self.pos22[:, 1]
            np.add.at(S.reshape(-1), f, Mdata[self.pos22[:, 0]])
        elif method == "blocks" and np.isfinite(ld11):
            nt = kernel_threads(self.pairs * self.k1)
            (_schur_blocks_tiled if nt > 1 else _schur_blocks_tiled_serial)(
                Mdata, self._pos22s, self._ptr22, self.W, self.WT, self.lev_ptr, self.lev_rows, self.k1,
                self.S.reshape(-1), self.q2, self._row_tiles(), nt)
        elif method == "tiled" and np.isfinite(ld11):
            nt = kernel_threads(self.pairs)
            (_schur_scalar_tiled if nt > 1 else _schur_scalar_tiled_serial)(
                Mdata, self.pos22, self.W, self.lev_ptr, self.lev_rows, self.S.reshape(-1), self.q2,
                self._row_tiles(), nt)
        if not np.isfinite(ld11):
            raise NumericalError("the leading block of M is not positive definite (non-finite theta or data?)")
        ld22 = 0.0
        if self.q2:
            # S holds the lower triangle row-major == upper triangle column-major (Fortran view)
            with one_blas_thread():
                if self.q2 >= PARALLEL_Q2 and numba.get_num_threads() > 1:
                    info = dense.cholesky_lower_inplace(self.S, numba.get_num_threads())
                    c = self.S.T
                else:
                    c, info = sla.lapack.dpotrf(self.S.T, lower=0, clean=0, overwrite_a=1)
            if info != 0:
                raise NumericalError(
                    "the Schur complement of M is not positive definite "
                    f"(LAPACK dpotrf info={info}); check for non-finite or extreme values")
            self.R22 = c      # upper triangular, R22' R22 = S  (L22 = R22')
            ld22 = 2.0 * float(np.log(np.diag(c)).sum())
        self._logdet = ld11 + ld22

    def factorize(self, M) -> None:
        self.factorize_values(M.data)

    def logdet(self) -> float:
        return self._logdet

    def solve_L(self, B: np.ndarray) -> np.ndarray:
        """L^-1 P B."""
        B = np.asarray(B, dtype=float)
        if self._perm is not None:
            B = B[self._perm]
        vec = B.ndim == 1
        B2 = B.reshape(B.shape[0], -1)
        x1 = _solve_L11(self.L11, np.ascontiguousarray(B2[: self.q1]), self.k1, False)
        out = np.empty_like(B2)
        out[: self.q1] = x1
        if self.q2:
            rhs = B2[self.q1:] - self._L21_product(x1, self.q2, False)
            with one_blas_thread():
                out[self.q1:] = sla.solve_triangular(self.R22, rhs, trans="T", lower=False, check_finite=False)
        return out.reshape(-1) if vec else out

    def solve_Lt(self, B: np.ndarray) -> np.ndarray:
        """P' L^-T B."""
        B = np.asarray(B, dtype=float)
        vec = B.ndim == 1
        B2 = B.reshape(B.shape[0], -1)
        out = np.empty_like(B2)
        rhs1 = np.ascontiguousarray(B2[: self.q1])
        if self.q2:
            with one_blas_thread():
                y2 = sla.solve_triangular(self.R22, B2[self.q1:], lower=False, check_finite=False)
            out[self.q1:] = y2
            rhs1 = rhs1 - self._L21_product(np.ascontiguousarray(y2), self.q1, True)
        out[: self.q1] = _solve_L11(self.L11, np.ascontiguousarray(rhs1), self.k1, True)
        if self._perm is not None:      # P' out
            back = np.empty_like(out)
            back[self._perm] = out
            out = back
        return out.reshape(-1) if vec else out

    def perm(self) -> np.ndarray:
        """P as an index vector: row i of P M P' is row perm[i] of M."""
        return np.arange(self.q) if self._perm is None else self._perm.copy()

    def _L21_product(self, B: np.ndarray, nout: int, transpose: bool) -> np.ndarray:
        nt = kernel_threads(self.W.size * B.shape[1])
        if not transpose and nt * nout * B.shape[1] * 8 > L21_BUFFER_BYTES:
            nt = 1
        kernel = _L21_product if nt > 1 else _L21_product_serial
        return kernel(self.W, self.lev_ptr, self.lev_rows, self.k1, B, nout, transpose, nt)

    def _schur_inverse(self) -> np.ndarray:
        """U = S^-1 (upper triangle, column-major) from the factor of S: by tiles on threads
        (linalg.dense) from INVERSE_Q2 on, else by dpotri."""
        if not self.q2:
            return np.zeros((0, 0), order="F")
        with one_blas_thread():   # threaded OpenBLAS dpotri/dtrtri is pathologically slow here
            if self.q2 >= INVERSE_Q2 and numba.get_num_threads() > 1:
                U, info = dense.inverse_from_cholesky(self.R22, numba.get_num_threads())
            else:
                U, info = sla.lapack.dpotri(self.R22, lower=0)
        if info != 0:
            raise NumericalError(f"inverting the Schur complement failed (LAPACK info={info})")
        return U

    def inverse_diagonal(self) -> np.ndarray | None:
        """diag(M^-1) for a scalar first term (k1 = 1), without M^-1's off-diagonal blocks:

            (M^-1)_jj = (1 + w_j' S^-1 w_j) / L11_j^2     level j of term 1 (w_j: row j of L21')
            diag((M^-1)_22) = diag(S^-1)

        S^-1 (_schur_inverse) and one tiled pass over the level pairs (those that form S), where the
        selected inverse also forms (M^-1)_21.  None for a vector-valued first term."""
        if self.k1 != 1 or self._perm is not None:
            return None
        d11 = self.L11[:, 0, 0]
        U = self._schur_inverse()
        out = np.empty(self.q)
        out[: self.q1] = 1.0
        if self.q2:
            nt = kernel_threads(self.pairs)
            out[: self.q1] += (_quadforms_scalar_tiled if nt > 1 else _quadforms_scalar_tiled_serial)(
                U.reshape(-1, order="F"), self.W, self.lev_ptr, self.lev_rows, self.q2, self._row_tiles(), nt)
            out[self.q1:] = np.diag(U)
        out[: self.q1] /= d11 ** 2
        return out

    def selected_inverse(self, M_indptr, M_indices) -> np.ndarray:
        """M^-1 on the stored (lower) pattern of M, in M.data order."""
        U = self._schur_inverse()
        Uflat = U.reshape(-1, order="F")          # a view (_schur_inverse returns a Fortran array)
        if self.q2:
            (_symmetrize_upper if kernel_threads(self.q2 * self.q2 / 2) > 1 else _symmetrize_upper_serial)(
                Uflat, self.q2)
        nt = kernel_threads(self.pairs * self.k1)
        if nt * self.W.size * 8 > L21_BUFFER_BYTES:        # a copy of Y per thread
            nt = 1
        kernel = _selected_inverse if nt > 1 else _selected_inverse_serial
        cols = max(8, SELINV_TILE_BYTES // (8 * max(self.q2, 1)))
        tiles = np.append(np.arange(0, self.q2, cols, dtype=np.int64), np.int64(self.q2))
        return kernel(self.L11, self.W, self.lev_ptr, self.lev_rows, self.k1, Uflat, self.pos11, self.pos21,
                      self.w_off, self.pos22, self.q2, tiles, nt, np.zeros(M_indices.size))


@njit(cache=True, parallel=True)
def _symmetrize_upper(Uflat, q2):
    """Copy the upper triangle of the column-major q2 x q2 ``Uflat`` into its lower triangle
    (columns in parallel: disjoint writes)."""
    for c in prange(q2):
        for r in range(c + 1, q2):
            Uflat[c * q2 + r] = Uflat[r * q2 + c]


@njit(cache=True, parallel=True)
def _selected_inverse(L11, W, lev_ptr, lev_rows, k1, Uflat, pos11, pos21, w_off, pos22, q2, tiles, nthreads,
                      out):
    """M^-1 on M's lower pattern from the blocked factor and S^-1 (``Uflat``: all of it,
    symmetric, column-major).

        (M^-1)_22 = S^-1
        (M^-1)_21 = -S^-1 L21 L11^-1                      (level by level, rows R_j)
        (M^-1)_11 = L11^-T (I + L21' S^-1 L21) L11^-1     (diagonal blocks only)

    Y_j = S^-1[R_j, R_j] W_j for every level, by tiles of S^-1's columns (``tiles``:
    column boundaries, dealt round-robin to the threads, so that a tile stays in cache
    while every level reads it): column r of level j (r in R_j) has its entries at R_j
    gathered once, then one vectorised axpy per column of W_j into Y_j (no dependent
    additions in the inner loop).  Each thread sums into its own copy of Y (level j's
    column c at k1 a + c nr, a = lev_ptr[j]), the copies added in thread order: the same
    bits for a given thread count (with one, the columns are summed in order).  The rest
    is per level (disjoint writes)."""
    nlev = L11.shape[0]
    maxnr = 0
    for j in range(nlev):
        maxnr = max(maxnr, lev_ptr[j + 1] - lev_ptr[j])
    ntiles = tiles.shape[0] - 1
    part = np.zeros((nthreads, W.shape[0]))
    for t in prange(nthreads):
        g = np.empty(maxnr)
        Yt = part[t]
        for bi in range(t, ntiles, nthreads):
            lo, hi = tiles[bi], tiles[bi + 1]
            for j in range(nlev):
                a, e = lev_ptr[j], lev_ptr[j + 1]
                nr = e - a
                s0, s1 = _rows_within(lev_rows, a, e, lo, hi)
                cols = lev_rows[a:e]
                for x in range(s0, s1):
                    rm = lev_rows[x]
                    col = Uflat[rm * q2: (rm + 1) * q2]
                    for i in range(nr):
                        g[i] = col[np.uint64(cols[i])]
                    for c in range(k1):
                        w = W[x * k1 + c]
                        Yc = Yt[a * k1 + c * nr: a * k1 + (c + 1) * nr]
                        for i in range(nr):
                            Yc[i] += g[i] * w
    Minv11 = np.zeros((nlev, k1, k1))
    Minv21 = np.zeros(W.shape[0])
    for j in prange(nlev):             # levels write disjoint blocks: parallel-safe
        base = lev_ptr[j]
        nr = lev_ptr[j + 1] - base
        Y = np.zeros((k1, nr))
        for t in range(nthreads):
            for c in range(k1):
                for i in range(nr):
                    Y[c, i] += part[t, base * k1 + c * nr + i]
        # Linv = L11_j^-1 (k1 x k1 lower)
        Linv = np.zeros((k1, k1))
        for c in range(k1):
            Linv[c, c] = 1.0 / L11[j, c, c]
            for r in range(c + 1, k1):
                s = 0.0
                for t in range(c, r):
                    s -= L11[j, r, t] * Linv[t, c]
                Linv[r, c] = s / L11[j, r, r]
        # Minv21 rows: -Y' Linv
        for i in range(nr):
            o = (base + i) * k1
            for c in range(k1):
                s = 0.0
                for t in range(k1):
                    s -= Y[t, i] * Linv[t, c]
                Minv21[o + c] = s
        # inner = I + W_j' Y ; Minv11_j = Linv' inner Linv
        inner = np.eye(k1)
        for i in range(nr):
            o = (base + i) * k1
            for a in range(k1):
                for b in range(k1):
                    inner[a, b] += W[o + a] * Y[b, i]
        for a in range(k1):
            for b in range(k1):
                s = 0.0
                for x in range(k1):
                    for y in range(k1):
                        s += Linv[x, a] * inner[x, y] * Linv[y, b]
                Minv11[j, a, b] = s
    for e in range(pos11.shape[0]):
        out[pos11[e, 0]] = Minv11[pos11[e, 1], pos11[e, 2], pos11[e, 3]]
    for e in range(pos21.shape[0]):
        out[pos21[e]] = Minv21[w_off[e]]
    for e in range(pos22.shape[0]):
        f = pos22[e, 1]
        a, b = f // q2, f % q2
        out[pos22[e, 0]] = Uflat[a * q2 + b] if a >= b else Uflat[b * q2 + a]   # (b, a) / (a, b): upper
    return out


_selected_inverse_serial = serial_twin(_selected_inverse)
_symmetrize_upper_serial = serial_twin(_symmetrize_upper)
