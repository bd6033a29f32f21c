"""Random slopes on covariates far from 0: fit with the term's columns centred, report in the user's.

For a term (1 + x | g) whose x has mean c far larger than its spread, the columns 1 and x
of Z are nearly collinear: Z'WZ carries x's variation only in its last digits, and the
optimum (an intercept variance at x = 0 of order c^2 var(b_x), a correlation near -1)
cannot be found from the user's parametrization (sleepstudy with Days + 1e6: the criterion
itself is off by 1e-3 and L-BFGS-B stops at a singular point 43 above the optimum).  The
model with x - c in Z is the same model (an unstructured covariance is closed under the
linear map of the coefficients), so, per such term, with A the k x k map from centred to
user coefficients (A = I, A[intercept, x] = -c_x: b = A b_c),

    Z_c = Z A  (per level),     Sigma = A Sigma_c A',     T = chol(A T_c T_c' A')

(and X's columns centred as well, X_c = X B with B unit triangular: the same column space
and |R_X|, so the same criterion at every theta),

the fit runs on the model of Z_c (its own convergence checks, in its own well-scaled
units) and its theta_c is mapped to the user's theta; the result is computed by the user's
model at that theta (fixed effects, sigma, b and the likelihood are those of the centred
fit, to the digits the user's parametrization carries; a ScaleWarning says so).  A start
given in the user's theta is mapped the other way (A^-1: +c_x).  Used when |c_x| >
RECENTRE_RATIO * sd(x) (a glmer fit: GLMM_QUIET_RATIO * sd(x), with a ScaleWarning only
beyond RECENTRE_RATIO) for some column of a term with an intercept, or a fixed-effect
column alone beyond X_RATIO (then only X is centred: beta = B beta_c, R_X = R_Xc B^-1);
needs the rows (model.design()): a model built from a stream only gets the warning.
"""
from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import scipy.linalg as sla
import scipy.sparse as sp

from .errors import ScaleWarning

RECENTRE_RATIO = 100.0        # a random-effect column's |mean| / sd beyond which its term is centred
GLMM_QUIET_RATIO = 1.5        # the same for a glmer fit, silently below RECENTRE_RATIO (uncentred fits
                              # stopped above the centred optimum from 1.7 sd on; not lower: 0/1 factor
                              # slopes would pay: benchmarks/results/2026-12-06-glmm-centring.md)
X_RATIO = 1e4                 # the same for a fixed-effect column alone (X'WX keeps ~16 - 2 log10 digits)


@dataclasses.dataclass(frozen=True)
class Plan:
    """Per term index: the centres of its columns (0 where not centred); the centres of
    X's columns (None: X not centred)."""
    centres: dict
    x_centres: np.ndarray | None = None

    def maps(self, model, inverse: bool = False) -> dict:
        """Per term: the k x k coefficient map A (b = A b_c), or A^-1."""
        out = {}
        for i, c in self.centres.items():
            t = model.terms[i]
            A = np.eye(t.k)
            A[t.columns.index("(Intercept)")] -= (-1.0 if inverse else 1.0) * np.asarray(c)
            out[i] = A
        return out

    def x_map(self, p: int) -> np.ndarray:
        """B (X_c = X B, beta = B beta_c): unit upper triangular, the intercept first."""
        B = np.eye(p)
        if self.x_centres is not None:
            B[0] -= self.x_centres
        return B


def _far(mean: float, var: float, ratio: float = RECENTRE_RATIO) -> bool:
    return abs(mean) > ratio * np.sqrt(max(var, 0.0))


def plan(model, ratio: float = RECENTRE_RATIO) -> Plan | None:
    """The columns to centre, from the cross-products (sums over each term's levels of
    Z'WZ's intercept-x and x-x entries; X'WX's first row), or None.  Not for a sparse X."""
    cp = model.crossprod
    if model.sparse_X:
        return None
    centres, off = {}, 0
    for i, t in enumerate(model.terms):
        if "(Intercept)" in t.columns and t.k > 1:
            i0 = t.columns.index("(Intercept)")
            base = off + np.arange(t.nlevels) * t.k
            s0 = float(cp.ZtZ[base + i0, base + i0].sum())
            c = np.zeros(t.k)
            for j in range(t.k):
                if j != i0 and s0 > 0:
                    mean = float(cp.ZtZ[base + i0, base + j].sum()) / s0
                    if _far(mean, float(cp.ZtZ[base + j, base + j].sum()) / s0 - mean * mean, ratio):
                        c[j] = mean
            if c.any():
                centres[i] = c
        off += t.q
    x_centres = None
    names = model.fixef_names
    XtX = np.asarray(cp.XtX)
    if names and names[0] == "(Intercept)" and len(names) > 1 and XtX[0, 0] > 0:
        means = XtX[0] / XtX[0, 0]
        far = [_far(means[j], XtX[j, j] / XtX[0, 0] - means[j] ** 2, X_RATIO) for j in range(1, len(names))]
        if any(far) or centres:
            x_centres = np.concatenate([[0.0], means[1:]])
    if not centres and x_centres is None:
        return None
    return Plan(centres, x_centres)


