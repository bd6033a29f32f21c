"""Fused row passes for the canonical links (binomial-logit, Poisson-log), in R's arithmetic.

    logit:  mu = 1/(1 + e^-eta) = e^eta/(1 + e^eta) (the latter for eta < 0: one exponential,
            e^-|eta|, gives mu and dmu/deta; |eta| > 30: R's constants),  dmu/deta = e^-|eta| / (1 + e^-|eta|)^2
            (|eta| > 30: DBL_EPSILON),  V = mu (1 - mu)
    log:    mu = max(e^eta, DBL_EPSILON) = dmu/deta,  V = mu
    w = prior_w (dmu/deta)^2 / V,   z = eta - offset + (y - mu) / (dmu/deta)
    sum d_i:  binomial 2 w (y log(y/mu) + (1-y) log((1-y)/(1-mu))),  Poisson 2 w (y log(y/mu) - (y - mu))

The same values as families.py's vectorised functions (checked in tests/test_glmm_input.py),
in one pass over the rows instead of a temporary per operation.
"""
from __future__ import annotations

import math

import numpy as np
from ..linalg.jit import njit, prange

from ..linalg.threads import kernel_threads, serial_twin

EPS = float(np.finfo(np.float64).eps)
LOGIT_THRESH = 30.0
LOGIT_LO = EPS / (1.0 + EPS)
LOGIT_HI = (1.0 / EPS) / (1.0 + 1.0 / EPS)
LOGIT, LOG = 1, 2


def kind(family) -> int:
    """LOGIT, LOG, or 0 (no fused kernel: use the family's functions)."""
    return {("binomial", "logit"): LOGIT, ("poisson", "log"): LOG}.get((family.name, family.link.name), 0)


@njit(inline="always")
def _mu_d(k, e):
    if k == LOGIT:
        if e < -LOGIT_THRESH:
            return LOGIT_LO, EPS, LOGIT_LO * (1.0 - LOGIT_LO)
        if e > LOGIT_THRESH:
            return LOGIT_HI, EPS, LOGIT_HI * (1.0 - LOGIT_HI)
        t = math.exp(-abs(e))             # one exponential: e^-eta for eta >= 0, else its inverse
        mu = 1.0 / (1.0 + t) if e >= 0.0 else t / (1.0 + t)
        return mu, t / ((1.0 + t) * (1.0 + t)), mu * (1.0 - mu)
    mu = max(math.exp(e), EPS)
    return mu, mu, mu


@njit(parallel=True, cache=True)
def _working(k, eta, y, pw, off, mu, w, z):
    for i in prange(eta.size):
        m, d, v = _mu_d(k, eta[i])
        mu[i] = m
        w[i] = pw[i] * d * d / v
        z[i] = eta[i] - off[i] + (y[i] - m) / d


@njit(parallel=True, cache=True)
def _mu_of(k, eta, mu):
    for i in prange(eta.size):
        mu[i] = _mu_d(k, eta[i])[0]


CHUNKS = 64       # the deviance's fixed blocks: the same sum for any number of threads


@njit(inline="always")
def _dev_term(k, yi, m, wi):
    if k == LOGIT:
        a = yi * math.log(yi / m) if yi != 0.0 else 0.0
        b = (1.0 - yi) * math.log((1.0 - yi) / (1.0 - m)) if yi != 1.0 else 0.0
        return 2.0 * wi * (a + b)
    return 2.0 * wi * (yi * math.log(yi / m) - (yi - m)) if yi > 0.0 else 2.0 * wi * m


@njit(parallel=True, cache=True)
def _deviance(k, y, mu, pw):
    """Compensated (Kahan) sums over CHUNKS fixed blocks: a naive sum of a million terms
    moves by ~5e-14 relative when eta moves by 1e-8, more than a converged PIRLS step
    gains, and PIRLS and the outer optimizer would see that noise."""
    n = y.size
    sums = np.zeros(CHUNKS)
    for t in prange(CHUNKS):
        s, c = 0.0, 0.0
        for i in range(n * t // CHUNKS, n * (t + 1) // CHUNKS):
            x = _dev_term(k, y[i], mu[i], pw[i]) - c
            tt = s + x
            c = (tt - s) - x
            s = tt
        sums[t] = s
    s, c = 0.0, 0.0
    for t in range(CHUNKS):
        x = sums[t] - c
        tt = s + x
        c = (tt - s) - x
        s = tt
    return s


@njit(parallel=True, cache=True)
def _gradient_terms(k, eta, y, pw, d, dw):
    """d_i = -2 prior_w (y - mu) (dmu/deta) / V and w'(eta_i), analytically: for the
    canonical links dmu/deta = V, so w = prior_w V and w' = prior_w dV/deta, i.e.
    prior_w mu (1 - mu)(1 - 2 mu) (logit) and prior_w mu (log); 0 where w is clamped
    (|eta| > 30 for logit, e^eta below DBL_EPSILON for log)."""
    for i in prange(eta.size):
        e = eta[i]
        m, dd, v = _mu_d(k, e)
        d[i] = -2.0 * pw[i] * (y[i] - m) * dd / v
        if k == LOGIT:
            dw[i] = 0.0 if abs(e) > LOGIT_THRESH else pw[i] * v * (1.0 - 2.0 * m)
        else:
            dw[i] = pw[i] * m if m > EPS else 0.0


_SERIAL = {f: serial_twin(f) for f in (_working, _mu_of, _deviance, _gradient_terms)}


def _pick(f, n):
    """The parallel kernel for large n, its serial twin below linalg.threads' threshold
    (threads woken for a small pass cost more than the pass)."""
    return f if kernel_threads(8 * n) > 1 else _SERIAL[f]


def working(k, eta, y, pw, off, mu, w, z):
    _pick(_working, eta.size)(k, eta, y, pw, off, mu, w, z)


def mu_of(k, eta, mu):
    _pick(_mu_of, eta.size)(k, eta, mu)


def gradient_terms(k, eta, y, pw, d, dw):
    _pick(_gradient_terms, eta.size)(k, eta, y, pw, d, dw)


def deviance(k, y, mu, pw) -> float:
    return _pick(_deviance, y.size)(k, y, mu, pw)
