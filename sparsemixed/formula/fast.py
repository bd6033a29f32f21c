r"""A direct build of the model frame for the common formula shapes, without formulaic.

:func:`try_build` gives the same :class:`~sparsemixed.formula.design.ModelFrame` as
:func:`~sparsemixed.formula.design.build_model_frame`'s formulaic route -- the same y, X
(values bit for bit, column names and order), terms, grouping codes and levels, kept rows,
weights, offset and warning -- or None, and then the formulaic route runs (and raises the
error, if any).  It covers formulas whose every term, in the fixed part and in each
random-effects expression, is a product of data columns (``x``, ``f``, ``x:f``, ``x*f``,
``a/b`` as formulaic expands them, ``1``, ``0``, ``-1``), with

* numeric columns (numpy float/int/bool, pandas' nullable Int64/Float64/boolean),
* factors: pandas categoricals (all their categories are levels, as formulaic encodes
  them) and text columns (levels sorted), treatment contrasts,

and grouping factors of any such column (``(1|g)``, ``(x|g)``, ``(x||g)``, ``(1|a/b)``,
``(1|a:b)``).  Anything else -- a function call or transform (``scale(x)``, ``poly``,
``I()``, ``C()``, ``log(x)``), ``offset()``, a literal other than the intercept, a
factor with fewer than two levels, a text column of numbers, datetime or other dtypes,
infinite values, ``na_action="fail"`` with missing values, a sparse X (``sparse_X=True``
or "auto" with many factor levels), any input error -- returns None.

How formulaic encodes (formulaic 1.2, ``materializers/base.py`` and ``pandas.py``) and what
is reproduced here: the terms of the parsed formula in formulaic's order (the parse is
formulaic's own, cached); per term, the scoped terms that keep the matrix structurally
full rank (``_get_scoped_terms``: a factor is coded by treatment contrasts -- its first
level dropped, named ``f[T.b]`` -- when the term without it is already spanned, else by
full dummies ``f[a]``); per scoped term the columns of the product of its factors, the
first factor varying fastest, the values multiplied in formulaic's order (single-column
factors first multiplied together, then the others times that product), in the columns'
own dtypes and converted to float at the end.  The formulaic model specs that
``predict(newdata)``, ``emmeans``, ``ranova`` and the ddf methods replay are built on first
use from a few rows holding every level (:class:`LazySpecs`).
"""
from __future__ import annotations

import functools
import itertools
import warnings

import numpy as np
import pandas as pd

from ..errors import MissingDataWarning, SparseMixedError
from ..terms.grouping import GroupingFactor, _level_labels
from ..terms.random_term import RandomTerm, TermRows

ENABLED = True      # tests switch the fast route off to compare with formulaic's
TESTED_FORMULAIC = ("1.2.",)   # the formulaic versions whose encoding this route reproduces (tests/test_fast_build.py)


@functools.lru_cache(maxsize=1)
def formulaic_reproduced() -> bool:
    """The installed formulaic is one whose encoding is reproduced here: another version may
    name or order columns differently, and the fit's X must be the X its formulaic specs
    replay in predict() and emmeans, so the route is then off (formulaic builds everything)."""
    import formulaic

    return str(formulaic.__version__).startswith(TESTED_FORMULAIC)
STRICT = False      # tests: an unexpected exception in the fast route is raised, not a fallback

_FMT = "{name}[{field}]"
_FMT_REDUCED = "{name}[T.{field}]"
_MASKED = (pd.Int8Dtype, pd.Int16Dtype, pd.Int32Dtype, pd.Int64Dtype, pd.UInt8Dtype, pd.UInt16Dtype,
           pd.UInt32Dtype, pd.UInt64Dtype, pd.Float32Dtype, pd.Float64Dtype)


# -- the plan: what the formula reads, per (parsed formula, data columns) -----------------------
class _Plan:
    __slots__ = ("names", "fixed_vars", "rhs_vars", "expr_vars", "used", "covariates", "exprs",
                 "response", "fixed_terms", "bar_terms", "aliased")


