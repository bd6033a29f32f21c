"""Prediction from a glmer fit, lme4's ``predict.merMod`` (type "link" or "response").

    eta_new = X_new beta + Z_new^(S) b + offset_new,     mu_new = g^-1(eta_new)   (type="response")

``newdata=None`` with ``re_form=None``: the fit's linear predictor (or mu) at the mode.
Otherwise X_new replays the fit's encoding of the fixed effects, Z_new^(S) holds the
random-effects columns selected by ``re_form`` (None: all; "~0"/"NA": none; "~(1|g)": those
named) for the levels seen in the fit, and a new level or a missing grouping value
contributes 0 (with ``allow_new_levels=True``; else an error, lme4's rule) -- the linear model's builders
(inference/predict.py) on the GLMM's internal linear model.  offset_new is the sum of the
formula's ``offset(...)`` terms evaluated on newdata; an ``offset=`` argument of glmer is
left out, as lme4's predict leaves it out (with a warning here).  Rows with a missing value
in another column the prediction uses give NaN (lme4's na.pass); the columns read and that
rule are the linear model's (inference.predict.newdata_columns).
"""
from __future__ import annotations

import types
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import ArgumentError, DataError, SparseMixedWarning
from ..inference.predict import _fixed_design, _random_design, _select_terms, newdata_columns
from .response import _call_spans, _evaluate, _numeric

TYPES = ("link", "response")


def frame_of(data) -> pd.DataFrame:
    return pd.DataFrame(data) if isinstance(data, dict) else data


def fitted_index(model) -> pd.Index:
    """The index of the rows the model kept (of the data it was built from)."""
    index = frame_of(model.data).index
    return index[model.kept] if model.kept is not None else index


def formula_offsets(formula: str, data: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The sum of the formula's ``offset(expr)`` terms evaluated on ``data``, and the exprs."""
    rhs = formula.split("~", 1)[1]
    off = np.zeros(len(data))
    exprs = [inner for _, _, inner in _call_spans(rhs, "offset")]
    for inner in exprs:
        off = off + _numeric(_evaluate(inner, data, "the offset"), f"offset({inner})")
    return off, exprs


def _has_offset_argument(model) -> bool:
    """Whether glmer's ``offset=`` argument added to the formula's offsets (not kept by the
    model, so found by comparing the rows' offsets with the formula's)."""
    off, _ = formula_offsets(model.formula, frame_of(model.data))
    if model.kept is not None:
        off = off[model.kept]
    return not np.allclose(off, model.response.offset, rtol=1e-12, atol=1e-12, equal_nan=True)


def _term_mask(model, sel) -> np.ndarray:
    mask = np.zeros(model.q)
    off = 0
    for i, t in enumerate(model.terms):
        if i in sel:
            mask[off: off + t.q] = np.tile(sel[i], t.nlevels)
        off += t.q
    return mask


def predict(res, newdata=None, type: str = "link", re_form=None, allow_new_levels: bool = False) -> pd.Series:
    """lme4's ``predict`` for a glmer fit: a Series indexed as ``newdata`` (or the fit's rows)
    on the link scale (``type="link"``) or the response scale (``"response"``: probabilities
    for binomial, means for Poisson).  See the module docstring."""
    if type not in TYPES:
        raise ArgumentError(f"type must be 'link' or 'response', got {type!r}")
    model = res.model
    view = types.SimpleNamespace(model=model.lmm, theta=res.theta)     # what the LMM builders read
    sel = _select_terms(view, re_form, newdata)
    if newdata is None:
        index = fitted_index(model)
        if re_form is None:
            eta = res.mode.eta
        else:
            Z = model.weighted.Z @ sp.diags(_term_mask(model, sel))
            eta = model.weighted.X @ res.beta + Z @ res.b + model.response.offset
        values = model.family.link.linkinv(eta) if type == "response" else np.array(eta, dtype=float)
        return pd.Series(np.asarray(values, dtype=float), index=index, name="fit")
    data = frame_of(newdata)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, got {newdata.__class__.__name__}")
    lmm = model.lmm
    needed = newdata_columns(lmm, data, sel)
    offset, _ = formula_offsets(model.formula, data)
    if _has_offset_argument(model):
        warnings.warn("the model has an offset given by glmer's offset= argument, which predict(newdata) leaves "
                      "out (as lme4's predict does); write it in the formula as offset(column) to have it "
                      "evaluated on newdata", SparseMixedWarning, stacklevel=3)
    ok = ~data[sorted(needed)].isna().any(axis=1).to_numpy() if needed else np.ones(len(data), bool)
    out = pd.Series(np.nan, index=data.index, name="fit")
    if not ok.any():
        return out
    sub = data.loc[ok] if not ok.all() else data
    X = _fixed_design(lmm, sub)
    Z, _ = _random_design(view, sub, sel, allow_new_levels)
    eta = X @ res.beta + Z @ res.b + offset[ok]
    out.loc[ok] = model.family.link.linkinv(eta) if type == "response" else eta
    return out
