"""sparsemixed against its peers: lme4, glmmTMB, mixedlm (Rust, PyPI) and statsmodels' MixedLM.

    python benchmarks/peers.py                                   # the default cases, every tool
    python benchmarks/peers.py --cases insteval,slopes,kb07 --timeout 600
    python benchmarks/peers.py --cases 1M,panel:hsb82 --tools sparsemixed,lme4
    python benchmarks/peers.py --install                         # install the missing peers first

Cases (`--cases`, comma-separated):

* `insteval`  InstEval (73,421 rows), `y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)`, REML;
* `1M`        1,000,000 rows on 20,000 users x 2,000 items (benchmarks/movielens.py, as
              scale.py's 1M case and its cache), `y ~ x + (1|user) + (1|item)`, ML;
* `slopes`    crossed correlated slopes, simulated here: 2,000 subjects x 400 items, 100 items
              per subject (200,000 rows), `y ~ 1 + x1 + c + (1 + x1 + c | subj) + (1 + c | item)`,
              x1 ~ N(0, 1), c a +-0.5 contrast, REML;
* `kb07`      the same model on a kb07-sized design: 56 subjects x 32 items, all pairs but two
              (1,790 rows), REML;
* `panel:<name>`  a model of the small-model panel (benchmarks/panel.tsv, data exported by
              benchmarks/panel_export.R).

Every (tool, case) runs in a fresh process under `--timeout` seconds (default 600; a case that
runs out is "> timeout"). Inside it the data are read first (a CSV in benchmarks/.cache/peers/
or the panel's; factors as pandas categoricals / R factors), then build + fit is timed:

* sparsemixed `sm.lmer(formula, df, REML=...).fit()`;
* lme4 `lmer(formula, d, REML = ...)`, glmmTMB `glmmTMB(formula, d, REML = ...)` (benchmarks/peers_fit.R);
* mixedlm `mixedlm.lmer(formula, df, REML=...)` (it fits on the call; version 1.3.0);
* statsmodels `smf.mixedlm(fixed, df, groups=g, re_formula="~x").fit(reml=...)`, only for
  models with one random-effects term `(... | g)`; crossed and nested models are "n/a".

A fit that took under `--repeat-below` seconds (default 5) is repeated in the same process, up
to three fits in all: the table gives the best (first fits pay imports, numba's kernel loading,
R's first calls); the first is in the raw JSON. Objectives are on lme4's scale: the REML
criterion for REML fits, the deviance (-2 log-likelihood) for ML; lme4 `REMLcrit()`/`deviance()`,
glmmTMB `-2 logLik()`, mixedlm `.deviance`, statsmodels `-2 llf` (each checked against lme4 on
sleepstudy: 1743.628 REML, 1751.939 ML).

A peer that is not installed is a column of "not installed" with the command that installs
it (`apt-get install r-cran-glmmtmb`, `pip install mixedlm==1.3.0`); `--install` runs them.
Results: benchmarks/results/<YYYY-MM-DD>-peers.md (or `--suffix`).
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
import warnings

import numpy as np

from common import ROOT, machine_info, md_table, measured, result_path

BENCH = ROOT / "benchmarks"
CACHE = BENCH / ".cache" / "peers"
FIT_R = BENCH / "peers_fit.R"
TOOLS = ("sparsemixed", "lme4", "glmmTMB", "mixedlm", "statsmodels")
MIXEDLM_VERSION = "1.3.0"
INSTALL = {
    "lme4": "apt-get install r-cran-lme4 r-cran-jsonlite",
    "glmmTMB": "apt-get install r-cran-glmmtmb",
    "mixedlm": f"pip install mixedlm=={MIXEDLM_VERSION}",
    "statsmodels": "pip install statsmodels",
}
SLOPES_FORMULA = "y ~ 1 + x1 + c + (1 + x1 + c | subj) + (1 + c | item)"
CASES = {
    "insteval": dict(formula="y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)", REML=True,
                     what="InstEval, crossed intercepts"),
    "1M": dict(formula="y ~ x + (1|user) + (1|item)", REML=False,
               what="1,000,000 rows, 20,000 x 2,000 crossed intercepts (scale.py's 1M), ML"),
    "slopes": dict(formula=SLOPES_FORMULA, REML=True, design=dict(subjects=2000, items=400, per_subject=100),
                   what="crossed correlated slopes, 2,000 subj x 400 items, 100 items per subject"),
    "kb07": dict(formula=SLOPES_FORMULA, REML=True, design=dict(subjects=56, items=32, per_subject=32, drop=2),
                 what="crossed correlated slopes, kb07-sized: 56 subj x 32 items, 2 pairs missing"),
}
DEFAULT_CASES = ("insteval,slopes,kb07,panel:sleepstudy_slopes,panel:penicillin,panel:hsb82,"
                 "panel:chem97_slopes_ml,panel:chem97_crossed,panel:egsingle_slopes")

# the simulated slopes design: fixed effects, random-effect sds and correlations, residual sd
SIM = dict(beta=(1.0, 0.3, 0.4),
           subj_sd=(0.5, 0.2, 0.3), subj_cor=((1.0, 0.3, 0.2), (0.3, 1.0, -0.2), (0.2, -0.2, 1.0)),
           item_sd=(0.4, 0.25), item_cor=((1.0, 0.4), (0.4, 1.0)), sigma=1.0)
SIM_VERSION = 1


# -- data ---------------------------------------------------------------------------------------
def simulate_slopes(subjects: int, items: int, per_subject: int, drop: int = 0, seed: int = 1):
    """y = X beta + Z_subj b_subj + Z_item b_item + e for the SLOPES_FORMULA model (pandas DataFrame).

    Each subject sees ``per_subject`` items (all of them when equal to ``items``, else a random
    sample of them: about subjects * per_subject / items subjects per item); half of each
    subject's trials have c = +0.5, half -0.5; x1 ~ N(0, 1); ``drop`` random rows are removed."""
    import pandas as pd

    rng = np.random.default_rng([seed, 18])
    if per_subject >= items:
        item_of = np.tile(np.arange(items), (subjects, 1))
    else:                       # a random sample of the items for each subject
        item_of = np.sort(np.argsort(rng.random((subjects, items)), axis=1)[:, :per_subject], axis=1)
    per = item_of.shape[1]
    subj = np.repeat(np.arange(subjects), per)
    item = item_of.ravel()
    c = np.concatenate([rng.permutation(np.r_[np.full(per // 2, -0.5), np.full(per - per // 2, 0.5)])
                        for _ in range(subjects)])
    x1 = rng.standard_normal(subj.size)

    def ranef(n, sd, cor):
        sd = np.asarray(sd)
        cov = np.asarray(cor) * np.outer(sd, sd)
        return rng.standard_normal((n, len(sd))) @ np.linalg.cholesky(cov).T

    bs = ranef(subjects, SIM["subj_sd"], SIM["subj_cor"])
    bi = ranef(items, SIM["item_sd"], SIM["item_cor"])
    b0, b1, b2 = SIM["beta"]
    y = (b0 + b1 * x1 + b2 * c + bs[subj, 0] + bs[subj, 1] * x1 + bs[subj, 2] * c
         + bi[item, 0] + bi[item, 1] * c + SIM["sigma"] * rng.standard_normal(subj.size))
    df = pd.DataFrame({"subj": [f"S{s:04d}" for s in subj], "item": [f"I{i:03d}" for i in item],
                       "x1": x1, "c": c, "y": y})
    if drop:
        df = df.drop(index=rng.choice(len(df), drop, replace=False)).reset_index(drop=True)
    return df


def case_spec(name: str) -> dict:
    """formula, REML, csv (path), factors (columns), what; writes the case's CSV when missing."""
    if name.startswith("panel:"):
        import small_panel

        model = {m["name"]: m for m in small_panel.read_panel()}.get(name[6:])
        if model is None:
            raise SystemExit(f"{name}: no model {name[6:]!r} in benchmarks/panel.tsv")
        small_panel.ensure_data([model])
        stem = small_panel.data_stem(model["dataset"])
        return dict(formula=model["formula"], REML=model["REML"], csv=stem.with_suffix(".csv"),
                    factors=stem.with_suffix(".factors").read_text().split(),
                    what=f"{model['dataset']}: {model['what']}")
    if name not in CASES:
        raise SystemExit(f"unknown case {name!r}: {', '.join(CASES)} or panel:<name>")
    spec = dict(CASES[name])
    CACHE.mkdir(parents=True, exist_ok=True)
    if name == "insteval":
        spec.update(csv=ROOT / "sparsemixed" / "datasets" / "data" / "InstEval.csv",
                    factors=["s", "d", "studage", "lectage", "service", "dept"])
    elif name == "1M":
        spec.update(csv=CACHE / "rows1000000_seed1.csv", factors=["user", "item"])
        if not spec["csv"].exists():
            import movielens

            df = movielens.generate(rows=1_000_000, users=20_000, items=2_000, seed=1, cache=True)
            df[["user", "item", "x", "y"]].to_csv(spec["csv"], index=False)
    else:
        d = spec["design"]
        spec.update(csv=CACHE / f"{name}_seed1_v{SIM_VERSION}.csv", factors=["subj", "item"])
        if not spec["csv"].exists():
            simulate_slopes(d["subjects"], d["items"], d["per_subject"], d.get("drop", 0)).to_csv(
                spec["csv"], index=False)
    return spec


def read_case(spec: dict):
    import pandas as pd

    df = pd.read_csv(spec["csv"], dtype={f: str for f in spec["factors"]})
    for f in spec["factors"]:
        df[f] = df[f].astype("category")
    return df


# -- statsmodels' form of a model -----------------------------------------------------------------
BAR = re.compile(r"\(([^()|]*?)(\|\|?)([^()|]*)\)")


def statsmodels_form(formula: str):
    """(fixed formula, groups column, re_formula) or (None, reason) when MixedLM cannot fit it
    the same way: it fits one grouping factor with a correlated covariance."""
    bars = BAR.findall(formula)
    if len(bars) != 1:
        return None, "n/a (crossed)"
    lhs, bar, group = (s.strip() for s in bars[0])
    if bar == "||" or not re.fullmatch(r"\w+", group):
        return None, "n/a (nested or uncorrelated)"
    terms = [t.strip() for t in lhs.split("+")]
    if "0" in terms or "-1" in terms:
        return None, "n/a (no random intercept)"
    fixed = BAR.sub("", formula)
    fixed = re.sub(r"\+\s*(?=\+|$)", "", fixed).strip().rstrip("+").strip()
    slopes = [t for t in terms if t != "1"]
    return (fixed, group, "~" + " + ".join(slopes) if slopes else None), None


# -- the measured work, in a child process ----------------------------------------------------------
def _fit_python(tool: str, spec: dict, df):
    """One build + fit; returns (seconds, objective, evaluations, converged, notes)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        if tool == "sparsemixed":
            import sparsemixed as sm

            t0 = time.perf_counter()
            res = sm.lmer(spec["formula"], df, REML=spec["REML"]).fit()
            seconds = time.perf_counter() - t0
            out = (float(res.objective), int(res.optsummary.feval), bool(res.converged))
        elif tool == "mixedlm":
            import mixedlm

            t0 = time.perf_counter()
            res = mixedlm.lmer(spec["formula"], df, REML=spec["REML"])
            seconds = time.perf_counter() - t0
            out = (float(res.deviance), int(getattr(res, "n_iter", 0) or 0) or None, bool(res.converged))
        elif tool == "statsmodels":
            import statsmodels.formula.api as smf

            (fixed, group, re_formula), _ = statsmodels_form(spec["formula"])
            t0 = time.perf_counter()
            res = smf.mixedlm(fixed, df, groups=group, re_formula=re_formula).fit(reml=spec["REML"])
            seconds = time.perf_counter() - t0
            out = (float(-2 * res.llf), None, bool(res.converged))
        else:
            raise ValueError(tool)
    notes = list(dict.fromkeys(f"{w.category.__name__}: {str(w.message)[:200]}" for w in caught))
    return (seconds, *out, notes)


def worker(tool: str, case: str, repeat_below: float) -> dict:
    spec = case_spec(case)
    df = read_case(spec)
    if tool == "sparsemixed":      # imports are the interpreter's start, not the fit
        import sparsemixed  # noqa: F401
    elif tool == "mixedlm":
        import mixedlm  # noqa: F401
    elif tool == "statsmodels":
        import statsmodels.formula.api  # noqa: F401
    times, first = [], None
    while True:
        seconds, objective, evals, converged, notes = _fit_python(tool, spec, df)
        times.append(seconds)
        if first is None:
            first = (objective, evals, converged, notes)
        if len(times) >= 3 or max(times) >= repeat_below:
            break
    objective, evals, converged, notes = first
    return dict(rows=len(df), seconds=min(times), first=times[0], times=times, objective=objective,
                evals=evals, converged=converged, notes=notes, version=_version(tool))


def _version(tool: str) -> str | None:
    import importlib.metadata as md

    try:
        return md.version(tool)
    except md.PackageNotFoundError:
        return None


# -- the parent -----------------------------------------------------------------------------------------
def available() -> dict:
    """tool -> None if installed, else the reason (with the install command)."""
    out = {}
    for tool in ("sparsemixed", "mixedlm", "statsmodels"):
        if importlib.util.find_spec(tool) is None:
            out[tool] = f"not installed ({INSTALL[tool]})"
        else:
            out[tool] = None
            if tool == "mixedlm" and _version(tool) != MIXEDLM_VERSION:
                print(f"note: mixedlm {_version(tool)} installed, the benchmark was written for "
                      f"{MIXEDLM_VERSION}", file=sys.stderr)
    if not shutil.which("Rscript"):
        out["lme4"] = out["glmmTMB"] = "not installed (no Rscript: apt-get install r-base-core)"
    else:
        code = ('for (p in c("lme4", "glmmTMB", "jsonlite")) '
                'cat(p, requireNamespace(p, quietly = TRUE), "\\n")')
        got = dict(l.split() for l in subprocess.run(["Rscript", "-e", code], capture_output=True,
                                                     text=True).stdout.splitlines() if l.strip())
        for tool in ("lme4", "glmmTMB"):
            ok = got.get(tool) == "TRUE" and got.get("jsonlite") == "TRUE"
            out[tool] = None if ok else f"not installed ({INSTALL[tool]})"
    return out


def install(missing: list[str]) -> None:
    """Install the missing peers with the registries' own clients (apt-get as root, pip)."""
    debs = [p for t in missing if t in ("lme4", "glmmTMB") for p in INSTALL[t].split()[2:]]
    if debs:
        if not shutil.which("Rscript"):
            debs.insert(0, "r-base-core")
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        subprocess.run(["apt-get", "install", "-y", "-qq", *debs], check=False)
    pips = [INSTALL[t].split()[-1] for t in missing if t in ("mixedlm", "statsmodels")]
    if pips:
        subprocess.run([sys.executable, "-m", "pip", "install", *pips], check=False)


def run(tool: str, case: str, spec: dict, timeout: float, repeat_below: float) -> dict:
    if tool in ("lme4", "glmmTMB"):
        cmd = ["Rscript", str(FIT_R), tool, str(spec["csv"]), spec["formula"], str(spec["REML"]).upper(),
               ",".join(spec["factors"]), str(repeat_below)]
    else:
        cmd = [sys.executable, str(BENCH / "peers.py"), "--worker",
               json.dumps({"tool": tool, "case": case, "repeat_below": repeat_below})]
    return measured(cmd, timeout)


def _s(r: dict) -> str:
    if "seconds" in r:
        return f"{r['seconds']:.3f}" if r["seconds"] < 10 else f"{r['seconds']:.1f}"
    if r.get("timeout"):
        return f"> {r['timeout_s']:.0f} (timeout)"
    return r.get("skip") or f"error: {str(r.get('error'))[:100]}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default=DEFAULT_CASES, help=f"comma-separated (default: {DEFAULT_CASES})")
    ap.add_argument("--tools", default=",".join(TOOLS), help=f"comma-separated (default: {','.join(TOOLS)})")
    ap.add_argument("--timeout", type=float, default=600.0, help="seconds per (tool, case) (default 600)")
    ap.add_argument("--repeat-below", type=float, default=5.0,
                    help="repeat a fit that took less than this, up to three fits (default 5 s)")
    ap.add_argument("--install", action="store_true", help="install the missing peers first (apt-get, pip)")
    ap.add_argument("--suffix", default="peers", help="results file benchmarks/results/<date>-<suffix>.md")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        w = json.loads(args.worker)
        print(json.dumps(worker(w["tool"], w["case"], w["repeat_below"])))
        return

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = set(tools) - set(TOOLS)
    if bad:
        raise SystemExit(f"unknown tool(s) {', '.join(sorted(bad))}: {', '.join(TOOLS)}")
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    missing = available()
    if args.install and any(missing[t] for t in tools):
        install([t for t in tools if missing[t]])
        missing = available()
    for t in tools:
        if missing[t]:
            print(f"{t}: {missing[t]}", file=sys.stderr)
    specs = {c: case_spec(c) for c in cases}      # writes the CSVs before anything is timed
    info = machine_info(with_r=missing.get("lme4") is None)
    results = {}
    for case in cases:
        spec = specs[case]
        results[case] = {}
        for tool in tools:
            if missing[tool]:
                r = {"skip": missing[tool]}
            elif tool == "statsmodels" and statsmodels_form(spec["formula"])[0] is None:
                r = {"skip": statsmodels_form(spec["formula"])[1]}
            else:
                print(f"{case}: {tool} ...", file=sys.stderr, flush=True)
                r = run(tool, case, spec, args.timeout, args.repeat_below)
                if r.get("timeout"):
                    r["timeout_s"] = args.timeout
                print(f"  {_s(r)} s" + (f", objective {r['objective']:.4f}" if "objective" in r else ""),
                      file=sys.stderr, flush=True)
            results[case][tool] = r

    # tables
    wide, long_rows, notes = [], [], []
    for case in cases:
        rs = results[case]
        ok = {t: r for t, r in rs.items() if "seconds" in r and r.get("objective") is not None}
        best = min((r["objective"] for r in ok.values()), default=None)
        base = ok.get("sparsemixed", {}).get("seconds")
        rows = next((r.get("nobs") or r.get("rows") for r in ok.values()), None)
        cells = []
        for tool in tools:
            r = rs[tool]
            if tool in ok:
                ratio = r["seconds"] / base if base else None
                cells.append(_s(r) + (f" ({ratio:.1f}x)" if ratio and tool != "sparsemixed" else ""))
                long_rows.append([case, tool, r.get("version"), _s(r), f"{r['first']:.3f}",
                                  f"{ratio:.2f}" if ratio else "–", f"{r['objective']:.4f}",
                                  f"{r['objective'] - best:.3g}", r.get("evals"),
                                  {True: "yes", False: "no"}.get(r.get("converged"), "–"),
                                  r.get("rss_mb"), f"{r['load']:.2f}" if r.get("load") is not None else None])
            else:
                cells.append(_s(r))
                long_rows.append([case, tool, r.get("version"), _s(r), None, None, None, None, None, None,
                                  r.get("rss_mb"), f"{r['load']:.2f}" if r.get("load") is not None else None])
            rn = r.get("notes") or []
            for n in [rn] if isinstance(rn, str) else rn:
                notes.append(f"- {case}, {tool}: {str(n)[:300]}")
            if r.get("error") and r.get("stderr"):
                notes.append(f"- {case}, {tool} failed: {r['error']}")
        objs = " / ".join(f"{t} {ok[t]['objective'] - best:+.2g}" for t in tools if t in ok)
        wide.append([case, rows, *cells, objs])
    wide_table = md_table(["case", "rows", *[f"{t} s" for t in tools], "objective - best"], wide)
    long_table = md_table(["case", "tool", "version", "best s", "first s", "time / sparsemixed", "objective",
                           "objective - best", "evaluations", "converged", "peak RSS MB", "load"], long_rows)
    defs = md_table(["case", "formula", "REML", "what"],
                    [[c, "`" + specs[c]["formula"].replace("|", "\\|") + "`", "TRUE" if specs[c]["REML"] else "FALSE",
                      specs[c]["what"].replace("|", "\\|")] for c in cases])
    print(wide_table)
    print()
    print(long_table)
    path = result_path(args.suffix)
    cmd = " ".join(["python benchmarks/peers.py", *sys.argv[1:]])
    path.write_text(
        f"# Peers {path.stem}\n\nCommand: `{cmd}`\n\n## Machine\n\n{info}\n\n"
        f"## Results\n\nBest build + fit time in seconds (in brackets: time / sparsemixed's), and each "
        f"tool's objective minus the lowest of the case.\n\n{wide_table}\n\n{long_table}\n\n"
        f"## Cases\n\n{defs}\n\n"
        + ("## Warnings and messages\n\n" + "\n".join(dict.fromkeys(notes)) + "\n\n" if notes else "")
        + "## Notes\n\n"
        "- Each (tool, case) in a fresh process with a timeout; the time is measured inside it around "
        "build + fit only (data read and package imports before): sparsemixed `sm.lmer(...).fit()`, "
        "lme4 `lmer()`, glmmTMB `glmmTMB()` (one thread, its default), mixedlm `mixedlm.lmer()`, "
        "statsmodels `smf.mixedlm(...).fit()`. A fit under "
        f"{args.repeat_below:g} s is repeated, up to three in all: 'best s' is the best, 'first s' the first.\n"
        "- objective: REML criterion (REML fits) or deviance (ML), on lme4's scale: lme4 `REMLcrit()` / "
        "`deviance()`, glmmTMB `-2 logLik()`, mixedlm `.deviance`, statsmodels `-2 llf` (all four equal "
        "lme4's on sleepstudy, REML 1743.628 and ML 1751.939). 'objective - best': above the lowest of "
        "the case (0 for the best).\n"
        "- evaluations: sparsemixed `optsummary.feval`, lme4 `optinfo$feval`, glmmTMB nlminb's function "
        "evaluations, mixedlm `n_iter`.\n"
        "- statsmodels MixedLM fits one grouping factor: crossed and nested models are n/a.\n"
        "- peak RSS: the process's, data reading included (`/usr/bin/time -v`); load: the 1-minute "
        "load average as the process started.\n"
        "\n<details><summary>raw JSON</summary>\n\n```json\n"
        + json.dumps(results, indent=1, default=str) + "\n```\n</details>\n")
    print(f"\nwritten to {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
