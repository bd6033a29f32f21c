"""``python -m sparsemixed.precompile``: compile the numba kernels into the installed package.

numba compiles a kernel on its first call, for the argument types of that call, so the
first fit after installing spends most of its time compiling (InstEval, import and fit:
11.0 s against 2.2 s warm; benchmarks/results/2026-12-06-first-fit.md).  Run this once after installing,
as the user who installed (root for a system install): it runs small fits that call every
kernel with the argument types real fits use (lmer with scalar and vector terms, the
blocked factor, CHOLMOD and sparse X, the parallel kernels and their serial twins, glmer
binomial and Poisson (dense and sparse X), the results' conditional variances), and writes the machine code next to the
sources, in each package directory's ``__pycache__``.  Every user then loads it from
there, also from a read-only tree (linalg/jit.py); a kernel the tree lacks is compiled
on first use as before.  The code is for this machine's CPU: run it where the package
runs (a tree copied to a different CPU compiles again, and still works).
"""
from __future__ import annotations

import math
import os
import sys
import time
import warnings

import numpy as np
import pandas as pd

from . import FitControl, datasets, glmer, lmer
from .linalg import jit, threads


def _crossed(n: int, n_u: int, n_i: int, seed: int) -> pd.DataFrame:
    """Rows of two crossed factors u and i, a covariate x and a Gaussian response y."""
    rng = np.random.default_rng(seed)
    u, i = rng.integers(0, n_u, n), rng.integers(0, n_i, n)
    x = rng.normal(size=n)
    y = 1 + 0.5 * x + rng.normal(size=n_u)[u] + 0.7 * rng.normal(size=n_i)[i] + rng.normal(size=n)
    return pd.DataFrame({"y": y, "x": x, "u": [f"u{k}" for k in u], "i": [f"i{k}" for k in i]})


def _counts(n: int, n_g: int, n_h: int, seed: int) -> pd.DataFrame:
    """Binary, binomial (k of m) and count responses on crossed factors g and h."""
    rng = np.random.default_rng(seed)
    g, h = rng.integers(0, n_g, n), rng.integers(0, n_h, n)
    x = rng.normal(size=n)
    eta = -0.3 + 0.6 * x + rng.normal(size=n_g)[g] + 0.5 * rng.normal(size=n_h)[h]
    m = rng.integers(1, 6, n)
    t = rng.uniform(0.5, 2.0, n)
    return pd.DataFrame({
        "yb": (rng.uniform(size=n) < 1 / (1 + np.exp(-eta))).astype(int),
        "k": rng.binomial(m, 1 / (1 + np.exp(-eta))), "m": m,
        "c": rng.poisson(t * np.exp(eta)), "t": t, "x": x,
        "g": [f"g{k}" for k in g], "h": [f"h{k}" for k in h]})


# the convergence check runs only when affordable, which a fit that is compiling is not
CHECK = FitControl(check_convergence=True)


def _lmer(formula, data, **kw):
    m = lmer(formula, data, **kw)
    r = m.fit(control=CHECK)
    r.summary()
    r.ranef_frame()
    m.gradient(np.ones_like(r.theta))           # both ways to the trace of M^-1 dM
    m.gradient(np.full_like(r.theta, 1e-4))


def _glmer(formula, data, nAGQ=1, **kw):
    r = glmer(formula, data, **kw).fit(nAGQ=nAGQ, control=CHECK)
    r.summary()
    r.ranef_frame()


