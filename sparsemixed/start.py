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
    estimate; returns (theta, mask of the entries that are moment estimates).

    Each term's one-way ANOVA of the (OLS-shifted) response, weighted: with prior weights
    w (Var(e_i) = sigma^2 / w_i) the level sizes n_j are the levels' weight sums and N = sum
    w is the total, so that E[ss_between] = (J - 1) sigma^2 + var_b (N - sum n_j^2 / N) and
    E[sum w r^2] / n = sigma^2 + (N / n) sum var_b; theta = sqrt(var_b / sigma^2).  (With
    unit weights N = n.  The weights' scale enters theta as 1 / sqrt(w): weights of 1e-12
    put the optimum at 1e6 times the unweighted theta.)"""
    theta = lme4_start(terms)
    estimated = np.zeros(theta.size, dtype=bool)
    n, rr = float(crossprod.n), float(crossprod.yty)
    d = crossprod.ZtZ.diagonal()
    zr = np.asarray(crossprod.Zty, dtype=float)
    off, toff, est, N = 0, 0, {}, None
    for t in terms:
        nj, sj = d[off: off + t.q], zr[off: off + t.q]
        if t.k == 1 and t.columns == ["(Intercept)"] and t.nlevels >= 2 and np.all(nj > 0):
            N = float(nj.sum())                     # every row in one level: the total weight
            fitted = float((sj ** 2 / nj).sum())
            ssb = fitted - float(sj.sum()) ** 2 / N
            denom = N - float((nj ** 2).sum()) / N
            if n > t.nlevels and denom > 0:
                sw2 = (rr - fitted) / (n - t.nlevels)
                est[toff] = (ssb - (t.nlevels - 1) * sw2) / denom
        off += t.q
        toff += t.ntheta
    if N is None:
        return theta, estimated
    s2 = rr / n - N / n * sum(max(v, 0.0) for v in est.values())
    if not est or not s2 > 0:
        return theta, estimated
    wbar = N / n                                   # clipped on the unit-weight scale, theta sqrt(mean w)
    for j, v in est.items():
        theta[j] = float(np.clip(np.sqrt(max(v, 0.0) / s2 * wbar), MIN_THETA, MAX_THETA)) / np.sqrt(wbar)
        estimated[j] = True
    return theta, estimated


EM_STEPS = 3             # EM steps before a gradient search from lme4's start (vector-valued terms)
EM_SLOW = 0.25           # ... fewer when a step gains less than this share of the one before
EM_SCALE_MIN = 0.01      # the search after them is scaled by the last EM step's length (in theta / d), at least this


def em_start(engine, relcov, terms, theta, reml: bool, max_steps: int = EM_STEPS):
    """Up to ``max_steps`` EM steps for the relative covariance factors from ``theta``:
    returns (theta after the last step, the criterion at each point evaluated, the last
    step taken).

    With u-hat and sigma^2 at theta and the blocks (M^-1)_jj of level j of term k (from the
    selected inverse on M's pattern, which holds them), Var(u | y) = sigma^2 M^-1 gives
    the E-step, and the M-step sets term k's relative covariance to

        T_k' T_k'' = T_k S_k T_k',   S_k = (1/J_k) sum_j (u_j u_j' / sigma^2 + (M^-1)_jj)

    (u_j: level j's k entries of u; b_j = T_k u_j).  It ignores beta's uncertainty (the
    REML E-step's extra term), so it is a start, not an estimator: the gradient search
    takes over from it.  From lme4's start (T = I) an EM step moves every term at once
    to about the right scale, where the quasi-Newton search's first steps are wild (its
    first step has unit length, and its curvature model is empty): crossed correlated
    slopes (2,000 x 400 levels) 43 evaluations -> 3 EM steps + 16; kb07's shape 37 -> 3 + 18.
    The steps stop early when one gains less than EM_SLOW of the step before.  The caller
    (fitting._fit) scales the search so that its first step is as long as the last EM step
    (L-BFGS-B's first step has unit length in its coordinates: from a start this near,
    such a step lands far beyond the optimum: 23 above it -> 1e4 above, one lost evaluation)."""
    pos = _diagonal_block_positions(relcov, terms)
    theta = np.asarray(theta, dtype=float).copy()
    fvals, step = [], np.zeros(theta.size)
    for _ in range(max_steps):
        state = engine.solve(theta, reml)
        f = float(engine.criterion(state, reml))
        if fvals and not f < fvals[-1]:            # no gain: the previous point
            fvals.append(f)
            return previous, fvals, step
        fvals.append(f)
        sig2 = float(engine.sigma2(state, reml))
        if not (np.isfinite(f) and sig2 > 0):
            break
        u, _ = engine.random_effects(state)
        Minv = state.factor.selected_inverse(relcov.M_indptr, relcov.M_indices)
        del state                  # its factor workspace back to the pool before the next solve (one in use)
        new, off, toff = [], 0, 0
        for t, p in zip(terms, pos):
            U = np.asarray(u[off: off + t.q]).reshape(t.nlevels, t.k)
            S = U.T @ U / sig2 + Minv[p].sum(axis=0)
            S = np.where(np.tri(t.k, dtype=bool), S, S.T) / t.nlevels   # p holds the lower triangle
            T = t.cov.T(theta[toff: toff + t.ntheta])
            try:
                Tn = np.linalg.cholesky(T @ S @ T.T)
            except np.linalg.LinAlgError:
                return theta, fvals, step
            new.append(t.cov.theta_of(Tn))
            off += t.q
            toff += t.ntheta
        previous, theta = theta, np.concatenate(new) if new else theta
        step = theta - previous
        if len(fvals) >= 3 and fvals[-2] - fvals[-1] < EM_SLOW * (fvals[-3] - fvals[-2]):
            break
    return theta, fvals, step


def _diagonal_block_positions(relcov, terms) -> list:
    """Per term, an int array (levels, k, k) of the positions in M's lower CSC data of the
    entries (r, c), r >= c, of each level's diagonal block (-1 above the diagonal: those
    entries read position 0 and are replaced by symmetry)."""
    q = relcov.q
    keys = np.repeat(np.arange(q, dtype=np.int64), np.diff(relcov.M_indptr)) * q + relcov.M_indices
    out, off = [], 0
    for t in terms:
        k = t.k
        base = off + np.arange(t.nlevels, dtype=np.int64)[:, None, None] * k
        r = base + np.arange(k)[None, :, None]
        c = base + np.arange(k)[None, None, :]
        lower = r >= c
        want = np.where(lower, c * q + r, keys[0])
        p = np.searchsorted(keys, want)
        if np.any(keys[np.minimum(p, keys.size - 1)][lower] != want[lower]):
            raise ValueError("a level's diagonal block is not in M's pattern")
        out.append(p)
        off += t.q
    return out
