"""Dense Cholesky S = L L' of the Schur block, by tiles on Python threads.

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
"""
from __future__ import annotations

import ctypes
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from scipy.linalg import cython_blas, cython_lapack

PANEL = 256
SMALL_PANEL, SMALL_N = 128, 1500   # below n = 1,500 narrower panels balance the threads better
                                    # (n = 1,156: 8.9 -> 8.6 ms; n = 2,000 with 128: 28.3 -> 27.9, same)
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
