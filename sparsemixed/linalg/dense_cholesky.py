"""A dense Cholesky factor of M for small q, behind the Factor protocol (linalg/factor.py).

    M = L L'        (P = I; M held as a dense q x q array, LAPACK dpotrf)

For small q (engine/small.py's SMALL_M) a dense factor costs microseconds, less than
building or walking any sparse structure: the small-model engine uses it, and its
states carry one (conditional variances, predictions and GLMM steps then read it through
the same protocol as CHOLMOD's or the blocked factor).
"""
from __future__ import annotations

import numpy as np
import scipy.linalg as sla

from ..errors import NumericalError

_dpotrf, _dpotri, _dtrtrs = sla.lapack.dpotrf, sla.lapack.dpotri, sla.lapack.dtrtrs


class DenseCholesky:
    """L of a dense M (lower triangle of a Fortran-ordered q x q array).  ``indptr`` and
    ``indices`` give M's stored lower CSC pattern (relcov.RelCov), whose values
    :meth:`factorize_values` scatters into the dense array."""

    ordering = "dense"

    def __init__(self, indptr, indices, q: int):
        indptr = np.asarray(indptr, dtype=np.int64)
        cols = np.repeat(np.arange(q, dtype=np.int64), np.diff(indptr))
        self.q = q
        self._flat = np.asarray(indices, dtype=np.int64) + cols * q     # Fortran position of (row, col)
        self._rows, self._cols = np.asarray(indices, dtype=np.int64), cols
        self.L = None
        self._inv = None            # dpotri's M^-1 (lower triangle), kept while L is

    @classmethod
    def of(cls, L: np.ndarray, template: "DenseCholesky") -> "DenseCholesky":
        """A factor holding an already computed lower L (Fortran order), on template's pattern."""
        new = object.__new__(cls)
        new.__dict__.update(template.__dict__)
        new.L, new._inv = L, None
        return new

    def clone(self) -> "DenseCholesky":
        return DenseCholesky.of(None, self)

    def factorize_values(self, Mdata: np.ndarray) -> None:
        q = self.q
        buf = np.zeros(q * q)
        buf[self._flat] = Mdata
        L, info = _dpotrf(buf.reshape(q, q, order="F"), lower=1, clean=1, overwrite_a=1)
        if info != 0:
            raise NumericalError(f"M is not positive definite (LAPACK dpotrf info={info})")
        self.L, self._inv = L, None

    def factorize(self, M) -> None:
        M = M.tocsc()
        if M.nnz == self._flat.size and np.array_equal(M.indices, self._rows):
            self.factorize_values(M.data)
            return
        dense = np.asfortranarray(np.tril(M.toarray()))
        L, info = _dpotrf(dense, lower=1, clean=1, overwrite_a=1)
        if info != 0:
            raise NumericalError(f"M is not positive definite (LAPACK dpotrf info={info})")
        self.L, self._inv = L, None

    def logdet(self) -> float:
        return 2.0 * float(np.log(np.diag(self.L)).sum())

    def solve_L(self, B: np.ndarray) -> np.ndarray:
        """L^-1 B."""
        return _triangular(self.L, B, 0)

    def solve_Lt(self, B: np.ndarray) -> np.ndarray:
        """L^-T B."""
        return _triangular(self.L, B, 1)

    def perm(self) -> np.ndarray:
        return np.arange(self.q)

    def inverse_lower(self) -> np.ndarray:
        """M^-1's lower triangle (dpotri; the upper holds L's leftovers), kept while L is."""
        if self._inv is None:
            Minv, info = _dpotri(self.L, lower=1)
            if info != 0:
                raise NumericalError(f"inverting M failed (LAPACK dpotri info={info})")
            self._inv = Minv
        return self._inv

    def inverse_diagonal(self) -> np.ndarray:
        return np.diag(self.inverse_lower()).copy()

    def selected_inverse(self, M_indptr, M_indices) -> np.ndarray:
        """M^-1 on M's stored lower pattern (row >= column), in M.data order."""
        indptr = np.asarray(M_indptr, dtype=np.int64)
        cols = np.repeat(np.arange(self.q, dtype=np.int64), np.diff(indptr))
        return self.inverse_lower()[np.asarray(M_indices, dtype=np.int64), cols]


def _triangular(L: np.ndarray, B, trans: int) -> np.ndarray:
    B = np.asarray(B, dtype=float)
    if B.size == 0:
        return B.copy()
    x, info = _dtrtrs(L, B, lower=1, trans=trans)
    if info != 0:
        raise NumericalError(f"a triangular solve with L failed (LAPACK dtrtrs info={info})")
    return x
