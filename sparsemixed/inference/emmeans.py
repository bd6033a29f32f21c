"""Estimated marginal means and contrasts of a fitted lmer or glmer model, as R's emmeans
(Lenth; version 1.8.4) computes them.

Reference grid.  Every variable of the fixed-effects formula: a factor at each of its
levels (those of the fit; ``at={"f": [...]}`` keeps a subset), a numeric covariate at its
mean over the fitted rows (``at={"x": [v1, v2]}`` sets values; ``cov_reduce`` another
reducer), expanded with the first variable varying fastest.  Row r of the grid has the
model-matrix row x_r (the fit's encoding replayed) and the weight w_r, the number of fitted
rows (sum of prior weights for weights=) in its factor combination.

Marginal means.  For ``specs`` (and ``by``) the grid rows sharing their levels are averaged,

    l = sum_r a_r x_r / sum_r a_r,     EMM = l'beta,   SE = sqrt(l'V l)

with a_r = 1 (``weights="equal"``, emmeans' default), the marginal count of the r-th
combination of the factors averaged over (``"proportional"``), the product of their
one-way margins (``"outer"``), w_r (``"cells"``), [w_r > 0] (``"flat"``), or given numbers.
A contrast of the means with coefficients c is (C L) beta: contrasts stay linear functions
of beta, so their SE and df are computed exactly as the means' are.

Degrees of freedom of l'beta.  lmer: Satterthwaite (lmerTest's, ``lmer_df=
"satterthwaite"``, the default here; emmeans' own default is Kenward-Roger), or
Kenward-Roger (pbkrtest's Lb_ddf, with V = the adjusted covariance vcovAdj), or
``"asymptotic"`` (Inf); both are satterthwaite.py's and kenward_roger.py's, through
``result.contest(L, joint=False)``.  glmer: Inf (z tests and intervals, "asymp.LCL").

Scales.  A GLMM's means are on the link scale (eta); ``type="response"`` back-transforms
them: mu = g^-1(eta), SE(mu) = |dmu/deta| SE(eta) (delta method), the interval's
endpoints mapped through g^-1, tests still done on the link scale.  Contrasts of a logit
(log) grid are log odds ratios (log ratios); on the response scale they are shown as odds
ratios (ratios), "a / b", with SE exp(est) SE.  :func:`regrid` makes the response scale
the new linear scale (bhat = mu, V = D V D, D = diag(dmu/deta)), so that contrasts are
differences of probabilities or rates.

Inference.  Intervals est +- c SE and t (z) tests of est = null with emmeans'
multiplicity adjustments (emm_adjust.py), per ``by`` group: tukey (studentized range;
changed to sidak for families that are not pairwise comparisons, as emmeans does), sidak,
bonferroni, holm, hochberg, BH/fdr, BY, scheffe, dunnettx, mvt, none.

Not done here (emmeans can): nested factors, multivariate responses, ``cov.keep``/
``cov.reduce`` per variable, bias adjustment of back-transformed means, one-sided and
equivalence tests (``side``, ``delta``), Bayesian summaries, the ``offset=`` argument of
lmer/glmer (offset() terms of the formula are included, evaluated on the grid).
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd

from ..errors import ArgumentError, DataError, SparseMixedError
from . import emm_adjust as adj
from .emm_contrasts import family as contrast_family
from .emm_display import format_summary

class _Keep:
    """The default of ``by``: the grid's own grouping."""

    def __repr__(self) -> str:
        return "<the grid's by>"


_KEEP = _Keep()
_LOG_TRANS = ("log", "log2", "log10", "logit", "log.o.r.")


# ----------------------------------------------------------------------------- transformations
class Transform:
    """A link or response transformation: ``name`` (as emmeans prints it), ``linkinv``,
    ``mu_eta`` (d linkinv / d eta)."""

    def __init__(self, key: str):
        self.key = key
        if key in ("logit", "probit", "cloglog", "log", "identity"):
            from ..families import Link

            link = Link(key)
            self.name, self.linkinv, self.mu_eta = key, link.linkinv, link.mu_eta
        elif key == "log.o.r.":
            from ..families import Link

            link = Link("log")
            self.name, self.linkinv, self.mu_eta = "log odds ratio", link.linkinv, link.mu_eta
        elif key == "sqrt":
            self.name, self.linkinv, self.mu_eta = key, np.square, lambda e: 2 * np.asarray(e, float)
        elif key in ("log10", "log2"):
            b = 10.0 if key == "log10" else 2.0
            self.name = key
            self.linkinv = lambda e, b=b: np.power(b, np.asarray(e, float))
            self.mu_eta = lambda e, b=b: np.power(b, np.asarray(e, float)) * math.log(b)
        elif key == "inverse":
            self.name = key
            self.linkinv = lambda e: 1.0 / np.asarray(e, float)
            self.mu_eta = lambda e: -1.0 / np.square(np.asarray(e, float))
        else:
            raise ArgumentError(f"unknown transformation {key!r}; use one of logit, probit, cloglog, log, log2, "
                                "log10, sqrt, inverse, identity")

    def __repr__(self) -> str:
        return f"Transform({self.key!r})"


_RESPONSE_TRAN = re.compile(r"^(?:np\.|numpy\.)?(log|log10|log2|sqrt)\((.+)\)$")


# ----------------------------------------------------------------------------- the model
@dataclass
class _Basis:
    """Coefficients, their covariance and how df are computed for linear functions of them."""
    bhat: np.ndarray
    V: np.ndarray
    df_fn: object                # L (m x len(bhat)) -> df (m,)
    df_msg: str | None
    kept: np.ndarray             # positions of bhat in the full coefficient vector
    nfull: int
    nbasis: np.ndarray | None = None      # null basis of the full model matrix (non-estimable)


