"""MixedLMResults: statsmodels' results object for a MixedLM fit on the sparse engine.

    scale = sigma^2,  cov_re = scale * T T',  vcomp = scale * theta_vc^2
    params = [fe_params, vec_lt(cov_re / scale), vcomp / scale]     (statsmodels' packing)
    cov_params = (-H)^-1,  H = MixedLM.hessian at params
    bse_fe = sqrt(diag(cov_params))[:k_fe],  bse_re = sqrt(scale * diag(cov_params)[k_fe:])
    random_effects[g]     = E(gamma_g, theta_g | y) = (Lambda u)[effects of g]
    random_effects_cov[g] = scale * (Lambda M^-1 Lambda')[effects of g]   (given beta)
"""
from __future__ import annotations

import warnings
from functools import cached_property

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConvergenceWarning, SparseMixedError
from ..inference.condvar import relative_condcov_blocks, relative_condvar_diag
from .model import MAX_GROUP_COV
from .params import MixedLMParams


class ContrastResults:
    """Wald (z) test of linear hypotheses R params = q."""

    def __init__(self, effect, sd, names, q):
        self.effect, self.sd, self.names, self.q = effect, sd, names, q
        self.tvalue = (effect - q) / sd
        self.pvalue = 2 * stats.norm.sf(np.abs(self.tvalue))

    def conf_int(self, alpha=0.05):
        z = stats.norm.ppf(1 - alpha / 2)
        return np.column_stack([self.effect - z * self.sd, self.effect + z * self.sd])

    def summary_frame(self, alpha=0.05):
        ci = self.conf_int(alpha)
        return pd.DataFrame({"coef": self.effect, "std err": self.sd, "z": self.tvalue, "P>|z|": self.pvalue,
                             "Conf. Int. Low": ci[:, 0], "Conf. Int. Upp.": ci[:, 1]}, index=self.names)

    def __repr__(self):
        return "Test for Constraints\n" + self.summary_frame().to_string()


