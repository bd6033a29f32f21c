"""The relative covariance factor of one term: Sigma_k = sigma^2 T T', T lower triangular.

theta holds the column-wise lower triangle of T (lme4's order):
    k = 2:  theta = [T00, T10, T11];   k = 3: [T00, T10, T20, T11, T21, T22].
Diagonal elements are bounded below by 0, off-diagonal ones are free; lme4 starts
from T = I.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CovarianceFactor:
    k: int

    @property
    def ntheta(self) -> int:
        return self.k * (self.k + 1) // 2

    def tril_indices(self) -> tuple[np.ndarray, np.ndarray]:
        """(rows, cols) of the lower triangle in theta's (column-major) order."""
        cols, rows = np.triu_indices(self.k)   # row-major upper == column-major lower
        return rows, cols

    def lower_bounds(self) -> np.ndarray:
        rows, cols = self.tril_indices()
        return np.where(rows == cols, 0.0, -np.inf)

    def initial(self) -> np.ndarray:
        rows, cols = self.tril_indices()
        return (rows == cols).astype(float)

    def T(self, theta: np.ndarray) -> np.ndarray:
        out = np.zeros((self.k, self.k))
        rows, cols = self.tril_indices()
        out[rows, cols] = theta
        return out

    def theta_of(self, T: np.ndarray) -> np.ndarray:
        rows, cols = self.tril_indices()
        return np.asarray(T, dtype=float)[rows, cols]
