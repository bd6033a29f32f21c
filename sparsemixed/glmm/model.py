"""GeneralizedLinearMixedModel: the Laplace deviance as a function of theta (and beta).

    y_i | u ~ family(mu_i),  g(mu) = eta = offset + X beta + Z b,  b = Lambda(theta) u,  u ~ N(0, I)

    nAGQ = 0:  objective(theta)        = Laplace(theta, beta-hat(theta))   (beta inside PIRLS)
    nAGQ = 1:  objective([theta, beta]) = Laplace(theta, beta)              (u inside PIRLS)
    Laplace   = -2 log p(y | u-hat) + ||u-hat||^2 + log|L|^2                (glmm/pirls.py)

The random-effects structures, the symbolic analysis and the engine are the linear
model's (built once, model.LinearMixedModel on the working response column); each PIRLS
iteration changes only the values of the weighted cross-products (glmm/weighted.py; with
``sparse_X`` -- lmer's rule, sparsemixed/sparse_x.py, and for nAGQ >= 1 only when the dense
X would pass DENSE_X_BYTES -- X stays CSR, the fixed effects go
into the sparse factor of Maug, and glmm/weighted_sparse.py gives Z'WX and X'WX on their
structural patterns).
"""
from __future__ import annotations

import numpy as np

from scipy.sparse import issparse as sp_issparse

from .. import assemble
from ..design import build_design
from ..engine.reweight import values_on_pattern
from ..errors import ArgumentError, DataError
from ..io.sources import is_dask
from ..model import LinearMixedModel
from .pirls import Mode, pirls
from .response import OFFSET, WEIGHTS, GLMResponse, in_user_terms, prepare
from .rows import MemoryRows
from .weighted import WeightedProducts, structural_gram
from .weighted_sparse import SparseWeightedProducts, SparseXGLMMEngine, prepare_X, structural_product


DENSE_X_BYTES = 2**30     # sparse_X="auto" at nAGQ >= 1 keeps a dense X up to this size: its analytic-
                          # gradient search (theta, beta profiled) beats the sparse path's BOBYQA over
                          # (theta, beta) while p is in the hundreds (60 levels: 1.5 s against 6-9 s)


