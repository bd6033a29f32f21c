"""BLUPs (conditional modes) and their variances, from the sparse factor.

    b-hat = Lambda u-hat                                     (conditional modes, lme4's ranef)
    Var(b | y, beta = beta-hat) = sigma^2 Lambda M^-1 Lambda'         ("conditional", lme4's condVar)
    Var(b-hat - b) = sigma^2 Lambda C_uu Lambda'                        ("pev", the lecture's PEV)
        C_uu = M^-1 + L^-T R_ZX (R_X'R_X)^-1 R_ZX' L^-1       (the u-block of the inverse of
                                                              Henderson's coefficient matrix)

The conditional variance treats beta as known (what lme4 reports); the prediction error
variance (lecture: G - G Z'PZ G with P = V^-1 - V^-1 X (X'V^-1 X)^-1 X'V^-1) adds the
uncertainty of beta-hat: the second term, a q x p computation.  Both need M^-1 only
within each level's block, which a selected inverse gives (inference/condvar.py): no
dense q x q inverse.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.linalg as sla

from ..errors import SparseMixedError
from .condvar import relative_condvar_diag, selected_inverse_and_lambda

KINDS = ("conditional", "pev")


def _level_blocks(model, theta) -> list[np.ndarray]:
    """Per term, (nlevels, k, k) blocks of Lambda M^-1 Lambda' (relative scale)."""
    S, Lam = selected_inverse_and_lambda(model, theta)
    P = (Lam @ S @ Lam.T).tocsr()
    out, off = [], 0
    for t in model.terms:
        k = t.k
        base = off + np.arange(t.nlevels)[:, None, None] * k
        rows = base + np.arange(k)[None, :, None]
        cols = base + np.arange(k)[None, None, :]
        rows, cols = np.broadcast_arrays(rows, cols)
        vals = np.asarray(P[rows.ravel(), cols.ravel()]).reshape(t.nlevels, k, k)
        out.append(vals)
        off += t.q
    return out


def _pev_extra(model, theta) -> np.ndarray:
    """diag(Lambda L^-T R_ZX (R_X'R_X)^-1 R_ZX' L^-1 Lambda') (relative scale)."""
    state = model.pls(theta)
    if state.RZX.size == 0:
        return np.zeros(model.q)
    B = sla.solve_triangular(state.RX, np.eye(state.RX.shape[0]), lower=False)    # R_X^-1
    W = model.relcov.Lambda(theta) @ np.asarray(state.factor.solve_Lt(state.RZX @ B)).reshape(model.q, -1)
    return np.einsum("ij,ij->i", W, W)


class BlupMixin:
    """Conditional modes with conditional variances (lme4's ranef(condVar = TRUE))."""

    def _check_kind(self, kind):
        if kind not in KINDS:
            raise SparseMixedError(f"kind must be one of {KINDS}, got {kind!r}")

    def ranef_var(self, kind: str = "conditional") -> np.ndarray:
        """Variance of each random effect, in the order of ``b``: the conditional variance
        sigma^2 diag(Lambda M^-1 Lambda') (kind="conditional", lme4's), or the prediction
        error variance that also accounts for estimating beta (kind="pev", the lecture's)."""
        self._check_kind(kind)
        cache = self.__dict__.setdefault("_ranef_var", {})
        if kind not in cache:
            d = relative_condvar_diag(self.model, self.theta)
            if kind == "pev":
                d = d + _pev_extra(self.model, self.theta)
            cache[kind] = self.sigma ** 2 * d
        return cache[kind]

    def ranef_postvar(self) -> dict:
        """lme4's attr(ranef(fit, condVar=TRUE)[[g]], "postVar") per term name: an array
        (nlevels, k, k) of Var(b_level | y) blocks."""
        blocks = _level_blocks(self.model, self.theta)
        return {t.name: self.sigma ** 2 * B for t, B in zip(self.model.terms, blocks)}

    def ranef_frame(self, kind: str = "conditional") -> pd.DataFrame:
        """Tidy conditional modes, lme4's as.data.frame(ranef(fit, condVar = TRUE)):
        columns grpvar, term, grp, condval, condsd (sd from :meth:`ranef_var`)."""
        sd = np.sqrt(self.ranef_var(kind))
        parts, off = [], 0
        for t in self.model.terms:
            block = self.b[off: off + t.q].reshape(t.nlevels, t.k)
            sblock = sd[off: off + t.q].reshape(t.nlevels, t.k)
            for c, col in enumerate(t.columns):
                parts.append(pd.DataFrame({"grpvar": t.group.name, "term": col, "grp": t.group.levels,
                                           "condval": block[:, c], "condsd": sblock[:, c]}))
            off += t.q
        return pd.concat(parts, ignore_index=True)
