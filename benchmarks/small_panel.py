"""Small-model panel: build + fit time of sparsemixed against lme4 on ~40 models people fit.

    python benchmarks/small_panel.py                       # every model of benchmarks/panel.tsv
    python benchmarks/small_panel.py --load 2              # with two busy processes beside it
    python benchmarks/small_panel.py --models sleepstudy_slopes,penicillin --reps 5
    python benchmarks/small_panel.py --no-r                # sparsemixed only

The panel (`benchmarks/panel.tsv`: name, dataset, formula, REML, what) holds linear mixed
models on data sets of R's lme4, nlme, mlmRev, MASS and datasets packages. Their columns are
exported to `benchmarks/.cache/panel/` by `benchmarks/panel_export.R`, run here when a file
is missing. All data sets are read into memory first (pandas DataFrames, R factors as
categoricals; in R data.frames); then, model by model:

* sparsemixed: `sm.lmer(formula, df, REML=...).fit()`, timed in this process;
* lme4: `lmer(formula, d, REML = ...)`, timed inside one long-running Rscript
  (`benchmarks/panel_lme4.R`) that is sent the model's name over stdin, so R's start-up and
  its CSV reading are not counted.

The two alternate fit by fit (sparsemixed then lme4, then lme4 then sparsemixed, ...), so
that machine load falls on both alike. Each model is fitted at least `--reps` times by each
(default 3) and more, up to `--max-reps` (10), while one round of both takes under
`--target` seconds (1) in all; the table gives the best time of each. One fit of the first
model by each, untimed, comes before (imports, numba's cached kernels, R's first call).

`--load N` starts N busy processes (`python -c "while True: pass"`) for the duration of the
timings: the "busy processes beside it" condition on a 2-core machine.

Results: `benchmarks/results/<YYYY-MM-DD>-small-panel[-loadN].md` (or `--suffix`).
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import warnings

from common import ROOT, machine_info, md_table, result_path

BENCH = ROOT / "benchmarks"
PANEL = BENCH / "panel.tsv"
DATA = BENCH / ".cache" / "panel"
EXPORT_R = BENCH / "panel_export.R"
SERVER_R = BENCH / "panel_lme4.R"
R_PACKAGES = {"lme4": "r-cran-lme4", "nlme": "r-cran-nlme", "mlmRev": "r-cran-mlmrev",
              "MASS": "r-cran-mass", "jsonlite": "r-cran-jsonlite"}
REL_TOL = 1e-6      # objective differences above this (relative) are flagged


# -- the panel and its data -------------------------------------------------------------------
def read_panel(path=PANEL) -> list[dict]:
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    for r in rows:
        r["REML"] = r["REML"].strip().upper() == "TRUE"
    return rows


def data_stem(dataset: str):
    return DATA / dataset.replace("::", "_")


def ensure_data(panel: list[dict], panel_path=PANEL) -> None:
    """Run panel_export.R when a data set's CSV or factor list is missing."""
    missing = sorted({m["dataset"] for m in panel
                      if not (data_stem(m["dataset"]).with_suffix(".csv").exists()
                              and data_stem(m["dataset"]).with_suffix(".factors").exists())})
    if not missing:
        return
    if not shutil.which("Rscript"):
        raise SystemExit("the panel's data sets are exported from R packages, and Rscript was not found:\n"
                         "  apt-get install r-base-core " + " ".join(R_PACKAGES.values()))
    print(f"exporting {len(missing)} data set(s) with {EXPORT_R.relative_to(ROOT)} ...", file=sys.stderr)
    proc = subprocess.run(["Rscript", str(EXPORT_R), str(panel_path), str(DATA)], cwd=ROOT,
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"panel_export.R failed:\n{proc.stderr.strip()}")


def load_frame(dataset: str):
    """The exported data set as a DataFrame; the columns of <stem>.factors as categoricals."""
    import pandas as pd

    stem = data_stem(dataset)
    factors = stem.with_suffix(".factors").read_text().split()
    df = pd.read_csv(stem.with_suffix(".csv"), dtype={f: str for f in factors})
    for f in factors:
        df[f] = df[f].astype("category")
    return df


# -- the two engines ----------------------------------------------------------------------------
def fit_sparsemixed(m: dict, df) -> dict:
    import sparsemixed as sm

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            t0 = time.perf_counter()
            model = sm.lmer(m["formula"], df, REML=m["REML"])
            res = model.fit()
            seconds = time.perf_counter() - t0
    except Exception as e:  # a refused formula is a finding, not a crash
        return {"error": f"{type(e).__name__}: {e}"}
    notes = list(dict.fromkeys(f"{w.category.__name__}: {w.message}" for w in caught))
    return dict(seconds=seconds, objective=float(res.objective), rows=int(model.nobs), q=int(model.q),
                feval=int(res.optsummary.feval), method=str(res.optsummary.method),
                theta=[float(t) for t in res.theta], notes=notes)


