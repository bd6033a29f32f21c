"""sparsemixed.mixedlm against statsmodels' MixedLM on crossed variance components (InstEval).

    python benchmarks/statsmodels_crossed.py [--full] [--sizes 1000,2000,4000] [--timeout 900]

statsmodels writes crossed random effects as one group holding variance components:

    mixedlm("y ~ service", data.assign(one=1), groups="one",
            vc_formula={"s": "0 + C(s)", "d": "0 + C(d)"}).fit()          # REML

Both packages fit that call on row subsets of InstEval (the first N rows after a seeded
shuffle), and sparsemixed also on all 73,421 rows.  Every case runs in a fresh subprocess,
under /usr/bin/time -v when it exists (peak RSS), with a timeout; a case that times out is
reported as "> timeout".  The table is printed and written to
benchmarks/results/<YYYY-MM-DD>-statsmodels-crossed.md with the machine's description.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import numpy as np

from common import ROOT, machine_info, md_table, measured, result_path

FORMULA = "y ~ service"
VC_FORMULA = {"s": "0 + C(s)", "d": "0 + C(d)"}
SIZES = (1000, 2000, 4000)
FULL_SIZE = 8000
SEED = 2024
TIMEOUT = 900.0
PACKAGES = ("sparsemixed", "statsmodels")
HEADERS = ["rows", "levels s / d", "package", "build s", "fit s", "total s", "peak RSS MB",
           "evaluations", "log-likelihood", "variance components", "scale", "converged"]


# -- the measured work, run in a child process ---------------------------------------------
def subset(rows: int | None, seed: int):
    """The first ``rows`` rows of InstEval after a seeded shuffle (all rows for None), with
    the levels absent from the subset dropped from the categoricals, and ``one = 1``."""
    import sparsemixed

    data = sparsemixed.datasets.load("InstEval")
    if rows is not None and rows < len(data):
        order = np.random.default_rng(seed).permutation(len(data))
        data = data.iloc[order[:rows]].reset_index(drop=True)
        for c in data.select_dtypes("category"):
            data[c] = data[c].cat.remove_unused_categories()
    return data.assign(one=1)


def worker(package: str, rows: int | None, seed: int) -> dict:
    """Build and fit the model with ``package`` on the subset; never raises."""
    if package == "statsmodels":
        import statsmodels
        from statsmodels.formula.api import mixedlm
        version = statsmodels.__version__
    else:
        import sparsemixed
        from sparsemixed import mixedlm
        version = sparsemixed.__version__
    data = subset(rows, seed)
    out = dict(package=package, version=version, rows=len(data),
               levels=[int(data["s"].nunique()), int(data["d"].nunique())])
    caught = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        stage = "build"
        try:
            t0 = time.perf_counter()
            model = mixedlm(FORMULA, data, groups="one", vc_formula=VC_FORMULA)
            out["build"] = time.perf_counter() - t0
            stage = "fit"
            t0 = time.perf_counter()
            res = model.fit(reml=True)
            out["fit"] = time.perf_counter() - t0
            names = list(getattr(model, "vcomp_names", None) or model.exog_vc.names)
            out.update(llf=float(res.llf), scale=float(res.scale), converged=bool(res.converged),
                       vcomp=dict(zip(names, map(float, np.asarray(res.vcomp)))),
                       fe_params=dict(zip(res.fe_params.index, map(float, res.fe_params))))
            if hasattr(res, "optsummary"):
                out["evals"] = int(res.optsummary.feval)
        except Exception as e:  # reported, not raised: statsmodels can fail on these fits
            out["error"] = f"{stage}: {type(e).__name__}: {str(e)[:200]}"
    msgs = []
    for w in caught:
        m = f"{w.category.__name__}: {str(w.message).splitlines()[0][:160]}"
        if m not in msgs:
            msgs.append(m)
    out["warnings"] = msgs
    return out


# -- the parent: run each case in its own process ------------------------------------------
def run_case(package: str, rows: int | None, seed: int, timeout: float) -> dict:
    arg = json.dumps({"package": package, "rows": rows, "seed": seed})
    r = measured([sys.executable, str(ROOT / "benchmarks" / "statsmodels_crossed.py"), "--worker", arg],
                 timeout)
    r.setdefault("package", package)
    r.setdefault("rows", rows)
    return r


def ok(r: dict) -> bool:
    return "llf" in r


def row(r: dict, timeout: float) -> list:
    rows = r["rows"]
    levels = " / ".join(f"{v:,}" for v in r["levels"]) if "levels" in r else None
    if r.get("timeout"):
        return [rows, levels, r["package"], None, None, f"> {timeout:,.0f}", None, None,
                "> timeout", None, None, None]
    if not ok(r):
        return [rows, levels, r["package"], r.get("build"), r.get("fit"),
                r["build"] + r["fit"] if "fit" in r else None, r["rss_mb"], None,
                f"error ({r['error'][:100]})", None, None, None]
    vc = ", ".join(f"{k} {v:.4f}" for k, v in r["vcomp"].items())
    return [rows, levels, r["package"], float(r["build"]), float(r["fit"]), float(r["build"] + r["fit"]),
            r["rss_mb"], r.get("evals"), f"{r['llf']:.4f}", vc, f"{r['scale']:.4f}",
            "yes" if r["converged"] else "no"]


def comparison(results: dict, sizes, timeout: float) -> str:
    """Per subset: log-likelihoods, their difference, and the total-time ratio."""
    out = []
    for n in sizes:
        a, b = results.get(("sparsemixed", n)), results.get(("statsmodels", n))
        if a is None or b is None:
            continue
        la = f"{a['llf']:.4f}" if ok(a) else "–"
        lb = f"{b['llf']:.4f}" if ok(b) else ("> timeout" if b.get("timeout") else "error")
        diff = f"{a['llf'] - b['llf']:+.3g}" if ok(a) and ok(b) else "–"
        if ok(a) and ok(b):
            ratio = f"{(b['build'] + b['fit']) / (a['build'] + a['fit']):,.0f}x"
        elif ok(a) and b.get("timeout"):
            ratio = f"> {timeout / (a['build'] + a['fit']):,.0f}x"
        else:
            ratio = "–"
        out.append([n, la, lb, diff, ratio])
    return md_table(["rows", "llf sparsemixed", "llf statsmodels", "difference (ours - statsmodels)",
                     "total time statsmodels / sparsemixed"], out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)),
                    help="comma-separated subset sizes fitted with both packages (default %(default)s)")
    ap.add_argument("--full", action="store_true", help=f"add the {FULL_SIZE:,}-row subset (statsmodels: minutes)")
    ap.add_argument("--timeout", type=float, default=TIMEOUT, help="seconds per case (default %(default)s)")
    ap.add_argument("--seed", type=int, default=SEED, help="seed of the row shuffle (default %(default)s)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        spec = json.loads(args.worker)
        print(json.dumps(worker(spec["package"], spec["rows"], spec["seed"])))
        return

    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()} | ({FULL_SIZE} if args.full else set()))
    import statsmodels

    info = machine_info(with_r=False)  # before the cases: its load average is the machine's, not ours
    info += f"\n- statsmodels: {statsmodels.__version__}"
    shape = {}
    for n in [*sizes, None]:
        d = subset(n, args.seed)
        shape[n] = dict(rows=len(d), levels=[int(d["s"].nunique()), int(d["d"].nunique())])
    started = time.perf_counter()
    results, table_rows, loads, notes = {}, [], [], []
    cases = [(p, n) for n in sizes for p in PACKAGES] + [("sparsemixed", None)]
    for package, n in cases:
        label = f"{n:,} rows" if n else "all rows"
        print(f"{label}, {package} ...", file=sys.stderr, flush=True)
        r = run_case(package, n, args.seed, args.timeout)
        r.update(shape[n])                 # rows and levels, also for a case that failed
        results[(package, n)] = r
        table_rows.append(row(r, args.timeout))
        loads.append((f"{label} {package}", r["load"]))
        for w in r.get("warnings", []):
            notes.append(f"{label}, {package}: {w}")
        status = ("timed out" if r.get("timeout") else r["error"] if "error" in r
                  else f"{r['build'] + r['fit']:.2f} s, llf {r['llf']:.4f}")
        print(f"    {status}", file=sys.stderr, flush=True)
    elapsed = time.perf_counter() - started

    table = md_table(HEADERS, table_rows)
    comp = comparison(results, sizes, args.timeout)
    print(table + "\n\n" + comp)
    print(f"\nwall time of the run: {elapsed:,.0f} s", file=sys.stderr)

    vcf = ", ".join(f'"{k}": "{v}"' for k, v in VC_FORMULA.items())
    text_notes = (
        f"- model: `mixedlm(\"{FORMULA}\", data, groups=\"one\", vc_formula={{{vcf}}}).fit()` (REML), "
        "the same call with `statsmodels.formula.api.mixedlm` and `sparsemixed.mixedlm`, "
        "each package with its default optimizer.\n"
        f"- data: the first N rows of InstEval after a shuffle with `numpy.random.default_rng({args.seed})` "
        "(the subsets are nested); levels of s, d (and the other factors) absent from a subset "
        "are dropped from its categoricals, so `C(s)` and `C(d)` have no all-zero columns; "
        "'levels s / d' counts those present.  The last row is the whole data set, sparsemixed only.\n"
        "- build: the `mixedlm(...)` call (formula, design matrices, for sparsemixed also the "
        "sparse structures and symbolic analysis); fit: `fit()`; total: build + fit.  "
        "Data loading is not timed.\n"
        "- peak RSS: maximum resident set of the case's own process (data loading and imports included).\n"
        "- evaluations: sparsemixed's `optsummary.feval`.\n"
        "- variance components: `vcomp` (the variances of the s and d effects), scale: the residual variance.\n"
        f"- timeout {args.timeout:,.0f} s per case; a case that times out is reported as '> timeout'.\n"
        f"- wall-clock times; the whole run took {elapsed:,.0f} s; the 1-min load average as each case "
        "started: " + ", ".join(f"{c} {l:.2f}" for c, l in loads) + ".\n")
    if notes:
        text_notes += "- warnings raised:\n" + "".join(f"  - {w}\n" for w in notes)
    path = result_path("statsmodels-crossed")
    path.write_text(
        f"# Benchmarks {path.stem}\n\n## Machine\n\n{info}\n\n"
        f"## InstEval `{FORMULA}`, crossed s and d as variance components of one group, REML\n\n"
        f"{table}\n\n## Log-likelihoods (positive difference: sparsemixed found a higher optimum)\n\n"
        f"{comp}\n\n## Notes\n\n{text_notes}")
    print(f"written to {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
