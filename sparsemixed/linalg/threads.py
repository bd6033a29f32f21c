"""Threads: one BLAS thread on the hot path, compiled kernels serial when the work is small.

With another core busy, threaded OpenBLAS spins and waits for it, and a numba
``parallel=True`` kernel pays the same wake-up, on problems of any size (measured 100x to
3000x slower: benchmarks/results/thresholds.md).  So every evaluation of the criterion and its gradient runs under :func:`one_blas_thread`
(except a CHOLMOD factorization of more than cholesky.THREADED_FLOPS, :func:`all_blas_threads`)
(the package parallelises the large dense work itself, on Python threads with
single-threaded BLAS: linalg.dense), and a parallel kernel is called only when its work,
counted in inner-loop steps, passes PARALLEL_MIN_WORK; otherwise its serial twin
(:func:`serial_twin`, the same Python source compiled without ``parallel``).

After a parallel kernel, GNU OpenMP's idle threads spin (300,000 iterations by default)
and slow the dense Cholesky that runs next on Python threads; ``sparsemixed/__init__.py``
sets ``GOMP_SPINCOUNT=50000`` unless the user has set it (about 10% per evaluation at
InstEval and 1M rows: benchmarks/results/thresholds.md; docs/scaling.md).
"""
from __future__ import annotations

import threading
import types

import numba

from .jit import njit

PARALLEL_MIN_WORK = 200_000
_CONTROLLER = None
_BLAS = None
_LOCK = threading.Lock()
_DEPTH = {"one": 0, "all": 0}     # open contexts of each kind, over all threads
_SAVED: list | None = None        # the user's thread counts, per BLAS library, while any is open
_CURRENT: int | None = None


def _blas_libraries():
    """The BLAS libraries' controllers, found once per process (the controller is a snapshot
    of the libraries loaded when it was made, so selecting again finds the same ones)."""
    global _CONTROLLER, _BLAS
    if _BLAS is None:
        from threadpoolctl import ThreadpoolController

        _CONTROLLER = ThreadpoolController()
        _BLAS = _CONTROLLER.select(user_api="blas").lib_controllers
    return _BLAS


class _BlasLimit:
    """BLAS thread limits are process-wide (OpenBLAS keeps one count), so the contexts of
    all threads are counted together: the first to open saves the user's counts, the last
    to close restores them, and in between the count is numba's threads while any
    :func:`all_blas_threads` is open, else 1.  (Nested threadpoolctl limits from several
    threads restore each other's saved values out of order and can leave the user's count
    changed.)  Known limit: OpenBLAS 0.3.30 does not apply the count to calls from threads
    other than the one that set it, so evaluations run from several Python threads may use
    threaded BLAS there and round differently (last bits; tests/test_threads.py)."""

    __slots__ = ("kind",)

    def __init__(self, kind: str):
        self.kind = kind

    def __enter__(self):
        global _SAVED, _CURRENT
        with _LOCK:
            libs = _blas_libraries()
            if _SAVED is None:
                _SAVED = [lib.num_threads for lib in libs]
            _DEPTH[self.kind] += 1
            try:
                _apply(libs)
            except BaseException:            # a Ctrl-C inside the switch: the context was not entered
                _DEPTH[self.kind] -= 1
                if _DEPTH["one"] == 0 and _DEPTH["all"] == 0:
                    for lib, n in zip(libs, _SAVED):
                        lib.set_num_threads(n)
                    _SAVED, _CURRENT = None, None
                raise
        return self

    def __exit__(self, *exc):
        global _SAVED, _CURRENT
        with _LOCK:
            _DEPTH[self.kind] -= 1
            libs = _blas_libraries()
            if _DEPTH["one"] == 0 and _DEPTH["all"] == 0:
                for lib, n in zip(libs, _SAVED):
                    lib.set_num_threads(n)
                _SAVED, _CURRENT = None, None
            else:
                _apply(libs)
        return False


def _apply(libs) -> None:
    global _CURRENT
    n = numba.get_num_threads() if _DEPTH["all"] else 1
    if n != _CURRENT:
        for lib in libs:
            lib.set_num_threads(n)
        _CURRENT = n


def one_blas_thread() -> _BlasLimit:
    """Context limiting BLAS (numpy's and scipy's OpenBLAS) to one thread; safe to open
    from several threads at once (the user's limit is restored when the last closes)."""
    return _BlasLimit("one")


def all_blas_threads() -> _BlasLimit:
    """Context lifting the BLAS limit to numba's thread count (NUMBA_NUM_THREADS=1 keeps
    one): for a CHOLMOD factorization large enough that its supernodes' dense BLAS calls
    dominate (cholesky.THREADED_FLOPS); the enclosing one_blas_thread is restored after."""
    return _BlasLimit("all")


def serial_twin(kernel):
    """The serial compilation of a ``@njit(parallel=True)`` kernel (prange runs as range).

    It is compiled from a copy of the Python function with its own ``__qualname__``:
    numba names its on-disk cache after the function's qualified name and line, not after
    the ``parallel`` flag, so a twin of the same function would share the parallel
    kernel's cache entries and one of the two would load the other's machine code."""
    f = kernel.py_func
    twin = types.FunctionType(f.__code__, f.__globals__, f.__name__ + "_serial", f.__defaults__, f.__closure__)
    twin.__qualname__ = f.__qualname__ + "_serial"
    return njit(cache=True)(twin)


BLAS_MIN_WORK = 5e7      # flops below which threaded BLAS/LAPACK only waits on 2 cores (and
                         # far longer beside busy processes: benchmarks/results/2026-12-06-small-panel-after-load2.md)


def blas_threads_for(work: float):
    """:func:`one_blas_thread` for work (flops) under BLAS_MIN_WORK, else the user's count."""
    import contextlib

    return one_blas_thread() if work < BLAS_MIN_WORK else contextlib.nullcontext()


def kernel_threads(work: float) -> int:
    """Threads for a kernel of ``work`` inner steps: 1 below PARALLEL_MIN_WORK."""
    return numba.get_num_threads() if work >= PARALLEL_MIN_WORK else 1
