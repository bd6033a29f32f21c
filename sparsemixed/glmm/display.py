"""glmer's summary layout: family, formula, AIC/BIC/logLik/deviance, scaled residuals,
random effects (variances and SDs), fixed effects with z tests."""
from __future__ import annotations

import numpy as np


def _family_line(fam) -> str:
    return f" Family: {fam.name}  ( {fam.link.name} )"


def summary_text(res) -> str:
    m = res.model
    method = ("Laplace Approximation" if res.nAGQ == 1 else
              f"Adaptive Gauss-Hermite Quadrature (nAGQ = {res.nAGQ})" if res.nAGQ > 1 else
              "Laplace Approximation (nAGQ = 0: fixed effects inside PIRLS)")
    lines = [f"Generalized linear mixed model fit by maximum likelihood ({method}) ['glmerMod']",
             _family_line(m.family), f"Formula: {m.formula}", ""]
    lines.append(f"{'AIC':>9} {'BIC':>9} {'logLik':>9} {'-2*log(L)':>9} {'df.resid':>9}")
    lines.append(f"{res.aic:9.1f} {res.bic:9.1f} {res.loglik:9.1f} {res.minus2loglik:9.1f} "
                 f"{res.nobs - res.npar:9d}")
    lines.append("")
    if res.mode.eta is not None:            # rows in memory (not a Dask build)
        r = res.residuals("pearson")
        q = np.quantile(r, [0, 0.25, 0.5, 0.75, 1.0])
        lines.append("Scaled residuals: ")
        lines.append(f"{'Min':>9} {'1Q':>9} {'Median':>9} {'3Q':>9} {'Max':>9}")
        lines.append(" ".join(f"{v:9.4f}" for v in q))
        lines.append("")
    lines.append("Random effects:")
    vc = res.varcorr
    lines.append(f" {'Groups':<12} {'Name':<14} {'Variance':>10} {'Std.Dev.':>9} {'Corr':>6}")
    for grp, sub in vc.groupby("grp", sort=False):
        first = True
        var = sub[sub["var2"].isna()]
        cors = sub[sub["var2"].notna()]
        for _, row in var.iterrows():
            c = cors[cors["var2"] == row["var1"]]["sdcor"].to_numpy()
            corr = " ".join(f"{v:6.2f}" for v in c)
            lines.append(f" {grp if first else '':<12} {row['var1']:<14} {row['vcov']:10.4g} {row['sdcor']:9.4g} {corr}")
            first = False
    groups = "; ".join(f"{g}, {n}" for g, n in res.ngroups.items())
    lines.append(f"Number of obs: {res.nobs}, groups:  {groups}")
    lines.append("")
    lines.append("Fixed effects:")
    tab = res.coef_table()
    w = max([len(n) for n in tab.index] + [11])
    lines.append(f"{'':<{w}} {'Estimate':>10} {'Std. Error':>10} {'z value':>8} {'Pr(>|z|)':>10}")
    for name, row in tab.iterrows():
        p = row["Pr(>|z|)"]
        ps = f"{p:10.3g}" if p >= 2e-16 else f"{'<2e-16':>10}"
        lines.append(f"{name:<{w}} {row['Estimate']:10.5g} {row['Std. Error']:10.5g} {row['z value']:8.3f} {ps}")
    if res.is_singular:
        lines.append("")
        lines.append("boundary (singular) fit: see help('isSingular')")
    return "\n".join(lines)
