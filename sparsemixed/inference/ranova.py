"""Single-term deletions: lmerTest's ranova (random effects) and drop1 (fixed effects), and
lme4's drop1 for lmer and glmer fits.

ranova(res)  lmerTest's ranova(fit, reduce.terms = TRUE).  The model is written with its
    random-effects terms as lme4's findbars gives them (``||`` and ``a/b`` expanded:
    ``(1 + x || g)`` is ``(1 | g) + (0 + x | g)``, ``(1 | a/b)`` is ``(1 | b:a) + (1 | a)``).
    For each term ``(e | g)`` in turn: if e has no term but the intercept, the term is
    removed (row ``(1 | g)``); else for each term s of e contained in no other (R's
    drop.scope) the term becomes ``(e - s | g)``, ``(1 | g)`` when s is e's only term
    (row ``s in (e | g)``).  Each reduced model is refitted (REML or ML as the fit); one
    without random effects is the linear model, whose (restricted) log-likelihood is the
    criterion at theta = 0 (M = I there, so it is lm's logLik(REML =) exactly).
        npar = p + ntheta + 1,  AIC = -2 logLik + 2 npar,
        LRT = 2 (logLik_full - logLik_reduced),  Df = npar_full - npar_reduced,
        Pr(>Chisq) = P(chi2_Df > LRT)          (conservative for a variance on its boundary)
    One deviation: a term without intercept whose only term is dropped, ``(0 + x | g)``,
    is removed (lmerTest turns it into ``(1 | g)``, a model that does not nest in the fit,
    with Df 0 when it is the only term of g).  For ``(x || g)`` the two agree.

drop1(res)  lmerTest's drop1(fit, ddf =): for each fixed term contained in no other (R's
    drop.scope: its variables are not all in another term), the F-test of its own
    coefficients, L = rows of I (ddf.py; Satterthwaite or Kenward-Roger).  A model with
    rank-deficient X uses L = a basis of the rows of (I - P_X0) X, X0 the columns without
    the term's (the same test as the reduced model's).
    ``ddf="lme4"``: lme4's drop1(fit, test = "Chisq"): each term removed (update
    ``. ~ . - term``), all models fitted by ML; npar = the parameters removed,
    AIC = -2 logLik + 2 npar(model), LRT = 2 (logLik_full - logLik_reduced), Pr(Chi).

drop1(glmer fit)  test="Chisq" is lme4's drop1 as above (Laplace/AGQ logLik, no refit
    criterion to change); test="Wald": chi2 = (L beta)' (L V L')^-1 (L beta) with V the
    fit's vcov, Df = the term's columns, Pr(>Chisq) (car's Anova(type = 2) gives these for
    terms contained in no other); test="none": npar and AIC only.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ArgumentError, SparseMixedError
from .update import deparse, parse, terms as r_terms, update_formula

RANOVA_COLS = ["npar", "logLik", "AIC", "LRT", "Df", "Pr(>Chisq)"]
WALD_COLS = ["Chisq", "Df", "Pr(>Chisq)"]


# -- ranova ---------------------------------------------------------------------------------
def _bar_terms(res) -> list:
    """The random-effects terms as lme4's findbars deparses them: [(lhs, group)]."""
    out = []
    for b in res.model.parsed.bars:
        out.append((deparse(parse(b.expr)), b.group_name))
    return out


def _reductions(lhs: str, group: str) -> list:
    """lmerTest's get_newforms for one term (lhs | group): [(row name, replacement or None)]."""
    form = f"{lhs} | {group}"
    t = r_terms("~" + lhs)
    scope = t.drop_scope()
    if not t.terms or not scope:
        return [(f"({form})", None)]
    out = []
    labels = t.labels
    for s in scope:
        if set(labels) == {s}:
            new = "(1 | " + group + ")" if t.intercept else None      # (0 + x | g): removed (docstring)
        else:
            rhs = r_terms(f"~ ({lhs}) - ({s})").rhs()
            new = f"({rhs} | {group})"
        out.append((f"{s} in ({form})", new))
    return out


def _logLik_lm(res) -> float:
    """(Restricted) log-likelihood of the fit's fixed part without random effects: the
    criterion at theta = 0 (module docstring)."""
    m = res.model
    return -0.5 * float(m.objective(np.zeros_like(res.theta), REML=res.REML))


