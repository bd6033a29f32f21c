"""The rows of a GLMM as PIRLS uses them: two passes, wherever the rows are.

    evaluate(beta, b):  eta = offset + X beta + Z b,  mu = g^-1(eta),  sum_i d_i(y_i, mu_i)
    products(state):    w = prior_w (dmu/deta)^2 / V(mu),  z = eta - offset + (y - mu) / (dmu/deta);
                        the cross-products of [Z X z] (joint) or [Z (z - X beta)] weighted by w
    finish(state):      -2 log p(y | u) = sum of the family's aic terms
    gradient_sums:      X'd, Z'd, X'(h o w'), Z'(h o w'): the row sums of the Laplace gradient (glmm/gradient.py)

:class:`MemoryRows` holds the rows in memory (glmm/weighted.py, glmm/response.py) and keeps
eta and mu of the last point; :class:`~sparsemixed.glmm.dask.DaskRows` keeps them on a Dask
cluster, one persisted block per partition, and sums the partitions' results: the client
holds only cross-products on Z'Z's pattern and q-vectors.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(eq=False)
class RowState:
    """A point (beta, b) and what the rows gave there: the sum of deviance residuals, and
    in memory eta and mu."""

    beta: np.ndarray
    b: np.ndarray
    deviance: float
    eta: np.ndarray | None = None
    mu: np.ndarray | None = None
    products: tuple | None = None     # (joint, cross-products) computed in the same pass (Dask)


class MemoryRows:
    in_memory = True

    def __init__(self, weighted, response):
        self.weighted, self.response = weighted, response
        self._leverages = None            # gradient.Leverages, made on the first beta gradient

    @property
    def n(self) -> int:
        return self.response.n

    def evaluate(self, beta, b, joint=None) -> RowState:
        """The point's deviance (``joint``: a hint that products(state, joint) may follow,
        which rows elsewhere compute in the same pass)."""
        wp, resp = self.weighted, self.response
        eta = np.asarray(wp.Z @ b).ravel() + resp.offset
        if beta.size:
            eta = eta + wp.X @ beta
        mu = resp.mu(eta)
        return RowState(beta, b, resp.deviance(mu), eta, mu)

    def products(self, s: RowState, joint: bool):
        """(cross-products at the working weights of s, the weights)."""
        _, w, z = self.response.working(s.eta)
        r = z if joint else z - (self.weighted.X @ s.beta if s.beta.size else 0.0)
        return self.weighted.cross_products(w, r, with_X=joint), w

    @staticmethod
    def moved(a: RowState, b: RowState) -> float:
        return float(np.max(np.abs(b.eta - a.eta))) if a.eta.size else 0.0

    def minus2loglik(self, s: RowState) -> float:
        return self.response.minus2loglik(s.mu, s.deviance)

    def gradient_sums(self, relcov, theta, beta, b, Minv) -> np.ndarray:
        """[X'd, Z'd, X'(h o w'), Z'(h o w')] at (beta, b) (glmm/gradient.py)."""
        from .gradient import row_sums

        return row_sums(self, relcov, theta, beta, b, Minv)
