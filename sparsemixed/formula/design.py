"""Data -> (y, X, per-term model matrices and grouping codes), the model frame.

    y = X beta + sum_k Z_k b_k + e

The fixed part ``response ~ fixed`` is encoded by formulaic, whose model spec is
kept so that ``predict(newdata)`` replays the same encoding; column names are
translated to R's (``(Intercept)``, ``service1``, ``x:fb``).  Rows with a missing
value in any used column are dropped (``na_action="omit"``, with a warning) or
refused (``na_action="fail"``).  The user's data frame is never modified.
"""
from __future__ import annotations

import difflib
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, MissingDataWarning
from ..terms.grouping import GroupingFactor
from ..terms.random_term import RandomTerm, TermRows
from .bars import ParsedFormula

_LEVEL = re.compile(r"^(.*)\[(?:T\.)?(.*)\]$")


def r_name(col: str) -> str:
    """formulaic column name -> R's: ``Intercept`` -> ``(Intercept)``, ``f[T.b]`` -> ``fb``."""
    if col == "Intercept":
        return "(Intercept)"
    parts = []
    for part in col.split(":"):
        m = _LEVEL.match(part)
        parts.append(m.group(1) + m.group(2) if m else part)
    return ":".join(parts)


def _required(formula: str, what: str) -> set[str]:
    import formulaic

    try:
        return set(formulaic.Formula(formula).required_variables)
    except Exception as exc:  # formulaic's parser errors
        raise FormulaError(f"cannot parse the {what} {formula!r}: {exc}") from None


def _missing_columns(names, data: pd.DataFrame, formula: str) -> None:
    missing = [v for v in sorted(names) if v not in data.columns]
    if missing:
        hints = []
        for v in missing:
            close = difflib.get_close_matches(v, [str(c) for c in data.columns], n=1)
            hints.append(f"{v!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise DataError(
            f"formula {formula!r} uses column(s) {', '.join(hints)} not found in the data; "
            f"available columns: {', '.join(map(str, list(data.columns)[:20]))}"
        )


def _as_frame(data) -> pd.DataFrame:
    if isinstance(data, pd.DataFrame):
        frame = data
    elif isinstance(data, dict):
        frame = pd.DataFrame(data)
    else:
        raise DataError(
            f"data must be a pandas DataFrame (or a dict of columns), got {type(data).__name__}"
        )
    if frame.columns.duplicated().any():
        dup = sorted(set(map(str, frame.columns[frame.columns.duplicated()])))
        raise DataError(f"the data have duplicated column names {dup}; rename them so each is unique")
    if len(frame) == 0:
        raise DataError("the data have no rows")
    return frame


def _numeric_vector(values, what: str, index) -> pd.Series:
    """weights/offset as a float Series aligned with the data (NA kept for the NA policy)."""
    vec = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).reshape(-1))
    if len(vec) != len(index):
        raise DataError(f"{what} has length {len(vec)} but the data have {len(index)} rows")
    if vec.dtype == bool or not pd.api.types.is_numeric_dtype(vec.dtype):
        raise DataError(f"{what} must be numeric, got dtype {vec.dtype}")
    return pd.Series(vec.to_numpy(dtype=float, na_value=np.nan), index=index)


@dataclass
class ModelFrame:
    """Everything row-level a model needs; discarded once cross-products are built."""

    y: np.ndarray
    X: np.ndarray
    X_names: list[str]
    fixed_spec: object
    terms: list[RandomTerm]
    rows: list[TermRows]
    weights: np.ndarray | None
    offset: np.ndarray | None
    n_dropped: int = 0
    kept: np.ndarray | None = field(default=None, repr=False)   # boolean mask of kept rows

    @property
    def n(self) -> int:
        return self.y.shape[0]


def _check_finite(frame: pd.DataFrame, cols, formula: str) -> None:
    for c in cols:
        s = frame[c]
        if pd.api.types.is_numeric_dtype(s.dtype) and s.dtype != bool:
            vals = s.to_numpy(dtype=float, na_value=np.nan)
            bad = np.isinf(vals)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise DataError(
                    f"column {c!r} has {int(bad.sum())} infinite value(s) (first at row label "
                    f"{frame.index[i]!r}); remove or recode them before fitting"
                )


def _response(frame: pd.DataFrame, response: str, formula: str) -> None:
    if response in frame.columns:
        s = frame[response]
        if s.dtype == bool or isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s.dtype):
            raise DataError(
                f"the response {response!r} has dtype {s.dtype}; lmer fits a numeric response "
                "(linear mixed models). Convert it with astype(float) if it is a coded number; "
                "binary or categorical responses need a GLMM, which sparsemixed does not fit"
            )