class GeneralizedLinearMixedModel:
    """A generalized linear mixed model in lme4's formulation; build it with
    :func:`sparsemixed.glmer` and call :meth:`fit`.

    Public pieces: ``formula``, ``family``, ``nAGQ``, ``terms``, ``fixef_names``, ``theta0``,
    ``lower``, ``response`` (y, prior weights, offset: glmm/response.py), ``engine`` (the
    linear model's, reweighted in every PIRLS iteration); methods :meth:`mode` (PIRLS at
    theta [and beta]), :meth:`objective`, :meth:`fit`.
    """

    def __init__(self, formula: str, data, family="binomial", weights=None, offset=None, nAGQ: int = 1,
                 na_action: str = "omit", ordering: str = "auto", memory_limit=None, sparse_X="auto"):
        from ..families import family_from
        from ..sparse_x import check_mode

        fam = family_from(family)
        if fam.name == "gaussian":
            raise ArgumentError("glmer does not fit the Gaussian family: use sparsemixed.lmer(formula, data) "
                                "(it profiles out sigma and fits by REML or ML)")
        self.family = fam
        self.formula = formula
        self.nAGQ = _check_nagq(nAGQ)
        self.data = data
        mode = check_mode(sparse_X)
        self._engine = None
        if is_dask(data):
            from . import dask as on_dask

            if mode is True:
                from ..errors import SparseMixedError

                raise SparseMixedError("sparse_X=True is supported for in-memory data only (a DataFrame or a "
                                       "file read into memory), not for a Dask DataFrame, whose partitions "
                                       "accumulate a dense X'WX; pass sparse_X=False or a pandas DataFrame")

            on_dask.check_nagq(self.nAGQ)
            self.response = self.weighted = self.kept = None
            with in_user_terms(formula.split("~", 1)[0].strip()):
                on_dask.build(self, formula, data, fam, weights, offset, na_action, ordering, memory_limit)
        else:
            if _is_file_source(data):
                data = self.data = read_source(data, formula, weights, offset)
            self._build_in_memory(formula, data, weights, offset, na_action, ordering, memory_limit, mode)
        if self.nAGQ > 1 and not (len(self.terms) == 1 and self.terms[0].k == 1):
            raise ArgumentError(f"nAGQ = {self.nAGQ} (adaptive Gauss-Hermite quadrature) needs a single scalar "
                                f"random-effects term such as (1 | g); this model has "
                                f"{' + '.join(f'({t.expr} | {t.group.name})' for t in self.terms)}. "
                                "Use nAGQ=1 (Laplace) or nAGQ=0")

    def _build_in_memory(self, formula, data, weights, offset, na_action, ordering, memory_limit,
                         sparse_X="auto") -> None:
        prep = prepare(formula, data, self.family, weights, offset)
        self.response_label = prep.response_label
        with in_user_terms(prep.response_label):
            parts = assemble.from_frame(prep.formula, prep.data, offset=OFFSET, na_action=na_action,
                                        sparse_X=sparse_X, residual_variance=False)
        p = len(parts.fixed.cols)
        sparse = bool(parts.source.sparse_X) and p > 0
        if sparse and sparse_X == "auto" and self.nAGQ >= 1 and 8.0 * len(prep.data) * p <= DENSE_X_BYTES:
            sparse = False         # Laplace: the dense path's gradient search pays while X fits in memory
        parts.source.sparse_X = sparse
        d = build_design(parts.source, parts.terms, parts.fixed.cols)     # X: CSR when sparse, never densified
        # the analysis on Z'Z's structural pattern: an entry that cancels to 0 in Z'Z need not in Z'WZ
        cp = parts.crossprod
        cp.ZtZ = structural_gram(d.Z)
        if sparse:                     # ... and on those of Z'X and X'X, for Maug's (weighted_sparse.py)
            import scipy.sparse as sp

            d.X = prepare_X(d.X)       # CSR, sorted, no stored zeros
            ZX, XX = structural_product(d.Z, d.X, values=False), structural_product(d.X, d.X, values=False)
            cp.ZtX = sp.csr_matrix((values_on_pattern(cp.ZtX, ZX), ZX.indices, ZX.indptr), shape=ZX.shape)
            cp.XtX = sp.csr_matrix((values_on_pattern(cp.XtX, XX), XX.indices, XX.indptr), shape=XX.shape)
        else:
            d.X = d.X.toarray() if sp_issparse(d.X) else d.X
            cp.ZtX = cp.ZtX.toarray() if sp_issparse(cp.ZtX) else cp.ZtX
            cp.XtX = cp.XtX.toarray() if sp_issparse(cp.XtX) else cp.XtX
        self.lmm = LinearMixedModel.from_model_parts(parts, REML=False, ordering=ordering,
                                                     memory_limit=memory_limit)
        kept = d.kept if d.kept is not None else np.ones(len(prep.data), dtype=bool)
        w = prep.data[WEIGHTS].to_numpy(dtype=float)[kept]
        off = d.offset if d.offset is not None else np.zeros(d.n)
        self.response = GLMResponse(np.asarray(d.y, dtype=float), w, off, self.family, prep.trials_weights)
        self.response.check(prep.response_label)
        self.kept = d.kept
        if sparse:
            self.weighted = SparseWeightedProducts(d.Z, d.X, self.lmm.crossprod.ZtZ, cp.ZtX, cp.XtX)
            self._engine = SparseXGLMMEngine(self.lmm.engine, cp.ZtX, cp.XtX)
        else:
            self.weighted = WeightedProducts(d.Z, d.X, self.lmm.crossprod.ZtZ)
        self.rows = MemoryRows(self.weighted, self.response)

    # -- where things are ---------------------------------------------------------------
    terms = property(lambda self: self.lmm.terms)
    engine = property(lambda self: self._engine if getattr(self, "_engine", None) is not None else self.lmm.engine)
    sparse_X = property(lambda self: bool(getattr(self.lmm, "sparse_X", False)))
    relcov = property(lambda self: self.lmm.relcov)
    theta0 = property(lambda self: self.lmm.theta0)
    lower = property(lambda self: self.lmm.lower)
    fixef_names = property(lambda self: self.lmm.fixef_names)
    nobs = property(lambda self: self.rows.n)
    p = property(lambda self: len(self.lmm.fixef_names))
    q = property(lambda self: self.lmm.q)
    X = property(lambda self: self._rows_in_memory("X").X)
    Z = property(lambda self: self._rows_in_memory("Z").Z)

    def _rows_in_memory(self, what: str):
        if self.weighted is None:
            from ..design import StreamedDataError

            raise StreamedDataError(f"the model was built from a Dask DataFrame and keeps no rows, but {what} "
                                    "needs them; build it from a pandas DataFrame for row-level quantities")
        return self.weighted

    def Lambda(self, theta):
        return self.relcov.Lambda(np.asarray(theta, dtype=float))

    def start_eta(self) -> np.ndarray:
        """glm's start: eta = g(mustart), mustart from the family's initialize."""
        r = self.response
        return self.family.link.linkfun(self.family.mustart(r.y, r.prior_weights))

    # -- the objective ------------------------------------------------------------------
    def mode(self, theta, beta=None, u0=None, beta0=None) -> Mode:
        """The conditional mode at theta: with ``beta`` (nAGQ >= 1) of u alone; without, of
        u and beta jointly (nAGQ = 0), from (``u0``, ``beta0``), by default glm's start."""
        theta = np.asarray(theta, dtype=float)
        if beta is None:
            start = self.start_beta() if beta0 is None else np.asarray(beta0, dtype=float)
            return pirls(self.engine, self.rows, theta, start, u0=u0, joint=True)
        return pirls(self.engine, self.rows, theta, np.asarray(beta, dtype=float), u0=u0)

    def with_response(self, y) -> "GeneralizedLinearMixedModel":
        """A shallow copy for the response ``y`` (the kept rows, on the response's scale):
        a new GLMResponse with the same prior weights, offset and family; the design, the
        engine and its symbolic analysis are shared.  Checked as glmer checks a response."""
        import copy

        self._rows_in_memory("a new response")
        r = self.response
        y = np.asarray(y, dtype=float).reshape(-1)
        if y.shape != r.y.shape:
            raise DataError(f"the new response has {y.size} values; the model has {r.n} observations")
        if not np.all(np.isfinite(y)):
            raise DataError("the new response has missing or infinite values")
        new = copy.copy(self)
        new.response = GLMResponse(y, r.prior_weights, r.offset, r.family, r.trials_weights)
        new.response.check(self.response_label)
        new.rows = MemoryRows(new.weighted, new.response)
        return new

    def start_beta(self) -> np.ndarray:
        """The least-squares fit of g(mustart) - offset on X (glm's first working fit, unweighted)."""
        if not self.rows.in_memory:
            return self.rows.start_beta()
        X = self.X
        if not X.shape[1]:
            return np.zeros(0)
        if sp_issparse(X):          # the normal equations by CHOLMOD: X is never densified
            from ..sparse_x import shift

            return shift(X, self.start_eta() - self.response.offset, None)
        beta, *_ = np.linalg.lstsq(X, self.start_eta() - self.response.offset, rcond=None)
        return beta

    def objective(self, params) -> float:
        """nAGQ = 0: params = theta (beta from PIRLS); nAGQ >= 1: params = [theta, beta]."""
        params = np.asarray(params, dtype=float)
        nt = self.theta0.size
        if params.size == nt:
            return self.mode(params).laplace
        if params.size != nt + self.p:
            raise ArgumentError(f"objective takes theta ({nt} values) or [theta, beta] ({nt + self.p}), "
                                f"got {params.size}")
        m = self.mode(params[:nt], params[nt:])
        if self.nAGQ > 1:
            from .agq import agq_deviance

            return agq_deviance(self, m, self.nAGQ)
        return m.laplace

    def fit(self, nAGQ: int | None = None, verbose: bool = False, control=None):
        """Fit by Laplace (nAGQ = 1, default), adaptive quadrature (nAGQ > 1) or with beta
        inside PIRLS (nAGQ = 0); returns a :class:`~sparsemixed.glmm.result.GlmerResult`."""
        from .fit import fit

        return fit(self, self.nAGQ if nAGQ is None else _check_nagq(nAGQ), verbose=verbose, control=control)

    def __repr__(self) -> str:
        terms = " + ".join(f"({t.expr} | {t.group.name})" for t in self.terms)
        return (f"GeneralizedLinearMixedModel({self.formula!r}, family={self.family!r}, nAGQ={self.nAGQ}, "
                f"n={self.nobs}, p={self.p}, q={self.q}, terms={terms})")


