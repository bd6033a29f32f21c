"""Responses a linear mixed model cannot fit, found from the cross-products before fitting.

With W the prior weights and the cross-products of [Z X y] (crossprod.py):

The cross-products are of y0 = y - X gamma, gamma the OLS shift (assemble.FixedEffects),
so r2_X = y0'Wy0 is already the least-squares residual of y on X.

* scale:     s = sqrt(y'Wy / n) / u and sqrt(r2_X / n) / u,  u = sqrt(geometric mean of w)  (diagnostics.weight_unit);
             the criterion squares y0 and weighted sums of it: outside [MIN_SCALE, MAX_SCALE]
             (or u outside [MIN_WEIGHT_UNIT, MAX_WEIGHT_UNIT]) the squares over- or underflow
             and the fit would be meaningless (y * 1e300: inf; y * 1e-200: 0).  Inside,
             estimates are equivariant: y * c gives beta * c, b * c, sigma * c and the same
             theta; weights * c give theta / sqrt(c), sigma * sqrt(c) and the same beta, b and
             likelihood (lme4's convention, Cov(e) = sigma^2 W^-1).
* exact fit: r2_X <= EXACT_TOL * y'Wy, y'Wy = r2_X + 2 gamma'X'Wy0 + gamma'X'WX gamma: the
             response is constant, or a linear function of the fixed-effect columns
             (``y ~ y + x``).
* exact fit within groups: for a term with an intercept on grouping factor g, absorbing
             g's level means (n_j = (Z'WZ)_jj, a_j = (Z'WX)_j, s_j = (Z'Wy0)_j)
                 A = X'WX - sum_j a_j a_j' / n_j,   c = X'Wy0 - sum_j a_j s_j / n_j,
                 d = r2_X - sum_j s_j^2 / n_j,      r2_g = d - c' A^+ c
             r2_g <= WITHIN_TOL * r2_X: y is constant within every level of g after the
             fixed effects, the residual variance is 0 and the likelihood has no maximum.

Each is a DataError naming the response, column or grouping factor, raised before any
factorization; all cost O(q p^2) from the cross-products, nothing of length n (the within
check is skipped for a sparse X and beyond MAX_WITHIN_WORK).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from .errors import DataError

MIN_SCALE, MAX_SCALE = 1e-100, 1e100
MIN_WEIGHT_UNIT, MAX_WEIGHT_UNIT = 1e-30, 1e30     # weights' geometric mean 1e-60 .. 1e60
EXACT_TOL = 1e-24         # r2_X below this fraction of y'Wy: an exact fit (rounding of y - X shift)
WITHIN_TOL = 1e-13        # r2_g below this fraction of r2_X: an exact fit within levels (r2_g is a
                          # difference of sums of the order of r2_X: ~1e-15 of it is rounding)


def check_response(cp, shift, response: str, x_names, terms) -> None:
    """Raise a DataError for a response the model cannot fit (module docstring).  ``cp``
    holds the cross-products of y0 = y - X shift (the OLS shift, assemble.FixedEffects)."""
    from .diagnostics import weight_unit

    n = cp.n
    if n == 0:
        return
    unit = weight_unit(cp)
    if not MIN_WEIGHT_UNIT <= unit <= MAX_WEIGHT_UNIT:
        raise DataError(
            f"the prior weights are of the order {unit ** 2:.3g} (geometric mean), beyond what "
            f"double precision can carry through the criterion ({MIN_WEIGHT_UNIT ** 2:.0e} to "
            f"{MAX_WEIGHT_UNIT ** 2:.0e}): divide them by a constant c. Only their ratios matter: "
            "the fixed effects, random effects and likelihood are unchanged, theta is multiplied by "
            "sqrt(c) and sigma divided by it")
    shift = np.zeros(cp.p) if shift is None else np.asarray(shift, float)
    r2_x = float(cp.yty)
    Xty0 = np.asarray(_dense(cp.Xty), float).ravel()                  # X'Wy0
    Xty = Xty0 + np.asarray(cp.XtX @ shift).ravel()                     # X'Wy
    with np.errstate(all="ignore"):
        yty = r2_x + float(shift @ (Xty + Xty0))                        # y'Wy
        size = np.sqrt(yty / n) / unit if np.isfinite(yty) and yty >= 0 else np.inf
        scale = np.sqrt(r2_x / n) / unit if np.isfinite(r2_x) and r2_x >= 0 else np.inf
        if not yty > 1e-290 and np.any(Xty != 0):       # y'Wy underflowed: rms(y) >= |x'Wy| / ||x|| sqrt(n)
            d = np.asarray(cp.XtX.diagonal(), float).ravel()
            size = float(np.max(np.abs(Xty) / np.sqrt(np.maximum(d, 1e-300) * n))) / unit
    for what, v in (("a root mean square of about", size), ("least-squares residuals of about", scale)):
        if v > 0 and not MIN_SCALE <= v <= MAX_SCALE:
            p10 = f"1e{int(round(np.log10(v)))}" if np.isfinite(v) else "a large power of ten"
            raise DataError(
                f"the response '{response}' has {what} {v:.3g}, beyond what the criterion can square in "
                f"double precision ({MIN_SCALE:.0e} to {MAX_SCALE:.0e}): divide it by a power of ten "
                f"(e.g. {response} / {p10}); the fixed effects, random effects and sigma scale by the "
                "same factor and theta does not change")
    if not r2_x > EXACT_TOL * yty:
        raise DataError(_exact_message(response, cp, shift, Xty, x_names, yty))
    _check_within(cp, response, terms, r2_x)


def _dense(a):
    return a.toarray() if sp.issparse(a) else np.asarray(a, dtype=float)


def _quad(A: np.ndarray, c: np.ndarray) -> float:
    """c' A^+ c for a symmetric positive semidefinite A (0 for an empty one)."""
    if c.size == 0:
        return 0.0
    sol, *_ = np.linalg.lstsq(A, c, rcond=1e-12)
    return float(c @ sol)