def build_model_frame(parsed: ParsedFormula, data, weights=None, offset=None,
                      na_action: str = "omit") -> ModelFrame:
    import formulaic

    frame = _as_frame(data)
    formula = parsed.text
    fixed_vars = _required(parsed.fixed_formula, "fixed-effects part")
    term_vars: set[str] = set()
    for bar in parsed.bars:
        term_vars |= _required(bar.expr, f"random-effects term {bar}")
        term_vars |= set(bar.factors)
    used = sorted(fixed_vars | term_vars, key=lambda v: list(frame.columns).index(v) if v in frame.columns else -1)
    _missing_columns(fixed_vars | term_vars, frame, formula)
    _response(frame, parsed.response, formula)
    sub = frame[used]

    extra = {}
    for label, vec in (("weights", weights), ("offset", offset)):
        if vec is None:
            continue
        if isinstance(vec, str):
            _missing_columns({vec}, frame, f"{label}={vec!r}")
            vec = frame[vec]
        extra[label] = _numeric_vector(vec, label, frame.index)
    na = sub.isna().any(axis=1).to_numpy().copy()
    for label, vec in extra.items():
        na |= pd.isna(vec).to_numpy()
    if na.any():
        cols = [c for c in used if sub[c].isna().any()] + [k for k, v in extra.items() if pd.isna(v).any()]
        msg = f"{int(na.sum())} of {len(frame)} rows have missing values (in {', '.join(map(repr, cols))})"
        if na_action == "fail":
            raise DataError(msg + "; drop them or use na_action='omit'")
        if na_action != "omit":
            raise DataError(f"na_action must be 'omit' or 'fail', got {na_action!r}")
        warnings.warn(msg + " and were dropped", MissingDataWarning, stacklevel=3)
        sub = sub.loc[~na]
        if len(sub) == 0:
            raise DataError("no rows are left after dropping rows with missing values")
    _check_finite(sub, used, formula)
    # nullable extension dtypes -> plain numpy so formulaic and numpy see ordinary arrays
    conv = {}
    for c in used:
        dt = sub[c].dtype
        if isinstance(dt, pd.api.extensions.ExtensionDtype) and not isinstance(dt, pd.CategoricalDtype):
            if pd.api.types.is_bool_dtype(dt):
                conv[c] = sub[c].astype(bool)
            elif pd.api.types.is_numeric_dtype(dt):
                conv[c] = sub[c].astype(float)
            else:
                conv[c] = sub[c].astype(object)
    if conv:
        sub = sub.assign(**conv)
    try:
        mm = formulaic.model_matrix(parsed.fixed_formula, sub, na_action="raise")
    except Exception as exc:
        raise FormulaError(f"cannot encode the fixed-effects part {parsed.fixed_formula!r}: {exc}") from None
    y = np.asarray(mm.lhs, dtype=float)
    if y.ndim == 2 and y.shape[1] != 1:
        raise DataError(f"the response {parsed.response!r} must be one numeric column, got {y.shape[1]} columns")
    y = y.reshape(-1)
    X = np.asarray(mm.rhs, dtype=float)
    X_names = [r_name(c) for c in mm.rhs.columns]

    terms, rows = [], []
    for bar in parsed.bars:
        group, codes = GroupingFactor.from_data(bar.factors, sub)
        try:
            tm = formulaic.model_matrix(bar.expr, sub, na_action="raise")
        except Exception as exc:
            raise FormulaError(f"cannot encode random-effects term {bar}: {exc}") from None
        cols = [r_name(c) for c in tm.columns]
        if not cols:
            raise FormulaError(f"random-effects term {bar} has no columns")
        terms.append(RandomTerm(bar.expr, group, cols, tm.model_spec))
        rows.append(TermRows(codes, np.asarray(tm, dtype=float).reshape(len(sub), -1)))
    kept = ~na
    w = None if "weights" not in extra else extra["weights"].to_numpy(dtype=float)[kept]
    off = None if "offset" not in extra else extra["offset"].to_numpy(dtype=float)[kept]
    if w is not None:
        if np.any(~np.isfinite(w)) or np.any(w <= 0):
            raise DataError("weights must be finite and positive; rows with weight 0 should be dropped instead")
    if off is not None and np.any(~np.isfinite(off)):
        raise DataError("offset has non-finite values")
    return ModelFrame(y, X, X_names, mm.rhs.model_spec, terms, rows, w, off, int(na.sum()), kept)
