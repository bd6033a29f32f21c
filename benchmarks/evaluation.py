"""One evaluation of the criterion, and with its gradient, by engine, on small models:

    python benchmarks/evaluation.py [--out NAME]

For each model: the engine "auto" picks (the dense small-model engine below m = q + p + 1
<= 120) against the blocked factor and CHOLMOD (``ordering=``), at lme4's start, the median
of 7 runs of 200 calls (microseconds per call), inside one BLAS-thread context as a fit
runs.  Writes benchmarks/results/<date>-<NAME>.md.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE))

import sparsemixed as sm  # noqa: E402
from common import machine_info  # noqa: E402
from sparsemixed.linalg.threads import one_blas_thread  # noqa: E402

MODELS = [("sleepstudy", "Reaction ~ Days + (Days|Subject)"),
          ("Penicillin", "diameter ~ 1 + (1|plate) + (1|sample)"),
          ("Pastes", "strength ~ 1 + (1|batch/cask)"),
          ("Dyestuff", "Yield ~ 1 + (1|Batch)"),
          ("sleepstudy", "Reaction ~ Days + (1|Subject) + (0 + Days|Subject)")]


def per_call(f, calls=200, reps=7) -> float:
    f()
    out = []
    for _ in range(reps):
        t = time.perf_counter()
        for _ in range(calls):
            f()
        out.append((time.perf_counter() - t) / calls)
    return statistics.median(out) * 1e6


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default="evaluation")
    args = ap.parse_args()
    rows = []
    warnings.simplefilter("ignore")
    for data, formula in MODELS:
        df = sm.datasets.load(data)
        for ordering in ("auto", "blocked", "natural"):
            try:
                m = sm.lmer(formula, df, ordering=ordering)
            except sm.SparseMixedError:
                continue
            th = np.asarray(m.theta0, dtype=float)
            eng = m.engine
            with one_blas_thread():
                crit = per_call(lambda: eng.criterion(eng.solve(th), True))
                both = per_call(lambda: (lambda s: (eng.criterion(s, True), eng.gradient(s, True)))(eng.solve(th)))
            rows.append((f"{data}: `{formula}`", m.q, ordering, m.factor.ordering, crit, both))
    lines = [f"# One evaluation by engine ({time.strftime('%Y-%m-%d')})", "",
             "Command: `python benchmarks/evaluation.py`", "", machine_info(with_r=False), "",
             "| model | q | ordering= | factor | criterion us | criterion + gradient us |",
             "|---|---|---|---|---|---|"]
    lines += [f"| {a} | {q} | {o} | {f} | {c:.1f} | {b:.1f} |" for a, q, o, f, c, b in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    out = HERE / "results" / f"{time.strftime('%Y-%m-%d')}-{args.out}.md"
    out.write_text(text)
    print(f"written {out}")


if __name__ == "__main__":
    main()
