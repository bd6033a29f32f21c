"""Pass 2 encoding: one chunk -> its rows of y, X and Z, with the levels of pass 1.

    X_j = fixed_spec(C_j),  y_j = lhs(C_j) - offset_j     (formulaic specs built once)
    Z_kj[i, code_k(i) * k_k + c] = term_spec_k(C_j)[i, c]
    code_k(i) = rank of (g1_i, ..., gm_i) among term k's observed level tuples, sorted
                lexicographically by the factors' level codes (lme4's and the in-memory order)

The specs come from a prototype frame that holds every level found in pass 1 (pandas
categoricals keep their full category list), so every chunk yields the same columns,
named and ordered as the in-memory build's.  ``Encoding`` is picklable: Dask ships it
to the workers.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import DataError, FormulaError
from ..formula.design import EncodingSpec, numpy_columns, r_name
from ..formula.names import Names, required
from ..assemble import lme4_term_order, unique_names
from ..terms.grouping import GroupingFactor, _level_labels, encode_column
from ..terms.random_term import RandomTerm, TermRows
from .levels import Plan, Scan, check_scan, level_series, na_message, stateless
from .partial import Partial, chunk_partial


def _factor_codes(col: pd.Series, labels: pd.Index, name: str) -> np.ndarray:
    codes, uniq = pd.factorize(col)
    pos = labels.get_indexer(_level_labels(np.asarray(uniq, dtype=object)))
    if np.any(pos < 0):
        new = [u for u, q in zip(np.asarray(uniq, dtype=object), pos) if q < 0][:5]
        raise DataError(f"grouping column {name!r} has level(s) {new} that the first pass did not see; "
                        "did the source change between the two passes?")
    return pos[codes].astype(np.int64)


@dataclass
class GroupLookup:
    """Row -> level index of a grouping factor (possibly an interaction) for any chunk."""

    factors: tuple
    labels: list            # per factor, pd.Index of its level labels
    keys: np.ndarray        # sorted mixed-radix keys of the observed level tuples

    @classmethod
    def build(cls, factors: tuple, combos: pd.DataFrame) -> tuple[GroupingFactor, "GroupLookup"]:
        group, _ = GroupingFactor.from_data(factors, combos)
        key = np.zeros(len(combos), dtype=np.int64)
        labels, radix = [], 1
        for f in factors:
            codes, lab = encode_column(combos[f], f)
            radix *= len(lab)
            if radix >= 2 ** 62:
                raise DataError(f"the interaction {':'.join(factors)} has too many possible levels")
            key = key * len(lab) + codes
            labels.append(pd.Index(lab))
        keys = np.unique(key)
        assert keys.size == group.nlevels, (keys.size, group.nlevels)
        return group, cls(tuple(factors), labels, keys)

    def codes(self, df: pd.DataFrame) -> np.ndarray:
        if len(self.factors) == 1:              # keys are 0..L-1: the factor's code is the level
            return _factor_codes(df[self.factors[0]], self.labels[0], self.factors[0])
        key = np.zeros(len(df), dtype=np.int64)
        for f, lab in zip(self.factors, self.labels):
            key = key * len(lab) + _factor_codes(df[f], lab, f)
        pos = np.searchsorted(self.keys, key)
        bad = (pos >= self.keys.size) | (self.keys[np.minimum(pos, self.keys.size - 1)] != key)
        if bad.any():
            raise DataError(f"grouping factor {':'.join(self.factors)!r} has level combination(s) that the "
                            "first pass did not see; did the source change between the two passes?")
        return pos


def _prototype(scan: Scan, plan: Plan, kinds: dict) -> pd.DataFrame:
    """A small frame holding every level of each factor-like model variable."""
    R = max([len(scan.values[c]) for c in plan.model_vars if c in scan.values] + [1])
    cols = {}
    for c in plan.model_vars:
        if c in scan.values:
            cyc = np.resize(scan.values[c].to_numpy(), R)
            cols[c] = pd.Categorical(cyc, categories=scan.cats[c]) if kinds[c] == "cat" else cyc
        else:
            cols[c] = np.repeat(scan.sample[c].to_numpy(), R)
    return numpy_columns(pd.DataFrame(cols), plan.model_vars)


@dataclass
class Encoding:
    plan: Plan
    fixed_spec: object          # formulaic ModelSpecs (lhs, rhs)
    X_names: list
    terms: list                 # RandomTerm, in lme4's order, named
    lookups: list               # GroupLookup per term
    n: int                      # rows kept
    n_dropped: int
    na_warning: str | None      # the MissingDataWarning text, if rows were dropped

    @classmethod
    def from_scan(cls, scan: Scan, plan: Plan) -> "Encoding":
        import formulaic

        kinds = check_scan(scan, plan)
        msg = na_message(scan, plan)
        if msg and plan.na_action == "fail":
            raise DataError(msg + "; drop them or use na_action='omit'")
        n = scan.rows - scan.na_rows
        if n == 0:
            raise DataError("no rows are left after dropping rows with missing values")
        parsed = plan.parsed
        if parsed.offsets:
            raise FormulaError(f"offset({parsed.offsets[0]}) in the formula: a streamed or Dask build takes the "
                               "offset as a column, offset='column' (compute it in the source first)")
        # columns formulaic cannot read by name (IQ.verb, `my col`) go to it under aliases (names.py)
        names = Names.build([parsed.fixed_formula] + [b.expr for b in parsed.bars], plan.used, also=plan.used)
        proto = names.frame(_prototype(scan, plan, kinds))
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                mm = formulaic.model_matrix(names.text(parsed.fixed_formula), proto, na_action="raise")
        except Exception as exc:
            raise FormulaError(f"cannot encode the fixed-effects part {parsed.fixed_formula!r}: {exc}") from None
        stateless([mm.model_spec.lhs, mm.model_spec.rhs], f"fixed-effects part {parsed.fixed_formula!r}")
        if np.asarray(mm.lhs).reshape(len(proto), -1).shape[1] != 1:
            raise DataError(f"the response {parsed.response!r} must be one numeric column")
        X_names = [r_name(c, names) for c in mm.rhs.columns]
        terms, lookups = [], []
        for bar in parsed.bars:
            g = tuple(bar.factors)
            combos = scan.combos[g] if len(g) > 1 else pd.DataFrame({g[0]: scan.values[g[0]]})
            combos = pd.DataFrame({f: level_series(scan, kinds, f, combos[f]) for f in g})
            group, lookup = GroupLookup.build(g, combos)
            try:
                tm = formulaic.model_matrix(names.text(bar.expr), proto, na_action="raise")
            except Exception as exc:
                raise FormulaError(f"cannot encode random-effects term {bar}: {exc}") from None
            stateless(tm.model_spec, f"random-effects term {bar}")
            cols = [r_name(c, names) for c in tm.columns]
            if not cols:
                raise FormulaError(f"random-effects term {bar} has no columns")
            spec = tm.model_spec
            if names.aliases:       # chunks and newdata renamed as the prototype was
                spec = EncodingSpec(spec, (), f"the random-effects term {bar}", names, required(bar.expr, plan.used))
            terms.append(RandomTerm(bar.expr, group, cols, spec))
            lookups.append(lookup)
        order = lme4_term_order(terms)
        terms, lookups = [terms[i] for i in order], [lookups[i] for i in order]
        for t, name in zip(terms, unique_names([t.group.name for t in terms])):
            t.name = name
        fixed_spec = mm.model_spec
        if names.aliases:
            what = f"the fixed effects {parsed.fixed!r}"
            fixed_spec = EncodingSpec(fixed_spec, (), what, names, rhs=EncodingSpec(
                fixed_spec.rhs, (), what, names, required(parsed.fixed, plan.used)))
        return cls(plan, fixed_spec, X_names, terms, lookups, n, scan.na_rows, msg)

    def arrays(self, df: pd.DataFrame):
        """(y - offset, X with all columns, TermRows per term, weights) of a chunk's kept rows."""
        plan = self.plan
        df = df[plan.columns]
        na = df.isna().any(axis=1).to_numpy()
        if na.any():
            df = df.loc[~na]
        if not len(df):
            return None
        df = numpy_columns(df, plan.model_vars)   # grouping columns are factorized as they are
        mm = self.fixed_spec.get_model_matrix(df)   # no catch_warnings here: it runs on worker threads
        y = np.asarray(mm.lhs, dtype=float).reshape(-1)
        X = np.asarray(mm.rhs, dtype=float).reshape(len(df), -1)
        if X.shape[1] != len(self.X_names):
            raise DataError(f"a chunk encoded to {X.shape[1]} fixed-effect columns instead of {len(self.X_names)}")
        rows = [TermRows(lk.codes(df), t.values_for(df)) for t, lk in zip(self.terms, self.lookups)]
        if "offset" in plan.extra:
            y = y - df[plan.extra["offset"]].to_numpy(dtype=float)
        w = df[plan.extra["weights"]].to_numpy(dtype=float) if "weights" in plan.extra else None
        return y, X, rows, w

    def partial(self, df: pd.DataFrame) -> Partial | None:
        got = self.arrays(df)
        if got is None:
            return None
        y, X, rows, w = got
        self._check_magnitude(y, X, rows)
        return chunk_partial(rows, [t.nlevels for t in self.terms], X, y, w)

    def _check_magnitude(self, y, X, rows) -> None:
        """Values whose squares overflow double precision (|v| > MAX_ABS) make the chunk's
        cross-products inf/NaN; refused by name (a damaged file can decode to such numbers)."""
        parts = [(f"the response {self.plan.parsed.response!r}", y[:, None], [None])]
        parts.append(("fixed-effect column", X, self.X_names))
        parts += [(f"random-effects term {t.name!r} column", r.values, t.columns) for t, r in zip(self.terms, rows)]
        for what, a, names in parts:
            if not a.size:
                continue
            big = np.abs(a).max(axis=0)
            j = int(np.argmax(big))
            if big[j] > MAX_ABS:
                label = what if names[j] is None else f"{what} {names[j]!r}"
                raise DataError(f"{label} has values up to {big[j]:.3g}, whose squares overflow double precision in "
                                f"the cross-products (the limit is {MAX_ABS:.0e}): divide it by a power of ten, or "
                                "check the source (a damaged file can decode to such numbers)")


MAX_ABS = 1e150       # (1e150)^2 * 1e8 rows stays below the largest double (1.8e308)
