"""The constructor core's inputs: from rows (a DataFrame or arrays) to cross-products.

    terms in lme4's order  ->  fixed columns kept on X'WX (R's rule)  ->  OLS shift gamma
    ->  CrossProducts of [Z X (y - offset - X gamma)]                 ->  ModelParts

Every way of building a model -- a DataFrame (``lmer``), arrays and ready-made terms
(``MixedLM``), a stream of chunks (``io``) -- ends in a :class:`ModelParts`, from which
:meth:`LinearMixedModel.from_parts_core` builds Lambda/M, the symbolic analysis and the engine.
"""
from __future__ import annotations

import types
import warnings
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp

from .crossprod import cross_products
from .errors import DataError, IdentifiabilityWarning, RankDeficiencyWarning, SparseMixedError

RANK_TOL = 1e-7
MAX_RANK_CHECK = 3000


@dataclass
class Source:
    """Where a model's rows come from, for :meth:`LinearMixedModel.design` (the rows are
    re-read at most once, on first need).  ``arrays``: (y, X, rows) of a model built from
    arrays; ``streamed``: the data is a source descriptor and no rows are kept."""

    formula: str
    parsed: object = None
    data: object = None
    weights: object = None
    offset: object = None
    na_action: str = "fail"
    n_dropped: int = 0
    fixed_spec: object = None
    sparse_X: bool = False
    arrays: tuple | None = field(default=None, repr=False)
    streamed: bool = False


@dataclass
class FixedEffects:
    """The fixed-effect columns: all encoded, those kept (independent on X'WX), and the
    OLS coefficients ``shift`` subtracted from the response before the cross-products
    (y - X shift avoids cancellation in y'y; beta-hat = engine beta + shift)."""

    all_names: list
    cols: np.ndarray
    shift: np.ndarray = None

    @property
    def names(self) -> list:
        return [self.all_names[j] for j in self.cols]

    @property
    def dropped(self) -> list:
        keep = set(self.cols.tolist())
        return [n for j, n in enumerate(self.all_names) if j not in keep]


@dataclass
class ModelParts:
    """What the constructor core needs: the terms (lme4 order), the cross-products, the
    fixed effects and where the rows come from."""

    source: Source
    terms: list
    crossprod: object
    fixed: FixedEffects
    term_order: list | None = None
    residual_variance: bool = True   # False for a GLMM of fixed dispersion: no check against sigma


# -- terms --------------------------------------------------------------------------------
def lme4_term_order(terms) -> list[int]:
    """lme4's mkReTrms: if the numbers of levels are not non-increasing, order by
    ``rev(order(nl))`` (decreasing, ties in reverse order of appearance)."""
    nl = np.array([t.nlevels for t in terms])
    if len(nl) > 1 and np.any(np.diff(nl) > 0):
        return list(np.argsort(nl, kind="stable")[::-1])
    return list(range(len(terms)))


