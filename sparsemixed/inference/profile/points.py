"""One profiled point: the ML deviance minimised over all parameters but one.

Parameters on lme4's profile scale (``profile(fit)``, signames): per term, the column-wise
lower triangle of the standard-deviation/correlation matrix (``.sig01, .sig02, ...``:
sd_i = sigma |T_i.| on the diagonal, cor_ij = <T_i., T_j.> / (|T_i.| |T_j.|) below it),
then ``.sigma``, then the fixed effects.  With beta profiled out the ML deviance is

    d(sigma, theta) = log|M(theta)| + r2(theta) / sigma^2 + n log(2 pi sigma^2) - sum log w

(lme4's devfun2), and the profiled deviance of one parameter c is its minimum over the
others, by L-BFGS (:mod:`.argmin`) with analytic gradients, in a parametrisation
where every point is feasible (g = dlog|M| + dr2 / sigma^2, the gradient in theta at
fixed sigma):

    sigma = s:          min over theta of d(s, theta);  gradient g
    sd_{t,i} = s > 0:   row i of T_t = (s / sigma) u, u = v / |v| (v_i >= 0; no v for a
                        row of one entry); min over log sigma, v and the other theta:
                        dd/dlog sigma = 2n - 2 r2 / sigma^2 - (s / sigma) g_i'u,
                        dd/dv = (s / sigma) (I - u u') g_i / |v|
    sd_{t,i} = 0:       row i of T_t held at 0, sigma profiled: min over the rest of
                        dev(theta) = log|M| + n (1 + log(2 pi r2 / n)) - sum log w
    cor_{t,ij} = rho:   order the term's effects (j, i, others) by a permutation P; the lower
                        Cholesky factor B of P T_t T_t' P' has B_0. = (a), B_1. = c (rho,
                        sqrt(1 - rho^2)) and free rows 2..; T_t = chol(P' B B' P) (= B when
                        P = I).  min over a, c >= 0, B's rows 2.. and the other theta of
                        dev(theta); gradient through theta_t(B) (linear when P = I, central
                        differences of the small Cholesky otherwise)
    beta_j = c:         x_j moves to an offset: with y* = y - x_j c the cross-products become
                        Z'y* = Z'y - Z'x_j c,  X_{-j}'y* = X_{-j}'y - X_{-j}'x_j c,
                        y*'y* = y'y - 2 c x_j'y + c^2 x_j'x_j;  min over theta of dev(theta)

(sigma profiled: sigma^2 = r2 / n).  The model's cross-products are of y - X gamma
(model.fixed.shift, gamma, an OLS shift), so beta_j = c enters as c - gamma_j and the other fixed
effects are beta*_{-j} + gamma_{-j}.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ...crossprod import CrossProducts
from ...gradient import gradient_parts
from ...results.varcorr import sdcor
from .argmin import argmin
from .scale import chol_psd, theta_layout


# -- the profiled points ---------------------------------------------------------------
@dataclass
class Point:
    value: float          # the fixed parameter's value
    dev: float            # the minimised ML deviance
    theta: np.ndarray     # theta at the minimum (warm start for the next point)
    row: np.ndarray       # all parameters on the profile scale (sd/cor, sigma, beta)


class PointProfiler:
    """The ML deviance of ``model`` minimised with one profile-scale parameter fixed."""

    def __init__(self, model):
        self.model = model
        self.layout = theta_layout(model)
        self.nth = model.theta0.size
        self.n = model.nobs
        self.ldw = model.crossprod.sum_log_w

    # shared pieces
    def _row(self, theta, sigma, beta_user):
        return np.concatenate([sdcor(self.model.terms, theta, sigma), [sigma], beta_user])

    def _ml_state(self, model, theta):
        st = model.pls(theta)
        dev = st.ldL2 + self.n * (1.0 + math.log(2 * math.pi * st.r2 / self.n)) - self.ldw
        return st, dev

    def _finish(self, theta, model=None, beta_fixed=None):
        """PLS state, ML deviance, sigma = sqrt(r2 / n) and the fixed effects (user scale,
        beta_j = c inserted for a fixed-effect profile) at theta."""
        m = self.model if model is None else model
        st, dev = self._ml_state(m, theta)
        sigma = math.sqrt(st.r2 / self.n)
        if beta_fixed is None:
            beta = self.model.fixef_from(st.beta)
        else:
            j, c = beta_fixed
            rest = st.beta + np.delete(self.model.fixed.shift, j)
            beta = np.insert(rest, j, c)
        return st, dev, sigma, beta

    def at(self, w: int, value: float, start_theta, start_sigma: float | None = None) -> Point:
        """Profiled point of parameter index w (profile order) at ``value``, the search
        starting from theta ``start_theta`` (and sigma ``start_sigma``, for an sd)."""
        start = np.array(start_theta, float)
        if w < self.nth:
            par = self.layout[w]
            if par.row == par.col:
                return self._sd(par, value, start, start_sigma)
            return self._cor(par, value, start)
        if w == self.nth:
            return self._sigma(value, start)
        return self._beta(w - self.nth - 1, value, start)

    def _sigma(self, s, start):
        m, n = self.model, self.n

        def fg(th):
            st = m.pls(th)
            d = st.ldL2 + st.r2 / s ** 2 + n * math.log(2 * math.pi * s ** 2) - self.ldw
            dlogM, _, dr2 = gradient_parts(st, m.crossprod, m.relcov, False)
            return d, dlogM + dr2 / s ** 2

        th, d = argmin(fg, start, m.lower, np.full(self.nth, np.inf))
        st = m.pls(th)
        return Point(s, d, th, self._row(th, s, m.fixef_from(st.beta)))

    def _sd(self, par, s, start, sigma0):
        m, n = self.model, self.n
        idx = np.array([p.index for p in self.layout if p.term == par.term and p.row == par.row])
        rest = np.setdiff1d(np.arange(self.nth), idx)
        if s <= 0.0:
            th = start.copy()
            th[idx] = 0.0

            def fg0(x):
                full = th.copy()
                full[rest] = x
                f, g = m.objective_and_gradient(full, REML=False)
                return f, g[rest]

            x, d = argmin(fg0, th[rest], m.lower[rest], np.full(rest.size, np.inf))
            th[rest] = x
            st, dev, sigma, beta = self._finish(th)
            row = self._row(th, sigma, beta)
            row[par.index] = 0.0
            return Point(0.0, dev, th, row)
        # row i of T_t = (s / sigma) v / |v|: free log(sigma), v (direction; v_i >= 0;
        # omitted for a row of one entry) and the other theta
        nv = idx.size if idx.size > 1 else 0

        def unpack(x):
            sig = math.exp(min(x[0], 700.0))
            th = np.empty(self.nth)
            th[rest] = x[1 + nv:]
            if nv:
                v = x[1: 1 + nv]
                nrm = float(np.linalg.norm(v))
                u = v / nrm if nrm > 0 else np.eye(nv)[-1]
            else:
                nrm, u = 1.0, np.ones(1)
            th[idx] = (s / sig) * u
            return sig, th, u, nrm

        def fg(x):
            sig, th, u, nrm = unpack(x)
            st = m.pls(th)
            d = st.ldL2 + st.r2 / sig ** 2 + n * math.log(2 * math.pi * sig ** 2) - self.ldw
            dlogM, _, dr2 = gradient_parts(st, m.crossprod, m.relcov, False)
            g = dlogM + dr2 / sig ** 2                   # d/dtheta at fixed sigma
            grow = g[idx]
            dl = sig * (2 * n / sig - 2 * st.r2 / sig ** 3) - (s / sig) * float(grow @ u)
            gv = (s / sig) * (grow - u * float(grow @ u)) / nrm if nv else np.zeros(0)
            return d, np.concatenate([[dl], gv, g[rest]])

        sig0 = sigma0 if sigma0 and sigma0 > 0 else math.sqrt(m.pls(start).r2 / n)
        v0 = start[idx] if nv else np.zeros(0)
        if nv and not np.any(v0 != 0):
            v0 = np.eye(nv)[-1]
        if nv:
            v0 = v0 / np.linalg.norm(v0)
        lo_v = np.array([0.0 if p == idx[-1] else -np.inf for p in idx]) if nv else np.zeros(0)
        x0 = np.concatenate([[math.log(sig0)], v0, start[rest]])
        lo = np.concatenate([[-np.inf], lo_v, m.lower[rest]])
        x, d = argmin(fg, x0, lo, np.full(x0.size, np.inf))
        sigma, th, _, _ = unpack(x)
        st = m.pls(th)
        row = self._row(th, sigma, m.fixef_from(st.beta))
        row[par.index] = s
        return Point(s, d, th, row)

    def _cor(self, par, rho, start):
        m, k = self.model, par.k
        t = m.terms[par.term]
        sl = slice(par.off, par.off + t.cov.ntheta)
        others = np.setdiff1d(np.arange(self.nth), np.arange(sl.start, sl.stop))
        # order the term's effects (col, row, the rest): in the Cholesky factor B of the
        # reordered relative covariance, rows 0 and 1 alone set the correlation, so
        # B[0] = (a0), B[1] = c1 (rho, sqrt(1 - rho^2)) and rows 2.. are free
        perm = [par.col, par.row] + [i for i in range(k) if i not in (par.col, par.row)]
        ident = perm == list(range(k))
        br, bc = np.tril_indices(k)                       # row-major lower triangle of B
        tail = br >= 2
        nt = 2 + int(tail.sum())
        s1 = math.sqrt(max(0.0, 1.0 - rho * rho))

        def term_theta(xt):
            B = np.zeros((k, k))
            B[0, 0] = xt[0]
            B[1, 0], B[1, 1] = xt[1] * rho, xt[1] * s1
            B[br[tail], bc[tail]] = xt[2:]
            if ident:
                return t.cov.theta_of(B)
            S = np.empty((k, k))
            S[np.ix_(perm, perm)] = B @ B.T
            T = chol_psd(S)
            return t.cov.theta_of(T) if T is not None else None

        if ident:       # theta_t is linear in xt: its Jacobian once
            J = np.column_stack([term_theta(e) for e in np.eye(nt)])

        def unpack(x):
            th = np.empty(self.nth)
            th[others] = x[nt:]
            th[sl] = term_theta(x[:nt])
            return th

        def fg(x):
            f, g = m.objective_and_gradient(unpack(x), REML=False)
            gt = g[sl]
            if ident:
                gx = J.T @ gt
            else:                                   # central differences of theta_t(xt)
                gx = np.zeros(nt)
                for q in range(nt):
                    h = 1e-7 * max(1.0, abs(x[q]))
                    xp, xm = x[:nt].copy(), x[:nt].copy()
                    xp[q] += h
                    xm[q] = max(xm[q] - h, lo[q])
                    gx[q] = gt @ (term_theta(xp) - term_theta(xm)) / (xp[q] - xm[q])
            return f, np.concatenate([gx, g[others]])

        # warm start: the Cholesky factor of the reordered relative covariance at start
        T0 = t.cov.T(start[sl])
        B0 = chol_psd((T0 @ T0.T)[np.ix_(perm, perm)])
        x0 = np.concatenate([[B0[0, 0], float(np.linalg.norm(B0[1, :2]))], B0[br[tail], bc[tail]],
                             start[others]])
        lo = np.concatenate([[0.0, 0.0], np.where(br[tail] == bc[tail], 0.0, -np.inf), m.lower[others]])
        x, d = argmin(fg, x0, lo, np.full(x0.size, np.inf))
        th = unpack(x)
        st, dev, sigma, beta = self._finish(th)
        row = self._row(th, sigma, beta)
        row[par.index] = rho
        return Point(rho, dev, th, row)

    def dropped(self, j: int, c: float) -> "object":
        """A shallow copy of the model with beta_j fixed at c (x_j moved to an offset)."""
        m = self.model
        cp = m.crossprod
        delta = c - m.fixed.shift[j]
        keep = np.delete(np.arange(cp.p), j)
        xj = cp.XtX[:, j]
        new = CrossProducts(
            ZtZ=cp.ZtZ, ZtX=cp.ZtX[:, keep], Zty=cp.Zty - cp.ZtX[:, j] * delta,
            XtX=cp.XtX[np.ix_(keep, keep)], Xty=cp.Xty[keep] - xj[keep] * delta,
            yty=float(cp.yty - 2 * delta * cp.Xty[j] + delta ** 2 * cp.XtX[j, j]),
            n=cp.n, sum_log_w=cp.sum_log_w)
        return m.with_crossproducts(new)

    def _beta(self, j, c, start):
        mj = self.dropped(j, c)
        th, d = argmin(lambda th: mj.objective_and_gradient(th, REML=False), start,
                       mj.lower, np.full(self.nth, np.inf))
        st, dev, sigma, beta = self._finish(th, model=mj, beta_fixed=(j, c))
        return Point(c, dev, th, self._row(th, sigma, beta))