class Lme4Server:
    """benchmarks/panel_lme4.R as a child process: model names in, one JSON line out each."""

    def __init__(self, panel_path=PANEL):
        self.err = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen(["Rscript", str(SERVER_R), str(panel_path), str(DATA)], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self.err,
                                     text=True, bufsize=1)
        first = self._read()
        if not first.get("ready"):
            raise RuntimeError(f"panel_lme4.R did not start: {first}")
        self.version = first.get("lme4")

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            self.err.seek(0)
            raise RuntimeError("panel_lme4.R ended:\n" + self.err.read()[-3000:])
        return json.loads(line)

    def fit(self, name: str) -> dict:
        self.proc.stdin.write(name + "\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.proc.kill()
                self.proc.wait()


def r_missing() -> list[str]:
    """R packages the panel needs that are not installed (all of them without Rscript)."""
    if not shutil.which("Rscript"):
        return list(R_PACKAGES)
    code = ("p <- c(" + ",".join(f'"{p}"' for p in R_PACKAGES) + "); "
            "cat(p[!vapply(p, requireNamespace, logical(1), quietly = TRUE)], sep = '\\n')")
    out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True)
    return out.stdout.split()


# -- timing ---------------------------------------------------------------------------------------
def time_model(m: dict, df, server: Lme4Server | None, reps: int, max_reps: int, target: float) -> dict:
    """Alternate sparsemixed and lme4 fits of one model; every run of each is kept."""
    runs = {"sparsemixed": [], "lme4": []}
    failed = {}
    n, i = reps, 0
    while i < n:
        order = ["sparsemixed", "lme4"] if i % 2 == 0 else ["lme4", "sparsemixed"]
        for tool in order:
            if tool in failed or (tool == "lme4" and server is None):
                continue
            r = fit_sparsemixed(m, df) if tool == "sparsemixed" else server.fit(m["name"])
            if "error" in r:
                failed[tool] = r
            else:
                runs[tool].append(r)
        if i == 0:
            first = [runs[t][0]["seconds"] for t in runs if runs[t]]
            if first:
                n = min(max_reps, max(reps, math.ceil(target / max(sum(first), 1e-9))))
        i += 1
    out = {}
    for tool in runs:
        if tool in failed:
            out[tool] = failed[tool]
        elif runs[tool]:
            times = [r["seconds"] for r in runs[tool]]
            best = dict(runs[tool][-1])
            best.update(seconds=min(times), median=statistics.median(times), reps=len(times), times=times)
            out[tool] = best
    return out


# -- report -----------------------------------------------------------------------------------------
HEADERS = ["model", "rows", "q", "fit", "sparsemixed ms", "lme4 ms", "lme4 / sparsemixed",
           "sparsemixed objective", "lme4 objective", "difference", "sparsemixed evaluations",
           "lme4 evaluations"]


def _ms(r: dict | None):
    if r is None:
        return "–"
    return f"error: {r['error'][:120]}" if "error" in r else f"{1000 * r['seconds']:.1f}"


def table_rows(panel: list[dict], results: dict) -> list[list]:
    rows = []
    for m in panel:
        s, l = results[m["name"]].get("sparsemixed"), results[m["name"]].get("lme4")
        ok_s, ok_l = s is not None and "error" not in s, l is not None and "error" not in l
        ratio = f"{l['seconds'] / s['seconds']:.2f}" if ok_s and ok_l else "–"
        diff = f"{s['objective'] - l['objective']:.2e}" if ok_s and ok_l else "–"
        src = s if ok_s else l if ok_l else {}
        rows.append([m["name"], src.get("rows"), src.get("q"), "REML" if m["REML"] else "ML", _ms(s), _ms(l),
                     ratio, f"{s['objective']:.6f}" if ok_s else "–", f"{l['objective']:.6f}" if ok_l else "–",
                     diff, f"{s['feval']} ({s['method']})" if ok_s else "–", l.get("feval") if ok_l else "–"])
    return rows


