"""A LinearMixedModel assembled from accumulated cross-products (no rows kept).

    model = core(CrossProducts of [Z X_k r]),   r = y - offset - X_k gamma

through the same constructor core as the in-memory build (LinearMixedModel.from_model_parts):
the same term order and names, the same column selection on X'WX, the same checks.
Everything that needs the rows again -- fitted(), residuals(), getME("X"/"Z"/"y"),
refit() -- raises :class:`~sparsemixed.design.StreamedDataError` (the model's source is
marked streamed, so its :meth:`design` refuses).
"""
from __future__ import annotations

import warnings

from ..assemble import ModelParts, Source, check_terms, select_fixed
from ..design import StreamedDataError
from ..errors import MissingDataWarning
from ..model import LinearMixedModel
from .partial import finish

__all__ = ["StreamedModel", "StreamedDataError", "streamed_model"]


class StreamedModel(LinearMixedModel):
    """A :class:`~sparsemixed.LinearMixedModel` whose ``data`` is the source descriptor."""


def streamed_model(formula: str, parsed, enc, part, source, REML: bool, ordering: str,
                   weights=None, offset=None, na_action: str = "omit", memory_limit=None) -> StreamedModel:
    """The model from a stream's encoding (terms, levels) and summed cross-products."""
    if enc.na_warning:
        warnings.warn(enc.na_warning + " and were dropped", MissingDataWarning, stacklevel=4)
    terms = list(enc.terms)
    with warnings.catch_warnings(record=True) as caught:    # re-issued at the caller's level
        warnings.simplefilter("always")
        check_terms(terms, enc.n)
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=4)
    fixed = select_fixed(part.cp.XtX, enc.X_names)
    crossprod, fixed.shift = finish(part, fixed.cols)
    src = Source(formula, parsed, source, weights, offset, na_action, enc.n_dropped, enc.fixed_spec.rhs,
                 streamed=True)
    return StreamedModel.from_model_parts(ModelParts(src, terms, crossprod, fixed), REML, ordering, memory_limit)