def map_theta(model, theta: np.ndarray, maps: dict, rotations: dict | None = None) -> np.ndarray:
    """theta of each mapped term: T with T T' = (A T_c)(A T_c)', from the QR factorization
    (A T_c)' = Q R, T = R' S (S = diag(+-1), a nonnegative diagonal): no squaring (the slope's
    theta at x far from 0 is a difference of nearly equal terms in A T_c T_c' A'); a
    singular T_c maps to a singular T.  ``rotations``, if given, receives per term the
    orthogonal Q S with A T_c = T (Q S)' (so u = (Q S)' u_c)."""
    out = np.array(theta, dtype=float)
    off = 0
    for i, t in enumerate(model.terms):
        if i in maps:
            M = maps[i] @ t.cov.T(out[off: off + t.ntheta])
            Q, R = np.linalg.qr(M.T)
            sign = np.where(np.diag(R) < 0, -1.0, 1.0)
            out[off: off + t.ntheta] = t.cov.theta_of((R * sign[:, None]).T)
            if rotations is not None:
                rotations[i] = Q * sign[None, :]
        off += t.ntheta
    return out


def centred_z(Z, terms, maps: dict) -> sp.csr_matrix:
    """Z_c = Z A: each mapped term's level blocks of columns times its A (the others as they are)."""
    blocks = [sp.kron(sp.identity(t.nlevels, format="csr"), sp.csr_matrix(maps.get(i, np.eye(t.k))), format="csr")
              for i, t in enumerate(terms)]
    return (Z @ sp.block_diag(blocks, format="csr")).tocsr()


def _warn_mapped(what: str) -> None:
    warnings.warn(f"random-effect column(s) {what} are far from 0 relative to their spread: the fit was "
                  "computed with them centred and mapped back, but in this parametrization the intercept "
                  "variance (at 0) and its correlation with the slope are nearly unidentified. Centre "
                  "them in the formula (e.g. I(x - mean)) for well-determined estimates", ScaleWarning,
                  stacklevel=6)


def centred_model(model, p: Plan, d):
    """The model of Z_c = Z A and X_c = X B (the same rows ``d``, response, weights and columns)."""
    from .assemble import ModelParts
    from .model import LinearMixedModel

    maps = p.maps(model)
    Zc = centred_z(d.Z, model.terms, maps)
    B = p.x_map(d.X.shape[1])
    r0 = d.y - (d.offset if d.offset is not None else 0.0) - d.X @ model.fixed.shift
    cp = dataclasses.replace(d, Z=Zc, X=d.X @ B).cross_products(response=r0)
    fixed = dataclasses.replace(model.fixed, shift=np.linalg.solve(B, model.fixed.shift))
    parts = ModelParts(model.source, model.terms, cp, fixed, model.term_order, True)
    return LinearMixedModel.from_model_parts(parts, REML=model.REML)


def describe(model, p: Plan) -> str:
    cols = []
    for i, c in p.centres.items():
        t = model.terms[i]
        cols += [f"'{t.columns[j]}' of ({t.expr} | {t.group.name}) (mean {c[j]:.6g})" for j in np.flatnonzero(c)]
    if p.x_centres is not None and not cols:
        names = model.fixef_names
        cols = [f"'{names[j]}' (mean {p.x_centres[j]:.6g})" for j in np.flatnonzero(p.x_centres)]
    return ", ".join(cols)


def _per_level(vec: np.ndarray, model, mats: dict) -> np.ndarray:
    """vec (Z's column order) with each mapped term's level blocks v_j -> M v_j."""
    out = np.array(vec, dtype=float)
    off = 0
    for i, t in enumerate(model.terms):
        if i in mats:
            out[off: off + t.q] = (out[off: off + t.q].reshape(t.nlevels, t.k) @ mats[i].T).ravel()
        off += t.q
    return out


