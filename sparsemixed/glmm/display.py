"""glmer's summary layout: family, formula, AIC/BIC/logLik/deviance, scaled residuals,
random effects (variances and SDs), fixed effects with z tests."""
from __future__ import annotations

from ..results.display import (aictab_lines, coefmat_lines, fit_messages, fixef_correlation_lines,
                               groups_line, random_effects_lines, residual_lines)


def _family_line(fam) -> str:
    return f" Family: {fam.name}  ( {fam.link.name} )"


def summary_text(res) -> str:
    m = res.model
    method = ("Laplace Approximation" if res.nAGQ == 1 else
              f"Adaptive Gauss-Hermite Quadrature (nAGQ = {res.nAGQ})" if res.nAGQ > 1 else
              "Laplace Approximation (nAGQ = 0: fixed effects inside PIRLS)")
    lines = [f"Generalized linear mixed model fit by maximum likelihood ({method}) ['glmerMod']",
             _family_line(m.family), f"Formula: {m.formula}", ""]
    lines += aictab_lines(["AIC", "BIC", "logLik", "-2*log(L)", "df.resid"],
                          [res.aic, res.bic, res.loglik, res.minus2loglik, res.nobs - res.npar])
    lines.append("")
    if res.mode.eta is not None:            # rows in memory (not a Dask build)
        lines.append("Scaled residuals: ")
        lines += residual_lines(res.residuals("pearson"))
        lines.append("")
    lines.append("Random effects:")
    lines += random_effects_lines(res, sigma=None)
    lines.append(groups_line(res))
    lines.append("")
    lines.append("Fixed effects:")
    lines += coefmat_lines(res.coef_table())
    lines += fixef_correlation_lines(res)
    msgs = fit_messages(res)
    if msgs:
        lines += [""] + msgs
    return "\n".join(lines)
