"""Data -> (y, X, per-term model matrices and grouping codes), the model frame.

    y = X beta + sum_k Z_k b_k + e

The fixed part ``response ~ fixed`` is encoded by formulaic, whose model spec is
kept so that ``predict(newdata)`` replays the same encoding; column names are
translated to R's (``(Intercept)``, ``service1``, ``x:fb``).  Rows with a missing
value in any used column are dropped (``na_action="omit"``, with a warning) or
refused (``na_action="fail"``).  The user's data frame is never modified.

Text columns used as covariates (see :func:`_text_covariates`): an object column of
numbers is numeric; numbers mixed with strings, or strings mostly reading as numbers
with a few that do not ("n/a", "x"), are refused naming the values; other text is a
factor.  Datetime and complex covariates are refused.  A weights/offset Series is
aligned with the data by label.
"""
from __future__ import annotations

import difflib
import functools
import re
import warnings
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError, MissingDataWarning, SparseMixedError
from ..terms.grouping import GroupingFactor
from ..terms.random_term import RandomTerm, TermRows
from .bars import ParsedFormula

_LEVEL = re.compile(r"^(.*)\[(?:T\.)?(.*)\]$")


def r_name(col: str) -> str:
    """formulaic column name -> R's: ``Intercept`` -> ``(Intercept)``, ``f[T.b]`` -> ``fb``,
    ``I(x ** 2)`` -> ``I(x^2)`` (bars.r_power)."""
    if col == "Intercept":
        return "(Intercept)"
    col = col.replace(" ** ", "^")
    parts = []
    for part in col.split(":"):
        m = _LEVEL.match(part)
        parts.append(m.group(1) + m.group(2) if m else part)
    return ":".join(parts)


@functools.lru_cache(maxsize=512)
def parse_formula(text: str):
    """formulaic's parse of ``text``, once per distinct text (a parse costs about as much as
    a small model's fit; formulaic's Formula is not changed by encoding with it)."""
    import formulaic

    return formulaic.Formula(text)


def _required(formula: str, what: str) -> set[str]:
    try:
        return set(parse_formula(formula).required_variables)
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
    """weights/offset as a float Series aligned with the data (NA kept for the NA policy).

    Arrays are taken by position.  A Series is taken by label: its index must hold the
    data's row labels (in any order); a Series indexed otherwise is refused rather than
    guessed (by position or by label)."""
    vec = values if isinstance(values, pd.Series) else pd.Series(np.asarray(values).reshape(-1))
    if len(vec) != len(index):
        raise DataError(f"{what} has length {len(vec)} but the data have {len(index)} rows")
    if isinstance(values, pd.Series) and not vec.index.equals(index):
        if vec.index.is_unique and index.is_unique and bool(index.isin(vec.index).all()):
            vec = vec.reindex(index)
        else:
            raise DataError(
                f"{what} is a Series whose index does not match the data's row labels; pass "
                f"{what}.to_numpy() to use it by position, or {what}.reindex(data.index) to align it by label")
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
                    f"{_label(frame.index[i])!r}); remove or recode them before fitting"
                )


def _label(v):
    """A row label for a message: numpy scalars as plain Python values (3, not np.int64(3))."""
    return v.item() if isinstance(v, np.generic) else v


def _is_text_dtype(dt) -> bool:
    return dt == object or isinstance(dt, pd.StringDtype)


def _only_in_factor_call(name: str, exprs) -> bool:
    """True when every use of column ``name`` in the formula texts is ``C(name...)`` (an
    explicit request to treat it as a factor)."""
    n = re.escape(name)
    uses = sum(len(re.findall(rf"(?<![\w.`]){n}(?![\w.`])", e)) for e in exprs)
    in_c = sum(len(re.findall(rf"\bC\(\s*{n}(?![\w.`])", e)) for e in exprs)
    return uses > 0 and uses == in_c


