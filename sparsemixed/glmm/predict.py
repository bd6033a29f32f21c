"""Prediction from a glmer fit, lme4's ``predict.merMod`` (type "link" or "response"), with
standard errors that include the random effects' conditional uncertainty.

    eta_new = X_new beta + Z_new^(S) b + offset_new,     mu_new = g^-1(eta_new)   (type="response")

Standard errors (``se_fit=True``) and confidence intervals (``interval="confidence"``,
z = Phi^-1((1 + level) / 2)), theta taken as known (as lme4's conditional variances take it):

    se_type="conditional" (default): the error of x'beta-hat + z'b-hat as a prediction of
    x'beta + z'b, beta and b jointly.  At the mode's working weights W the Laplace
    approximation's joint precision of (u, beta) (the penalized deviance's Hessian / 2) is

        H = [ Lambda'Z'WZ Lambda + I    Lambda'Z'WX ]  = K K',   K = [ P'L      0    ]
            [ X'WZ Lambda               X'WX        ]                [ R_ZX'   R_X'  ]

        (P M P' = L L', R_ZX = L^-1 P Lambda'Z'WX, R_X'R_X = X'WX - R_ZX'R_ZX: the PLS
        factor of the joint system at the mode, GlmerResult._joint_state), and with
        b = Lambda u, a = [Lambda'z; x]:

        se_link^2 = a' H^-1 a + s_new = ||c1||^2 + ||c2||^2 + s_new,
            c1 = L^-1 P Lambda'z,   c2 = R_X^-T (x - R_ZX' c1)          (K^-1 a; H^-1 is never formed)
            (sparse X: H is Maug itself, P Maug P' = L_aug L_aug', and se^2 = ||L_aug^-1 P a||^2 + s_new)

        s_new = z_k' Sigma_k z_k = ||T_k' z_k||^2 (z_k: the row's values of term k's columns),
        summed over the selected terms k whose level in the row is new (allow_new_levels=True)
        or missing: eta holds 0 for that effect, so the prediction misses it by the effect
        itself, of prior variance Sigma_k = T_k T_k' (it is included, because the data
        say nothing about a level they do not hold; glmmTMB's predict counts it the same way).
        A term left out by ``re_form`` adds nothing to eta nor to the variance (its columns
        of a are 0): the interval is for x'beta + z_S'b_S.  re_form="~0" therefore gives
        x'(R_X'R_X)^-1 x, the fixed-only formula with vcov(use_hessian=False).

    se_type="fixed": the uncertainty of beta-hat only (the conditional modes taken as known,
    the earlier behaviour and what emmeans-style population-level intervals use):

        se_link^2 = x' V x,  V = vcov()  (glmer's default: the beta block of 2 x the inverse
        Hessian of the deviance in (theta, beta), which does not take theta as known;
        (R_X'R_X)^-1 for nAGQ = 0)

    type="response": the link interval's endpoints through g^-1 (it is increasing), and
    se_fit = |dmu/deta| se_link (the delta method).

Against glmmTMB on cbpp (tests/test_glmm_predict_se.py): se_type="conditional" equals a'C a
with C the inverse of the (beta, b) block of TMB's exact Hessian of the joint negative
log-likelihood (theta known); glmmTMB's own ``predict(se.fit=TRUE)`` also carries theta's
uncertainty (sdreport's delta method) and is up to 8 % larger there.

``newdata=None`` with ``re_form=None``: the fit's linear predictor (or mu) at the mode.
Otherwise X_new replays the fit's encoding of the fixed effects, Z_new^(S) holds the
random-effects columns selected by ``re_form`` (None: all; "~0"/"NA": none; "~(1|g)": those
named) for the levels seen in the fit, and a new level or a missing grouping value
contributes 0 (with ``allow_new_levels=True``; else an error, lme4's rule) -- the linear model's builders
(inference/predict.py) on the GLMM's internal linear model.  offset_new is the sum of the
formula's ``offset(...)`` terms evaluated on newdata; an ``offset=`` argument of glmer is
left out, as lme4's predict leaves it out (with a warning here).

A "prediction" interval is refused: a new binary or count observation has no normal
interval (``simulate`` gives its distribution).  Rows with a missing value
in another column the prediction uses give NaN (lme4's na.pass); the columns read and that
rule are the linear model's (inference.predict.newdata_columns).
"""
from __future__ import annotations

import types
import warnings

import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.stats import norm

from ..errors import ArgumentError, DataError, SparseMixedWarning
from ..inference.predict import (_fixed_design, _random_design, _select_terms, distinct_rows, newdata_columns,
                                 term_mask)
