"""Ctrl-C: every long operation stops with KeyboardInterrupt and leaves the model usable.

In process: a KeyboardInterrupt raised from inside the objective at its k-th evaluation
(the engine's ``solve`` patched) must come out of fit (every optimizer), the likelihood
profile, the parametric bootstrap and glmer fits (every nAGQ) as KeyboardInterrupt --
never as ``nlopt.ForcedStop``, an optimizer failure that a restart or a fallback swallows,
or a bootstrap replicate counted as failed -- with linalg/threads.py's BLAS limit closed
and the user's thread count back, after which the same model gives the same answer as
before.  nlopt's wrapper drops or converts exceptions raised in the objective (Luksan's
L-BFGS carried on after one, so a profile finished as if never interrupted):
optimize.Aborted carries them out.

In a subprocess: a real SIGINT during each long operation (a fit of 100,000 rows by the
default L-BFGS-B and by nlopt's BOBYQA, a profile confint, a bootstrap, glmer fits by
L-BFGS-B (nAGQ = 1) and by BOBYQA (nAGQ = 0, 2)), with the delay from the signal to the
KeyboardInterrupt measured
(one evaluation's C calls at most: a CHOLMOD factorization, a LAPACK call, a compiled
kernel cannot be interrupted midway; docs/engine.md, "Interrupts").
"""
from __future__ import annotations

import contextlib
import gc
import importlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nlopt
import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from sparsemixed import optimize
from sparsemixed.inference.profile.argmin import argmin
from sparsemixed.linalg import threads as thr

ROOT = Path(__file__).resolve().parents[1]
GLMM_DATA = ROOT / "tests" / "reference" / "glmm" / "data" / "cbpp.csv"


# -- helpers ------------------------------------------------------------------------------
ENGINES = tuple(getattr(importlib.import_module(f"sparsemixed.engine.{mod}"), name)
                for mod, name in [("dense", "DenseEngine"), ("small", "SmallEngine"), ("sparse_x", "SparseXEngine")])


@contextlib.contextmanager
def interrupt_at(k: int):
    """Every engine's ``solve`` (a fit's evaluations; a refit's or PIRLS's reweighted engine
    may be of another class) raises KeyboardInterrupt at the k-th call of any of them."""
    calls = [0]
    saved = {cls: cls.__dict__["solve"] for cls in ENGINES}

    def patched(orig):
        def solve(self, *args, **kw):
            calls[0] += 1
            if calls[0] == k:
                raise KeyboardInterrupt(f"test interrupt at call {k}")
            return orig(self, *args, **kw)
        return solve

    for cls, orig in saved.items():
        setattr(cls, "solve", patched(orig))
    try:
        yield calls
    finally:
        for cls, orig in saved.items():
            setattr(cls, "solve", orig)


def blas_counts():
    return [lib.num_threads for lib in thr._blas_libraries()]


def assert_threads_restored(before):
    assert thr._DEPTH == {"one": 0, "all": 0}
    assert thr._SAVED is None
    assert blas_counts() == before


def assert_interrupted(op, k):
    """op() raises KeyboardInterrupt (ours, from the k-th solve) with the BLAS limit restored."""
    before = blas_counts()
    with interrupt_at(k) as calls:
        with pytest.raises(KeyboardInterrupt, match=f"at call {k}"):
            op()
    assert calls[0] == k, "the operation went on evaluating after the interrupt"
    assert_threads_restored(before)


@pytest.fixture(scope="module")
def sleep():
    model = sm.lmer("Reaction ~ Days + (Days | Subject)", sm.datasets.load("sleepstudy"))
    return model, model.fit()


@pytest.fixture(scope="module")
def cbpp():
    d = pd.read_csv(GLMM_DATA)
    d["herd"], d["period"] = d["herd"].astype(str), d["period"].astype(str)
    return sm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial")


