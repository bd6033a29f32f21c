"""Prediction from a fitted model, lme4's ``predict.merMod``.

    fit      = X_new beta + Z_new^(S) b (+ offset)

X_new and Z_new replay the fit's encoding, transform states included (the training means
and sds of ``scale(x)``, the polynomial basis of ``poly(x, 2)``: formula/design.py's
EncodingSpec), as lme4's predict does; the offset is the formula's ``offset(expr)`` terms
evaluated on newdata plus the ``offset=`` column when it was given by name.

where ``S`` is the set of random-effects columns selected by ``re_form`` (None: all;
``"~0"``/``"NA"``: none; ``"~(1|g)"``: the named columns of g's effects, lme4's matching by
grouping factor and column name).  A row whose level of a selected grouping factor was
not in the fit contributes 0 from that factor (``allow_new_levels=True``).

Standard errors and intervals (normal quantile z = Phi^-1((1 + level) / 2)), theta and
sigma treated as known:

    se_fit^2   = x' V x,                  V = vcov(beta-hat) = sigma^2 (R_X' R_X)^-1
    confidence : fit +/- z se_fit         (uncertainty of beta-hat only)
    prediction : fit +/- z sqrt(x' V x + z_S' C z_S + s_new + sigma^2 / w)
        C     = Var(b | y) = sigma^2 Lambda M^-1 Lambda'  over the *seen* levels, the full
                matrix, so covariances between crossed/nested terms and between the columns of
                one term are included:  z' C z = sigma^2 ||L^-1 P Lambda' z||^2;
        s_new = z' Sigma_k z = sigma^2 ||T_k' z||^2 for a selected term whose level is new
                (its prior variance, since the data say nothing about it);
        w     = prior weight of the row (newdata=None: the fit's weights; newdata: its column
                of the model's weights when they were given by name, else 1).
    The covariance between beta-hat and b-hat is not included, and the random effects
    left out by ``re_form`` add nothing (the interval is for x'beta + z_S'b_S + e).
"""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import norm

from ..errors import DataError, FormulaError, SparseMixedError
from .simulate import SimulateMixin

BATCH = 256
_NO_RE = {"na", "~0", "~ 0", "0", "~na", "~ na", "~-1", "~ -1", "~1", "~ 1"}


def _select_terms(self, re_form, newdata) -> dict:
    """{model term index: boolean mask of its columns} for ``re_form``."""
    terms = self.model.terms
    if re_form is None:
        return {i: np.ones(t.k, bool) for i, t in enumerate(terms)}
    if isinstance(re_form, float) and np.isnan(re_form):
        return {}
    if not isinstance(re_form, str):
        raise FormulaError(f"re_form must be None, 'NA', '~0' or a formula string such as '~(1|g)', got {re_form!r}")
    text = re_form.strip()
    if text.lower() in _NO_RE:
        return {}
    from ..formula.bars import parse_formula
    from ..formula.design import expr_columns

    rhs = text[1:] if text.startswith("~") else text
    parsed = parse_formula(f"_y_ ~ {rhs}")
    if not parsed.bars:
        raise FormulaError(f"re_form {re_form!r} has no random-effects term such as '(1 | g)'; "
                           "use None for all random effects or '~0' for none")
    sel: dict = {}
    for bar in parsed.bars:
        group = ":".join(bar.factors)
        cands = [i for i, t in enumerate(terms) if t.group.name == group]
        if not cands:
            known = sorted({t.group.name for t in terms})
            raise FormulaError(f"re_form term {bar}: grouping factor {group!r} is not among the model's "
                               f"grouping factors ({', '.join(known)})")
        same = [i for i in cands if terms[i].expr == bar.expr]
        if same:
            cols = terms[same[0]].columns
        else:
            src = self.model.data if newdata is None else newdata
            cols = expr_columns(bar.expr, pd.DataFrame(src) if isinstance(src, dict) else src)
        for c in cols:
            hit = [(i, terms[i].columns.index(c)) for i in cands if c in terms[i].columns]
            if not hit:
                have = [c2 for i in cands for c2 in terms[i].columns]
                raise FormulaError(f"re_form term {bar}: column {c!r} is not a random effect of {group!r} "
                                   f"in the model (its random effects: {', '.join(have)})")
            i, j = hit[0]
            sel.setdefault(i, np.zeros(terms[i].k, bool))[j] = True
    return sel


