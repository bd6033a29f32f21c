"""lme4-style text summary of an LmerResult."""
from __future__ import annotations

import numpy as np


def lme4_summary(res) -> str:
    m = res.model
    lines = []
    method = "REML" if res.REML else "maximum likelihood"
    lines.append(f"Linear mixed model fit by {method} ['sparsemixed']")
    lines.append(f"Formula: {m.formula}")
    lines.append("")
    if res.REML:
        lines.append(f"REML criterion at convergence: {res.objective:.4f}")
    else:
        lines.append(f"{'AIC':>10} {'BIC':>10} {'logLik':>10} {'deviance':>10} {'df.resid':>9}")
        lines.append(f"{res.aic:10.1f} {res.bic:10.1f} {res.loglik:10.1f} {res.objective:10.1f} "
                     f"{res.nobs - res.npar:9d}")
    lines.append("")
    if m.data is not None:
        try:
            r = res.residuals("pearson", scaled=True)
            q = np.quantile(r, [0, 0.25, 0.5, 0.75, 1])
            lines.append("Scaled residuals:")
            lines.append("     Min       1Q   Median       3Q      Max ")
            lines.append(" ".join(f"{v:8.4f}" for v in q))
            lines.append("")
        except Exception:  # the data may have changed since the fit
            pass
    lines.append("Random effects:")
    vc = res.varcorr
    lines.append(f" {'Groups':<12} {'Name':<14} {'Variance':>10} {'Std.Dev.':>9} Corr")
    for t in m.terms:
        sub = vc[vc.grp == t.name]
        var = sub[sub.var2.isna()]
        cor = sub[sub.var2.notna()]
        for i, (_, row) in enumerate(var.iterrows()):
            corr = ""
            if i > 0:
                vals = [cor[(cor.var1 == t.columns[j]) & (cor.var2 == t.columns[i])].sdcor.iloc[0] for j in range(i)]
                corr = " ".join(f"{v:5.2f}" for v in vals)
            lines.append(f" {t.name if i == 0 else '':<12} {row.var1:<14} {row.vcov:10.4g} {row.sdcor:9.4g} {corr}")
    lines.append(f" {'Residual':<12} {'':<14} {res.sigma ** 2:10.4g} {res.sigma:9.4g}")
    ng = "; ".join(f"{g}, {n}" for g, n in res.ngroups.items())
    lines.append(f"Number of obs: {res.nobs}, groups:  {ng}")
    lines.append("")
    if m.fixef_names:
        lines.append("Fixed effects:")
        fe, se = res.fixef, res.fixef_se
        w = max(12, max(len(s) for s in fe.index) + 1)
        lines.append(f"{'':<{w}} {'Estimate':>10} {'Std. Error':>11} {'t value':>8}")
        for name in fe.index:
            lines.append(f"{name:<{w}} {fe[name]:10.4g} {se[name]:11.4g} {fe[name] / se[name]:8.3f}")
        if len(fe) > 1 and getattr(res, "show_correlation", True):
            V = res.vcov.to_numpy()
            d = np.sqrt(np.diag(V))
            C = V / np.outer(d, d)
            lines.append("")
            lines.append("Correlation of Fixed Effects:")
            short = [s[:6] for s in fe.index]
            lines.append(f"{'':<{w}} " + " ".join(f"{s:>6}" for s in short[:-1]))
            for i in range(1, len(fe)):
                lines.append(f"{short[i]:<{w}} " + " ".join(f"{C[i, j]:6.3f}" for j in range(i)))
        if len(fe) > 1 and not getattr(res, "show_correlation", True):
            lines.append("")
            lines.append(f"Correlation matrix not shown by default, as p = {len(fe)} > 12 (sparse-X fit; "
                         "res.vcov computes it)")
    if m.dropped_fixef:
        lines.append(f"fixed-effect model matrix is rank deficient so dropping {len(m.dropped_fixef)} "
                     f"columns / coefficients: {', '.join(m.dropped_fixef)}")
    if res.is_singular:
        lines.append("boundary (singular) fit: see help('isSingular')")
    if not res.converged:
        lines.append(f"optimizer ({res.optsummary.method}) convergence code: {res.optsummary.returnvalue}")
    return "\n".join(lines)