def _terms_of(formula) -> list | None:
    """formulaic's terms as tuples of factor expressions (() for the intercept); None when a
    term holds anything but column look-ups (or is a literal other than the intercept)."""
    out = []
    for term in formula:
        facs = term.factors
        if len(facs) == 1 and facs[0].eval_method.value == "literal":
            if facs[0].expr != "1":
                return None
            out.append(())
            continue
        exprs = []
        for f in facs:
            if f.eval_method.value != "lookup" or f.kind.value != "unknown":
                return None
            exprs.append(f.expr)
        out.append(tuple(exprs))
    return out


@functools.lru_cache(maxsize=256)
def _plan(parsed, columns: tuple):
    from .design import _required, parse_formula
    from .names import Names, required

    if parsed.offsets or not parsed.bars:
        return None
    p = _Plan()
    p.names = names = Names.build([parsed.fixed_formula] + [b.expr for b in parsed.bars], columns,
                                  also=[f for b in parsed.bars for f in b.factors])
    p.fixed_vars = _required(parsed.fixed_formula, "fixed-effects part", columns, names)
    p.rhs_vars = required(parsed.fixed, columns)
    p.expr_vars = [_required(bar.expr, f"random-effects term {bar}", columns, names) for bar in parsed.bars]
    term_vars = set().union(*p.expr_vars, *(set(bar.factors) for bar in parsed.bars))
    colset = set(columns)
    if not (p.fixed_vars | term_vars) <= colset:
        return None
    position = {c: i for i, c in enumerate(columns)}
    p.used = sorted(p.fixed_vars | term_vars, key=lambda v: position.get(v, -1))
    p.covariates = (p.fixed_vars - {parsed.response}) | set().union(*p.expr_vars)
    p.exprs = [parsed.fixed] + [bar.expr for bar in parsed.bars]
    inverse = {a: c for c, a in names.aliases}
    fixed = parse_formula(names.text(parsed.fixed_formula))
    if not hasattr(fixed, "lhs") or not hasattr(fixed, "rhs"):
        return None
    lhs, rhs = _terms_of(fixed.lhs), _terms_of(fixed.rhs)
    if lhs is None or rhs is None or len(lhs) != 1 or len(lhs[0]) != 1:
        return None
    if inverse.get(lhs[0][0], lhs[0][0]) != parsed.response:
        return None
    p.response = parsed.response
    p.fixed_terms = tuple(rhs)
    bar_terms = []
    for bar in parsed.bars:
        f = parse_formula(names.text(bar.expr))
        if hasattr(f, "lhs") or hasattr(f, "rhs"):
            return None
        t = _terms_of(f)
        if t is None:
            return None
        bar_terms.append(tuple(t))
    p.bar_terms = bar_terms
    p.aliased = {}                  # formulaic's name of each column the terms read -> column
    for t in list(rhs) + [x for bt in bar_terms for x in bt]:
        for e in t:
            col = inverse.get(e, e)
            if col not in colset:
                return None
            p.aliased[e] = col
    for bar in parsed.bars:
        if not all(f in colset for f in bar.factors):
            return None
    return p


# -- formulaic's structure: which factors are coded by contrasts -----------------------------------
def _key(st) -> frozenset:
    return frozenset(st)


def _ordered_union(terms: list, new) -> list:
    return terms if any(_key(t) == _key(new) for t in terms) else terms + [new]


def _simplify(scoped: list) -> list:
    """formulaic's ``_simplify_scoped_terms``: (anything):(reduced f) + (anything) ->
    (anything):(full f), recursively.  A scoped term is a tuple of (factor, reduced)."""
    terms: list = []
    for st in sorted(scoped, key=len):
        fs = set(st)
        combined = False
        for ex in terms:
            co = set(ex)
            diff = fs - co
            if len(fs) - 1 != len(co) or len(diff) != 1:
                continue
            new = next(iter(diff))
            if new[1]:
                full = tuple((f[0], False) if f == new else f for f in st)
                terms = _simplify(_ordered_union([t for t in terms if _key(t) != _key(ex)], full))
                combined = True
                break
        if not combined:
            terms = _ordered_union(terms, st)
    return terms