def _check_columns(needed, data: pd.DataFrame, what: str) -> None:
    missing = sorted(v for v in needed if v not in data.columns)
    if missing:
        raise DataError(f"newdata lacks column(s) {', '.join(map(repr, missing))} used by {what}; "
                        f"add them (available: {', '.join(map(str, list(data.columns)[:20]))})")


def term_mask(model, sel: dict) -> np.ndarray:
    """The q-vector keeping the random-effects columns ``sel`` selects (``_select_terms``)."""
    mask = np.zeros(model.q)
    off = 0
    for i, t in enumerate(model.terms):
        if i in sel:
            mask[off: off + t.q] = np.tile(sel[i], t.nlevels)
        off += t.q
    return mask


def newdata_columns(model, data: pd.DataFrame, sel: dict) -> set:
    """The columns of ``data`` a prediction reads, each checked present: the fixed part's
    and the selected random terms' variables (a missing value there makes that row's
    prediction NaN, lme4's na.pass), and their grouping factors (checked only: a missing
    level is a new level, lme4's allow.new.levels rule, :func:`_random_design`)."""
    needed = set(model.fixed_spec.required_variables)
    _check_columns(needed, data, f"the fixed effects of {model.formula!r}")
    for i in sel:
        t = model.terms[i]
        needed |= set(t.spec.required_variables)
        _check_columns(set(t.spec.required_variables) | set(t.group.factors), data,
                       f"the random-effects term ({t.expr} | {t.group.name})")
    return needed


def _fixed_design(model, data: pd.DataFrame) -> np.ndarray:
    """X of newdata (complete rows), replaying the fit's encoding (the fit's transform states:
    means and sds of scale(), polynomial bases of poly()); unseen levels are errors."""
    spec = model.fixed_spec
    renamed = spec.frame(data) if hasattr(spec, "frame") else data      # columns aliased for formulaic
    for name, (kind, state) in spec.encoder_state.items():
        cats = state.get("categories") if isinstance(state, dict) else None
        if cats is None or name not in renamed.columns:
            continue
        vals = renamed[name]
        bad = ~vals.isin(list(cats))
        if bad.any():
            new = list(dict.fromkeys(vals[bad].astype(str)))[:5]
            shown = spec.display(name) if hasattr(spec, "display") else name
            raise DataError(f"column {shown!r} of newdata has level(s) {', '.join(map(repr, new))} not seen "
                            f"in the fit (levels: {', '.join(map(str, cats))}); a fixed effect cannot be "
                            "predicted for a new level: drop those rows or recode them")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mm = spec.get_model_matrix(data)
    for w in caught:
        if type(w.message).__name__ == "DataMismatchWarning":
            raise DataError(f"newdata does not match the fit's encoding of the fixed effects: {w.message} "
                            "Drop or recode the rows with levels not seen in the fit")
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    if hasattr(mm, "toarray"):          # the sparse-X path's sparse encoding (newdata rows only)
        mm = mm.toarray()
    X = np.asarray(mm, dtype=float).reshape(len(data), -1)
    return X[:, model.fixef_cols]