def numpy_columns(df: pd.DataFrame, cols) -> pd.DataFrame:
    """Nullable extension dtypes -> plain numpy ones, so formulaic and numpy see ordinary
    arrays (bool, float, or object); categoricals are kept."""
    conv = {}
    for c in cols:
        dt = df[c].dtype
        if isinstance(dt, pd.api.extensions.ExtensionDtype) and not isinstance(dt, pd.CategoricalDtype):
            if pd.api.types.is_bool_dtype(dt):
                conv[c] = df[c].astype(bool)
            elif pd.api.types.is_numeric_dtype(dt):
                conv[c] = df[c].astype(float)
            else:
                conv[c] = df[c].astype(object)
    return df.assign(**conv) if conv else df


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _text_covariates(frame: pd.DataFrame, cols, exprs) -> dict:
    """Object/string columns used as covariates (fixed effects, random-effects expressions).

    * all values numbers (an object column of ints/floats)  -> converted to float: formulaic
      would otherwise encode it as a factor, silently;
    * numbers mixed with text, or text of which most values read as numbers and some do
      not ("3.1", "n/a", "x")  -> DataError naming the column and the offending values;
    * text that is not mostly numbers, or text that is all numbers ("1", "2", as R's
      character columns)  -> a factor;
    * datetime, timedelta and complex columns  -> DataError (formulaic would fail with
      numpy's message, or drop the imaginary part with only a warning).
    A column written only as ``C(col)`` is left to formulaic (an explicit factor).
    Returns {column: float Series} of conversions to apply to the model frame's copy.
    """
    conv = {}
    for c in cols:
        s = frame[c]
        kind = getattr(s.dtype, "kind", "O")
        if kind in "mM":
            raise DataError(
                f"column {c!r} has dtype {s.dtype}; a covariate must be numeric: convert it, e.g. days since "
                f"the start with (data[{c!r}] - data[{c!r}].min()).dt.days, or make it a factor with "
                f"data[{c!r}].astype(str).astype('category')")
        if kind == "c":
            raise DataError(
                f"column {c!r} is complex ({s.dtype}); a covariate must be real: use data[{c!r}].real, "
                f".imag or abs() explicitly")
        if not _is_text_dtype(s.dtype) or _only_in_factor_call(str(c), exprs):
            continue
        vals = s.dropna()
        if len(vals) == 0:
            continue
        # judge the distinct values (a factor's levels), count rows through the codes
        codes, uniq = pd.factorize(vals.to_numpy(dtype=object))
        u_num = np.fromiter((_is_number(v) for v in uniq), bool, len(uniq))
        if u_num.all():
            conv[c] = pd.Series(s.to_numpy(dtype=float, na_value=np.nan), index=s.index)
            continue
        if u_num.any():
            bad_u = ~u_num
            what = "mixes numbers with other values"
        elif all(isinstance(v, str) for v in uniq):
            parsed = pd.to_numeric(pd.Series(uniq, dtype=object), errors="coerce").to_numpy(dtype=float)
            ok_rows = ~np.isnan(parsed)[codes]
            if ok_rows.all() or ok_rows.mean() < 0.5:
                continue            # a factor: all labels numeric, or mostly non-numeric labels
            bad_u = np.isnan(parsed)
            what = "holds text that mostly reads as numbers, with some values that do not"
        else:
            continue
        bad_mask = bad_u[codes]
        offending = [repr(v) for v in uniq[bad_u]]
        first = _label(vals.index[np.flatnonzero(bad_mask)[0]])
        raise DataError(
            f"column {c!r} is used as a covariate but {what}: {int(bad_mask.sum())} of {len(vals)} values "
            f"are not numbers ({', '.join(offending[:5])}{' ...' if len(offending) > 5 else ''}; first at "
            f"row label {first!r}). Fix those values "
            f"or make them missing (data[{c!r}] = pd.to_numeric(data[{c!r}], errors='coerce')); "
            f"if {c!r} is meant as a factor, convert it with data[{c!r}].astype(str).astype('category')"
        )
    return conv