def fit_recentred(model, p: Plan, reml: bool, start, optimizer, verbose, control, fit_inner):
    """Fit the centred model (``fit_inner``: fitting._fit) and express its estimates in
    the user's parametrization: theta (map_theta), beta = B beta_c, R_X = R_Xc B^-1,
    b = A b_c and u = (Q S)' u_c per level; criterion, sigma and checks are the centred fit's."""
    from .errors import DataError

    what = describe(model, p)
    try:
        d = model.design("centring a column needs the rows")
    except DataError:                   # a stream, or released data: the user's parametrization
        d = None
    if d is None or d.X.shape[1] != model.p or d.Z.shape[1] != model.q:
        warnings.warn(f"column(s) {what} are far from 0 relative to their spread: they are nearly "
                      "collinear with the intercept and the fit may stop short of the optimum or lose "
                      "digits. Centre them in the formula (e.g. I(x - mean))", ScaleWarning, stacklevel=5)
        return None
    mc = centred_model(model, p, d)
    if start is not None and not isinstance(start, str):
        start = map_theta(model, np.asarray(start, float), p.maps(model, inverse=True))
    rc = fit_inner(mc, reml, start, optimizer, verbose, control)
    maps, rot = p.maps(model), {}
    theta = map_theta(model, rc.theta, maps, rot)
    B = p.x_map(model.p)
    summary = dataclasses.replace(rc.optsummary, final=theta, scale=None,
                                  initial=map_theta(model, rc.optsummary.initial, maps))
    summary.diagnostics = dict(rc.optsummary.diagnostics, singular=rc.is_singular, recentred={
        "random": {model.terms[i].name: {model.terms[i].columns[j]: float(c[j]) for j in np.flatnonzero(c)}
                   for i, c in p.centres.items()},
        "fixed": None if p.x_centres is None else dict(zip(model.fixef_names[1:], p.x_centres[1:].tolist()))})
    if p.centres:
        _warn_mapped(what)
    RX = sla.solve_triangular(B, rc.RX.T, trans="T", lower=False).T     # R_Xc B^-1
    return model.engine.result_class(
        model, reml, theta, B @ rc.beta, rc.sigma, rc.objective, RX,
        _per_level(rc.u, model, {i: Q.T for i, Q in rot.items()}), _per_level(rc.b, model, maps), summary)


def fit_glmm_recentred(model, nAGQ: int, fit_inner, *args):
    """The same for a glmer fit (in memory, nAGQ <= 1): the Laplace deviance is a function
    of Sigma, beta's column space and the offset, so it is the same on Z_c, X_c.  The twin
    shares the model's engine and response (its rows are Z_c, X_c); its optimum is mapped
    (theta, beta = B beta_c, u = (Q S)' u_c) and the result is the mode of the user's model
    there (PIRLS from the mapped u), so every result method sees the user's columns.
    None when there is nothing to centre (``fit_inner(model, nAGQ, *args)`` then fits)."""
    import copy

    from .glmm.rows import MemoryRows
    from .glmm.weighted import WeightedProducts

    if nAGQ > 1:
        return None
    if model.weighted is None:        # a Dask build keeps no rows to centre: say what to do
        p = plan(model.lmm, GLMM_QUIET_RATIO)
        if p is not None and p.centres:
            warnings.warn(f"random-effect column(s) {describe(model.lmm, p)} are far from 0 relative to their "
                          "spread, and a model built from a Dask DataFrame cannot be fitted with them centred "
                          "(the fit may stop short of the optimum): centre them in the formula, e.g. "
                          "I(x - mean)", ScaleWarning, stacklevel=5)
        return None
    lmm = model.lmm
    p = plan(lmm, GLMM_QUIET_RATIO)
    if p is None:
        return None
    far = plan(lmm)                   # far enough for the user's parametrization to lose digits
    w = model.weighted
    maps = p.maps(lmm)
    B = p.x_map(w.X.shape[1])
    twin = copy.copy(model)
    twin.weighted = WeightedProducts(centred_z(w.Z, lmm.terms, maps), w.X @ B, lmm.crossprod.ZtZ)
    twin.rows = MemoryRows(twin.weighted, model.response)
    rc = fit_inner(twin, nAGQ, *args)
    rot = {}
    theta = map_theta(lmm, rc.theta, maps, rot)
    beta = B @ rc.beta
    u0 = _per_level(rc.u, lmm, {i: Q.T for i, Q in rot.items()})
    nt = theta.size
    s = rc.optsummary

    def user(x):
        x = np.asarray(x, float)
        return np.concatenate([map_theta(lmm, x[:nt], maps), B @ x[nt:]]) if x.size > nt else map_theta(lmm, x, maps)
    summary = dataclasses.replace(s, final=user(s.final), initial=user(s.initial))
    summary.diagnostics = dict(s.diagnostics, recentred=describe(lmm, p))
    from .errors import DataError, NumericalError

    try:
        final = model.mode(theta, beta, u0=u0) if nAGQ == 1 else model.mode(theta, u0=u0, beta0=beta)
    except NumericalError:
        raise DataError(
            f"the fit with the columns {describe(lmm, p)} centred converged (deviance {rc.mode.laplace:.6f}), but "
            "in the formula's columns the conditional modes at those estimates cannot be computed in double "
            "precision: the columns are too far from 0 for their spread. Centre them in the formula, e.g. "
            "I(x - mean), and refit") from None
    if far is not None and far.centres:
        _warn_mapped(describe(lmm, p))
    if abs(final.laplace - rc.mode.laplace) > 1e-6 * max(1.0, abs(rc.mode.laplace)):
        warnings.warn(f"the fit of the centred columns {describe(lmm, p)} reached deviance {rc.mode.laplace:.6f}; "
                      f"in the formula's columns the same estimates give {final.laplace:.6f} (digits lost to "
                      "the columns' distance from 0): centre them in the formula", ScaleWarning, stacklevel=5)
    return type(rc)(model, final, summary, nAGQ)