@functools.lru_cache(maxsize=1024)
def _scoped_terms(terms: tuple, categorical: frozenset) -> tuple:
    """formulaic's ``_get_scoped_terms`` (ensure_full_rank): per term its scoped terms."""
    spanned: set = set()
    out = []
    for term in terms:
        opts = [(((f, True),), ()) if f in categorical else (((f, False),),) for f in term]
        span: list = []
        for prod in itertools.product(*opts):
            st = tuple(dict.fromkeys(x for part in prod for x in part))
            span = _ordered_union(span, st)
        span = [st for st in span if _key(st) not in spanned]
        out.append(tuple(_simplify(span)))
        spanned.update(_key(st) for st in span)
    return tuple(out)


# -- columns ------------------------------------------------------------------------------------
class _Column:
    """One used column, on the kept rows, as formulaic would see it (numpy_columns)."""

    __slots__ = ("kind", "values", "codes", "levels", "dtype")

    def dummies(self, reduced: bool, name: str) -> dict:
        fmt = _FMT_REDUCED if reduced else _FMT
        start = 1 if reduced else 0
        return {fmt.format(name=name, field=lev): self.codes == j
                for j, lev in enumerate(self.levels) if j >= start}


def _term_columns(scoped: tuple, cols: dict, n: int) -> dict:
    """formulaic's columns of one term (PandasMaterializer._get_columns_for_term)."""
    out = {}
    for st in scoped:
        if not st:
            out["Intercept"] = 1 * (1 * np.ones(n))
            continue
        factors = []
        for name, reduced in st:
            c = cols[name]
            factors.append({name: c.values} if c.kind == "num" else c.dummies(reduced, name))
        names = [":".join(reversed(p)) for p in itertools.product(*reversed(factors))]
        solo, idx = {}, []
        for i, f in enumerate(factors):
            if len(f) == 1:
                solo.update(f)
                idx.append(i)
        if solo:
            for i in reversed(idx):
                factors.pop(i)
            factors.append({":".join(solo): functools.reduce(np.multiply, (np.asanyarray(v) for v in solo.values()))})
        for i, rp in enumerate(itertools.product(*(f.items() for f in reversed(factors)))):
            out[names[i]] = 1 * functools.reduce(np.multiply, (np.array(p[1]) for p in reversed(rp)))
    return out


def _matrix(parts: list, n: int) -> np.ndarray:
    """The columns as formulaic's DataFrame.to_numpy(dtype=float) gives them (F order)."""
    M = np.empty((len(parts), n)).T
    for j, v in enumerate(parts):
        M[:, j] = v
    return M


def _group(factors, cols: dict):
    """GroupingFactor.from_data on the kept rows (None where it would raise)."""
    codes, labels = _group_column(cols[factors[0]])
    for f in factors[1:]:
        if codes is None:
            return None
        c2, l2 = _group_column(cols[f])
        if c2 is None:
            return None
        combined = codes * len(l2) + c2
        uniq, codes = np.unique(combined, return_inverse=True)
        labels = [f"{labels[u // len(l2)]}:{l2[u % len(l2)]}" for u in uniq]
        codes = codes.astype(np.int64).reshape(-1)
    if codes is None:
        return None
    return GroupingFactor(":".join(factors), tuple(factors), labels), codes