# -- the optimizers -------------------------------------------------------------------------
def _quadratic(k, exc):
    """A Rosenbrock valley in 3 parameters (tens of evaluations by every method) raising
    ``exc`` at its k-th evaluation."""
    calls = [0]

    def fg(x):
        calls[0] += 1
        if calls[0] == k:
            raise exc
        a, b, c = x
        f = 10 * (b - a * a) ** 2 + (1 - a) ** 2 + (c - 2) ** 2
        return float(f), np.array([-40 * a * (b - a * a) - 2 * (1 - a), 20 * (b - a * a), 2 * (c - 2)])

    return (lambda x: fg(x)[0]), fg, calls


def _with_hessian(fg):
    """(f, g, H) for "scoring": H a constant positive definite model of the Hessian (as the
    AI matrix is positive definite), crude, so that the search takes tens of evaluations."""
    def fgh(x):
        f, g = fg(x)
        return f, g, np.diag([40.0, 20.0, 2.0])
    return fgh


@pytest.mark.parametrize("method", optimize.METHODS)
@pytest.mark.parametrize("k", [1, 2, 9])
@pytest.mark.parametrize("exc", [KeyboardInterrupt("stop"), ZeroDivisionError("bug")], ids=["ctrl-c", "bug"])
def test_every_method_raises_the_objectives_exception(method, k, exc):
    """The exception object raised in the objective comes out of minimize, and the optimizer
    calls the objective no more after it (nlopt is stopped; scipy propagates)."""
    f, fg, calls = _quadratic(k, exc)
    s = optimize.OptSummary(initial=np.array([0.2, 1.5, 0.5]), lower=np.array([0.0, -np.inf, 0.0]), method=method)
    with pytest.raises(type(exc)) as info:
        optimize.minimize(f, s, fun_grad=fg, fun_grad_hess=_with_hessian(fg))
    assert info.value is exc
    assert calls[0] == k


@pytest.mark.parametrize("k", [1, 2, 5, 12])
def test_profile_argmin_does_not_take_an_interrupt_for_an_nlopt_failure(k):
    """Luksan's L-BFGS (nlopt) used to carry on after an exception in the objective, and the
    fallback to scipy then finished the point as if nothing had happened."""
    f, fg, calls = _quadratic(k, KeyboardInterrupt("stop"))
    with pytest.raises(KeyboardInterrupt):
        argmin(fg, np.array([0.2, 1.5, 0.5]), np.array([0.0, -np.inf, 0.0]), np.full(3, np.inf))
    assert calls[0] == k


class _SignalledOpt:
    """An nlopt-like optimizer that receives a SIGINT while its own code runs (between two
    objective calls), then stops with ``then`` -- or calls the objective, which gets a
    SIGINT in its turn."""

    def __init__(self, then=None, objective=None):
        self.then, self.objective = then, objective

    def optimize(self, x0):
        if self.objective is not None:
            for _ in range(3):
                self.objective(x0, np.zeros(0))
        else:
            signal.raise_signal(signal.SIGINT)       # deferred: no KeyboardInterrupt in the C code
        if self.then is not None:
            raise self.then


def _python_sigint_handler():
    return signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.skipif(not _python_sigint_handler(), reason="SIGINT is not Python's default handler here")
@pytest.mark.parametrize("then", [None, nlopt.ForcedStop("forced"), nlopt.RoundoffLimited("roundoff")])
def test_a_sigint_while_nlopt_runs_is_raised_after_it(then):
    with pytest.raises(KeyboardInterrupt):
        optimize.run_nlopt(_SignalledOpt(then), np.zeros(2), optimize.Aborted(),
                           failures=(nlopt.RoundoffLimited, nlopt.ForcedStop))
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler      # the chain undone
    # without a SIGINT nlopt's failures stay failures
    assert isinstance(optimize.run_nlopt(_SignalledOpt(nlopt.RoundoffLimited("r"), objective=lambda x, g: 0.0),
                                         np.zeros(2), optimize.Aborted(), failures=(nlopt.RoundoffLimited,)),
                      nlopt.RoundoffLimited)


