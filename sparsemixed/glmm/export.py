"""Tidy and machine-readable forms of a glmer fit (as results/export.py for lmer fits):

    to_dict   every estimate as plain Python data (json.dumps-able; NaN/inf -> None)
    to_frame  one row per estimate (broom.mixed's tidy): effect, group, term, estimate,
              std_error, statistic (z = estimate / std_error), p_value (2 Phi(-|z|)) for the fixed
              effects; sd__/cor__ rows (ran_pars, on the sd / correlation scale) for the random effects
    html      a compact summary for notebooks (_repr_html_)
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from ..results.export import _num, ranef_records


def _text(v):
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)


def _method(res) -> str:
    return ("Laplace" if res.nAGQ == 1 else f"adaptive Gauss-Hermite quadrature (nAGQ = {res.nAGQ})"
            if res.nAGQ > 1 else "Laplace, nAGQ = 0")


def to_dict(res, ranef: bool = True) -> dict:
    m = res.model
    tab = res.coef_table()
    V = res.vcov()
    opt = res.optsummary
    out = {
        "formula": m.formula, "family": m.family.name, "link": m.family.link.name, "nAGQ": int(res.nAGQ),
        "method": _method(res), "nobs": int(res.nobs), "ngroups": {k: int(v) for k, v in res.ngroups.items()},
        "objective": _num(res.objective), "minus2loglik": _num(res.minus2loglik), "loglik": _num(res.loglik),
        "aic": _num(res.aic), "bic": _num(res.bic), "deviance": _num(res.deviance()),
        "df_resid": int(res.nobs - res.npar), "theta": [_num(t) for t in res.theta],
        "is_singular": bool(res.is_singular), "converged": bool(opt.converged) if opt is not None else None,
        "fixef": [{"term": k, "estimate": _num(r["Estimate"]), "std_error": _num(r["Std. Error"]),
                   "z_value": _num(r["z value"]), "p_value": _num(r["Pr(>|z|)"])} for k, r in tab.iterrows()],
        "vcov": {"names": list(V.index), "matrix": [[_num(x) for x in row] for row in V.to_numpy()]},
        "varcorr": [{k: (_num(v) if k in ("vcov", "sdcor") else _text(v)) for k, v in row.items()}
                    for row in res.varcorr.to_dict("records")],
        "optimizer": None if opt is None else {
            "method": opt.method, "evaluations": int(opt.feval), "seconds": _num(opt.seconds),
            "returnvalue": str(opt.returnvalue)},
        "dropped_fixef": list(m.lmm.dropped_fixef),
    }
    if ranef:
        out["ranef"] = ranef_records(res.ranef_frame())
    return out


def to_frame(res) -> pd.DataFrame:
    rows = [("fixed", None, term, r["Estimate"], r["Std. Error"], r["z value"], r["Pr(>|z|)"])
            for term, r in res.coef_table().iterrows()]
    for r in res.varcorr.itertuples(index=False):
        term = f"sd__{r.var1}" if _text(r.var2) is None else f"cor__{r.var1}.{r.var2}"
        rows.append(("ran_pars", r.grp, term, r.sdcor, np.nan, np.nan, np.nan))
    return pd.DataFrame(rows, columns=["effect", "group", "term", "estimate", "std_error", "statistic", "p_value"])


def html(res) -> str:
    """The summary for notebooks: AIC table, random effects (Variance, Std.Dev., Corr), the
    fixed effects' z tests, the fit's warnings (results/export.py's fit_html)."""
    from ..results.display import aictab_lines
    from ..results.export import _aic_html, fit_html

    m = res.model
    crit = _aic_html(aictab_lines(["AIC", "BIC", "logLik", "-2*log(L)", "df.resid"],
                                  [res.aic, res.bic, res.loglik, res.minus2loglik, res.nobs - res.npar]))
    return fit_html(res, f"Generalized linear mixed model fit by maximum likelihood ({_method(res)})", crit,
                    family=f"{m.family.name} ({m.family.link.name})")
