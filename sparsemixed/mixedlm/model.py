"""MixedLM: statsmodels' interface (its design note's model and packing) on the sparse engine.

    y_ij = x_ij' beta + z_ij' gamma_i + sum_l sum_k v_ijlk theta_ilk + e_ij
    gamma_i ~ N(0, Psi),  theta_ilk ~ N(0, tau_l^2),  e_ij ~ N(0, sigma^2)

is lme4's model with one term (z | group) of covariance Psi = sigma^2 T T' and, for each
variance component l, one scalar term whose random effects are the (group, column k)
pairs with Z entries v_ijlk and variance tau_l^2 = sigma^2 theta_l^2.  Both become terms
of a :class:`~sparsemixed.model.LinearMixedModel` (built by ``from_parts``), so the
likelihood, the score and the fit run on the sparse factor: no per-group
Sherman-Morrison-Woodbury loop, and crossed components written statsmodels' way (one
group, ``vc_formula={"a": "0 + C(a)", ...}``) cost what the lme4 formula costs.

    loglike = -criterion / 2          (beta and sigma^2 profiled; REML as statsmodels)
    score   = -gradient / 2           in [vec_lt(Psi^1/2), sqrt(vcomp)] (use_sqrt), or by
              the chain rule in [vec_lt(Psi), vcomp]
    hessian = d score_full / d [beta, vec_lt(Psi), vcomp]   (central differences of the
              analytic score with beta free)
"""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import scipy.sparse as sp

from .. import objective as obj
from ..errors import DataError, SparseMixedError
from ..gradient import gradient_parts
from ..model import LinearMixedModel
from ..numdiff import hessian_from_gradient
from ..terms.grouping import GroupingFactor
from ..terms.random_term import MatrixRows, RandomTerm, TermRows
from .params import MixedLMParams

MAX_GROUP_COV = 2000       # random_effects_cov gives full blocks up to this many effects


class VCSpec:
    """Variance components as statsmodels holds them: ``mats[l][group_ix]`` is the
    (rows of the group) x (m_il) design of component l in group ``group_labels[group_ix]``."""

    def __init__(self, names, colnames, mats):
        self.names, self.colnames, self.mats = list(names), colnames, mats


class _VC:
    """One variance component on the engine: its Z block (n x levels) and, per level,
    the group index and column name."""

    def __init__(self, name, Z, level_group, level_col):
        self.name, self.Z = name, sp.csr_matrix(Z)
        self.level_group, self.level_col = np.asarray(level_group, np.int64), list(level_col)


def _as_2d(a, n, what):
    if a is None:
        return None, None
    names = list(a.columns) if isinstance(a, pd.DataFrame) else None
    arr = np.asarray(a, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.shape[0] != n:
        raise DataError(f"{what} has {arr.shape[0]} rows but endog has {n}")
    return arr, names


def _check_finite(arr, what, names=None):
    if arr is None or arr.size == 0:
        return
    bad = ~np.isfinite(arr)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0]) if arr.ndim == 2 else 0
        col = names[j] if names else f"column {j}"
        raise DataError(f"{what} ({col}) has {int(bad.sum())} missing or infinite values; drop those "
                        "rows first, or use MixedLM.from_formula(..., missing='drop')")


def _vcs_from_spec(spec, row_indices, n) -> list[_VC]:
    out = []
    for l, name in enumerate(spec.names):
        rows, cols, vals, lev_group, lev_col = [], [], [], [], []
        off = 0
        for gi, ridx in enumerate(row_indices):
            mat = spec.mats[l][gi]
            mat = mat.toarray() if sp.issparse(mat) else np.asarray(mat, dtype=float)
            mat = mat.reshape(len(ridx), -1)
            _check_finite(mat, f"exog_vc[{name!r}]")
            r, c = np.nonzero(mat)
            rows.append(ridx[r])
            cols.append(off + c)
            vals.append(mat[r, c])
            names = spec.colnames[l][gi] if spec.colnames else [str(k) for k in range(mat.shape[1])]
            lev_group += [gi] * mat.shape[1]
            lev_col += list(names)
            off += mat.shape[1]
        Z = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n, off))
        out.append(_VC(name, Z, lev_group, lev_col))
    return out


