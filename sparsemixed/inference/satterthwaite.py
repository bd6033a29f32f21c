"""Satterthwaite's denominator degrees of freedom for t- and F-tests of the fixed effects,
as lmerTest (Kuznetsova, Brockhoff & Christensen 2017) computes them.

phi = (sigma, theta) (lmerTest orders it (theta, sigma); only the order differs).

    C(phi) = sigma^2 (R_X'R_X)^-1 = sigma^2 K,   K = (X'V0^-1 X)^-1,  V0 = W^-1 + Z Lambda Lambda'Z'

Its Jacobian is analytic (lmerTest differentiates numerically with numDeriv):

    dC/dsigma   = 2 C / sigma
    dC/dtheta_i = sigma^2 K (S_i + S_i') K,   S_i = H' dLambda_i Lambda' H,
                  H = Z'V0^-1 X = Z'WX - Z'WZ Lambda M^-1 Lambda'Z'WX

(dLambda_i = dLambda/dtheta_i: ones where Lind == i), since d(X'V0^-1X) = -H' dV0 H and
dV0/dtheta_i = Z (dLambda_i Lambda' + Lambda dLambda_i') Z'.

One contrast l (a t-test):  v = l'C l,  g = dv/dphi,  A = vcov_varpar = 2 H_dev^-1,

    df = 2 v^2 / (g' A g),    t = l'beta / sqrt(v),   p = 2 P(T_df > |t|)

with g_sigma = 2 v / sigma,  g_theta_i = 2 sigma^2 sum_{Lind(e) = i} (H w)[row_e] (Lambda'H w)[col_e],
w = K l.  A contrast matrix L (an F-test): L C L' = P D P' (eigenvalues d_1 >= ... > tol);
with the q positive ones, t_m = p_m'L beta / sqrt(d_m), F = sum t_m^2 / q,
nu_m = 2 d_m^2 / (g_m' A g_m) for the contrast p_m'L, and

    DenDF = 2E / (E - q),  E = sum_m nu_m / (nu_m - 2)    (2 if any nu_m <= 2; the common
                                                            value if all nu_m are equal)

Sum Sq = F q sigma^2, Mean Sq = F sigma^2 (lmerTest's table).  Parameters on the boundary
(NaN rows of vcov_varpar) are treated as known: their rows and columns of A are 0.

Cost (:func:`cost_estimate`, in criterion evaluations, for the summary's default).  A is the
central-difference Hessian of the deviance from 2 (1 + ntheta) gradients (inference.varpar),
each a factorization plus a gradient that costs g evaluations: on the blocked factor g = 2
with a diagonal Lambda (diag(M^-1) from the blocks; InstEval: 0.22 s against 0.19 s for a
factorization and 0.14 s for the fit's average evaluation), 3 otherwise (the selected
inverse), 4 with a dense Schur block of q2 >= blocked.LARGE_DENSE_Q2; 3 on CHOLMOD (the
selected inverse, Takahashi's recursion over the whole factor); 1 on the dense engine.
Plus one factorization and p solves for H.  So df cost about 2 (1 + ntheta)(1 + g) + 1
evaluations; the fit took feval evaluations and geval gradients (optsummary).  (InstEval:
2 (1 + 3) 3 + 1 = 25 against the fit's 33; measured 3.3 to 4.6 s against 4.5 to 4.8 s.)
Both are counts, not timings, so the summary's choice (:func:`too_costly`) is the same on
every machine.  Below DF_AUTO_MIN_Q
random effects an evaluation costs milliseconds and the df are always computed.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy import stats

from .varpar import varpar_cov

EIG_EPS = np.sqrt(np.finfo(float).eps)
DF_AUTO_MIN_Q = 50_000      # from this q on, the summary skips df that cost more than the fit


@dataclass
class SattPieces:
    sigma: float
    K: np.ndarray          # (R_X'R_X)^-1
    H: np.ndarray          # Z'V0^-1 X   (q x p)
    G: np.ndarray          # Lambda' H   (q x p)
    rows: np.ndarray       # Lambda's nonzeros: row, column, theta index
    cols: np.ndarray
    lind: np.ndarray
    A: np.ndarray          # vcov_varpar in (sigma, theta), boundary entries 0
    A_raw: np.ndarray      # as varpar_cov returned it (NaN on the boundary)

    @property
    def C(self) -> np.ndarray:
        return self.sigma ** 2 * self.K

    @property
    def ntheta(self) -> int:
        return self.A.shape[0] - 1


def pieces(model, theta, sigma: float, reml: bool) -> SattPieces:
    """Everything the Satterthwaite computations need at (theta, sigma): q x p work plus the
    (1 + ntheta)-dimensional Hessian of the deviance (inference.varpar)."""
    theta = np.asarray(theta, float)
    state = model.pls(theta)
    cp, rc = model.crossprod, model.relcov
    Lam = rc.Lambda(theta)
    p = cp.p
    Minv_LtZtX = np.asarray(state.factor.solve_Lt(state.RZX)).reshape(rc.q, p)
    H = cp.ZtX - cp.ZtZ @ (Lam @ Minv_LtZtX)
    G = np.asarray(Lam.T @ H)
    Rinv = sla.solve_triangular(state.RX, np.eye(p), lower=False)
    vc = varpar_cov(model, sigma, theta, reml)
    A = np.where(np.isnan(vc.cov), 0.0, vc.cov)
    return SattPieces(float(sigma), Rinv @ Rinv.T, H, G, rc.Lrows, rc.Lcols, rc.Lind, A, vc.cov)


def jacobian(pc: SattPieces) -> np.ndarray:
    """dC/dphi, shape (1 + ntheta, p, p), in (sigma, theta) order."""
    p = pc.K.shape[0]
    out = np.empty((pc.ntheta + 1, p, p))
    out[0] = 2 * pc.C / pc.sigma
    for i in range(pc.ntheta):
        e = pc.lind == i
        S = pc.H[pc.rows[e]].T @ pc.G[pc.cols[e]]
        out[i + 1] = pc.sigma ** 2 * pc.K @ (S + S.T) @ pc.K
    return out


def variance_and_gradient(pc: SattPieces, L: np.ndarray):
    """v_m = l_m'C l_m and g_m = dv_m/dphi for each row l_m of L: (v (m,), g (m, 1 + ntheta))."""
    L = np.atleast_2d(np.asarray(L, float))
    Wm = pc.K @ L.T                                   # p x m
    v = pc.sigma ** 2 * np.einsum("ij,ji->i", L, Wm)
    HW, GW = pc.H @ Wm, pc.G @ Wm                     # q x m
    prod = HW[pc.rows] * GW[pc.cols]                  # nnz(Lambda) x m
    g = np.empty((L.shape[0], pc.ntheta + 1))
    g[:, 0] = 2 * v / pc.sigma
    for m in range(L.shape[0]):
        g[m, 1:] = 2 * pc.sigma ** 2 * np.bincount(pc.lind, weights=prod[:, m], minlength=pc.ntheta)
    return v, g


