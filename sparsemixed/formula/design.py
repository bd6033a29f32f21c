r"""Data -> (y, X, per-term model matrices and grouping codes), the model frame.

    y = X beta + sum_k Z_k b_k + e

The fixed part ``response ~ fixed`` is encoded by formulaic, whose model spec is
kept so that ``predict(newdata)`` replays the same encoding; column names are
translated to R's (``(Intercept)``, ``service1``, ``x:fb``).  Rows with a missing
value in any used column are dropped (``na_action="omit"``, with a warning) or
refused (``na_action="fail"``).  The user's data frame is never modified.

Column names are read as R reads them (names.py): ``IQ.verb`` is a column, a column
named like a function (``Treatment``, ``C``, ``log`` ...) is that column except where it is
called, odd names are written ``\`my col\``` or ``Q("my col")``; such columns reach
formulaic under aliases, and the model matrices' names are R's.  Stateful transforms
(``scale``, ``center``, ``poly``) learn their state (means, sds, polynomial bases) from the
fit's rows; ``predict(newdata)`` replays it (:class:`EncodingSpec`).  ``offset(expr)``
terms are evaluated here and added to the ``offset=`` argument, as lme4 does.

Text columns used as covariates (see :func:`_text_covariates`): an object column of
numbers is numeric; numbers mixed with strings, or strings mostly reading as numbers
with a few missing-value codes ("n/a") or decimals among them, are refused naming the
values; other text is a factor ("K", "1", "2", "3" as R's character column).  Datetime
and complex covariates are refused.  A weights/offset Series is aligned with the data by
label.

The common shapes (products of data columns: numeric columns and factors, ``(1|g)``,
``(x|g)``, ``(x||g)``, ``(1|a/b)`` ...) are built without formulaic by fast.py, with the
same result; everything else takes the formulaic route below (fast.py's docstring).
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
from .names import Names, r_functions, required

_LEVEL = re.compile(r"^(.*)\[(?:T\.)?(.*)\]$")
_R_ARGS = ((re.compile(r"(?<=[\w)\]])=(?!=)"), " = "), (re.compile(r"\bFalse\b"), "FALSE"),
           (re.compile(r"\bTrue\b"), "TRUE"), (re.compile(r" / "), "/"))     # R's deparse: x/3, x * 3


def r_name(col: str, names: Names | None = None) -> str:
    r"""formulaic column name -> R's: ``Intercept`` -> ``(Intercept)``, ``f[T.b]`` -> ``fb``,
    ``I(x ** 2)`` -> ``I(x^2)`` (bars.r_power), ``poly(x, 2)[1]`` -> ``poly(x, 2)1``,
    ``scale(x, scale=False)`` -> ``scale(x, scale = FALSE)``; with ``names``, aliased
    columns as R prints them (``IQ.verb``, ``\`my col\```)."""
    if col == "Intercept":
        return "(Intercept)"
    col = col.replace(" ** ", "^")
    restore = names.restore if names is not None else (lambda t: t)
    parts = []
    for part in col.split(":"):
        m = _LEVEL.match(part)
        head, level = (m.group(1), m.group(2)) if m else (part, "")
        if "(" in head:
            for pat, to in _R_ARGS:
                head = pat.sub(to, head)
            head = r_functions(head)
        parts.append(restore(head) + level)
    return ":".join(parts)


@functools.lru_cache(maxsize=512)
def parse_formula(text: str):
    """formulaic's parse of ``text``, once per distinct text (a parse costs about as much as
    a small model's fit; formulaic's Formula is not changed by encoding with it)."""
    import formulaic

    return formulaic.Formula(text)


def _required(formula: str, what: str, columns=None, names: Names | None = None) -> set[str]:
    """The columns ``formula`` reads (names.py: R's reading of names; ``columns`` the data's,
    when known), plus any name that is neither a column nor a built-in (a missing column,
    for :func:`_missing_columns`).  formulaic's parse is checked on the way."""
    if names is None:
        names = Names.build([formula], columns if columns is not None else sorted(required(formula)))
    try:
        parse_formula(names.text(formula))
    except Exception as exc:  # formulaic's parser errors
        raise FormulaError(f"cannot parse the {what} {formula!r}: {exc}") from None
    return required(formula, columns)


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


_NA_CODE = re.compile(r"^\s*(?:|n/?a|n\.a\.?|#n/a|nan|null|none|nil|missing|unknown|[-.?*]+|[+-]?inf)\s*$",
                      re.IGNORECASE)


def _stray_text(uniq, parsed, bad_u) -> bool:
    """Whether the text values of a column that mostly reads as numbers look like stray
    entries in a numeric column (a missing-value code such as "n/a", or decimals among the
    numbers: a measurement) rather than a factor's labels ("K", "1", "2", "3")."""
    nums = parsed[~bad_u]
    return any(_NA_CODE.match(str(v)) for v in uniq[bad_u]) or bool(np.any(nums != np.round(nums)))


def _is_number(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


def _text_covariates(frame: pd.DataFrame, cols, exprs) -> dict:
    """Object/string columns used as covariates (fixed effects, random-effects expressions).

    * all values numbers (an object column of ints/floats)  -> converted to float: formulaic
      would otherwise encode it as a factor, silently;
    * numbers mixed with text, or text of which most values read as numbers and some do
      not, when those look like stray entries (a missing-value code such as "n/a", or
      decimals among the numbers: "3.1", "x")  -> DataError naming the column and the
      offending values;
    * other text: not mostly numbers, all numbers ("1", "2"), or whole numbers with labels
      ("K", "1", "2", "3": school grades)  -> a factor, as R's character columns;
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
            if not _stray_text(uniq, parsed, bad_u):
                continue            # a factor: whole numbers with labels ("K", "1", "2")
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
    part of the model, instead of formulaic's exception.  Columns aliased for formulaic
    (names.py) are renamed on the way in.  ``required_variables`` are the data's columns
    the part reads (R's reading of names; formulaic's own set misses, e.g., the ``x`` of
    ``scale(x)``); ``offsets`` are the ``offset(expr)`` terms (expr, formulaic ModelSpec),
    replayed by :meth:`offset_values`; ``rhs`` (when given) the right-hand side's spec of
    a two-sided one.  Every other attribute is the ModelSpec's (``encoder_state``,
    ``term_slices``, ``transform_state`` ...).
    """

    _OWN = ("spec", "numeric_columns", "what", "names", "required", "offsets", "_rhs", "_lazy")

    def __init__(self, spec, numeric_columns, what: str, names: Names | None = None, required=None,
                 offsets=(), rhs=None):
        if hasattr(spec, "resolve"):          # fast.LazySpec: the formulaic spec, built on first use
            self._lazy = spec
        else:
            self.spec = spec
        self.numeric_columns, self.what = tuple(numeric_columns), what
        self.names = names if names is not None else Names()
        self.required = None if required is None else frozenset(required)
        self.offsets, self._rhs = tuple(offsets), rhs

    def __getattr__(self, name):
        if name == "spec" and "_lazy" in self.__dict__:
            spec = self.__dict__["spec"] = self.__dict__.pop("_lazy").resolve()
            return spec
        if name in EncodingSpec._OWN or name.startswith("__"):
            raise AttributeError(name)
        return getattr(self.spec, name)

    @property
    def required_variables(self):
        return set(self.required) if self.required is not None else set(self.spec.required_variables)

    @property
    def rhs(self):
        return self._rhs if self._rhs is not None else self.spec.rhs

    def frame(self, data):
        """``data`` with the columns aliased for formulaic renamed."""
        return self.names.frame(data)

    def display(self, name: str) -> str:
        """A formulaic name (a factor's expression) as R prints it."""
        return self.names.restore(name)

    def offset_values(self, data) -> np.ndarray | None:
        """The sum of the ``offset(expr)`` terms on ``data`` (the fit's transform states), or
        None when the formula has none."""
        if not self.offsets:
            return None
        data = self._columns(self._prepare(data))
        total = np.zeros(len(data))
        for expr, spec in self.offsets:
            try:
                mm = spec.get_model_matrix(data, na_action="ignore")
            except Exception as exc:
                raise DataError(f"cannot evaluate offset({expr}) on newdata: {exc}") from None
            total += _numbers(mm).reshape(len(data), -1)[:, 0]
        return total

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

    def _columns(self, data):
        """The columns the part reads (an unused column named like a function, ``log``, would
        shadow it in formulaic's namespace), renamed for formulaic."""
        if self.required is not None and isinstance(data, pd.DataFrame):
            data = data[[c for c in data.columns if c in self.required]]
        return self.names.frame(data)

    def get_model_matrix(self, data, *args, **kwargs):
        data = self._columns(self._prepare(data))
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


def _encode(parsed: ParsedFormula, sub: pd.DataFrame, sparse: bool, names: Names | None = None):
    """formulaic's model matrices of the fixed part and of each random term's expression:
    in one call on a structured formula when X is dense (one materializer for all parts
    costs about a third of one per part), else part by part; any failure is redone part by
    part, so that the error names the part that fails.  ``sub`` has the aliased columns
    renamed (``names``), whose spelling the texts are given in."""
    import formulaic

    names = names if names is not None else Names()
    fixed_text = names.text(parsed.fixed_formula)
    exprs = [names.text(b.expr) for b in parsed.bars]
    if not sparse:
        parts = (("fixed", fixed_text),) + tuple((f"r{i}", e) for i, e in enumerate(exprs))
        try:
            mms = formulaic.model_matrix(_structured(parts), sub, na_action="raise")
            return mms["fixed"], [mms[f"r{i}"] for i in range(len(parsed.bars))]
        except Exception:     # noqa: BLE001 -- redone below, part by part, for a specific error
            pass
    try:
        mm = formulaic.model_matrix(parse_formula(fixed_text), sub, na_action="raise",
                                    **({"output": "sparse"} if sparse else {}))
    except MemoryError:         # a dense X too large (e.g. a many-level factor): not a formula error
        raise
    except Exception as exc:
        raise FormulaError(f"cannot encode the fixed-effects part {parsed.fixed_formula!r}: {exc}") from None
    tms = []
    for bar, expr in zip(parsed.bars, exprs):
        try:
            tms.append(formulaic.model_matrix(parse_formula(expr), sub, na_action="raise"))
        except Exception as exc:
            raise FormulaError(f"cannot encode random-effects term {bar}: {exc}") from None
    return mm, tms


def _encode_offsets(parsed: ParsedFormula, sub: pd.DataFrame, names: Names):
    """(sum of the ``offset(expr)`` terms on the rows of ``sub``, [(expr, ModelSpec)])."""
    import formulaic

    total, specs = np.zeros(len(sub)), []
    for expr in parsed.offsets:
        try:
            mm = formulaic.model_matrix(parse_formula(f"0 + I({names.text(expr)})"), sub, na_action="raise")
        except Exception as exc:
            raise FormulaError(f"cannot evaluate offset({expr}) of formula {parsed.text!r}: {exc}") from None
        vals = _numbers(mm).reshape(len(sub), -1)
        if vals.shape[1] != 1:
            raise DataError(f"offset({expr}) of formula {parsed.text!r} is not numeric (it encodes to "
                            f"{vals.shape[1]} columns); an offset is a number per row")
        total += vals[:, 0]
        specs.append((expr, mm.model_spec))
    return total, specs


def _all_rows_states(full: pd.DataFrame, mm, term_mms, offset_specs, enc: pd.DataFrame):
    """R's rule for stateful transforms when rows were dropped for missing values: the
    model frame evaluates ``scale(x)``, ``poly(x, 2)`` ... on every row of the data before
    na.omit (``scale``'s mean and sd over the rows where x is present), so the states are
    learned here on ``full`` (all rows, columns renamed as ``enc``) and the kept rows
    ``enc`` re-encoded with them.  Returns (mm, term_mms, offset_specs, offset total)."""
    import types

    import formulaic

    learned: dict = {}

    def relearn(spec):
        state = getattr(spec, "transform_state", None)
        if not state:
            return spec
        new = {}
        for key in state:
            if key not in learned:
                cols = [c for c in required(key, full.columns) if c in full.columns]
                rows = full[cols].notna().all(axis=1) if cols else np.ones(len(full), bool)
                try:
                    got = formulaic.model_matrix(f"0 + {key}", full.loc[rows], na_action="ignore")
                    learned.update(got.model_spec.transform_state)
                except Exception:      # noqa: BLE001 -- keep the state of the kept rows
                    learned[key] = state[key]
            new[key] = learned.get(key, state[key])
        return spec.update(transform_state=new)

    lhs, rhs = relearn(mm.model_spec.lhs), relearn(mm.model_spec.rhs)
    mm = types.SimpleNamespace(lhs=lhs.get_model_matrix(enc), rhs=rhs.get_model_matrix(enc))
    term_mms = [relearn(tm.model_spec).get_model_matrix(enc) for tm in term_mms]
    total, specs = np.zeros(len(enc)), []
    for expr, spec in offset_specs:
        spec = relearn(spec)
        total += _numbers(spec.get_model_matrix(enc)).reshape(len(enc), -1)[:, 0]
        specs.append((expr, spec))
    return mm, term_mms, specs, total


def _has_states(mm, term_mms, offset_specs) -> bool:
    specs = [mm.model_spec.lhs, mm.model_spec.rhs] + [tm.model_spec for tm in term_mms] + [s for _, s in offset_specs]
    return any(getattr(s, "transform_state", None) for s in specs)


def expr_columns(expr: str, data: pd.DataFrame) -> list[str]:
    """R's names of the model-matrix columns of ``expr`` (a random-effects term's
    expression) on ``data`` (predict's re_form)."""
    import formulaic

    names = Names.build([expr], data.columns)
    data = data[[c for c in data.columns if c in required(expr, data.columns)]]    # no column shadows a function
    mm = formulaic.model_matrix(names.text(expr), names.frame(data), na_action="ignore")
    return [r_name(c, names) for c in mm.columns]


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

    if na_action not in ("omit", "exclude", "fail"):
        raise DataError(f"na_action must be 'omit', 'exclude' (R's na.exclude: rows with missing values "
                        f"dropped from the fit, NaN in fitted() and residuals()) or 'fail', got {na_action!r}")
    frame = _as_frame(data)
    from . import fast

    fr = fast.try_build(parsed, frame, weights, offset, na_action, sparse_X)    # common shapes, no formulaic
    if fr is not None:
        return fr
    formula = parsed.text
    names = Names.build([parsed.fixed_formula] + [b.expr for b in parsed.bars] + list(parsed.offsets),
                        frame.columns, also=[f for b in parsed.bars for f in b.factors])
    fixed_vars = _required(parsed.fixed_formula, "fixed-effects part", frame.columns, names)
    rhs_vars = required(parsed.fixed, frame.columns)
    off_vars: set[str] = set()
    for expr in parsed.offsets:
        off_vars |= _required(f"I({expr})", f"offset({expr})", frame.columns, names)
    expr_vars: list[set[str]] = []
    term_vars: set[str] = set()
    for bar in parsed.bars:
        expr_vars.append(_required(bar.expr, f"random-effects term {bar}", frame.columns, names))
        term_vars |= expr_vars[-1] | set(bar.factors)
    position = {c: i for i, c in enumerate(frame.columns)}
    used = sorted(fixed_vars | term_vars | off_vars, key=lambda v: position.get(v, -1))
    _missing_columns(fixed_vars | term_vars | off_vars, frame, formula)
    _response(frame, parsed.response, formula)
    sub = frame.iloc[:, [frame.columns.get_loc(c) for c in used]]     # (by position: cheaper than by label)
    covariates = (fixed_vars - {parsed.response}) | off_vars | set().union(*expr_vars)
    exprs = [parsed.fixed] + [bar.expr for bar in parsed.bars] + [f"I({o})" for o in parsed.offsets]
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
        full, sub = sub, sub.loc[~na]
        if len(sub) == 0:
            raise DataError("no rows are left after dropping rows with missing values")
    _check_finite(sub, used, formula)
    sub = numpy_columns(sub, used)
    # -- sparse X (sparse_x.py): formulaic's sparse encoding, never densified --------
    from ..sparse_x import encode_sparse

    sparse = encode_sparse(sparse_X, sub, fixed_vars - {parsed.response}, numeric_cols)
    enc = names.frame(sub)
    mm, term_mms = _encode(parsed, enc, sparse, names)
    formula_offset, offset_specs = _encode_offsets(parsed, enc, names)
    if na.any() and _has_states(mm, term_mms, offset_specs):      # scale(x) etc. learn from every row (R)
        mm, term_mms, offset_specs, formula_offset = _all_rows_states(
            names.frame(numpy_columns(full, used)), mm, term_mms, offset_specs, enc)
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
    X_names = [r_name(c, names) for c in mm.rhs.model_spec.column_names]

    terms, rows = [], []
    for bar, tm, evars in zip(parsed.bars, term_mms, expr_vars):
        group, codes = GroupingFactor.from_data(bar.factors, sub)
        if not hasattr(tm, "model_spec") or not hasattr(tm, "columns"):
            raise FormulaError(f"random-effects term {bar} must have one expression before '|', e.g. '(1 + x | g)'")
        cols = [r_name(c, names) for c in tm.columns]
        if not cols:
            raise FormulaError(f"random-effects term {bar} has no columns")
        terms.append(RandomTerm(bar.expr, group, cols,
                                EncodingSpec(tm.model_spec, numeric_cols, f"the random-effects term {bar}", names,
                                             evars)))
        rows.append(TermRows(codes, _numbers(tm).reshape(len(sub), -1)))
    kept = ~na
    w = None if "weights" not in extra else extra["weights"].to_numpy(dtype=float)[kept]
    off = None if "offset" not in extra else extra["offset"].to_numpy(dtype=float)[kept]
    if offset_specs:                 # offset() terms of the formula, added to offset= (lme4)
        off = formula_offset if off is None else off + formula_offset
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
    fixed_spec = EncodingSpec(mm.rhs.model_spec, numeric_cols, f"the fixed effects {parsed.fixed!r}", names,
                              rhs_vars | off_vars, offset_specs)
    return ModelFrame(y, X, X_names, fixed_spec, terms, rows, w, off, int(na.sum()), kept)
