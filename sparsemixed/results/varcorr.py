"""Variance components:  Sigma_k = sigma^2 T_k T_k'  per term, plus the residual sigma^2.

As a table with lme4's ``as.data.frame(VarCorr(fit))`` columns ``grp, var1, var2,
vcov, sdcor``: per term its variances, then its covariances (lower triangle, column
by column), then the residual row.
"""
from __future__ import annotations

import numpy as np
import pandas as pd


def term_covariances(terms, theta: np.ndarray, sigma: float) -> list[np.ndarray]:
    out, off = [], 0
    for t in terms:
        T = t.cov.T(theta[off: off + t.ntheta])
        out.append(sigma ** 2 * (T @ T.T))
        off += t.ntheta
    return out


def varcorr_frame(terms, theta: np.ndarray, sigma: float) -> pd.DataFrame:
    rows = []
    for t, S in zip(terms, term_covariances(terms, theta, sigma)):
        sd = np.sqrt(np.clip(np.diag(S), 0, None))
        for i, c in enumerate(t.columns):
            rows.append((t.name, c, None, S[i, i], sd[i]))
        for j in range(t.k):
            for i in range(j + 1, t.k):
                denom = sd[i] * sd[j]
                corr = S[i, j] / denom if denom > 0 else np.nan
                rows.append((t.name, t.columns[j], t.columns[i], S[i, j], corr))
    rows.append(("Residual", None, None, sigma ** 2, sigma))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])