def _group_column(c: _Column):
    """encode_column (terms/grouping.py) on the kept rows; (None, None) where it would raise."""
    if c.kind == "cat":
        codes = c.codes.astype(np.int64)
        levels = c.levels
        used = np.bincount(codes[codes >= 0], minlength=len(levels)) > 0
        if not used.all():                 # unused categories dropped, the others in their order
            new = np.cumsum(used) - 1
            codes = np.where(codes >= 0, new[np.maximum(codes, 0)], -1)
            levels = [levels[i] for i in np.flatnonzero(used)]
        labels = _level_labels(levels)
    else:
        try:
            codes, uniq = pd.factorize(c.values, sort=True)
        except TypeError:
            return None, None
        codes = codes.astype(np.int64).reshape(-1)
        labels = _level_labels(np.asarray(uniq))
    if len(set(labels)) != len(labels):
        return None, None
    return codes, labels


def _array(frame: pd.DataFrame, column, position: int):
    """The column's array (numpy or pandas extension array), without a Series."""
    get = getattr(frame, "_get_column_array", None)       # ~50 times cheaper than frame[column]
    if get is not None:
        try:
            return get(position)
        except Exception:     # noqa: BLE001 -- pandas internals changed: the public way
            pass
    return frame[column].array


def _missing(arr) -> np.ndarray | None:
    """The rows where ``arr`` is missing (DataFrame.isna), None when it cannot be; raises
    TypeError for a dtype the fast route leaves to formulaic."""
    if isinstance(arr, np.ndarray):
        k = arr.dtype.kind
        if k in "iub":
            return None
        if k == "f":
            return np.isnan(arr)
        if k == "O":
            return pd.isna(arr)
        raise TypeError(arr.dtype)
    if isinstance(arr, pd.Categorical):
        return arr.codes < 0
    if isinstance(arr.dtype, _MASKED + (pd.BooleanDtype, pd.StringDtype)):
        return np.asarray(arr.isna(), dtype=bool)
    raise TypeError(arr.dtype)


def _read(arr, take):
    """A used column on the kept rows (``take``: positions, or None for all), as
    numpy_columns hands it to formulaic."""
    dt = arr.dtype
    if isinstance(arr, pd.Categorical):
        c = _Column()
        c.kind, c.dtype, c.values = "cat", dt, None
        c.codes = arr.codes if take is None else arr.codes[take]
        c.levels = _remembered(dt.categories, list)
        return c
    c = _Column()
    c.dtype, c.codes, c.levels = dt, None, None
    if isinstance(arr, np.ndarray):
        c.kind = "num" if dt.kind in "fiub" else "text"
        v = arr
    elif isinstance(dt, _MASKED):
        c.kind = "num"
        v = arr.to_numpy(dtype=float, na_value=np.nan)
    elif isinstance(dt, pd.BooleanDtype):
        c.kind = "num"
        v = arr.to_numpy(dtype=bool, na_value=False)
    else:                                   # StringDtype
        c.kind = "text"
        v = arr.to_numpy(dtype=object)
    c.values = v if take is None else v[take]
    return c


# -- the lazily built formulaic specs -------------------------------------------------------------
class LazySpecs:
    """The formulaic model specs of the fixed part and of each random-effects expression,
    built on first use by the formulaic route's encoder on a few rows of the fit's data
    holding every level of every factor (all a spec learns from the data: the factors'
    kinds and levels)."""

    def __init__(self, parsed, names, proto: dict):
        self.parsed, self.names, self.proto, self._specs = parsed, names, proto, None

    def specs(self) -> list:
        if self._specs is None:
            from .design import _encode

            enc = _proto_frame(self.proto)
            mm, tms = _encode(self.parsed, enc, False, self.names)
            self._specs = [mm.rhs.model_spec] + [tm.model_spec for tm in tms]
            self.proto = None
        return self._specs


class LazySpec:
    def __init__(self, parent: LazySpecs, index: int):
        self.parent, self.index = parent, index

    def resolve(self):
        return self.parent.specs()[self.index]


