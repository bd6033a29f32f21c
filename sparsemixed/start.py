"""Starting values for theta: lme4's (T_k = I) or moment estimates from the cross-products.

For a scalar intercept term (1 | g) with level counts n_j = (Z'WZ)_jj and level sums
s_j = (Z'W r)_j of the OLS residuals r = y - X gamma (what the cross-products hold),
the one-way ANOVA of r on g gives, with J levels and n rows,

    SSB = sum_j s_j^2 / n_j - (sum_j s_j)^2 / n,     SSW = r'Wr - sum_j s_j^2 / n_j
    sigma_w^2 = SSW / (n - J)
    sigma_g^2 = (SSB - (J - 1) sigma_w^2) / (n - sum_j n_j^2 / n)

(Henderson's method 1 for one factor).  The other terms' variances end up in sigma_w^2,
so the residual variance is taken as sigma^2 = r'Wr / n - sum_g sigma_g^2 and
theta_g = sigma_g / sigma.  This costs O(q) and no factorization; on crossed designs
where each level of one factor meets many levels of the other (MovieLens-shaped data)
it lands within 1% of the optimum.  Terms other than scalar intercepts keep lme4's start.

The first trust region of BOBYQA from there (:func:`moment_step`) shrinks with the
number of levels J as the moment estimate's error does (like a standard error,
~1/sqrt(J)): theta * clip(0.45 / sqrt(J), 0.01, 0.1) (fewer evaluations than a fixed
10%: benchmarks/results/thresholds.md).
"""
from __future__ import annotations

import numpy as np

MIN_THETA = 0.1          # a start is never on (or next to) the boundary theta = 0
MAX_THETA = 10.0
MOMENT_STEP = 0.45       # BOBYQA's first trust region from a moment start: theta * 0.45 / sqrt(levels),
STEP_RANGE = (0.01, 0.1)  # relative, clipped to this range, and at least MIN_STEP (see moment_step)
MIN_STEP = 0.005


def lme4_start(terms) -> np.ndarray:
    return np.concatenate([t.cov.initial() for t in terms])


def theta_scale(terms, crossprod) -> np.ndarray:
    """d: each theta entry's row scale, 1 / rms of its random-effect column (sum over the
    term's levels of diag(Z'WZ), over n); 1 for intercepts.  T_k's row j multiplies the
    column x_j, so a slope on a covariate measured in large units (days: 0 to 670) has an
    optimum theta hundreds of times smaller than the intercept's: the gradient optimizer
    works on theta / d, where the problem is nearly as well scaled as with unit-rms
    covariates, and the default fit starts from lme4's start in those units, theta = d on
    the diagonals (sitka 44 -> 16 evaluations, bdf 57 -> 18: benchmarks/results/
    2026-12-06-small-panel-*.md).  Intercept-only models are unchanged (d = 1)."""
    diag = crossprod.ZtZ.diagonal()
    n = float(crossprod.n)
    out, off = [], 0
    for t in terms:
        rms = np.sqrt(diag[off: off + t.q].reshape(t.nlevels, t.k).sum(axis=0) / n)
        rms = np.where(np.isfinite(rms) & (rms > 0), rms, 1.0)
        rows, _ = t.cov.tril_indices()
        out.append(1.0 / rms[rows])
        off += t.q
    return np.concatenate(out) if out else np.zeros(0)


def moment_step(terms, theta: np.ndarray, estimated: np.ndarray) -> np.ndarray:
    """BOBYQA's first step per theta entry from a moment start: NaN (nlopt's default) where
    the entry is not a moment estimate, else theta * clip(MOMENT_STEP / sqrt(levels))."""
    levels = np.concatenate([np.full(t.ntheta, float(t.nlevels)) for t in terms])
    rel = np.clip(MOMENT_STEP / np.sqrt(levels), *STEP_RANGE)
    return np.where(estimated, np.maximum(rel * np.abs(theta), MIN_STEP), np.nan)


def moment_start(terms, crossprod) -> tuple[np.ndarray, np.ndarray]:
    """lme4's start with each scalar intercept term's theta replaced by its moment
    estimate; returns (theta, mask of the entries that are moment estimates)."""
    theta = lme4_start(terms)
    estimated = np.zeros(theta.size, dtype=bool)
    n, rr = float(crossprod.n), float(crossprod.yty)
    d = crossprod.ZtZ.diagonal()
    zr = np.asarray(crossprod.Zty, dtype=float)
    off, toff, est = 0, 0, {}
    for t in terms:
        nj, sj = d[off: off + t.q], zr[off: off + t.q]
        if t.k == 1 and t.columns == ["(Intercept)"] and t.nlevels >= 2 and np.all(nj > 0):
            fitted = float((sj ** 2 / nj).sum())
            ssb = fitted - float(sj.sum()) ** 2 / n
            denom = n - float((nj ** 2).sum()) / n
            if n > t.nlevels and denom > 0:
                sw2 = (rr - fitted) / (n - t.nlevels)
                est[toff] = (ssb - (t.nlevels - 1) * sw2) / denom
        off += t.q
        toff += t.ntheta
    s2 = rr / n - sum(max(v, 0.0) for v in est.values())
    if not est or not s2 > 0:
        return theta, estimated
    for j, v in est.items():
        theta[j] = float(np.clip(np.sqrt(max(v, 0.0) / s2), MIN_THETA, MAX_THETA))
        estimated[j] = True
    return theta, estimated
