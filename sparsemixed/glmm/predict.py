"""Prediction from a glmer fit, lme4's ``predict.merMod`` (type "link" or "response").

    eta_new = X_new beta + Z_new^(S) b + offset_new,     mu_new = g^-1(eta_new)   (type="response")

``newdata=None`` with ``re_form=None``: the fit's linear predictor (or mu) at the mode.
Otherwise X_new replays the fit's encoding of the fixed effects, Z_new^(S) holds the
random-effects columns selected by ``re_form`` (None: all; "~0"/"NA": none; "~(1|g)": those
named) for the levels seen in the fit, and a new level or a missing grouping value
contributes 0 (with ``allow_new_levels=True``; else an error, lme4's rule) -- the linear model's builders
(inference/predict.py) on the GLMM's internal linear model.  offset_new is the sum of the
formula's ``offset(...)`` terms evaluated on newdata; an ``offset=`` argument of glmer is
left out, as lme4's predict leaves it out (with a warning here).  Standard errors and confidence intervals (``se_fit=True``, ``interval="confidence"``;
z = Phi^-1((1 + level) / 2)), the uncertainty of beta-hat only (theta and the conditional
modes taken as known, as the fixed-effects part of lme4's and emmeans' intervals):

    se_link = sqrt(x' V x),  V = vcov()  (2 H^-1, glmer's default);   eta +- z se_link
    type="response": the link interval's endpoints through g^-1 (it is increasing), and
    se_fit = |dmu/deta| se_link (the delta method)

A "prediction" interval is refused: a new binary or count observation has no normal
interval (``simulate`` gives its distribution).  Rows with a missing value
in another column the prediction uses give NaN (lme4's na.pass); the columns read and that
rule are the linear model's (inference.predict.newdata_columns).
"""
from __future__ import annotations

import types
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import norm

from ..errors import ArgumentError, DataError, SparseMixedWarning
from ..inference.predict import _fixed_design, _random_design, _select_terms, newdata_columns, term_mask
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


def predict(res, newdata=None, type: str = "link", re_form=None, allow_new_levels: bool = False,
            se_fit: bool = False, interval: str = "none", level: float = 0.95):
    """lme4's ``predict`` for a glmer fit: a Series indexed as ``newdata`` (or the fit's rows)
    on the link scale (``type="link"``) or the response scale (``"response"``: probabilities
    for binomial, means for Poisson).  ``se_fit`` / ``interval="confidence"``: a DataFrame
    with ``se_fit`` and/or ``lwr``, ``upr`` (the uncertainty of beta-hat; module docstring).
    See the module docstring."""
    if type not in TYPES:
        raise ArgumentError(f"type must be 'link' or 'response', got {type!r}")
    if interval not in ("none", "confidence"):
        raise ArgumentError(f"interval must be 'none' or 'confidence' for a glmer fit, got {interval!r} (a "
                            "prediction interval for a new binary or count observation is not a normal "
                            "interval; simulate() gives its distribution)")
    if not 0 < level < 1:
        raise ArgumentError(f"level must be between 0 and 1, got {level!r}")
    eta, X, index = _linear_predictor(res, newdata, re_form, allow_new_levels)
    link = res.model.family.link
    fit = link.linkinv(eta) if type == "response" else np.asarray(eta, dtype=float)
    if not se_fit and interval == "none":
        return pd.Series(np.asarray(fit, dtype=float), index=index, name="fit")
    ok = np.isfinite(eta)
    V = res.vcov().to_numpy()
    se = np.full(eta.size, np.nan)
    if X.shape[1]:
        se[ok] = np.sqrt(np.einsum("ij,jk,ik->i", X[ok], V, X[ok]))
    else:
        se[ok] = 0.0
    out = pd.DataFrame({"fit": np.asarray(fit, dtype=float)}, index=index)
    if interval == "confidence":
        half = norm.ppf(0.5 + level / 2.0) * se
        lo, hi = eta - half, eta + half
        if type == "response":                   # the link's inverse is increasing: endpoints map
            lo, hi = link.linkinv(lo), link.linkinv(hi)
        out["lwr"], out["upr"] = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        out.attrs.update(interval=interval, level=level)
    if se_fit:
        out["se_fit"] = se * np.abs(link.mu_eta(eta)) if type == "response" else se
    return out


def _linear_predictor(res, newdata, re_form, allow_new_levels):
    """(eta, X of the rows, index): NaN where a value the prediction uses is missing."""
    model = res.model
    view = types.SimpleNamespace(model=model.lmm, theta=res.theta)     # what the LMM builders read
    sel = _select_terms(view, re_form, newdata)
    if newdata is None:
        index = fitted_index(model)
        X = model.X                                 # StreamedDataError for a Dask build
        if re_form is None:
            eta = np.array(res._rows("predict()").eta, dtype=float)
        else:
            Z = model.Z @ sp.diags(term_mask(model, sel))
            eta = X @ res.beta + Z @ res.b + model.response.offset
        return np.asarray(eta, dtype=float), X, index
    data = frame_of(newdata)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, got {newdata.__class__.__name__}")
    lmm = model.lmm
    needed = newdata_columns(lmm, data, sel)
    offset, _ = formula_offsets(model.formula, data)
    if _has_offset_argument(model):
        warnings.warn("the model has an offset given by glmer's offset= argument, which predict(newdata) leaves "
                      "out (as lme4's predict does); write it in the formula as offset(column) to have it "
                      "evaluated on newdata", SparseMixedWarning, stacklevel=4)
    ok = ~data[sorted(needed)].isna().any(axis=1).to_numpy() if needed else np.ones(len(data), bool)
    eta = np.full(len(data), np.nan)
    X = np.full((len(data), model.p), np.nan)
    if ok.any():
        sub = data.loc[ok] if not ok.all() else data
        Xs = _fixed_design(lmm, sub)
        Z, _ = _random_design(view, sub, sel, allow_new_levels)
        eta[ok] = Xs @ res.beta + Z @ res.b + offset[ok]
        X[ok] = Xs
    return eta, X, data.index
