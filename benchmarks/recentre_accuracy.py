"""Accuracy of fits with a random-slope covariate far from 0 (issue 20; sparsemixed/recentre.py).

    python benchmarks/recentre_accuracy.py

sleepstudy ``Reaction ~ Days + (Days | Subject)`` with Days + c for c from 10 to 1e7 (and
-1e6): the REML criterion, the fixed slope, sigma and the subjects' slope modes minus those
of the fit of Days itself (the same model: the differences are the optimizer's tolerance),
the evaluations, and the warnings raised.  Prints a Markdown table; no timing.
"""
from __future__ import annotations

import warnings

import numpy as np

import sparsemixed as sm

F = "Reaction ~ Days + (Days | Subject)"


def main() -> None:
    d = sm.datasets.load("sleepstudy")
    base = sm.lmer(F, d).fit()
    print("| c | criterion - base | slope - base | sigma / base - 1 | max abs slope-mode diff | evaluations | warnings |")
    print("|---|---|---|---|---|---|---|")
    for c in (1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, -1e6):
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            r = sm.lmer(F, d.assign(Days=d["Days"] + c)).fit()
        dm = np.abs(r.ranef["Subject"]["Days"].to_numpy() - base.ranef["Subject"]["Days"].to_numpy()).max()
        print(f"| {c:.0e} | {r.objective - base.objective:+.1e} | {r.fixef['Days'] - base.fixef['Days']:+.1e} "
              f"| {r.sigma / base.sigma - 1:+.1e} | {dm:.1e} | {r.optsummary.feval} "
              f"| {', '.join(sorted({x.category.__name__ for x in w})) or '-'} |")


if __name__ == "__main__":
    main()
