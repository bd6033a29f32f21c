"""EM steps before the gradient search (start.em_start) on and off, the same fits side by side.

    python benchmarks/em_start.py [--seeds 1,2,3] [--slopes] [--suffix NAME]

Cases: every model of ``lme4_agreement.py --large`` with a vector-valued term (20,000-60,000
rows, 300-3,000 x 20-400 crossed levels; data sets drawn by its ``draw_large`` from each seed),
and with ``--slopes`` the peer benchmark's crossed correlated slopes (2,000 x 400 levels,
200,000 rows) and its kb07-sized design.  Each model is built once and fitted with
``FitControl(em_start=True)`` (the default) and ``em_start=False`` (the search from lme4's
start in scaled units, as before), alternating; the table gives evaluations (EM steps
included), seconds and the criterion of each, and the totals.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from common import machine_info, md_table, result_path
from lme4_agreement import LARGE_FORMS, draw_large

import sparsemixed as sm
from sparsemixed.fitting import FitControl


def cases(seeds, slopes: bool):
    for seed in seeds:
        rng = np.random.default_rng(seed)
        for i in range(16):
            d = draw_large(rng)
            f = LARGE_FORMS[i % len(LARGE_FORMS)]
            if "x|" in f.replace(" ", "") or "f|" in f.replace(" ", ""):
                yield f"seed {seed}, data set {i}", f, d
    if slopes:
        from peers import SLOPES_FORMULA, simulate_slopes

        yield "kb07-sized slopes", SLOPES_FORMULA, simulate_slopes(56, 32, 32, 2)
        yield "crossed slopes 2,000 x 400", SLOPES_FORMULA, simulate_slopes(2000, 400, 100)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--slopes", action="store_true")
    ap.add_argument("--suffix", default="em-start")
    args = ap.parse_args()
    rows, tot = [], {True: [0, 0.0], False: [0, 0.0]}
    for name, formula, d in cases([int(s) for s in args.seeds.split(",")], args.slopes):
        m = sm.lmer(formula, d)
        out = {}
        for em in (True, False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                t0 = time.perf_counter()
                r = m.fit(control=FitControl(em_start=em))
                out[em] = (r.optsummary.feval, time.perf_counter() - t0, r.objective, len(r.optsummary.em_start))
            tot[em][0] += out[em][0]
            tot[em][1] += out[em][1]
        rows.append([name, formula.replace("|", "\\|"), len(d), out[True][3], out[True][0], out[False][0],
                     f"{out[True][1]:.2f}", f"{out[False][1]:.2f}", f"{out[True][2] - out[False][2]:.2g}"])
        print(" | ".join(map(str, rows[-1])), flush=True)
    rows.append(["total", "", "", "", tot[True][0], tot[False][0], f"{tot[True][1]:.1f}", f"{tot[False][1]:.1f}", ""])
    table = md_table(["case", "formula", "rows", "EM steps", "evaluations (EM)", "evaluations (no EM)",
                      "s (EM)", "s (no EM)", "criterion EM - no EM"], rows)
    text = (f"# EM steps before the gradient search ({args.suffix})\n\n"
            f"Command: `python benchmarks/em_start.py --seeds {args.seeds}{' --slopes' if args.slopes else ''}`\n\n"
            f"{machine_info(with_r=False)}\n\n{table}\n")
    path = result_path(args.suffix)
    path.write_text(text)
    print(table)
    print(f"written to {path}")


if __name__ == "__main__":
    main()
