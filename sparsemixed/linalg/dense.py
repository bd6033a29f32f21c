"""Dense Cholesky S = L L' of the Schur block, and S^-1 from it, by tiles on Python threads.

Right-looking, panel by panel (b columns k0..k1 at a time):

    L_kk = chol(S_kk)                                  (LAPACK dpotrf, one thread)
    L_ik = S_ik (L_kk^-1)'         for the rows below  (dtrtri once, then dtrmm, rows split
                                                        over the threads)
    S_ij -= L_ik L_jk'             for j <= i below    (dgemm/dsyrk: the n^3/3 flops, split
                                                        into row strips of equal flops)

Every call goes to the BLAS/LAPACK that scipy links (its Cython API) through ctypes,
which releases the GIL, with pointers into S: the panels and the trailing block are
updated in place, no copy, no temporary.  Each thread runs single-threaded BLAS
(the caller holds ``one_blas_thread``).  This is for the large blocks of MovieLens-sized
models (n^3/3 ~ 1.4e12 flops at n = 16,034) and the 2,000-item block of a 1M-row
model: OpenBLAS's own threads spin when another core is busy (and its threaded dpotrf
crashed at n = 16,034 on one of our machines: benchmarks/results/thresholds.md).  Python threads running single-threaded BLAS
degrade to one core's speed under load and no further.

The strips are fixed by n, b and the thread count, and each entry is updated by one
thread in a fixed order, so the result is the same bit for bit from run to run.  S is
held as its lower triangle in row-major order -- to Fortran (column-major) BLAS that is
the *upper* triangle of the same memory with leading dimension n, which is how every
call below addresses it.  The panel is multiplied by the inverted diagonal tile (dtrmm)
rather than solved with it (dtrsm): OpenBLAS's single-threaded dtrsm ran at a third of
dgemm's speed here (n = 2,000: 31 -> 25 ms; n = 6,000: 529 -> 472 ms).  S is overwritten
by L; its strict upper triangle is neither read nor meaningful.

S^-1 (:func:`inverse_from_cholesky`: LAPACK dpotri's work, for the gradient) is X X' with
X = R^-1, R = L' (upper), n^3/3 flops each, by b x b tiles into a new array U:

    X_KK = R_KK^-1                                  (dtrtri below 64, by halves above: dtrmm)
    X[:j0, J] = -R[:j0, :j0]^-1 R[:j0, J] X_JJ      (a task per block column: dtrmm, then
                                                     back-substitution, dgemm + dtrmm by X_KK)
    U_JJ = X_JJ X_JJ' + X[J, j1:] X[J, j1:]'        (dlauum + dsyrk, into a side tile)
    U[I, J] = X[I, J] X_JJ' + X[I, j1:] X[J, j1:]'  (I < J: dtrmm + dgemm, in place)

The product overwrites X, so a tile waits for the tasks that read it (U_II, the tiles left
of it in its row, the tiles of column I): a dependency graph, whose ready tasks the threads
take in a fixed order of priority.  A task is the same calls on the same data whichever
thread runs it, so U is the same bit for bit for any thread count.  n = 1,156 (InstEval):
dpotri 25 ms, this 11 ms on 2 threads (20 ms on one); n = 4,000: 630 -> 330 ms.
"""
from __future__ import annotations

import ctypes
import heapq
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.linalg import cython_blas, cython_lapack

PANEL = 256
SMALL_PANEL, SMALL_N = 128, 1500   # below n = 1,500 narrower panels balance the threads better
                                    # (n = 1,156: 8.9 -> 8.6 ms; n = 2,000 with 128: 28.3 -> 27.9, same)
INV_PANELS = ((700, 192), (3000, 256), (np.inf, 384))   # S^-1's tiles, b below n (2 threads, 256 ->:
                                                        # n = 600, 2.6 -> 2.2 ms; n = 4,000, 375 -> 347 ms)
ROWS = 512       # rows per dgemm/dsyrk call in a strip (the diagonal tile's extra work is bounded by it)
_POOL: ThreadPoolExecutor | None = None

_int_p, _dbl_p, _chr = ctypes.POINTER(ctypes.c_int), ctypes.c_void_p, ctypes.c_char_p