from ..linalg.augmented import AugState
from ..linalg.pls import trsolve
from .response import _call_spans, _evaluate, _numeric

TYPES = ("link", "response")
SE_TYPES = ("conditional", "fixed")
BATCH = 256


def frame_of(data) -> pd.DataFrame:
    return pd.DataFrame(data) if isinstance(data, dict) else data


def fitted_index(model) -> pd.Index:
    """The index of the rows the model kept (of the data it was built from)."""
    index = frame_of(model.data).index
    return index[model.kept] if model.kept is not None else index


def formula_offsets(formula: str, data: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The sum of the formula's ``offset(expr)`` terms evaluated on ``data``, and the exprs."""
    rhs = formula.split("~", 1)[1]
    off = np.zeros(len(data))
    exprs = [inner for _, _, inner in _call_spans(rhs, "offset")]
    for inner in exprs:
        off = off + _numeric(_evaluate(inner, data, "the offset"), f"offset({inner})")
    return off, exprs


def _has_offset_argument(model) -> bool:
    """Whether glmer's ``offset=`` argument added to the formula's offsets (not kept by the
    model, so found by comparing the rows' offsets with the formula's)."""
    off, _ = formula_offsets(model.formula, frame_of(model.data))
    if model.kept is not None:
        off = off[model.kept]
    return not np.allclose(off, model.response.offset, rtol=1e-12, atol=1e-12, equal_nan=True)


def predict(res, newdata=None, type: str = "link", re_form=None, allow_new_levels: bool = False,
            se_fit: bool = False, interval: str = "none", level: float = 0.95, se_type: str = "conditional"):
    """lme4's ``predict`` for a glmer fit: a Series indexed as ``newdata`` (or the fit's rows)
    on the link scale (``type="link"``) or the response scale (``"response"``: probabilities
    for binomial, means for Poisson).  ``se_fit`` / ``interval="confidence"``: a DataFrame
    with ``se_fit`` and/or ``lwr``, ``upr``; ``se_type="conditional"`` (default) the
    uncertainty of beta-hat and b-hat jointly (theta known), ``"fixed"`` that of beta-hat
    only (vcov()).  See the module docstring."""
    if type not in TYPES:
        raise ArgumentError(f"type must be 'link' or 'response', got {type!r}")
    if interval not in ("none", "confidence"):
        raise ArgumentError(f"interval must be 'none' or 'confidence' for a glmer fit, got {interval!r} (a "
                            "prediction interval for a new binary or count observation is not a normal "
                            "interval; simulate() gives its distribution)")
    if not 0 < level < 1:
        raise ArgumentError(f"level must be between 0 and 1, got {level!r}")
    if se_type not in SE_TYPES:
        raise ArgumentError(f"se_type must be 'conditional' (beta-hat and b-hat jointly) or 'fixed' (beta-hat "
                            f"only), got {se_type!r}")
    want_se = se_fit or interval != "none"
    eta, X, Z, prior, index = _linear_predictor(res, newdata, re_form, allow_new_levels,
                                                design=want_se and se_type == "conditional")
    link = res.model.family.link
    fit = link.linkinv(eta) if type == "response" else np.asarray(eta, dtype=float)
    if not want_se:
        return pd.Series(np.asarray(fit, dtype=float), index=index, name="fit")
    ok = np.isfinite(eta)
    se = np.full(eta.size, np.nan)
    if se_type == "conditional":
        se[ok] = np.sqrt(conditional_variance(res, X[ok], Z[np.flatnonzero(ok)]) + prior[ok])
    elif X.shape[1]:
        V = res.vcov().to_numpy()
        se[ok] = np.sqrt(np.einsum("ij,jk,ik->i", X[ok], V, X[ok]))
    else:
        se[ok] = 0.0
    out = pd.DataFrame({"fit": np.asarray(fit, dtype=float)}, index=index)
    if interval == "confidence":
        half = norm.ppf(0.5 + level / 2.0) * se
        lo, hi = eta - half, eta + half
        if type == "response":                   # the link's inverse is increasing: endpoints map
            lo, hi = link.linkinv(lo), link.linkinv(hi)
        out["lwr"], out["upr"] = np.asarray(lo, dtype=float), np.asarray(hi, dtype=float)
        out.attrs.update(interval=interval, level=level)
    if se_fit:
        out["se_fit"] = se * np.abs(link.mu_eta(eta)) if type == "response" else se
    out.attrs.update(se_type=se_type)
    return out


def conditional_variance(res, X, Z) -> np.ndarray:
    """a' H^-1 a per row, a = [Lambda'z; x] (rows of ``X``, dense or sparse, and of the sparse
    ``Z``): the conditional variance of the error of x'beta-hat + z'b-hat at the fit's theta
    (module docstring), from the PLS factor of the joint (u, beta) system at the mode's weights
    (identical rows solved once, BATCH columns per solve).  On the sparse-X path that factor is
    Maug's, and Maug = H: a'H^-1 a = ||L_aug^-1 P a||^2 (linalg/augmented.py)."""
    Xs = sp.csr_matrix(X, dtype=float)
    Z = sp.csr_matrix(Z)
    m, p = Xs.shape
    if m == 0:
        return np.zeros(0)
    st = res._joint_state()                 # the factor at the mode (held while ``st`` lives)
    augmented = isinstance(st, AugState)
    factor = st.factor
    if not augmented:
        RZX, RX = np.asarray(st.RZX), np.asarray(st.RX)
    first, inv = distinct_rows(sp.hstack([Z, Xs], format="csr"))
    A = (res.model.Lambda(res.theta).T @ Z[first].T).tocsc()       # Lambda' z of each distinct row
    Xd = Xs[first]
    out = np.empty(first.size)
    for s in range(0, first.size, BATCH):
        Xb = Xd[s: s + BATCH].toarray().T                             # p x batch
        if augmented:
            C = np.asarray(factor.solve_L(np.vstack([A[:, s: s + BATCH].toarray(), Xb]))).reshape(A.shape[0] + p, -1)
            out[s: s + BATCH] = (C ** 2).sum(axis=0)
            continue
        C1 = np.asarray(factor.solve_L(A[:, s: s + BATCH].toarray())).reshape(A.shape[0], -1)
        v = (C1 ** 2).sum(axis=0)
        if p:
            C2 = trsolve(RX, Xb - RZX.T @ C1, trans=1)
            v = v + (C2 ** 2).sum(axis=0)
        out[s: s + BATCH] = v
    return out[inv]


def _linear_predictor(res, newdata, re_form, allow_new_levels, design: bool = False):
    """(eta, X of the rows, Z of the rows over the selected terms and seen levels (sparse;
    None unless ``design``), s_new of the rows (new levels' prior variances), index): NaN
    where a value the prediction uses is missing."""
    model = res.model
    view = types.SimpleNamespace(model=model.lmm, theta=res.theta)     # what the LMM builders read
    sel = _select_terms(view, re_form, newdata)
    if newdata is None:
        index = fitted_index(model)
        X = model.X                                 # StreamedDataError for a Dask build
        Z = None
        if re_form is None:
            eta = np.array(res._rows("predict()").eta, dtype=float)
            if design:
                Z = model.Z
        else:
            Z = model.Z @ sp.diags(term_mask(model, sel))
            eta = X @ res.beta + Z @ res.b + model.response.offset
        return np.asarray(eta, dtype=float), X, Z, np.zeros(X.shape[0]), index
    data = frame_of(newdata)
    if not isinstance(data, pd.DataFrame):
        raise DataError(f"newdata must be a pandas DataFrame, got {newdata.__class__.__name__}")
    lmm = model.lmm
    needed = newdata_columns(lmm, data, sel)
    offset, _ = formula_offsets(model.formula, data)
    if _has_offset_argument(model):
        warnings.warn("the model has an offset given by glmer's offset= argument, which predict(newdata) leaves "
                      "out (as lme4's predict does); write it in the formula as offset(column) to have it "
                      "evaluated on newdata", SparseMixedWarning, stacklevel=4)
    ok = ~data[sorted(needed)].isna().any(axis=1).to_numpy() if needed else np.ones(len(data), bool)
    eta = np.full(len(data), np.nan)
    X = np.full((len(data), model.p), np.nan)
    prior = np.zeros(len(data))
    rows = np.flatnonzero(ok)
    Zall = sp.csr_matrix((len(data), model.q))
    if ok.any():
        sub = data.loc[ok] if not ok.all() else data
        Xs = _fixed_design(lmm, sub)
        Z, prior_s = _random_design(view, sub, sel, allow_new_levels)
        eta[ok] = Xs @ res.beta + Z @ res.b + offset[ok]
        X[ok] = Xs
        prior[ok] = prior_s
        if design:                                   # Z's rows placed at the complete rows
            Zall = (sp.csr_matrix((np.ones(rows.size), (rows, np.arange(rows.size))), shape=(len(data), rows.size))
                    @ Z).tocsr()
    return eta, X, Zall if design else None, prior, data.index
