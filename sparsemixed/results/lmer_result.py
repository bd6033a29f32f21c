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

    def _fitted_values(self) -> np.ndarray:
        d = self._frame()
        out = d.X @ self.beta + d.Z @ self.b
        return out if d.offset is None else out + d.offset

    def fitted(self, na_action: str | None = None) -> pd.Series:
        """X beta + Z b (+ offset), a Series indexed by the data's row labels: the rows used in
        the fit (R's na.omit), or with ``na_action="exclude"`` every row of the data, NaN where
        a row was dropped for missing values (R's na.exclude).  (Values as before: a Series
        works where an array did; ``.to_numpy()`` gives the array.)"""
        from .export import row_series

        return row_series(self, self._fitted_values(), "fitted", na_action)

    def residuals(self, type: str = "response", scaled: bool = False, na_action: str | None = None) -> pd.Series:
        """lme4's residuals(): "response" y - fitted, "pearson" sqrt(w) (y - fitted); with
        ``scaled=True`` divided by sigma (lme4's scaled = TRUE).  A Series indexed as
        :meth:`fitted` (``na_action``: "omit" or "exclude")."""
        from .export import row_series

        fr = self._frame()
        r = fr.y - self._fitted_values()
        if type == "pearson":
            w = fr.weights if fr.weights is not None else 1.0
            r = r * np.sqrt(w)
        elif type != "response":
            raise ValueError(f"type must be 'response' or 'pearson', got {type!r}")
        return row_series(self, r / self.sigma if scaled else r, "residuals", na_action)

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

    # -- single-term deletions and refits (inference/ranova.py, inference/update.py) ----
    def ranova(self, reduce_terms: bool = True) -> pd.DataFrame:
        """lmerTest's ``ranova``: a likelihood-ratio test for each random-effects term,
        removed one at a time (a vector term ``(1 + x | g)`` reduced to ``(1 | g)``); rows
        ``<none>`` and one per reduced model, columns npar, logLik, AIC, LRT, Df,
        Pr(>Chisq).  The reduced models are fitted by REML or ML as this fit; see
        :mod:`sparsemixed.inference.ranova`."""
        from ..inference.ranova import ranova

        return ranova(self, reduce_terms=reduce_terms)

    def drop1(self, scope=None, ddf: str | None = "Satterthwaite", test: str = "Chisq") -> pd.DataFrame:
        """Single-term deletions of the fixed terms contained in no other (``scope``: some
        of them).  ``ddf`` "Satterthwaite" (default) or "Kenward-Roger": lmerTest's drop1,
        one F test per term (columns as :meth:`anova`); ``ddf="lme4"``: lme4's
        ``drop1(fit, test = "Chisq")``, likelihood-ratio tests of ML refits (``test="none"``:
        npar and AIC only)."""
        from ..inference.ranova import drop1_lmer

        return drop1_lmer(self, scope=scope, ddf=ddf, test=test)

    def update(self, formula: str | None = None, data=None, **kw) -> "LmerResult":
        """R's ``update``: the model refitted with ``formula`` updated from this one's
        (``". ~ . - x"``, ``". ~ . + z + (1 | h)"``, ``"log(.) ~ ."``: R's update.formula)
        and/or new ``data``; lmer's arguments (REML, weights, offset, na_action, ordering,
        memory_limit, sparse_X) as this fit's unless given, other keywords go to ``fit()``.
        :func:`sparsemixed.inference.update.update_formula` gives the formula alone."""
        from ..inference.update import refit_lmer

        return refit_lmer(self, formula, data, **kw)

    # -- profile (inference/profile/) ------------------------------------------------
    def profile(self, which=None, alphamax: float = 0.01, maxpts: int = 100, **kw):
        """lme4's ``profile(fit)``: the likelihood profile, a
        :class:`~sparsemixed.inference.profile.LikelihoodProfile` (lme4's
        ``as.data.frame(profile(fit))``: ``.zeta``, every parameter, ``.par``, ``.focal``) with
        ``confint(level)`` (lme4's ``confint(profile)``) and ``plot_zeta()``.  ``which``: None
        (all), names (``.sig01``, ``.sigma``, fixed effects), ``"theta_"`` or ``"beta_"``.  A
        REML fit is profiled on the ML deviance around its ML refit, as lme4; that refit's
        warnings are recorded (``.attrs["refit_warnings"]``) and shown reworded only when they
        concern the model (see :func:`sparsemixed.inference.profile.profile_result`)."""
        from ..inference.profile import profile_result

        return profile_result(self, which=which, alphamax=alphamax, maxpts=maxpts, **kw)

    def confint(self, parm=None, level: float = 0.95, method: str = "Wald", nsim: int = 500,
                seed=None, progress: bool = False) -> pd.DataFrame:
        from ..inference.compare import quietly_refitted

        run = lambda: super(LmerResult, self).confint(parm=parm, level=level, method=method, nsim=nsim,
                                                        seed=seed, progress=progress)
        if str(method).lower() != "profile":
            return run()
        return quietly_refitted(self, run, "confint(method='profile')")

    confint.__doc__ = PredictMixin.confint.__doc__

    # -- estimated marginal means (inference/emmeans.py) -----------------------------
    def emmeans(self, specs, by=None, **kwargs):
        """Estimated marginal means, as R's emmeans (``sparsemixed.emmeans``): e.g.
        ``result.emmeans("cond", by="freq")``; df by Satterthwaite (``lmer_df=
        "kenward-roger"`` for Kenward-Roger); ``.pairs()`` / ``sparsemixed.contrast`` for
        contrasts.  Keywords: weights, at, type, level, lmer_df, vcov, cov_reduce, tran."""
        from ..inference.emmeans import emmeans

        return emmeans(self, specs, by=by, **kwargs)

    # -- display ---------------------------------------------------------------------
    def summary(self, ddf="auto") -> str:
        """lme4's summary with lmerTest's fixed-effects table: df and Pr(>|t|) by
        Satterthwaite's method (``ddf="auto"``, the default, skips them when they would cost
        more than the fit, at q >= 50,000 random effects, and for a sparse-X fit, and says
        so); ``ddf="Satterthwaite"`` or ``"Kenward-Roger"`` computes them in any case;
        ``ddf=None`` prints lme4's table (Estimate, Std. Error, t value)."""
        from .display import lme4_summary

        return lme4_summary(self, ddf=ddf)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        crit = "REML criterion" if self.REML else "deviance"
        return (f"<LmerResult {self.model.formula!r}: {crit} {self.objective:.4f}, "
                f"theta={np.round(self.theta, 5).tolist()}, sigma={self.sigma:.5g}>")


def _tables_print_whole(cls, methods=("coef", "coef_table", "anova", "ranef_frame", "confint", "ranova", "drop1"),
                        properties=("varcorr", "ranef")):
    """The tables of a result print whole (display.Table: no columns hidden behind "...")."""
    from .display import returns_table

    for name in methods:
        fn = getattr(cls, name, None)
        if fn is not None and not getattr(fn, "_returns_table", False):
            wrapped = returns_table(fn)
            wrapped._returns_table = True
            setattr(cls, name, wrapped)
    for name in properties:
        prop = getattr(cls, name, None)
        if isinstance(prop, property) and not getattr(prop.fget, "_returns_table", False):
            fget = returns_table(prop.fget)
            fget._returns_table = True
            setattr(cls, name, property(fget, doc=prop.__doc__))


_tables_print_whole(LmerResult)
