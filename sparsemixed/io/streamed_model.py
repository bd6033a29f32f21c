"""A LinearMixedModel assembled from accumulated cross-products (no rows kept).

    model = structures(CrossProducts of [Z X_k r]),   r = y - offset - X_k gamma

exactly as LinearMixedModel.__init__ builds it after its own pass over the rows:
the same term order and names, the same column selection on X'WX, the same checks.
Everything that needs the rows again -- fitted(), residuals(), getME("X"/"Z"/"y"),
refit() -- raises :class:`StreamedDataError`.
"""
from __future__ import annotations

import warnings

from ..errors import DataError, MissingDataWarning
from ..model import LinearMixedModel, _check_interpolation, _check_terms
from ..results.lmer_result import LmerResult
from .partial import finish

STREAMED = ("the model was built from a stream ({source}) and keeps no rows, but {what}. Build the "
            "model from an in-memory pandas DataFrame, sm.lmer(formula, df), for row-level quantities")


class StreamedDataError(DataError):
    """A row-level quantity was asked of a model built from a file, chunks or Dask."""


class StreamedResult(LmerResult):
    """LmerResult of a streamed model: estimates as usual; row-level quantities raise."""

    def _frame(self):
        raise StreamedDataError(STREAMED.format(source=self.model.data,
                                                what="fitted(), residuals() and getME('X'/'Z'/'y') need them"))


class StreamedModel(LinearMixedModel):
    """A :class:`~sparsemixed.LinearMixedModel` whose ``data`` is the source descriptor."""

    @classmethod
    def from_partial(cls, formula: str, parsed, enc, part, source, REML: bool, ordering: str,
                     weights=None, offset=None, na_action: str = "omit",
                     memory_limit=None) -> "StreamedModel":
        self = cls.__new__(cls)
        self.formula, self.parsed, self.REML, self.na_action = formula, parsed, bool(REML), na_action
        self.n_dropped = enc.n_dropped
        if enc.na_warning:
            warnings.warn(enc.na_warning + " and were dropped", MissingDataWarning, stacklevel=4)
        self.terms = list(enc.terms)
        with warnings.catch_warnings(record=True) as caught:    # re-issued at the caller's level
            warnings.simplefilter("always")
            _check_terms(self.terms, enc.n)
        for w in caught:
            warnings.warn(w.message, w.category, stacklevel=4)
        self.fixed_spec = enc.fixed_spec.rhs
        self.data = source                      # the source descriptor, not rows
        self.weights_arg, self.offset_arg = weights, offset
        self._select_fixed(part.cp.XtX, enc.X_names)
        self.crossprod, self.gamma = finish(part, self.fixef_cols)
        self.nobs = self.crossprod.n
        self._analyse(ordering, memory_limit)
        _check_interpolation(self.crossprod, [t.name for t in self.terms])
        return self

    def fit(self, *args, **kw):
        res = super().fit(*args, **kw)
        res.__class__ = StreamedResult
        return res

    def refit(self, new_y, REML=None, **fit_kw):
        raise StreamedDataError(STREAMED.format(source=self.data, what="refit(new_y) needs them"))