class _Model:
    """What emmeans reads from an LmerResult or a GlmerResult."""

    def __init__(self, result):
        self.result = result
        self.glmm = hasattr(result, "nAGQ")
        model = getattr(result, "model", None)
        if model is None:
            raise ArgumentError(f"emmeans takes a fitted lmer or glmer result, got {type(result).__name__}")
        self.lmm = model.lmm if self.glmm else model
        self.spec = getattr(self.lmm, "fixed_spec", None)
        if self.spec is None:
            raise SparseMixedError("emmeans needs the fixed-effects formula; this model was built from arrays")
        from ..formula.bars import parse_formula

        self.parsed = parse_formula(model.formula)

    # -- rows ------------------------------------------------------------------------
    def rows(self):
        """(the fitted rows of the data, their weights) or (None, None) without data."""
        if self.glmm:
            from ..glmm.predict import frame_of

            m = self.result.model
            data = frame_of(m.data)
            if not isinstance(data, pd.DataFrame):
                return None, None
            kept = m.kept
            rows = data.loc[kept] if kept is not None else data
            lhs = m.formula.split("~", 1)[0].strip()
            w = (np.ones(len(rows)) if lhs.startswith("cbind(") or m.response is None
                 else np.asarray(m.response.prior_weights, float))
            return rows, w
        m = self.result.model
        if not isinstance(m.data, pd.DataFrame):
            return None, None
        try:
            fr = self.result._frame()
        except Exception:
            return None, None
        rows = m.data.loc[fr.kept] if fr.kept is not None else m.data
        w = np.asarray(fr.weights, float) if fr.weights is not None else np.ones(len(rows))
        return rows, w

    # -- scale -----------------------------------------------------------------------
    def transform(self, tran):
        """(transformation key or None, inverse label)."""
        if tran is not None and tran is not _KEEP:
            return (None if tran == "identity" else str(tran)), "response"
        if self.glmm:
            fam = self.result.model.family
            if fam.link.name == "identity":
                return None, None
            lbl = {"binomial": "prob", "poisson": "rate"}.get(fam.name, "response")
            return fam.link.name, lbl
        hit = _RESPONSE_TRAN.match(self.parsed.response.replace(" ", ""))
        return (hit.group(1), "response") if hit else (None, None)

    # -- coefficients ----------------------------------------------------------------
    def basis(self, lmer_df, vcov) -> tuple[_Basis, list]:
        res, notes = self.result, []
        beta = np.asarray(res.beta, float)
        p = beta.size
        kept = np.asarray(self.lmm.fixef_cols, int)
        nfull = len(getattr(self.lmm, "all_fixef_names", self.lmm.fixef_names))
        Vu = None
        if vcov is not None:
            Vu = np.asarray(vcov.to_numpy() if hasattr(vcov, "to_numpy") else vcov, float)
            if Vu.shape != (p, p):
                raise ArgumentError(f"vcov must be {p} x {p} (the fixed effects), got {Vu.shape}")
        if self.glmm:
            V = Vu if Vu is not None else res.vcov().to_numpy()
            return _Basis(beta, V, lambda L: np.full(L.shape[0], np.inf), None, kept, nfull), notes
        mode = _lmer_df(lmer_df)
        if mode == "kenward-roger" and Vu is not None:
            notes.append("Kenward-Roger method can't be used with user-supplied covariances")
            mode = "satterthwaite"
        if mode == "asymptotic":
            V = Vu if Vu is not None else res.vcov.to_numpy()
            return _Basis(beta, V, lambda L: np.full(L.shape[0], np.inf), "asymptotic", kept, nfull), notes
        if mode == "kenward-roger":
            V = res.vcov_kr().to_numpy()
            ddf = "Kenward-Roger"
        else:
            V = Vu if Vu is not None else res.vcov.to_numpy()
            ddf = "Satterthwaite"

        def df_fn(L, res=res, ddf=ddf):
            return res.contest(np.atleast_2d(L), ddf=ddf, joint=False)["df"].to_numpy(float)

        return _Basis(beta, V, df_fn, mode, kept, nfull), notes


def _lmer_df(lmer_df) -> str:
    key = str(lmer_df).lower().replace("_", "-").replace(" ", "-")
    if key in ("satterthwaite", "satt"):
        return "satterthwaite"
    if key in ("kenward-roger", "kr", "kenwardroger"):
        return "kenward-roger"
    if key in ("asymptotic", "asymp", "z"):
        return "asymptotic"
    raise ArgumentError(f"lmer_df must be 'satterthwaite', 'kenward-roger' or 'asymptotic', got {lmer_df!r}")


# ----------------------------------------------------------------------------- reference grid
@dataclass
class RefGrid:
    variables: list                 # in formula order
    levels: dict                    # variable -> values
    factors: set                    # the variables that are factors
    grid: pd.DataFrame              # one row per combination (first variable fastest)
    X: np.ndarray                   # rows of the full model matrix
    offset: np.ndarray
    wgt: np.ndarray


def _word(v: str) -> re.Pattern:
    return re.compile(r"(?<![\w.])" + re.escape(v) + r"(?![\w.])")


def _r_char(v) -> str:
    """R's as.character of a grid value (numbers to 15 significant digits)."""
    if isinstance(v, (bool, np.bool_)):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (float, np.floating)):
        return str(int(v)) if float(v).is_integer() and abs(v) < 1e15 else f"{float(v):.15g}"
    return str(v)


