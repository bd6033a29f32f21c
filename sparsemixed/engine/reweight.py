"""New weighted cross-products on the analysed pattern (no new symbolic analysis).

    A = Z'WZ:  pattern(Z'W'Z) = pattern(Z'Z) for any positive weights W', so only the values
    move; M(theta)'s scatter (relcov.RelCov) and the factor's analysis are reused.
"""
from __future__ import annotations

import copy

import numpy as np
import scipy.sparse as sp

from ..errors import NumericalError


def values_on_pattern(new: sp.csr_matrix, old: sp.csr_matrix) -> np.ndarray:
    """The values of ``new`` at the stored entries of ``old`` (CSR order; zeros where
    ``new`` has none); an entry of ``new`` outside ``old``'s pattern is an error."""
    if (isinstance(new, sp.csr_matrix) and isinstance(old, sp.csr_matrix)
            and same_array(new.indices, old.indices) and same_array(new.indptr, old.indptr)):
        return np.asarray(new.data, dtype=float).view()          # built on old's own index arrays
    old = old.tocsr()
    new = sp.csr_matrix(new)
    new.sum_duplicates()
    if (new.indptr.size == old.indptr.size and np.array_equal(new.indptr, old.indptr)
            and np.array_equal(new.indices, old.indices)):
        return np.asarray(new.data, dtype=float).view()
    q = old.shape[1]
    key_old = np.repeat(np.arange(old.shape[0], dtype=np.int64), np.diff(old.indptr)) * q + old.indices
    key_new = np.repeat(np.arange(new.shape[0], dtype=np.int64), np.diff(new.indptr)) * q + new.indices
    pos = np.searchsorted(key_old, key_new)
    if np.any(pos >= key_old.size) or np.any(key_old[np.minimum(pos, key_old.size - 1)] != key_new):
        raise NumericalError("the new cross-products Z'WZ have entries outside the analysed pattern "
                             "of Z'Z (a grouping level or a row the model did not see)")
    out = np.zeros(key_old.size)
    out[pos] = new.data
    return out


def same_array(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` and ``b`` are the same memory (scipy's constructor wraps the index arrays it is
    given in new views, so ``is`` does not tell)."""
    return (a is b) or (a.dtype == b.dtype and a.shape == b.shape and a.strides == b.strides
                        and a.__array_interface__["data"][0] == b.__array_interface__["data"][0])


def same_design(old, new) -> bool:
    """The new cross-products share Z'WZ, Z'WX and X'WX with the old (a new response only)."""
    return new.ZtZ is old.ZtZ and new.ZtX is old.ZtX and new.XtX is old.XtX


def reweighted_relcov(relcov, A_old, A_new):
    """relcov with A = Z'WZ's values replaced (same Lambda and M patterns)."""
    if A_new is A_old:
        return relcov
    vals = values_on_pattern(A_new, A_old)
    vals.flags.writeable = False
    new = copy.copy(relcov)             # (dataclasses.replace re-runs __init__: a PIRLS iteration's worth on small models)
    new.A_data = vals
    return new
