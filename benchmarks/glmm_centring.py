"""glmer with a random slope on an uncentred covariate against the same data centred.

    python benchmarks/glmm_centring.py [--seeds 0:100,1400:1500]

For each seed of tests/test_scale_extremes._binary (``y ~ x + (x | g)``, binomial) and each
position of x's mean (raw: uniform 0..10, about 1.7 sd from 0; then 0.5, 1, 3, 6 sd), nAGQ 0
and 1: the default fit's deviance minus that of x centred in the data ("gap").  Prints, per
cell, how many fits stop more than 1e-6 above and the worst gap (recentre.GLMM_QUIET_RATIO;
results in benchmarks/results/2026-12-06-glmm-centring.md).
"""
from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import sparsemixed as sm  # noqa: E402
from test_scale_extremes import _binary  # noqa: E402

POSITIONS = [None, 0.5, 1.0, 3.0, 6.0]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0:100,1400:1500")
    args = ap.parse_args()
    seeds = [s for part in args.seeds.split(",") for s in range(*map(int, part.split(":")))]
    cells = {}
    warnings.simplefilter("ignore")
    for seed in seeds:
        d = _binary(seed)
        m, s = d.x.mean(), d.x.std()
        for nagq in (0, 1):
            ref = sm.glmer("y ~ x + (x | g)", d.assign(x=d.x - m), family="binomial", nAGQ=nagq).fit().objective
            for k in POSITIONS:
                x = d.x if k is None else d.x - m + k * s
                key = ("raw" if k is None else f"{k} sd", nagq)
                try:
                    gap = sm.glmer("y ~ x + (x | g)", d.assign(x=x), family="binomial", nAGQ=nagq).fit().objective - ref
                except Exception as exc:             # counted, with its kind
                    cells.setdefault(key, []).append(type(exc).__name__)
                    continue
                cells.setdefault(key, []).append(gap)
    print("| x's mean | nAGQ | fits > 1e-6 above | worst gap | failures |\n|---|---|---|---|---|")
    for (pos, nagq), v in cells.items():
        gaps = [g for g in v if not isinstance(g, str)]
        print(f"| {pos} | {nagq} | {sum(g > 1e-6 for g in gaps)} of {len(v)} | {max(gaps):.2g} | "
              f"{len(v) - len(gaps)} |")


if __name__ == "__main__":
    main()