def ref_grid_of(mod: _Model, at=None, cov_reduce=None) -> RefGrid:
    spec = mod.spec
    rows, w_rows = mod.rows()
    at = dict(at or {})
    required = set(spec.required_variables)
    offset_exprs = list(mod.parsed.offsets)
    if rows is not None:
        cols = [str(c) for c in rows.columns]
        for e in offset_exprs:
            required |= {c for c in cols if _word(c).search(e)}
    text = mod.parsed.fixed + " " + " ".join(offset_exprs)
    pos = {v: (m.start() if (m := _word(v).search(text)) else len(text)) for v in required}
    variables = sorted(required, key=lambda v: (pos[v], v))
    factors: dict = {}
    for key, (kind, state) in spec.encoder_state.items():
        if getattr(kind, "value", kind) != "categorical" or not isinstance(state, dict):
            continue
        cats = list(state.get("categories") or [])
        name = spec.display(key) if hasattr(spec, "display") else key
        if name in required:
            factors.setdefault(name, cats)
            continue
        inner = [v for v in required if _word(v).search(name)]
        if len(inner) == 1:
            factors.setdefault(inner[0], cats)
    unknown = set(at) - set(variables)
    if unknown:
        raise ArgumentError(f"at= names {sorted(unknown)} that are not variables of the fixed effects "
                            f"({', '.join(variables)})")
    reduce = cov_reduce or np.mean
    levels = {}
    for v in variables:
        if v in factors:
            cats = factors[v]
            if v in at:
                want = at[v] if isinstance(at[v], (list, tuple, np.ndarray, pd.Index, pd.Series)) else [at[v]]
                bystr = {str(c): c for c in cats}
                bad = [x for x in want if x not in cats and str(x) not in bystr]
                if bad:
                    raise ArgumentError(f"at[{v!r}]: {bad} are not levels of {v!r} ({', '.join(map(str, cats))})")
                cats = [x if x in cats else bystr[str(x)] for x in want]
            levels[v] = list(cats)
        elif v in at:
            levels[v] = [float(x) for x in np.atleast_1d(np.asarray(at[v], float))]
        else:
            if rows is None:
                raise DataError(f"the model keeps no data rows, so the mean of covariate {v!r} is unknown: give "
                                f"its value(s) with at={{{v!r}: ...}}")
            x = pd.to_numeric(rows[v], errors="coerce").to_numpy(float)
            levels[v] = [float(reduce(x[~np.isnan(x)]))]
    combos = list(itertools.product(*[levels[v] for v in reversed(variables)]))
    grid = pd.DataFrame([tuple(reversed(c)) for c in combos], columns=variables) if variables else \
        pd.DataFrame(index=range(1))
    for v in variables:
        if v not in factors:
            grid[v] = grid[v].astype(float)
    X = _grid_matrix(mod, grid)
    offset = np.zeros(len(grid))
    if offset_exprs:
        if mod.glmm:
            from ..glmm.predict import formula_offsets

            offset = formula_offsets(mod.result.model.formula, grid)[0]
        else:
            off = spec.offset_values(grid)
            offset = np.zeros(len(grid)) if off is None else np.asarray(off, float)
    fvars = [v for v in variables if v in factors]
    wgt = np.ones(len(grid))
    if rows is not None:
        if fvars:
            key_rows = pd.MultiIndex.from_frame(rows[fvars].astype(object))
            sums = pd.Series(w_rows, index=key_rows).groupby(level=list(range(len(fvars)))).sum()
            key_grid = pd.MultiIndex.from_frame(grid[fvars].astype(object))
            wgt = sums.reindex(key_grid).fillna(0.0).to_numpy(float)
        else:
            wgt = np.full(len(grid), float(np.sum(w_rows)))
    return RefGrid(variables, levels, set(factors), grid, X, offset, wgt)


def _grid_matrix(mod: _Model, grid: pd.DataFrame) -> np.ndarray:
    """The full model-matrix rows of the grid (the fit's encoding)."""
    from .predict import _fixed_design

    lmm = mod.lmm
    kept = np.asarray(lmm.fixef_cols, int)
    nfull = len(getattr(lmm, "all_fixef_names", lmm.fixef_names))
    Xk = _fixed_design(lmm, grid)
    if nfull == kept.size:
        return Xk
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mm = lmm.fixed_spec.get_model_matrix(grid)
    return np.asarray(mm.toarray() if hasattr(mm, "toarray") else mm, float).reshape(len(grid), -1)


def _nonest_basis(mod: _Model, rows) -> np.ndarray | None:
    """A basis of the null space of the fitted rows' full model matrix (estimability)."""
    lmm = mod.lmm
    if len(getattr(lmm, "all_fixef_names", lmm.fixef_names)) == len(lmm.fixef_cols) or rows is None:
        return None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mm = lmm.fixed_spec.get_model_matrix(rows)
    Xd = np.asarray(mm.toarray() if hasattr(mm, "toarray") else mm, float)
    _, s, Vt = np.linalg.svd(Xd, full_matrices=True)
    tol = max(Xd.shape) * np.finfo(float).eps * (s[0] if s.size else 0.0) * 1e3
    rank = int(np.sum(s > tol))
    return Vt[rank:].T


# ----------------------------------------------------------------------------- the grid object
@dataclass
class _Misc:
    pri_vars: list
    by_vars: list
    est_name: str = "emmean"
    est_type: str = "prediction"            # "prediction", "contrast", "pairs"
    fam_size: object = None
    adjust: str = "none"
    infer: tuple = (True, False)
    level: float = 0.95
    tran: str | None = None
    inv_lbl: str | None = None
    type: str = "link"
    avgd_over: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    log_contrast: bool = False
    pairby: tuple | None = None
    desc: str = "emmeans"
    null: float = 0.0


