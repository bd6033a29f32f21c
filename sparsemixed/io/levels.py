"""Pass 1, level discovery: what every chunk must agree on before any is encoded.

With K the rows kept (no missing value in a used column, nor in weights/offset):

    levels(g)       = the distinct values of g over K, sorted (np.unique) or, for a
                      pandas categorical, in category order -- as the in-memory encoding
    combos(g1:g2)   = the distinct (g1, g2) pairs over K (interaction grouping factors)
    values(f)       = the distinct values over K of each text/categorical column of the
                      fixed part or of a term's expression, and of each column inside C()

A chunk's :class:`Scan` holds only distinct values (bounded by the numbers of levels)
plus counts, and ``merge`` is associative, so scans fold left over a stream or reduce
in a tree over Dask partitions.  The same pass counts the rows, finds the missing
values (for the one MissingDataWarning or the na_action="fail" error) and checks types.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula.bars import ParsedFormula
from ..formula.design import _check_finite, _missing_columns, _required, _response, _text_covariates

_C_ARG = re.compile(r"\bC\(\s*`?([A-Za-z_.][A-Za-z0-9_. ]*?)`?\s*[,)]")


def kind(dtype) -> str:
    """'cat' (pandas categorical), 'num' (numbers and booleans) or 'text' (anything else)."""
    if isinstance(dtype, pd.CategoricalDtype):
        return "cat"
    if pd.api.types.is_numeric_dtype(dtype):
        return "num"
    return "text"


def distinct(s: pd.Series) -> pd.Series:
    """The distinct values of s as plain values (categoricals and extension types as objects)."""
    u = s.drop_duplicates()
    if isinstance(u.dtype, pd.api.extensions.ExtensionDtype):
        u = u.astype(object)
    return u.reset_index(drop=True)


@dataclass
class Plan:
    """Which columns are read, checked and scanned for a formula."""

    parsed: ParsedFormula
    columns: list[str]          # read from the source: model variables + weights/offset
    used: list[str]             # model variables
    extra: dict                 # {"weights": column, "offset": column}
    model_vars: list[str]       # variables of the fixed part and of the terms' expressions
    c_cols: list[str]           # columns inside C(...) (numbers encoded as factors)
    groups: list[tuple]         # each term's grouping factors
    na_action: str

    @classmethod
    def make(cls, parsed: ParsedFormula, weights, offset, na_action: str, columns=None) -> "Plan":
        if na_action not in ("omit", "fail"):
            raise DataError(f"na_action must be 'omit' or 'fail', got {na_action!r}")
        fixed = _required(parsed.fixed_formula, "fixed-effects part")
        expr_vars: set[str] = set()
        factor_vars: set[str] = set()
        for bar in parsed.bars:
            expr_vars |= _required(bar.expr, f"random-effects term {bar}")
            factor_vars |= set(bar.factors)
        extra = {}
        for label, vec in (("weights", weights), ("offset", offset)):
            if vec is None:
                continue
            if not isinstance(vec, str):
                raise DataError(f"for a streamed or Dask source give {label} as a column name, "
                                f"not a {type(vec).__name__}")
            extra[label] = vec
        names = fixed | expr_vars | factor_vars
        if columns is not None:
            frame = pd.DataFrame(columns=list(columns))
            _missing_columns(names, frame, parsed.text)
            for label, col in extra.items():
                _missing_columns({col}, frame, f"{label}={col!r}")
            position = {c: i for i, c in enumerate(columns)}
            used = sorted(names, key=lambda c: position[c])
        else:
            used = sorted(names)
        model_vars = [c for c in used if c in fixed | expr_vars]
        texts = [parsed.fixed] + [b.expr for b in parsed.bars]
        c_cols = sorted({m for t in texts for m in _C_ARG.findall(t)} & set(model_vars))
        read = used + [c for c in extra.values() if c not in used]
        return cls(parsed, read, used, extra, model_vars, c_cols,
                   [tuple(b.factors) for b in parsed.bars], na_action)


@dataclass
class Scan:
    rows: int = 0
    na_rows: int = 0
    na_cols: set = field(default_factory=set)
    kinds: dict = field(default_factory=dict)     # column -> set of kinds seen
    cats: dict = field(default_factory=dict)      # categorical column -> categories (ordered union)
    values: dict = field(default_factory=dict)    # column -> Series of distinct kept values
    combos: dict = field(default_factory=dict)    # factors (len > 1) -> DataFrame of distinct kept tuples
    sample: pd.DataFrame | None = None            # one kept row: numbers for the prototype frame

    def merge(self, other: "Scan | None") -> "Scan":
        if other is None:
            return self
        out = Scan(self.rows + other.rows, self.na_rows + other.na_rows, self.na_cols | other.na_cols)
        for c in self.kinds.keys() | other.kinds.keys():
            out.kinds[c] = self.kinds.get(c, set()) | other.kinds.get(c, set())
        for c in self.cats.keys() | other.cats.keys():
            a, b = self.cats.get(c, []), other.cats.get(c, [])
            if a == b:
                out.cats[c] = a
            else:
                seen = set(a)
                out.cats[c] = list(a) + [v for v in b if v not in seen]
        for attr in ("values", "combos"):
            mine, theirs, merged = getattr(self, attr), getattr(other, attr), getattr(out, attr)
            for c in mine.keys() | theirs.keys():
                parts = [x for x in (mine.get(c), theirs.get(c)) if x is not None]
                both = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
                merged[c] = both.drop_duplicates().reset_index(drop=True)
        out.sample = self.sample if self.sample is not None else other.sample
        return out


def scan_chunk(df: pd.DataFrame, plan: Plan) -> Scan:
    """The :class:`Scan` of one chunk (raises at once on wrong types or infinite values)."""
    _missing_columns(set(plan.columns), df, plan.parsed.text)
    df = df[plan.columns]
    out = Scan(rows=len(df))
    na = df.isna().any(axis=1).to_numpy()
    if na.any():
        out.na_rows = int(na.sum())
        out.na_cols = {c for c in plan.columns if df[c].isna().any()}
        df = df.loc[~na]
    for c in plan.used:
        if isinstance(df[c].dtype, pd.CategoricalDtype):
            out.cats[c] = list(df[c].cat.categories)
    if not len(df):
        return out
    for c in plan.used:              # on kept rows only: an all-missing chunk column says nothing
        out.kinds[c] = {kind(df[c].dtype)}
    _response(df, plan.parsed.response, plan.parsed.text)
    _check_finite(df, plan.used, plan.parsed.text)
    # text in a column used as a covariate: stray non-numbers are refused as in memory
    grouping = {f for g in plan.groups for f in g}
    exprs = [plan.parsed.fixed] + [b.expr for b in plan.parsed.bars]
    _text_covariates(df, [c for c in plan.model_vars if c not in grouping and c != plan.parsed.response],
                     exprs)
    for label, col in plan.extra.items():
        s = df[col]
        if s.dtype == bool or not pd.api.types.is_numeric_dtype(s.dtype):
            raise DataError(f"{label} must be numeric, got dtype {s.dtype}")
        v = s.to_numpy(dtype=float)
        if not np.all(np.isfinite(v)) or (label == "weights" and np.any(v <= 0)):
            raise DataError("weights must be finite and positive; rows with weight 0 should be dropped instead"
                            if label == "weights" else "offset has non-finite values")
    scanned = {f for g in plan.groups for f in g} | set(plan.c_cols)
    scanned |= {c for c in plan.model_vars if kind(df[c].dtype) != "num"}
    for c in scanned:
        out.values[c] = distinct(df[c])
    for g in plan.groups:
        if len(g) > 1 and g not in out.combos:
            sub = df[list(g)].drop_duplicates()
            out.combos[g] = pd.DataFrame({f: _plain(sub[f]) for f in g})
    out.sample = df.iloc[:1][plan.model_vars].reset_index(drop=True)
    return out


def _plain(s: pd.Series) -> pd.Series:
    if isinstance(s.dtype, pd.api.extensions.ExtensionDtype):
        s = s.astype(object)
    return s.reset_index(drop=True)


def check_scan(scan: Scan, plan: Plan) -> dict:
    """After the merge: the NA policy, consistent column types; returns column -> kind."""
    if scan.rows == 0:
        raise DataError("the data have no rows")
    kinds = {}
    for c, ks in scan.kinds.items():
        if "num" in ks and len(ks) > 1:
            raise DataError(
                f"column {c!r} is read as numbers in some chunks and as text in others (pandas infers "
                "each chunk's types apart); give its type, e.g. sparsemixed.io.CSV(path, "
                f"dtype={{{c!r}: str}}), or convert it in the source")
        kinds[c] = "cat" if ks == {"cat"} else ("num" if "num" in ks else "text")
    return kinds


def na_message(scan: Scan, plan: Plan) -> str | None:
    if not scan.na_rows:
        return None
    cols = [c for c in plan.used if c in scan.na_cols]
    cols += [label for label, col in plan.extra.items() if col in scan.na_cols]
    return f"{scan.na_rows} of {scan.rows} rows have missing values (in {', '.join(map(repr, cols))})"


def level_series(scan: Scan, kinds: dict, col: str, values: pd.Series) -> pd.Series:
    """A column's distinct values typed as the in-memory frame would hold them (categoricals
    keep their categories' order and unused categories)."""
    if kinds.get(col) == "cat":
        return pd.Series(pd.Categorical(values.to_numpy(dtype=object), categories=scan.cats[col]))
    return values.reset_index(drop=True)


def stateless(spec, what: str) -> None:
    """Stateful transforms (center, scale, poly, bs ...) learn from all rows at once; a chunked
    build cannot reproduce them, so they are refused."""
    specs = spec if isinstance(spec, (list, tuple)) else [spec]
    for s in specs:
        state = getattr(s, "transform_state", None) or {}
        if state:
            raise FormulaError(
                f"the {what} uses stateful transform(s) {', '.join(map(repr, state))}, which need all "
                "rows at once; a streamed or Dask build cannot reproduce them. Compute the column "
                "in the source first (e.g. centre it with its known mean)")
