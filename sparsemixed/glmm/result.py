"""GlmerResult: a fitted GLMM in lme4's vocabulary (glmer's merMod).

    -2 logLik = -2 log p(y | u-hat) + ||u-hat||^2 + log|L|^2     (Laplace; nAGQ = 0 and 1)
    deviance() = sum of squared deviance residuals                 (glmer's deviance())
    vcov      = 2 H^-1, beta block, H the finite-difference Hessian of the deviance in
                (theta, beta) (glmer's default for nAGQ >= 1);  use_hessian=False (and nAGQ = 0):
                (R_X'R_X)^-1 from the joint solve at the mode's weights (dispersion 1; the default
                for a sparse X, read off Maug^-1: linalg/augmented.py)
    ranef     = b-hat = Lambda u-hat;  condsd = sqrt(diag(Lambda M^-1 Lambda')) at the mode
    predict, simulate/bootstrap/confint, anova, to_dict/to_frame: glmm/predict.py, glmm/simulate.py,
    glmm/compare.py, glmm/export.py (thin methods here)
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import scipy.linalg as sla

from ..results.ranef import RandomEffectsMixin
from ..results.varcorr import term_covariances, varcorr_frame

RESIDUAL_TYPES = ("deviance", "pearson", "working", "response")


class GlmerResult(RandomEffectsMixin):
    def __init__(self, model, mode, optsummary, nAGQ: int):
        self.model, self.mode, self.optsummary, self.nAGQ = model, mode, optsummary, nAGQ
        self.theta = np.asarray(mode.theta, dtype=float)
        self.beta = np.asarray(mode.beta, dtype=float)
        self.u, self.b = mode.u, mode.b
        self._hessian = None

    # -- likelihood ---------------------------------------------------------------------
    @property
    def objective(self) -> float:
        """The optimised criterion: the Laplace deviance (nAGQ <= 1) or glmer's AGQ value."""
        return float(self.optsummary.fmin) if self.nAGQ > 1 else self.mode.laplace

    @property
    def minus2loglik(self) -> float:
        if self.nAGQ > 1:
            return self.objective     # glmer's convention (see glmm/agq.py)
        return self.mode.laplace

    @property
    def minus2loglik_full(self) -> float:
        """-2 log L with every constant: for nAGQ > 1 glmer's value plus the saturated
        model's -2 log-likelihood it leaves out (glmm/agq.py); else :attr:`minus2loglik`."""
        if self.nAGQ > 1:
            return self.objective + self.model.response.saturated_minus2loglik()
        return self.minus2loglik

    @property
    def loglik(self) -> float:
        return -0.5 * self.minus2loglik

    @property
    def npar(self) -> int:
        return self.theta.size + self.beta.size

    @property
    def nobs(self) -> int:
        return self.model.nobs

    @property
    def aic(self) -> float:
        return self.minus2loglik + 2 * self.npar

    @property
    def bic(self) -> float:
        return self.minus2loglik + math.log(self.nobs) * self.npar

    def deviance(self) -> float:
        """glmer's deviance(): the sum of squared deviance residuals at the fit."""
        return self.mode.deviance_sum

    @property
    def converged(self) -> bool:
        return bool(self.optsummary.converged)

    @property
    def is_singular(self) -> bool:
        from ..diagnostics import singular_terms

        return bool(singular_terms(self.model.lmm, self.theta))

    # -- fixed effects ------------------------------------------------------------------
    @property
    def fixef(self) -> pd.Series:
        return pd.Series(self.beta, index=self.model.fixef_names, name="Estimate")

    def hessian(self) -> np.ndarray:
        """Central-difference Hessian of the deviance in (theta, beta) at the fit (cached)."""
        if self._hessian is None:
            from .hessian import deviance_hessian

            self._hessian = deviance_hessian(self.model, self.theta, self.beta, self.u, self.nAGQ)
        return self._hessian

    def vcov(self, use_hessian: bool | None = None) -> pd.DataFrame:
        """Covariance of the fixed effects: glmer's default (Hessian for nAGQ >= 1, R_X for
        nAGQ = 0), or the one chosen by ``use_hessian``."""
        names = self.model.fixef_names
        sparse = getattr(self.model, "sparse_X", False)     # sparse X: (R_X'R_X)^-1 unless asked (cost O(p^2) fits)
        use = self.nAGQ >= 1 and not sparse if use_hessian is None else bool(use_hessian)
        if use:
            H = self.hessian()
            nt = self.theta.size
            V = np.linalg.inv(H)[nt:, nt:] * 2.0
            if not np.all(np.isfinite(V)) or np.any(np.diag(V) <= 0):
                from ..errors import NumericalError

                raise NumericalError("the Hessian of the deviance is not positive definite at the fit; use "
                                     "vcov(use_hessian=False) for the conditional (R_X) covariance")
        elif sparse:                    # the X block of Maug^-1 (linalg/augmented.py)
            eng, st = self._joint_state(engine=True)
            V = eng.aug.xinv(st.factor) if names else np.zeros((0, 0))
        else:
            RX = self._joint_state().RX
            Rinv = sla.solve_triangular(RX, np.eye(len(names)), lower=False)
            V = Rinv @ Rinv.T
        return pd.DataFrame(V, index=names, columns=names)

    def _joint_state(self, engine: bool = False):
        """The PLS state of the joint (u, beta) system at the mode's working weights
        (``engine``: (the reweighted engine, the state))."""
        rows = self.model.rows
        cp, _ = rows.products(rows.evaluate(self.beta, self.b), joint=True)
        eng = self.model.engine.reweighted(cp)
        st = eng.solve(self.theta, reml=False)
        return (eng, st) if engine else st

    @property
    def fixef_se(self) -> pd.Series:
        names = self.model.fixef_names
        if getattr(self.model, "sparse_X", False) and names:
            # sparse X, (R_X'R_X)^-1 (vcov's default there): its diagonal from a selected inverse
            if "_xinv_diag" not in self.__dict__:
                eng, st = self._joint_state(engine=True)
                self._xinv_diag = eng.aug.xinv_diag(st.factor)
            return pd.Series(np.sqrt(self._xinv_diag), index=names, name="Std. Error")
        return pd.Series(np.sqrt(np.diag(self.vcov().to_numpy())), index=self.model.fixef_names,
                         name="Std. Error")

    def coef_table(self) -> pd.DataFrame:
        """Estimate, Std. Error, z value, Pr(>|z|) (glmer's summary)."""
        from scipy.stats import norm

        est, se = self.fixef, self.fixef_se
        z = est / se
        return pd.DataFrame({"Estimate": est, "Std. Error": se, "z value": z,
                             "Pr(>|z|)": 2 * norm.sf(np.abs(z))})

    # -- random effects -----------------------------------------------------------------
    @property
    def varcorr(self) -> pd.DataFrame:
        """lme4's as.data.frame(VarCorr(fit)) (no residual row: the dispersion is 1)."""
        vc = varcorr_frame(self.model.terms, self.theta, 1.0)
        return vc[vc["grp"] != "Residual"].reset_index(drop=True)

    @property
    def cov_re(self) -> dict:
        return {t.name: pd.DataFrame(S, index=t.columns, columns=t.columns)
                for t, S in zip(self.model.terms, term_covariances(self.model.terms, self.theta, 1.0))}

    def condsd(self) -> np.ndarray:
        """Conditional SDs of b: sqrt(diag(Lambda M^-1 Lambda')) at the mode's weights
        (lme4's ranef(condVar = TRUE) with dispersion 1)."""
        st = self.mode.state
        f = st.mfactor if getattr(st, "mfactor", None) is not None else st.factor     # M's (sparse X: not Maug's)
        relcov = self.model.relcov
        Lam = relcov.Lambda(self.theta)
        q = relcov.q
        # diag(Lambda M^-1 Lambda') = column sums of (L^-1 P Lambda')^2
        W = f.solve_L(np.asarray(Lam.T.toarray()))
        return np.sqrt(np.sum(W * W, axis=0)) if q else np.zeros(0)

    def ranef_frame(self) -> pd.DataFrame:
        """lme4's as.data.frame(ranef(fit, condVar = TRUE)): grpvar, term, grp, condval, condsd."""
        sd = self.condsd()
        rows = []
        off = 0
        for t in self.model.terms:
            vals = self.b[off: off + t.q].reshape(t.nlevels, t.k)
            sds = sd[off: off + t.q].reshape(t.nlevels, t.k)
            for j, c in enumerate(t.columns):
                for i, lev in enumerate(t.group.levels):
                    rows.append((t.group.name, c, str(lev), vals[i, j], sds[i, j]))
            off += t.q
        return pd.DataFrame(rows, columns=["grpvar", "term", "grp", "condval", "condsd"])

    # -- rows ---------------------------------------------------------------------------
    def fitted(self, na_action: str | None = None) -> pd.Series:
        """mu-hat, the fitted values on the response scale (proportions for binomial): a
        Series on the data's row labels, the rows used in the fit (``na_action="omit"``, R's
        na.omit) or every row with NaN for those dropped for missing values ("exclude")."""
        from ..results.export import row_series

        return row_series(self, self._rows("fitted()").mu.copy(), "fitted", na_action)

    def linear_predictor(self) -> np.ndarray:
        return self._rows("linear_predictor()").eta.copy()

    def _rows(self, what: str):
        """The mode, whose row-level values exist only for rows in memory."""
        if self.mode.eta is None:
            from ..design import StreamedDataError

            raise StreamedDataError(f"the model was built from a Dask DataFrame and keeps no rows, so {what} is "
                                    "not available; build it from a pandas DataFrame for row-level quantities")
        return self.mode

    def residuals(self, type: str = "deviance", na_action: str | None = None) -> pd.Series:
        """lme4's residuals(fit, type): deviance (default), pearson, working, response; a
        Series indexed as :meth:`fitted` (``na_action``: "omit" or "exclude")."""
        from ..results.export import row_series

        return row_series(self, self._residual_values(type), "residuals", na_action)

    def _residual_values(self, type: str) -> np.ndarray:
        if type not in RESIDUAL_TYPES:
            from ..errors import ArgumentError

            raise ArgumentError(f"type must be one of {RESIDUAL_TYPES}, got {type!r}")
        mode = self._rows(f"residuals({type!r})")
        r = self.model.response
        mu, eta, y = mode.mu, mode.eta, r.y
        if type == "response":
            return y - mu
        if type == "working":
            return (y - mu) / r.family.link.mu_eta(eta)
        if type == "pearson":
            return (y - mu) * np.sqrt(r.prior_weights) / np.sqrt(r.family.variance(mu))
        d = r.family.dev_resids(y, mu, r.prior_weights)
        return np.sign(y - mu) * np.sqrt(np.clip(d, 0.0, None))

    # -- prediction, simulation, inference (glmm/predict.py, simulate.py, compare.py) ----
    def predict(self, newdata=None, type: str = "link", re_form=None, allow_new_levels: bool = False,
                se_fit: bool = False, interval: str = "none", level: float = 0.95, se_type: str = "conditional"):
        """lme4's ``predict``: a Series on the link (``type="link"``) or response scale
        (``"response"``), indexed as ``newdata`` (None: the fit's rows); ``re_form`` None (all
        random effects), ``"~0"``/``"NA"`` (none) or a formula such as ``"~(1|g)"``; levels not
        seen in the fit need ``allow_new_levels=True`` (their random effects are 0).  The
        formula's ``offset()`` terms are evaluated on newdata.  ``se_fit=True`` and/or
        ``interval="confidence"`` return a DataFrame (``fit``, ``lwr``, ``upr``, ``se_fit``):
        ``se_type="conditional"`` (default) the uncertainty of beta-hat and b-hat jointly with
        theta known (glmmTMB's se.fit less theta's part), ``"fixed"`` that of beta-hat only
        (vcov()); see glmm/predict.py."""
        from .predict import predict

        return predict(self, newdata, type=type, re_form=re_form, allow_new_levels=allow_new_levels,
                       se_fit=se_fit, interval=interval, level=level, se_type=se_type)

    def simulate(self, nsim: int = 1, seed=None, use_u: bool = False) -> pd.DataFrame:
        """lme4's ``simulate``: ``nsim`` responses (columns ``sim_1`` ...; proportions for a
        binomial response) from new random effects u ~ N(0, I) (``use_u``: the conditional
        modes) and the family, with the fit's prior weights; ``seed`` None, an int or a
        ``numpy.random.Generator``."""
        from .simulate import simulate

        return simulate(self, nsim, seed=seed, use_u=use_u)

    def bootstrap(self, nsim: int = 100, seed=None, stat=None, use_u: bool = False,
                  progress: bool = False) -> pd.DataFrame:
        """Parametric bootstrap (lme4's ``bootMer``): ``nsim`` rows of ``stat(refit)`` (default:
        fixed effects and theta), each simulated response refitted with this fit's design and
        nAGQ; failed refits are NaN rows (``.attrs["nfail"]``)."""
        from .simulate import bootstrap

        return bootstrap(self, nsim, seed=seed, stat=stat, use_u=use_u, progress=progress)

    def confint(self, parm=None, level: float = 0.95, method: str = "Wald", nsim: int = 500, seed=None,
                progress: bool = False) -> pd.DataFrame:
        """lme4's ``confint``: rows ``.sig01 ...`` and the fixed effects; ``method`` "Wald"
        (z intervals from :meth:`vcov`, NaN for the .sig rows), "profile" (the Laplace
        deviance's likelihood profile, glmm/profile.py: scalar terms' SDs and the fixed
        effects) or "boot" (percentile intervals from ``nsim`` bootstrap refits)."""
        from .simulate import confint

        return confint(self, parm=parm, level=level, method=method, nsim=nsim, seed=seed, progress=progress)

    def profile(self, which=None, alphamax: float = 0.01, maxpts: int = 100):
        """lme4's ``profile(fit)``: a :class:`~sparsemixed.inference.profile.LikelihoodProfile`
        (``as.data.frame(profile(fit))``: ``.zeta`` and every parameter along each profiled one;
        ``which``: None, names, ``"theta_"``, ``"beta_"``), with ``confint(level)`` and ``plot_zeta()``;
        see glmm/profile.py."""
        from ..inference.profile import profile_result

        return profile_result(self, which=which, alphamax=alphamax, maxpts=maxpts)

    def anova(self, *others, names=None) -> pd.DataFrame:
        """Likelihood-ratio tests of this fit against other glmer fits (``sparsemixed.anova``)."""
        from .compare import anova

        return anova(self, *others, names=names)

    def drop1(self, scope=None, test: str = "Chisq") -> pd.DataFrame:
        """Single-term deletions of the fixed terms contained in no other (``scope``: some
        of them): ``test="Chisq"`` lme4's ``drop1(fit, test = "Chisq")`` (likelihood-ratio
        tests of refits: rows ``<none>`` and each term, columns npar, AIC, LRT, Pr(Chi)),
        ``"none"`` npar and AIC only, ``"Wald"`` Wald chi-square tests from :meth:`vcov`
        (columns Chisq, Df, Pr(>Chisq); car's Anova for these terms).  See
        :mod:`sparsemixed.inference.ranova`."""
        from ..inference.ranova import drop1_glmer

        return drop1_glmer(self, scope=scope, test=test)

    def update(self, formula: str | None = None, data=None, **kw) -> "GlmerResult":
        """R's ``update``: the model refitted with ``formula`` updated from this one's
        (``". ~ . - x"``: R's update.formula) and/or new ``data``; family, nAGQ, prior
        weights and offset as this fit's unless given (weights=, offset=, family=, nAGQ=,
        na_action=), other keywords go to ``fit()``."""
        from ..inference.update import refit_glmer

        return refit_glmer(self, formula, data, **kw)

    def emmeans(self, specs, by=None, **kwargs):
        """Estimated marginal means, as R's emmeans (``sparsemixed.emmeans``): on the link
        scale, or back-transformed with ``type="response"`` (probabilities, rates); z-based
        (df Inf).  ``.pairs()`` gives log odds ratios / log ratios (odds ratios / ratios on
        the response scale)."""
        from ..inference.emmeans import emmeans

        return emmeans(self, specs, by=by, **kwargs)

    # -- export -------------------------------------------------------------------------
    def to_dict(self, ranef: bool = True) -> dict:
        """Every estimate as plain Python data (json.dumps-able)."""
        from .export import to_dict

        return to_dict(self, ranef=ranef)

    def to_frame(self) -> pd.DataFrame:
        """One row per estimate: effect, group, term, estimate, std_error, statistic, p_value."""
        from .export import to_frame

        return to_frame(self)

    def _repr_html_(self) -> str:
        from .export import html

        return html(self)

    def to_latex(self, **kw) -> str:
        """A publication table of this fit in LaTeX (booktabs); see :func:`sparsemixed.table`."""
        from ..results.export import table

        return table([self], **kw).to_latex()

    def to_markdown(self, **kw) -> str:
        """A publication table of this fit in Markdown; see :func:`sparsemixed.table`."""
        from ..results.export import table

        return table([self], **kw).to_markdown()

    # -- printing -----------------------------------------------------------------------
    def summary(self) -> str:
        from .display import summary_text

        return summary_text(self)

    def __str__(self) -> str:
        return self.summary()

    def __repr__(self) -> str:
        return (f"<GlmerResult {self.model.formula!r} ({self.model.family!r}, nAGQ={self.nAGQ}): "
                f"-2logLik {self.minus2loglik:.4f}, theta={np.round(self.theta, 5).tolist()}>")


def _tables_print_whole():
    from ..results.lmer_result import _tables_print_whole as wrap

    wrap(GlmerResult, methods=("coef", "coef_table", "ranef_frame", "confint", "anova", "drop1", "to_frame"),
         properties=("varcorr", "ranef"))


_tables_print_whole()