def _proto(cols: dict, names_used, response: str, y_values) -> dict:
    """A few of the kept rows: the first of each level of each factor (and row 0), the
    columns as formulaic sees them, under formulaic's names: {name: (kind, values, dtype)}."""
    rows = {0}
    for e in names_used:
        c = cols[e]
        if c.kind != "num":
            _, first = np.unique(c.codes, return_index=True)
            rows.update(first.tolist())
    rows = np.array(sorted(rows))
    out = {e: (cols[e].kind, (cols[e].codes if cols[e].kind == "cat" else cols[e].values)[rows], cols[e].dtype)
           for e in names_used}
    if response not in out:
        out[response] = ("num", y_values[rows], None)
    return out


def _proto_frame(proto: dict) -> pd.DataFrame:
    cols = {}
    for e, (kind, v, dtype) in proto.items():
        if kind == "cat":
            cols[e] = pd.Series(pd.Categorical.from_codes(v, dtype=dtype))
        elif kind == "text":
            cols[e] = pd.Series(v, dtype=object)
        else:
            cols[e] = pd.Series(v)
    return pd.DataFrame(cols)


_SEEN: dict = {}


def _remembered(index: pd.Index, kind=tuple):
    """tuple(index) or list(index), remembered per Index object (immutable: data columns,
    a categorical's categories), since iterating pandas' Arrow-backed string Index costs
    ~1 us per element.  (A list is the caller's to read, not to change.)"""
    key = (id(index), kind)
    hit = _SEEN.get(key)
    if hit is not None and hit[0] is index:
        return hit[1]
    if len(_SEEN) >= 256:
        _SEEN.clear()
    t = kind(index)
    if len(t) <= 10000:
        _SEEN[key] = (index, t)
    return t


# -- the build ----------------------------------------------------------------------------------
def try_build(parsed, frame: pd.DataFrame, weights, offset, na_action, sparse_X):
    """The model frame by the direct route, or None (then formulaic's route runs)."""
    if not ENABLED or not formulaic_reproduced():
        return None
    try:
        return _build(parsed, frame, weights, offset, na_action, sparse_X)
    except SparseMixedError:      # an input error: the formulaic route runs and reports it
        return None
    except Exception:     # noqa: BLE001 -- not expected; the formulaic route runs (tests: STRICT)
        if STRICT:
            raise
        return None