class EMMGrid:
    """Estimated marginal means or contrasts: linear functions L of the fixed effects with
    labels.  Behaves as the DataFrame of its default summary (``emm["emmean"]``,
    ``emm.columns``, ``len(emm)``; :meth:`to_frame` for a copy) and prints as emmeans.

    Methods: :meth:`summary` (``infer``, ``level``, ``adjust``, ``by``, ``type``, ``null``),
    :meth:`confint`, :meth:`test`, :meth:`contrast`, :meth:`pairs`, :meth:`regrid`,
    :meth:`vcov`.  Attributes: ``linfct`` (the rows of L, one column per fixed effect of
    the full model matrix), ``labels`` (the grid's level columns), ``levels``."""

    def __init__(self, basis: _Basis, linfct, offset, labels: pd.DataFrame, levels: dict, misc: _Misc, model=None):
        self._basis = basis
        self.linfct = np.asarray(linfct, float)
        self._offset = np.asarray(offset, float)
        self.labels = labels.reset_index(drop=True)
        self.levels = levels
        self.misc = misc
        self._model = model
        self._cache = None

    # -- estimates ---------------------------------------------------------------------
    def _esd(self):
        """(estimate, SE, df, estimable) on the linear (link) scale."""
        if self._cache is None:
            b = self._basis
            L = self.linfct
            Lk = L[:, b.kept] if L.shape[1] != b.bhat.size else L
            est = Lk @ b.bhat + self._offset
            ok = np.ones(L.shape[0], bool)
            if b.nbasis is not None and b.nbasis.size:
                num = np.sum((L @ b.nbasis) ** 2, axis=1)
                den = np.maximum(np.sum(L ** 2, axis=1), 1e-300)
                ok = num / den < 1e-8
            VL = Lk @ b.V @ Lk.T
            se = np.sqrt(np.maximum(np.diag(VL), 0.0))
            df = np.full(L.shape[0], np.nan)
            use = ok & (np.abs(Lk).sum(axis=1) > 0)
            if use.any():
                df[use] = b.df_fn(Lk[use])
            est = np.where(ok, est, np.nan)
            se = np.where(ok, se, np.nan)
            self._cache = (est, se, df, ok, VL)
        return self._cache

    def vcov(self) -> pd.DataFrame:
        """Covariance of the estimates (link scale): L V L'."""
        VL = self._esd()[4]
        names = self._row_names()
        return pd.DataFrame(VL, index=names, columns=names)

    def _row_names(self) -> list:
        return [" ".join(_r_char(v) for v in row) for row in self.labels.itertuples(index=False)]

    # -- summaries ---------------------------------------------------------------------
    def summary(self, infer=None, level: float | None = None, adjust: str | None = None, by=_KEEP,
                type: str | None = None, null: float | None = None) -> "EMMSummary":
        """emmeans' summary(): ``infer=(intervals, tests)`` (default: intervals for means,
        tests for contrasts), ``level``, ``adjust`` (multiplicity adjustment), ``by``
        (grouping for the display and the adjustment), ``type`` ("link" / "response"),
        ``null`` (tested value, link scale)."""
        m = self.misc
        infer = m.infer if infer is None else (tuple(infer) if not isinstance(infer, bool) else (infer, infer))
        level = m.level if level is None else float(level)
        if not 0 < level < 1:
            raise ArgumentError(f"level must be between 0 and 1, got {level!r}")
        adjust = m.adjust if adjust is None else adjust
        by = m.by_vars if by is _KEEP else _as_list(by)
        for v in by:
            if v not in self.labels.columns:
                raise ArgumentError(f"by variable {v!r} is not in the grid ({', '.join(self.labels.columns)})")
        est_type = m.est_type
        if est_type == "pairs" and tuple(by) != m.pairby:
            est_type = "contrast"
        type = _check_type(m.type if type is None else type)
        null = m.null if null is None else float(null)
        est, se, df, ok, VL = self._esd()
        n = est.size
        labels = self.labels.copy()
        tran = Transform(m.tran) if m.tran else None
        inv = type == "response" and tran is not None
        est_name = m.est_name
        if inv:
            est_name = m.inv_lbl or "response"
            if m.log_contrast:
                for c in labels.columns:
                    if not pd.api.types.is_numeric_dtype(labels[c]):
                        labels[c] = labels[c].map(lambda s: s.replace(" - ", " / ") if isinstance(s, str) else s)
        notes = list(m.notes)
        if self._basis.df_msg:
            notes.append(f"Degrees-of-freedom method: {self._basis.df_msg}")
        if not inv and tran is not None:
            notes.append(f"Results are given on the {tran.name} (not the response) scale.")
        et = {"prediction": 1, "contrast": 2, "pairs": 3}.get(est_type, 2)
        by_rows = _by_rows(labels, by)
        sizes = {len(r) for r in by_rows}
        fam_size = m.fam_size if m.fam_size is not None else n
        by_size = n
        if len(sizes) > 1:
            fam_size = by_size = "(varies)"
        else:
            for v in by:
                by_size = by_size // max(1, len(pd.unique(self.labels[v])))
        zflag = bool(np.all(~np.isfinite(df)))
        adj_key = adj.match_adjust(adjust)
        corr = sch = None
        if adj_key == "mvt":
            d = np.sqrt(np.diag(VL))
            with np.errstate(invalid="ignore", divide="ignore"):
                corr = VL / np.outer(d, d)
        elif adj_key == "scheffe":
            sch = [_rank(self.linfct[r]) for r in by_rows]
            if len(set(sch)) > 1:
                fam_size = "uneven"
        out = pd.DataFrame({c: labels[c].to_numpy() for c in labels.columns})
        out[est_name] = est
        out["SE"] = se
        out["df"] = df
        tnotes = []
        if infer[0]:
            cv, mesg, _, an = adj.adj_critval(level, df, adjust, fam_size, by_size, et, by_rows, corr, sch)
            tnotes += an
            cn = ["asymp.LCL", "asymp.UCL"] if zflag else ["lower.CL", "upper.CL"]
            lo, hi = est - cv * se, est + cv * se
            notes.append(f"Confidence level used: {_num(level)}")
            if mesg:
                notes.append(mesg)
            if inv:
                lo, hi = np.asarray(tran.linkinv(lo), float), np.asarray(tran.linkinv(hi), float)
                if np.any(np.nan_to_num(hi - lo) < 0):
                    lo, hi = hi, lo
                notes.append(f"Intervals are back-transformed from the {tran.name} scale")
            out[cn[0]], out[cn[1]] = lo, hi
        if infer[1]:
            tn = "z.ratio" if zflag else "t.ratio"
            nul = np.full(n, null)
            shown_null = np.asarray(tran.linkinv(nul), float) if inv else nul
            if not np.all(shown_null == 0):
                out["null"] = shown_null
            t = (est - null) / se
            out[tn] = t
            p, mesg, _, an = adj.adj_pvalue(t, df, adjust, fam_size, by_size, et, by_rows, corr, sch)
            tnotes += an
            out["p.value"] = p
            if mesg:
                notes.append(mesg)
            if inv:
                notes.append(f"Tests are performed on the {tran.name} scale")
        if inv:
            out["SE"] = np.abs(np.asarray(tran.mu_eta(est), float)) * se
            out[est_name] = np.asarray(tran.linkinv(est), float)
        if m.avgd_over:
            notes.insert(0, "Results are averaged over the levels of: " + ", ".join(m.avgd_over))
        if inv:
            scale = {"prob": "probability", "rate": "rate", "odds.ratio": "odds ratio",
                     "ratio": "ratio"}.get(est_name, "response scale")
        else:
            scale = f"{tran.name} scale" if tran is not None else None
        res = EMMSummary(out)
        res.attrs.update(est_name=est_name, by_vars=list(by), label_cols=list(labels.columns),
                         notes=list(dict.fromkeys(notes)), messages=list(dict.fromkeys(tnotes)), type=type,
                         adjust=adjust,
                         response=self.response_name, scale=scale, level=level)
        return res

    @property
    def response_name(self) -> str | None:
        """The model's response, as written in its formula."""
        mod = self._model
        return None if mod is None else mod.parsed.response

    def confint(self, level: float | None = None, adjust: str | None = None, by=_KEEP,
                type: str | None = None) -> "EMMSummary":
        """Confidence intervals (emmeans' confint): the summary with infer=(True, False)."""
        return self.summary(infer=(True, False), level=level, adjust=adjust, by=by, type=type)

    def test(self, null: float = 0.0, adjust: str | None = None, by=_KEEP, type: str | None = None) -> "EMMSummary":
        """Tests of est = null (link scale; emmeans' test): the summary with infer=(False, True)."""
        return self.summary(infer=(False, True), adjust=adjust, by=by, type=type, null=null)

    # -- operations --------------------------------------------------------------------
    def contrast(self, method="eff", **kwargs) -> "EMMGrid":
        """:func:`sparsemixed.contrast` of these means."""
        return contrast(self, method, **kwargs)

    def pairs(self, reverse: bool = False, **kwargs) -> "EMMGrid":
        """Pairwise differences (emmeans' pairs): contrast(self, "pairwise") ("revpairwise"
        with ``reverse=True``)."""
        return contrast(self, "revpairwise" if reverse else "pairwise", **kwargs)

    def regrid(self, transform: str = "response") -> "EMMGrid":
        """:func:`regrid`: the response scale as the new linear scale."""
        return regrid(self, transform)

    def update(self, **changes) -> "EMMGrid":
        """A copy with settings changed: adjust, level, by_vars, type, infer, null ..."""
        if "by" in changes:
            changes["by_vars"] = _as_list(changes.pop("by"))
        bad = set(changes) - set(_Misc.__dataclass_fields__)
        if bad:
            raise ArgumentError(f"update: unknown setting(s) {sorted(bad)}")
        if "type" in changes:
            changes["type"] = _check_type(changes["type"])
        new = EMMGrid(self._basis, self.linfct, self._offset, self.labels, self.levels,
                      replace(self.misc, **changes), self._model)
        new._cache = self._cache
        return new

    # -- DataFrame-like behaviour --------------------------------------------------------
    @property
    def frame(self) -> "EMMSummary":
        return self.summary()

    def to_frame(self) -> pd.DataFrame:
        """The default summary as a plain DataFrame (notes in ``.attrs``)."""
        s = self.summary()
        out = pd.DataFrame(s)
        out.attrs = dict(s.attrs)
        return out

    def __getitem__(self, key):
        return self.to_frame()[key]

    def __len__(self) -> int:
        return self.linfct.shape[0]

    def __iter__(self):
        return iter(self.to_frame())

    def __getattr__(self, name):
        if name.startswith("_") or name in ("linfct", "labels", "levels", "misc"):
            raise AttributeError(name)
        frame = self.to_frame()
        if hasattr(frame, name):
            return getattr(frame, name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __repr__(self) -> str:
        return repr(self.summary())

    def __str__(self) -> str:
        return repr(self.summary())

    def _repr_html_(self) -> str:
        s = self.summary()
        notes = "".join(f"<br><small>{n}</small>" for n in s.attrs.get("notes", []))
        return pd.DataFrame(s).to_html(index=False) + notes


class EMMSummary(pd.DataFrame):
    """A summary table (a DataFrame) printed as emmeans prints it; ``.attrs["notes"]`` has
    the notes printed under it.  Operations on it return plain DataFrames."""

    @property
    def _constructor(self):
        return pd.DataFrame

    def __repr__(self) -> str:
        return format_summary(self)

    def __str__(self) -> str:
        return format_summary(self)


class EMMList(dict):
    """emmeans(result, "pairwise ~ f"): {"emmeans": means, "contrasts": contrasts}."""

    def __repr__(self) -> str:
        return "\n\n".join(f"${k}\n{v!r}" for k, v in self.items())


# ----------------------------------------------------------------------------- helpers
def _as_list(x) -> list:
    if x is None:
        return []
    if isinstance(x, str):
        return [s.strip() for s in re.split(r"[+*:]", x) if s.strip()]
    return [str(v) for v in x]


def _check_type(type) -> str:
    key = str(type).lower()
    if key in ("link", "lp", "linear.predictor", "linear", "none"):
        return "link"
    if key in ("response", "mu", "unlink"):
        return "response"
    raise ArgumentError(f"type must be 'link' or 'response', got {type!r}")


def _num(x) -> str:
    return f"{float(x):.15g}"


def _rank(M: np.ndarray) -> int:
    M = adj.zapsmall(M.ravel()).reshape(M.shape)
    if not M.size or not np.any(M):
        return 0
    s = np.linalg.svd(M, compute_uv=False)
    return int(np.sum(s > 1e-7 * s[0]))


def _by_rows(labels: pd.DataFrame, by) -> list:
    """Row indices of each by group, groups in order of first appearance."""
    if not by:
        return [np.arange(len(labels))]
    keys = [tuple(r) for r in labels[list(by)].astype(object).itertuples(index=False)]
    groups: dict = {}
    for i, k in enumerate(keys):
        groups.setdefault(k, []).append(i)
    return [np.asarray(v) for v in groups.values()]


def _parse_specs(specs, by):
    """(specs, by, contrast method) from "f", ["f", "g"], "~ f | g", "pairwise ~ f | g"."""
    contr = None
    by = _as_list(by)
    if isinstance(specs, str) and "~" in specs:
        lhs, rhs = specs.split("~", 1)
        lhs = lhs.strip() or None
        if "|" in rhs:
            rhs, bys = rhs.split("|", 1)
            by = list(dict.fromkeys(by + _as_list(bys)))
        specs = _as_list(rhs)
        contr = lhs
    else:
        specs = _as_list(specs)
    if not specs:
        raise ArgumentError("specs must name at least one variable (or '1' for the overall mean)")
    by = [b for b in by if b not in specs]
    return specs, by, contr


# ----------------------------------------------------------------------------- public API
def ref_grid(result, at=None, cov_reduce=None, lmer_df: str = "satterthwaite", vcov=None, type=None,
             tran=None, level: float = 0.95) -> EMMGrid:
    """emmeans' ref_grid: the prediction at every row of the reference grid (see the module
    docstring), as an :class:`~sparsemixed.inference.emmeans.EMMGrid` (its ``labels`` hold every variable's value)."""
    mod = _Model(result)
    rg = ref_grid_of(mod, at=at, cov_reduce=cov_reduce)
    basis, notes = mod.basis(lmer_df, vcov)
    basis.nbasis = _nonest_basis(mod, mod.rows()[0])
    tkey, lbl = mod.transform(tran if tran is not None else _KEEP)
    misc = _Misc(pri_vars=list(rg.variables), by_vars=[], est_name="prediction", fam_size=len(rg.grid),
                 tran=tkey, inv_lbl=lbl, type=_check_type(type or "link"), notes=notes, desc="ref_grid",
                 level=level)
    return EMMGrid(basis, rg.X, rg.offset, rg.grid[rg.variables], dict(rg.levels), misc, mod)


def emmeans(result, specs, by=None, *, weights="equal", at=None, type=None, level: float = 0.95,
            lmer_df: str = "satterthwaite", vcov=None, cov_reduce=None, tran=None, adjust=None):
    """Estimated marginal means of ``result`` (an lmer or glmer fit) for the factor(s)
    ``specs`` (a name, a list, or a formula string ``"~ cond | freq"``; ``"pairwise ~ cond"``
    returns means and contrasts), per level of ``by``.

    ``weights``: "equal" (default), "proportional", "outer", "cells", "flat" or numbers
    (one per combination averaged over); ``at``: {variable: value(s)} for the reference
    grid; ``type``: "link" (default) or "response" (GLMMs: back-transformed means);
    ``lmer_df``: "satterthwaite" (default), "kenward-roger" or "asymptotic"; ``vcov``: a
    covariance of the fixed effects to use instead of the fit's.  Returns an
    :class:`~sparsemixed.inference.emmeans.EMMGrid` (a DataFrame-like table: emmean, SE, df, lower.CL, upper.CL; for a
    GLMM asymp.LCL/asymp.UCL, and prob/rate/response on the response scale)."""
    specs, by, contr = _parse_specs(specs, by)
    mod = _Model(result)
    rg = ref_grid_of(mod, at=at, cov_reduce=cov_reduce)
    basis, notes = mod.basis(lmer_df, vcov)
    rows, _ = mod.rows()
    basis.nbasis = _nonest_basis(mod, rows)
    facs = list(dict.fromkeys(specs + by))
    for f in facs:
        if f != "1" and f not in rg.levels:
            raise ArgumentError(f"no variable named {f!r} in the reference grid; its variables are "
                                f"{', '.join(rg.variables) or '(none)'}")
    grid = rg.grid
    codes = {v: pd.Index(rg.levels[v]).get_indexer(grid[v]) if v in rg.factors else
             pd.Index(rg.levels[v]).get_indexer(grid[v].astype(float)) for v in rg.variables}
    avgd = [v for v in rg.variables if len(rg.levels[v]) > 1 and v not in facs]
    a = _averaging_weights(weights, rg, avgd, codes, rows is not None)
    real = [f for f in facs if f != "1"]
    combos = list(itertools.product(*[range(len(rg.levels[f])) for f in reversed(real)]))
    L = np.empty((len(combos), rg.X.shape[1]))
    off = np.empty(len(combos))
    lab = {f: [] for f in facs}
    for i, c in enumerate(combos):
        c = tuple(reversed(c))
        mask = np.ones(len(grid), bool)
        for f, k in zip(real, c):
            mask &= codes[f] == k
        idx = np.flatnonzero(mask)
        w = a[idx]
        tot = w.sum()
        if not abs(tot) > 1e-8:
            L[i], off[i] = np.nan, np.nan
        else:
            L[i] = w @ rg.X[idx] / tot
            off[i] = w @ rg.offset[idx] / tot
        for f, k in zip(real, c):
            lab[f].append(rg.levels[f][k])
        if "1" in facs:
            lab["1"].append("overall")
    labels = pd.DataFrame(lab, columns=facs)
    tkey, lbl = mod.transform(tran if tran is not None else _KEEP)
    misc = _Misc(pri_vars=[f for f in specs if f not in by], by_vars=list(by), fam_size=len(combos),
                 avgd_over=avgd, tran=tkey, inv_lbl=lbl, type=_check_type(type or "link"), level=float(level),
                 notes=notes, adjust=adjust or "none")
    levels = {f: (rg.levels[f] if f != "1" else ["overall"]) for f in facs}
    emm = EMMGrid(basis, L, off, labels, levels, misc, mod)
    if contr:
        return EMMList(emmeans=emm, contrasts=contrast(emm, contr))
    return emm


def _averaging_weights(weights, rg: RefGrid, avgd, codes, have_rows: bool) -> np.ndarray:
    n = len(rg.grid)
    if not avgd:
        return np.ones(n)
    if isinstance(weights, str):
        key = weights.lower()
        opts = ("equal", "proportional", "outer", "cells", "flat")
        hits = [o for o in opts if o.startswith(key)] if key else []
        if len(hits) != 1:
            raise ArgumentError(f"weights must be one of {', '.join(opts)} or numbers, got {weights!r}")
        key = hits[0]
        if key == "equal":
            return np.ones(n)
        if not have_rows:
            raise DataError(f"weights={weights!r} needs the data's frequencies, and this model keeps no data rows")
        w = rg.wgt
        if key == "cells":
            return w.astype(float)
        if key == "flat":
            return (w > 0).astype(float)
        frame = pd.DataFrame({v: codes[v] for v in avgd})
        if key == "proportional":
            return pd.Series(w).groupby([frame[v] for v in avgd]).transform("sum").to_numpy(float)
        # outer: the product of each averaged variable's one-way margin
        out = np.ones(n)
        N = w.sum()
        for v in avgd:
            out *= pd.Series(w).groupby(frame[v]).transform("sum").to_numpy(float) / N
        return out
    w = np.asarray(weights, float).reshape(-1)
    ncomb = int(np.prod([len(rg.levels[v]) for v in avgd]))
    if w.size != ncomb:
        raise ArgumentError(f"weights has {w.size} numbers; {ncomb} are needed (one per combination of "
                            f"{', '.join(avgd)}, the first varying fastest)")
    pos = np.zeros(n, int)
    mult = 1
    for v in avgd:
        pos += codes[v] * mult
        mult *= len(rg.levels[v])
    return w[pos]


def contrast(emm: EMMGrid, method="eff", *, by=_KEEP, adjust: str | None = None, interaction=False,
             type: str | None = None, name: str = "contrast", ratios: bool = True, enhance_levels: bool = True,
             **options) -> EMMGrid:
    """Contrasts of estimated marginal means (emmeans' contrast): ``method`` "pairwise",
    "revpairwise", "trt.vs.ctrl" (``ref=``), "consec", "poly", "eff", "del.eff", "identity",
    or a dict {name: coefficients}; within each ``by`` group (default: the means' ``by``;
    None for one family over all of them).  ``adjust`` overrides the method's default
    (tukey for pairwise families, dunnettx for trt.vs.ctrl, fdr for eff, mvt for consec,
    none otherwise); ``interaction="pairwise"`` (or a list of methods) gives interaction
    contrasts, one method per factor.  On a logit (log) scale, contrasts are log odds
    ratios (log ratios), shown as odds ratios (ratios) with ``type="response"``."""
    if not isinstance(emm, EMMGrid):
        raise ArgumentError(f"contrast takes the result of emmeans(), got {emm.__class__.__name__}")
    if interaction is not False and interaction is not None:
        return _interaction(emm, method if interaction is True else interaction, by, adjust, type)
    by = emm.misc.by_vars if by is _KEEP else _as_list(by)
    labels = emm.labels
    for v in by:
        if v not in labels.columns:
            raise ArgumentError(f"by variable {v!r} is not in the grid ({', '.join(labels.columns)})")
    args = pd.DataFrame({c: [_r_char(v) for v in labels[c]] for c in labels.columns})
    if enhance_levels:
        for c in labels.columns:
            if c not in by and pd.api.types.is_numeric_dtype(labels[c]) and not pd.api.types.is_bool_dtype(labels[c]):
                args[c] = c + args[c]
    by_rows = _by_rows(labels, by)
    if len({len(r) for r in by_rows}) > 1:
        raise SparseMixedError("by groups are of irregular size")
    pri = [c for c in labels.columns if c not in by]
    levs = [" ".join(args.loc[i, pri]) if pri else "" for i in by_rows[0]]
    fam = contrast_family(method, levs, **options)
    C = fam.coef
    m = C.shape[1]
    if m == 0:
        raise SparseMixedError(f"contrast method {method!r} gives no contrasts for levels {levs}")
    Ls, offs, lab = [], [], {name: []}
    for v in by:
        lab[v] = []
    for rows in by_rows:
        Ls.append(C.T @ emm.linfct[rows])
        offs.append(C.T @ emm._offset[rows])
        lab[name] += list(fam.names)
        for v in by:
            lab[v] += [labels[v].iloc[rows[0]]] * m
    new_labels = pd.DataFrame(lab, columns=[name] + by)
    misc = emm.misc
    colsum = C.sum(axis=0)
    if fam.type is not None:
        est_type = fam.type
    else:
        est_type = "contrast" if np.all(np.abs(colsum) < 1e-3) else "prediction"
    true_con = bool(np.all(np.abs(colsum / (1e-6 + np.max(np.abs(C), axis=0))) < 1e-6))
    notes = [n for n in misc.notes if not n.startswith("Note: contrasts are still")]
    tran, inv_lbl, log_con = misc.tran, misc.inv_lbl, False
    if tran is not None:
        if ratios and true_con and tran in _LOG_TRANS:
            log_con = True
            if tran == "logit":
                inv_lbl, tran = "odds.ratio", "log.o.r."
            elif tran != "log.o.r.":
                inv_lbl = "ratio"
        else:
            notes.append(f"Note: contrasts are still on the {Transform(tran).name} scale")
            tran = inv_lbl = None
    new_misc = replace(misc, pri_vars=[name], by_vars=list(by), est_name="estimate", est_type=est_type,
                       fam_size=fam.fam_size if fam.fam_size is not None else len(by_rows[0]),
                       adjust=adjust or fam.adjust or "none", infer=(False, True), tran=tran, inv_lbl=inv_lbl,
                       log_contrast=log_con or (misc.log_contrast and tran is not None),
                       pairby=tuple(by) if est_type == "pairs" else None, desc=fam.desc, notes=notes, null=0.0,
                       type=_check_type(type) if type is not None else misc.type)
    levels = {name: list(dict.fromkeys(fam.names))}
    for v in by:
        levels[v] = emm.levels.get(v, list(pd.unique(labels[v])))
    return EMMGrid(emm._basis, np.vstack(Ls), np.concatenate(offs), new_labels, levels, new_misc, emm._model)


def _interaction(emm: EMMGrid, methods, by, adjust, type) -> EMMGrid:
    by = emm.misc.by_vars if by is _KEEP else _as_list(by)
    vars_ = [v for v in emm.labels.columns if v not in by] + list(by)
    k = len(vars_) - len(by)
    if isinstance(methods, dict) and not all(isinstance(v, (list, tuple, np.ndarray)) for v in methods.values()):
        meth = [methods.get(v, "pairwise") for v in vars_[:k]]
    elif isinstance(methods, (list, tuple)):
        meth = [methods[i % len(methods)] for i in range(k)]
    else:
        meth = [methods] * k
    obj = emm
    for i in range(k - 1, -1, -1):
        nm = f"{vars_[i]}_{meth[i]}" if isinstance(meth[i], str) else f"{vars_[i]}_custom"
        others = [v for j, v in enumerate(vars_) if j != i]
        obj = contrast(obj, meth[i], by=others, name=nm, enhance_levels=False)
        vars_[i] = nm
    return obj.update(by_vars=list(by), pri_vars=vars_[:k], adjust=adjust or "none", pairby=None,
                      type=_check_type(type) if type is not None else obj.misc.type)


def pairs(emm: EMMGrid, reverse: bool = False, **kwargs) -> EMMGrid:
    """Pairwise differences of the means (emmeans' pairs): ``contrast(emm, "pairwise")``."""
    return contrast(emm, "revpairwise" if reverse else "pairwise", **kwargs)


def regrid(emm: EMMGrid, transform: str = "response") -> EMMGrid:
    """emmeans' regrid: the estimates back-transformed to the response scale become the new
    linear scale (bhat = g^-1(eta), V = D V_eta D, D = diag(dmu/deta), df kept), so that
    contrasts of the result are differences of probabilities (rates) with delta-method
    standard errors.  ``transform="none"`` re-grids on the link scale."""
    if not isinstance(emm, EMMGrid):
        raise ArgumentError(f"regrid takes the result of emmeans(), got {emm.__class__.__name__}")
    est, se, df, ok, VL = emm._esd()
    key = str(transform).lower()
    if key not in ("response", "mu", "unlink", "none"):
        raise ArgumentError(f"transform must be 'response' or 'none', got {transform!r}")
    misc = emm.misc
    bhat, V = est[ok], VL[np.ix_(ok, ok)]
    new = {}
    if key != "none" and misc.tran is not None:
        tr = Transform(misc.tran)
        D = np.asarray(tr.mu_eta(bhat), float)
        bhat = np.asarray(tr.linkinv(bhat), float)
        V = V * np.outer(D, D)
        labels = emm.labels.copy()
        if misc.inv_lbl:
            new["est_name"] = misc.inv_lbl
            if misc.log_contrast:
                for v in [p for p in misc.pri_vars if p not in misc.by_vars and p in labels.columns]:
                    labels[v] = labels[v].map(lambda s: s.replace(" - ", "/") if isinstance(s, str) else s)
        new.update(tran=None, inv_lbl=None, log_contrast=False)
    else:
        labels = emm.labels
    edf = df[ok]
    prev = emm._basis.df_msg
    if edf.size == 0 or np.any(np.isnan(edf)) or (np.all(np.isfinite(edf)) and np.ptp(edf) < 0.01) \
            or np.all(np.isinf(edf)):
        const = float(np.nanmean(edf)) if edf.size and not np.all(np.isnan(edf)) else np.nan
        df_fn = lambda L, c=const: np.full(np.atleast_2d(L).shape[0], c)
    else:
        def df_fn(L, d=edf):
            L = np.atleast_2d(L)
            out = np.empty(L.shape[0])
            for i, row in enumerate(L):
                idx = np.flatnonzero(adj.zapsmall(row) != 0)
                out[i] = np.nan if idx.size == 0 else np.nanmin(d[idx])
            return out
    msg = None if prev is None else (prev if prev.startswith("inherited") else
                                     f"inherited from {prev} when re-gridding")
    m = bhat.size
    basis = _Basis(bhat, V, df_fn, msg, np.arange(m), m)
    lin = np.zeros((est.size, m))
    lin[np.flatnonzero(ok), np.arange(m)] = 1.0
    lin[~ok] = np.nan
    out = EMMGrid(basis, lin, np.zeros(est.size), labels, emm.levels, replace(misc, **new), emm._model)
    return out