def _fortran(module, name: str, *argtypes):
    """The Fortran-convention routine ``name`` of scipy's cython_blas/cython_lapack as a
    ctypes function (every argument by pointer; ctypes releases the GIL during the call)."""
    capsule = module.__pyx_capi__[name]
    get_name = ctypes.pythonapi.PyCapsule_GetName
    get_name.restype, get_name.argtypes = ctypes.c_char_p, [ctypes.py_object]
    get_ptr = ctypes.pythonapi.PyCapsule_GetPointer
    get_ptr.restype, get_ptr.argtypes = ctypes.c_void_p, [ctypes.py_object, ctypes.c_char_p]
    return ctypes.CFUNCTYPE(None, *argtypes)(get_ptr(capsule, get_name(capsule)))


_D = ctypes.c_double
_dpotrf = _fortran(cython_lapack, "dpotrf", _chr, _int_p, _dbl_p, _int_p, _int_p)
_dgemm = _fortran(cython_blas, "dgemm", _chr, _chr, _int_p, _int_p, _int_p, ctypes.POINTER(_D),
                  _dbl_p, _int_p, _dbl_p, _int_p, ctypes.POINTER(_D), _dbl_p, _int_p)
_dtrmm = _fortran(cython_blas, "dtrmm", _chr, _chr, _chr, _chr, _int_p, _int_p,
                  ctypes.POINTER(_D), _dbl_p, _int_p, _dbl_p, _int_p)
_dtrtri = _fortran(cython_lapack, "dtrtri", _chr, _chr, _int_p, _dbl_p, _int_p, _int_p)
_dlacpy = _fortran(cython_lapack, "dlacpy", _chr, _int_p, _int_p, _dbl_p, _int_p, _dbl_p, _int_p)
_dsyrk = _fortran(cython_blas, "dsyrk", _chr, _chr, _int_p, _int_p, ctypes.POINTER(_D),
                  _dbl_p, _int_p, ctypes.POINTER(_D), _dbl_p, _int_p)
_dlauum = _fortran(cython_lapack, "dlauum", _chr, _int_p, _dbl_p, _int_p, _int_p)


def _i(v: int):
    return ctypes.byref(ctypes.c_int(int(v)))


def _d(v: float):
    return ctypes.byref(_D(float(v)))


class _Tiles:
    """Addresses into a C-ordered n x n float64 array: ``at(i, j)`` is &S[i, j], and every
    Fortran routine sees the block from there with leading dimension n (its transpose)."""

    def __init__(self, S: np.ndarray, panel: int):
        self.base, self.n = S.ctypes.data, S.shape[0]
        self.inv = np.zeros((panel, panel), order="F")    # (L_kk')^-1 of the current panel

    def at(self, i: int, j: int) -> int:
        return self.base + 8 * (i * self.n + j)

    def potrf(self, k0: int, kb: int) -> int:
        info = ctypes.c_int(0)
        _dpotrf(b"U", _i(kb), self.at(k0, k0), _i(self.n), ctypes.byref(info))
        return info.value

    def invert(self, k0: int, kb: int) -> int:
        """self.inv[:kb, :kb] := U^-1 with U = L_kk' (upper; dtrtri on a copy)."""
        info = ctypes.c_int(0)
        _dlacpy(b"U", _i(kb), _i(kb), self.at(k0, k0), _i(self.n), self.inv.ctypes.data, _i(self.inv.shape[0]))
        _dtrtri(b"U", b"N", _i(kb), self.inv.ctypes.data, _i(self.inv.shape[0]), ctypes.byref(info))
        return info.value

    def trmm(self, k0: int, kb: int, r0: int, r1: int) -> None:
        """S[r0:r1, k0:k0+kb] := S[r0:r1, k0:k0+kb] L_kk^-T (Fortran: B := U^-T B)."""
        if r1 > r0:
            _dtrmm(b"L", b"U", b"T", b"N", _i(kb), _i(r1 - r0), _d(1.0), self.inv.ctypes.data,
                   _i(self.inv.shape[0]), self.at(r0, k0), _i(self.n))

    def update(self, k0: int, kb: int, c0: int, a: int, b: int) -> None:
        """Rows a..b of the trailing block (columns c0..b, lower part): S_ij -= P_i P_j' with
        P the panel S[:, k0:k0+kb]; dgemm left of the diagonal tile, dsyrk on it."""
        n = self.n
        if a > c0:
            _dgemm(b"T", b"N", _i(a - c0), _i(b - a), _i(kb), _d(-1.0), self.at(c0, k0), _i(n),
                   self.at(a, k0), _i(n), _d(1.0), self.at(a, c0), _i(n))
        _dsyrk(b"U", b"T", _i(b - a), _i(kb), _d(-1.0), self.at(a, k0), _i(n), _d(1.0),
               self.at(a, a), _i(n))