class MixedLMResults:
    def __init__(self, model, res):
        self.model, self.engine_result = model, res
        self.k_fe, self.k_re, self.k_re2, self.k_vc = model.k_fe, model.k_re, model.k_re2, model.k_vc
        self.use_sqrt, self.reml = model.use_sqrt, model.reml
        self.method = "REML" if self.reml else "ML"
        self.nobs = model.nobs
        self.scale = float(res.sigma ** 2)
        packed = res.theta[model._pos]
        T = np.zeros((self.k_re, self.k_re))
        T[np.tril_indices(self.k_re)] = packed[: self.k_re2]
        self.cov_re_unscaled = T @ T.T
        names = model.exog_re_names
        self.cov_re = pd.DataFrame(self.scale * self.cov_re_unscaled, index=names, columns=names)
        self.vcomp = self.scale * packed[self.k_re2:] ** 2
        self.fe_params = pd.Series(res.beta, index=model.exog_names)
        self.params_object = MixedLMParams.from_components(res.beta, cov_re_sqrt=T, vcomp=packed[self.k_re2:] ** 2)
        self.params = pd.Series(self.params_object.get_packed(use_sqrt=False, has_fe=True), index=model.param_names)
        self.converged = bool(res.converged)
        self.optsummary = res.optsummary
        self.df_resid = self.nobs - self.k_fe
        self._theta = res.theta
        if (self.k_re and np.min(np.abs(np.diag(self.cov_re_unscaled))) < 1e-8) or \
                (self.k_vc and np.min(self.vcomp) <= 1e-8 * self.scale):
            warnings.warn("a variance parameter is at 0: the estimate is on the boundary of the parameter "
                          "space (a singular fit); its standard error is not available (NaN)",
                          ConvergenceWarning, stacklevel=3)

    # -- sampling covariance -------------------------------------------------------------
    @cached_property
    def hessian(self) -> np.ndarray:
        return self.model.hessian(self.params_object)[0]

    @cached_property
    def _pcov(self) -> np.ndarray:
        H = self.hessian
        ok = np.all(np.isfinite(H), axis=0)
        pcov = np.full_like(H, np.nan)
        if ok.any():
            Hs = -H[np.ix_(ok, ok)]
            try:
                np.linalg.cholesky(Hs)
            except np.linalg.LinAlgError:
                warnings.warn("the Hessian of the log-likelihood is not negative definite at the estimate; "
                              "standard errors are unreliable", ConvergenceWarning, stacklevel=4)
            pcov[np.ix_(ok, ok)] = np.linalg.pinv(Hs)
        return pcov

    def cov_params(self) -> pd.DataFrame:
        """(-H)^-1 for [fe_params, vec_lt(cov_re / scale), vcomp / scale] (statsmodels)."""
        n = self.model.param_names
        return pd.DataFrame(self._pcov, index=n, columns=n)

    @property
    def bse(self) -> pd.Series:
        return pd.Series(np.sqrt(np.diag(self._pcov)), index=self.model.param_names)

    @property
    def bse_fe(self) -> pd.Series:
        return self.bse.iloc[: self.k_fe]

    @property
    def bse_re(self) -> pd.Series:
        b = np.sqrt(self.scale * np.diag(self._pcov)[self.k_fe:])
        return pd.Series(b, index=self.model.param_names[self.k_fe:])

    @property
    def tvalues(self) -> pd.Series:
        return self.params / self.bse

    @property
    def pvalues(self) -> pd.Series:
        return pd.Series(2 * stats.norm.sf(np.abs(self.tvalues.to_numpy())), index=self.params.index)

    def conf_int(self, alpha=0.05) -> pd.DataFrame:
        z = stats.norm.ppf(1 - alpha / 2)
        return pd.DataFrame({0: self.params - z * self.bse, 1: self.params + z * self.bse})

    def t_test(self, r_matrix, use_t=None) -> ContrastResults:
        """Wald tests of R fe_params = q; ``r_matrix`` is an array (rows over fe_params or
        over all params), a parameter name, or strings "name = value"."""
        names = list(self.model.param_names)
        q = None
        if isinstance(r_matrix, str):
            r_matrix = [r_matrix]
        if isinstance(r_matrix, (list, tuple)) and r_matrix and all(isinstance(s, str) for s in r_matrix):
            R = np.zeros((len(r_matrix), len(names)))
            q = np.zeros(len(r_matrix))
            for i, s in enumerate(r_matrix):
                lhs, _, rhs = s.partition("=")
                lhs = lhs.strip()
                if lhs not in names:
                    raise SparseMixedError(f"t_test: {lhs!r} is not a parameter; parameters are {names}")
                R[i, names.index(lhs)] = 1.0
                q[i] = float(rhs) if rhs.strip() else 0.0
        else:
            R = np.atleast_2d(np.asarray(r_matrix, dtype=float))
            if R.shape[1] == self.k_fe:
                R = np.hstack([R, np.zeros((R.shape[0], len(names) - self.k_fe))])
            if R.shape[1] != len(names):
                raise SparseMixedError(f"t_test: r_matrix needs {self.k_fe} or {len(names)} columns, "
                                       f"got {R.shape[1]}")
        q = np.zeros(R.shape[0]) if q is None else q
        C = np.nan_to_num(self._pcov)
        effect = R @ self.params.to_numpy()
        sd = np.sqrt(np.einsum("ij,jk,ik->i", R, C, R))
        labels = [" + ".join(f"{v:g}*{names[j]}" for j, v in enumerate(r) if v) for r in R]
        return ContrastResults(effect, sd, labels, q)

    # -- likelihood ----------------------------------------------------------------------
    @cached_property
    def llf(self) -> float:
        return float(self.model.loglike(self.params_object, profile_fe=False))

    @property
    def aic(self) -> float:
        return np.nan if self.reml else -2 * (self.llf - (self.params.size + 1))

    @property
    def bic(self) -> float:
        return np.nan if self.reml else -2 * self.llf + np.log(self.nobs) * (self.params.size + 1)

    # -- random effects ------------------------------------------------------------------
    def _group_effects(self):
        """Per group: (positions in the engine's b, names)."""
        m = self.model
        eng = m._engine
        offs = np.concatenate([[0], np.cumsum([t.q for t in eng.terms])])
        where = {inp: j for j, inp in enumerate(eng.term_order)}
        per = [([], []) for _ in range(m.n_groups)]
        if m.k_re:
            o = offs[where[0]]
            for g in range(m.n_groups):
                per[g][0].extend(range(o + g * m.k_re, o + (g + 1) * m.k_re))
                per[g][1].extend(m.exog_re_names)
        for l, vc in enumerate(m._vcs):
            o = offs[where[l + (1 if m.k_re else 0)]]
            order = np.argsort(vc.level_group, kind="stable")
            bounds = np.searchsorted(vc.level_group[order], np.arange(m.n_groups + 1))
            for g in range(m.n_groups):
                lev = order[bounds[g]: bounds[g + 1]]
                per[g][0].extend((o + lev).tolist())
                per[g][1].extend(f"{vc.name}[{vc.level_col[k]}]" for k in lev)
        return per

    @cached_property
    def random_effects(self) -> dict:
        b = self.engine_result.b
        return {lab: pd.Series(b[np.asarray(pos, np.int64)], index=names)
                for lab, (pos, names) in zip(self.model.group_labels, self._group_effects())}

    @cached_property
    def random_effects_cov(self) -> dict:
        """Per group, Var(effects of the group | y) (beta taken as known, as statsmodels):
        a DataFrame; for a group with more than MAX_GROUP_COV effects (e.g. the one-group
        idiom for crossed components) only the conditional variances, as a Series."""
        per = self._group_effects()
        small = [i for i, (pos, _) in enumerate(per) if len(pos) <= MAX_GROUP_COV]
        blocks = relative_condcov_blocks(self.model._engine, self._theta, [per[i][0] for i in small])
        out = {}
        for i, B in zip(small, blocks):
            names = per[i][1]
            out[self.model.group_labels[i]] = pd.DataFrame(self.scale * B, index=names, columns=names)
        if len(small) < len(per):
            d = self.scale * relative_condvar_diag(self.model._engine, self._theta)
            for i, (pos, names) in enumerate(per):
                if len(pos) > MAX_GROUP_COV:
                    out[self.model.group_labels[i]] = pd.Series(d[np.asarray(pos, np.int64)], index=names)
        return {g: out[g] for g in self.model.group_labels}

    # -- fitted values -------------------------------------------------------------------
    @cached_property
    def fittedvalues(self) -> np.ndarray:
        from ..crossprod import z_matrix
        from ..terms.random_term import MatrixRows, TermRows

        m = self.model
        eng = m._engine
        rows = []
        for inp in eng.term_order:
            if m.k_re and inp == 0:
                rows.append(TermRows(m._gcodes, m.exog_re))
            else:
                rows.append(MatrixRows(m._vcs[inp - (1 if m.k_re else 0)].Z))
        Z = z_matrix(rows, [t.nlevels for t in eng.terms])
        return m.exog @ self.fe_params.to_numpy() + Z @ self.engine_result.b

    @property
    def resid(self) -> np.ndarray:
        return self.model.endog - self.fittedvalues

    def predict(self, exog=None) -> np.ndarray:
        """Fixed-effects predictions (statsmodels: the random effects are not included)."""
        return self.model.predict(self.fe_params.to_numpy(), exog)

    # -- display -------------------------------------------------------------------------
    def summary(self, yname=None, xname_fe=None, xname_re=None, title=None, alpha=0.05) -> str:
        from .summary import summary_text

        return summary_text(self, yname, title, alpha)

    def __repr__(self) -> str:
        return f"<sparsemixed MixedLMResults: {self.method}, llf={self.llf:.4f}, converged={self.converged}>"
