"""Variance components:  Sigma_k = sigma^2 T_k T_k'  per term, plus the residual sigma^2.

As a table with lme4's ``as.data.frame(VarCorr(fit))`` columns ``grp, var1, var2,
vcov, sdcor``: per term its variances, then its covariances (lower triangle, column
by column), then the residual row.

On lme4's profile scale (``Cv_to_Sv``, used by ``confint`` and ``profile``) the same
quantities are a vector in theta's order: per term, the standard deviation on the
diagonal and the correlation below it (:func:`sdcor`), named ``.sig01, .sig02, ...``,
then ``.sigma`` (:func:`profile_names`).
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


def _sd(S: np.ndarray) -> np.ndarray:
    return np.sqrt(np.clip(np.diag(S), 0.0, None))


def _cor(S: np.ndarray, sd: np.ndarray, i: int, j: int) -> float:
    denom = sd[i] * sd[j]
    return S[i, j] / denom if denom > 0 else np.nan


def varcorr_frame(terms, theta: np.ndarray, sigma: float) -> pd.DataFrame:
    rows = []
    for t, S in zip(terms, term_covariances(terms, theta, sigma)):
        sd = _sd(S)
        for i, c in enumerate(t.columns):
            rows.append((t.name, c, None, S[i, i], sd[i]))
        for j in range(t.k):
            for i in range(j + 1, t.k):
                rows.append((t.name, t.columns[j], t.columns[i], S[i, j], _cor(S, sd, i, j)))
    rows.append(("Residual", None, None, sigma ** 2, sigma))
    return pd.DataFrame(rows, columns=["grp", "var1", "var2", "vcov", "sdcor"])


def sdcor(terms, theta, sigma: float) -> np.ndarray:
    """theta, sigma -> lme4's (sd, cor) vector in theta's order (lme4's Cv_to_Sv): per
    term, sqrt(Sigma_rr) on the diagonal and Sigma_rc / (sd_r sd_c) below it (NaN where
    an sd is 0), Sigma = sigma^2 T T'."""
    out = []
    for t, S in zip(terms, term_covariances(terms, np.asarray(theta, float), sigma)):
        sd = _sd(S)
        for r, c in zip(*t.cov.tril_indices()):
            out.append(sd[r] if r == c else _cor(S, sd, r, c))
    return np.asarray(out, dtype=float)


def profile_names(model, fixef: bool = True) -> list[str]:
    """lme4's names on the profile scale: .sig01, .sig02, ... (one per theta), .sigma,
    then (``fixef=True``) the fixed effects."""
    ntheta = sum(t.ntheta for t in model.terms)
    names = [f".sig{i + 1:02d}" for i in range(ntheta)] + [".sigma"]
    return names + list(model.fixef_names) if fixef else names
