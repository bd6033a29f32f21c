"""The profiled criteria, from a PLS state (lme4's conventions):

    ML:    -2 l(theta)   = log|L|^2 + n (1 + log(2 pi r2 / n))           - sum log w
    REML:  -2 l_R(theta) = log|L|^2 + log|R_X|^2
                           + (n - p)(1 + log(2 pi r2 / (n - p)))           - sum log w

(REML without lme4's omitted 1/2 log|X'X| term.)  sigma^2 = r2 / n (ML) or
r2 / (n - p) (REML).
"""
from __future__ import annotations

import math


def dof(n: int, p: int, reml: bool) -> int:
    return n - p if reml else n


def criterion(state, n: int, p: int, reml: bool, sum_log_w: float = 0.0) -> float:
    nu = dof(n, p, reml)
    if state.r2 <= 0.0:
        return -math.inf
    val = state.ldL2 + nu * (1.0 + math.log(2.0 * math.pi * state.r2 / nu)) - sum_log_w
    return val + state.ldRX2 if reml else val


def sigma2(state, n: int, p: int, reml: bool) -> float:
    return state.r2 / dof(n, p, reml)