def _pool(workers: int) -> ThreadPoolExecutor:
    global _POOL
    if _POOL is None or _POOL._max_workers != workers:
        _POOL = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sparsemixed-chol")
    return _POOL


def _strips(lo: int, hi: int, nthreads: int, cost: str = "triangle") -> list[tuple[int, int]]:
    """Split rows [lo, hi) into nthreads strips of about equal work: "triangle" for the
    lower-triangular update (row r costs r - lo + 1 columns), "rows" for equal rows."""
    m = hi - lo
    share = (lambda t: np.sqrt(t / nthreads)) if cost == "triangle" else (lambda t: t / nthreads)
    cuts = [lo] + [lo + int(round(m * share(t))) for t in range(1, nthreads)] + [hi]
    return [(a, b) for a, b in zip(cuts[:-1], cuts[1:]) if b > a]


def _run(tasks, nthreads: int) -> None:
    """Run the tasks (independent strips) and wait for all: the first in the calling
    thread, the others on nthreads - 1 pool threads (one wake-up fewer per step than
    handing all of them to the pool: InstEval's n = 1,156, 8.6 -> 7.9 ms)."""
    if len(tasks) == 1 or nthreads == 1:
        for t in tasks:
            t()
        return
    pool = _pool(nthreads - 1)
    futures = [pool.submit(t) for t in tasks[1:]]
    try:
        tasks[0]()
    finally:
        for f in futures:
            f.result()


def cholesky_lower_inplace(S: np.ndarray, nthreads: int = 2, panel: int | None = None) -> int:
    """Overwrite the lower triangle of the C-ordered float64 square ``S`` with L (S = L L').
    Returns 0, or k > 0 when the leading minor of order k is not positive definite
    (LAPACK's info convention).  The strict upper triangle is not read, and is left
    holding intermediate values."""
    if not (S.flags.c_contiguous and S.dtype == np.float64 and S.ndim == 2 and S.shape[0] == S.shape[1]):
        raise ValueError("cholesky_lower_inplace needs a C-contiguous float64 square array")
    n = S.shape[0]
    panel = panel or (SMALL_PANEL if n < SMALL_N else PANEL)
    T = _Tiles(S, min(panel, n))
    for k0 in range(0, n, panel):
        k1 = min(n, k0 + panel)
        kb = k1 - k0
        info = T.potrf(k0, kb)
        if info != 0:
            return k0 + info
        if k1 == n:
            break
        if T.invert(k0, kb) != 0:       # cannot happen after dpotrf succeeded (positive diagonal)
            return k0 + 1
        _run([lambda a=a, b=b: T.trmm(k0, kb, a, b) for a, b in _strips(k1, n, nthreads, "rows")],
             nthreads)

        def strip(a0: int, b0: int, k0=k0, kb=kb, k1=k1) -> None:
            for a in range(a0, b0, ROWS):
                T.update(k0, kb, k1, a, min(b0, a + ROWS))

        _run([lambda a=a, b=b: strip(a, b) for a, b in _strips(k1, n, nthreads)], nthreads)
    return 0