class EncodingSpec:
    """A formulaic ModelSpec replayed on new data (predict) with the fit's column types.

    Columns that were numeric covariates in the fit are made numeric again when new data
    hold them as text or objects (pd.to_numeric; values that are not numbers are a
    DataError naming them), and formulaic's encoding errors become a DataError naming the
    part of the model, instead of formulaic's exception.  Every other attribute is the
    ModelSpec's (``required_variables``, ``encoder_state``, ``term_slices`` ...).
    """

    def __init__(self, spec, numeric_columns, what: str):
        self.spec, self.numeric_columns, self.what = spec, tuple(numeric_columns), what

    def __getattr__(self, name):
        if name in ("spec", "numeric_columns", "what") or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.spec, name)

    def _prepare(self, data):
        if not isinstance(data, pd.DataFrame):
            return data
        conv = {}
        for c in self.numeric_columns:
            if c not in data.columns:
                continue
            col = data[c]
            if not (_is_text_dtype(col.dtype) or isinstance(col.dtype, pd.CategoricalDtype)):
                continue
            values = pd.Series(col.to_numpy(dtype=object), index=col.index)
            num = pd.to_numeric(values, errors="coerce")
            bad = num.isna() & values.notna()
            if bad.any():
                shown = list(dict.fromkeys(repr(v) for v in values[bad]))
                raise DataError(
                    f"column {c!r} of newdata has value(s) {', '.join(shown[:5])}{' ...' if len(shown) > 5 else ''} "
                    f"that are not numbers (first at row label {_label(values.index[np.flatnonzero(bad)[0]])!r}); "
                    f"the fit used {c!r} as a numeric covariate: fix them or make them missing")
            conv[c] = num.astype(float)
        return data.assign(**conv) if conv else data

    def get_model_matrix(self, data, *args, **kwargs):
        data = self._prepare(data)
        try:
            return self.spec.get_model_matrix(data, *args, **kwargs)
        except SparseMixedError:
            raise
        except Exception as exc:      # formulaic's encoding errors
            raise DataError(f"newdata does not match the fit's encoding of {self.what}: {exc}. Give its "
                            "columns the types they had in the fit") from None


