"""The engine: theta -> PLS state -> criterion, gradient, conditional modes, result.

    state     = engine.solve(theta)                 factor M(theta) (or Maug), solve Henderson's equations
    criterion = engine.criterion(state, reml)       profiled deviance / REML criterion
    gradient  = engine.gradient(state, reml)        its analytic gradient in theta
    hessian   = engine.hessian(state, reml)         its average-information Hessian (None: not given)
    (u, b)    = engine.random_effects(state)        conditional modes
    result    = engine.result_class.from_state(model, state, optsummary, reml)

Three implementations of the :class:`Engine` protocol: :class:`~.dense.DenseEngine` (X dense,
R_ZX and R_X formed: linalg/pls.py, gradient.py, objective.py), :class:`~.small.SmallEngine`
(its subclass for small q: one dense Cholesky of the augmented system) and
:class:`~.sparse_x.SparseXEngine` (X sparse, the fixed effects inside one sparse factor
of Maug: linalg/augmented.py, sparse_x.py).  A state owns the factor workspace it was
computed with (linalg/factor.py: a :class:`~sparsemixed.linalg.factor.FactorPool` leases
one per live state), so evaluations from several threads never share values.
:meth:`Engine.reweighted` gives an engine on the same symbolic analysis for new weighted
cross-products (the step a GLMM's PIRLS repeats: docs/architecture.md).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ..linalg.select import leading_block, select_factor


@runtime_checkable
class Engine(Protocol):
    crossprod: object         # crossprod.CrossProducts of [Z X y], weighted
    relcov: object            # relcov.RelCov: theta -> Lambda, M
    sparse_X: bool
    cheap_gradient: bool      # a gradient costs about an evaluation (False: prefer BOBYQA)

    def solve(self, theta: np.ndarray, reml: bool = True):
        """The PLS state at theta, owning the factor it was computed with.  New row weights
        (a GLMM's working weights) enter through :meth:`reweighted` with the cross-products
        of design.Design.cross_products(weights, response), not here: the engine keeps no
        rows."""

    def criterion(self, state, reml: bool) -> float:
        """The profiled ML deviance or REML criterion of a state."""

    def gradient(self, state, reml: bool) -> np.ndarray:
        """d criterion / d theta at the state's theta."""

    def hessian(self, state, reml: bool) -> np.ndarray | None:
        """A positive semidefinite model of the criterion's Hessian in theta (the average
        information, information.py), or None where the engine gives none."""

    def random_effects(self, state) -> tuple[np.ndarray, np.ndarray]:
        """(u, b = Lambda u) at the state's theta."""

    def reweighted(self, crossprod) -> "Engine":
        """The engine for new cross-products on the same pattern (new weights or response),
        sharing the symbolic analysis."""

    @property
    def result_class(self) -> type:
        """The result class :meth:`from_state` builds."""

    @property
    def factor(self):
        """The analysed factor (ordering, permutation); values live in the states."""


def make_engine(crossprod, relcov, terms, theta0, sparse_X: bool, ordering: str = "auto",
                memory_limit=None) -> Engine:
    """Symbolic analysis once, then the engine for dense or sparse X; for a small dense
    system (q + p + 1 <= SMALL_M, or ``ordering="dense"``) the small-model engine, which needs none."""
    from .dense import DenseEngine
    from .small import SMALL_M, SmallEngine

    if ordering == "dense" and sparse_X:
        from ..errors import SparseMixedError

        raise SparseMixedError("ordering='dense' needs a dense X: use sparse_X=False, or another ordering")
    if not sparse_X and (ordering == "dense" or (ordering == "auto" and crossprod.q + crossprod.p + 1 <= SMALL_M)):
        _dense_memory_guard(crossprod.q + crossprod.p + 1, memory_limit)
        return SmallEngine.build(crossprod, relcov)
    M0 = relcov.M(theta0)
    q1, k1, perm = leading_block(terms)
    factor, table = select_factor(M0, q1, k1, ordering, memory_limit, perm)
    if not sparse_X:
        return DenseEngine(crossprod, relcov, factor, table)
    from .sparse_x import SparseXEngine

    return SparseXEngine.build(crossprod, relcov, factor, table, theta0, ordering, memory_limit)


def _dense_memory_guard(m: int, memory_limit) -> None:
    """The small engine's memory guard: the augmented m x m matrix, its factor and M^-1."""
    from ..errors import MemoryLimitError
    from ..linalg.symbolic import fmt_bytes, memory_budget

    need = 3 * 8 * m * m
    if memory_limit is None and need < 2**26:         # (reading the free memory costs more than a small fit's evaluation)
        return
    budget = memory_budget(memory_limit)
    if need > budget:
        raise MemoryLimitError(f"the dense factor of the augmented system ({m:,} x {m:,}) would need "
                               f"{fmt_bytes(need)}, more than the memory limit of {fmt_bytes(budget)}; "
                               "raise memory_limit=")
