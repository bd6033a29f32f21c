"""glmer with a sparse X: a binomial model with a fixed factor of thousands of levels.

    python benchmarks/glmm_sparse_x.py                        # 200k rows, 2,000 firms, both paths
    python benchmarks/glmm_sparse_x.py --rows 50000 --firms 500 --paths sparse dense

Data: ``rows`` observations of ``y ~ x + firm + (1|user) + (1|item)`` (binomial, logit),
firm a fixed factor of ``firms`` levels (every level present, skewed sizes), user x item
crossed random intercepts.  Each path runs in its own process (peak RSS from getrusage):

* sparse: build (sparse_X=True) and an nAGQ = 0 fit (BOBYQA over theta; the nAGQ = 1
  second stage, BOBYQA over theta and p betas, is not attempted at p in the thousands);
* dense:  build (sparse_X=False: X dense n x p) and one weighted cross-products pass, the
  per-PIRLS-iteration cost (X'WX by BLAS, n p^2 flops), then the fit only if ``--dense-fit``.

Prints one JSON line per path.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np


def generate(rows, users, items, firms, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)

    def draw(k, a):
        pr = rng.pareto(a, k) + 1.0
        v = rng.choice(k, rows, p=pr / pr.sum())
        v[:k] = np.arange(k)
        return v

    u, i, f = draw(users, 1.2), draw(items, 1.0), draw(firms, 1.5)
    x = rng.normal(size=rows)
    eta = (-0.2 + 0.3 * x + 0.3 * rng.normal(size=firms)[f] + 0.5 * rng.normal(size=users)[u]
           + 0.5 * rng.normal(size=items)[i])
    y = rng.binomial(1, 1 / (1 + np.exp(-eta)))
    return pd.DataFrame({"y": y, "x": x, "firm": pd.Categorical(f), "user": pd.Categorical(u),
                         "item": pd.Categorical(i)})


def child(path, rows, users, items, firms, dense_fit):
    import sparsemixed as sm

    df = generate(rows, users, items, firms)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    t0 = time.perf_counter()
    m = sm.glmer("y ~ x + firm + (1|user) + (1|item)", df, family="binomial", nAGQ=0,
                 sparse_X=(path == "sparse"))
    out = {"path": path, "rows": rows, "p": m.p, "q": m.q, "build_s": time.perf_counter() - t0,
           "X": type(m.X).__name__}
    w, r = np.full(rows, 0.2), np.ones(rows)
    m.weighted.cross_products(w, r, with_X=True)         # (a first call may compile the kernel)
    t0 = time.perf_counter()
    m.weighted.cross_products(w, r, with_X=True)
    out["one_pass_s"] = time.perf_counter() - t0
    if path == "sparse" or dense_fit:
        t0 = time.perf_counter()
        res = m.fit()
        out.update(fit_s=time.perf_counter() - t0, feval=res.optsummary.feval, m2ll=res.minus2loglik,
                   theta=[float(v) for v in res.theta])
        t0 = time.perf_counter()
        se = res.fixef_se
        out["se_s"] = time.perf_counter() - t0
        out["se_finite"] = bool(np.all(np.isfinite(se)))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    out.update(peak_rss_mb=peak / 1024, data_rss_mb=base / 1024)
    print(json.dumps(out))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--users", type=int, default=4_000)
    ap.add_argument("--items", type=int, default=500)
    ap.add_argument("--firms", type=int, default=2_000)
    ap.add_argument("--paths", nargs="+", default=["sparse", "dense"])
    ap.add_argument("--dense-fit", action="store_true")
    ap.add_argument("--timeout", type=float, default=900)
    ap.add_argument("--child", default=None)
    ap.add_argument("--suffix", default="glmm-sparse-x")
    a = ap.parse_args()
    if a.child:
        return child(a.child, a.rows, a.users, a.items, a.firms, a.dense_fit)
    lines = []
    for path in a.paths:
        cmd = [sys.executable, __file__, "--child", path, "--rows", str(a.rows), "--users", str(a.users),
               "--items", str(a.items), "--firms", str(a.firms)] + (["--dense-fit"] if a.dense_fit else [])
        try:
            out = subprocess.run(cmd, timeout=a.timeout, check=False, capture_output=True, text=True).stdout
            lines += [ln for ln in out.splitlines() if ln.startswith("{")]
        except subprocess.TimeoutExpired:
            lines.append(json.dumps({"path": path, "timeout_s": a.timeout}))
        print(lines[-1] if lines else "", flush=True)
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from common import machine_info, result_path

    path = result_path(a.suffix)
    command = " ".join(["python benchmarks/glmm_sparse_x.py"] + sys.argv[1:])
    path.write_text(f"# glmer with a sparse X ({a.suffix})\n\nCommand: `{command}`\n\n{machine_info(with_r=False)}\n\n"
                    "One JSON line per path (seconds, peak RSS in MB, the fit's -2 log L and evaluations):\n\n```\n"
                    + "\n".join(lines) + "\n```\n")
    print(f"written to {path}")


if __name__ == "__main__":
    main()