def _exact_message(response, cp, shift, Xty, x_names, yty) -> str:
    """Constant (nothing about the intercept's fit), or which columns reproduce y."""
    XtX = cp.XtX
    if "(Intercept)" in x_names:
        j = x_names.index("(Intercept)")
        if yty - Xty[j] ** 2 / XtX[j, j] <= EXACT_TOL ** 0.5 * yty:
            return (f"the response '{response}' is constant: the residual variance is 0 and a mixed "
                    "model has nothing to estimate. Check that the right column is the response")
    dx = np.sqrt(np.maximum(np.asarray(XtX.diagonal(), float).ravel(), 0.0))
    used = [nm for nm, b, d in zip(x_names, shift, dx)
            if nm != "(Intercept)" and abs(b) * d > 1e-6 * np.sqrt(yty)]
    cols = ", ".join(f"'{c}'" for c in used) or "the fixed-effect columns"
    return (f"the response '{response}' is an exact linear function of {cols} (is the response itself, "
            "or a column computed from it, on the right-hand side?): the residual variance is 0 and there "
            "is nothing left to model. Remove that column from the formula")


MAX_WITHIN_WORK = 2e8     # levels x p^2 multiply-adds; beyond, the within check is skipped


def _check_within(cp, response, terms, r2_x) -> None:
    """The exact fit within the levels of each grouping factor that has an intercept term."""
    if sp.issparse(cp.XtX):
        return                              # sparse X (large p): not checked
    diag = cp.ZtZ.diagonal()
    XtX, Xty = np.asarray(cp.XtX, float), np.asarray(cp.Xty, float).ravel()
    ZtX, Zty = np.asarray(cp.ZtX, float), np.asarray(cp.Zty, float)
    off, seen = 0, set()
    for t in terms:
        if ("(Intercept)" in t.columns and t.group.name not in seen and t.nlevels >= 2
                and t.nlevels * (cp.p + 1) ** 2 <= MAX_WITHIN_WORK):
            seen.add(t.group.name)
            rows = off + np.arange(t.nlevels) * t.k + t.columns.index("(Intercept)")
            nj, aj, sj = diag[rows], ZtX[rows], Zty[rows]
            ok = nj > 0
            nj, aj, sj = nj[ok], aj[ok], sj[ok]
            A = XtX - (aj / nj[:, None]).T @ aj
            c = Xty - (aj / nj[:, None]).T @ sj
            d = r2_x - float((sj ** 2 / nj).sum())
            r2_g = d - _quad(A, c)
            if not r2_g > WITHIN_TOL * r2_x:
                raise DataError(
                    f"the response '{response}' is constant within every level of '{t.group.name}' "
                    "(after the fixed effects): the random effects of that factor reproduce it exactly, "
                    "the residual variance is 0 and the likelihood has no maximum. Model the level "
                    f"means without '{t.group.name}' (one row per level), or check the response column")
        off += t.q