def _build(parsed, frame, weights, offset, na_action, sparse_X):
    from .design import EncodingSpec, ModelFrame, _is_text_dtype, _numeric_vector, _text_covariates, r_name

    if sparse_X is True:
        return None
    try:
        plan = _plan(parsed, _remembered(frame.columns))
    except Exception:     # noqa: BLE001 -- parse errors, unhashable labels: formulaic's route reports
        return None
    if plan is None:
        return None
    loc = frame.columns.get_loc
    raw = {c: _array(frame, c, loc(c)) for c in plan.used}
    resp = raw[plan.response].dtype
    if not (isinstance(resp, _MASKED) or (isinstance(resp, np.dtype) and resp.kind in "fiu")):
        return None
    text = [c for c in plan.used if c in plan.covariates and _is_text_dtype(raw[c].dtype)]
    if text and _text_covariates(frame, text, plan.exprs):
        return None
    extra = {}
    for label, vec in (("weights", weights), ("offset", offset)):
        if vec is None:
            continue
        if isinstance(vec, str):
            if vec not in frame.columns:
                return None
            vec = frame[vec]
        extra[label] = _numeric_vector(vec, label, frame.index)
    nrow = len(frame)
    na = np.zeros(nrow, bool)
    na_cols = []
    for c in plan.used:
        try:
            m = _missing(raw[c])
        except TypeError:                   # datetime, complex ...: formulaic's route (and its errors)
            return None
        if m is not None and m.any():
            na |= m
            na_cols.append(c)
    for label, vec in extra.items():
        m = np.isnan(vec.to_numpy())
        if m.any():
            na |= m
            na_cols.append(label)
    dropped = bool(na_cols)
    if dropped and (na_action == "fail" or na.all()):
        return None
    take = np.flatnonzero(~na) if dropped else None
    n = nrow - int(na.sum())
    cols = {}
    for c in plan.used:
        col = _read(raw[c], take)
        if col.kind == "num" and col.values.dtype.kind == "f" and not np.isfinite(col.values).all():
            return None                     # infinite values (DataError), or NaN that is not NA
        cols[c] = col
    numeric_cols = [c for c in plan.used if c in plan.covariates and pd.api.types.is_numeric_dtype(raw[c].dtype)
                    and not pd.api.types.is_bool_dtype(raw[c].dtype)]
    # factors of the terms: levels as formulaic finds them
    by_alias = {}
    for e, c in plan.aliased.items():
        col = cols[c]
        if col.kind == "text":
            try:
                codes, uniq = pd.factorize(col.values, sort=True)
            except TypeError:
                return None
            col.codes, col.levels = codes, list(uniq)
        if col.kind != "num":
            if len(col.levels) < 2:
                return None
            labels = [_FMT.format(name="", field=lev) for lev in col.levels]
            if len(set(labels)) != len(labels):
                return None
        by_alias[e] = col
    if sparse_X == "auto":
        nlev = 0
        for c in plan.fixed_vars - {parsed.response}:
            if c in numeric_cols:
                continue
            col = cols[c]
            if col.kind == "cat" or col.kind == "text":
                nlev += len(np.unique(col.codes)) if col.codes is not None else len(pd.unique(col.values))
            else:
                nlev += len(pd.unique(col.values))
        if nlev >= 200:
            return None
    categorical = frozenset(e for e, col in by_alias.items() if col.kind != "num")
    # X
    X_cols = {}
    for scoped in _scoped_terms(plan.fixed_terms, categorical):
        X_cols.update(_term_columns(scoped, by_alias, n))
    names = plan.names
    X = _matrix(list(X_cols.values()), n)
    X_names = [r_name(c, names) for c in X_cols]
    if len(set(X_names)) != len(X_names):
        return None
    resp = cols[plan.response].values
    y = np.array(resp, dtype=float).reshape(-1)
    lazy = LazySpecs(parsed, names, _proto(by_alias, sorted(by_alias), names.mapping.get(plan.response, plan.response),
                                           resp))
    terms, rows = [], []
    for i, (bar, bterms, evars) in enumerate(zip(parsed.bars, plan.bar_terms, plan.expr_vars)):
        g = _group(bar.factors, cols)
        if g is None:
            return None
        group, codes = g
        tcols = {}
        for scoped in _scoped_terms(bterms, categorical):
            tcols.update(_term_columns(scoped, by_alias, n))
        if not tcols:
            return None
        tnames = [r_name(c, names) for c in tcols]
        terms.append(RandomTerm(bar.expr, group, tnames,
                                EncodingSpec(LazySpec(lazy, i + 1), numeric_cols, f"the random-effects term {bar}",
                                             names, evars)))
        rows.append(TermRows(codes, _matrix(list(tcols.values()), n)))
    kept = ~na
    w = None if "weights" not in extra else extra["weights"].to_numpy(dtype=float)[kept]
    off = None if "offset" not in extra else extra["offset"].to_numpy(dtype=float)[kept]
    if w is not None and np.any(~np.isfinite(w) | (w <= 0)):
        return None
    if off is not None and np.any(~np.isfinite(off)):
        return None
    if dropped:
        msg = f"{int(na.sum())} of {nrow} rows have missing values (in {', '.join(map(repr, na_cols))})"
        warnings.warn(msg + " and were dropped", MissingDataWarning, stacklevel=5)
    fixed_spec = EncodingSpec(LazySpec(lazy, 0), numeric_cols, f"the fixed effects {parsed.fixed!r}", names,
                              plan.rhs_vars, ())
    return ModelFrame(y, X, X_names, fixed_spec, terms, rows, w, off, int(na.sum()), kept)