def summary(panel: list[dict], results: dict) -> tuple[list[str], list[str]]:
    both = [(m, results[m["name"]]["sparsemixed"], results[m["name"]]["lme4"]) for m in panel
            if "error" not in results[m["name"]].get("sparsemixed", {"error": 1})
            and "error" not in results[m["name"]].get("lme4", {"error": 1})]
    lines, findings = [], []
    if both:
        ratios = sorted(((l["seconds"] / s["seconds"], m["name"]) for m, s, l in both))
        by_name = {m["name"]: (s, l) for m, s, l in both}

        def lme4_state(name):
            s, l = by_name[name]
            notes = l.get("notes") or []
            failed = any("failed to converge" in n for n in ([notes] if isinstance(notes, str) else notes))
            d = s["objective"] - l["objective"]
            return (f"; lme4 failed to converge, sparsemixed's objective {d:+.3g}" if failed
                    else f"; objective {d:+.3g}" if abs(d) > REL_TOL * max(1.0, abs(l["objective"])) else "")

        slower = [f"{name} ({r:.2f}{lme4_state(name)})" for r, name in ratios if r < 1]
        tot_s = sum(s["seconds"] for _, s, _ in both)
        tot_l = sum(l["seconds"] for _, _, l in both)
        geo = math.exp(statistics.mean(math.log(r) for r, _ in ratios))
        lines += [
            f"- models timed by both: {len(both)} of {len(panel)}",
            f"- **median ratio lme4 / sparsemixed: {statistics.median(r for r, _ in ratios):.2f}** "
            f"(geometric mean {geo:.2f})",
            f"- **worst ratio: {ratios[0][0]:.2f} ({ratios[0][1]})**; the five lowest: "
            + ", ".join(f"{n} {r:.2f}" for r, n in ratios[:5]),
            f"- best ratio: {ratios[-1][0]:.2f} ({ratios[-1][1]})",
            f"- **models where sparsemixed is slower: {len(slower)}**" + (": " + ", ".join(slower) if slower else ""),
            f"- sum of the best times: sparsemixed {tot_s:.2f} s, lme4 {tot_l:.2f} s ({tot_l / tot_s:.2f}x)",
            "- slowest for sparsemixed: " + ", ".join(
                f"{m['name']} {1000 * s['seconds']:.0f} ms (lme4 {1000 * l['seconds']:.0f} ms)"
                for m, s, l in sorted(both, key=lambda x: -x[1]["seconds"])[:5]),
        ]
        above = [(m["name"], s["objective"] - l["objective"]) for m, s, l in both
                 if s["objective"] - l["objective"] > REL_TOL * max(1.0, abs(l["objective"]))]
        below = [(m["name"], s["objective"] - l["objective"]) for m, s, l in both
                 if l["objective"] - s["objective"] > REL_TOL * max(1.0, abs(l["objective"]))]
        lines.append(f"- objective above lme4's by more than {REL_TOL:g} relative: {len(above)}"
                     + ("".join(f"; {n} +{d:.3g}" for n, d in above)) + f"; below: {len(below)}"
                     + ("".join(f"; {n} {d:.3g}" for n, d in below)))
        for m, s, l in both:
            if s["rows"] != l["rows"] or s["q"] != l["q"]:
                findings.append(f"**{m['name']}**: rows / q differ, sparsemixed {s['rows']} / {s['q']}, "
                                f"lme4 {l['rows']} / {l['q']}")
    for m in panel:
        for tool, r in results[m["name"]].items():
            if "error" in r:
                findings.append(f"**{m['name']}** ({tool} failed): `{m['formula']}`: {r['error']}")
    return lines, findings


