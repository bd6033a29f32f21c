"""Likelihood-ratio tests between nested glmer fits (lme4's anova for glmerMod objects).

    models ordered by npar;  deviance = -2 logLik,  AIC = deviance + 2 npar,  BIC = deviance + log(n) npar
    Chisq_k = 2 max(0, logLik_k - logLik_{k-1}),  Df_k = npar_k - npar_{k-1}
    Pr(>Chisq)_k = P(chi2_{Df_k} >= Chisq_k)   (NaN when Df_k = 0)

logLik is glmer's (Laplace for nAGQ <= 1, glmer's convention for nAGQ > 1), so the fits must
share nAGQ, and the rows and response (same nobs, y and prior weights).  (For a variance
component the chi2 p-value is conservative: the null value is on the boundary.)
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ArgumentError

COLUMNS = ["npar", "AIC", "BIC", "logLik", "deviance", "Chisq", "Df", "Pr(>Chisq)"]


def lrt_table(loglik, npar, nobs: int, names) -> pd.DataFrame:
    """lme4's anova table from the models' logLik and npar (any order; sorted by npar)."""
    loglik, npar = np.asarray(loglik, dtype=float), np.asarray(npar, dtype=float)
    order = np.argsort(npar, kind="stable")
    ll, k = loglik[order], npar[order]
    chisq = np.r_[np.nan, 2.0 * np.maximum(0.0, np.diff(ll))]
    df = np.r_[np.nan, np.diff(k)]
    with np.errstate(invalid="ignore"):
        p = np.where(df > 0, stats.chi2.sf(chisq, np.where(df > 0, df, 1)), np.nan)
    dev = -2.0 * ll
    return pd.DataFrame({"npar": k.astype(int), "AIC": dev + 2.0 * k, "BIC": dev + math.log(nobs) * k,
                         "logLik": ll, "deviance": dev, "Chisq": chisq, "Df": df, "Pr(>Chisq)": p},
                        index=[names[i] for i in order], columns=COLUMNS)


def _check_comparable(results) -> None:
    from .result import GlmerResult

    for r in results:
        if not isinstance(r, GlmerResult):
            raise ArgumentError(f"anova compares glmer fits with glmer fits (GlmerResult); got a "
                                f"{type(r).__name__} among them: a linear and a generalized model's likelihoods "
                                "are not nested")
    nagq = [r.nAGQ for r in results]
    if len(set(nagq)) > 1:
        raise ArgumentError(f"the fits use different nAGQ ({nagq}): their log-likelihoods are different "
                            "approximations (for nAGQ > 1 on another footing, see docs/glmm.md); refit them with "
                            "the same nAGQ")
    n = [r.nobs for r in results]
    if len(set(n)) > 1:
        raise ArgumentError(f"the fits were not made on the same data: numbers of observations {n} differ "
                            "(rows with missing values dropped from some?); fit all models to the same rows")
    r0 = results[0].model.response
    for i, r in enumerate(results[1:], 1):
        ri = r.model.response
        if ri is None or r0 is None:       # a Dask build keeps no rows: the numbers of observations must do
            continue
        if not (np.array_equal(ri.y, r0.y) and np.array_equal(ri.prior_weights, r0.prior_weights)):
            raise ArgumentError(f"the fits have different responses: model {i}'s response (or binomial trials) "
                                "differs from model 0's; likelihood-ratio tests need the same response on the "
                                "same rows")


def anova(*results, names=None, refit: bool = True) -> pd.DataFrame:
    """lme4's ``anova(m0, m1, ...)`` for glmer fits: a DataFrame (npar, AIC, BIC, logLik,
    deviance, Chisq, Df, Pr(>Chisq); one row per fit, ordered by npar; index ``names`` or
    "m0", "m1", ... in the order given).  ``refit`` is accepted for the linear models'
    signature and has no effect (glmer fits are maximum likelihood)."""
    if len(results) < 2:
        raise ArgumentError("anova of glmer fits needs at least two fits (likelihood-ratio tests between "
                            "nested models); a single glmer fit has no anova table yet")
    names = [f"m{i}" for i in range(len(results))] if names is None else [str(x) for x in names]
    if len(names) != len(results) or len(set(names)) != len(names):
        raise ArgumentError(f"names must be {len(results)} distinct names, got {names}")
    _check_comparable(results)
    out = lrt_table([r.loglik for r in results], [r.npar for r in results], results[0].nobs, names)
    order = [names.index(k) for k in out.index]
    out.attrs["formulas"] = {names[i]: results[i].model.formula for i in order}
    out.attrs["fits"] = [results[i] for i in order]
    out.attrs["refit"] = False
    return out
