"""Minimise the profiled criterion over theta, within bounds (diagonals of T >= 0).

The optimizer's state lives in :class:`OptSummary`, apart from the model (as in
MixedModels.jl).  Methods: ``"bobyqa"`` (nlopt's BOBYQA, lme4's default),
``"newuoa"`` (nlopt NEWUOA with bounds), ``"nelder_mead"`` (nlopt), and
``"lbfgsb"`` (scipy L-BFGS-B with the analytic gradient of
:mod:`sparsemixed.gradient`) and ``"scoring"`` (Newton steps with the average-information
Hessian of :mod:`sparsemixed.information`, finished by L-BFGS-B when a step leaves the
interior: :func:`scoring`).  The default was chosen by
measurement (``benchmarks/optimizers.py``) and robustness (see
``LinearMixedModel.choose_optimizer``).  No optimizer starts on the boundary.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
import warnings
from dataclasses import dataclass, field

import numpy as np

from .errors import ConvergenceWarning, NumericalError, SparseMixedError

METHODS = ("bobyqa", "newuoa", "nelder_mead", "lbfgsb", "scoring")
DEFAULT_METHOD = "auto"
# what an optimizer is told at a point whose criterion could not be computed (or is not
# finite): large, but far from overflow -- NEWUOA given 1e300 (or inf) once builds a
# quadratic model of infinities and NaNs and computed for 32 s to minutes in C before
# its next evaluation (sleepstudy, the 15th evaluation); 1e100 costs it nothing
FAILED_VALUE = 1e100


@dataclass
class OptSummary:
    initial: np.ndarray
    lower: np.ndarray
    method: str
    ftol_abs: float = 1e-8
    xtol_abs: float = 1e-8
    ftol_rel: float = 1e-12
    maxeval: int = 100_000
    gtol: float = 1e-6
    initial_step: np.ndarray | None = None   # first trust-region radius of the nlopt methods (None/NaN: nlopt's)
    scale: np.ndarray | None = None          # the optimizer works on theta / scale (start.theta_scale); None: 1
    final: np.ndarray | None = None
    fmin: float = np.inf
    feval: int = 0
    geval: int = 0
    seconds: float = 0.0
    returnvalue: str = ""
    converged: bool = False
    saddle_restarts: int = 0                 # restarts after stepping off a saddle point (model.fit)
    gradient_restarts: int = 0               # restarts from a stop with a large scaled gradient (model.fit)
    em_start: list = field(default_factory=list)   # the criterion at each EM step before the search (start.em_start)
    handoff: str = ""                        # why "scoring" handed the search to L-BFGS-B (optimize.scoring)
    trace: list = field(default_factory=list, repr=False)
    diagnostics: dict = field(default_factory=dict, repr=False)

    def __str__(self) -> str:
        return (f"OptSummary(method={self.method}, feval={self.feval}, fmin={self.fmin:.10g}, "
                f"seconds={self.seconds:.3f}, returnvalue={self.returnvalue!r})")


class Aborted:
    """Carries an exception raised inside an objective out of nlopt's C code.

    nlopt's Python wrapper catches an exception raised in the objective, forces a stop and
    hands the algorithm HUGE_VAL; depending on the version and the algorithm it then
    re-raises the exception, turns it into ``nlopt.ForcedStop`` or a ``RuntimeError``, or
    drops it and carries on (Luksan's L-BFGS); and NEWUOA, given HUGE_VAL at some points
    of its iteration, computes for minutes in C before it looks at the stop flag
    (:data:`FAILED_VALUE`).  Callers that take nlopt's failures for ordinary stops (a
    restart, a fallback optimizer) would swallow a Ctrl-C.  So the objective is wrapped (:meth:`guard`): the
    first exception that reaches it (KeyboardInterrupt above all, also MemoryError or a
    bug; a :class:`NumericalError` is handled inside, as a bad point) is recorded, the
    optimizer is told to stop (``opt.force_stop``) and gets the last value it saw, and
    every later call returns at once; :func:`run_nlopt` then raises the recorded exception
    itself.

    A SIGINT that arrives while nlopt's own C code runs would surface as a KeyboardInterrupt
    at the first bytecode of the next objective call, before its ``try``: inside nlopt's
    wrapper.  While :func:`run_nlopt` runs, a chained SIGINT handler therefore calls the
    previous handler (``signal.default_int_handler``: KeyboardInterrupt) at once only when
    the objective is running, and otherwise defers it to the start of the next call, inside
    the ``try``, or to the optimizer's return (main thread only: Python runs signal handlers
    there and nowhere else)."""

    __slots__ = ("exc", "stop", "last", "inside", "pending", "prev")

    def __init__(self, stop=None):
        self.exc: BaseException | None = None
        self.stop = stop           # called once, when the first exception is recorded (nlopt's force_stop)
        self.last = None           # the last value the objective returned (what a stopped optimizer gets)
        self.inside = False        # the objective is running (a SIGINT may raise right there)
        self.pending = None        # (signum, frame) of a SIGINT deferred while C code ran
        self.prev = None           # the SIGINT handler chained to, while run_nlopt runs

    def _deliver(self) -> None:
        """Run the previous handler for a deferred SIGINT (normally: raise KeyboardInterrupt)."""
        if self.pending is not None:
            (signum, frame), self.pending = self.pending, None
            if callable(self.prev):
                self.prev(signum, frame)

    def _handler(self, signum, frame) -> None:
        if self.inside:
            self.prev(signum, frame)
        else:
            self.pending = (signum, frame)

    def guard(self, f, failed: float = 0.0):
        """``f`` wrapped for nlopt (see the class): after a recorded exception, or when ``f``
        raises one, the last value returned (``failed`` before any)."""
        def g(*args):
            if self.exc is None:
                try:
                    self.inside = True
                    self._deliver()
                    v = f(*args)
                    self.last = v
                    return v
                except BaseException as exc:      # noqa: BLE001 -- recorded, raised after the optimizer returns
                    ki = interrupt_in(exc) if isinstance(exc, SystemError) else None
                    self.exc = exc if ki is None else KeyboardInterrupt("interrupted in a compiled kernel")
                    if self.stop is not None:
                        try:
                            self.stop()
                        except Exception:         # noqa: BLE001 -- stopping is best effort; the exception is kept
                            pass
                finally:
                    self.inside = False
            return failed if self.last is None else self.last
        return g

    def reraise(self, cause: BaseException | None = None) -> None:
        """Raise the recorded exception (or a deferred SIGINT's, or ``cause`` if it is a
        KeyboardInterrupt); return when there is none."""
        if self.exc is not None:
            exc, self.exc = self.exc, None
            raise exc
        if isinstance(cause, KeyboardInterrupt):
            raise cause
        self._deliver()


def interrupt_in(exc: BaseException) -> KeyboardInterrupt | None:
    """The KeyboardInterrupt behind ``exc``, when ``exc`` is the SystemError a compiled kernel
    raises after a Ctrl-C landed in a Python function it called (numba's parallel kernels
    call ``_numba_unpickle`` at each launch: "CPUDispatcher(...) returned a result with an
    exception set", the KeyboardInterrupt at the end of the chain); else None."""
    seen = 0
    while exc is not None and seen < 32:
        if isinstance(exc, KeyboardInterrupt):
            return exc
        if not isinstance(exc, SystemError):
            return None
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


@contextlib.contextmanager
def kernel_interrupts():
    """Context turning a compiled kernel's SystemError over a Ctrl-C (:func:`interrupt_in`)
    back into KeyboardInterrupt."""
    try:
        yield
    except SystemError as exc:
        if interrupt_in(exc) is None:
            raise
        raise KeyboardInterrupt("interrupted in a compiled kernel") from exc


@contextlib.contextmanager
def _deferred_sigint(abort: Aborted):
    """Chain ``abort``'s SIGINT handler in front of the current one (main thread, Python
    handler only) while an nlopt optimizer runs."""
    prev = signal.getsignal(signal.SIGINT) if threading.current_thread() is threading.main_thread() else None
    installed = False
    if callable(prev):
        abort.prev = prev
        try:
            signal.signal(signal.SIGINT, abort._handler)
            installed = True
        except (ValueError, OSError):             # not the main interpreter
            pass
    try:
        yield
    finally:
        if installed:
            signal.signal(signal.SIGINT, prev)


def run_nlopt(opt, x0, abort: Aborted, failures=()):
    """``opt.optimize(x0)`` with interrupts carried out (:class:`Aborted`, whose ``guard``
    must wrap the objective): returns the exception when nlopt raised one of ``failures``
    (its ordinary failures, e.g. ``nlopt.RoundoffLimited``), else None.  An exception the
    objective raised, or KeyboardInterrupt for a SIGINT, is raised instead of whatever
    nlopt made of it."""
    with _deferred_sigint(abort):
        try:
            opt.optimize(x0)
        except BaseException as exc:          # noqa: BLE001 -- sorted out below
            abort.reraise(cause=exc)
            if isinstance(exc, failures):
                return exc
            raise
        abort.reraise()
    return None


def _interior_start(x0: np.ndarray, lower: np.ndarray) -> np.ndarray:
    x = np.array(x0, dtype=float)
    on = np.isfinite(lower) & (x <= lower)
    x[on] = lower[on] + 0.1       # never start on the boundary: the criterion is flat there
    return x



def _column_below(lower: np.ndarray, k: int) -> np.ndarray:
    """The entries below the diagonal theta_k in its column of a covariance factor.  theta
    is in lme4's order (each term's lower triangle column by column: the diagonal, then the
    entries below it), and only diagonals are bounded, so they are the unbounded entries
    that follow k up to the next bounded one."""
    j = k + 1
    while j < lower.size and not np.isfinite(lower[j]):
        j += 1
    return np.arange(k + 1, j)


@dataclass(frozen=True)
class BoundaryRules:
    """The thresholds of the boundary checks (a field of fitting.FitControl).

    max_restarts
        L-BFGS-B restarts from a better point found by :func:`leave_boundary`.
    steps
        the steps into the interior tried from a coordinate on its bound.
    curvature_probe, max_probed_column
        the probe of :func:`_zero_column_direction`, and the longest column probed whole.
    on_bound
        a diagonal this close to its bound is checked as on it (L-BFGS-B stops at ~1e-8
        when the whole column is ~0: the gradient vanishes there, the curvature need not).
    zero_column
        entries below a zero diagonal this small count as 0 (L-BFGS-B leaves ~1e-7).
    snap
        derivative-free stops this close to a bound are set onto it when that is no worse.
    """

    max_restarts: int = 10
    steps: tuple = (1e-3, 0.05)
    curvature_probe: float = 1e-2
    max_probed_column: int = 6
    on_bound: float = 1e-6
    zero_column: float = 1e-5
    snap: float = 0.01


BOUNDARY = BoundaryRules()


def _zero_column_direction(fun, x, fx, cols, probe=BOUNDARY.curvature_probe):
    """When the whole column ``cols`` of T is 0, G + v v' (v the column) changes the
    criterion by v' C v to second order: C from 1 + m(m-1)/2 evaluations at probes of
    ``probe``; its most negative eigenvector (oriented so that the diagonal entry is
    >= 0), or None when C is positive semidefinite.  One coordinate at a time sees only
    C's diagonal, and a negative curvature can hide off it."""
    m, t = cols.size, probe
    C = np.zeros((m, m))
    for a in range(m):
        trial = x.copy()
        trial[cols[a]] = t
        C[a, a] = (fun(trial) - fx) / t**2
    for a in range(m):
        for b in range(a + 1, m):
            trial = x.copy()
            trial[cols[[a, b]]] = t
            C[a, b] = C[b, a] = ((fun(trial) - fx) / t**2 - C[a, a] - C[b, b]) / 2
    w, V = np.linalg.eigh(C)
    if w[0] >= -1e-8 * max(1.0, abs(fx)):
        return None
    u = V[:, 0]
    return u if u[0] >= 0 else -u


def leave_boundary(fun, x, fx, lower, rules: BoundaryRules = BOUNDARY):
    """Second-order check of an optimum with coordinates on their bound.

    A gradient method can stop on a bound theta_k = 0 although a better point is near:
    (1) when the rest of k's column is 0 the criterion is even in theta_k, so its gradient
    there is 0 and the optimum may be interior; the column's entries can have to grow
    together (the curvature in v v' is a quadratic form, probed whole:
    :func:`_zero_column_direction`); (2) otherwise the stop can be a corner of the
    parametrisation, not of the model: G = T T' is unchanged when a column of T changes
    sign, so with T_kk = 0 the point whose entries below theta_k are negated is the same
    model, and there the derivative in theta_k has the opposite sign -- a descent
    direction the bound hid (seen on factor-valued slopes ``(0 + f | g)``, where L-BFGS-B
    stopped up to 22 units of deviance above lme4's optimum).  Try small steps into the
    interior; return the first better point (to restart from), or None when none is better.
    """
    tol = 1e-10 * max(1.0, abs(fx))
    on = np.flatnonzero(np.isfinite(lower) & (x <= lower + rules.on_bound))
    for k in on:
        below = _column_below(lower, k)
        bases = [x]
        if np.any(x[below] != 0.0):
            reflected = x.copy()
            reflected[below] = -x[below]
            bases.append(reflected)
        for base in bases:
            for step in rules.steps:
                trial = base.copy()
                trial[k] = lower[k] + step
                if fun(trial) < fx - tol:
                    return trial
        if (below.size and lower[k] == 0.0 and below.size < rules.max_probed_column
                and np.all(np.abs(x[below]) <= rules.zero_column)):
            cols = np.concatenate([[k], below])
            x0 = x.copy()
            x0[below] = 0.0
            u = _zero_column_direction(fun, x0, fun(x0), cols, rules.curvature_probe)
            for step in (() if u is None else (rules.curvature_probe,) + tuple(rules.steps[1:])):
                trial = x0.copy()
                trial[cols] = step * u
                if fun(trial) < fx - tol:
                    return trial
    return None


SADDLE_STEPS = (1e-3, 1e-2, 0.05, 0.2, 0.5)
MAX_SADDLE_RESTARTS = 2
MAX_GRADIENT_RESTARTS = 2


def escape_saddle(fun, x, fx, lower, direction, steps=SADDLE_STEPS):
    """A point to restart from when the optimizer stopped where the criterion curves down
    along ``direction`` (a saddle point: e.g. a correlation left undetermined while a
    variance is near 0, which a derivative-free or quasi-Newton method can stop at): the
    best of x +- t d, t in ``steps`` times max(1, |x|), projected onto the bounds, if it
    lowers the criterion by more than 1e-10 relative; None when none does.  (All steps are
    tried: the valley out of a saddle is often curved, so that only a short step descends.)"""
    d = np.asarray(direction, dtype=float)
    scale = max(1.0, float(np.abs(x).max()))
    floor = np.where(np.isfinite(lower), lower, -np.inf)
    best, fbest = None, fx - 1e-10 * max(1.0, abs(fx))
    for t in steps:
        for sign in (1.0, -1.0):
            trial = np.maximum(x + sign * t * scale * d, floor)
            ft = fun(trial)
            if ft < fbest:
                best, fbest = trial, ft
    return best


def merge_restart(summary: OptSummary, sub: OptSummary) -> None:
    """Fold a restart's summary into the fit's: counts and time add up, the better end wins."""
    summary.feval += sub.feval
    summary.geval += sub.geval
    summary.seconds += sub.seconds
    if sub.fmin <= summary.fmin:
        summary.final, summary.fmin = sub.final, sub.fmin
        summary.returnvalue, summary.converged = sub.returnvalue, sub.converged
    summary.trace.extend(sub.trace)


def _snap_to_boundary(fun, x, fx, lower, snap=BOUNDARY.snap):
    """lme4's boundary check, wider: derivative-free methods stop a little inside the
    bound when the optimum is on it (the criterion is flat there, even in theta_k).  Set
    each bounded coordinate within ``snap`` of its bound onto it when that is no worse."""
    x = x.copy()
    for k in np.flatnonzero(np.isfinite(lower) & (x > lower) & (x - lower < snap)):
        trial = x.copy()
        trial[k] = lower[k]
        ft = fun(trial)
        if ft <= fx:
            x, fx = trial, ft
    return x, fx


def _steep(best, lower, gtol) -> bool:
    """The projected gradient at the best point is above gtol relative to the criterion
    (max(1, |f|)): not a stop L-BFGS-B should have made."""
    g = best.get("g")
    if g is None:
        return False
    x = best["x"]
    pg = np.where((x <= lower) & (g > 0), 0.0, g)
    return bool(np.max(np.abs(pg), initial=0.0) > gtol * max(1.0, abs(best["f"])))


@dataclass(frozen=True)
class ScoringRules:
    """The stops of :func:`scoring` (a field of fitting.FitControl).

    max_steps
        Newton steps before the search is handed to L-BFGS-B.
    to_edge, edge_steps
        a step that would take a diagonal with entries below it in its column past its bound
        goes to_edge of the way there (at theta_kk = 0 the column's sign matters, so the bound
        is an edge of the covariance, not a mirror); after edge_steps such steps in a row
        L-BFGS-B takes over.
    slow_rate, near
        two full steps in a row whose decrement fell by less than slow_rate, once it is
        below near (close enough for Newton's rate to show), hand the search to L-BFGS-B:
        the AI Hessian is a poor model of the criterion's there (a 19-row design with 4 x 5
        levels: rate 0.6, against 1e-4-0.02 on InstEval).
    gap
        the search ends when the criterion's expected distance to the optimum after one more
        step is below this (in criterion units): c x the Newton decrement g'H^-1 g, where c
        is the rate at which the decrement fell over the last full step (the AI Hessian's
        error makes the convergence linear: InstEval c = 4e-5 at the end, small data sets
        c ~ 0.1-0.5), or 1 before a full step.  That last step is taken when it lowers the
        criterion, with no gradient after it.
    done
        a decrement below this ends the search without the step.
    armijo, max_halvings
        a step is accepted when it lowers the criterion by armijo times the decrement
        (halved up to max_halvings times first).
    """

    max_steps: int = 30
    to_edge: float = 0.9
    edge_steps: int = 3
    slow_rate: float = 0.3
    near: float = 1.0
    gap: float = 1e-9
    done: float = 1e-10
    armijo: float = 1e-4
    max_halvings: int = 6


SCORING = ScoringRules()


class _OutOfEvaluations(Exception):
    """maxeval reached inside :func:`scoring` (minimize reports MAXEVAL_REACHED)."""


_NO_INFORMATION = ("optimizer='scoring' needs the criterion's gradient and information matrix, which this "
                   "model's engine does not give (a sparse X); use 'lbfgsb' or 'bobyqa'")


def scoring(fgh, f_only, x0, lower, rules: ScoringRules = SCORING, leave=None, max_leaves: int = 10):
    """Newton's method with a positive definite model Hessian (the average information:
    information.criterion_hessian), a backtracking line search, and bounds by an active set.

    ``fgh(x) -> (f, g, H)`` (f = FAILED_VALUE when it could not be computed), ``f_only(x)``.
    A step that would cross a bound goes as far as the first bound it meets, and that
    coordinate is then held there (the others go on); a held coordinate is released when
    its derivative points inside.  Only a diagonal with nothing below it in its column (a
    scalar term's theta, the last diagonal of T) is held; towards the bound of one with
    entries below it the steps go ``rules.to_edge`` of the way, and L-BFGS-B takes over after
    ``rules.edge_steps`` of them.  On the criterion's evenness in a diagonal theta_k, the
    derivative there is 0 and the AI Hessian blind (its row vanishes as theta_k -> 0), so a
    stop with coordinates on their bounds is checked by ``leave(x, f)`` (:func:`leave_boundary`:
    steps inside, a column's sign, the curvature of a zero column) and the search goes on from
    a better point it returns (up to ``max_leaves`` times).

    Returns (None, message) after a stop by the decrement (:class:`ScoringRules`), or
    (x, reason) with the point to hand to L-BFGS-B: a model Hessian that is not positive
    definite, a failed line search, slow convergence, the edge steps, or max_steps steps."""
    import scipy.linalg as sla

    bounded = np.isfinite(lower)
    x = np.array(x0, dtype=float)
    f, g, H = fgh(x)
    if f >= FAILED_VALUE:
        return x, "the criterion could not be computed at the start"
    held = bounded & (x <= lower)
    rate, last_dec, slow, leaves, it, edge = 1.0, None, 0, 0, 0, 0

    def stop(message):
        """(None, message) for the stop, (None, None) to go on from a better point off the
        bounds (leave), or (x, reason) to hand over."""
        nonlocal x, f, g, H, held, leaves, rate, last_dec, slow
        on = bounded & (x <= lower + BOUNDARY.on_bound)
        if leave is None or not on.any() or leaves >= max_leaves:
            return None, message
        leaves += 1
        trial = leave(x, f)
        if trial is None:
            return None, message + f"; {int(on.sum())} on the boundary, checked"
        x = np.array(trial, dtype=float)
        f, g, H = fgh(x)
        if f >= FAILED_VALUE:
            return x, "the criterion could not be computed at the boundary check's point"
        held = bounded & (x <= lower) & ~(g < 0)
        rate, last_dec, slow = 1.0, None, 0
        return None, None

    while it < rules.max_steps:
        it += 1
        held &= ~(g < 0)                       # a derivative pointing inside releases the coordinate
        free = ~held
        step = np.zeros_like(x)
        try:
            step[free] = -sla.cho_solve(sla.cho_factor(H[np.ix_(free, free)], lower=True), g[free])
        except (np.linalg.LinAlgError, ValueError):
            return x, "the information matrix is not positive definite"
        dec = float(-(g @ step))
        if not np.isfinite(dec) or dec < 0:
            return x, "the information matrix is not positive definite"
        if last_dec is not None:
            rate = min(1.0, dec / last_dec) if last_dec > 0 else 1.0
            slow = slow + 1 if rate > rules.slow_rate and dec < rules.near else 0
            if slow >= 2:
                return x, f"slow convergence (the decrement fell by {rate:.2g} per step)"
        crossing = bounded & free & (x + step < lower)
        if dec <= rules.done and not crossing.any():
            out = stop(f"CONVERGED: Newton decrement {dec:.2g} after {it - 1} steps")
            if out[1] is not None:
                return out
            continue
        if crossing.any():             # as far as the first bound met; that coordinate is then held
            ratio = np.where(crossing, (x - lower) / np.where(crossing, -step, 1.0), np.inf)
            k = int(np.argmin(ratio))
            a_max = float(ratio[k])
            if _column_below(lower, k).size:     # its column's sign pattern: the bound is an edge of G
                edge += 1
                if edge > rules.edge_steps:
                    return x, "steps towards the bound of a diagonal with entries below it"
                k, a_max = -1, rules.to_edge * a_max
            else:
                edge = 0
        else:
            edge = 0
            k, a_max = -1, 1.0
        if not crossing.any() and rate * dec <= rules.gap:
            ft = f_only(x + step)
            taken = ft <= f
            if taken:
                x, f = x + step, ft
            out = stop(f"CONVERGED: Newton decrement {dec:.2g} at rate {rate:.2g}, last step "
                       f"{'taken' if taken else 'not taken (no lower)'}, after {it - 1} steps")
            if out[1] is not None:
                return out
            continue
        a, to_bound = a_max, k >= 0
        for _ in range(rules.max_halvings + 1):
            xt = x + a * step
            if to_bound:
                xt[k] = lower[k]
            ft, gt, Ht = fgh(xt)
            if ft <= f - rules.armijo * a * dec:
                break
            a, to_bound = a * 0.5, False
        else:
            return x, "the line search failed"
        if to_bound:
            held[k] = True
        x, f, g, H = xt, ft, gt, Ht
        last_dec = dec if a == 1.0 else None        # the rate is read over full steps only
        if last_dec is None:
            rate, slow = 1.0, 0
    return x, f"{rules.max_steps} steps without convergence"


def minimize(fun, summary: OptSummary, fun_grad=None, progress=None,
             rules: BoundaryRules = BOUNDARY, defer_abnormal: bool = False, fun_grad_hess=None,
             scoring_rules: ScoringRules = SCORING) -> OptSummary:
    """Run ``summary.method`` on ``fun`` from ``summary.initial``; fills ``summary`` in.

    ``fun_grad(x) -> (f, g)`` is used by the gradient-based methods (``"lbfgsb"``,
    ``"scoring"``), ``fun_grad_hess(x) -> (f, g, H)`` by ``"scoring"`` (H: a positive
    definite model of the Hessian).
    ``progress(feval, best_f)`` is called after every evaluation (e.g. a tqdm bar).
    ``rules``: the thresholds of the boundary checks.  ``summary.scale`` (d): the method
    runs on phi = theta / d (gradient d * g), every other field is in theta.
    ``defer_abnormal``: an L-BFGS-B stop on a failed line search ("ABNORMAL", at the
    criterion's rounding level as often as short of the optimum) is left unconverged without
    a warning, for the caller's convergence check to settle (fitting.settle_abnormal).
    """
    if summary.method not in METHODS:
        raise SparseMixedError(f"optimizer must be one of {METHODS}, got {summary.method!r}")
    # the optimizer's coordinates: phi = theta / d (d = summary.scale); bounds 0 and -inf stay
    d = np.ones(summary.initial.size) if summary.scale is None else np.asarray(summary.scale, dtype=float)
    x0 = _interior_start(summary.initial, summary.lower) / d
    lower = summary.lower / d
    best = {"f": np.inf, "x": x0.copy()}

    def counted(x):
        try:
            f = float(fun(np.asarray(x, dtype=float) * d))
        except NumericalError:      # e.g. X'V^-1X numerically singular at an extreme theta
            f = np.inf              # (anything else, KeyboardInterrupt above all, propagates: Aborted)
        summary.feval += 1
        if not np.isfinite(f):
            f = FAILED_VALUE
        if f < best["f"]:
            best["f"], best["x"] = f, np.array(x, dtype=float)
        if progress is not None:
            progress(summary.feval, best["f"])
        return f

    def counted_derivatives(x, hessian: bool):
        """(f, g) by fun_grad, or (f, g, H) by fun_grad_hess, in phi; one evaluation with
        its gradient.  A point that could not be computed gives FAILED_VALUE, with a zero
        gradient for L-BFGS-B and no H for scoring."""
        try:
            out = (fun_grad_hess if hessian else fun_grad)(np.asarray(x, dtype=float) * d)
            if hessian and out[2] is None:
                raise SparseMixedError(_NO_INFORMATION)
            f, g = out[0], np.asarray(out[1], dtype=float) * d
            H = np.asarray(out[2], dtype=float) * np.outer(d, d) if hessian else None
        except NumericalError:      # e.g. X'V^-1X numerically singular at an extreme theta
            f = np.inf
        summary.feval += 1
        summary.geval += 1
        if not np.isfinite(f):
            return (FAILED_VALUE, None, None) if hessian else (FAILED_VALUE, np.zeros_like(x))
        if f < best["f"]:
            best["f"], best["x"], best["g"] = f, np.array(x, dtype=float), np.array(g, dtype=float)
        if progress is not None:
            progress(summary.feval, best["f"])
        return (f, g, H) if hessian else (f, g)

    counted_grad = lambda x: counted_derivatives(x, False)
    counted_grad_hess = lambda x: counted_derivatives(x, True)

    t0 = time.perf_counter()
    start, ok = x0, False
    if summary.method == "scoring":
        if fun_grad_hess is None or fun_grad is None:
            raise SparseMixedError(_NO_INFORMATION)
        def budgeted(fn):                # maxeval counts scoring's evaluations too
            def g(x):
                if summary.feval >= summary.maxeval:
                    raise _OutOfEvaluations
                return fn(x)
            return g
        try:
            start, summary.returnvalue = scoring(
                budgeted(counted_grad_hess), budgeted(counted), x0, lower, scoring_rules,
                leave=lambda x, fx: leave_boundary(budgeted(counted), x, fx, lower, rules),
                max_leaves=rules.max_restarts)
            ok = start is None
        except _OutOfEvaluations:
            start, ok, summary.returnvalue = None, False, "MAXEVAL_REACHED"
        if start is not None:          # handed on from the best point seen
            start, summary.handoff = best["x"].copy(), f"scoring to L-BFGS-B: {summary.returnvalue}"
    if summary.method == "lbfgsb" or start is not None and summary.method == "scoring":
        from scipy.optimize import minimize as sp_min

        bounds = [(lo if np.isfinite(lo) else None, None) for lo in lower]
        left = max(1, summary.maxeval - summary.feval)      # after scoring's evaluations
        opts = {"maxfun": left, "maxiter": left, "ftol": summary.ftol_rel, "gtol": summary.gtol}
        for _ in range(rules.max_restarts + 1):
            if fun_grad is not None:
                res = sp_min(counted_grad, start, jac=True, method="L-BFGS-B", bounds=bounds, options=opts)
            else:
                res = sp_min(counted, start, method="L-BFGS-B", bounds=bounds, options=opts)
            if summary.feval >= summary.maxeval:
                break
            if best["f"] < float(res.fun) - summary.ftol_rel * abs(float(res.fun)):
                # L-BFGS-B stopped at an iterate worse than a point it had seen, typically a
                # projection onto theta_k = 0 where the gradient vanishes by symmetry.  (By
                # value, not by x: a stop at another point of the same value would restart
                # from the best point again and again, never reaching the boundary check;
                # and by more than ftol_rel: not for a difference at the criterion's last digits.)
                start = best["x"].copy()
                continue
            if _steep(best, lower, summary.gtol):
                # stopped by ftol where the gradient is far from 0: a line search that
                # ended on a step of 0 after a projection (curvature pairs across a bound);
                # a fresh start from the best point, with an empty memory
                start = best["x"].copy()
                continue
            start = leave_boundary(counted, best["x"], best["f"], lower, rules)
            if start is None:
                break
        summary.returnvalue = str(res.message)
        ok = bool(res.success)
    elif summary.method != "scoring":
        import nlopt

        alg = {"bobyqa": nlopt.LN_BOBYQA, "newuoa": nlopt.LN_NEWUOA_BOUND,
               "nelder_mead": nlopt.LN_NELDERMEAD}[summary.method]
        if alg == nlopt.LN_NEWUOA_BOUND and x0.size < 2:
            alg = nlopt.LN_BOBYQA       # NEWUOA needs at least two parameters
        opt = nlopt.opt(alg, x0.size)
        abort = Aborted(stop=opt.force_stop)
        opt.set_min_objective(abort.guard(lambda x, grad: counted(x)))
        opt.set_lower_bounds(np.where(np.isfinite(lower), lower, -np.inf))
        opt.set_ftol_abs(summary.ftol_abs)
        opt.set_ftol_rel(summary.ftol_rel)
        opt.set_xtol_abs(summary.xtol_abs)
        opt.set_maxeval(summary.maxeval)
        if summary.initial_step is not None:      # NaN entries: nlopt's default for that entry
            step = np.asarray(summary.initial_step, dtype=float) / d
            opt.set_initial_step(np.where(np.isnan(step), opt.get_initial_step(x0), step))
        failed = run_nlopt(opt, x0, abort, failures=(nlopt.RoundoffLimited,))
        rc = nlopt.ROUNDOFF_LIMITED if failed is not None else opt.last_optimize_result()
        names = {nlopt.SUCCESS: "SUCCESS", nlopt.STOPVAL_REACHED: "STOPVAL_REACHED",
                 nlopt.FTOL_REACHED: "FTOL_REACHED", nlopt.XTOL_REACHED: "XTOL_REACHED",
                 nlopt.MAXEVAL_REACHED: "MAXEVAL_REACHED", nlopt.MAXTIME_REACHED: "MAXTIME_REACHED",
                 nlopt.ROUNDOFF_LIMITED: "ROUNDOFF_LIMITED"}
        summary.returnvalue = names.get(rc, str(rc))
        ok = rc in (nlopt.SUCCESS, nlopt.FTOL_REACHED, nlopt.XTOL_REACHED, nlopt.ROUNDOFF_LIMITED)
    final, summary.fmin = _snap_to_boundary(counted, best["x"], best["f"], lower, rules.snap)
    summary.final = final * d
    summary.seconds = time.perf_counter() - t0
    summary.converged = ok
    if not ok and not (defer_abnormal and summary.returnvalue.startswith("ABNORMAL")):
        warnings.warn(
            f"the optimizer ({summary.method}) stopped with {summary.returnvalue} after "
            f"{summary.feval} evaluations; the estimates may not be at the optimum. "
            "Raise maxeval or try another optimizer (fit(optimizer=...)).",
            ConvergenceWarning, stacklevel=3)
    return summary
