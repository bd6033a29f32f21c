"""LinearMixedModel: the profiled criterion as a function of theta.

    y = X beta + Z b + e,   b = Lambda(theta) u,   u ~ N(0, sigma^2 I),   e ~ N(0, sigma^2 W^-1)

    objective(theta) = criterion(pls(theta))            (lme4's devfun)

Construction (one core for every route, :meth:`LinearMixedModel.from_model_parts`):
rows -> terms in lme4's order -> one pass of cross-products (assemble.py) -> Lambda/M
structures (relcov.py) -> one symbolic analysis and the engine (engine/).  After that
the model holds nothing of length n; :meth:`design` re-reads the rows once, on demand.
The fit policy is fitting.py's; results are built by the engine's result class.
"""
from __future__ import annotations

import threading

import numpy as np

from . import assemble
from .assemble import FixedEffects, ModelParts, Source
from .degenerate import check_response
from .design import Design, build_design
from .engine import make_engine
from .errors import SparseMixedError
from .linalg.threads import one_blas_thread
from .optimize import DEFAULT_METHOD
from .relcov import RelCov
from .start import lme4_start, moment_start


def _as_bool(value, name: str) -> bool:
    """REML= and similar switches: True/False (or numpy bools, 0/1), nothing else."""
    if isinstance(value, (bool, np.bool_)) or (isinstance(value, (int, np.integer)) and value in (0, 1)):
        return bool(value)
    raise SparseMixedError(f"{name} must be True or False, got {value!r}")


