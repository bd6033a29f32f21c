"""t- and F-tests of the fixed effects with denominator degrees of freedom (lmerTest).

    coef_table(ddf)   per coefficient beta_j: l = e_j, t = beta_j / SE, df by
                      Satterthwaite (satterthwaite.py) or Kenward-Roger (kenward_roger.py)
    anova(ddf, type)  per term of the fixed formula, an F-test of L_T beta = 0
    drop1(ddf)        lmerTest's drop1: an F-test of each term contained in no other (R's
                      drop.scope) by its own coefficients, L_T = rows of I (ranova.py)

Contrasts L_T, as lmerTest builds them:

  type 1 (sequential): X'X = L D L' (Doolittle, L unit lower triangular); L_T = the rows
      of L' belonging to term T's columns (entries below 1e-6 set to 0).
  type 2 (car's marginality, lmerTest's anova(type = 2)): a term T contained in no other
      term (the variables coded 1 of T a proper subset of those of T', the same numeric
      variables; as for type 3) is tested by its own coefficients, L_T = rows of I for T's
      columns; otherwise X's columns are reordered as [the others, T, the terms containing
      T], L' of the Doolittle factor of the reordered X'X taken at T's rows (entries below
      1e-6 set to 0) and its columns put back in X's order: T adjusted for every term
      that does not contain it.
  type 3 (SAS type III, contr.treatment coding): rdX = [1, per term all-level (dummy)
      columns], L = (X^+ rdX)' (rows: rdX's columns, columns: X's), zapsmall'ed; from the
      highest-order terms down, the columns of a term T contained in other terms T' (the
      variables of T a proper subset of those of T', the same numeric variables) are
      replaced by their residuals on the columns of those T'; L_T = the columns of T,
      restricted to the rows named as X's columns, transposed, zero rows dropped.
      With at most one term (or one column) type 1 is used.

The Satterthwaite and Kenward-Roger pieces are computed once per result and cached.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..errors import SparseMixedError
from . import kenward_roger as kr
from . import satterthwaite as satt

COEF_COLS = ["Estimate", "Std. Error", "df", "t value", "Pr(>|t|)"]
ANOVA_COLS = ["Sum Sq", "Mean Sq", "NumDF", "DenDF", "F value", "Pr(>F)"]


def _method(ddf) -> str | None:
    if ddf is None or str(ddf).lower() == "lme4":
        return None
    key = str(ddf).lower().replace("_", "-").replace(" ", "-")
    if key in ("satterthwaite", "satt"):
        return "Satterthwaite"
    if key in ("kenward-roger", "kr", "kenwardroger"):
        return "Kenward-Roger"
    raise SparseMixedError(f"ddf must be None, 'Satterthwaite' or 'Kenward-Roger', got {ddf!r}")


def _anova_type(type) -> int:
    key = str(type).upper()
    if key in ("1", "I"):
        return 1
    if key in ("2", "II"):
        return 2
    if key in ("3", "III"):
        return 3
    raise SparseMixedError(f"type must be 1, 2 or 3 (also 'I', 'II', 'III'), got {type!r}")


def _zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's zapsmall."""
    mx = float(np.max(np.abs(x))) if x.size else 0.0
    if not mx > 0:
        return x
    return np.round(x, max(0, digits - int(math.ceil(math.log10(mx)))))