@pytest.mark.skipif(not _python_sigint_handler(), reason="SIGINT is not Python's default handler here")
def test_a_sigint_in_the_objective_raises_there_and_stops_the_optimizer():
    seen = []

    def objective(x, grad):
        seen.append("called")
        signal.raise_signal(signal.SIGINT)
        seen.append("went on")          # not reached: KeyboardInterrupt at once
        return 1.0

    abort = optimize.Aborted()
    with pytest.raises(KeyboardInterrupt):
        optimize.run_nlopt(_SignalledOpt(objective=abort.guard(objective)), np.zeros(2), abort)
    assert seen == ["called"]           # the later calls returned at once


def _kernel_error():
    """What a numba parallel kernel raises when a Ctrl-C lands in the Python call it makes
    at launch: SystemErrors chained down to the KeyboardInterrupt."""
    try:
        try:
            try:
                raise KeyboardInterrupt
            except KeyboardInterrupt as ki:
                raise SystemError("<function _numba_unpickle> returned a result with an exception set") from ki
        except SystemError as inner:
            raise SystemError("CPUDispatcher(<function _pass>) returned a result with an exception set") from inner
    except SystemError as exc:
        return exc


def test_a_kernels_system_error_over_a_ctrl_c_is_a_keyboard_interrupt():
    exc = _kernel_error()
    assert isinstance(optimize.interrupt_in(exc), KeyboardInterrupt)
    assert optimize.interrupt_in(SystemError("other")) is None
    with pytest.raises(KeyboardInterrupt):
        with optimize.kernel_interrupts():
            raise exc
    with pytest.raises(SystemError):
        with optimize.kernel_interrupts():
            raise SystemError("a genuine one")
    # from inside an optimizer's objective too: nlopt's wrapper (Aborted) converts it, scipy
    # propagates it to the context the fits run in (fitting.fit, glmm fit, the profile)
    for method in optimize.METHODS:
        s = optimize.OptSummary(initial=np.array([0.2, 1.5, 0.5]), lower=np.array([0.0, -np.inf, 0.0]),
                                method=method)
        f, fg, calls = _quadratic(3, _kernel_error())
        with pytest.raises(KeyboardInterrupt):
            with optimize.kernel_interrupts():
                optimize.minimize(f, s, fun_grad=fg, fun_grad_hess=_with_hessian(fg))
        assert calls[0] == 3


# -- model operations -----------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["auto", *optimize.METHODS])
@pytest.mark.parametrize("k", [1, 4, 15])
def test_fit_is_interrupted_and_the_model_fits_again(sleep, optimizer, k):
    model, _ = sleep
    ref = model.fit(optimizer=optimizer)
    assert_interrupted(lambda: model.fit(optimizer=optimizer), k)
    again = model.fit(optimizer=optimizer)
    assert again.objective == ref.objective
    np.testing.assert_array_equal(again.theta, ref.theta)


@pytest.mark.expect_warnings((sm.SingularFitWarning,))
def test_fit_on_the_blocked_factor_is_interrupted():
    rng = np.random.default_rng(5)
    n, na, nb = 4000, 150, 40
    a, b, x = rng.integers(0, na, n), rng.integers(0, nb, n), rng.normal(size=n)
    y = x + rng.normal(0, 0.7, na)[a] * (1 + x) + rng.normal(0, 0.5, nb)[b] + rng.normal(size=n)
    model = sm.lmer("y ~ x + (1 + x | a) + (1 | b)", pd.DataFrame({"y": y, "x": x, "a": a.astype(str),
                                                                    "b": b.astype(str)}))
    assert type(model.engine).__name__ == "DenseEngine"
    ref = model.fit()
    for optimizer, k in [("auto", 3), ("bobyqa", 10)]:
        assert_interrupted(lambda: model.fit(optimizer=optimizer), k)
    assert model.fit().objective == ref.objective
    # the factor workspaces the interrupted evaluations had leased are back in the pool
    gc.collect()
    pool = model.engine.pool
    assert len(pool._free) == 1 and pool._free[0] is pool.template


