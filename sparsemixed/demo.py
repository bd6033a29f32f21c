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
        if name == "sleepstudy":
            _save_plots(result)
    print("\n(The numba kernels were compiled at install time by `python -m sparsemixed.precompile`, "
          "which `make` runs; without it the first fit compiles them: benchmarks/results/2026-12-06-first-fit.md.)")


def _save_plots(result) -> None:
    """The lecture's sleepstudy figure and a caterpillar plot, as PNG in the current directory."""
    try:
        from . import plots
    except ImportError:
        return
    try:
        plots.group_panels(result, "Days").savefig("sleepstudy_panels.png", dpi=90)
        plots.caterpillar(result).savefig("sleepstudy_caterpillar.png", dpi=90)
    except ImportError as exc:            # matplotlib not installed
        print(f"(no plots: {exc})")
        return
    print("\nplots saved: sleepstudy_panels.png (data, subject lines, population line), "
          "sleepstudy_caterpillar.png (conditional modes with 95% intervals)")


if __name__ == "__main__":
    main()
