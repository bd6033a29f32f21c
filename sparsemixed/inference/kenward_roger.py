"""Kenward-Roger adjusted covariance of beta-hat and denominator degrees of freedom, as
pbkrtest (vcovAdj, Lb_ddf, KRmodcomp; Halekoh & Hojsgaard 2014) computes them.

The marginal covariance is linear in the variance parameters gamma (pbkrtest's, not theta):

    Sigma = sum_r gamma_r G_r + sigma^2 W^-1,  G_r = Z (I_l (x) E_ab) Z' = Z D_r Z'

(one r per lower-triangle entry (a, b) of each term's covariance, E_ab = e_a e_b' + e_b e_a'
or e_a e_a'; the residual's G is W^-1, I without weights as in pbkrtest).  With Phi = vcov(beta)
= (X'Sigma^-1 X)^-1:

    P_r = -X'Sigma^-1 G_r Sigma^-1 X,   Q_rs = X'Sigma^-1 G_r Sigma^-1 G_s Sigma^-1 X,
    K_rs = tr(Sigma^-1 G_r Sigma^-1 G_s),
    I_rs = K_rs - 2 tr(Phi Q_rs) + tr(Phi P_r Phi P_s),   W = 2 I^-1  (pseudo-inverse if singular)
    U = sum_rs W_rs (Q_rs - P_r Phi P_s),   Phi_A = Phi + 2 Phi U Phi

Nothing n x n is formed: with U~ = W^1/2 Z Lambda, M = U~'U~ + I and K = (I + U~U~')^-1,
Sigma^-1 = W^1/2 K W^1/2 / sigma^2 and (I + U~U~')^-k = I - U~ (M^-1 + ... + M^-k) U~', so

    Z'Sigma^-1 Z,  Z'Sigma^-1 X,  X'Sigma^-1 X   and their W^-1-sandwiched versions
    = Z'WZ - Z'WZ Lambda F_k Lambda'Z'WZ, ...   (F_k = M^-1 + ... + M^-k),
    tr(Sigma^-1 W^-1 Sigma^-1 W^-1) = (n - q + tr(M^-2)) / sigma^4.

This is dense in q (M^-1 is formed): above KR_MAX_Q random effects it is refused.

Degrees of freedom for L beta = 0 (rank q_L), Theta = L'(L Phi L')^-1 L:

    A1 = sum_rs W_rs tr(Theta Phi P_r Phi) tr(Theta Phi P_s Phi),
    A2 = sum_rs W_rs tr(Theta Phi P_r Phi Theta Phi P_s Phi),   B = (A1 + 6 A2) / (2 q_L)
    g = ((q_L + 1) A1 - (q_L + 4) A2) / ((q_L + 2) A2),  c1 = g / (3 q_L + 2 (1 - g)),
    c2 = (q_L - g) / (3 q_L + 2 (1 - g)),  c3 = (q_L + 2 - g) / (3 q_L + 2 (1 - g))
    rho = ((1 - A2/q_L) / (1 - c2 B))^2 (1 + c1 B) / (q_L (1 - c3 B))
    DenDF = 4 + (q_L + 2) / (q_L rho - 1),   F.scaling = DenDF (1 - A2/q_L) / (DenDF - 2)
    F = F.scaling (L beta)'(L Phi_A L')^-1 (L beta) / q_L

A t-test (q_L = 1) uses Std. Error = sqrt(l'Phi_A l) and t = l'beta / SE (lmerTest).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.linalg as sla
from scipy import stats

from ..errors import SparseMixedError

KR_MAX_Q = 2000


@dataclass
class KRAdjusted:
    Phi: np.ndarray            # unadjusted vcov(beta)
    PhiA: np.ndarray           # Kenward-Roger adjusted vcov(beta)
    P: list                    # P_r, p x p each
    W: np.ndarray              # 2 I^-1
    condition: float           # smallest |eigenvalue| of I


def _param_pairs(terms):
    """Per random covariance parameter: the (rows, cols) index pairs whose sum is D_r."""
    out, off = [], 0
    for t in terms:
        rows, cols = t.cov.tril_indices()
        lev = np.arange(t.nlevels) * t.k + off
        for a, b in zip(rows, cols):
            ia, ib = lev + a, lev + b
            out.append([(ia, ib)] if a == b else [(ia, ib), (ib, ia)])
        off += t.q
    return out


def check_size(model) -> None:
    if model.q > KR_MAX_Q:
        raise SparseMixedError(
            f"Kenward-Roger needs dense q x q matrices (M^-1 and Z'Sigma^-1 Z) and this model has "
            f"q = {model.q} random effects, above the limit KR_MAX_Q = {KR_MAX_Q} "
            f"(memory ~ {8 * 8 * model.q ** 2 / 2 ** 20:.0f} MB, time ~ q^3). Use "
            "ddf='Satterthwaite', which scales to large models, or raise "
            "sparsemixed.inference.kenward_roger.KR_MAX_Q if you have the resources")


def kr_adjust(model, theta, sigma: float) -> KRAdjusted:
    """pbkrtest's vcovAdj at (theta, sigma)."""
    check_size(model)
    theta = np.asarray(theta, float)
    cp, rc = model.crossprod, model.relcov
    n, q, s2 = cp.n, cp.q, sigma ** 2
    Mi = _inverse_pd(rc.M(theta).toarray())           # M^-1 from M's lower triangle
    Lam = rc.Lambda(theta)
    Qs = (cp.ZtZ @ Lam).tocsr()                       # Z'WZ Lambda (sparse)
    R = np.asarray(Lam.T @ cp.ZtX)                    # Lambda'Z'WX
    QMi = np.asarray(Qs @ Mi)
    QF1Q = np.asarray(Qs @ QMi.T).T                   # Q M^-1 Q'
    QM2Q = sla.blas.dsyrk(1.0, QMi)                   # Q M^-2 Q' (upper triangle)
    QM2Q = np.triu(QM2Q) + np.triu(QM2Q, 1).T
    MiR = Mi @ R
    Mi2R = Mi @ MiR
    Mi3R = Mi @ Mi2R
    ZtZ = cp.ZtZ.toarray()
    C1 = (ZtZ - QF1Q) / s2                            # Z'Sigma^-1 Z
    C2 = (ZtZ - QF1Q - QM2Q) / s2 ** 2                # Z'Sigma^-1 W^-1 Sigma^-1 Z
    B1 = (cp.ZtX - Qs @ MiR) / s2                     # Z'Sigma^-1 X
    B2 = (cp.ZtX - Qs @ (MiR + Mi2R)) / s2 ** 2
    A1 = (cp.XtX - R.T @ MiR) / s2                    # X'Sigma^-1 X
    A2 = (cp.XtX - R.T @ (MiR + Mi2R)) / s2 ** 2
    A3 = (cp.XtX - R.T @ (MiR + Mi2R + Mi3R)) / s2 ** 3
    t2 = (n - q + float(np.sum(Mi * Mi))) / s2 ** 2
    del Mi, QMi, QF1Q, QM2Q, ZtZ

    pairs = _param_pairs(model.terms)
    nr = len(pairs)
    ng = nr + 1
    P = [-sum(B1[ia].T @ B1[ib] for ia, ib in pr) for pr in pairs] + [-A2]
    P = [(x + x.T) / 2 for x in P]

    def Q(r, s):
        if r < nr and s < nr:
            return sum(B1[ia].T @ C1[np.ix_(ib, ic)] @ B1[id_]
                       for ia, ib in pairs[r] for ic, id_ in pairs[s])
        if r < nr:
            return sum(B1[ia].T @ B2[ib] for ia, ib in pairs[r])
        if s < nr:
            return Q(s, r).T
        return A3

    def Ktr(r, s):
        if r < nr and s < nr:
            return sum(float(np.sum(C1[np.ix_(ib, ic)] * C1[np.ix_(ia, id_)]))
                       for ia, ib in pairs[r] for ic, id_ in pairs[s])
        if r < nr or s < nr:
            return sum(float(np.sum(C2[ib, ia])) for ia, ib in pairs[min(r, s)])
        return t2

    Phi = np.linalg.inv(A1)
    Phi = (Phi + Phi.T) / 2
    QQ = {(r, s): Q(r, s) for r in range(ng) for s in range(r, ng)}
    IE = np.empty((ng, ng))
    for r in range(ng):
        PhiPr = Phi @ P[r]
        for s in range(r, ng):
            IE[r, s] = IE[s, r] = (Ktr(r, s) - 2 * np.sum(Phi * QQ[r, s])
                                   + np.sum(PhiPr * (P[s] @ Phi)))
    cond = float(np.min(np.abs(np.linalg.eigvalsh(IE))))
    W = 2 * (np.linalg.inv(IE) if cond > 1e-10 else np.linalg.pinv(IE))
    W = (W + W.T) / 2
    U = np.zeros_like(Phi)
    for r in range(ng):
        for s in range(r + 1, ng):
            U += W[r, s] * (QQ[r, s] - P[r] @ Phi @ P[s])
    U = U + U.T
    for r in range(ng):
        U += W[r, r] * (QQ[r, r] - P[r] @ Phi @ P[r])
    PhiA = Phi + 2 * Phi @ U @ Phi
    return KRAdjusted(Phi, PhiA, P, W, cond)


