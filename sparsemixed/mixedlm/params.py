"""MixedLMParams: the statsmodels MixedLM parameter object and its packings.

    psi   = cov_re / scale           (k_re x k_re, relative to the residual variance)
    vcomp = tau^2 / scale            (one per variance component)
    packed, use_sqrt=True:   [vec_lt(psi^(1/2)), sqrt(vcomp)]      psi^(1/2) lower Cholesky
    packed, use_sqrt=False:  [vec_lt(psi), vcomp]
    has_fe=True prepends fe_params.

vec_lt is numpy's row-wise lower triangle (``np.tril_indices``), as in statsmodels.  On
our engine psi^(1/2) is the term's relative covariance factor T, and sqrt(vcomp) the
scalar theta of each variance component (lme4's theta, up to the order of its elements).
"""
from __future__ import annotations

import numpy as np

from ..errors import SparseMixedError


def lower_factor(psi: np.ndarray) -> np.ndarray:
    """Lower triangular T with T T' = psi for a symmetric positive semi-definite psi
    (Cholesky when positive definite; otherwise the L of an LQ decomposition of
    Q diag(sqrt(max(lambda, 0))), which handles singular psi)."""
    psi = np.asarray(psi, dtype=float)
    if psi.size == 0:
        return psi.reshape(0, 0)
    try:
        return np.linalg.cholesky(psi)
    except np.linalg.LinAlgError:
        lam, Q = np.linalg.eigh((psi + psi.T) / 2)
        A = Q * np.sqrt(np.clip(lam, 0.0, None))
        R = np.linalg.qr(A.T, mode="r")          # A' = Q2 R  ->  A = R' Q2'
        T = R.T
        return T * np.where(np.diag(T) < 0, -1.0, 1.0)[None, :]


class MixedLMParams:
    """fe_params, cov_re (relative psi) and vcomp (relative), as in statsmodels."""

    def __init__(self, k_fe: int, k_re: int, k_vc: int):
        self.k_fe, self.k_re, self.k_vc = int(k_fe), int(k_re), int(k_vc)
        self.k_re2 = self.k_re * (self.k_re + 1) // 2
        self.k_tot = self.k_fe + self.k_re2 + self.k_vc
        self._ix = np.tril_indices(self.k_re)
        self.fe_params = np.zeros(self.k_fe)
        self.cov_re = np.zeros((self.k_re, self.k_re))
        self.vcomp = np.zeros(self.k_vc)

    @staticmethod
    def from_packed(params, k_fe, k_re, use_sqrt, has_fe):
        params = np.asarray(params, dtype=float).reshape(-1)
        k_re2 = k_re * (k_re + 1) // 2
        k_vc = params.size - k_re2 - (k_fe if has_fe else 0)
        if k_vc < 0:
            raise SparseMixedError(f"packed parameter vector of length {params.size} is too short for "
                                   f"k_fe={k_fe}, k_re={k_re} (has_fe={has_fe}): it needs at least "
                                   f"{k_re2 + (k_fe if has_fe else 0)} values")
        pa = MixedLMParams(k_fe, k_re, k_vc)
        off = 0
        if has_fe:
            pa.fe_params = params[:k_fe].copy()
            off = k_fe
        tri = np.zeros((k_re, k_re))
        tri[pa._ix] = params[off: off + k_re2]
        if use_sqrt:
            pa.cov_re = tri @ tri.T
            pa._cov_re_sqrt = tri
        else:
            pa.cov_re = tri + tri.T - np.diag(np.diag(tri))
        vc = params[off + k_re2:]
        pa.vcomp = vc ** 2 if use_sqrt else vc.copy()
        return pa

    @staticmethod
    def from_components(fe_params=None, cov_re=None, cov_re_sqrt=None, vcomp=None):
        fe = np.zeros(0) if fe_params is None else np.asarray(fe_params, dtype=float).reshape(-1)
        vc = np.zeros(0) if vcomp is None else np.asarray(vcomp, dtype=float).reshape(-1)
        if cov_re_sqrt is not None:
            sq = np.atleast_2d(np.asarray(cov_re_sqrt, dtype=float))
            cov = sq @ sq.T
        elif cov_re is not None:
            cov = np.atleast_2d(np.asarray(cov_re, dtype=float))
            sq = None
        else:
            cov, sq = np.zeros((0, 0)), None
        pa = MixedLMParams(fe.size, cov.shape[0], vc.size)
        pa.fe_params, pa.cov_re, pa.vcomp = fe, cov, vc
        if sq is not None:
            pa._cov_re_sqrt = sq
        return pa

    def copy(self) -> "MixedLMParams":
        out = MixedLMParams(self.k_fe, self.k_re, self.k_vc)
        out.fe_params, out.cov_re, out.vcomp = self.fe_params.copy(), self.cov_re.copy(), self.vcomp.copy()
        if hasattr(self, "_cov_re_sqrt"):
            out._cov_re_sqrt = self._cov_re_sqrt.copy()
        return out

    def cov_re_sqrt(self) -> np.ndarray:
        """psi^(1/2): the factor given at construction, else the lower factor of cov_re."""
        sq = getattr(self, "_cov_re_sqrt", None)
        if sq is not None and np.allclose(sq @ sq.T, self.cov_re, rtol=1e-12, atol=1e-14):
            return sq
        return lower_factor(self.cov_re)

    def get_packed(self, use_sqrt, has_fe=False) -> np.ndarray:
        if self.k_re:
            cpa = (self.cov_re_sqrt() if use_sqrt else self.cov_re)[self._ix]
        else:
            cpa = np.zeros(0)
        vc = np.sqrt(self.vcomp) if use_sqrt else self.vcomp
        parts = ([np.asarray(self.fe_params, float)] if has_fe else []) + [cpa, vc]
        return np.concatenate(parts)

    def __repr__(self) -> str:
        return (f"MixedLMParams(fe_params={self.fe_params}, cov_re={self.cov_re.tolist()}, "
                f"vcomp={self.vcomp})")
