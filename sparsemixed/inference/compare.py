"""Model comparison (lme4's anova(m0, m1, ...)) and Nakagawa's R^2.

anova (likelihood-ratio tests of nested models, lme4 1.1-31's anova.merMod)
    REML fits are refitted by ML (refit=True, lme4's default); models ordered by npar
    deviance = -2 logLik,  AIC = deviance + 2 npar,  BIC = deviance + log(n) npar
    Chisq_k = 2 max(0, logLik_k - logLik_{k-1}),  Df_k = npar_k - npar_{k-1}
    Pr(>Chisq)_k = P(chi2_{Df_k} >= Chisq_k)   (NaN when Df_k = 0)
    (For a variance component the chi2 p-value is conservative: see vartests.lrt_variance.)

Nakagawa's R^2 (Nakagawa & Schielzeth 2013; Johnson 2014; Nakagawa, Johnson & Schielzeth 2017)
    s2_f = var(X beta)  (n - 1 denominator, as MuMIn and performance)
    s2_r = mean_i z_i' G z_i = sum_k mean_i z_ik' Sigma_k z_ik   (random slopes included)
    s2_e = sigma^2
    R2_marginal = s2_f / (s2_f + s2_r + s2_e),  R2_conditional = (s2_f + s2_r) / (s2_f + s2_r + s2_e)
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ArgumentError, SparseMixedError
from .vartests import _check_same_data, _same_fixed, lrt_variance

COLUMNS = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]


# -- internal refits: their warnings concern a fit the user did not make -------------------
def refit_ml(result, start=None):
    """``result``'s model refitted by maximum likelihood (lme4's refitML), its warnings caught
    rather than shown: (fit, warnings as (category, message) pairs)."""
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit = result.model.fit(REML=False, start=start)
    return fit, [(w.category, str(w.message)) for w in caught]


def reemit_refit_warnings(records, context: str, user_result=None, stacklevel: int = 3) -> list[str]:
    """Of an internal refit's caught warnings, show those that concern the user's model --
    the refit's convergence problems, and a singular refit of a fit that was not singular
    (the user was told of a singular fit when fitting) -- reworded to say which fit they come
    from (``context``), in their own category; the others are only returned.  Returns every
    caught message (to be recorded on the returned object)."""
    import warnings

    from ..errors import ConvergenceWarning, SingularFitWarning

    shown = set()
    for cat, msg in records:
        if not issubclass(cat, (ConvergenceWarning, SingularFitWarning)) or (cat, msg) in shown:
            continue
        if issubclass(cat, SingularFitWarning) and user_result is not None and user_result.is_singular:
            continue
        shown.add((cat, msg))
        warnings.warn(f"{context}: {msg}", cat, stacklevel=stacklevel + 1)
    return [msg for _, msg in records]


def quietly_refitted(result, run, what: str):
    """``run()`` (a profile of ``result``, or its profile intervals) with the warnings of the
    model refits it makes (the ML refit of a REML fit) caught: a singular refit of a fit that
    was not singular and the refits' convergence problems are shown reworded (the fit they
    concern named), the others only recorded; ``run()``'s own warnings (ProfileWarning ...)
    are shown as they are.  Returns run()'s value with ``attrs["refit_warnings"]`` (a list of
    the refits' messages).  (The refits are told apart by wrapping ``result.model.fit`` for
    the duration of the call.)"""
    import warnings

    model = getattr(result, "model", None)
    refit_caught = []
    patched = model is not None and hasattr(model, "fit")
    if patched:
        had = "fit" in vars(model)
        before = vars(model).get("fit")
        original = model.fit

        def fit_quietly(*args, **kwargs):
            with warnings.catch_warnings(record=True) as c:
                warnings.simplefilter("always")
                out = original(*args, **kwargs)
            refit_caught.extend(c)
            return out

        model.fit = fit_quietly
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            value = run()
    finally:
        if patched:
            if had:
                model.fit = before
            else:
                del model.fit
    for w in caught:
        warnings.warn(w.message, w.category, stacklevel=4)      # the user's call (via the method)
    msgs = reemit_refit_warnings([(w.category, str(w.message)) for w in refit_caught],
                                 f"{what}: the ML refit of this REML fit (lme4 profiles the ML deviance)", result,
                                 stacklevel=4)
    if hasattr(value, "attrs"):
        value.attrs["refit_warnings"] = msgs
    return value


def anova(*results, **kw):
    """lme4's ``anova``: likelihood-ratio tests of nested fitted models.

    ``anova(res0, res1, ...)`` returns a DataFrame (columns npar, AIC, BIC, logLik,
    deviance, Chisq, Df, Pr(>Chisq); one row per model, ordered by npar; index ``names``
    or "m0", "m1", ... in the order given).  REML fits are refitted by ML unless
    ``refit=False``, which keeps REML and is allowed only when all the models have the
    same fixed effects.  The models must be fitted to the same rows (same nobs and response).

    ``anova(res, **kw)`` with one model returns ``res.anova(**kw)`` (F tests of the fixed
    effects).  glmer fits (GlmerResult) go to :func:`sparsemixed.glmm.compare.anova`.
    """
    if not results:
        raise SparseMixedError("anova needs at least one fitted model")
    from ..glmm.result import GlmerResult

    if any(isinstance(r, GlmerResult) for r in results):     # glmer fits: glmm/compare.py
        from ..glmm.compare import anova as glmer_anova

        from ..results.display import whole

        return whole(glmer_anova(*results, **kw))
    if len(results) == 1:
        method = getattr(results[0], "anova", None)
        if method is None:
            raise SparseMixedError(f"{type(results[0]).__name__} has no anova() method for a single model")
        from ..results.display import whole

        return whole(method(**kw))
    refit = kw.pop("refit", True)
    names = kw.pop("names", None)
    if kw:
        raise ArgumentError(f"anova() got unexpected keyword arguments {sorted(kw)} for several models; "
                            "with several models it takes only refit= and names=")
    for r in results:
        if not hasattr(r, "model") or not hasattr(r, "loglik"):
            raise SparseMixedError(f"anova compares fitted models (LmerResult); got {type(r).__name__}")
    if names is None:
        names = [f"m{i}" for i in range(len(results))]
    names = [str(x) for x in names]
    if len(names) != len(results) or len(set(names)) != len(names):
        raise SparseMixedError(f"names must be {len(results)} distinct names, got {names}")
    _check_same_data(results)
    reml = [r.REML for r in results]
    refit_warnings = {}
    if refit:
        fits = []
        for name, r in zip(names, results):
            if not r.REML:
                fits.append(r)
                continue
            f, caught = refit_ml(r)
            fits.append(f)
            if caught:
                refit_warnings[name] = reemit_refit_warnings(
                    caught, f"anova's ML refit of {name} ({r.model.formula})", r, stacklevel=2)
    else:
        if any(reml) and not all(reml):
            raise SparseMixedError("with refit=False all models must be fitted by the same criterion; "
                                   "some are REML fits and some ML fits")
        if any(reml) and not all(_same_fixed(results[0], r) for r in results[1:]):
            raise SparseMixedError(
                "refit=False compares restricted likelihoods, which is valid only for models that differ "
                "only in their random effects; these models have different fixed effects. Use refit=True "
                "(ML likelihood-ratio test)")
        fits = list(results)
    npar = np.array([f.npar for f in fits])
    order = np.argsort(npar, kind="stable")
    fits = [fits[i] for i in order]
    npar = npar[order]
    ll = np.array([f.loglik for f in fits])
    chisq = np.r_[np.nan, 2.0 * np.maximum(0.0, np.diff(ll))]
    df = np.r_[np.nan, np.diff(npar)]
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(chisq, np.where(df > 0, df, 1)), np.nan)
    p[0] = np.nan
    n = fits[0].nobs
    dev = -2.0 * ll
    out = pd.DataFrame({"npar": npar, "AIC": dev + 2.0 * npar, "BIC": dev + math.log(n) * npar,
                        "logLik": ll, "deviance": dev, "Chisq": chisq, "Df": df, "Pr(>Chisq)": p},
                       index=[names[i] for i in order], columns=COLUMNS)
    out.attrs["formulas"] = {names[i]: f.model.formula for i, f in zip(order, fits)}
    out.attrs["refit"] = bool(refit and any(reml))
    out.attrs["fits"] = fits
    out.attrs["refit_warnings"] = refit_warnings       # per model name: the ML refit's warnings
    from ..results.display import whole

    return whole(out)


class CompareMixin:
    """Methods mixed into LmerResult: Nakagawa's R^2 and the boundary-corrected LRT."""

    def r2_nakagawa(self) -> pd.Series:
        """Marginal and conditional R^2 (module docstring) with the variance parts."""
        X, Z = self.model_matrices()
        var_f = float(np.var(X @ self.beta, ddof=1)) if X.shape[1] else 0.0
        ZG = (Z @ self.G).tocsr()
        var_r = float(np.asarray(ZG.multiply(Z).sum(axis=1)).mean())
        var_e = self.sigma ** 2
        tot = var_f + var_r + var_e
        return pd.Series({"marginal": var_f / tot, "conditional": (var_f + var_r) / tot,
                          "var_fixed": var_f, "var_random": var_r, "var_residual": var_e},
                         name="R2 (Nakagawa)")

    def test_variance_component(self, reduced=None, **kw):
        """Boundary-corrected LRT of this (full) model against ``reduced`` (None: no random
        effects); see :func:`sparsemixed.inference.vartests.lrt_variance`."""
        return lrt_variance(self, reduced, **kw)