@pytest.mark.parametrize("k", [3, 60, 400])
def test_profile_confint_is_interrupted(sleep, k):
    model, res = sleep
    ref = res.confint(method="profile", parm=[".sig01", ".sig02", "Days"])
    assert_interrupted(lambda: res.confint(method="profile"), k)
    again = res.confint(method="profile", parm=[".sig01", ".sig02", "Days"])
    pd.testing.assert_frame_equal(again, ref)


@pytest.mark.expect_warnings((sm.inference.simulate.BootstrapWarning,))
@pytest.mark.parametrize("k", [2, 25])
def test_bootstrap_is_interrupted_not_counted_as_a_failed_refit(sleep, k):
    import warnings

    model, res = sleep
    ref = res.bootstrap(4, seed=3)
    filters = list(warnings.filters)
    assert_interrupted(lambda: res.bootstrap(50, seed=3), k)
    assert warnings.filters == filters            # the refits' catch_warnings closed
    assert_interrupted(lambda: res.confint(method="boot", nsim=50, seed=3), k)
    pd.testing.assert_frame_equal(res.bootstrap(4, seed=3), ref)


@pytest.mark.parametrize("nAGQ", [0, 1, 2])
@pytest.mark.parametrize("k", [1, 6, 30])
def test_glmer_fit_is_interrupted_and_fits_again(cbpp, nAGQ, k):
    ref = cbpp.fit(nAGQ=nAGQ)
    assert_interrupted(lambda: cbpp.fit(nAGQ=nAGQ), k)
    again = cbpp.fit(nAGQ=nAGQ)
    assert again.optsummary.fmin == ref.optsummary.fmin
    np.testing.assert_array_equal(again.theta, ref.theta)
    np.testing.assert_array_equal(again.beta, ref.beta)


def test_glmer_bootstrap_and_profile_are_interrupted(cbpp):
    res = cbpp.fit()
    ref = res.bootstrap(3, seed=4)
    assert_interrupted(lambda: res.bootstrap(40, seed=4), 40)
    pd.testing.assert_frame_equal(res.bootstrap(3, seed=4), ref)
    assert_interrupted(lambda: res.confint(method="profile"), 50)