class LinearMixedModel:
    """A linear mixed model in lme4's formulation; build it with :func:`sparsemixed.lmer`.

    Public pieces (lme4's ``getME`` vocabulary): ``formula``, ``REML``, ``terms``,
    ``fixef_names``, ``theta0``, ``lower``, ``Lind``, ``crossprod``, ``relcov``,
    ``engine`` (and its analysed ``factor``); methods ``objective(theta)`` (lme4's
    devfun), ``gradient(theta)``, ``pls(theta)`` (the state), ``Lambda(theta)``,
    ``fit()``, ``refit(new_y)``, ``design()``.  ``sparse_X`` (chosen by
    ``sparse_X="auto"|True|False``, :mod:`sparsemixed.sparse_x`) tells which engine
    solves the fixed effects: dense R_X, or inside the sparse factor of Maug.
    """

    def __init__(self, formula: str, data, REML: bool = True, weights=None, offset=None,
                 na_action: str = "omit", ordering: str = "auto", memory_limit=None,
                 verbose: bool = False, sparse_X="auto"):
        parts = assemble.from_frame(formula, data, weights, offset, na_action, sparse_X, verbose)
        self._setup(parts, REML, ordering, memory_limit)

    @classmethod
    def from_model_parts(cls, parts: ModelParts, REML: bool = True, ordering: str = "auto",
                         memory_limit=None) -> "LinearMixedModel":
        """The constructor core: a model from cross-products and term structures."""
        self = cls.__new__(cls)
        self._setup(parts, REML, ordering, memory_limit)
        return self

    @classmethod
    def from_parts(cls, y, X, X_names, terms, rows, REML: bool = True, ordering: str = "auto",
                   memory_limit=None, label: str = "(model built from arrays)") -> "LinearMixedModel":
        """A model from arrays and ready-made terms, without a formula (the route of the
        statsmodels interface).  ``rows[i]`` gives term i's block of Z (``.Z()``).  Terms are
        put in lme4's order; ``model.term_order[j]`` is the input index of model term j."""
        return cls.from_model_parts(assemble.from_arrays(y, X, X_names, terms, rows, label), REML,
                                    ordering, memory_limit)

    def _setup(self, parts: ModelParts, REML, ordering, memory_limit) -> None:
        self.REML = _as_bool(REML, "REML")
        self.source: Source = parts.source
        self.fixed: FixedEffects = parts.fixed
        self.terms = parts.terms
        self.term_order = parts.term_order
        self.relcov = RelCov.build(self.terms, parts.crossprod.ZtZ)
        self.theta0 = lme4_start(self.terms)
        self.lower = np.concatenate([t.cov.lower_bounds() for t in self.terms])
        self.engine = make_engine(parts.crossprod, self.relcov, self.terms, self.theta0, self.source.sparse_X,
                                  ordering, memory_limit)
        self._design, self._design_lock = None, threading.Lock()
        if parts.residual_variance:
            formula = self.source.formula or ""
            check_response(parts.crossprod, self.fixed.shift, formula.split("~", 1)[0].strip() if "~" in formula
                           else "y", self.fixed.names, self.terms)
            assemble.check_interpolation(self.crossprod, [t.name for t in self.terms])

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_design"], state["_design_lock"] = None, None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._design_lock = threading.Lock()

    # -- where things are -------------------------------------------------------------
    formula = property(lambda self: self.source.formula)
    parsed = property(lambda self: self.source.parsed)

    @property
    def data(self):
        """The user's data object (not copied), or a stream's descriptor; ``model.data = None``
        releases it (row-level methods then refuse)."""
        return self.source.data

    @data.setter
    def data(self, value) -> None:
        import dataclasses

        self.source = dataclasses.replace(self.source, data=value)
        self._design = None

    na_action = property(lambda self: self.source.na_action)
    n_dropped = property(lambda self: self.source.n_dropped)
    fixed_spec = property(lambda self: self.source.fixed_spec)
    weights_arg = property(lambda self: self.source.weights)
    offset_arg = property(lambda self: self.source.offset)
    sparse_X = property(lambda self: self.engine.sparse_X)
    crossprod = property(lambda self: self.engine.crossprod)
    factor = property(lambda self: self.engine.factor, doc="the analysed factor of M (values live in states)")
    ordering_table = property(lambda self: self.engine.table)
    fixef_names = property(lambda self: self.fixed.names)
    fixef_cols = property(lambda self: self.fixed.cols)
    all_fixef_names = property(lambda self: self.fixed.all_names)
    dropped_fixef = property(lambda self: self.fixed.dropped)
    nobs = property(lambda self: self.crossprod.n)
    q = property(lambda self: self.crossprod.q)
    p = property(lambda self: self.crossprod.p)
    Lind = property(lambda self: self.relcov.Lind)

    def fixef_from(self, engine_beta: np.ndarray) -> np.ndarray:
        """beta on the user's scale: the engine's beta plus the OLS shift of the response."""
        return np.asarray(engine_beta) + self.fixed.shift

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

    def _reml(self, REML) -> bool:
        return self.REML if REML is None else _as_bool(REML, "REML")

    # -- the profiled criterion: objective(theta) = criterion(pls(theta)) ----------------
    def pls(self, theta, REML: bool | None = None):
        """The PLS state at theta (beta, r2, log-determinants ...), owning the factor it was
        computed with; a sparse-X ML state also holds M's factor."""
        with one_blas_thread():
            return self.engine.solve(self._theta(theta), reml=self._reml(REML))

    def objective(self, theta, REML: bool | None = None) -> float:
        """The profiled deviance (ML) or REML criterion at theta (lme4's devFunOnly)."""
        return self.engine.criterion(self.pls(theta, REML), self._reml(REML))

    def gradient(self, theta, REML: bool | None = None) -> np.ndarray:
        """Analytic gradient of :meth:`objective` with respect to theta (beta, sigma profiled)."""
        return self.objective_and_gradient(theta, REML)[1]

    def objective_and_gradient(self, theta, REML: bool | None = None):
        reml = self._reml(REML)
        with one_blas_thread():                  # one context: the user's count is not restored between
            state = self.pls(theta, reml)
            return self.engine.criterion(state, reml), self.engine.gradient(state, reml)

    def random_effects(self, theta):
        """(u, b) at theta."""
        return self.engine.random_effects(self.pls(theta))

    def moment_start(self) -> tuple[np.ndarray, np.ndarray]:
        """(theta, estimated): moment estimates for the scalar intercept terms
        (:mod:`sparsemixed.start`), lme4's start for the other entries (estimated False)."""
        return moment_start(self.terms, self.crossprod)

    # -- fitting ---------------------------------------------------------------------
    def choose_optimizer(self) -> str:
        """The default optimizer: :func:`sparsemixed.fitting.choose_optimizer`."""
        from .fitting import choose_optimizer

        return choose_optimizer(self)

    def fit(self, REML: bool | None = None, start=None, optimizer: str = DEFAULT_METHOD,
            maxeval: int | None = None, ftol_abs: float | None = None, xtol_abs: float | None = None,
            verbose: bool = False, check_convergence: bool | None = None, control=None):
        """Optimise theta and return an :class:`~sparsemixed.results.LmerResult`.

        ``optimizer="auto"`` is :meth:`choose_optimizer`'s choice; see
        :mod:`sparsemixed.optimize` for the methods; the default fit optimizes theta in the
        units of :func:`sparsemixed.start.theta_scale` (random-effect columns of unit rms).
        ``start``: "lme4", "moments", "scaled" (lme4's start in those units: the default
        fit's for a gradient method) or a theta vector.  ``control``: a :class:`~sparsemixed.fitting.FitControl` holding every
        tolerance of the fit (``maxeval``, ``ftol_abs``, ``xtol_abs`` and
        ``check_convergence`` given here override its fields).  ``verbose=True`` shows a
        progress bar on stderr.  After the optimizer stops, the scaled-gradient/Hessian
        check (:mod:`sparsemixed.diagnostics`) runs when affordable; a saddle point found
        there is stepped off and the fit restarted, and a large scaled gradient restarts
        the optimizer from its stop (``optsummary.saddle_restarts``, ``gradient_restarts``).
        """
        import dataclasses

        from .fitting import FitControl, fit

        control = FitControl() if control is None else control
        given = {"maxeval": maxeval, "ftol_abs": ftol_abs, "xtol_abs": xtol_abs,
                 "check_convergence": check_convergence}
        control = dataclasses.replace(control, **{k: v for k, v in given.items() if v is not None})
        return fit(self, self._reml(REML), start, optimizer, verbose, control)

    def refit(self, new_y, REML: bool | None = None, **fit_kw):
        """Fit a new response with the same design, reusing the cross-products of Z and X and
        the symbolic analysis (one pass over ``new_y``)."""
        d = self.design(what="refit(new_y) needs them")
        y = np.asarray(new_y, dtype=float).reshape(-1)
        if d.kept is not None and y.shape[0] == d.kept.shape[0] and d.n != y.shape[0]:
            y = y[d.kept]
        if y.shape[0] != d.n:
            from .errors import DataError

            raise DataError(f"new_y has {y.shape[0]} values; the model has {d.n} observations")
        if not np.all(np.isfinite(y)):
            from .errors import DataError

            raise DataError("new_y has missing or infinite values")
        if d.offset is not None:
            y = y - d.offset
        return self.with_response(y, d).fit(REML=REML, **fit_kw)

    def with_response(self, y, design: Design | None = None) -> "LinearMixedModel":
        """The same model for another response (net of any offset): new Z'Wy, X'Wy, y'Wy
        and OLS shift on the same engine structures and symbolic analysis."""
        import dataclasses

        d = self.design() if design is None else design
        w = d.weights
        shift = assemble.ols_shift(d.X, y, w)
        ys = y - d.X @ shift
        wy = ys * w if w is not None else ys
        cp = self.crossprod.with_response(d.Z.T @ wy, np.asarray(d.X.T @ wy).ravel(), ys @ wy)
        new = self.with_crossproducts(cp)
        new.fixed = dataclasses.replace(self.fixed, shift=shift)
        new._design = dataclasses.replace(d, y=y + (d.offset if d.offset is not None else 0.0))
        return new

    def with_crossproducts(self, crossprod) -> "LinearMixedModel":
        """A shallow copy on new cross-products of the same pattern (a new response, or a
        fixed-effect column moved to the offset for a profile), sharing the symbolic analysis
        but not the factor's values (each state has its own)."""
        import copy

        new = copy.copy(self)
        new.engine = self.engine.reweighted(crossprod)
        new._design, new._design_lock = None, threading.Lock()
        return new

    # -- the rows ---------------------------------------------------------------------
    def design(self, what: str = "this needs the rows") -> Design:
        """The fitted rows (y, X, Z, offset, weights), re-read from the data once and cached;
        a model built from a stream refuses (StreamedDataError)."""
        if self._design is None:
            with self._design_lock:
                if self._design is None:
                    self._design = build_design(self.source, self.terms, self.fixef_cols, what)
        return self._design

    def __repr__(self) -> str:
        terms = " + ".join(f"({t.expr} | {t.group.name})" for t in self.terms)
        return (f"LinearMixedModel({self.formula!r}, REML={self.REML}, n={self.nobs}, "
                f"p={self.p}, q={self.q}, terms={terms})")