def _run_graph(graph: dict, nthreads: int) -> None:
    """Run the tasks {name: (priority, task, names of the tasks it waits for)} on the calling
    thread and nthreads - 1 pool threads, each thread taking the ready task of least priority."""
    waiting = {k: len(v[2]) for k, v in graph.items()}
    after = {k: [] for k in graph}
    for k, (_, _, before) in graph.items():
        for b in before:
            after[b].append(k)
    ready = [(p, k) for k, (p, _, before) in graph.items() if not before]
    heapq.heapify(ready)
    cond = threading.Condition()
    state = {"left": len(graph), "failed": False}

    def work() -> None:
        try:
            while True:
                with cond:
                    while not ready and state["left"] and not state["failed"]:
                        cond.wait()
                    if not ready or state["failed"]:
                        return
                    _, k = heapq.heappop(ready)
                graph[k][1]()
                with cond:
                    state["left"] -= 1
                    for a in after[k]:
                        waiting[a] -= 1
                        if not waiting[a]:
                            heapq.heappush(ready, (graph[a][0], a))
                    cond.notify_all()
        except BaseException:       # a failed task, or a Ctrl-C anywhere in the calling thread:
            with cond:              # the others stop instead of waiting for its successors
                state["failed"] = True
                cond.notify_all()
            raise

    if nthreads == 1:
        work()
        return
    pool = _pool(nthreads - 1)
    futures = [pool.submit(work) for _ in range(nthreads - 1)]
    try:
        work()
    finally:
        for f in futures:
            f.result()


def _invert_upper(a: int, lda: int, k: int) -> None:
    """The k x k upper triangle at address a (leading dimension lda, nonzero diagonal) := its
    inverse, by halves: X12 = -X11 R12 X22 (two dtrmm), dtrtri from 64 down (OpenBLAS's
    dtrtri: 500 us at k = 256, this 200 us)."""
    if k <= 64:
        info = ctypes.c_int(0)
        _dtrtri(b"U", b"N", _i(k), a, _i(lda), ctypes.byref(info))
        return
    h = k // 2
    a12, a22 = a + 8 * h * lda, a + 8 * h * (lda + 1)
    _invert_upper(a, lda, h)
    _invert_upper(a22, lda, k - h)
    _dtrmm(b"L", b"U", b"N", b"N", _i(h), _i(k - h), _d(-1.0), a, _i(lda), a12, _i(lda))
    _dtrmm(b"R", b"U", b"N", b"N", _i(h), _i(k - h), _d(1.0), a22, _i(lda), a12, _i(lda))


