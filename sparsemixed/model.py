"""LinearMixedModel: the profiled criterion as a function of theta, and its fit.

    y = X beta + Z b + e,   b = Lambda(theta) u,   u ~ N(0, sigma^2 I),   e ~ N(0, sigma^2 W^-1)

    objective(theta) = criterion(pls_solve(theta))        (lme4's devfun)

Construction follows lme4's pipeline: formula -> model frame -> terms ordered by
decreasing number of levels -> one pass of cross-products -> Lambda/M structures ->
one symbolic analysis.  After that the model holds nothing of length n.
"""
from __future__ import annotations

import copy
import dataclasses
import types
import warnings

import numpy as np
import scipy.sparse as sp

from . import objective as obj
from .crossprod import cross_products, z_matrix
from .errors import DataError, IdentifiabilityWarning, RankDeficiencyWarning, SparseMixedError
from .formula.bars import parse_formula
from .gradient import gradient
from .formula.design import build_model_frame
from .linalg.select import leading_block, select_factor
from .linalg.pls import pls_solve, random_effects
from .optimize import (DEFAULT_METHOD, MAX_GRADIENT_RESTARTS, MAX_SADDLE_RESTARTS, SADDLE_STEPS, OptSummary,
                       escape_saddle, merge_restart, minimize)
from .progress import progress
from .linalg.threads import one_blas_thread
from .relcov import RelCov
from .start import lme4_start, moment_start, moment_step

RANK_TOL = 1e-7


def independent_columns(XtX: np.ndarray, tol: float = RANK_TOL) -> np.ndarray:
    """Greedy (left to right) selection of linearly independent columns from X'X.

    A column is kept when its residual, after projection on the kept columns, is more
    than ``tol`` of its norm (R's dqrdc2 rule, applied to the Gram matrix).  Computed as
    the pivots of the unpivoted Cholesky factor of the unit-diagonal Gram matrix, by
    LAPACK with one restart per aliased column (linalg/rank.py): O(p^3/3) flops per
    restart instead of a solve per column (p = 1,600: 0.5 s instead of 100 s).
    """
    from .linalg.rank import _greedy_dense

    XtX = np.asarray(XtX, dtype=float)
    d = np.diag(XtX)
    idx = np.flatnonzero(d > 0)
    if idx.size == 0:
        return idx.astype(np.int64)
    s = 1.0 / np.sqrt(d[idx])
    A = XtX[np.ix_(idx, idx)] * s[:, None] * s[None, :]
    return idx[_greedy_dense(A, tol)].astype(np.int64)


def _lme4_term_order(terms) -> list[int]:
    """lme4's mkReTrms: if the numbers of levels are not non-increasing, order by
    ``rev(order(nl))`` (decreasing, ties in reverse order of appearance)."""
    nl = np.array([t.nlevels for t in terms])
    if len(nl) > 1 and np.any(np.diff(nl) > 0):
        return list(np.argsort(nl, kind="stable")[::-1])
    return list(range(len(terms)))


def _unique_names(names: list[str]) -> list[str]:
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