def warnings_table(panel: list[dict], results: dict) -> str:
    rows = []
    for m in panel:
        for tool in ("sparsemixed", "lme4"):
            r = results[m["name"]].get(tool) or {}
            notes = r.get("notes") or []
            if isinstance(notes, str):
                notes = [notes]
            if notes:
                rows.append([m["name"], tool, "; ".join(n.replace("|", "\\|").replace("\n", " ")[:200] for n in notes)])
    return md_table(["model", "engine", "warnings / messages (last timed fit)"], rows) if rows else "none"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--panel", default=str(PANEL), help="panel definition (default: benchmarks/panel.tsv)")
    ap.add_argument("--models", help="comma-separated names of the panel to run (default: all)")
    ap.add_argument("--reps", type=int, default=3, help="fits per model and engine, at least (default 3)")
    ap.add_argument("--max-reps", type=int, default=10, help="at most (default 10)")
    ap.add_argument("--target", type=float, default=1.0,
                    help="add fits, up to --max-reps, while a round of both engines takes less in all "
                         "than this many seconds (default 1)")
    ap.add_argument("--load", type=int, default=0, help="busy processes to run beside the timings (default 0)")
    ap.add_argument("--no-r", action="store_true", help="sparsemixed only")
    ap.add_argument("--suffix", help="results file benchmarks/results/<date>-<suffix>.md "
                                     "(default: small-panel, or small-panel-load<N>)")
    args = ap.parse_args()

    panel = read_panel(args.panel)
    if args.models:
        wanted = [s.strip() for s in args.models.split(",") if s.strip()]
        unknown = set(wanted) - {m["name"] for m in panel}
        if unknown:
            raise SystemExit(f"not in the panel: {', '.join(sorted(unknown))}")
        panel = [m for m in panel if m["name"] in wanted]
    missing = r_missing()
    if missing:
        raise SystemExit("the panel needs R with " + ", ".join(missing) + ":\n  apt-get install r-base-core "
                         + " ".join(R_PACKAGES[p] for p in missing if p in R_PACKAGES))
    ensure_data(panel, args.panel)
    with_r = not args.no_r
    info = machine_info(with_r)
    frames = {ds: load_frame(ds) for ds in dict.fromkeys(m["dataset"] for m in panel)}
    server = Lme4Server(args.panel) if with_r else None
    busy = []
    load_start = os.getloadavg()
    results = {}
    t_start = time.perf_counter()
    try:
        # untimed: the first fit of each engine pays its imports and first calls
        fit_sparsemixed(panel[0], frames[panel[0]["dataset"]])
        if server:
            server.fit(panel[0]["name"])
        busy = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.load)]
        if busy:
            time.sleep(1.0)
        for k, m in enumerate(panel, 1):
            results[m["name"]] = r = time_model(m, frames[m["dataset"]], server, args.reps, args.max_reps,
                                                args.target)
            s, l = r.get("sparsemixed", {}), r.get("lme4", {})
            print(f"[{k}/{len(panel)}] {m['name']:22s} sparsemixed {_ms(s)} ms, lme4 {_ms(l) if l else '–'} ms"
                  + (f", x{l['seconds'] / s['seconds']:.2f}" if "seconds" in s and "seconds" in l else ""),
                  file=sys.stderr, flush=True)
    finally:
        load_end = os.getloadavg()
        for p in busy:
            p.kill()
            p.wait()
        if server:
            server.close()
    wall = time.perf_counter() - t_start

    table = md_table(HEADERS, table_rows(panel, results))
    lines, findings = summary(panel, results)
    print(table)
    print("\n" + "\n".join(lines))
    for f in findings:
        print("\n" + f)
    suffix = args.suffix or ("small-panel" + (f"-load{args.load}" if args.load else ""))
    path = result_path(suffix)
    cmd = " ".join(["python benchmarks/small_panel.py", *sys.argv[1:]])
    defs = md_table(["model", "data set", "formula", "REML", "what"],
                    [[m["name"], f"`{m['dataset']}`", "`" + m["formula"].replace("|", "\\|") + "`", "TRUE" if m["REML"] else "FALSE",
                      m["what"].replace("|", "\\|")] for m in panel])
    raw = {name: {tool: {k: v for k, v in r.items() if k != "theta"} for tool, r in res.items()}
           for name, res in results.items()}
    text = (
        f"# Small-model panel {path.stem}\n\nCommand: `{cmd}`\n\n## Machine\n\n{info}\n"
        f"- busy processes beside the timings: {args.load}\n"
        f"- load average at the start / end of the timings (1/5/15 min): "
        + " / ".join(f"{x:.2f}" for x in load_start) + " ; " + " / ".join(f"{x:.2f}" for x in load_end)
        + f"\n- wall time of the timings: {wall:.0f} s\n\n"
        f"## Results\n\n{table}\n\n## Summary\n\n" + "\n".join(lines) + "\n\n"
        + ("## Failures and mismatches\n\n" + "\n\n".join(findings) + "\n\n" if findings else "")
        + f"## Warnings and messages\n\n{warnings_table(panel, results)}\n\n"
        f"## Panel (`benchmarks/panel.tsv`)\n\n{defs}\n\n## Notes\n\n"
        "- sparsemixed ms: best wall time of `sm.lmer(formula, df, REML=...).fit()` (build + fit; the "
        "DataFrame already in memory, factors as pandas categoricals); lme4 ms: best wall time of "
        "`lmer(formula, d, REML = ...)` in one long-running Rscript (`benchmarks/panel_lme4.R`; the "
        "data.frame already in memory, R's start-up not counted). The two alternate fit by fit; "
        f"each model at least {args.reps} and at most {args.max_reps} times by each engine "
        f"(more while a round of both takes under {args.target:g} s).\n"
        "- lme4 / sparsemixed: ratio of the best times (above 1: sparsemixed faster).\n"
        "- objective: REML criterion for REML fits, deviance (-2 log-likelihood) for ML, lme4's "
        "`REMLcrit()` / `deviance()`; difference = sparsemixed - lme4 (negative: sparsemixed lower).\n"
        "- evaluations: sparsemixed `optsummary.feval` (its optimizer in brackets); lme4 "
        "`fit@optinfo$feval` (nloptwrap's BOBYQA by default).\n"
        "- rows: rows used (incomplete rows of the model's columns dropped by both); q: random effects.\n"
        "\n<details><summary>raw JSON (every timed run)</summary>\n\n```json\n"
        + json.dumps(raw, indent=1, default=str) + "\n```\n</details>\n")
    path.write_text(text)
    print(f"\nwritten to {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