class DdfMixin:
    """Methods mixed into LmerResult: coef_table, anova, contest."""

    # -- cached pieces -----------------------------------------------------------------
    def _ddf_cache(self) -> dict:
        return self.__dict__.setdefault("_ddf_cache_", {})

    def _satt(self):
        c = self._ddf_cache()
        if "satt" not in c:
            c["satt"] = satt.pieces(self.model, self.theta, self.sigma, self.REML)
        return c["satt"]

    def _kr(self):
        if not self.REML:
            raise SparseMixedError(
                "Kenward-Roger's method is only available for REML model fits (as in lmerTest); "
                "refit with REML=True or use ddf='Satterthwaite'")
        c = self._ddf_cache()
        if "kr" not in c:
            c["kr"] = kr.kr_adjust(self.model, self.theta, self.sigma)
        return c["kr"]

    def vcov_kr(self) -> pd.DataFrame:
        """Kenward-Roger's adjusted covariance of beta-hat (pbkrtest's vcovAdj)."""
        names = self.model.fixef_names
        return pd.DataFrame(self._kr().PhiA, index=names, columns=names)

    # -- t-tests -------------------------------------------------------------------------
    def coef_table(self, ddf: str | None = None) -> pd.DataFrame:
        """lmerTest's summary(fit, ddf=...)$coefficients; ddf=None gives lme4's table
        (Estimate, Std. Error, t value).  Kenward-Roger reports the adjusted Std. Error."""
        names = self.model.fixef_names
        method = _method(ddf)
        if method is None:
            se = self.fixef_se.to_numpy()
            return pd.DataFrame({"Estimate": self.beta, "Std. Error": se, "t value": self.beta / se},
                                index=pd.Index(names))
        return self.contest(np.eye(len(names)), ddf=method, joint=False).set_axis(pd.Index(names))

    def contest(self, L, ddf: str = "Satterthwaite", joint: bool = True) -> pd.DataFrame:
        """Tests of contrasts L beta = 0 (lmerTest's contest): ``joint=False`` one t-test per
        row of L (columns as coef_table), ``joint=True`` one F-test (as an anova row)."""
        p = len(self.model.fixef_names)
        L = np.atleast_2d(np.asarray(L, float))
        if L.shape[1] != p:
            raise SparseMixedError(f"L must have {p} columns (one per fixed effect), got {L.shape[1]}")
        method = _method(ddf) or "Satterthwaite"
        if not joint:
            if method == "Satterthwaite":
                rows = [satt.contest1d(self._satt(), self.beta, l) for l in L]
            else:
                rows = [kr.contest1d(self._kr(), self.beta, l) for l in L]
            return pd.DataFrame(rows, columns=COEF_COLS)
        row = self._ftest(L, method)
        return pd.DataFrame([row] if row else [], columns=ANOVA_COLS)

    def _ftest(self, L, method: str) -> dict | None:
        if L.shape[0] == 0:
            return None
        if method == "Satterthwaite":
            return satt.contest_md(self._satt(), self.beta, L)
        F, q, df2, scaling = kr.ftest(self._kr(), self.beta, L)
        return satt.f_row(F, q, df2, self.sigma, scaling)

    # -- F-tests per term ----------------------------------------------------------------
    def anova(self, ddf: str = "Satterthwaite", type=3) -> pd.DataFrame:
        """lmerTest's anova(fit, type=, ddf=): one F-test per term of the fixed formula.
        ``type`` 3 (default; SAS type III), 2 (car's marginality: each term adjusted for the
        terms that do not contain it) or 1 (sequential); ``ddf`` "Satterthwaite" or
        "Kenward-Roger".  Columns Sum Sq, Mean Sq, NumDF, DenDF, F value, Pr(>F)."""
        method = _method(ddf) or "Satterthwaite"
        contrasts = self._term_contrasts(_anova_type(type))
        names = getattr(getattr(self.model, "fixed_spec", None), "names", None)   # columns aliased for formulaic
        rows, index = [], []
        for name, L in contrasts.items():
            row = self._ftest(L, method)
            rows.append(row if row else {c: np.nan for c in ANOVA_COLS})
            index.append(names.restore(name) if names is not None else name)
        out = pd.DataFrame(rows, index=pd.Index(index, dtype=object), columns=ANOVA_COLS)
        out.attrs["heading"] = (f"Type {'I' * _anova_type(type)} Analysis of Variance Table with "
                                f"{method}'s method")
        return out

    def _terms_info(self):
        m = self.model
        spec = getattr(m, "fixed_spec", None)
        if spec is None:
            raise SparseMixedError("anova needs the fixed-effects formula; this model was built "
                                   "from arrays (use contest(L) with explicit contrasts)")
        kept = {int(j): i for i, j in enumerate(m.fixef_cols)}
        terms, cols = [], {}
        for term, sl in spec.term_slices.items():
            label = str(term)
            if label == "1":
                continue
            terms.append(term)
            cols[label] = [kept[j] for j in range(sl.start, sl.stop) if j in kept]
        return spec, terms, cols

    def _term_contrasts(self, type: int) -> dict:
        spec, terms, cols = self._terms_info()
        p = len(self.model.fixef_names)
        has_int = "(Intercept)" in self.model.fixef_names
        if p == 0 or (p == 1 and has_int) or not terms:
            return {}
        if type == 3 and len(terms) > 1:
            return _type3(self, spec, terms, cols)
        if type == 2 and len(terms) > 1 and p > 1:
            return _type2(self, spec, terms, cols)
        return _type1(self, cols)


def _xtx(res) -> np.ndarray:
    """X'X, unweighted (lmerTest's crossprod(model.matrix(fit)))."""
    m = res.model
    if m.weights_arg is not None:
        X = res.model_matrices()[0]
        return X.T @ X
    return m.crossprod.XtX


def _doolittle_t(XtX) -> np.ndarray:
    """L' of lmerTest's doolittle(X'X) (X'X = L D L', L unit lower triangular), entries
    below 1e-6 set to 0."""
    R = np.linalg.cholesky(XtX).T                      # X'X = R'R, R upper
    U = R / np.diag(R)[:, None]                        # Doolittle's L'
    U[np.abs(U) < 1e-6] = 0.0
    return U


def _type1(res, cols) -> dict:
    U = _doolittle_t(_xtx(res))
    return {name: U[c] for name, c in cols.items()}


