"""The fitted rows, for the row-level methods (fitted, residuals, predict, simulate, refit,
degrees of freedom, variance tests):

    y (n),  X (n x p, the kept columns),  Z (n x q, CSR, lme4's term order),
    offset (n or None),  weights (n or None),  kept (mask of the data rows used, or None)

Built once per model from its :class:`~sparsemixed.assemble.Source` and cached
(:meth:`LinearMixedModel.design`); a model built from a stream keeps no rows and refuses.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .crossprod import CrossProducts, products, z_matrix
from .errors import DataError, MissingDataWarning

STREAMED = ("the model was built from a stream ({source}) and keeps no rows, but {what}. Build the "
            "model from an in-memory pandas DataFrame, sm.lmer(formula, df), for row-level quantities")


class StreamedDataError(DataError):
    """A row-level quantity was asked of a model built from a file, chunks or Dask."""


@dataclass(eq=False)
class Design:
    y: np.ndarray
    X: np.ndarray
    Z: sp.csr_matrix
    offset: np.ndarray | None = None
    weights: np.ndarray | None = None
    kept: np.ndarray | None = field(default=None, repr=False)

    @property
    def n(self) -> int:
        return self.y.shape[0]

    def cross_products(self, weights=None, response=None) -> CrossProducts:
        """Cross-products of [Z X r] with row weights (default: the prior weights), r the
        given response (default y - offset): the values a reweighted engine needs."""
        r = self.y - (self.offset if self.offset is not None else 0.0) if response is None else response
        w = self.weights if weights is None else np.asarray(weights, dtype=float)
        cp = products(self.Z, self.X, np.asarray(r, dtype=float), w)
        cp.ZtZ.sum_duplicates()
        cp.ZtZ.sort_indices()
        return cp


def match_rows(frame_terms, model_terms) -> list[int]:
    """Index into the frame's (formula-order) terms of each model (lme4-order) term."""
    out, used = [], set()
    for t in model_terms:
        for i, ft in enumerate(frame_terms):
            if i not in used and ft.expr == t.expr and ft.group.name == t.group.name:
                out.append(i)
                used.add(i)
                break
    return out


def build_design(source, terms, fixef_cols, what: str = "this needs the rows") -> Design:
    """The rows of a model's fit, re-read from its source (the model caches the result)."""
    nlevels = [t.nlevels for t in terms]
    if source.streamed:
        raise StreamedDataError(STREAMED.format(source=source.data, what=what))
    if source.arrays is not None:
        a = source.arrays
        return Design(a.y, a.X[:, fixef_cols], z_matrix(a.rows, nlevels))
    if source.data is None:
        raise DataError(f"{what}, but the model's data was released (model.data is None)")
    from .formula.design import build_model_frame

    with warnings.catch_warnings():          # the fit already reported dropped rows
        warnings.simplefilter("ignore", MissingDataWarning)
        fr = build_model_frame(source.parsed, source.data, source.weights, source.offset, source.na_action,
                               sparse_X=source.sparse_X)
    Z = z_matrix([fr.rows[i] for i in match_rows(fr.terms, terms)], nlevels)
    return Design(fr.y, fr.X[:, fixef_cols], Z, fr.offset, fr.weights, fr.kept)
