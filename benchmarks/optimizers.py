"""Compare the optimizers on the lme4 reference models (tests/reference) and InstEval.

    python benchmarks/optimizers.py [--optimizers bobyqa,newuoa] [--models dyestuff_reml,...]
    python benchmarks/optimizers.py --optimizers bobyqa,bobyqa+moments,lbfgsb,lbfgsb+moments

An optimizer written ``name+start`` is run from ``fit(start=start)`` ("moments": moment
estimates of the scalar intercept terms, sparsemixed/start.py; default: lme4's theta = 1).

For each model x optimizer: evaluations, wall time of ``fit()``, the optimizer's return
value, and the objective minus lme4's (REML criterion or deviance from
tests/reference/lme4_results.json; negative = lower than lme4).  Written to
benchmarks/results/<YYYY-MM-DD>-optimizers.md.
"""
from __future__ import annotations

import argparse
import csv
import json
import sys
import time
import warnings

from common import ROOT, machine_info, md_table, result_path

import sparsemixed as sm  # noqa: E402  (common puts the checkout on sys.path)

OPTIMIZERS = ("auto", "bobyqa", "newuoa", "nelder_mead", "lbfgsb", "bobyqa+moments", "lbfgsb+moments")
REFERENCE = ROOT / "tests" / "reference"
INSTEVAL = {"name": "insteval_crossed", "data": "InstEval", "reml": "TRUE",
            "formula": "y ~ service + (1|s) + (1|d) + (1|dept:service)"}
TOL = 1e-6  # |objective - lme4| above this counts as a miss


def load_models() -> list[dict]:
    with open(REFERENCE / "models.tsv", newline="") as f:
        models = list(csv.DictReader(f, delimiter="\t"))
    if not any(m["data"] == "InstEval" for m in models):
        models.append(INSTEVAL)
    return models


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--optimizers", default=",".join(OPTIMIZERS))
    ap.add_argument("--models", help="comma-separated names from tests/reference/models.tsv")
    args = ap.parse_args()
    optimizers = args.optimizers.split(",")
    reference = json.loads((REFERENCE / "lme4_results.json").read_text())
    models = load_models()
    if args.models:
        models = [m for m in models if m["name"] in args.models.split(",")]

    rows, stats = [], {o: {"evals": 0, "seconds": 0.0, "done": 0, "errors": 0, "diffs": []} for o in optimizers}
    for spec in models:
        reml = spec["reml"].upper() == "TRUE"
        ref = reference.get(spec["name"], {})
        target = ref.get("reml_criterion" if reml else "deviance")
        model = sm.lmer(spec["formula"], sm.datasets.load(spec["data"]), REML=reml)
        for opt in optimizers:
            print(f"{spec['name']} / {opt} ...", file=sys.stderr, flush=True)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                try:
                    method, _, start = opt.partition("+")
                    res = model.fit(optimizer=method, start=start or None)
                except Exception as e:  # a failure is a result too: record it and go on
                    stats[opt]["errors"] += 1
                    rows.append([spec["name"], opt, None, None, None, f"error: {type(e).__name__} {e}".strip()[:80]])
                    continue
                seconds = time.perf_counter() - t0
            diff = res.objective - target if target is not None else None
            s = stats[opt]
            s["evals"] += res.optsummary.feval
            s["seconds"] += seconds
            s["done"] += 1
            if diff is not None:
                s["diffs"].append(diff)
            rows.append([spec["name"], opt, res.optsummary.feval, seconds,
                         f"{diff:+.2e}" if diff is not None else None, res.optsummary.returnvalue.strip()])

    detail = md_table(["model", "optimizer", "evaluations", "seconds", "objective - lme4", "return value"], rows)
    summary = md_table(
        ["optimizer", "total evaluations", "total seconds", f"fits > lme4 + {TOL:g}", "errors", "worst objective - lme4"],
        [[o, s["evals"], s["seconds"], f"{sum(d > TOL for d in s['diffs'])} / {s['done']}", s["errors"],
          f"{max(s['diffs']):+.2e}" if s["diffs"] else None]
         for o, s in stats.items()])
    print(summary + "\n\n" + detail)
    path = result_path("optimizers")
    path.write_text(f"# Optimizers {path.stem}\n\n## Machine\n\n{machine_info(with_r=False)}\n\n"
                    f"## Summary\n\n{summary}\n\n## Per model\n\n{detail}\n\n"
                    "objective - lme4: sparsemixed's criterion at its optimum minus lme4's reference "
                    "(tests/reference/lme4_results.json); negative means lower than lme4. "
                    "evaluations: `optsummary.feval`, the criterion's evaluations; gradient "
                    "evaluations (lbfgsb), if any, are in the seconds but not in that count.\n")
    print(f"\nwritten to {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