def _random_design(self, data: pd.DataFrame, sel: dict, allow_new_levels: bool):
    """(Z_new over the selected columns and seen levels, sparse m x q; s_new / sigma^2)."""
    model = self.model
    m = len(data)
    rows, cols, vals = [], [], []
    prior = np.zeros(m)
    off = toff = 0
    for i, t in enumerate(model.terms):
        if i in sel:
            codes = t.group.codes_for(data)
            na = data[list(t.group.factors)].isna().any(axis=1).to_numpy()
            new = codes < 0
            if not allow_new_levels and na.any():
                raise DataError(f"grouping factor {t.group.name!r} has missing values in newdata (first at row "
                                f"{data.index[np.flatnonzero(na)[0]]!r}); pass allow_new_levels=True to predict "
                                "those rows without its random effects, or drop them")
            if not allow_new_levels and new.any():
                lv = list(dict.fromkeys(data.loc[new & ~na, list(t.group.factors)].astype(str)
                                        .agg(":".join, axis=1)))
                raise DataError(f"newdata has level(s) {', '.join(map(repr, lv[:5]))}"
                                f"{' ...' if len(lv) > 5 else ''} of grouping factor {t.group.name!r} not seen in "
                                "the fit; pass allow_new_levels=True to predict them at the population level "
                                "(their random effects set to 0), or drop them")
            V = t.values_for(data) * sel[i][None, :]
            known = np.flatnonzero(~new)
            rows.append(np.repeat(known, t.k))
            cols.append((off + codes[known][:, None] * t.k + np.arange(t.k)[None, :]).ravel())
            vals.append(V[known].ravel())
            if new.any():
                T = t.cov.T(self.theta[toff: toff + t.ntheta])
                prior[new] += ((V[new] @ T) ** 2).sum(axis=1)
        off += t.q
        toff += t.ntheta
    cat = (lambda xs, dt: np.concatenate(xs).astype(dt)) if rows else (lambda xs, dt: np.zeros(0, dt))
    Z = sp.csr_matrix((cat(vals, float), (cat(rows, np.int64), cat(cols, np.int64))), shape=(m, model.q))
    return Z, prior


def relative_condvar_rows(model, theta, Z) -> np.ndarray:
    """diag(Z Lambda M^-1 Lambda' Z') = ||L^-1 P Lambda' z_i||^2 per row of Z (identical rows
    solved once, BATCH columns per solve)."""
    Z = sp.csr_matrix(Z)
    m = Z.shape[0]
    if m == 0 or Z.nnz == 0:
        return np.zeros(m)
    first, inv = distinct_rows(Z)
    factor = model.pls(theta).factor                   # L at theta (held while used)
    A = (model.Lambda(theta).T @ Z[first].T).tocsc()
    out = np.empty(first.size)
    for s in range(0, first.size, BATCH):
        Y = np.asarray(factor.solve_L(A[:, s: s + BATCH].toarray())).reshape(A.shape[0], -1)
        out[s: s + BATCH] = (Y ** 2).sum(axis=0)
    return out[inv]


def distinct_rows(K) -> tuple[np.ndarray, np.ndarray]:
    """(the first of each distinct row of the sparse ``K``, the map of every row to its distinct one)."""
    K = sp.csr_matrix(K)
    m = K.shape[0]
    K.sum_duplicates()
    K.sort_indices()
    nnz = np.diff(K.indptr)
    width = max(int(nnz.max()), 1) if m else 1
    keys = np.full((m, 2 * width), -1.0)
    rowid = np.repeat(np.arange(m), nnz)
    pos = np.arange(K.nnz) - np.repeat(K.indptr[:-1], nnz)
    keys[rowid, pos] = K.indices
    keys[rowid, width + pos] = K.data
    _, first, inv = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first, np.asarray(inv).reshape(-1)