def _as_bool(value, name: str) -> bool:
    """REML= and similar switches: True/False (or numpy bools, 0/1), nothing else."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise SparseMixedError(f"{name} must be True or False, got {value!r}")


def _check_terms(terms, n: int, single_level_ok: bool = False) -> None:
    for t in terms:
        if t.nlevels < 2 and not single_level_ok:
            raise DataError(
                f"grouping factor {t.group.name!r} of term ({t.expr} | {t.group.name}) has only "
                f"{t.nlevels} level; a random effect needs at least 2 sampled levels (as in lme4). "
                "Drop the term, or check that the column holds the grouping you meant"
            )
        if t.nlevels >= n:
            raise DataError(
                f"grouping factor {t.group.name!r} has {t.nlevels} levels for {n} observations: "
                "with one observation per level its variance cannot be told apart from the residual "
                "variance. Drop the term or use a coarser grouping"
            )
        if t.q >= n:
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
                IdentifiabilityWarning, stacklevel=4)


MAX_RANK_CHECK = 3000


def _check_interpolation(cp, term_names) -> None:
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


NEAR_BOUNDARY = 0.01          # a diagonal theta_k this close to its bound (0) but off it ...
NEAR_BOUNDARY_BUDGET = 1.0     # ... makes the convergence check worth up to the fit's own time


class LinearMixedModel:
    """A linear mixed model in lme4's formulation; build it with :func:`sparsemixed.lmer`.

    Public pieces (lme4's ``getME`` vocabulary): ``formula``, ``REML``, ``terms``,
    ``fixef_names``, ``theta0``, ``lower``, ``Lind``, ``crossprod``, ``relcov``,
    ``factor``; methods ``objective(theta)`` (lme4's devfun), ``Lambda(theta)``,
    ``fit()``, ``refit(new_y)``.  ``sparse_X`` (chosen by ``sparse_X="auto"|True|False``,
    :mod:`sparsemixed.sparse_x`) tells whether X is kept sparse and the fixed effects are
    solved inside the factor of Maug (``aug``, :mod:`sparsemixed.linalg.augmented`).
    """

    sparse_X = False            # the sparse-X path (sparse_x.py, linalg/augmented.py)
    aug = None

    def __init__(self, formula: str, data, REML: bool = True, weights=None, offset=None,
                 na_action: str = "omit", ordering: str = "auto", memory_limit=None,
                 verbose: bool = False, sparse_X="auto"):
        parsed = parse_formula(formula)
        if not parsed.bars:
            raise SparseMixedError(
                f"formula {formula!r} has no random-effects term such as '(1 | g)'; "
                "for a model without random effects use ordinary least squares"
            )
        from . import sparse_x

        mode = sparse_x.check_mode(sparse_X)
        frame = build_model_frame(parsed, data, weights=weights, offset=offset, na_action=na_action,
                                  sparse_X=mode)
        self.sparse_X = sp.issparse(frame.X) and sparse_x.use_sparse(mode, frame.X)
        if sp.issparse(frame.X) and not self.sparse_X:
            frame.X = frame.X.toarray()
        self.formula = formula
        self.parsed = parsed
        self.REML = _as_bool(REML, "REML")
        self.na_action = na_action
        self.n_dropped = frame.n_dropped
        order = _lme4_term_order(frame.terms)
        self.terms = [frame.terms[i] for i in order]
        rows = [frame.rows[i] for i in order]
        for t, name in zip(self.terms, _unique_names([t.group.name for t in self.terms])):
            t.name = name
        _check_terms(self.terms, frame.n)
        self.fixed_spec = frame.fixed_spec
        self.data = data            # the user's object, not copied; used by fitted()/residuals()
        self.weights_arg, self.offset_arg = weights, offset
        self._set_fixed(frame)
        y = frame.y - (frame.offset if frame.offset is not None else 0.0)
        self._build(rows, y, frame.weights, ordering, memory_limit, verbose=verbose)
        _check_interpolation(self.crossprod, [t.name for t in self.terms])

    @classmethod
    def from_parts(cls, y, X, X_names, terms, rows, REML: bool = True, ordering: str = "auto",
                   memory_limit=None, label: str = "(model built from arrays)") -> "LinearMixedModel":
        """A model from arrays and ready-made terms, without a formula (the route of the
        statsmodels interface, whose single-group idiom for crossed variance components
        needs a term with one level).  ``rows[i]`` gives term i's block of Z (``.Z()``).
        Terms are put in lme4's order; ``model.term_order[j]`` is the input index of
        model term j."""
        self = cls.__new__(cls)
        self.formula, self.parsed, self.REML, self.na_action = label, None, bool(REML), "fail"
        self.n_dropped = 0
        y = np.asarray(y, dtype=float).reshape(-1)
        X = np.asarray(X, dtype=float).reshape(y.shape[0], -1)
        order = _lme4_term_order(terms)
        self.term_order = list(order)
        self.terms = [terms[i] for i in order]
        rows = [rows[i] for i in order]
        for t, name in zip(self.terms, _unique_names([t.group.name for t in self.terms])):
            t.name = t.name or name
        _check_terms(self.terms, y.shape[0], single_level_ok=True)
        self.fixed_spec, self.data, self.weights_arg, self.offset_arg = None, None, None, None
        frame = types.SimpleNamespace(X=X, X_names=list(X_names), weights=None)
        self._set_fixed(frame)
        self._build(rows, y, None, ordering, memory_limit)
        _check_interpolation(self.crossprod, [t.name for t in self.terms])
        return self

    # -- construction ------------------------------------------------------------------
    def _set_fixed(self, frame) -> None:
        from .diagnostics import check_scales

        X = frame.X
        w = frame.weights
        if sp.issparse(X):          # sparse X: X'WX sparse, scales from column moments
            from .sparse_x import column_sd

            check_scales(X, frame.X_names, sd=column_sd(X))
            Xw = X.multiply(w[:, None]).tocsr() if w is not None else X
            XtX = sp.csc_matrix(Xw.T @ X)
        else:
            check_scales(X, frame.X_names)
            XtX = (X * (w[:, None] if w is not None else 1.0)).T @ X if X.size else np.zeros((0, 0))
        self._select_fixed(XtX, frame.X_names)
        self._X = X[:, self.fixef_cols]

    def _select_fixed(self, XtX, names) -> None:
        """Keep the linearly independent columns of X, judged on X'WX (also the entry of
        models built from accumulated cross-products, :mod:`sparsemixed.io`)."""
        if sp.issparse(XtX):
            from .linalg.rank import independent_columns_sparse

            keep = independent_columns_sparse(XtX, RANK_TOL)
        else:
            keep = independent_columns(XtX) if XtX.shape[0] else np.zeros(0, np.int64)
        self.all_fixef_names = list(names)
        self.dropped_fixef = [names[j] for j in range(len(names)) if j not in set(keep.tolist())]
        if self.dropped_fixef:
            warnings.warn(
                "fixed-effect model matrix is rank deficient, so dropping "
                f"{len(self.dropped_fixef)} column(s): {', '.join(self.dropped_fixef)}",
                RankDeficiencyWarning, stacklevel=5)
        self.fixef_cols = keep
        self.fixef_names = [names[j] for j in keep]

    def _shift(self, X, y, w) -> np.ndarray:
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

    def _build(self, rows, y, weights, ordering, memory_limit=None, verbose: bool = False) -> None:
        X = self._X
        self.nobs = y.shape[0]
        self.gamma = self._shift(X, y, weights)
        nlevels = [t.nlevels for t in self.terms]
        self.crossprod = cross_products(rows, nlevels, X, y - X @ self.gamma, weights,
                                        verbose=verbose)
        del self._X
        self._analyse(ordering, memory_limit)

    def _analyse(self, ordering, memory_limit=None) -> None:
        """From the cross-products on: Lambda/M structures, theta0, bounds, symbolic analysis."""
        self.relcov = RelCov.build(self.terms, self.crossprod.ZtZ)
        self.theta0 = lme4_start(self.terms)
        self.lower = np.concatenate([t.cov.lower_bounds() for t in self.terms])
        M0 = self.relcov.M(self.theta0)
        q1, k1, perm = leading_block(self.terms)
        self.factor, self.ordering_table = select_factor(M0, q1, k1, ordering, memory_limit, perm)
        if self.sparse_X:           # Maug's pattern, scatter and one symbolic analysis
            from .linalg.augmented import Augmented

            self.aug = Augmented.build(self.relcov, self.crossprod.ZtX, self.crossprod.XtX)
            self.aug.analyse(self.theta0, self.relcov, ordering, memory_limit)

    # -- the profiled criterion --------------------------------------------------------
    @property
    def Lind(self) -> np.ndarray:
        return self.relcov.Lind

    @property
    def q(self) -> int:
        return self.crossprod.q

    @property
    def p(self) -> int:
        return self.crossprod.p

    def Lambda(self, theta):
        return self.relcov.Lambda(self._theta(theta))

    def _theta(self, theta) -> np.ndarray:
        try:
            theta = np.asarray(theta, dtype=float).reshape(-1)
        except (TypeError, ValueError):
            raise SparseMixedError(f"theta must be a vector of {self.theta0.size} numbers, got {theta!r}") from None
        if theta.size != self.theta0.size:
            raise SparseMixedError(f"theta must have {self.theta0.size} elements, got {theta.size}")
        if not np.all(np.isfinite(theta)):
            raise SparseMixedError(f"theta must be finite, got {theta}")
        return theta

    def pls(self, theta):
        """The PLS state (L, R_ZX, R_X, beta, r2 ...) at theta (sparse X: an AugState, with
        the factors of Maug and of M both at theta)."""
        with one_blas_thread():
            if self.sparse_X:
                return self.aug.solve(self._theta(theta), self.crossprod, self.relcov, self.factor)
            return pls_solve(self._theta(theta), self.crossprod, self.relcov, self.factor)

    def objective(self, theta, REML: bool | None = None) -> float:
        """The profiled deviance (ML) or REML criterion at theta (lme4's devFunOnly)."""
        reml = self.REML if REML is None else _as_bool(REML, "REML")
        if self.sparse_X:
            from .linalg import augmented

            with one_blas_thread():
                state = self.aug.solve(self._theta(theta), self.crossprod, self.relcov,
                                       None if reml else self.factor)
            return augmented.criterion(state, self.nobs, self.p, reml, self.crossprod.sum_log_w)
        state = self.pls(theta)
        return obj.criterion(state, self.nobs, self.p, reml, self.crossprod.sum_log_w)

    def gradient(self, theta, REML: bool | None = None) -> np.ndarray:
        """Analytic gradient of :meth:`objective` with respect to theta (beta, sigma profiled)."""
        return self.objective_and_gradient(theta, REML)[1]

    def objective_and_gradient(self, theta, REML: bool | None = None):
        reml = self.REML if REML is None else _as_bool(REML, "REML")
        with one_blas_thread():
            if self.sparse_X:
                from .linalg import augmented

                mf = None if reml else self.factor
                state = self.aug.solve(self._theta(theta), self.crossprod, self.relcov, mf)
                f = augmented.criterion(state, self.nobs, self.p, reml, self.crossprod.sum_log_w)
                return f, augmented.gradient(self.aug, state, self.crossprod, self.relcov, mf, reml)
            state = self.pls(theta)
            f = obj.criterion(state, self.nobs, self.p, reml, self.crossprod.sum_log_w)
            return f, gradient(state, self.crossprod, self.relcov, self.factor, reml)

    # -- fitting -----------------------------------------------------------------------
    def choose_optimizer(self) -> str:
        """The default optimizer ("auto"), chosen by measurement (benchmarks/optimizers.py,
        results in benchmarks/results/):

        * every theta a scalar intercept term's (crossed and nested random intercepts):
          BOBYQA started from moment estimates (:meth:`moment_start`) with a first trust
          region of 10%.  Those starts land near the optimum (InstEval: within 0.04 in
          each theta), and BOBYQA then needs no gradient: InstEval 28 criterion
          evaluations against L-BFGS-B's 25 criterion-and-gradient evaluations at about
          three times the cost each; MovieLens-shaped 1M rows 21 against 12.
        * sparse X (fixed effects inside the factor of Maug): BOBYQA, as a gradient needs
          the selected inverse of Maug, ~4-25 criterion evaluations (sparse_x.py); from
          moment estimates too when every theta is a scalar intercept term's.
        * otherwise L-BFGS-B with the analytic gradient from lme4's start: on the 15
          reference models 231 evaluations in all against BOBYQA's 627, lme4's criterion
          or lower on every one.  Stops on the boundary theta_k = 0 are checked by a
          second-order step into the interior, the reflected column and the curvature of
          a zero column (optimize.leave_boundary);
        * BOBYQA also when the dense Schur block is large (q2 >= blocked.LARGE_DENSE_Q2,
          e.g. 16,034 movies) and theta short: one gradient there costs about four
          criterion evaluations (S^-1 is twice S's Cholesky factor, plus a pass over all
          level pairs), more than L-BFGS-B saves in evaluations.

        An explicit ``optimizer=`` starts from lme4's theta unless ``start=`` says otherwise."""
        from .linalg import blocked

        if self.sparse_X or self.moment_start()[1].all():
            return "bobyqa"
        f = self.factor
        if getattr(f, "ordering", "") == "blocked" and f.q2 >= blocked.LARGE_DENSE_Q2 and self.theta0.size <= 4:
            return "bobyqa"
        return "lbfgsb"

    def fit(self, REML: bool | None = None, start=None, optimizer: str = DEFAULT_METHOD,
            maxeval: int = 100_000, ftol_abs: float = 1e-8, xtol_abs: float = 1e-8,
            verbose: bool = False, check_convergence: bool | None = None):
        """Optimise theta and return an :class:`~sparsemixed.results.LmerResult`.

        ``optimizer="auto"`` is :meth:`choose_optimizer`'s choice; see
        :mod:`sparsemixed.optimize` for the methods.  ``verbose=True`` shows a progress
        bar (evaluations, best criterion so far) on stderr.  ``check_convergence``: the
        scaled-gradient/Hessian check after the fit (:mod:`sparsemixed.diagnostics`) always
        (True), never (False), or when it costs under a quarter of the fit (None; up to the fit's
        own time when a diagonal theta ends within 0.01 of 0 but off it, where gradient methods
        stall).  Where
        that check finds negative curvature (a saddle point), the fit steps off along it and
        restarts, up to twice (``optsummary.saddle_restarts``); where it finds the scaled
        gradient above lme4's tolerance, the optimizer restarts from its stop, up to twice
        (``optsummary.gradient_restarts``).
        """
        from .results.lmer_result import LmerResult

        reml = self.REML if REML is None else _as_bool(REML, "REML")
        if optimizer == "auto":
            optimizer = self.choose_optimizer()
            if start is None and optimizer == "bobyqa" and self.moment_start()[1].all():
                start = "moments"
        step = None
        if isinstance(start, str):
            if start not in ("lme4", "moments"):
                raise SparseMixedError(f"start must be 'lme4', 'moments' or a vector of {self.theta0.size} "
                                       f"numbers, got {start!r}")
            x0 = self.theta0
            if start == "moments":
                x0, estimated = self.moment_start()
                # near the optimum: a first trust region as small as the start's error (nlopt's default elsewhere)
                step = moment_step(self.terms, x0, estimated)
        else:
            x0 = self.theta0 if start is None else self._theta(start)
        summary = OptSummary(initial=np.array(x0, float), lower=self.lower, method=optimizer,
                             ftol_abs=ftol_abs, xtol_abs=xtol_abs, maxeval=int(maxeval), initial_step=step)
        bar = progress(desc=f"fit ({optimizer})", unit=" evals", enabled=verbose)
        fun = lambda th: self.objective(th, reml)
        run = lambda s: minimize(fun, s, fun_grad=lambda th: self.objective_and_gradient(th, reml),
                                 progress=None if bar is None else
                                 lambda k, f: (bar.update(1), bar.set_postfix_str(f"{f:.6f}")))
        try:
            run(summary)
            self._check_fit(summary, reml, check_convergence)
            while summary.feval < summary.maxeval:
                x1 = self._restart_point(summary, fun)
                if x1 is None:
                    break
                sub = dataclasses.replace(summary, initial=x1, initial_step=None, final=None, fmin=np.inf,
                                          feval=0, geval=0, seconds=0.0, trace=[], diagnostics={},
                                          maxeval=max(1, summary.maxeval - summary.feval))
                run(sub)
                merge_restart(summary, sub)
                self._check_fit(summary, reml, check_convergence)
        finally:
            if bar is not None:
                bar.close()
        from .diagnostics import check_singular, warn_convergence

        warn_convergence(summary.diagnostics, stacklevel=4)
        check_singular(self, summary.final)
        state = self.pls(summary.final)       # refactor at the best theta seen
        if self.sparse_X:
            from .results.sparse_x_result import SparseXLmerResult

            return SparseXLmerResult.from_state(self, state, summary, reml)
        return LmerResult.from_state(self, state, summary, reml)

    def _restart_point(self, summary, fun):
        """Where to restart after the convergence check, or None: off a saddle point (the
        check found negative curvature; up to MAX_SADDLE_RESTARTS), or from the stop itself
        when the scaled gradient H^-1 g is above lme4's tolerance although the Hessian is
        positive definite (a quasi-Newton stop on a stale curvature model: on random
        unbalanced (1 + x + z | g) fits L-BFGS-B stopped with |H^-1 g| = 0.04, 0.24 above
        the optimum that a restart reached in 18 evaluations; up to MAX_GRADIENT_RESTARTS)."""
        from .diagnostics import SCALED_GRAD_TOL

        diag = summary.diagnostics
        if diag.get("hessian_positive_definite") is False:
            if summary.saddle_restarts >= MAX_SADDLE_RESTARTS:
                return None
            x1 = escape_saddle(fun, summary.final, summary.fmin, self.lower, diag["descent_direction"])
            summary.feval += 2 * len(SADDLE_STEPS)
            summary.saddle_restarts += x1 is not None
            return x1
        scaled = diag.get("scaled_gradient")
        if (diag.get("hessian_positive_definite") and scaled is not None and len(scaled)
                and np.max(np.abs(scaled)) > SCALED_GRAD_TOL and summary.gradient_restarts < MAX_GRADIENT_RESTARTS):
            summary.gradient_restarts += 1
            return np.array(summary.final, dtype=float)
        return None

    def _check_fit(self, summary, reml: bool, check_convergence: bool | None) -> None:
        """summary.diagnostics: the convergence check at summary.final (without warning),
        when its cost fits the budget (``check_convergence``: see :meth:`fit`)."""
        from .diagnostics import check_convergence as check_convergence_

        budget = {True: np.inf, False: -1.0}.get(check_convergence, max(0.2, 0.25 * summary.seconds))
        x = np.asarray(summary.final, dtype=float)
        near = np.isfinite(self.lower) & (x > self.lower + 1e-10) & (x < self.lower + NEAR_BOUNDARY)
        if check_convergence is None and near.any():
            # a relative sd under 1%: where gradient methods stall on a flat, even criterion
            # or a saddle (a 36,777-row (0 + f | b) + (1 | a) fit stopped at theta = 0.001
            # for a, 0.70 above the optimum at 0.089, the check skipped for its cost)
            budget = max(budget, NEAR_BOUNDARY_BUDGET * summary.seconds)
        reason = "check_convergence=False"
        if self.sparse_X and check_convergence is None:     # gradients too dear (sparse_x.py)
            budget, reason = -1.0, ("skipped by default on the sparse-X path (each gradient needs the "
                                    "selected inverse of Maug); fit(check_convergence=True) forces it")
        summary.diagnostics = (check_convergence_(self, summary, reml, budget_seconds=budget, warn=False)
                               if budget >= 0 else {"checked": False, "reason": reason})

    def refit(self, new_y, REML: bool | None = None, **fit_kw):
        """Fit a new response with the same design, reusing the cross-products of Z and X and
        the symbolic analysis (one pass over ``new_y``, Z is rebuilt from ``self.data``)."""
        if self.data is None:
            raise SparseMixedError("refit needs the model's data (model.data is None)")
        frame = build_model_frame(self.parsed, self.data, self.weights_arg, self.offset_arg, self.na_action,
                                  sparse_X=self.sparse_X)
        y = np.asarray(new_y, dtype=float).reshape(-1)
        if y.shape[0] == frame.kept.shape[0] and frame.n != y.shape[0]:
            y = y[frame.kept]
        if y.shape[0] != frame.n:
            raise DataError(f"new_y has {y.shape[0]} values; the model has {frame.n} observations")
        if not np.all(np.isfinite(y)):
            raise DataError("new_y has missing or infinite values")
        if frame.offset is not None:
            y = y - frame.offset
        new = copy.copy(self)
        X = frame.X[:, self.fixef_cols]
        w = frame.weights
        new.gamma = self._shift(X, y, w)
        ys = y - X @ new.gamma
        Z = z_matrix([frame.rows[i] for i in _match_rows(frame.terms, self.terms)], [t.nlevels for t in self.terms])
        wy = ys * w if w is not None else ys
        new.crossprod = self.crossprod.with_response(Z.T @ wy, np.asarray(X.T @ wy).ravel(), ys @ wy)
        return new.fit(REML=REML, **fit_kw)

    def moment_start(self) -> tuple[np.ndarray, np.ndarray]:
        """(theta, estimated): moment estimates for the scalar intercept terms
        (:mod:`sparsemixed.start`), lme4's start for the other entries (estimated False)."""
        return moment_start(self.terms, self.crossprod)

    def random_effects(self, theta):
        state = self.pls(theta)
        if self.sparse_X:           # u is part of the augmented solve
            return state.u.copy(), np.asarray(self.relcov.Lambda(state.theta) @ state.u).ravel()
        return random_effects(state, self.relcov, self.factor)

    def __repr__(self) -> str:
        terms = " + ".join(f"({t.expr} | {t.group.name})" for t in self.terms)
        return (f"LinearMixedModel({self.formula!r}, REML={self.REML}, n={self.nobs}, "
                f"p={self.p}, q={self.q}, terms={terms})")


def _match_rows(frame_terms, model_terms) -> list[int]:
    """Index into the frame's (formula-order) terms of each model (lme4-order) term."""
    out, used = [], set()
    for t in model_terms:
        for i, ft in enumerate(frame_terms):
            if i not in used and ft.expr == t.expr and ft.group.name == t.group.name:
                out.append(i)
                used.add(i)
                break
    return out
