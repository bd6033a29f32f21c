"""LmerResult: the estimates of a fitted LinearMixedModel, in lme4's vocabulary.

    beta-hat, sigma-hat^2 = r2 / (n - p) (REML) or r2 / n (ML)
    vcov(beta-hat) = sigma^2 (R_X' R_X)^-1
    b-hat = Lambda u-hat  (conditional modes),  Sigma_k = sigma^2 T_k T_k'
    logLik = -objective / 2;  AIC = objective + 2 npar;  BIC = objective + log(n) npar
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import scipy.linalg as sla

from ..diagnostics import singular_terms, weight_unit
from .varcorr import term_covariances, varcorr_frame
from ..inference.blup import BlupMixin
from ..inference.compare import CompareMixin
from ..inference.ddf import DdfMixin
from ..inference.predict import PredictMixin
from .export import ExportMixin
from .ranef import RandomEffectsMixin


@dataclass
class LmerResult(RandomEffectsMixin, BlupMixin, PredictMixin, DdfMixin, CompareMixin, ExportMixin):
    model: object = field(repr=False)
    REML: bool
    theta: np.ndarray
    beta: np.ndarray
    sigma: float
    objective: float
    RX: np.ndarray = field(repr=False)
    u: np.ndarray = field(repr=False)
    b: np.ndarray = field(repr=False)
    optsummary: object = field(repr=False)

    @classmethod
    def from_state(cls, model, state, summary, reml: bool) -> "LmerResult":
        """The result at a PLS state (the engine's criterion, sigma and conditional modes)."""
        eng = model.engine
        u, b = eng.random_effects(state)
        return cls(model, reml, state.theta.copy(), model.fixef_from(state.beta),
                   math.sqrt(eng.sigma2(state, reml)), eng.criterion(state, reml),
                   cls._rx(state), u, b, summary)

    @staticmethod
    def _rx(state):
        return state.RX.copy()

    # -- scalars ---------------------------------------------------------------------
    @property
    def nobs(self) -> int:
        return self.model.nobs

    @property
    def npar(self) -> int:
        return self.model.p + self.theta.size + 1

    @property
    def loglik(self) -> float:
        """The log-likelihood (ML) or restricted log-likelihood (REML), as lme4's logLik."""
        return -self.objective / 2.0

    @property
    def deviance(self) -> float | None:
        return self.objective if not self.REML else None

    @property
    def aic(self) -> float:
        return self.objective + 2.0 * self.npar

    @property
    def bic(self) -> float:
        return self.objective + math.log(self.nobs) * self.npar

    @property
    def converged(self) -> bool:
        return bool(self.optsummary.converged)

    @property
    def is_singular(self) -> bool:
        """lme4's isSingular: a bounded (diagonal) theta element below 1e-4 (for prior
        weights, of theta * diagnostics.weight_unit: the same verdict at any weights' scale)."""
        known = getattr(self.optsummary, "diagnostics", {}).get("singular")    # a recentred fit's (recentre.py)
        if known is not None:
            return bool(known)
        return bool(singular_terms(self.model, self.theta, weight_unit(self.model.crossprod)))

    # -- fixed effects ---------------------------------------------------------------
    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self.beta, index=self.model.fixef_names, name="Estimate")

    @property
    def vcov(self) -> pd.DataFrame:
        names = self.model.fixef_names
        if not names:
            return pd.DataFrame(np.zeros((0, 0)))
        Rinv = sla.solve_triangular(self.RX, np.eye(len(names)), lower=False)
        V = self.sigma ** 2 * (Rinv @ Rinv.T)
        return pd.DataFrame(V, index=names, columns=names)

    @property
    def fixef_se(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self.vcov.to_numpy())), index=self.model.fixef_names, name="Std. Error")

    # -- random effects --------------------------------------------------------------
    @property
    def varcorr(self) -> pd.DataFrame:
        return varcorr_frame(self.model.terms, self.theta, self.sigma)

    @property
    def cov_re(self) -> dict:
        """Per term (lme4's VarCorr name): covariance matrix of its random effects."""
        out = {}
        for t, S in zip(self.model.terms, term_covariances(self.model.terms, self.theta, self.sigma)):
            out[t.name] = pd.DataFrame(S, index=t.columns, columns=t.columns)
        return out

    @property
    def G(self):
        """G = sigma^2 Lambda Lambda', sparse block diagonal (q x q)."""
        L = self.model.Lambda(self.theta)
        return (self.sigma ** 2) * (L @ L.T).tocsc()

    # -- variance parameters ---------------------------------------------------------
    def vcov_varpar(self) -> pd.DataFrame:
        """Approximate covariance 2 H^-1 of (sigma, theta), H the Hessian of the deviance in
        (sigma, theta) (see :mod:`sparsemixed.inference.varpar`; boundary parameters get NaN and a VarParWarning).
        ``.attrs`` holds the Hessian, the boundary mask and the note."""
        from ..inference.varpar import varpar_cov

        vc = varpar_cov(self.model, self.sigma, self.theta, self.REML)
        df = pd.DataFrame(vc.cov, index=vc.names, columns=vc.names)
        df.attrs.update(hessian=vc.hessian, boundary=vc.boundary,
                        positive_definite=vc.positive_definite, note=vc.note)
        return df

    @property
    def varpar_se(self) -> pd.Series:
        """Standard errors of (sigma, theta): sqrt of the diagonal of :meth:`vcov_varpar`."""
        V = self.vcov_varpar()
        return pd.Series(np.sqrt(np.diag(V.to_numpy())), index=V.index, name="Std. Error")

    # -- row-level quantities (the model's cached design) -----------------------------
    def _frame(self):
        """The fitted rows (model.design(): y, X, Z, offset, weights, kept)."""
        return self.model.design(what="fitted(), residuals(), predict(), simulate() and getME('X'/'Z'/'y') "
                                      "need them")

    def fitted(self) -> np.ndarray:
        """X beta + Z b (+ offset) for the rows used in the fit."""
        d = self._frame()
        out = d.X @ self.beta + d.Z @ self.b
        return out if d.offset is None else out + d.offset

    def residuals(self, type: str = "response", scaled: bool = False) -> np.ndarray:
        """lme4's residuals(): "response" y - fitted, "pearson" sqrt(w) (y - fitted); with
        ``scaled=True`` divided by sigma (lme4's scaled = TRUE)."""
        fr = self._frame()
        r = fr.y - self.fitted()
        if type == "pearson":
            w = fr.weights if fr.weights is not None else 1.0
            r = r * np.sqrt(w)
        elif type != "response":
            raise ValueError(f"type must be 'response' or 'pearson', got {type!r}")
        return r / self.sigma if scaled else r

    def model_matrices(self):
        """(X, Z) for the rows used in the fit (Z sparse CSR), from the model's design."""
        d = self._frame()
        return d.X, d.Z

    def getME(self, name: str):
        """lme4's getME: 'X', 'Z', 'Zt', 'y', 'Lambda', 'Lambdat', 'Lind', 'theta', 'lower',
        'beta', 'u', 'b', 'sigma', 'n', 'p', 'q', 'L' (the factor object), 'RX', 'RZX'."""
        m = self.model
        if name in ("X", "Z", "Zt"):
            X, Z = self.model_matrices()
            return {"X": X, "Z": Z, "Zt": Z.T.tocsc()}[name]
        if name == "y":
            return self._frame().y
        if name in ("RX", "RZX", "L"):
            state = m.pls(self.theta)
            return {"RX": state.RX, "RZX": state.RZX, "L": state.factor}[name]
        simple = {
            "Lambda": lambda: m.Lambda(self.theta), "Lambdat": lambda: m.Lambda(self.theta).T.tocsc(),
            "Lind": lambda: m.Lind + 1, "theta": lambda: self.theta, "lower": lambda: m.lower,
            "beta": lambda: self.beta, "u": lambda: self.u, "b": lambda: self.b,
            "sigma": lambda: self.sigma, "n": lambda: m.nobs, "p": lambda: m.p, "q": lambda: m.q,
        }
        if name not in simple:
            raise KeyError(f"getME: unknown name {name!r}; known: X, Z, Zt, y, RX, RZX, L, {', '.join(simple)}")
        return simple[name]()

    # -- display ---------------------------------------------------------------------
    def summary(self) -> str:
        from .display import lme4_summary

        return lme4_summary(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        crit = "REML criterion" if self.REML else "deviance"
        return (f"<LmerResult {self.model.formula!r}: {crit} {self.objective:.4f}, "
                f"theta={np.round(self.theta, 5).tolist()}, sigma={self.sigma:.5g}>")
