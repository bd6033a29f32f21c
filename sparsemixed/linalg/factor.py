"""The Factor protocol: a Cholesky factor of a symmetric positive definite matrix of fixed pattern.

    P M P' = L L'          (P a fill-reducing permutation, fixed by one symbolic analysis)

Implemented by :class:`~sparsemixed.linalg.cholesky.SparseCholesky` (CHOLMOD) and
:class:`~sparsemixed.linalg.blocked.BlockedCholesky` (first term eliminated, dense
Schur complement).  A factor is a *workspace*: ``factorize`` overwrites its values.  The
symbolic analysis is shared by every :meth:`Factor.clone`, so a :class:`FactorPool` hands
each concurrent evaluation a workspace of its own and one sequential caller always the same.
"""
from __future__ import annotations

import threading
import weakref
from typing import Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class Factor(Protocol):
    ordering: str           # "natural" | "amd" | "metis" (CHOLMOD) or "blocked"
    q: int

    def factorize(self, M) -> None:
        """Numeric factorization of M (lower CSC, the analysed pattern) into this workspace."""

    def logdet(self) -> float:
        """log|M| = log|L|^2."""

    def solve_L(self, B: np.ndarray) -> np.ndarray:
        """L^-1 P B."""

    def solve_Lt(self, B: np.ndarray) -> np.ndarray:
        """P' L^-T B."""

    def perm(self) -> np.ndarray:
        """P as an index vector: row i of P M P' is row perm[i] of M."""

    def selected_inverse(self, M_indptr, M_indices) -> np.ndarray:
        """M^-1 on M's stored lower pattern, in M.data order."""

    def inverse_diagonal(self) -> np.ndarray | None:
        """diag(M^-1) when the factor gives it more cheaply than :meth:`selected_inverse`,
        else None (the caller then uses the selected inverse)."""

    def clone(self) -> "Factor":
        """A new workspace on the same symbolic analysis (values not copied)."""


class FactorPool:
    """Workspaces of one analysed factor.  :meth:`checkout` lends one as a :class:`Lease`,
    which returns it to the pool when the last reference to the lease goes (a state and
    its copies share one lease); one sequential caller therefore always gets the template
    back, and concurrent callers each get a clone (made on first need, kept for reuse)."""

    def __init__(self, template: Factor):
        self.template = template
        self._free = [template]
        self._lock = threading.Lock()

    def checkout(self) -> "Lease":
        with self._lock:
            f = self._free.pop() if self._free else None
        return Lease(self.template.clone() if f is None else f, self)

    def _release(self, factor: Factor) -> None:
        with self._lock:
            self._free.append(factor)

    def __getstate__(self):
        return {"template": self.template}

    def __setstate__(self, state):
        self.__init__(state["template"])


class Lease:
    """A factor lent by a :class:`FactorPool`: behaves as the factor (attributes read and
    written through), and gives it back when collected."""

    __slots__ = ("_factor", "__weakref__")

    def __init__(self, factor: Factor, pool: FactorPool):
        object.__setattr__(self, "_factor", factor)
        weakref.finalize(self, pool._release, factor)

    def __getattr__(self, name):
        return getattr(object.__getattribute__(self, "_factor"), name)

    def __setattr__(self, name, value):
        setattr(object.__getattribute__(self, "_factor"), name, value)

    def __reduce__(self):                # a pickled state carries the factor itself
        return (_unlease, (object.__getattribute__(self, "_factor"),))


def _unlease(factor):
    return factor