def _response(frame: pd.DataFrame, response: str, formula: str) -> None:
    if response in frame.columns:
        s = frame[response]
        if pd.api.types.is_bool_dtype(s.dtype):          # numpy bool and pandas' nullable "boolean"
            raise DataError(
                f"the response {response!r} is logical (dtype {s.dtype}): a linear mixed model would fit "
                "it as 0/1 (a linear probability model). For a binary response use "
                "sparsemixed.glmer(..., family='binomial'); to fit a linear model to 0/1 anyway, convert "
                "it first (astype(float))")
        if isinstance(s.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(s.dtype):
            raise DataError(
                f"the response {response!r} has dtype {s.dtype}; lmer fits a numeric response "
                "(linear mixed models). Convert it with astype(float) if it is a coded number; a "
                "two-level response is fitted by sparsemixed.glmer(..., family='binomial')"
            )


def _numbers(m) -> np.ndarray:
    """A dense model matrix (a DataFrame) as floats (``to_numpy``: np.asarray of a DataFrame
    costs 30 times more)."""
    return m.to_numpy(dtype=float) if isinstance(m, pd.DataFrame) else np.asarray(m, dtype=float)


def _encode(parsed: ParsedFormula, sub: pd.DataFrame, sparse: bool):
    """formulaic's model matrices of the fixed part and of each random term's expression:
    in one call on a structured formula when X is dense (one materializer for all parts
    costs about a third of one per part), else part by part; any failure is redone part by
    part, so that the error names the part that fails."""
    import formulaic

    if not sparse:
        parts = (("fixed", parsed.fixed_formula),) + tuple((f"r{i}", b.expr) for i, b in enumerate(parsed.bars))
        try:
            mms = formulaic.model_matrix(_structured(parts), sub, na_action="raise")
            return mms["fixed"], [mms[f"r{i}"] for i in range(len(parsed.bars))]
        except Exception:     # noqa: BLE001 -- redone below, part by part, for a specific error
            pass
    try:
        mm = formulaic.model_matrix(parse_formula(parsed.fixed_formula), sub, na_action="raise",
                                    **({"output": "sparse"} if sparse else {}))
    except MemoryError:         # a dense X too large (e.g. a many-level factor): not a formula error
        raise
    except Exception as exc:
        raise FormulaError(f"cannot encode the fixed-effects part {parsed.fixed_formula!r}: {exc}") from None
    tms = []
    for bar in parsed.bars:
        try:
            tms.append(formulaic.model_matrix(parse_formula(bar.expr), sub, na_action="raise"))
        except Exception as exc:
            raise FormulaError(f"cannot encode random-effects term {bar}: {exc}") from None
    return mm, tms


@functools.lru_cache(maxsize=256)
def _structured(parts: tuple):
    """The parts, each parsed alone (a part parsed inside a structured formula gets no
    implicit intercept), as one structured formula."""
    import formulaic

    return formulaic.Formula({name: parse_formula(text) for name, text in parts})


def build_model_frame(parsed: ParsedFormula, data, weights=None, offset=None,
                      na_action: str = "omit", sparse_X=False) -> ModelFrame:
    """``sparse_X``: False (X dense), True (X a scipy CSR matrix, never densified) or
    "auto" (sparse when the categorical fixed covariates have many levels; sparse_x.py)."""
    import formulaic

    if na_action not in ("omit", "fail"):
        raise DataError(f"na_action must be 'omit' or 'fail', got {na_action!r}")
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
    sub = frame.iloc[:, [frame.columns.get_loc(c) for c in used]]     # (by position: cheaper than by label)
    covariates = (fixed_vars - {parsed.response}) | {v for bar in parsed.bars
                                                     for v in _required(bar.expr, f"random-effects term {bar}")}
    exprs = [parsed.fixed] + [bar.expr for bar in parsed.bars]
    numeric = _text_covariates(sub, [c for c in used if c in covariates], exprs)
    if numeric:
        sub = sub.assign(**numeric)
    numeric_cols = [c for c in used if c in covariates and pd.api.types.is_numeric_dtype(sub[c].dtype)
                    and not pd.api.types.is_bool_dtype(sub[c].dtype)]

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
        warnings.warn(msg + " and were dropped", MissingDataWarning, stacklevel=3)
        sub = sub.loc[~na]
        if len(sub) == 0:
            raise DataError("no rows are left after dropping rows with missing values")
    _check_finite(sub, used, formula)
    sub = numpy_columns(sub, used)
    # -- sparse X (sparse_x.py): formulaic's sparse encoding, never densified --------
    from ..sparse_x import encode_sparse

    sparse = encode_sparse(sparse_X, sub, fixed_vars - {parsed.response}, numeric_cols)
    mm, term_mms = _encode(parsed, sub, sparse)
    y = np.asarray(mm.lhs.toarray(), dtype=float) if sparse else _numbers(mm.lhs)
    if y.ndim == 2 and y.shape[1] != 1:
        raise DataError(f"the response {parsed.response!r} must be one numeric column, got {y.shape[1]} columns")
    y = y.reshape(-1)
    if sparse:
        import scipy.sparse as sp

        X = sp.csr_matrix(mm.rhs, dtype=float)
    else:
        X = _numbers(mm.rhs)
    # -- end sparse X ----------------------------------------------------------------
    X_names = [r_name(c) for c in mm.rhs.model_spec.column_names]

    terms, rows = [], []
    for bar, tm in zip(parsed.bars, term_mms):
        group, codes = GroupingFactor.from_data(bar.factors, sub)
        if not hasattr(tm, "model_spec") or not hasattr(tm, "columns"):
            raise FormulaError(f"random-effects term {bar} must have one expression before '|', e.g. '(1 + x | g)'")
        cols = [r_name(c) for c in tm.columns]
        if not cols:
            raise FormulaError(f"random-effects term {bar} has no columns")
        terms.append(RandomTerm(bar.expr, group, cols,
                                EncodingSpec(tm.model_spec, numeric_cols, f"the random-effects term {bar}")))
        rows.append(TermRows(codes, _numbers(tm).reshape(len(sub), -1)))
    kept = ~na
    w = None if "weights" not in extra else extra["weights"].to_numpy(dtype=float)[kept]
    off = None if "offset" not in extra else extra["offset"].to_numpy(dtype=float)[kept]
    kept_index = frame.index[kept]
    if w is not None:
        bad = ~np.isfinite(w) | (w <= 0)
        if bad.any():
            vals = list(dict.fromkeys(repr(float(v)) for v in w[bad]))[:5]
            raise DataError(
                f"weights must be finite and positive; {int(bad.sum())} are not ({', '.join(vals)}; first at "
                f"row label {_label(kept_index[np.flatnonzero(bad)[0]])!r}). Drop rows with weight 0 instead, "
                "and check how the weights were computed")
    if off is not None and np.any(~np.isfinite(off)):
        bad = ~np.isfinite(off)
        raise DataError(
            f"offset has {int(bad.sum())} infinite value(s) (first at row label "
            f"{_label(kept_index[np.flatnonzero(bad)[0]])!r}); remove or recode them before fitting")
    fixed_spec = EncodingSpec(mm.rhs.model_spec, numeric_cols, f"the fixed effects {parsed.fixed!r}")
    return ModelFrame(y, X, X_names, fixed_spec, terms, rows, w, off, int(na.sum()), kept)