# -- a real SIGINT, in a subprocess ---------------------------------------------------------
CHILD = r'''
import signal, sys, time, warnings
signal.signal(signal.SIGINT, signal.default_int_handler)      # as in an interactive session
warnings.simplefilter("ignore")
import numpy as np, pandas as pd
import sparsemixed as sm
from sparsemixed.linalg import threads as thr

def say(*a):
    print(*a, flush=True)

def blas():
    return [lib.num_threads for lib in thr._blas_libraries()]

def phase(name, op, value):
    """Run op until the parent's SIGINT; then the BLAS limit must be the user's again and
    value() (an evaluation of the same model) what it was before."""
    before, v0 = blas(), value()
    say("START", name)
    t0 = time.perf_counter()
    try:
        op()
    except KeyboardInterrupt:
        restored = thr._DEPTH == {"one": 0, "all": 0} and thr._SAVED is None and blas() == before
        say("INTERRUPTED", name, "restored" if restored else f"not-restored:{thr._DEPTH}:{thr._SAVED}:{blas()}:{before}")
        say("CHECK", name, "same" if value() == v0 else "changed")
    else:
        say("FINISHED", name, f"{time.perf_counter() - t0:.2f}")

rng = np.random.default_rng(0)
n, na, nb = 100_000, 5000, 2000                 # fits of 3 to 5 s (idle machine), 0.1-0.3 s per evaluation
a, b, x = rng.integers(0, na, n), (rng.zipf(1.3, n) - 1) % nb, rng.standard_normal(n)
y = 0.5 * rng.standard_normal(na)[a] + 0.8 * rng.standard_normal(nb)[b] + x * (1 + 0.3 * rng.standard_normal(na)[a]) \
    + rng.standard_normal(n)
big = sm.lmer("y ~ x + (1 + x | a) + (1 | b)", pd.DataFrame(dict(y=y, x=x, a=a.astype(str), b=b.astype(str))))
theta = big.theta0 * 0.7
phase("fit", big.fit, lambda: big.objective(theta))
phase("fit-bobyqa", lambda: big.fit(optimizer="bobyqa"), lambda: big.objective(theta))

sys.path.insert(0, sys.argv[1])
from test_optimizer_honesty import sim4
m4 = sm.lmer("y ~ x1 + x2 + x3 + (1 + x1 + x2 + x3 | g)", sim4(7, 100, (1, 1, 1)))
r4 = m4.fit()
phase("profile", lambda: r4.confint(method="profile"), lambda: m4.objective(r4.theta))
sleep = sm.lmer("Reaction ~ Days + (Days | Subject)", sm.datasets.load("sleepstudy")).fit()
phase("bootstrap", lambda: sleep.bootstrap(10**6, seed=1), lambda: sleep.bootstrap(2, seed=1).to_numpy().tolist())

n, na, nb = 60_000, 3000, 1500                  # glmer fits of 3 to 30 s
a, b, x = rng.integers(0, na, n), (rng.zipf(1.3, n) - 1) % nb, rng.standard_normal(n)
eta = -0.3 + 0.5 * rng.standard_normal(na)[a] + 0.8 * rng.standard_normal(nb)[b] + x * (1 + 0.3 * rng.standard_normal(na)[a])
d = pd.DataFrame(dict(y=(rng.random(n) < 1 / (1 + np.exp(-eta))).astype(float), x=x, a=a.astype(str), b=b.astype(str)))
g1 = sm.glmer("y ~ x + (1 + x | a) + (1 | b)", d, family="binomial")
params = np.r_[g1.theta0, -0.3, 1.0]
phase("glmer", g1.fit, lambda: g1.objective(params))                                 # L-BFGS-B
phase("glmer-nAGQ0", lambda: g1.fit(nAGQ=0), lambda: g1.objective(params))           # BOBYQA
g2 = sm.glmer("y ~ x + (1 | a)", d, family="binomial")
phase("glmer-nAGQ2", lambda: g2.fit(nAGQ=2), lambda: g2.objective(np.r_[1.0, -0.3, 1.0]))
say("DONE")
'''

DELAY = 0.5        # seconds into each operation when the SIGINT is sent
PROMPT = 5.0       # the bound on the delay from the SIGINT to the KeyboardInterrupt


def test_sigint_interrupts_each_long_operation_promptly():
    """A SIGINT half a second into each operation (none would finish in under 2 seconds)
    comes out as KeyboardInterrupt within PROMPT seconds, with the BLAS limit restored and
    the model evaluating as before."""
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(Path(__file__).parent)], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    delays, log = {}, []
    watchdog = threading.Timer(240, proc.kill)      # a hung child fails the test, not the suite
    watchdog.start()
    try:
        for line in proc.stdout:
            log.append(line.rstrip())
            word, *rest = line.split()
            if word == "START":
                time.sleep(DELAY)
                sent = time.perf_counter()
                proc.send_signal(signal.SIGINT)
            elif word == "INTERRUPTED":
                delays[rest[0]] = time.perf_counter() - sent
            elif word == "DONE":
                break
        proc.wait(timeout=60)
    finally:
        watchdog.cancel()
        if proc.poll() is None:
            proc.kill()
    err = proc.stderr.read()
    proc.stdout.close(), proc.stderr.close()
    assert proc.returncode == 0, f"{log}\n{err[-3000:]}"
    names = ["fit", "fit-bobyqa", "profile", "bootstrap", "glmer", "glmer-nAGQ0", "glmer-nAGQ2"]
    assert [ln.split()[1] for ln in log if ln.startswith("INTERRUPTED")] == names, log
    assert all(ln.endswith("restored") for ln in log if ln.startswith("INTERRUPTED")), log
    assert all(ln.endswith("same") for ln in log if ln.startswith("CHECK")), log
    print("delays from SIGINT to KeyboardInterrupt (s):", {k: round(v, 3) for k, v in delays.items()})
    slow = {k: round(v, 2) for k, v in delays.items() if v > PROMPT}
    assert not slow, f"interrupts took (s): {delays}"