def containment(terms, spec) -> dict:
    """lmerTest's containment(): per term label, the labels of the terms that contain it
    (its variables coded 1 a proper subset of theirs, the same numeric variables)."""
    codes = _factor_codes(terms, spec)
    labels = [str(t) for t in terms]
    return {T: [T2 for T2 in labels if codes[T][0] <= codes[T2][0] and codes[T2][0] - codes[T][0]
                and codes[T][1] == codes[T2][1]] for T in labels}


def _type2(res, spec, terms, cols) -> dict:
    """lmerTest's get_contrasts_type2_unfolded (module docstring)."""
    XtX = _xtx(res)
    p = XtX.shape[0]
    contained = containment(terms, spec)
    out = {}
    for T in (str(t) for t in terms):
        if not contained[T]:
            out[T] = np.eye(p)[cols[T]]
            continue
        within = list(cols[T]) + [j for T2 in contained[T] for j in cols[T2] if j not in cols[T]]
        order = [j for j in range(p) if j not in within] + within
        U = _doolittle_t(XtX[np.ix_(order, order)])
        back = np.argsort(order)                           # new position of each X column
        rows = [back[j] for j in cols[T]]
        out[T] = U[rows][:, back]
    return out


def _factor_codes(terms, spec):
    """R's factor matrix: variable v of term T is coded 1 if T without v is a term (or T is a
    main effect), else 2.  Returns per term label: (variables coded 1, numeric variables)."""
    labels = {frozenset(f.expr for f in t.factors) for t in terms} | {frozenset()}
    out = {}
    for t in terms:
        fs = [f.expr for f in t.factors]
        whole = frozenset(fs)
        vars1 = {v for v in fs if len(fs) == 1 or (whole - {v}) in labels}
        numerics = {v for v in vars1 if spec.encoder_state.get(v, ("numerical",))[0].value == "numerical"}
        out[str(t)] = (vars1, numerics)
    return out


def _rdx(res, spec, terms):
    """lmerTest's get_rdX: intercept plus each term's all-level columns, with R's names."""
    import formulaic

    from ..formula.design import r_name

    fr = res._frame()
    aliases = getattr(spec, "names", None)          # columns aliased for formulaic (formula/names.py)
    data = aliases.frame(res.model.data) if aliases is not None else res.model.data
    blocks, names = [], []
    if "(Intercept)" in res.model.fixef_names:
        blocks.append(np.ones((fr.n, 1)))
        names.append("(Intercept)")
    for t in terms:
        # on every row, then the fit's rows: stateful transforms (scale, poly) learn from all
        # rows, as the fit's encoding did (formula/design.py)
        mm = formulaic.model_matrix("0 + " + str(t), data, ensure_full_rank=False, na_action="ignore")
        a = np.asarray(mm, float)
        blocks.append(a[fr.kept] if fr.kept is not None else a)
        names.extend(r_name(c, aliases) for c in mm.columns)
    return np.hstack(blocks), names


def _type3(res, spec, terms, cols) -> dict:
    m = res.model
    for expr, (kind, state) in spec.encoder_state.items():
        con = getattr(state.get("contrasts"), "contrasts", None) if kind.value == "categorical" else None
        if con is not None and type(con).__name__ != "TreatmentContrasts":
            raise SparseMixedError(
                f"type 3 tests are implemented for treatment contrasts (formulaic's default); factor "
                f"{expr!r} uses {type(con).__name__}. Use type=1, or the default coding")
    X = res.model_matrices()[0]
    rdX, rnames = _rdx(res, spec, terms)
    L = _zapsmall(np.linalg.lstsq(X, rdX, rcond=None)[0].T)     # rows: rdX cols, cols: X cols
    codes = _factor_codes(terms, spec)
    labels = [str(t) for t in terms]
    order = {str(t): len(t.factors) for t in terms}
    for T in sorted(labels, key=lambda s: -order[s]):
        v1, n1 = codes[T]
        contains = [T2 for T2 in labels if v1 <= codes[T2][0] and codes[T2][0] - v1 and n1 == codes[T2][1]]
        if contains:
            Xc = L[:, [j for T2 in contains for j in cols[T2]]]
            Y = L[:, cols[T]]
            coef = np.linalg.lstsq(Xc, Y, rcond=None)[0]
            L[:, cols[T]] = _zapsmall(Y - Xc @ coef)
    pos = {n: i for i, n in enumerate(rnames)}
    missing = [n for n in m.fixef_names if n not in pos]
    if missing:
        raise SparseMixedError(
            f"type 3 contrasts: coefficient(s) {missing} do not match the all-level coding of their "
            "terms (non-default contrasts?). Use type=1")
    L = L[[pos[n] for n in m.fixef_names]]                      # p x p
    out = {}
    for T in labels:
        LT = L[:, cols[T]].T
        out[T] = LT[np.abs(LT).sum(axis=1) > 1e-8]
    return out
