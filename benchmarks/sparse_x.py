"""Sparse-X benchmark: a fixed-effect factor with thousands of levels, sparse vs dense X.

    python benchmarks/sparse_x.py                          # cases 1M and 200k, both paths
    python benchmarks/sparse_x.py --cases 200k --timeout 600
    python benchmarks/sparse_x.py --threshold              # plus the p sweep behind sparse_X="auto"
    python benchmarks/sparse_x.py --cases "" --threshold   # the sweep alone

Data (``generate``): ``rows`` observations of ``y ~ x + firm + (1|user) + (1|item)``, firm
a fixed factor of ``firms`` levels, user x item crossed random intercepts; level sizes
are skewed (Pareto weights, every level present), y from known effects (sd firm 0.5,
user 0.4, item 0.5, residual 0.85).  Cases (``CASES``):

* ``1M``    1,000,000 rows, 20,000 users x 2,000 items, 5,000 firms (p = 5,001);
* ``200k``  200,000 rows, 4,000 users x 500 items, 1,000 firms (p = 1,001), small
            enough for the dense path to finish, so that the objectives can be compared.

Each (case, path) runs in its own process under ``/usr/bin/time -v`` (peak RSS), with its
address space capped (``--mem-cap``, default 60% of MemAvailable: a dense path that
does not fit fails with MemoryError instead of pushing the machine into the OOM killer),
and is killed after ``--timeout`` s.  REML fits (lmer's default), each path's default
optimizer.  Table to benchmarks/results/<date>-sparse-x.md.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import sys
import time

import numpy as np

from common import ROOT, machine_info, md_table, measured, result_path

FORMULA = "y ~ x + firm + (1|user) + (1|item)"
CASES = {
    "1M": dict(rows=1_000_000, users=20_000, items=2_000, firms=5_000),
    "200k": dict(rows=200_000, users=4_000, items=500, firms=1_000),
    "tiny": dict(rows=20_000, users=500, items=50, firms=300),     # a smoke test
}
THRESHOLD = dict(rows=100_000, users=2_000, items=300)
THRESHOLD_FIRMS = (25, 100, 200, 400, 800, 1600)


def generate(rows, users, items, firms, seed=0):
    import pandas as pd

    rng = np.random.default_rng(seed)

    def draw(k, a):
        pr = rng.pareto(a, k) + 1.0
        v = rng.choice(k, rows, p=pr / pr.sum())
        v[:k] = np.arange(k)                    # every level present
        return v

    u, i, f = draw(users, 1.2), draw(items, 1.0), draw(firms, 1.5)
    x = rng.normal(size=rows)
    y = (0.3 * x + 0.5 * rng.normal(size=firms)[f] + 0.4 * rng.normal(size=users)[u]
         + 0.5 * rng.normal(size=items)[i] + 0.85 * rng.normal(size=rows))
    return pd.DataFrame({"y": y, "x": x, "firm": pd.Categorical(f), "user": u, "item": i})


def _timed(f, budget=3.0, n_max=10, n_min=1):
    times = []
    start = time.perf_counter()
    while len(times) < n_max and (len(times) < n_min or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), len(times)


def worker(spec: dict) -> dict:
    if spec.get("mem_cap"):
        cap = int(spec["mem_cap"])
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    import warnings

    import sparsemixed as sm

    warnings.simplefilter("ignore")
    out = dict(case=spec["case"], path=spec["path"], package=sm.__file__)
    t0 = time.perf_counter()
    df = generate(spec["rows"], spec["users"], spec["items"], spec["firms"], spec.get("seed", 0))
    out["generate"] = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        model = sm.lmer(FORMULA, df, sparse_X=spec["path"] == "sparse")
        out["build"] = time.perf_counter() - t0
        del df
        out.update(p=int(model.p), q=int(model.q), sparse_X=bool(model.sparse_X))
        if model.sparse_X:
            o = model.engine.aug_factor.ordering
            out.update(ordering=o, nnz_L=int(model.engine.aug_table[o][1]), flops=float(model.engine.aug_table[o][2]))
        th = model.theta0
        out["eval_ms"], out["n_eval"] = _timed(lambda: model.objective(th))
        if spec.get("fit", True):
            t0 = time.perf_counter()
            res = model.fit()
            out["fit"] = time.perf_counter() - t0
            out.update(evals=int(res.optsummary.feval), method=res.optsummary.method,
                       objective=float(res.objective), theta=res.theta.tolist(), sigma=float(res.sigma),
                       beta_x=float(res.fixef["x"]))
            t0 = time.perf_counter()
            se = res.fixef_se
            out["se_s"] = time.perf_counter() - t0
            out["se_x"] = float(se["x"])
    except (sm.MemoryLimitError, MemoryError) as e:
        out["refused"] = f"{type(e).__name__}: {str(e)[:300]}"
    return out


def threshold() -> list[list]:
    """In-process p sweep (build, ms/eval, fit) for both paths: the measurement behind
    sparse_x.SPARSE_X_MIN_P."""
    import warnings

    import sparsemixed as sm

    warnings.simplefilter("ignore")
    rows = []
    for firms in THRESHOLD_FIRMS:
        df = generate(firms=firms, **THRESHOLD)
        for path in ("sparse", "dense"):
            t0 = time.perf_counter()
            m = sm.lmer(FORMULA, df, sparse_X=path == "sparse")
            build = time.perf_counter() - t0
            ms, k = _timed(lambda: m.objective(m.theta0), budget=1.0, n_min=3)
            t0 = time.perf_counter()
            r = m.fit()
            fit = time.perf_counter() - t0
            rows.append([firms, path, round(build, 2), round(ms, 1), r.optsummary.method,
                         int(r.optsummary.feval), round(fit, 2), round(build + fit, 2), f"{r.objective:.6f}"])
            print(rows[-1], file=sys.stderr, flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="1M,200k")
    ap.add_argument("--paths", default="sparse,dense")
    ap.add_argument("--timeout", type=float, default=1800.0)
    ap.add_argument("--mem-cap", type=float, default=None, help="bytes (default 60%% of MemAvailable)")
    ap.add_argument("--no-fit", action="store_true")
    ap.add_argument("--threshold", action="store_true")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(json.loads(args.worker))))
        return
    from sparsemixed.linalg.symbolic import available_memory

    cap = int(args.mem_cap or 0.6 * available_memory())
    parts = [f"# Sparse-X benchmark {result_path('sparse-x').stem}", "",
             f"Command: `python benchmarks/sparse_x.py {' '.join(sys.argv[1:])}`", "", "## Machine", "",
             machine_info(with_r=False), ""]
    cases = [c for c in args.cases.split(",") if c]
    if cases:
        rows, results = [], {}
        for case in cases:
            for path in args.paths.split(","):
                spec = dict(CASES[case], case=case, path=path, fit=not args.no_fit, mem_cap=cap)
                r = measured([sys.executable, str(ROOT / "benchmarks" / "sparse_x.py"), "--worker",
                              json.dumps(spec)], args.timeout)
                results[(case, path)] = r
                print(json.dumps(r), file=sys.stderr, flush=True)
                status = ("timeout" if r.get("timeout") else r.get("refused") or r.get("error") or "ok")
                rows.append([case, path, f"{CASES[case]['rows']:,}", r.get("p"), r.get("q"),
                             r.get("build"), r.get("ordering", "blocked (M) + dense R_ZX" if path == "dense" else None),
                             r.get("nnz_L"), r.get("eval_ms"), r.get("evals"), r.get("method"), r.get("fit"),
                             r.get("se_s"), r.get("rss_mb"), None if r.get("objective") is None else f"{r['objective']:.6f}",
                             str(status)[:160]])
        parts += ["## Results", "",
                  f"`{FORMULA}`, REML, each path's default optimizer; address space capped at "
                  f"{cap / 2**30:.1f} GiB; timeout {args.timeout:.0f} s.", "",
                  md_table(["case", "path", "rows", "p", "q", "build s", "factor", "nnz(L)", "ms / eval",
                            "evaluations", "optimizer", "fit s", "SEs s", "peak RSS MB", "objective", "status"], rows), ""]
        for case in cases:
            a, b = results.get((case, "sparse"), {}), results.get((case, "dense"), {})
            if a.get("objective") is not None and b.get("objective") is not None:
                parts.append(f"**{case}:** objective sparse - dense = {a['objective'] - b['objective']:.3e} "
                             f"(relative {(a['objective'] - b['objective']) / abs(b['objective']):.1e}); "
                             f"theta {np.round(a['theta'], 6).tolist()} vs {np.round(b['theta'], 6).tolist()}; "
                             f"SE(x) {a['se_x']:.6g} vs {b['se_x']:.6g}.")
                parts.append("")
        parts.append("Raw results (JSON lines):")
        parts.append("")
        parts += ["    " + json.dumps({"case": c, "path": p, **{k: v for k, v in r.items() if k != "stderr"}})
                  for (c, p), r in results.items()]
        parts.append("")
    if args.threshold:
        rows = threshold()
        parts += ["## Threshold sweep (sparse_X='auto')", "",
                  f"{THRESHOLD['rows']:,} rows, {THRESHOLD['users']:,} users x {THRESHOLD['items']:,} items, "
                  f"`{FORMULA}`, in one process.", "",
                  md_table(["firms", "path", "build s", "ms / eval", "optimizer", "evaluations", "fit s",
                            "build + fit s", "objective"], rows), ""]
    text = "\n".join(parts)
    print(text)
    if args.out:
        with open(args.out, "a") as fh:
            fh.write(text + "\n")


if __name__ == "__main__":
    main()