def contest1d(pc: SattPieces, beta, l) -> dict:
    """lmerTest's contest1D: Estimate, Std. Error, df, t value, Pr(>|t|) for l'beta = 0."""
    l = np.asarray(l, float).reshape(1, -1)
    est = float(l[0] @ beta)
    v, g = variance_and_gradient(pc, l)
    df = float(2 * v[0] ** 2 / (g[0] @ pc.A @ g[0]))
    se = float(np.sqrt(v[0]))
    t = est / se
    return {"Estimate": est, "Std. Error": se, "df": df, "t value": t,
            "Pr(>|t|)": float(2 * stats.t.sf(abs(t), df))}


def fstat_ddf(nu: np.ndarray, tol: float = 1e-8) -> float:
    """lmerTest's get_Fstat_ddf: DenDF of a mean of q squared t statistics."""
    nu = np.asarray(nu, float)
    if nu.size == 1:
        return float(nu[0])
    if np.all(np.abs(np.diff(nu)) < tol):
        return float(nu.mean())
    if np.any(nu <= 2):
        return 2.0
    E = float(np.sum(nu / (nu - 2)))
    return 2 * E / (E - nu.size)


def f_row(F: float, ndf: int, ddf: float, sigma: float, Fscale: float = 1.0) -> dict:
    """One row of lmerTest's anova table (mk_Ftable)."""
    ms = F * sigma ** 2
    Fv = F * Fscale
    return {"Sum Sq": ms * ndf, "Mean Sq": ms, "NumDF": ndf, "DenDF": ddf, "F value": Fv,
            "Pr(>F)": float(stats.f.sf(Fv, ndf, ddf))}


def contest_md(pc: SattPieces, beta, L) -> dict | None:
    """lmerTest's contestMD (Satterthwaite) for L beta = 0; None if L has no rows of rank."""
    L = np.atleast_2d(np.asarray(L, float))
    if L.shape[0] == 0:
        return None
    if L.shape[0] == 1:
        r = contest1d(pc, beta, L[0])
        return f_row(r["t value"] ** 2, 1, r["df"], pc.sigma)
    VL = L @ pc.C @ L.T
    d, P = np.linalg.eigh(VL)
    d, P = d[::-1], P[:, ::-1]                        # decreasing, as R's eigen
    tol = max(EIG_EPS * d[0], 0.0)
    q = int(np.sum(d > tol))
    if q == 0:
        return None
    PtL = P[:, :q].T @ L
    if q == 1:
        r = contest1d(pc, beta, PtL[0])
        return f_row(r["t value"] ** 2, 1, r["df"], pc.sigma)
    t2 = (PtL @ beta) ** 2 / d[:q]
    _, g = variance_and_gradient(pc, PtL)
    nu = 2 * d[:q] ** 2 / np.einsum("mi,ij,mj->m", g, pc.A, g)
    return f_row(float(t2.sum() / q), q, fstat_ddf(nu), pc.sigma)


def gradient_cost(model) -> float:
    """A gradient's cost in criterion evaluations (module docstring), from the engine."""
    from ..linalg import blocked

    f = getattr(model, "factor", None)
    ordering = getattr(f, "ordering", None)
    if ordering == "blocked":
        if getattr(f, "q2", 0) >= blocked.LARGE_DENSE_Q2:
            return 4.0
        return 2.0 if model.relcov.diagonal_Lambda else 3.0
    if ordering in ("natural", "amd", "metis"):
        return 3.0
    return 1.0


def cost_estimate(model, optsummary) -> tuple[float, float]:
    """(df, fit): the Satterthwaite df's estimated cost and the fit's, in criterion
    evaluations (module docstring)."""
    g = gradient_cost(model)
    ntheta = model.theta0.size
    df = 2.0 * (1 + ntheta) * (1.0 + g) + 1.0
    fit = float(getattr(optsummary, "feval", 0) or 0) + g * float(getattr(optsummary, "geval", 0) or 0)
    return df, fit


def too_costly(model, optsummary) -> tuple[float, float] | None:
    """The (df, fit) costs when the summary's default should skip the df: q >= DF_AUTO_MIN_Q
    and the df would cost more evaluations than the fit took; else None."""
    if model.q < DF_AUTO_MIN_Q:
        return None
    df, fit = cost_estimate(model, optsummary)
    return (df, fit) if df > fit else None
