"""Scale benchmark: sparsemixed on MovieLens-32M-shaped synthetic data (benchmarks/movielens.py).

    python benchmarks/scale.py                       # the 1M case, with lme4
    python benchmarks/scale.py --cases 1M,10M,mc50_uc80,full --timeout 14400
    python benchmarks/scale.py --cases 1M,mc2000_uc2000 --lme4 1M,mc2000_uc2000
                                                     # any mc<M>_uc<U> subset of the ml-32m shape

Cases (``CASES``; ``mc<M>_uc<U>`` is parsed for any subset):

* ``1M``   1,000,000 rows on 20,000 users x 2,000 items, ``y ~ x + (1|user) + (1|item)``,
           lme4 timed on the same table in the same run (benchmarks/lme4_scale.R);
* ``10M``  10,000,000 rows on 200,000 users x 20,000 items, same model;
* ``mc50_uc80``, ``full``  MixedModels.jl's subsets of ml-32m (``full`` = every rating),
           ``y ~ 1 + (1|user) + (1|movie)``, its published figures beside ours.

Every case runs in a fresh subprocess under ``/usr/bin/time -v`` (peak RSS) and is killed
after ``--timeout`` seconds.  All fits are ML (REML=False), as MixedModels.jl's.  The table
is printed and written to benchmarks/results/<YYYY-MM-DD>-scale.md.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time

import numpy as np

from common import ROOT, machine_info, md_table, measured, result_path

sys.path.insert(0, str(ROOT / "benchmarks"))
import movielens  # noqa: E402

ROWS_FORMULA = "y ~ x + (1|user) + (1|item)"
ML_FORMULA = "y ~ 1 + (1|user) + (1|movie)"
CASES = {
    "1M": dict(rows=1_000_000, users=20_000, items=2_000, lme4=True),
    "10M": dict(rows=10_000_000, users=200_000, items=20_000, lme4=False),
    "mc50_uc80": dict(mc=50, uc=80, lme4=False),
    "full": dict(mc=1, uc=1, lme4=False),
}
EVAL_BUDGET_S = 3.0      # time the criterion up to 20 times or until this many seconds
GRADIENT_TIMING_MAX_MS = 60_000   # above this per evaluation the gradient is not timed (a selected inverse
                                  # of a huge CHOLMOD factor costs several factorizations and its memory)
PROJECTED_EVALS = 22     # --one-eval: evaluations assumed for the projected fit time (mc50_uc80's, measured)


def case_spec(name: str) -> dict:
    if name in CASES:
        spec = dict(CASES[name])
    else:
        m = re.fullmatch(r"mc(\d+)_uc(\d+)", name)
        if not m:
            raise SystemExit(f"unknown case {name!r}: {', '.join(CASES)} or mc<M>_uc<U>")
        spec = dict(mc=int(m.group(1)), uc=int(m.group(2)), lme4=False)
    spec["formula"] = ROWS_FORMULA if "rows" in spec else ML_FORMULA
    return spec


def _generate(spec: dict, seed: int, cache: bool):
    kw = {k: spec[k] for k in ("rows", "users", "items", "mc", "uc") if k in spec}
    return movielens.generate(seed=seed, cache=cache, **kw)


# -- the measured work, in a child process --------------------------------------------------
def _timed(f, budget=EVAL_BUDGET_S, n_max=20, n_min=3):
    """Median ms of up to n_max calls, at least n_min unless one call alone exceeds
    10 x budget (a 30 s evaluation is timed once)."""
    times = []
    start = time.perf_counter()
    while len(times) < n_max and (len(times) < n_min or time.perf_counter() - start < budget):
        if times and time.perf_counter() - start > 10 * budget:
            break
        t0 = time.perf_counter()
        f()
        times.append(time.perf_counter() - t0)
    return 1000 * statistics.median(times), len(times)


def worker(name: str, seed: int, cache: bool, build_only: bool = False, one_eval: bool = False,
           memory_limit: str | None = None) -> dict:
    import warnings

    import sparsemixed as sm

    spec = case_spec(name)
    out = dict(case=name, formula=spec["formula"])
    t0 = time.perf_counter()
    df = _generate(spec, seed, cache)
    out["generate"] = time.perf_counter() - t0
    rep = df.attrs["report"]
    out["gen_report"] = {k: v for k, v in rep.items() if k != "spec"}
    out["cached"] = bool(rep.get("from_cache"))
    out["graph_cached"] = bool(rep.get("graph_from_cache"))
    out["rows"] = len(df)
    other = "item" if "item" in df else "movie"
    out["levels"] = {"user": int(df["user"].max()) + 1, other: int(df[other].max()) + 1}
    try:
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", sm.CostWarning)
            model = sm.lmer(spec["formula"], df, REML=False, memory_limit=memory_limit)
        out["build"] = time.perf_counter() - t0
        out["warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught
                           if issubclass(w.category, sm.SparseMixedWarning)]
        out["ordering"] = model.factor.ordering
        out["q"] = int(model.q)
        out["nnz_L"] = int(model.ordering_table.get(model.factor.ordering, (None, None))[1] or 0) or None
        out["ordering_table"] = {k: v[1] for k, v in model.ordering_table.items()}
        out["flops"] = model.ordering_table.get(model.factor.ordering, (None, None, None))[2]
        if build_only:
            out["status"] = "built (--build-only): not fitted"
            return out
        if one_eval:      # one criterion evaluation where the fit would start
            start, _ = model.moment_start()
            t0 = time.perf_counter()
            model.objective(start)
            out["eval_ms"], out["n_eval"] = 1000 * (time.perf_counter() - t0), 1
            proj = PROJECTED_EVALS * out["eval_ms"] / 1000
            out["status"] = (f"built + 1 evaluation (--one-eval): not fitted; at {PROJECTED_EVALS} "
                             f"evaluations (mc50_uc80's count) the fit would take ~{(out['build'] + proj) / 3600:.1f} h")
            return out
        t0 = time.perf_counter()
        res = model.fit()
        out["fit"] = time.perf_counter() - t0
    except (sm.MemoryLimitError, MemoryError) as e:
        out["refused"] = f"{type(e).__name__}: {e}"
        return out
    theta = np.asarray(res.theta, dtype=float)
    out["eval_ms"], out["n_eval"] = _timed(lambda: model.objective(theta))
    if out["eval_ms"] < GRADIENT_TIMING_MAX_MS:
        out["grad_ms"], out["n_grad"] = _timed(lambda: model.objective_and_gradient(theta))
    out.update(evals=int(res.optsummary.feval), gevals=int(res.optsummary.geval),
               method=res.optsummary.method, total=out["build"] + out["fit"],
               objective=float(res.objective), theta=theta.tolist(), sigma=float(res.sigma),
               fixef={k: float(v) for k, v in res.fixef.items()},
               sd={t.name: float(res.sigma * th) for t, th in zip(model.terms, theta)})
    return out


def export_csv(name: str, seed: int, cache: bool, path: str) -> dict:
    df = _generate(case_spec(name), seed, cache)
    df.to_csv(path, index=False)
    return {"rows": len(df), "path": path}


# -- the parent -------------------------------------------------------------------------------
def run_case(name: str, seed: int, cache: bool, timeout: float | None, build_only: bool = False,
             one_eval: bool = False, memory_limit: str | None = None) -> dict:
    arg = json.dumps({"case": name, "seed": seed, "cache": cache, "build_only": build_only, "one_eval": one_eval,
                      "memory_limit": memory_limit})
    return measured([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--worker", arg], timeout)


def run_lme4(name: str, seed: int, cache: bool, timeout: float | None) -> dict:
    spec = case_spec(name)
    with tempfile.TemporaryDirectory() as td:
        csv = os.path.join(td, f"{name}.csv")
        arg = json.dumps({"case": name, "seed": seed, "cache": cache, "path": csv})
        r = measured([sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--export", arg], timeout)
        if "error" in r:
            return {"error": "export: " + r["error"]}
        return measured(["Rscript", str(ROOT / "benchmarks" / "lme4_scale.R"), csv, spec["formula"]], timeout)


HEADERS = ["case", "engine", "rows", "levels", "generate s", "build s", "ordering", "nnz(L)",
           "ms / evaluation", "ms / eval + gradient", "evaluations", "fit s", "total s",
           "process CPU s", "peak RSS MB", "objective", "status"]


def _levels(r: dict) -> str:
    lv = r.get("levels")
    return " x ".join(f"{v:,}" for v in lv.values()) if isinstance(lv, dict) else "–"


def row_ours(name: str, r: dict) -> list:
    status = (r.get("error") or (r.get("refused") and "refused: " + r["refused"].split(" Options:")[0])
              or r.get("status") or "ok")
    gen = r.get("generate")
    gen_s = None if gen is None else (f"{gen:.2f} (cache)" if r.get("cached") else
                                      f"{gen:.2f} (graph cached)" if r.get("graph_cached") else float(gen))
    evals = None if "evals" not in r else f"{r['evals']}" + (f" ({r['gevals']} grad)" if r.get("gevals") else "")
    return [name, "sparsemixed" + (f" {r['method']}" if r.get("method") else ""), r.get("rows"), _levels(r),
            gen_s, r.get("build"), r.get("ordering"), r.get("nnz_L"), r.get("eval_ms"), r.get("grad_ms"),
            evals, r.get("fit"), r.get("total"), r.get("cpu"), r.get("rss_mb"),
            None if r.get("objective") is None else f"{r['objective']:.4f}", status]


def row_lme4(name: str, r: dict) -> list:
    status = r.get("error") or "ok"
    lv = r.get("levels")
    return [name, f"lme4 ({r['optimizer']})" if r.get("optimizer") else "lme4", r.get("rows"),
            " x ".join(f"{v:,}" for v in lv) if lv else "–", None, r.get("build"), "CHOLMOD (lme4)",
            r.get("nnz_L"), r.get("eval_ms"), None, r.get("evals"), r.get("fit"), r.get("total"),
            r.get("cpu"), r.get("rss_mb"), None if r.get("objective") is None else f"{r['objective']:.4f}", status]


def row_published(name: str, p: dict) -> list:
    return [name, "MixedModels.jl (published)", p["nratings"], f"{p['nusers']:,} x {p['nmvie']:,}", None,
            None, "blocked (dense L[2,2])", f"L22 {p['L22sz']:.1f} GiB, model {p['modelsz']:.1f} GiB",
            1000 * p["evtime"], None, p["nv"], p["fittime"], None, None, None, None,
            "8 threads, MKL, 96 GiB desktop; real ratings"]


def published_for(spec: dict) -> dict | None:
    if "mc" not in spec:
        return None
    return movielens.published_row(spec["mc"], max(spec["uc"], 20))   # every ml-32m user has >= 20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="1M", help="comma-separated: " + ", ".join(CASES) + ", mc<M>_uc<U>")
    ap.add_argument("--timeout", type=float, default=None, help="seconds per case (default: none)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-cache", action="store_true",
                    help="generate every table afresh (default: reuse benchmarks/.cache/)")
    ap.add_argument("--lme4", default=None,
                    help="comma-separated cases to time lme4 on too (default: those of CASES with lme4, i.e. 1M)")
    ap.add_argument("--no-r", action="store_true", help="do not run lme4")
    ap.add_argument("--suffix", default=None,
                    help="results file benchmarks/results/<date>-<suffix>.md (default: scale, or scale-build)")
    ap.add_argument("--build-only", action="store_true",
                    help="build the models (ordering, factor size and flops, warnings, peak RSS) without fitting")
    ap.add_argument("--one-eval", action="store_true",
                    help="build, then time one criterion evaluation at the fit's start and project the fit "
                         "time (for shapes whose fit would take hours)")
    ap.add_argument("--memory-limit", default=None,
                    help="sm.lmer's memory_limit (e.g. 21GB; default: 80%% of the available memory)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--export", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        s = json.loads(args.worker)
        print(json.dumps(worker(s["case"], s["seed"], s["cache"], s.get("build_only", False),
                                s.get("one_eval", False), s.get("memory_limit"))))
        return
    if args.export:
        s = json.loads(args.export)
        print(json.dumps(export_csv(s["case"], s["seed"], s["cache"], s["path"])))
        return

    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    specs = {c: case_spec(c) for c in cases}
    if args.lme4 is not None:
        lme4_cases = {c.strip() for c in args.lme4.split(",") if c.strip()}
        for c, sp in specs.items():
            sp["lme4"] = c in lme4_cases
    with_r = not args.no_r and shutil.which("Rscript") is not None and any(s["lme4"] for s in specs.values())
    info = machine_info(with_r)
    cache = not args.no_cache
    rows, gen_rows, notes, results = [], [], [], {}
    if not with_r and not args.no_r and any(s["lme4"] for s in specs.values()):
        notes.append("**lme4 not measured:** `Rscript` was not found (install it with `make rdeps`).")
        print("Rscript not found: lme4 is not measured (make rdeps installs it)", file=sys.stderr)
    for name, spec in specs.items():
        print(f"{name}: sparsemixed ...", file=sys.stderr, flush=True)
        r = run_case(name, args.seed, cache, args.timeout, args.build_only, args.one_eval, args.memory_limit)
        results[name] = {"sparsemixed": r}
        rows.append(row_ours(name, r))
        if "error" in r:
            print(f"  {r['error']}", file=sys.stderr)
        if r.get("warnings"):
            notes.append(f"**{name}** (sparsemixed's warnings while building): " + "; ".join(r["warnings"]))
        if spec["lme4"] and with_r and not (args.build_only or args.one_eval):
            print(f"{name}: lme4 ...", file=sys.stderr, flush=True)
            l = run_lme4(name, args.seed, cache, args.timeout)
            results[name]["lme4"] = l
            rows.append(row_lme4(name, l))
            if "error" not in r and "error" not in l and "total" in r and "total" in l:
                notes.append(
                    f"**{name}, lme4 / sparsemixed:** total {l['total'] / r['total']:.1f}x, fit "
                    f"{l['fit'] / r['fit']:.1f}x, per evaluation {l['eval_ms'] / r['eval_ms']:.1f}x, build "
                    f"{l['build'] / r['build']:.1f}x, peak RSS {l['rss_mb'] / r['rss_mb']:.1f}x; objective "
                    f"(sparsemixed - lme4) {r['objective'] - l['objective']:.3g}; sigma "
                    f"{r['sigma']:.4f} vs {l['sigma']:.4f}.")
        pub = published_for(spec)
        if pub:
            rows.append(row_published(name, pub))
        g = r.get("gen_report")
        if g:
            true = movielens.DEFAULTS
            est = ", ".join(f"sd({k}) {v:.3f}" for k, v in r.get("sd", {}).items())
            gen_rows.append([
                name, g["edges_requested"],
                f"{g['duplicates_initial']:,} (expected {g['duplicates_expected']:,})"
                if "duplicates_expected" in g else g["duplicates_initial"], g["max_multiplicity_initial"],
                g["swaps"], g["rounds"], g["duplicates_after"], f"{g['l1_user']:,} / {g['l1_movie']:,}",
                g.get("seconds"),
                "–" if not g.get("published") else
                f"{g['published']['rows']:,} / {g['published']['users']:,} / {g['published']['movies']:,}",
                f"{g['rows']:,} / {g['users']:,} / {g.get('movies', g.get('items')):,}",
                (f"{est}, sigma {r['sigma']:.3f} (true {true['sd_user']}, {true['sd_movie']}, {true['sigma']})"
                 if "sigma" in r else "–")])
        print(md_table(HEADERS, [rw for rw in rows if rw[0] == name]), file=sys.stderr, flush=True)

    table = md_table(HEADERS, rows)
    subs = [f"{name}: {r['sparsemixed']['gen_report']['subset_duplicates_expected']:,}"
            for name, r in results.items() if "subset_duplicates_expected" in r["sparsemixed"].get("gen_report", {})]
    gen_table = md_table(
        ["case", "graph edges", "duplicates (configuration model)", "max multiplicity", "swaps", "rounds",
         "duplicates left", "degree L1 change users / movies", "graph s",
         "MixedModels.jl rows / users / movies", "ours rows / users / movies", "estimates (true)"],
        gen_rows)
    gen_table += (
        "\n\nMovieLens subsets are the (mc, uc) filter applied to the full synthetic graph (which has "
        "the exact ml-32m degrees), so they are simple and their degrees are what the filter leaves; "
        "the duplicate columns describe the full graph."
        + (" Pairing a subset's own degrees afresh would give about " + "; ".join(subs)
           + " duplicates to rewire (configuration-model expectation)." if subs else ""))
    suffix = args.suffix or ("scale-build" if args.build_only else "scale-one-eval" if args.one_eval else "scale")
    print(table)
    for s in notes:
        print("\n" + s)
    print("\n" + gen_table)
    loads = ", ".join(f"{c} {v['sparsemixed'].get('load', float('nan')):.2f}" for c, v in results.items())
    text = (
        f"# Scale benchmark {result_path(suffix).stem}\n\n"
        f"Command: `python benchmarks/scale.py --cases {','.join(cases)}"
        + (f" --lme4 {args.lme4}" if args.lme4 is not None else "")
        + (" --no-r" if args.no_r else "") + (" --no-cache" if args.no_cache else "")
        + (" --build-only" if args.build_only else "") + (" --one-eval" if args.one_eval else "")
        + (f" --memory-limit {args.memory_limit}" if args.memory_limit else "") + (f" --suffix {args.suffix}" if args.suffix else "")
        + (f" --timeout {args.timeout:.0f}" if args.timeout else "") + "`\n\n"
        f"## Machine\n\n{info}\n\n## Results\n\n{table}\n\n"
        + "".join(s + "\n\n" for s in notes)
        + f"## Generated data\n\n{gen_table}\n\n## Notes\n\n"
        "- models: `" + ROWS_FORMULA + "` (rows cases), `" + ML_FORMULA + "` (MovieLens shape), ML.\n"
        "- generate: `benchmarks/movielens.py` (configuration model + rewiring to a simple graph, "
        "ratings from the crossed model); '(cache)' = read from benchmarks/.cache/.\n"
        "- build: `sm.lmer(...)` (model frame, cross-products, ordering choice, symbolic analysis, "
        "first factorization); lme4: `lFormula()` + `mkLmerDevfun()`.\n"
        "- nnz(L): entries of the chosen factor (blocked: q1 + q2 (q2 + 1) / 2, the dense Schur "
        "block); lme4: nnz of its CHOLMOD factor.\n"
        "- ms / evaluation: median of up to 20 calls of `model.objective(theta)` at the optimum "
        f"(at least 3, stopping after {EVAL_BUDGET_S:.0f} s); with gradient: "
        "`model.objective_and_gradient(theta)` (not timed when an evaluation takes over "
        f"{GRADIENT_TIMING_MAX_MS // 1000} s); lme4: its devfun.\n"
        "- evaluations: `optsummary.feval` (L-BFGS-B: criterion + gradient evaluations).\n"
        "- fit: `model.fit()`; total = build + fit; lme4: elapsed `lmer()` - build.\n"
        "- process CPU s: user + system time of the case's process (`/usr/bin/time -v`); on a "
        "loaded machine it is steadier than the wall-clock columns. peak RSS: maximum resident "
        "set of that process, data generation included (lme4: the CSV read too).\n"
        "- MixedModels.jl rows: its published sizespeed table on the *real* ml-32m subsets "
        "(`benchmarks/data/mixedmodels_jl_ml32m_sizespeed.csv`), fit time and time per "
        "evaluation (BOBYQA), on other hardware.\n"
        f"- 1-min load average as each case started: {loads}.\n"
        "\n<details><summary>raw JSON</summary>\n\n```json\n"
        + json.dumps(results, indent=1, default=str) + "\n```\n</details>\n")
    path = result_path(suffix)
    path.write_text(text)
    print(f"\nwritten to {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