def ranova(res, reduce_terms: bool = True) -> pd.DataFrame:
    """lmerTest's ranova (module docstring): rows ``<none>`` and one per reduction, columns
    npar, logLik, AIC, LRT, Df, Pr(>Chisq); ``.attrs`` heading and formulae."""
    from .update import fit_formula

    m = res.model
    if m.formula is None or m.parsed is None:
        raise ArgumentError("ranova() needs a model built from a formula")
    bars = _bar_terms(res)
    if not bars:
        raise SparseMixedError("ranova: the model has no random-effects term")
    fe = m.parsed.fixed
    full = update_formula(m.formula, ". ~ " + " + ".join([f"({fe})"] + [f"({lhs} | {g})" for lhs, g in bars]))
    rows, forms = [("<none>", res.npar, res.loglik)], {}
    for lhs, g in bars:
        reds = _reductions(lhs, g) if reduce_terms else [(f"({lhs} | {g})", None)]
        for name, new in reds:
            upd = f". ~ . - ({lhs} | {g})" + (f" + {new}" if new else "")
            form = update_formula(full, upd)
            forms[name] = form
            reduced = r_terms(form)
            if not any(reduced.is_bar(t) for t in reduced.terms):           # the linear model
                rows.append((name, m.p + 1, _logLik_lm(res)))
                continue
            fit = fit_formula(res, update_formula(full, upd, model=True))
            if fit.nobs != res.nobs:
                raise SparseMixedError(f"ranova: the reduced model {form!r} uses {fit.nobs} rows, the fit "
                                       f"{res.nobs} (missing values in a variable of the removed term?): "
                                       "remove the rows with missing values first")
            rows.append((name, fit.npar, fit.loglik))
    names, npar, ll = zip(*rows)
    npar, ll = np.array(npar, float), np.array(ll, float)
    lrt = np.r_[np.nan, 2 * (ll[0] - ll[1:])]
    df = np.r_[np.nan, npar[0] - npar[1:]]
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(lrt, np.where(df > 0, df, 1)), np.nan)
    out = pd.DataFrame({"npar": npar.astype(int), "logLik": ll, "AIC": -2 * ll + 2 * npar, "LRT": lrt,
                        "Df": df, "Pr(>Chisq)": p}, index=pd.Index(names, dtype=object), columns=RANOVA_COLS)
    out.attrs["heading"] = f"ANOVA-like table for random-effects: Single term deletions\nModel: {full}"
    out.attrs["formulae"] = forms
    return out


# -- drop1 ----------------------------------------------------------------------------------
def _fixed_terms(model):
    """[(label, frozenset of the term's variables, [kept column positions], slice of all
    columns)] of the fixed formula (the LinearMixedModel's spec), intercept excluded."""
    spec = getattr(model, "fixed_spec", None)
    if spec is None:
        raise ArgumentError("drop1() needs a model built from a formula")
    kept = {int(j): i for i, j in enumerate(model.fixef_cols)}
    out = []
    for term, sl in spec.term_slices.items():
        label = str(term)
        if label == "1":
            continue
        vars_ = frozenset(deparse(parse(f.expr)) for f in term.factors)
        out.append((label, vars_, [kept[j] for j in range(sl.start, sl.stop) if j in kept], sl))
    return out


def drop_scope(model) -> list:
    """R's drop.scope of the fixed formula: the terms whose variables are in no other term."""
    ts = _fixed_terms(model)
    return [t for t in ts if not any(t[1] < u[1] for u in ts)]


def _scope(model, scope):
    terms = drop_scope(model)
    if scope is None:
        return terms
    scope = [scope] if isinstance(scope, str) else list(scope)
    by = {t[0]: t for t in terms}
    every = {t[0] for t in _fixed_terms(model)}
    bad = [s for s in scope if s not in by]
    if bad:
        what = "not terms of the model" if any(s not in every for s in bad) else "contained in other terms"
        raise ArgumentError(f"drop1: {bad} are {what}; only terms contained in no other can be dropped: "
                            f"{[t[0] for t in terms]}")
    return [by[s] for s in scope]


def _contrast(res, cols, sl) -> np.ndarray:
    """L for dropping a term: rows of I, or for a rank-deficient X a basis of the rows of
    (I - P_X0) X (module docstring)."""
    m = res.model
    p = len(m.fixef_names)
    if not m.dropped_fixef:
        return np.eye(p)[cols]
    X = res.model_matrices()[0]
    X0 = np.delete(_all_columns(res), np.arange(sl.start, sl.stop), axis=1)
    U, s0, _ = np.linalg.svd(X0, full_matrices=False)
    Q = U[:, s0 > 1e-10 * s0.max()] if s0.size and s0.max() > 0 else U[:, :0]
    _, s1, Vt = np.linalg.svd(X - Q @ (Q.T @ X), full_matrices=False)
    rank = int(np.sum(s1 > 1e-8 * max(1.0, np.linalg.norm(X))))
    return Vt[:rank]


