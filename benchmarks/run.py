"""Benchmark sparsemixed against R's lme4 on InstEval, and its scaling in the number of rows.

    python benchmarks/run.py [--quick] [--no-r] [--suffix NAME]

Every case runs in a fresh subprocess, under /usr/bin/time -v when it exists, so that the
peak RSS is that case's.  The table is printed and written to
benchmarks/results/<YYYY-MM-DD>-<hostname or --suffix>.md with the machine's description.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import time

import numpy as np

from common import ROOT, machine_info, md_table, measured, result_path

FORMULA = "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)"
CSV = ROOT / "sparsemixed" / "datasets" / "data" / "InstEval.csv"
N_EVAL = 20
HEADERS = ["case", "rows", "q", "build s", "fit s", "optimizer", "evaluations", "ms / evaluation",
           "ms / eval + gradient", "(eval + gradient) / eval", "total s", "peak RSS MB", "objective"]


# -- the measured work, run in a child process ---------------------------------------------
def replicate(data, copies: int, seed: int = 2024):
    """``copies`` stacked copies of the rows; every copy but the first gets y + N(0, 1)."""
    import pandas as pd

    rng = np.random.default_rng(seed)
    parts = [data] + [data.assign(y=data["y"] + rng.standard_normal(len(data)))
                      for _ in range(copies - 1)]
    return pd.concat(parts, ignore_index=True)


def worker(copies: int, theta) -> dict:
    """Build and fit InstEval x copies; time the criterion at ``theta`` (default: the optimum)."""
    import sparsemixed as sm

    data = replicate(sm.datasets.load("InstEval"), copies)
    t0 = time.perf_counter()
    model = sm.lmer(FORMULA, data, REML=True)
    build = time.perf_counter() - t0
    t0 = time.perf_counter()
    res = model.fit()            # the default optimizer choice
    fit = time.perf_counter() - t0
    theta = np.asarray(res.theta if theta is None else theta, dtype=float)
    times, gtimes = [], []
    for _ in range(N_EVAL):           # interleaved, so that both see the same machine
        t0 = time.perf_counter()
        model.objective(theta)
        times.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        model.objective_and_gradient(theta)
        gtimes.append(time.perf_counter() - t0)
    return dict(rows=model.nobs, q=model.q, build=build, fit=fit, evals=res.optsummary.feval,
                method=res.optsummary.method, grad_ms=1000 * statistics.median(gtimes),
                eval_ms=1000 * statistics.median(times), total=build + fit,
                objective=res.objective, theta=res.theta.tolist())


# -- the parent: run each case in its own process ------------------------------------------
def _measured(cmd: list[str]) -> dict:
    """common.measured, failing loudly (every case of this benchmark must run)."""
    out = measured(cmd)
    if "error" in out:
        raise RuntimeError(f"{' '.join(cmd)} failed: {out['error']}\n{out.get('stderr', '')}")
    return out

def run_sparsemixed(copies: int, theta=None) -> dict:
    arg = json.dumps({"copies": copies, "theta": theta})
    return _measured([sys.executable, str(ROOT / "benchmarks" / "run.py"), "--worker", arg])


def run_lme4() -> dict:
    return _measured(["Rscript", str(ROOT / "benchmarks" / "lme4_fit.R"), str(CSV), FORMULA])


def row(case: str, r: dict) -> list:
    return [case, r["rows"], r["q"], *(float(r[k]) for k in ("build", "fit")), r.get("method", r.get("optimizer")),
            r["evals"], float(r["eval_ms"]), float(r["grad_ms"]) if "grad_ms" in r else "-",
            f"{r['grad_ms'] / r['eval_ms']:.2f}" if "grad_ms" in r else "-", float(r["total"]), r["rss_mb"], f"{r['objective']:.4f}"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="skip the 16x scaling case")
    ap.add_argument("--no-r", action="store_true", help="do not run R's lme4")
    ap.add_argument("--suffix", help="results file benchmarks/results/<date>-<suffix>.md (default: the hostname)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(worker(spec["copies"], spec["theta"])))
        return

    with_r = not args.no_r and shutil.which("Rscript") is not None
    if not args.no_r and not with_r:
        print("Rscript not found: skipping lme4 (use --no-r to silence this)", file=sys.stderr)
    info = machine_info(with_r)  # before the cases: its load average is the machine's, not ours
    rows, sections, loads = [], [], []

    print("InstEval, sparsemixed ...", file=sys.stderr, flush=True)
    base = run_sparsemixed(1)
    rows.append(row("InstEval sparsemixed", base))
    loads.append(("x1", base["load"]))
    if with_r:
        print("InstEval, lme4 ...", file=sys.stderr, flush=True)
        ref = run_lme4()
        rows.append(row(f"InstEval lme4 ({ref['optimizer']})", ref))
        loads.append(("lme4", ref["load"]))
        sections.append(
            "**lme4 / sparsemixed:** "
            f"total {ref['total'] / base['total']:.2f}x, fit {ref['fit'] / base['fit']:.2f}x, "
            f"per evaluation {ref['eval_ms'] / base['eval_ms']:.2f}x, build {ref['build'] / base['build']:.2f}x; "
            f"objective difference (sparsemixed - lme4) {base['objective'] - ref['objective']:.3g}.")

    scale = [(1, base)]
    for k in (4,) if args.quick else (4, 16):
        print(f"InstEval x{k}, sparsemixed ...", file=sys.stderr, flush=True)
        r = run_sparsemixed(k, theta=base["theta"])
        scale.append((k, r))
        rows.append(row(f"InstEval x{k} sparsemixed", r))
        loads.append((f"x{k}", r["load"]))

    b1, e1 = base["build"], base["eval_ms"]
    slope, intercept = np.polyfit([r["rows"] / 1e6 for _, r in scale], [r["build"] for _, r in scale], 1)
    scaling = md_table(
        ["copies", "rows", "build s", "build / copy s", "build vs x1", "ms / evaluation", "evaluation vs x1"],
        [[f"x{k}", r["rows"], r["build"], r["build"] / k, f"{r['build'] / b1:.2f}x",
          r["eval_ms"], f"{r['eval_ms'] / e1:.2f}x"] for k, r in scale])
    scaling += (f"\n\nBuild time ~ {intercept:.3f} s + {slope:.3f} s per million rows "
                "(least-squares line through the rows above).")

    table = md_table(HEADERS, rows)
    print(table)
    for s in sections:
        print("\n" + s)
    print("\nScaling in rows at fixed levels (q constant):\n\n" + scaling)

    notes = (
        "- build: sparsemixed `lmer()` (model frame, cross-products, Lambda/M structures, ordering "
        "choice and symbolic analysis); lme4 `lFormula()` + `mkLmerDevfun()`.\n"
        "- fit: sparsemixed `fit()` with its default optimizer (the 'optimizer' column); "
        "'ms / eval + gradient' times criterion and analytic gradient together, what one "
        "L-BFGS-B evaluation costs, and '(eval + gradient) / eval' is its ratio to the criterion "
        "alone (timed interleaved with it); lme4 the elapsed time of `lmer()` minus build.\n"
        f"- ms / evaluation: median of {N_EVAL} calls of the profiled REML criterion "
        "(`model.objective(theta)`, lme4's devfun) at the x1 optimum.\n"
        "- peak RSS: maximum resident set of the case's own process (data loading included).\n"
        "- xk: k stacked copies of InstEval, every copy but the first with y + N(0, 1).\n"
        "- wall-clock times; the 1-min load average as each case started: "
        + ", ".join(f"{c} {l:.2f}" for c, l in loads) + ".\n")
    path = result_path(args.suffix)
    path.write_text(
        f"# Benchmarks {path.stem}\n\n## Machine\n\n{info}\n\n"
        f"## InstEval `{FORMULA}`, REML\n\n{table}\n\n"
        + "".join(s + "\n\n" for s in sections)
        + f"## Scaling in rows at fixed levels\n\n{scaling}\n\n## Notes\n\n{notes}")
    print(f"\nwritten to {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