def _is_file_source(data) -> bool:
    import os

    from ..io.sources import ChunkSource

    return (isinstance(data, (str, os.PathLike, ChunkSource))
            or type(data).__module__.split(".")[0] == "pyarrow")


def read_source(data, formula: str, weights=None, offset=None):
    """A CSV or Parquet file or directory (or a ``sparsemixed.io`` source) read into memory,
    the columns the formula names (and ``weights=``/``offset=`` when they are column names)
    only.  A GLMM visits every row in every PIRLS iteration (tens to hundreds of times in a
    fit), so a file is read once rather than streamed per iteration; data that do not fit in
    memory go through Dask (``dask.dataframe.read_parquet``), where the rows stay on the
    workers."""
    import re

    import pandas as pd

    from ..io.sources import open_source

    src = open_source(data)
    try:
        cols = src.columns() or []
        named = {v for v in (weights, offset) if isinstance(v, str)}
        needed = [c for c in cols if c in named or re.search(r"(?<![\w.])" + re.escape(c) + r"(?![\w.])", formula)]
        parts = list(src.chunks(needed))
    except (OSError, ValueError) as exc:
        raise DataError(f"could not read {data!r} for glmer: {exc}") from None
    if not parts:
        raise DataError(f"{data!r} has no rows")
    return pd.concat(parts, ignore_index=True)


def _check_nagq(nAGQ) -> int:
    if isinstance(nAGQ, bool) or not isinstance(nAGQ, (int, np.integer)) or nAGQ < 0:
        raise ArgumentError(f"nAGQ must be a whole number >= 0 (0: beta inside PIRLS, 1: Laplace, > 1: adaptive "
                            f"Gauss-Hermite quadrature), got {nAGQ!r}")
    return int(nAGQ)


__all__ = ["GeneralizedLinearMixedModel"]