def _all_columns(res) -> np.ndarray:
    """X with every encoded column (also those dropped as aliased), for the fitted rows."""
    m = res.model
    fr = res._frame()
    data = m.data
    data = data.loc[fr.kept] if fr.kept is not None else data
    return np.asarray(m.fixed_spec.get_model_matrix(data), float)


def drop1_lmer(res, scope=None, ddf: str = "Satterthwaite", test: str = "Chisq") -> pd.DataFrame:
    """lmerTest's drop1 (F tests, ``ddf`` Satterthwaite or Kenward-Roger) or lme4's
    (``ddf="lme4"``: ML refits; module docstring)."""
    from .ddf import ANOVA_COLS, _method

    m = res.model
    if ddf is None or str(ddf).lower() == "lme4":
        return _drop1_refits(res, scope, test, ml=True)
    method = _method(ddf)
    rows, index = [], []
    for label, _, cols, sl in _scope(m, scope):
        L = _contrast(res, cols, sl)
        row = res._ftest(L, method) if L.shape[0] else None
        rows.append(row if row else {c: np.nan for c in ANOVA_COLS})
        index.append(label)
    out = pd.DataFrame(rows, index=pd.Index(index, dtype=object), columns=ANOVA_COLS)
    out.attrs["heading"] = f"Single term deletions using {method}'s method:\nModel: {m.formula}"
    return out


def _drop1_refits(res, scope, test: str, ml: bool) -> pd.DataFrame:
    """lme4's drop1.merMod: refits without each term; ML log-likelihoods."""
    from ..glmm.result import GlmerResult
    from .update import refit_glmer, refit_lmer

    test = str(test)
    if test not in ("Chisq", "none"):
        raise ArgumentError(f"drop1: test must be 'Chisq' or 'none' here, got {test!r}")
    glmm = isinstance(res, GlmerResult)
    m = res.model
    lmm = m.lmm if glmm else m
    base = res if glmm or not res.REML else res.model.fit(REML=False)
    rows = [("<none>", base.npar, base.loglik)]
    for label, *_ in _scope(lmm, scope):
        upd = f". ~ . - ({label})"
        fit = refit_glmer(res, upd) if glmm else refit_lmer(res, upd, REML=False)
        if fit.nobs != res.nobs:
            raise SparseMixedError(f"drop1: without {label!r} the model uses {fit.nobs} rows, the fit {res.nobs} "
                                   "(missing values?): remove the rows with missing values first")
        rows.append((label, fit.npar, fit.loglik))
    names, npar, ll = zip(*rows)
    npar, ll = np.array(npar, float), np.array(ll, float)
    dfs = np.r_[np.nan, npar[0] - npar[1:]]
    out = pd.DataFrame({"npar": dfs, "AIC": -2 * ll + 2 * npar}, index=pd.Index(names, dtype=object))
    if test == "Chisq":
        lrt = np.r_[np.nan, 2 * (ll[0] - ll[1:])]
        with np.errstate(invalid="ignore"):
            out["LRT"] = lrt
            out["Pr(Chi)"] = np.where(dfs > 0, stats.chi2.sf(lrt, np.where(dfs > 0, dfs, 1)), np.nan)
    out.attrs["heading"] = f"Single term deletions\nModel: {m.formula}"
    return out


def drop1_glmer(res, scope=None, test: str = "Chisq") -> pd.DataFrame:
    """lme4's drop1 for a glmer fit (``test`` "Chisq": LRT by refits; "none": AIC only) or
    Wald chi-square tests (``test="Wald"``; module docstring)."""
    if str(test).lower() != "wald":
        return _drop1_refits(res, scope, test, ml=True)
    V = res.vcov().to_numpy()
    beta = res.beta
    rows, index = [], []
    for label, _, cols, _sl in _scope(res.model.lmm, scope):
        L = np.eye(len(beta))[cols]
        if not len(cols):
            rows.append((np.nan, 0, np.nan))
        else:
            est = L @ beta
            chisq = float(est @ np.linalg.solve(L @ V @ L.T, est))
            rows.append((chisq, len(cols), float(stats.chi2.sf(chisq, len(cols)))))
        index.append(label)
    out = pd.DataFrame(rows, index=pd.Index(index, dtype=object), columns=WALD_COLS)
    out["Df"] = out["Df"].astype(int)
    out.attrs["heading"] = f"Single term deletions (Wald chi-square tests)\nModel: {res.model.formula}"
    return out

