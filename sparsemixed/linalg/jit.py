"""Compiled kernels with an on-disk cache that any user of any installation can read.

``njit(cache=True, ...)`` is numba's ``njit`` with this module's cache instead of numba's.
numba's own ``cache=True`` saves next to the source (``__pycache__``) when that is
writable, else in the user's cache directory, and raises at decoration ("cannot cache
function ...: no locator available") when neither is: ``import sparsemixed`` then failed
on a read-only installation without a writable home.  And a cache compiled at install
time into a read-only tree was never read by other users, who compiled everything again.

Here each kernel's cache

* loads from the package tree's ``__pycache__`` first (what ``python -m
  sparsemixed.precompile`` writes at install time; read even when the tree is read-only),
  then from the writable directory below;
* saves to the first writable of NUMBA_CACHE_DIR, the tree's ``__pycache__`` and the
  user's cache directory (numba's order); when none is writable it saves nothing (each
  process compiles what the tree lacks) and never fails;
* treats an unreadable or corrupt entry as a miss.

An entry is valid for the same source file (its content hash in numba 0.68; mtime and size in
older numba), numba and Python versions, function bytecode and CPU (numba's index
key): a tree precompiled on one machine is used there, and ignored (compiled again) on a
different CPU.
"""
from __future__ import annotations

import inspect
import os

import numba
from numba import prange  # noqa: F401  (re-exported: kernels import njit and prange from here)
from numba.core import caching
from numba.core.dispatcher import Dispatcher

__all__ = ["njit", "prange", "kernels", "save_to_tree", "TreeNotWritableError"]

_KERNELS: list = []       # every dispatcher made with cache=True, in decoration order
_TREE_ONLY = False        # set by save_to_tree


class TreeNotWritableError(OSError):
    """The package tree's ``__pycache__`` cannot be written (precompile as its owner)."""


def _numba(name: str):
    """A class of numba.core.caching, public from numba 0.6x on, ``_name`` before."""
    return getattr(caching, name, None) or getattr(caching, "_" + name)


_InTree, _UserProvided, _UserWide = (_numba(n) for n in ("InTreeCacheLocator", "UserProvidedCacheLocator",
                                                           "UserWideCacheLocator"))


class _LoadOnlyTree(_InTree):
    """The tree's ``__pycache__`` when nothing is writable: loads only."""

    @classmethod
    def from_function(cls, py_func, py_file):
        return cls(py_func, py_file) if os.path.exists(py_file) else None

    def ensure_cache_path(self):
        raise OSError(f"{self.get_cache_path()} is not writable")


class _Impl(caching.CompileResultCacheImpl):
    _locator_classes = [_UserProvided, _InTree, _UserWide, _LoadOnlyTree]


class _TreeImpl(caching.CompileResultCacheImpl):
    _locator_classes = [_InTree]


class _Cache(caching.FunctionCache):
    """numba's FunctionCache reading the tree's entries too, saving only where it can."""

    _impl_class = _Impl

    def __init__(self, py_func):
        super().__init__(py_func)
        self._writable = not isinstance(self._impl.locator, _LoadOnlyTree)
        tree = os.path.join(os.path.dirname(os.path.abspath(inspect.getfile(py_func))), "__pycache__")
        self._files = [self._cache_file]
        if os.path.abspath(self._cache_path) != tree:
            shipped = caching.IndexDataCacheFile(cache_path=tree, filename_base=self._impl.filename_base,
                                                 source_stamp=self._impl.locator.get_source_stamp())
            self._files.insert(0, shipped)

    def _load_overload(self, sig, target_context):
        if not self._enabled:
            return None
        key = self._index_key(sig, target_context.codegen())
        for cache_file in self._files:
            try:
                data = cache_file.load(key)
                if data is not None:
                    return self._impl.rebuild(target_context, data)
            except Exception:       # unreadable or corrupt entry: a miss, the kernel is compiled
                continue
        return None

    def _save_overload(self, sig, data):
        if not self._writable:
            return
        try:
            super()._save_overload(sig, data)
        except OSError:             # e.g. disk full, or the directory made read-only since
            pass

    def flush(self):
        if self._writable:
            super().flush()


class _TreeCache(_Cache):
    """Loads from and saves to the tree's ``__pycache__`` only (precompile)."""

    _impl_class = _TreeImpl


def njit(func=None, /, *, cache: bool = False, **options):
    """numba.njit; ``cache=True`` caches on disk as this module's docstring says (a kernel
    whose cache cannot be set up at all, e.g. source not on disk, is compiled per process)."""

    def wrap(f):
        disp = numba.njit(**options)(f)
        if cache and isinstance(disp, Dispatcher):
            if _TREE_ONLY:
                _use_tree(disp)
            else:
                try:
                    disp._cache = _Cache(disp.py_func)
                except (RuntimeError, OSError):
                    pass
            _KERNELS.append(disp)
        return disp

    return wrap(func) if func is not None else wrap


def kernels() -> list:
    """Every cached kernel (numba dispatchers: ``.stats`` has the cache hits and misses)."""
    return list(_KERNELS)


def save_to_tree() -> None:
    """Point every kernel's cache, and those made later, at the package tree's
    ``__pycache__`` only (loads and saves), before anything is compiled: what ``python -m
    sparsemixed.precompile`` fills.  TreeNotWritableError when the tree is not writable."""
    global _TREE_ONLY
    for disp in _KERNELS:
        _use_tree(disp)
    _TREE_ONLY = True


def _use_tree(disp) -> None:
    try:
        disp._cache = _TreeCache(disp.py_func)
    except RuntimeError as exc:      # numba: no locator available (not writable)
        path = os.path.join(os.path.dirname(inspect.getfile(disp.py_func)), "__pycache__")
        raise TreeNotWritableError(f"cannot write the compiled kernels into {path}: run "
                                   "python -m sparsemixed.precompile as the user who installed "
                                   "sparsemixed (root for a system install)") from exc