class MixedLM:
    """statsmodels' ``MixedLM(endog, exog, groups, exog_re=None, exog_vc=None, use_sqrt=True)``.

    ``exog_vc`` is a VCSpec (ours or statsmodels') or the older dict
    ``{name: {group: matrix}}``.  ``fit(reml=True)`` returns :class:`MixedLMResults`.
    """

    def __init__(self, endog, exog, groups, exog_re=None, exog_vc=None, use_sqrt=True,
                 missing="none", **kwargs):
        unknown = set(kwargs) - {"missing_idx", "model_spec", "formula", "group_name", "_vcs",
                                 "exog_re_names", "endog_name"}
        if unknown:
            raise TypeError(f"MixedLM got unexpected argument(s) {sorted(unknown)}")
        if missing not in ("none", "drop", "raise"):
            raise SparseMixedError(f"missing must be 'none', 'drop' or 'raise', got {missing!r}")
        self.use_sqrt, self.reml, self.missing = bool(use_sqrt), True, missing
        self.formula = kwargs.get("formula")
        self.endog_name = kwargs.get("endog_name") or (endog.name if isinstance(endog, pd.Series) and endog.name else "y")
        y = np.asarray(endog, dtype=float).reshape(-1)
        n = y.shape[0]
        if n == 0:
            raise DataError("endog is empty: there are no observations to fit")
        X, xnames = _as_2d(exog, n, "exog")
        if X is None:
            X, xnames = np.zeros((n, 0)), []
        self.exog_names = xnames or [f"FE{k + 1}" for k in range(X.shape[1])]
        groups = np.asarray(groups)
        if groups.shape[0] != n:
            raise DataError(f"groups has {groups.shape[0]} values but endog has {n}")
        if pd.isna(pd.Series(groups)).any():
            raise DataError("groups has missing values; drop those rows first")
        self.group_name = kwargs.get("group_name", "Group")
        vcs_given = kwargs.get("_vcs")
        if exog_re is None and exog_vc is None and vcs_given is None:
            Zre, re_names = np.ones((n, 1)), [self.group_name]
            re_names = ["Group"] if self.group_name == "Group" else re_names
        else:
            Zre, re_names = _as_2d(exog_re, n, "exog_re")
            if Zre is None:
                Zre, re_names = np.zeros((n, 0)), []
        if kwargs.get("exog_re_names") is not None:
            re_names = list(kwargs["exog_re_names"])
        self.exog_re_names = re_names or [f"Z{k + 1}" for k in range(Zre.shape[1])]
        _check_finite(y[:, None], "endog", [self.endog_name])
        _check_finite(X, "exog", self.exog_names)
        _check_finite(Zre, "exog_re", self.exog_re_names)
        self.endog, self.exog, self.exog_re, self.groups = y, X, Zre, groups

        labels, gcodes = np.unique(groups, return_inverse=True)
        self.group_labels = list(labels)
        self._gcodes = gcodes.reshape(-1).astype(np.int64)
        order = np.argsort(self._gcodes, kind="stable")
        bounds = np.searchsorted(self._gcodes[order], np.arange(len(labels) + 1))
        self._row_idx = [order[bounds[i]: bounds[i + 1]] for i in range(len(labels))]
        self.row_indices = {g: list(ix) for g, ix in zip(self.group_labels, self._row_idx)}
        self.n_groups = len(self.group_labels)

        if vcs_given is not None:
            self._vcs = vcs_given
        elif exog_vc is None:
            self._vcs = []
        else:
            if isinstance(exog_vc, dict):
                names = sorted(exog_vc)
                mats = [[exog_vc[nm].get(g, np.zeros((len(ix), 0))) for g, ix in zip(self.group_labels, self._row_idx)]
                        for nm in names]
                exog_vc = VCSpec(names, [[[f"{k}" for k in range(np.asarray(m).reshape(len(ix), -1).shape[1])]
                                          for m, ix in zip(ms, self._row_idx)] for ms in mats], mats)
            self._vcs = _vcs_from_spec(exog_vc, self._row_idx, n)
        self.k_fe, self.k_re = X.shape[1], Zre.shape[1]
        self.k_re2 = self.k_re * (self.k_re + 1) // 2
        self.k_vc = len(self._vcs)
        self.nobs = self.n_totobs = n
        if self.k_re == 0 and self.k_vc == 0:
            raise SparseMixedError("the model has no random effects: give exog_re or exog_vc")
        self._engine = self._build_engine()

    # -- construction ------------------------------------------------------------------
    def _build_engine(self) -> LinearMixedModel:
        terms, rows = [], []
        if self.k_re:
            gf = GroupingFactor(self.group_name, (self.group_name,), [str(g) for g in self.group_labels])
            terms.append(RandomTerm(" + ".join(self.exog_re_names), gf, list(self.exog_re_names), None,
                                    name=self.group_name))
            rows.append(TermRows(self._gcodes, self.exog_re))
        for vc in self._vcs:
            levels = [f"{self.group_labels[g]}:{c}" for g, c in zip(vc.level_group, vc.level_col)]
            gf = GroupingFactor(vc.name, (vc.name,), levels)
            terms.append(RandomTerm(vc.name, gf, [vc.name], None, name=vc.name))
            rows.append(MatrixRows(vc.Z))
        eng = LinearMixedModel.from_parts(self.endog, self.exog, self.exog_names, terms, rows,
                                          REML=True, label=self.formula or "MixedLM")
        if eng.dropped_fixef:
            raise DataError(f"exog is rank deficient: column(s) {', '.join(eng.dropped_fixef)} are linear "
                            "combinations of the others; remove them (statsmodels would fail on the "
                            "singular X'V^-1X too)")
        # packed (sqrt) position -> engine theta position
        offs = np.concatenate([[0], np.cumsum([t.ntheta for t in eng.terms])])
        where = {inp: j for j, inp in enumerate(eng.term_order)}
        pos = []
        if self.k_re:
            j = where[0]
            rows_c, cols_c = eng.terms[j].cov.tril_indices()
            lookup = {(int(r), int(c)): offs[j] + i for i, (r, c) in enumerate(zip(rows_c, cols_c))}
            pos += [lookup[(int(r), int(c))] for r, c in zip(*np.tril_indices(self.k_re))]
        for l in range(self.k_vc):
            pos.append(offs[where[l + (1 if self.k_re else 0)]])
        self._pos = np.array(pos, dtype=np.int64)
        return eng

    @property
    def exog_vc(self) -> VCSpec:
        """The variance components as a statsmodels VCSpec (built on demand)."""
        names = [vc.name for vc in self._vcs]
        mats, colnames = [], []
        for vc in self._vcs:
            m_l, c_l = [], []
            for gi, ix in enumerate(self._row_idx):
                lev = np.flatnonzero(vc.level_group == gi)
                m_l.append(vc.Z[ix][:, lev].toarray())
                c_l.append([vc.level_col[k] for k in lev])
            mats.append(m_l)
            colnames.append(c_l)
        return VCSpec(names, colnames, mats)

    @property
    def exog_re_li(self):
        return [self.exog_re[ix] for ix in self._row_idx]

    @property
    def endog_li(self):
        return [self.endog[ix] for ix in self._row_idx]

    @property
    def exog_li(self):
        return [self.exog[ix] for ix in self._row_idx]

    def group_list(self, array):
        a = np.asarray(array)
        return [a[ix] for ix in self._row_idx]

    @property
    def param_names(self) -> list[str]:
        names = list(self.exog_names)
        for i in range(self.k_re):
            for j in range(i + 1):
                names.append(f"{self.exog_re_names[i]} Var" if i == j
                             else f"{self.exog_re_names[j]} x {self.exog_re_names[i]} Cov")
        return names + [f"{vc.name} Var" for vc in self._vcs]

    @property
    def vcomp_names(self) -> list[str]:
        return [vc.name for vc in self._vcs]

    # -- parameters <-> theta ----------------------------------------------------------
    def _params(self, params, has_fe: bool) -> MixedLMParams:
        if isinstance(params, MixedLMParams):
            return params
        if hasattr(params, "cov_re") and hasattr(params, "vcomp"):      # e.g. statsmodels' own
            fe = getattr(params, "fe_params", None)
            return MixedLMParams.from_components(np.zeros(self.k_fe) if fe is None else fe,
                                                 cov_re=params.cov_re, vcomp=params.vcomp)
        params = np.asarray(params, dtype=float).reshape(-1)
        want = self.k_re2 + self.k_vc + (self.k_fe if has_fe else 0)
        if params.size != want:
            raise SparseMixedError(f"packed parameter vector must have {want} elements "
                                   f"({'k_fe + ' if has_fe else ''}k_re2 + k_vc), got {params.size}")
        return MixedLMParams.from_packed(params, self.k_fe, self.k_re, self.use_sqrt, has_fe)

    def _theta(self, pa: MixedLMParams) -> np.ndarray:
        if pa.k_re != self.k_re or pa.k_vc != self.k_vc:
            raise SparseMixedError(f"parameters have k_re={pa.k_re}, k_vc={pa.k_vc}; the model has "
                                   f"k_re={self.k_re}, k_vc={self.k_vc}")
        if self.k_re:
            ev = np.linalg.eigvalsh((pa.cov_re + pa.cov_re.T) / 2)
            if ev.min() < -1e-10 * max(1.0, abs(ev).max()):
                raise SparseMixedError(f"cov_re must be positive semi-definite (a covariance matrix); its "
                                       f"eigenvalues are {ev}")
        if np.any(pa.vcomp < 0):
            raise SparseMixedError(f"variance components must be >= 0, got {pa.vcomp}")
        packed = np.concatenate([pa.cov_re_sqrt()[np.tril_indices(self.k_re)] if self.k_re else np.zeros(0),
                                 np.sqrt(pa.vcomp)])
        theta = np.empty(self._engine.theta0.size)
        theta[self._pos] = packed
        return theta

    def _state(self, pa: MixedLMParams, profile_fe: bool):
        """PLS state at pa's theta; with profile_fe=False its beta and r2 are replaced by
        the given fe_params and the penalized RSS at them, q(beta)."""
        eng = self._engine
        state = eng.pls(self._theta(pa))
        if profile_fe:
            return state
        fe = np.asarray(pa.fe_params, dtype=float).reshape(-1)
        if fe.size != self.k_fe:
            raise SparseMixedError(f"fe_params must have {self.k_fe} elements, got {fe.size}")
        cp = eng.crossprod
        bs = fe - eng.fixed.shift                 # the engine's cross-products use y - X gamma
        v = state.cu - state.RZX @ bs
        q = float(cp.yty - 2 * bs @ cp.Xty + bs @ cp.XtX @ bs - v @ v)
        state = dataclasses.replace(state, beta=bs, r2=max(q, 0.0))
        return state

    def _nu(self) -> int:
        return obj.dof(self.nobs, self.k_fe, self.reml)

    # -- likelihood, score, Hessian ----------------------------------------------------
    def loglike(self, params, profile_fe=True) -> float:
        """Log-likelihood (restricted under REML) with sigma^2 profiled out, and beta too
        when ``profile_fe`` (statsmodels' semantics and constants)."""
        pa = self._params(params, has_fe=False)
        state = self._state(pa, profile_fe)
        return -0.5 * obj.criterion(state, self.nobs, self.k_fe, self.reml)

    def _score_theta(self, pa, profile_fe):
        eng = self._engine
        state = self._state(pa, profile_fe)
        dlogM, dlogRX, dr2 = gradient_parts(state, eng.crossprod, eng.relcov, self.reml)
        nu = self._nu()
        s_theta = -0.5 * (dlogM + dlogRX + nu * dr2 / state.r2)
        s_fe = None
        if not profile_fe:
            cp = eng.crossprod
            v = state.cu - state.RZX @ state.beta
            xvr = (cp.Xty - cp.XtX @ state.beta) - state.RZX.T @ v      # X'V0^-1 (y - X beta)
            s_fe = nu * xvr / state.r2
        return s_theta[self._pos], s_fe

    def _T(self, pa):
        return pa.cov_re_sqrt() if self.k_re else np.zeros((0, 0))

    def score_sqrt(self, params, calc_fe=True):
        """(score_fe, score_re, score_vc) in [beta, vec_lt(Psi^1/2), sqrt(vcomp)]."""
        pa = self._params(params, has_fe=True)
        s, s_fe = self._score_theta(pa, profile_fe=not calc_fe)
        return (s_fe if calc_fe else np.zeros(0)), s[: self.k_re2], s[self.k_re2:]

    def score_full(self, params, calc_fe=True):
        """(score_fe, score_re, score_vc) in [beta, vec_lt(Psi), vcomp], by the change of
        variables Psi = T T', vcomp = s^2.  Where it is not invertible (Psi singular, a
        variance component at 0) the affected entries are NaN, not a guess."""
        pa = self._params(params, has_fe=True)
        s_fe, s_T, s_s = self.score_sqrt(pa, calc_fe)
        T = self._T(pa)
        s_psi = np.zeros(0)
        if self.k_re:
            ix = np.tril_indices(self.k_re)
            J = np.empty((self.k_re2, self.k_re2))
            for b, (c, d) in enumerate(zip(*ix)):
                E = np.zeros((self.k_re, self.k_re))
                E[c, d] = 1.0
                J[:, b] = (E @ T.T + T @ E.T)[ix]
            if np.linalg.cond(J) < 1e12:
                s_psi = np.linalg.solve(J.T, s_T)
            else:                   # Psi singular: the change of variables is not invertible
                s_psi = np.full(self.k_re2, np.nan)
        with np.errstate(divide="ignore", invalid="ignore"):
            s_v = s_s / (2.0 * np.sqrt(pa.vcomp))
        return s_fe, s_psi, s_v

    def score(self, params, profile_fe=True):
        """Score of :meth:`loglike`: with respect to [vec_lt(Psi^1/2), sqrt(vcomp)] when
        ``use_sqrt`` (the default), else [vec_lt(Psi), vcomp]; fe_params first when not
        ``profile_fe`` (then ``params`` must carry them)."""
        pa = self._params(params, has_fe=not profile_fe)
        fn = self.score_sqrt if self.use_sqrt else self.score_full
        s_fe, s_re, s_vc = fn(pa, calc_fe=not profile_fe)
        return np.concatenate(([s_fe] if not profile_fe else []) + [s_re, s_vc])

    def hessian(self, params):
        """(hess, sing): Hessian of loglike (beta free, sigma^2 profiled) with respect to
        [beta, vec_lt(Psi), vcomp], as statsmodels defines it; ``sing`` flags a singular
        Psi or a variance component at 0 (then the Hessian is not reliable)."""
        pa = self._params(params, has_fe=True)
        x0 = pa.get_packed(use_sqrt=False, has_fe=True)
        sing = bool((self.k_re and np.linalg.eigvalsh(pa.cov_re).min() <= 1e-10 * max(1.0, np.abs(pa.cov_re).max()))
                    or np.any(pa.vcomp <= 1e-10))

        def grad(x):
            p = MixedLMParams.from_packed(x, self.k_fe, self.k_re, use_sqrt=False, has_fe=True)
            return np.concatenate(self.score_full(p, calc_fe=True))
        return hessian_from_gradient(grad, x0, step=1e-5), sing

    def get_fe_params(self, cov_re, vcomp, tol=1e-10):
        """(GLS estimate of beta at relative cov_re and vcomp, singular flag)."""
        pa = MixedLMParams.from_components(np.zeros(self.k_fe), cov_re=cov_re, vcomp=vcomp)
        state = self._state(pa, profile_fe=True)
        return self._engine.fixef_from(state.beta), False

    def get_scale(self, fe_params, cov_re, vcomp):
        pa = MixedLMParams.from_components(fe_params, cov_re=cov_re, vcomp=vcomp)
        state = self._state(pa, profile_fe=False)
        return state.r2 / self._nu()

    def predict(self, params, exog=None):
        """Fixed-effects prediction exog @ fe_params (statsmodels' MixedLM.predict)."""
        fe = params.fe_params if isinstance(params, MixedLMParams) else np.asarray(params, float)[: self.k_fe]
        X = self.exog if exog is None else np.asarray(exog, dtype=float)
        return X @ np.asarray(fe, dtype=float)

    # -- fitting -----------------------------------------------------------------------
    _METHODS = {None: "auto", "auto": "auto", "lbfgs": "lbfgsb", "lbfgsb": "lbfgsb", "bfgs": "lbfgsb",
                "cg": "lbfgsb", "newton": "lbfgsb", "nm": "nelder_mead", "nelder_mead": "nelder_mead",
                "powell": "bobyqa", "bobyqa": "bobyqa", "newuoa": "newuoa"}

    def fit(self, start_params=None, reml=True, niter_sa=0, do_cg=True, fe_pen=None, cov_pen=None,
            free=None, full_output=False, method=None, **fit_kwargs):
        """Fit by REML (default) or ML; returns :class:`MixedLMResults`.

        ``method`` takes statsmodels' names (gradient methods map to L-BFGS-B with the
        analytic score, "nm" to Nelder-Mead, "powell" to BOBYQA) or ours; a list uses the
        first.  Penalties and ``free`` (constrained fits) are not supported."""
        from .results import MixedLMResults

        if fe_pen is not None or cov_pen is not None or free is not None:
            raise NotImplementedError("penalized (fe_pen, cov_pen) and constrained (free) fits are not "
                                      "supported; use statsmodels for those")
        if isinstance(method, (list, tuple)):
            method = method[0] if method else None
        if method not in self._METHODS:
            raise SparseMixedError(f"method must be one of {sorted(k for k in self._METHODS if k)}, got {method!r}")
        self.reml = bool(reml)
        start = None
        if start_params is not None:
            start = self._theta(self._params(start_params, has_fe=False))
        kw = {}
        if "maxiter" in fit_kwargs:
            kw["maxeval"] = int(fit_kwargs["maxiter"])
        res = self._engine.fit(REML=self.reml, start=start, optimizer=self._METHODS[method], **kw)
        return MixedLMResults(self, res)

    @classmethod
    def from_formula(cls, formula, data, re_formula=None, vc_formula=None, subset=None,
                     use_sparse=False, missing="none", *args, **kwargs):
        """statsmodels' ``MixedLM.from_formula`` (``groups=`` is required)."""
        from .formula import model_from_formula

        return model_from_formula(cls, formula, data, re_formula, vc_formula, subset, missing, kwargs)

    def __repr__(self) -> str:
        return (f"MixedLM(nobs={self.nobs}, groups={self.n_groups}, k_fe={self.k_fe}, k_re={self.k_re}, "
                f"k_vc={self.k_vc}, use_sqrt={self.use_sqrt})")