def inverse_from_cholesky(R: np.ndarray, nthreads: int = 2, panel: int | None = None) -> tuple[np.ndarray, int]:
    """S^-1 from the Cholesky factor of S (LAPACK dpotri's result), by tiles on Python threads.

    ``R`` is the factor as :func:`cholesky_lower_inplace` leaves it (C-ordered, L in the lower
    triangle) or as ``R22`` holds it (Fortran, R = L' in the upper triangle): the same memory,
    of which only that triangle is read.  Returns (U, info): a new Fortran array with S^-1 in
    its upper triangle (the strict lower triangle is not meaningful), and 0, or k > 0 when
    R[k-1, k-1] = 0 (dpotri's info; U is then not computed)."""
    if not (R.dtype == np.float64 and R.ndim == 2 and R.shape[0] == R.shape[1]
            and (R.flags.c_contiguous or R.flags.f_contiguous)):
        raise ValueError("inverse_from_cholesky needs a contiguous float64 square array")
    n = R.shape[0]
    U = np.empty((n, n), order="F")
    zero = np.flatnonzero(np.diagonal(R) == 0.0)
    if n == 0 or zero.size:
        return U, int(zero[0]) + 1 if zero.size else 0
    nb = min(panel or next(b for below, b in INV_PANELS if n < below), n)
    rows = max(1, nb // 2) if n < SMALL_N else nb
    W = np.empty((nb, n), order="F")            # U_JJ, tile J at column j0, until the end
    rb, ub, wb = R.ctypes.data, U.ctypes.data, W.ctypes.data
    r = lambda i, j: rb + 8 * (i + j * n)       # Fortran (i, j) of R's and U's memory
    u = lambda i, j: ub + 8 * (i + j * n)
    w = lambda j: wb + 8 * nb * j
    N, NB = _i(n), _i(nb)
    blocks = [(k0, min(n, k0 + nb)) for k0 in range(0, n, nb)]
    nk = len(blocks)
    locks, inverted = [threading.Lock() for _ in blocks], [False] * nk

    def inverse(K: int) -> None:
        """X_KK = R_KK^-1 in U's diagonal tile, by the first task that needs it."""
        with locks[K]:
            if not inverted[K]:
                k0, k1 = blocks[K]
                _dlacpy(b"U", _i(k1 - k0), _i(k1 - k0), r(k0, k0), N, u(k0, k0), N)
                _invert_upper(u(k0, k0), n, k1 - k0)
                inverted[K] = True

    def column(J: int) -> None:
        """X[:j0, J] = -R[:j0, :j0]^-1 R[:j0, J] X_JJ: dtrmm, then back-substitution by tiles."""
        j0, j1 = blocks[J]
        jb = _i(j1 - j0)
        inverse(J)
        _dlacpy(b"A", _i(j0), jb, r(0, j0), N, u(0, j0), N)
        _dtrmm(b"R", b"U", b"N", b"N", _i(j0), jb, _d(-1.0), u(j0, j0), N, u(0, j0), N)
        for K in range(J - 1, -1, -1):
            k0, k1 = blocks[K]
            kb = _i(k1 - k0)
            if k1 < j0:
                _dgemm(b"N", b"N", kb, jb, _i(j0 - k1), _d(-1.0), r(k0, k1), N, u(k1, j0), N,
                       _d(1.0), u(k0, j0), N)
            inverse(K)
            _dtrmm(b"L", b"U", b"N", b"N", kb, jb, _d(1.0), u(k0, k0), N, u(k0, j0), N)

    def square(J: int) -> None:
        """U_JJ = X_JJ X_JJ' + X[J, j1:] X[J, j1:]' into W (X_JJ stays for the tiles' dtrmm)."""
        j0, j1 = blocks[J]
        jb, info = _i(j1 - j0), ctypes.c_int(0)
        inverse(J)                      # done by a column already, unless n <= nb
        _dlacpy(b"U", jb, jb, u(j0, j0), N, w(j0), NB)
        _dlauum(b"U", jb, w(j0), NB, ctypes.byref(info))
        if j1 < n:
            _dsyrk(b"U", b"N", jb, _i(n - j1), _d(1.0), u(j0, j1), N, _d(1.0), w(j0), NB)

    def tile(a: int, b: int, J: int) -> None:
        """U[a:b, J] = X[a:b, J] X_JJ' + X[a:b, j1:] X[J, j1:]', in place (a strip of a tile row)."""
        j0, j1 = blocks[J]
        jb = _i(j1 - j0)
        _dtrmm(b"R", b"U", b"T", b"N", _i(b - a), jb, _d(1.0), u(j0, j0), N, u(a, j0), N)
        if j1 < n:
            _dgemm(b"N", b"T", _i(b - a), jb, _i(n - j1), _d(1.0), u(a, j1), N, u(j0, j1), N,
                   _d(1.0), u(a, j0), N)

    # The columns of X first, largest first.  Then U = X X' in place: X[I, J] is read by
    # U_II, by U[I, J'] (J' < J) and by U[I', I] (I' < I), so U[I, J] waits for those, and
    # U_II (into W) for the columns right of I.  Below SMALL_N a tile row is two tasks of b/2
    # rows (the first tiles are the critical path: n = 800, 5.1 -> 4.8 ms; 1,156, 11.3 -> 10.9).
    strips = [[(a, min(i1, a + rows)) for a in range(i0, i1, rows)] for i0, i1 in blocks]
    graph = {("col", J): ((0, -J), lambda J=J: column(J), []) for J in range(1, nk)}
    for J in range(nk):
        graph["sq", J] = ((1, J + 1, -1, 0), lambda J=J: square(J), [("col", K) for K in range(max(J, 1), nk)])
    for J in range(1, nk):
        for I in range(J):
            for h, (a, b) in enumerate(strips[I]):
                before = ([("t", I, J - 1, h)] if J - 1 > I else
                          [("sq", I)] + [("t", Ip, I, g) for Ip in range(I) for g in range(len(strips[Ip]))])
                graph["t", I, J, h] = ((1, J, I, h), lambda a=a, b=b, J=J: tile(a, b, J), before)
    _run_graph(graph, nthreads)
    for j0, j1 in blocks:
        _dlacpy(b"U", _i(j1 - j0), _i(j1 - j0), w(j0), NB, u(j0, j0), N)
    return U, 0