def unique_names(names: list[str]) -> list[str]:
    """R's make.unique: g, g.1, g.2 ..."""
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}.{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out


def order_terms(terms, rows, keep_names: bool = False):
    """(terms, rows, order) in lme4's order, each term named as lme4's VarCorr names it."""
    order = lme4_term_order(terms)
    terms, rows = [terms[i] for i in order], [rows[i] for i in order]
    for t, name in zip(terms, unique_names([t.group.name for t in terms])):
        t.name = (t.name or name) if keep_names else name
    return terms, rows, list(order)


def check_terms(terms, n: int, single_level_ok: bool = False, stacklevel: int = 4,
                residual_variance: bool = True) -> None:
    """lme4's checks of the terms against the data (``residual_variance`` False: a GLMM of
    fixed dispersion, where one level per observation is a legitimate term, as glmer's
    check.nobs.vs.nlev = "ignore")."""
    for t in terms:
        if t.nlevels < 2 and not single_level_ok:
            raise DataError(
                f"grouping factor {t.group.name!r} of term ({t.expr} | {t.group.name}) has only "
                f"{t.nlevels} level; a random effect needs at least 2 sampled levels (as in lme4). "
                "Drop the term, or check that the column holds the grouping you meant"
            )
        if t.nlevels >= n and residual_variance:
            raise DataError(
                f"grouping factor {t.group.name!r} has {t.nlevels} levels for {n} observations: "
                "with one observation per level its variance cannot be told apart from the residual "
                "variance. Drop the term or use a coarser grouping"
            )
        if t.q >= n and residual_variance:
            raise DataError(
                f"term ({t.expr} | {t.group.name}) has {t.q} random effects for {n} observations; "
                "its variance parameters and the residual variance are unidentifiable. Simplify the term"
            )
        if t.cov.ntheta > t.nlevels:
            warnings.warn(
                f"term ({t.expr} | {t.group.name}) has {t.cov.ntheta} variance-covariance parameters "
                f"but {t.group.name!r} has only {t.nlevels} levels: they cannot all be estimated and "
                "the fit will likely be singular or depend on the starting point. Use '||' "
                "(uncorrelated effects), fewer terms, or a grouping factor with more levels",
                IdentifiabilityWarning, stacklevel=stacklevel)


def check_interpolation(cp, term_names) -> None:
    """With q + p >= n the columns of [Z X] can span all n observations: then y is fitted
    exactly as theta -> infinity, sigma -> 0 and the (restricted) likelihood is unbounded.
    lme4 only checks each term's q < n; we check the rank of [Z X] (from its Gram matrix)
    whenever q + p >= n, which happens only for small n."""
    n, q, p = cp.n, cp.q, cp.p
    if q + p < n or q + p > MAX_RANK_CHECK:
        return
    import scipy.linalg as sla

    dense = lambda a: a.toarray() if sp.issparse(a) else a          # sparse X (sparse_x.py)
    G = np.block([[cp.ZtZ.toarray(), dense(cp.ZtX)], [dense(cp.ZtX).T, dense(cp.XtX)]])
    # rank by Cholesky with complete pivoting (LAPACK dpstrf): ~10x cheaper than eigenvalues
    d = np.sqrt(np.maximum(np.diag(G), 1e-300))
    _, _, rank, _ = sla.lapack.dpstrf(G / d[:, None] / d[None, :], tol=1e-10, lower=1)
    if rank >= n:
        raise DataError(
            f"the fixed effects ({p} columns) and random effects ({q}: terms "
            f"{', '.join(term_names)}) together span all {n} observations, so the model can "
            "reproduce y exactly and the likelihood has no maximum (the residual variance goes "
            "to 0). Use fewer or coarser random-effects terms, or more data")


# -- fixed effects ------------------------------------------------------------------------
def independent_columns(XtX: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """Greedy (left to right) selection of linearly independent columns from X'X.

    A column is kept when its residual, after projection on the kept columns, is more
    than ``tol`` of its norm (R's dqrdc2 rule, applied to the Gram matrix).  Computed as
    the pivots of the unpivoted Cholesky factor of the unit-diagonal Gram matrix, by
    LAPACK with one restart per aliased column (linalg/rank.py)."""
    from .linalg.rank import _greedy_dense

    XtX = np.asarray(XtX, dtype=float)
    d = np.diag(XtX)
    idx = np.flatnonzero(d > 0)
    if idx.size == 0 or (idx.size == 1 and 1e-150 < d[idx[0]] < 1e150):
        return idx.astype(np.int64)      # one column (an intercept-only model): kept, as the rule keeps it
    s = 1.0 / np.sqrt(d[idx])
    A = XtX[np.ix_(idx, idx)] * s[:, None] * s[None, :]
    return idx[_greedy_dense(A, tol)].astype(np.int64)


def select_fixed(XtX, names, stacklevel: int = 5) -> FixedEffects:
    """Keep the linearly independent columns of X, judged on X'WX (warns about the rest)."""
    if sp.issparse(XtX):
        from .linalg.rank import independent_columns_sparse

        keep = independent_columns_sparse(XtX, RANK_TOL)
    else:
        keep = independent_columns(XtX) if XtX.shape[0] else np.zeros(0, np.int64)
    fixed = FixedEffects(list(names), np.asarray(keep, dtype=np.int64))
    if fixed.dropped:
        warnings.warn(
            "fixed-effect model matrix is rank deficient, so dropping "
            f"{len(fixed.dropped)} column(s): {', '.join(fixed.dropped)}",
            RankDeficiencyWarning, stacklevel=stacklevel)
    return fixed


def fixed_gram(X, weights, names) -> np.ndarray:
    """X'WX after the predictor-scale check (diagnostics.check_scales)."""
    from .diagnostics import check_scales

    if sp.issparse(X):          # sparse X: X'WX sparse, scales from column moments
        from .sparse_x import column_sd

        check_scales(X, names, sd=column_sd(X))
        Xw = X.multiply(weights[:, None]).tocsr() if weights is not None else X
        return sp.csc_matrix(Xw.T @ X)
    check_scales(X, names)
    return (X * (weights[:, None] if weights is not None else 1.0)).T @ X if X.size else np.zeros((0, 0))


def ols_shift(X, y, w) -> np.ndarray:
    """OLS coefficients gamma: cross-products use y - X gamma, which leaves r2, theta and
    the variances unchanged (beta moves by gamma) and avoids cancellation in y'y."""
    if X.shape[1] == 0:
        return np.zeros(0)
    if sp.issparse(X):
        from .sparse_x import shift

        return shift(X, y, w)
    sw = np.sqrt(w) if w is not None else None
    Xs = X * sw[:, None] if sw is not None else X
    ys = y * sw if sw is not None else y
    return np.linalg.lstsq(Xs, ys, rcond=None)[0]


def from_rows(source: Source, terms, rows, y, X, X_names, weights, verbose: bool = False,
              single_level_ok: bool = False, keep_names: bool = False,
              residual_variance: bool = True) -> ModelParts:
    """ModelParts from rows: terms ordered and checked, columns selected, one pass of
    cross-products of [Z X_k (y - X_k gamma)] (y already net of any offset)."""
    from .linalg.threads import blas_threads_for

    terms, rows, order = order_terms(terms, rows, keep_names)
    check_terms(terms, y.shape[0], single_level_ok, stacklevel=6, residual_variance=residual_variance)
    with blas_threads_for(2.0 * y.shape[0] * (X.shape[1] + 1) ** 2):     # X'WX, the OLS shift
        fixed = select_fixed(fixed_gram(X, weights, X_names), X_names, stacklevel=6)
        Xk = X[:, fixed.cols]
        fixed.shift = ols_shift(Xk, y, weights)
        cp = cross_products(rows, [t.nlevels for t in terms], Xk, y - Xk @ fixed.shift, weights, verbose=verbose)
    return ModelParts(source, terms, cp, fixed, order, residual_variance)


def from_frame(formula: str, data, weights=None, offset=None, na_action: str = "omit",
               sparse_X="auto", verbose: bool = False, residual_variance: bool = True) -> ModelParts:
    """ModelParts from a DataFrame and an lme4 formula (sparse_x.py decides X's storage)."""
    from . import sparse_x
    from .formula.bars import parse_formula
    from .formula.design import build_model_frame

    parsed = parse_formula(formula)
    if not parsed.bars:
        raise SparseMixedError(
            f"formula {formula!r} has no random-effects term such as '(1 | g)'; "
            "for a model without random effects use ordinary least squares"
        )
    mode = sparse_x.check_mode(sparse_X)
    frame = build_model_frame(parsed, data, weights=weights, offset=offset, na_action=na_action, sparse_X=mode)
    use_sparse = sp.issparse(frame.X) and sparse_x.use_sparse(mode, frame.X)
    if sp.issparse(frame.X) and not use_sparse:
        frame.X = frame.X.toarray()
    source = Source(formula, parsed, data, weights, offset, na_action, frame.n_dropped, frame.fixed_spec,
                    use_sparse)
    y = frame.y - (frame.offset if frame.offset is not None else 0.0)
    return from_rows(source, frame.terms, frame.rows, y, frame.X, frame.X_names, frame.weights, verbose,
                     residual_variance=residual_variance)


def from_arrays(y, X, X_names, terms, rows, label: str) -> ModelParts:
    """ModelParts from arrays and ready-made terms (the statsmodels interface, whose
    single-group idiom for crossed variance components needs a term with one level)."""
    y = np.asarray(y, dtype=float).reshape(-1)
    X = np.asarray(X, dtype=float).reshape(y.shape[0], -1)
    source = Source(label, arrays=None)
    parts = from_rows(source, list(terms), list(rows), y, X, list(X_names), None,
                      single_level_ok=True, keep_names=True)
    source.arrays = types.SimpleNamespace(y=y, X=X, rows=[rows[i] for i in parts.term_order])
    return parts
