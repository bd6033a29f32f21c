"""One random-effects term ``(expr | g)`` and its block of Z.

Z_k has nlevels * k columns, level-major: the columns of level j are j*k .. j*k+k-1,
and row i holds the k values of expr's model matrix at column codes[i]*k + c
(lme4's layout).  The term's random effects are b_k = Lambda_k u_k with
Lambda_k = I_nlevels (x) T_k.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .covariance import CovarianceFactor
from .grouping import GroupingFactor


@dataclass
class TermRows:
    """The row-level data of a term (length n): kept only while cross-products are built."""

    codes: np.ndarray      # (n,) level index of each row
    values: np.ndarray     # (n, k) the term's model matrix

    def Z(self, nlevels: int, rows: slice | None = None) -> sp.csr_matrix:
        codes = self.codes if rows is None else self.codes[rows]
        vals = self.values if rows is None else self.values[rows]
        n, k = vals.shape
        indices = (codes[:, None] * k + np.arange(k)[None, :]).ravel()
        indptr = np.arange(0, n * k + 1, k, dtype=np.int64)
        return sp.csr_matrix((vals.ravel().astype(float), indices, indptr), shape=(n, nlevels * k))


@dataclass
class MatrixRows:
    """A term's block of Z given whole (n x q_k, any sparsity), e.g. a statsmodels variance
    component whose rows may touch several of its random effects."""

    matrix: sp.csr_matrix

    def Z(self, nlevels: int, rows: slice | None = None) -> sp.csr_matrix:
        return self.matrix if rows is None else self.matrix[rows]


@dataclass
class RandomTerm:
    """Metadata of a term; ``spec`` replays the encoding of ``expr`` on new data."""

    expr: str
    group: GroupingFactor
    columns: list[str]
    spec: object            # formulaic ModelSpec of expr
    name: str = ""          # lme4's VarCorr group name, made unique (g, g.1, ...)

    @property
    def k(self) -> int:
        return len(self.columns)

    @property
    def nlevels(self) -> int:
        return self.group.nlevels

    @property
    def q(self) -> int:
        return self.k * self.nlevels

    @property
    def cov(self) -> CovarianceFactor:
        return CovarianceFactor(self.k)

    @property
    def ntheta(self) -> int:
        return self.cov.ntheta

    def values_for(self, data: pd.DataFrame) -> np.ndarray:
        mm = self.spec.get_model_matrix(data)
        return np.asarray(mm, dtype=float).reshape(len(data), -1)
