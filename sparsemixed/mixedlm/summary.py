"""statsmodels-style text summary of a MixedLM fit."""
from __future__ import annotations

import numpy as np
from scipy import stats


def _pairs(rows, width):
    out = []
    for (a, b), (c, d) in rows:
        left = f"{a:<18}{b:<{width}}"
        out.append(f"{left}{c:<20}{d}")
    return out


def summary_text(res, yname=None, title=None, alpha=0.05) -> str:
    m = res.model
    sizes = np.array([len(ix) for ix in m._row_idx])
    head = [
        (("Model:", "MixedLM"), ("Dependent Variable:", yname or m.endog_name)),
        (("No. Observations:", str(m.nobs)), ("Method:", res.method)),
        (("No. Groups:", str(m.n_groups)), ("Scale:", f"{res.scale:.4f}")),
        (("Min. group size:", str(sizes.min())), ("Log-Likelihood:", f"{res.llf:.4f}")),
        (("Max. group size:", str(sizes.max())), ("Converged:", "Yes" if res.converged else "No")),
        (("Mean group size:", f"{sizes.mean():.1f}"), ("", "")),
    ]
    lines = _pairs(head, 12)
    z = stats.norm.ppf(1 - alpha / 2)
    names = list(m.param_names)
    width = max(12, max(len(n) for n in names) + 1)
    hdr = f"{'':<{width}}{'Coef.':>10}{'Std.Err.':>10}{'z':>8}{'P>|z|':>8}{f'[{alpha / 2:.3f}':>10}{f'{1 - alpha / 2:.3f}]':>10}"
    rows = []
    bse = res.bse.to_numpy()
    for j, name in enumerate(names):
        if j < res.k_fe:
            est, se = res.params.iloc[j], bse[j]
            zz = est / se
            p = 2 * stats.norm.sf(abs(zz))
            rows.append(f"{name:<{width}}{est:>10.3f}{se:>10.3f}{zz:>8.3f}{p:>8.3f}"
                        f"{est - z * se:>10.3f}{est + z * se:>10.3f}")
        else:
            est = res.params.iloc[j] * res.scale
            se = res.bse_re.iloc[j - res.k_fe]
            rows.append(f"{name:<{width}}{est:>10.3f}{se:>10.3f}")
    rule = "=" * len(hdr)
    t = title or "Mixed Linear Model Regression Results"
    return "\n".join([t.center(len(hdr)), rule, *lines, "-" * len(hdr), hdr, "-" * len(hdr), *rows, rule])
