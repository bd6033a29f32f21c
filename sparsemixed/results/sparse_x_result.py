"""SparseXLmerResult: an LmerResult fitted on the sparse-X path (linalg/augmented.py).

Same estimates and display as LmerResult; what differs is how the fixed-effect
covariance is reached, since R_X (p x p) is never formed:

    var(beta-hat_j) = sigma^2 [(R_X'R_X)^-1]_jj = sigma^2 [Maug^-1]_{q+j, q+j}

read off the selected inverse of Maug (no dense p x p inverse) for the standard errors;
the full ``vcov`` (p x p dense) is computed only on request, by solves with Maug's factor
(augmented.Augmented.xinv).  Methods that need the dense R_ZX / R_X (Satterthwaite and
Kenward-Roger degrees of freedom, vcov_varpar, getME('RX'/'RZX'), the conditional
variances including fixed-effect uncertainty) raise a SparseMixedError saying to refit
with sparse_X=False.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import SparseMixedError
from ..linalg import augmented
from .lmer_result import LmerResult

MAX_SHOWN_CORRELATION = 12      # lme4 prints the correlation of fixed effects for p <= 12


def _unsupported(what: str) -> SparseMixedError:
    return SparseMixedError(f"{what} {augmented.UNSUPPORTED}")


class SparseXLmerResult(LmerResult):
    """LmerResult of a sparse-X fit (``model.sparse_X`` is True)."""

    @staticmethod
    def _rx(state):
        return None                     # R_X is never formed

    def _xinv_diag(self) -> np.ndarray:
        c = self.__dict__.setdefault("_sparse_x_cache_", {})
        if "diag" not in c:
            state = self.model.pls(self.theta)      # Maug's factor at this fit's theta
            c["diag"] = self.model.engine.aug.xinv_diag(state.factor)
        return c["diag"]

    @property
    def show_correlation(self) -> bool:
        return self.model.p <= MAX_SHOWN_CORRELATION

    @property
    def fixef_se(self) -> pd.Series:
        names = self.model.fixef_names
        return pd.Series(self.sigma * np.sqrt(self._xinv_diag()), index=names, name="Std. Error")

    @property
    def vcov(self) -> pd.DataFrame:
        """sigma^2 (R_X'R_X)^-1, p x p dense (8 p^2 bytes and p solves with Maug's factor)."""
        names = self.model.fixef_names
        if not names:
            return pd.DataFrame(np.zeros((0, 0)))
        c = self.__dict__.setdefault("_sparse_x_cache_", {})
        if "vcov" not in c:
            state = self.model.pls(self.theta)
            c["vcov"] = self.sigma ** 2 * self.model.engine.aug.xinv(state.factor)
        return pd.DataFrame(c["vcov"], index=names, columns=names)

    # -- methods that need the dense R_ZX / R_X ------------------------------------------
    def _satt(self):
        raise _unsupported("Satterthwaite's degrees of freedom (they need d vcov(beta)/d theta through R_ZX)")

    def _kr(self):
        raise _unsupported("Kenward-Roger's adjustment (it needs R_ZX and dense V-derivatives)")

    def vcov_varpar(self) -> pd.DataFrame:
        raise _unsupported("vcov_varpar (the Hessian in (sigma, theta) uses d log|R_X|^2 separately)")
