"""The sparse-X engine: u and beta from one sparse factor of Maug (linalg/augmented.py).

    P Maug P' = Laug Laug',   [u; beta] = Maug^-1 [Lambda'Z'Wy; X'Wy],  r2 = y'Wy - |Laug^-1 P c|^2
    REML: log|Maug| + (n-p)(1 + log(2 pi r2/(n-p))) - sum log w
    ML:   log|M|    + n (1 + log(2 pi r2/n))         - sum log w    (M factored too)

When it is chosen: sparsemixed/sparse_x.py.  Gradients need a selected inverse of Maug,
so ``cheap_gradient`` is False (the fit policy prefers BOBYQA and skips the default
convergence check).
"""
from __future__ import annotations

import math

import numpy as np

from ..linalg import augmented
from ..linalg.factor import FactorPool
from .reweight import reweighted_relcov, same_design


class SparseXEngine:
    """:class:`~sparsemixed.engine.Engine` for a sparse X."""

    sparse_X = True
    cheap_gradient = False

    def __init__(self, crossprod, relcov, aug, mpool: FactorPool, augpool: FactorPool, table=None, aug_table=None):
        self.crossprod, self.relcov, self.aug = crossprod, relcov, aug
        self.pool, self.augpool = mpool, augpool
        self.table, self.aug_table = table or {}, aug_table or {}

    @classmethod
    def build(cls, crossprod, relcov, factor, table, theta0, ordering="auto", memory_limit=None) -> "SparseXEngine":
        """Maug's pattern, scatter and one symbolic analysis."""
        aug = augmented.Augmented.build(relcov, crossprod.ZtX, crossprod.XtX)
        augfactor, aug_table = aug.analyse(theta0, relcov, ordering, memory_limit)
        return cls(crossprod, relcov, aug, FactorPool(factor), FactorPool(augfactor), table, aug_table)

    @property
    def factor(self):
        """The analysed factor of M (ML's log|M|, conditional variances)."""
        return self.pool.template

    @property
    def aug_factor(self):
        """The analysed factor of Maug."""
        return self.augpool.template

    @property
    def result_class(self) -> type:
        from ..results.sparse_x_result import SparseXLmerResult

        return SparseXLmerResult

    def solve(self, theta, reml: bool = True) -> augmented.AugState:
        """Maug's factor at theta; for ML (``reml=False``) also M's, for log|M|."""
        return self.aug.solve(theta, self.crossprod, self.relcov, self.augpool.checkout(),
                              None if reml else self.pool.checkout())

    def criterion(self, state, reml: bool) -> float:
        cp = self.crossprod
        if not reml and math.isnan(state.ldL2):
            raise ValueError("an ML criterion on the sparse-X path needs a state solved with reml=False")
        return augmented.criterion(state, cp.n, cp.p, reml, cp.sum_log_w)

    def sigma2(self, state, reml: bool) -> float:
        cp = self.crossprod
        return state.r2 / (cp.n - cp.p if reml else cp.n)

    def gradient(self, state, reml: bool) -> np.ndarray:
        return augmented.gradient(self.aug, state, self.crossprod, self.relcov, reml)

    def hessian(self, state, reml: bool) -> None:
        """None: the average information needs R_ZX and R_X, which this engine does not form."""
        return None

    def m_factor(self, state):
        """The factor of M held by a state (solved with reml=False)."""
        return state.mfactor

    def random_effects(self, state):
        """u is part of the augmented solve."""
        return state.u.copy(), np.asarray(self.relcov.Lambda(state.theta) @ state.u).ravel()

    def reweighted(self, crossprod) -> "SparseXEngine":
        if same_design(self.crossprod, crossprod):      # a new response: Maug's values unchanged
            return SparseXEngine(crossprod, self.relcov, self.aug, self.pool, self.augpool, self.table,
                                 self.aug_table)
        relcov = reweighted_relcov(self.relcov, self.crossprod.ZtZ, crossprod.ZtZ)
        aug = augmented.Augmented.build(relcov, crossprod.ZtX, crossprod.XtX)
        if not (np.array_equal(aug.indptr, self.aug.indptr) and np.array_equal(aug.indices, self.aug.indices)):
            raise ValueError("the new cross-products change Maug's pattern; build a new model")
        return SparseXEngine(crossprod, relcov, aug, self.pool, self.augpool, self.table, self.aug_table)