class PredictMixin(SimulateMixin):
    """Methods mixed into LmerResult: predict (here), simulate, bootstrap, confint (simulate.py)."""

    def predict(self, newdata=None, re_form=None, allow_new_levels: bool = False,
                interval: str = "none", level: float = 0.95, se_fit: bool = False):
        """lme4's ``predict``: a Series of predictions indexed as ``newdata`` (or the fit's rows).

        ``interval="confidence"`` or ``"prediction"`` returns a DataFrame ``fit, lwr, upr``
        (plus ``se_fit`` when asked); ``se_fit=True`` alone returns ``fit, se_fit``.  See the
        module docstring for exactly what each variance includes.  Rows with a missing value
        in a column the prediction uses are NaN (lme4's na.pass)."""
        if interval not in ("none", "confidence", "prediction"):
            raise SparseMixedError(f"interval must be 'none', 'confidence' or 'prediction', got {interval!r}")
        if not 0 < level < 1:
            raise SparseMixedError(f"level must be between 0 and 1, got {level!r}")
        model = self.model
        sel = _select_terms(self, re_form, newdata)
        if newdata is None:
            fr = self._frame()
            X, Zfull = self.model_matrices()
            Z = Zfull @ sp.diags(term_mask(model, sel))
            prior = np.zeros(X.shape[0])
            offset = fr.offset if fr.offset is not None else 0.0
            w = fr.weights if fr.weights is not None else np.ones(X.shape[0])
            index = model.data.index[fr.kept] if fr.kept is not None else model.data.index
            ok = np.ones(X.shape[0], bool)
            sub = None
        else:
            if model.fixed_spec is None:
                raise SparseMixedError("predict(newdata) needs a model built from a formula (sm.lmer)")
            data = pd.DataFrame(newdata) if isinstance(newdata, dict) else newdata
            if not isinstance(data, pd.DataFrame):
                raise DataError(f"newdata must be a pandas DataFrame, got {type(newdata).__name__}")
            index = data.index
            needed = newdata_columns(model, data, sel)
            offcol = model.offset_arg
            if offcol is not None:
                if not isinstance(offcol, str):
                    raise DataError("the model's offset was given as an array, so newdata cannot supply it; "
                                    "fit with offset='<column name>' and include that column in newdata")
                _check_columns({offcol}, data, f"the model's offset (offset={offcol!r})")
                needed.add(offcol)
            ok = ~data[sorted(needed)].isna().any(axis=1).to_numpy() if needed else np.ones(len(data), bool)
            sub = data.loc[ok] if not ok.all() else data
            if len(sub) == 0:                 # every row has a missing value
                cols = ["fit"] + (["lwr", "upr"] if interval != "none" else []) + (["se_fit"] if se_fit else [])
                out = pd.DataFrame(np.nan, index=index, columns=cols)
                return out["fit"] if len(cols) == 1 else out
            X = _fixed_design(model, sub)
            Z, prior = _random_design(self, sub, sel, allow_new_levels)
            offset = sub[offcol].to_numpy(dtype=float) if offcol is not None else 0.0
            formula_offset = (model.fixed_spec.offset_values(sub) if hasattr(model.fixed_spec, "offset_values")
                              else None)
            if formula_offset is not None:      # offset() terms of the formula, on newdata
                offset = offset + formula_offset
            wcol = model.weights_arg
            w = (sub[wcol].to_numpy(dtype=float) if isinstance(wcol, str) and wcol in sub.columns
                 else np.ones(len(sub)))
        fit = X @ self.beta + Z @ self.b + offset
        out = pd.DataFrame({"fit": np.full(len(index), np.nan)}, index=index)
        out.loc[ok, "fit"] = fit
        if interval == "none" and not se_fit:
            return out["fit"]
        V = self.vcov.to_numpy()
        var_fixed = ((X @ V) * X).sum(axis=1) if X.shape[1] else np.zeros(X.shape[0])
        if se_fit:
            out["se_fit"] = np.nan
            out.loc[ok, "se_fit"] = np.sqrt(var_fixed)
        if interval != "none":
            var = var_fixed
            if interval == "prediction":
                rel = relative_condvar_rows(model, self.theta, Z) + prior
                var = var + self.sigma ** 2 * (rel + 1.0 / w)
            half = norm.ppf(0.5 + level / 2.0) * np.sqrt(var)
            out["lwr"] = out["upr"] = np.nan
            out.loc[ok, "lwr"] = fit - half
            out.loc[ok, "upr"] = fit + half
            cols = ["fit", "lwr", "upr"] + (["se_fit"] if se_fit else [])
            out = out[cols]
            out.attrs.update(interval=interval, level=level)
        return out
