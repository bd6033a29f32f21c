"""Fused row passes for the canonical links (binomial-logit, Poisson-log), in R's arithmetic.

    logit:  mu = 1/(1 + e^-eta) (|eta| > 30: R's constants),  dmu/deta = e^-|eta| / (1 + e^-|eta|)^2
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
from numba import njit, prange

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
            mu = LOGIT_LO
        elif e > LOGIT_THRESH:
            mu = LOGIT_HI
        else:
            mu = 1.0 / (1.0 + math.exp(-e))
        if abs(e) > LOGIT_THRESH:
            d = EPS
        else:
            t = math.exp(-abs(e))
            d = t / ((1.0 + t) * (1.0 + t))
        return mu, d, mu * (1.0 - mu)
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


@njit(parallel=True, cache=True)
def _deviance(k, y, mu, pw):
    s = 0.0
    for i in prange(y.size):
        yi, m = y[i], mu[i]
        if k == LOGIT:
            a = yi * math.log(yi / m) if yi != 0.0 else 0.0
            b = (1.0 - yi) * math.log((1.0 - yi) / (1.0 - m)) if yi != 1.0 else 0.0
            s += 2.0 * pw[i] * (a + b)
        else:
            s += 2.0 * pw[i] * (yi * math.log(yi / m) - (yi - m)) if yi > 0.0 else 2.0 * pw[i] * m
    return s


_SERIAL = {f: serial_twin(f) for f in (_working, _mu_of, _deviance)}


def _pick(f, n):
    """The parallel kernel for large n, its serial twin below linalg.threads' threshold
    (threads woken for a small pass cost more than the pass)."""
    return f if kernel_threads(8 * n) > 1 else _SERIAL[f]


def working(k, eta, y, pw, off, mu, w, z):
    _pick(_working, eta.size)(k, eta, y, pw, off, mu, w, z)


def mu_of(k, eta, mu):
    _pick(_mu_of, eta.size)(k, eta, mu)


def deviance(k, y, mu, pw) -> float:
    return _pick(_deviance, y.size)(k, y, mu, pw)
