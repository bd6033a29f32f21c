"""Dense Cholesky S = L L' of the Schur block, by tiles on two Python threads.

Right-looking, panel by panel (b columns at a time):

    L_kk = chol(S_kk)                                  (LAPACK, one thread)
    L_ik = S_ik L_kk^-T            for the rows below  (triangular solve, one thread)
    S_ij -= L_ik L_jk'             for j <= i below    (trailing update: the n^3/3 flops)

The trailing update, almost all the work, is split into row strips of equal flops,
each computed by numpy's single-threaded BLAS product in its own Python thread (numpy
releases the GIL).  This is for the large blocks of MovieLens-sized models, where one
factorization is n^3/3 ~ 1.4e12 flops: OpenBLAS's own threads are faster on an idle
machine but spin when the other core is busy (measured: threaded dpotrf twice as slow
as single-threaded at n = 6,000 next to one busy process; at n = 1,156, 100x), and its
threaded dpotrf crashed at n = 16,034 on one of our machines.  Python threads that run
single-threaded BLAS degrade to one core's speed under load and no further.

The strips are fixed by n and b alone and each entry is updated by one thread in a fixed
order, so the result is the same bit for bit from run to run.  S is held as its lower
triangle in row-major order (= the upper triangle of L' column-major, LAPACK's 'U' in
Fortran order), and is overwritten by L; its strict upper triangle is neither read nor
meaningful.
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import scipy.linalg as sla

PANEL = 384
ROWS = 512       # rows per product in a strip (bounds the temporary to ROWS x n)
_POOL: ThreadPoolExecutor | None = None


def _pool(nthreads: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers != nthreads:
        _POOL = ThreadPoolExecutor(max_workers=nthreads, thread_name_prefix="sparsemixed-chol")
    return _POOL


def _strips(lo: int, hi: int, nthreads: int) -> list[tuple[int, int]]:
    """Split rows [lo, hi) of a lower-triangular update into nthreads strips of about equal
    work (row r costs r - lo + 1 columns)."""
    m = hi - lo
    cuts = [lo]
    for t in range(1, nthreads):
        cuts.append(lo + int(round(m * np.sqrt(t / nthreads))))
    cuts.append(hi)
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def cholesky_lower_inplace(S: np.ndarray, nthreads: int = 2, panel: int | None = None) -> int:
    """Overwrite the lower triangle of the C-ordered square ``S`` with L (S = L L').
    Returns 0, or k > 0 when the leading minor of order k is not positive definite
    (LAPACK's info convention).  The strict upper triangle is not read, and is left
    holding intermediate values."""
    n = S.shape[0]
    panel = panel or PANEL
    for k0 in range(0, n, panel):
        k1 = min(n, k0 + panel)
        # S_kk as LAPACK sees it: lower row-major == upper column-major of its transpose
        c, info = sla.lapack.dpotrf(S[k0:k1, k0:k1].T, lower=0, clean=0, overwrite_a=0)
        if info != 0:
            return k0 + info
        S[k0:k1, k0:k1] = c.T                 # its strict upper part is not read
        if k1 == n:
            break
        Lkk = S[k0:k1, k0:k1]
        # panel: L_ik = S_ik Lkk^-T  <=>  Lkk L_ik' = S_ik'
        S[k1:, k0:k1] = sla.solve_triangular(Lkk, S[k1:, k0:k1].T, lower=True, check_finite=False).T
        P = S[k1:, k0:k1]                     # the new panel, rows k1..n
        strips = _strips(k1, n, nthreads)

        def update(strip, P=P, k1=k1):
            for a in range(strip[0], strip[1], ROWS):
                b = min(strip[1], a + ROWS)
                # rows a..b, columns k1..b: their lower part, and a triangle above the
                # diagonal that is never read
                S[a:b, k1:b] -= P[a - k1:b - k1] @ P[: b - k1].T

        if len(strips) == 1:
            update(strips[0])
        else:
            list(_pool(nthreads).map(update, strips))
    return 0
