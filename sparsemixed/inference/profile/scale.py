"""lme4's profile scale for the variance parameters (``Cv_to_Sv``, signames).

Per term, Sigma_t = sigma^2 T_t T_t' (T_t lower triangular, theta its column-wise lower
triangle).  The profile parameters are, in theta's order, the standard deviations on the
diagonal and the correlations below it,

    sd_{t,i} = sigma |T_{t,i.}|,      cor_{t,ij} = <T_{t,i.}, T_{t,j.}> / (|T_{t,i.}| |T_{t,j.}|),

named ``.sig01, .sig02, ...``, then ``.sigma`` and the fixed effects (both computed by
:func:`sparsemixed.results.varcorr.sdcor` and :func:`~sparsemixed.results.varcorr.profile_names`).
Here: where each theta sits on that scale, and a Cholesky factor of a PSD matrix.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


# -- parameters on the sd/cor scale ---------------------------------------------------
@dataclass(frozen=True)
class ThetaPar:
    """Where theta[index] sits: term ``term`` (theta offset ``off``, size k), T[row, col]."""
    index: int
    term: int
    off: int
    k: int
    row: int
    col: int


def theta_layout(model) -> list[ThetaPar]:
    out, off = [], 0
    for ti, t in enumerate(model.terms):
        rows, cols = t.cov.tril_indices()
        for m, (r, c) in enumerate(zip(rows, cols)):
            out.append(ThetaPar(off + m, ti, off, t.k, int(r), int(c)))
        off += t.cov.ntheta
    return out


def chol_psd(R: np.ndarray):
    """Lower Cholesky factor of a positive semi-definite matrix (zero columns at zero
    pivots); None when R is not PSD."""
    k = R.shape[0]
    L = np.zeros_like(R)
    scale = max(float(np.max(np.abs(np.diag(R)))), 1e-300) if k else 1.0
    for j in range(k):
        d = R[j, j] - L[j, :j] @ L[j, :j]
        if d < -1e-10 * scale:
            return None
        if d <= 1e-14 * scale:
            continue
        L[j, j] = math.sqrt(d)
        L[j + 1:, j] = (R[j + 1:, j] - L[j + 1:, :j] @ L[j, :j]) / L[j, j]
    return L
