"""``python -m sparsemixed.demo``: fit sleepstudy and InstEval from the bundled data."""
from __future__ import annotations

import time

from . import datasets, lmer


def main() -> None:
    for name, formula in [
        ("sleepstudy", "Reaction ~ Days + (Days | Subject)"),
        ("InstEval", "y ~ 1 + service + (1 | s) + (1 | d) + (1 | dept:service)"),
    ]:
        data = datasets.load(name)
        t0 = time.perf_counter()
        model = lmer(formula, data)
        t1 = time.perf_counter()
        result = model.fit()
        t2 = time.perf_counter()
        print("=" * 78)
        print(f"{name}: {len(data):,} rows, q = {model.q:,} random effects")
        print(result.summary())
        print(f"\ntime: {t1 - t0:.3f} s to build (cross-products, analysis), {t2 - t1:.3f} s to fit "
              f"({result.optsummary.feval} evaluations, {result.optsummary.method})")


if __name__ == "__main__":
    main()