def workloads():
    """(name, function) pairs, each a fit and its results, together calling every kernel."""
    sleep = datasets.load("sleepstudy")
    inst = datasets.load("InstEval")
    inst_small = inst.iloc[:8000]
    crossed = _crossed(3000, 300, 40, 1)
    counts = _counts(3000, 200, 30, 2)
    return [
        ("sleepstudy (Days | Subject)", lambda: _lmer("Reaction ~ Days + (Days | Subject)", sleep)),
        ("sleepstudy (Days || Subject), ML", lambda: _lmer("Reaction ~ Days + (Days || Subject)", sleep, REML=False)),
        ("sleepstudy (1 | Subject), weights", lambda: _lmer("Reaction ~ Days + (1 | Subject)", sleep,
                                                            weights=np.linspace(0.5, 2.0, len(sleep)))),
        ("crossed, blocked", lambda: _lmer("y ~ x + (1 | u) + (1 | i)", crossed, ordering="blocked")),
        ("crossed, CHOLMOD", lambda: _lmer("y ~ x + (1 | u) + (1 | i)", crossed, ordering="amd")),
        ("crossed, vector term", lambda: _lmer("y ~ x + (x | u) + (1 | i)", crossed)),
        ("crossed, sparse X", lambda: _lmer("y ~ x + i + (1 | u)", crossed, sparse_X=True)),
        ("InstEval, 8,000 rows, CHOLMOD", lambda: _lmer("y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)",
                                                        inst_small, ordering="natural")),
        ("InstEval", lambda: _lmer("y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)", inst)),
        ("glmer binomial 0/1", lambda: _glmer("yb ~ x + (1 | g) + (1 | h)", counts)),
        ("glmer binomial k of m, nAGQ = 0", lambda: _glmer("cbind(k, m - k) ~ x + (1 | g)", counts, nAGQ=0)),
        ("glmer binomial, nAGQ = 5", lambda: _glmer("yb ~ x + (1 | g)", counts, nAGQ=5)),
        ("glmer Poisson, offset", lambda: _glmer("c ~ x + offset(log(t)) + (1 | g) + (1 | h)", counts,
                                                 family="poisson")),
        ("glmer Poisson, vector term, CHOLMOD", lambda: _glmer("c ~ x + (x | g)", counts, family="poisson",
                                                               ordering="amd")),
        ("glmer binomial, sparse X, nAGQ = 0", lambda: _glmer("yb ~ x + h + (1 | g)", counts, nAGQ=0,
                                                              sparse_X=True)),
    ]


def precompile(verbose: bool = True) -> dict:
    """Run every workload with the parallel kernels and again with their serial twins,
    saving what is compiled into the package tree.  Returns the numbers of kernels, of
    signatures compiled ("compiled") and loaded from the tree ("loaded"), the seconds,
    and the failed workloads.  Raises jit.TreeNotWritableError when the tree cannot be
    written."""
    jit.save_to_tree()
    failed = {}
    saved = threads.PARALLEL_MIN_WORK
    t0 = time.perf_counter()
    try:
        for name, run in workloads():
            for min_work, mode in ((0, "parallel"), (math.inf, "serial")):
                threads.PARALLEL_MIN_WORK = min_work
                t = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        run()
                except Exception as exc:       # report, go on: the other kernels still compile
                    failed[f"{name} ({mode})"] = f"{type(exc).__name__}: {exc}"
                    if verbose:
                        print(f"  {name} ({mode}): failed: {failed[f'{name} ({mode})']}", file=sys.stderr)
                    continue
                if verbose:
                    print(f"  {name} ({mode}): {time.perf_counter() - t:.1f} s")
    finally:
        threads.PARALLEL_MIN_WORK = saved
    stats = [k.stats for k in jit.kernels()]
    return {"kernels": len(stats), "compiled": _misses(), "loaded": sum(sum(s.cache_hits.values()) for s in stats),
            "seconds": time.perf_counter() - t0, "failed": failed}


def _misses() -> int:
    return sum(sum(k.stats.cache_misses.values()) for k in jit.kernels())


def main() -> int:
    tree = os.path.dirname(os.path.abspath(__file__))
    print(f"sparsemixed: compiling the numba kernels into {tree} (__pycache__ directories)")
    try:
        out = precompile()
    except jit.TreeNotWritableError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{out['kernels']} kernels: {out['compiled']} signatures compiled, {out['loaded']} already "
          f"there; {out['seconds']:.0f} s")
    if out["failed"]:
        print(f"warning: {len(out['failed'])} workloads failed (their kernels compile on first use)",
              file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