def _inverse_pd(M_lower: np.ndarray) -> np.ndarray:
    """Inverse of a symmetric positive definite matrix given its lower triangle (LAPACK potri)."""
    c, info = sla.lapack.dpotrf(np.asfortranarray(M_lower), lower=1)
    if info == 0:
        c, info = sla.lapack.dpotri(c, lower=1)
    if info != 0:
        raise SparseMixedError(f"Kenward-Roger: M is not positive definite (LAPACK info {info})")
    return np.tril(c) + np.tril(c, -1).T


def _div_zero(x, y, tol=1e-14):
    return 1.0 if abs(x) < tol and abs(y) < tol else x / y


def kr_df(kr: KRAdjusted, L: np.ndarray, q: int | None = None) -> tuple[float, float]:
    """(DenDF, F.scaling) for L beta = 0 (pbkrtest's Lb_ddf / .KR_adjust)."""
    L = np.atleast_2d(np.asarray(L, float))
    q = np.linalg.matrix_rank(L) if q is None else q
    Phi = kr.Phi
    Theta = L.T @ np.linalg.solve(L @ Phi @ L.T, L)
    TP = Theta @ Phi
    u = [TP @ Pr @ Phi for Pr in kr.P]
    A1 = A2 = 0.0
    ng = len(u)
    for i in range(ng):
        for j in range(i, ng):
            e = 1.0 if i == j else 2.0
            A1 += e * kr.W[i, j] * np.trace(u[i]) * np.trace(u[j])
            A2 += e * kr.W[i, j] * np.sum(u[i] * u[j].T)
    B = (A1 + 6 * A2) / (2 * q)
    g = ((q + 1) * A1 - (q + 4) * A2) / ((q + 2) * A2)
    den = 3 * q + 2 * (1 - g)
    c1, c2, c3 = g / den, (q - g) / den, (q + 2 - g) / den
    V0, V1, V2 = 1 + c1 * B, 1 - c2 * B, 1 - c3 * B
    V0 = 0.0 if abs(V0) < 1e-10 else V0
    rho = _div_zero(1 - A2 / q, V1) ** 2 * V0 / V2 / q
    df2 = 4 + (q + 2) / (q * rho - 1)
    scaling = 1.0 if abs(df2 - 2) < 1e-2 else df2 * (1 - A2 / q) / (df2 - 2)
    return float(df2), float(scaling)


def contest1d(kr: KRAdjusted, beta, l) -> dict:
    l = np.asarray(l, float)
    est = float(l @ beta)
    se = float(np.sqrt(l @ kr.PhiA @ l))
    df, _ = kr_df(kr, l, q=1)
    t = est / se
    return {"Estimate": est, "Std. Error": se, "df": df, "t value": t,
            "Pr(>|t|)": float(2 * stats.t.sf(abs(t), df))}


def ftest(kr: KRAdjusted, beta, L) -> tuple[float, int, float, float]:
    """(unscaled F, NumDF, DenDF, F.scaling) for L beta = 0 (KRmodcomp's FtestU and Ftest)."""
    L = np.atleast_2d(np.asarray(L, float))
    q = int(np.linalg.matrix_rank(L))
    df2, scaling = kr_df(kr, L, q)
    Lb = L @ beta
    wald = float(Lb @ np.linalg.solve(L @ kr.PhiA @ L.T, Lb))
    return wald / q, q, df2, scaling
