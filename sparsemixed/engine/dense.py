"""The dense-X engine: Henderson's equations with R_ZX (q x p) and R_X (p x p) formed.

    P M P' = L L',  R_ZX = L^-1 P Lambda'Z'WX,  R_X'R_X = X'WX - R_ZX'R_ZX       (linalg/pls.py)
    criterion = log|L|^2 [+ log|R_X|^2] + nu (1 + log(2 pi r2 / nu)) - sum log w (objective.py)
    gradient  = d log|M| [+ d log|R_X|^2] + nu d r2 / r2                         (gradient.py)
    hessian   ~ 2 (AI_tt - AI_ts AI_ss^-1 AI_st), the average information            (information.py)
"""
from __future__ import annotations

import numpy as np

from .. import gradient as grad
from .. import information
from .. import objective as obj
from ..linalg.factor import FactorPool
from ..linalg.pls import PLSState, pls_solve, random_effects
from .reweight import reweighted_relcov


class DenseEngine:
    """:class:`~sparsemixed.engine.Engine` for a dense X."""

    sparse_X = False
    cheap_gradient = True

    def __init__(self, crossprod, relcov, factor, table=None, pool: FactorPool | None = None):
        self.crossprod, self.relcov = crossprod, relcov
        self.pool = pool if pool is not None else FactorPool(factor)
        self.table = table or {}

    @property
    def factor(self):
        return self.pool.template

    @property
    def result_class(self) -> type:
        from ..results.lmer_result import LmerResult

        return LmerResult

    def solve(self, theta, reml: bool = True) -> PLSState:
        return pls_solve(theta, self.crossprod, self.relcov, self.pool.checkout())

    def criterion(self, state: PLSState, reml: bool) -> float:
        cp = self.crossprod
        return obj.criterion(state, cp.n, cp.p, reml, cp.sum_log_w)

    def sigma2(self, state: PLSState, reml: bool) -> float:
        return obj.sigma2(state, self.crossprod.n, self.crossprod.p, reml)

    def gradient(self, state: PLSState, reml: bool) -> np.ndarray:
        return grad.gradient(state, self.crossprod, self.relcov, reml)

    def hessian(self, state: PLSState, reml: bool) -> np.ndarray:
        return information.criterion_hessian(state, self.crossprod, self.relcov, reml)

    def m_factor(self, state):
        """The factor of M held by a state (its only factor)."""
        return state.factor

    def random_effects(self, state: PLSState):
        return random_effects(state, self.relcov)

    def reweighted(self, crossprod) -> "DenseEngine":
        return DenseEngine(crossprod, reweighted_relcov(self.relcov, self.crossprod.ZtZ, crossprod.ZtZ),
                           None, self.table, self.pool)
