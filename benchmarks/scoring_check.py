"""The default "scoring" fit against BOBYQA run tight and L-BFGS-B, on random unbalanced designs.

    python benchmarks/scoring_check.py [--seed 21] [--datasets 66] [--ordering natural]

lme4_agreement.py's random designs (its ``draw`` and ``FORMS``: crossed, nested, correlated
and uncorrelated slopes, factor-valued slopes, many singular fits), fitted by REML and by ML
with the sparse factor forced (``ordering="natural"``; left to itself, most of these small
models take the small engine, whose default is L-BFGS-B).  Each fit's criterion is compared
with the lower of BOBYQA run to ftol 1e-12 (``polish=False``) and L-BFGS-B; the table lists
every fit where scoring ends above that by more than 1e-6 relative, and counts the fits that
scoring finished alone and those it handed to L-BFGS-B (``optsummary.handoff``).
No R needed.
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from common import machine_info, md_table, result_path
from lme4_agreement import FORMS, draw


def main() -> None:
    import sparsemixed as sm

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--datasets", type=int, default=66)
    ap.add_argument("--ordering", default="natural")
    ap.add_argument("--suffix", default=None)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    rows, fits, above, alone, handed, evals, worst = [], 0, 0, 0, 0, [], 0.0
    t0 = time.perf_counter()
    for i in range(args.datasets):
        d = draw(rng)
        form = FORMS[i % len(FORMS)]
        for reml in (True, False):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    m = sm.lmer(form, d, REML=reml, ordering=args.ordering)
                    r = m.fit()
                    tight = m.fit(optimizer="bobyqa", ftol_abs=1e-12, xtol_abs=1e-10,
                                  control=sm.FitControl(polish=False))
                    lb = m.fit(optimizer="lbfgsb")
                except sm.SparseMixedError as e:
                    rows.append([f"{i}-{'REML' if reml else 'ML'}", form.replace("|", "\\|"), len(d), "refused",
                                 "", "", str(e)[:80].replace("|", "\\|")])
                    continue
            fits += 1
            best = min(tight.objective, lb.objective)
            rel = (r.objective - best) / max(1.0, abs(best))
            worst = max(worst, rel)
            o = r.optsummary
            handed += bool(o.handoff)
            alone += not o.handoff
            evals.append(o.feval)
            if rel > 1e-6:
                above += 1
                rows.append([f"{i}-{'REML' if reml else 'ML'}", form.replace("|", "\\|"), len(d), f"{rel:.3g}",
                             o.feval, o.handoff or o.returnvalue, ""])
    secs = time.perf_counter() - t0
    summary = (f"{fits} fits ({args.datasets} data sets x REML/ML, seed {args.seed}, ordering={args.ordering!r}): "
               f"scoring above the lower of tight BOBYQA and L-BFGS-B by more than 1e-6 relative in **{above}** "
               f"(worst {worst:.2g} relative); scoring alone {alone}, handed to L-BFGS-B {handed}; "
               f"evaluations median {np.median(evals):.0f}, max {max(evals)}; {secs:.0f} s in all.")
    table = md_table(["fit", "formula", "rows", "scoring - best (rel.)", "evaluations", "stop", "note"], rows) \
        if rows else "(no fit above, none refused)"
    out = result_path(args.suffix or f"scoring-check-{args.seed}")
    cmd = f"python benchmarks/scoring_check.py --seed {args.seed} --datasets {args.datasets} --ordering {args.ordering}"
    out.write_text(f"# scoring against tight BOBYQA and L-BFGS-B ({out.stem})\n\nCommand: `{cmd}`\n\n"
                   f"{machine_info()}\n\n{summary}\n\n{table}\n")
    print(summary)
    print(f"written to {out}")


if __name__ == "__main__":
    main()
