"""GLMM benchmark: sparsemixed.glmer against lme4's glmer, each case in its own process.

    python benchmarks/glmm.py                          # verbagg, bern1M (glmer too, 1 h timeout)
    python benchmarks/glmm.py --cases verbagg,fe25,elp --glmer verbagg,fe25 --timeout 3600
    python benchmarks/glmm.py --no-r                   # sparsemixed only

Cases:

* ``verbagg``  lme4's VerbAgg, ``r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)``
  (tests/reference/glmm/data/VerbAgg.csv), 7,584 rows;
* ``bern1M``   1,000,000 Bernoulli rows on 20,000 users x 2,000 items with heavy-tailed
  activity (lognormal user and item weights), ``acc ~ x + (1|user) + (1|item)``;
* ``fe25``     200,000 such rows with 24 covariates, ``acc ~ x1 + ... + x24 + (1|user) + (1|item)``
  (lme4 issue 820's kind: many fixed effects);
* ``elp``      the English Lexicon Project's shape: 816 subjects x 80,962 items, 3,431 items
  per subject (2.8M rows), ``acc ~ 1 + isword * wrdlen + (1|item) + (1|subj)``.

Data are simulated with a fixed seed (``--seed``) from stated true values, written once
to benchmarks/.cache/ as CSV for R.  Both sides fit by Laplace (nAGQ = 1, glmer's
default); the table gives build and fit seconds (``--repeat case=k``: k fits in one
process, the best and the first, which pays numba's and R's first-call loading; default
3 for verbagg), evaluations (sparsemixed: outer ones, and PIRLS iterations), -2 log L,
peak RSS and the true values.  Results go to
benchmarks/results/<date>-glmm.md.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.common import machine_info, md_table, measured, result_path  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
VERBAGG = ROOT / "tests" / "reference" / "glmm" / "data" / "VerbAgg.csv"
TRUTH = {"bern1M": {"(Intercept)": -0.5, "x": 0.8, "sd_user": 1.0, "sd_item": 0.5},
         "fe25": {"(Intercept)": -0.5, "x1": 0.8, "sd_user": 1.0, "sd_item": 0.5},
         "elp": {"(Intercept)": 1.5, "isword": 0.6, "wrdlen": -0.1, "isword:wrdlen": 0.05,
                 "sd_item": 0.9, "sd_subj": 0.5}}
CASES = {
    "verbagg": {"formula": "r2 ~ Anger + Gender + btype + situ + (1|id) + (1|item)",
                "factors": ["id", "item"]},
    "bern1M": {"formula": "acc ~ x + (1|user) + (1|item)", "factors": ["user", "item"]},
    "fe25": {"formula": "acc ~ " + " + ".join(f"x{j}" for j in range(1, 25)) + " + (1|user) + (1|item)",
             "factors": ["user", "item"]},
    "elp": {"formula": "acc ~ 1 + isword * wrdlen + (1|item) + (1|subj)", "factors": ["item", "subj"]},
}


def _expit(x):
    return 1.0 / (1.0 + np.exp(-x))


def _crossed(n, users, items, p, seed):
    rng = np.random.default_rng([seed, 17])
    wu = rng.lognormal(0.0, 1.0, users)
    wi = rng.lognormal(0.0, 1.0, items)
    user = rng.choice(users, n, p=wu / wu.sum())
    item = rng.choice(items, n, p=wi / wi.sum())
    X = rng.normal(size=(n, p))
    eta = -0.5 + 0.8 * X[:, 0] + rng.normal(0, 1.0, users)[user] + rng.normal(0, 0.5, items)[item]
    if p > 1:
        eta = eta + X[:, 1:] @ rng.normal(0, 0.1, p - 1)
    acc = (rng.random(n) < _expit(eta)).astype(np.int8)
    cols = {"user": user.astype(np.int32), "item": item.astype(np.int32), "acc": acc}
    if p == 1:
        cols["x"] = X[:, 0]
    else:
        cols.update({f"x{j + 1}": X[:, j] for j in range(p)})
    return pd.DataFrame(cols)


def _elp(seed):
    rng = np.random.default_rng([seed, 23])
    S, I, per = 816, 80_962, 3_431
    item = np.concatenate([rng.choice(I, per, replace=False) for _ in range(S)]).astype(np.int32)
    subj = np.repeat(np.arange(S, dtype=np.int32), per)
    isword = (np.arange(I) % 2).astype(np.int8)
    wrdlen = (rng.integers(3, 15, I) - 8).astype(np.int8)          # centred word length
    t = TRUTH["elp"]
    eta = (t["(Intercept)"] + t["isword"] * isword[item] + t["wrdlen"] * wrdlen[item]
           + t["isword:wrdlen"] * (isword * wrdlen)[item]
           + rng.normal(0, t["sd_item"], I)[item] + rng.normal(0, t["sd_subj"], S)[subj])
    acc = (rng.random(eta.size) < _expit(eta)).astype(np.int8)
    return pd.DataFrame({"subj": subj, "item": item, "isword": isword[item], "wrdlen": wrdlen[item], "acc": acc})


def data(name: str, seed: int) -> pd.DataFrame:
    if name == "verbagg":
        return pd.read_csv(VERBAGG)
    if name == "bern1M":
        return _crossed(1_000_000, 20_000, 2_000, 1, seed)
    if name == "fe25":
        return _crossed(200_000, 20_000, 2_000, 24, seed)
    if name == "elp":
        return _elp(seed)
    raise SystemExit(f"unknown case {name!r}: {', '.join(CASES)}")


def csv_path(name: str, seed: int) -> Path:
    if name == "verbagg":
        return VERBAGG
    CACHE.mkdir(parents=True, exist_ok=True)
    path = CACHE / f"glmm_{name}_seed{seed}.csv"
    if not path.exists():
        data(name, seed).to_csv(path, index=False)
    return path


def worker(name: str, seed: int, repeat: int = 1) -> dict:
    """In a child process: build and fit with sparsemixed ``repeat`` times (the first in
    the process, then the best); one JSON line."""
    import warnings

    import sparsemixed as sm
    from sparsemixed.glmm import pirls

    df = data(name, seed)
    for c in CASES[name]["factors"]:
        df[c] = df[c].astype(str) if name == "verbagg" else pd.Categorical(df[c])
    calls = {"pirls": 0, "iterations": 0}
    real = pirls.pirls

    def counted(*a, **k):
        m = real(*a, **k)
        calls["pirls"] += 1
        calls["iterations"] += m.iterations
        return m
    pirls.pirls = counted
    import sparsemixed.glmm.model as gm

    gm.pirls = counted
    times = []
    for k in range(repeat):
        calls.update(pirls=0, iterations=0)
        t0 = time.perf_counter()
        model = sm.glmer(CASES[name]["formula"], df, family="binomial")
        t1 = time.perf_counter()
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            res = model.fit()
        t2 = time.perf_counter()
        times.append((t1 - t0, t2 - t1))
    first = sum(times[0])
    t1, t2 = min(times, key=sum)
    t0, t2 = 0.0, t1 + t2
    return {"build": t1 - t0, "fit": t2 - t1, "first": first, "feval": int(res.optsummary.feval), "pirls": calls["pirls"],
            "iterations": calls["iterations"], "m2ll": res.minus2loglik, "fixef": res.fixef.round(4).to_dict(),
            "theta": np.round(res.theta, 4).tolist(), "rows": int(res.nobs),
            "warnings": sorted({str(x.message)[:80] for x in w})}


GLMER_R = r"""
suppressPackageStartupMessages({library(lme4); library(jsonlite)})
a <- commandArgs(TRUE)
d <- read.csv(a[1])
for (v in strsplit(a[3], ",")[[1]]) d[[v]] <- factor(d[[v]])
for (v in names(d)) if (is.character(d[[v]])) d[[v]] <- factor(d[[v]])
times <- c()
for (k in seq_len(as.integer(a[4]))) {
  t0 <- proc.time()[["elapsed"]]
  w <- character(0)
  fit <- withCallingHandlers(glmer(as.formula(a[2]), d, family = binomial),
    warning = function(x) { w <<- c(w, conditionMessage(x)); invokeRestart("muffleWarning") })
  times <- c(times, proc.time()[["elapsed"]] - t0)
}
cat(toJSON(list(seconds = min(times), first = times[1], m2ll = -2 * as.numeric(logLik(fit)), feval = fit@optinfo$feval,
  fixef = as.list(round(fixef(fit), 4)), theta = round(getME(fit, "theta"), 4), warnings = w),
  auto_unbox = TRUE, digits = NA), "\n")
"""


def run_glmer(name: str, seed: int, timeout: float | None, repeat: int = 1) -> dict:
    script = CACHE / "glmer_bench.R"
    CACHE.mkdir(parents=True, exist_ok=True)
    script.write_text(GLMER_R)
    return measured(["Rscript", str(script), str(csv_path(name, seed)), CASES[name]["formula"],
                     ",".join(CASES[name]["factors"]), str(repeat)], timeout=timeout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cases", default="verbagg,bern1M")
    ap.add_argument("--glmer", default=None, help="cases to time glmer on (default: all of --cases)")
    ap.add_argument("--no-r", action="store_true")
    ap.add_argument("--timeout", type=float, default=3600.0, help="seconds per glmer run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--repeat", default="verbagg=3",
                    help="fits per process, as case=k,... (the table gives the first and the best)")
    ap.add_argument("--suffix", default="glmm")
    ap.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    a = ap.parse_args()
    repeats = {k: int(v) for k, v in (x.split("=") for x in a.repeat.split(",") if x)}
    if a.worker:
        print(json.dumps(worker(a.worker, a.seed, repeats.get(a.worker, 1))))
        return
    cases = [c for c in a.cases.split(",") if c]
    with_r = set() if a.no_r else set((a.glmer or a.cases).split(","))
    rows = []
    for name in cases:
        print(f"{name}: sparsemixed ...", flush=True)
        r = measured([sys.executable, str(Path(__file__).resolve()), "--worker", name, "--seed", str(a.seed),
                      "--repeat", a.repeat])
        if "error" in r:
            rows.append([name, "sparsemixed", "-", "-", "-", "-", "-", "-", "-", "-", "-", "-", r["error"][:60]])
            continue
        rows.append([name, "sparsemixed", f"{r['rows']:,}", f"{r['build']:.2f}", f"{r['fit']:.2f}",
                     f"{r['build'] + r['fit']:.2f}", f"{r['first']:.2f}", f"{r['feval']} ({r['pirls']} PIRLS, {r['iterations']} it.)",
                     f"{r['m2ll']:.4f}", f"{r.get('rss_mb') or '-'}",
                     json.dumps(r["fixef"])[:120], r["theta"], "; ".join(r["warnings"])[:80]])
        ours = r
        if name in with_r:
            print(f"{name}: glmer ...", flush=True)
            csv_path(name, a.seed)
            g = run_glmer(name, a.seed, a.timeout, repeats.get(name, 1))
            if g.get("timeout"):
                rows.append([name, "lme4 glmer", "", "", "", f"> {a.timeout:.0f} (timeout)", "", "", "", "", "", "", ""])
            elif "error" in g:
                rows.append([name, "lme4 glmer", "", "", "", "-", "", "", "", "", "", "", g["error"][:80]])
            else:
                rows.append([name, "lme4 glmer", "", "", "", f"{g['seconds']:.2f}", f"{g['first']:.2f}", g["feval"],
                             f"{g['m2ll']:.4f}",
                             f"{g.get('rss_mb') or '-'}", json.dumps(g["fixef"])[:120], g["theta"],
                             "; ".join(g["warnings"])[:80]])
                rows.append([name, "ratio glmer / sparsemixed", "", "", "", f"{g['seconds'] / (ours['build'] + ours['fit']):.1f}x",
                             f"{g['first'] / ours['first']:.1f}x", "", f"{ours['m2ll'] - g['m2ll']:+.4f}", "", "", "", ""])
    headers = ["case", "engine", "rows", "build s", "fit s", "total s (best)", "first in process s", "evaluations",
               "-2 log L", "peak RSS MB",
               "fixef", "theta", "warnings"]
    table = md_table(headers, rows)
    print(table)
    out = result_path(a.suffix)
    out.write_text(f"# GLMM benchmark\n\n{machine_info(with_r=not a.no_r)}\n\nTrue values: {json.dumps(TRUTH)}\n\n"
                   f"    python benchmarks/glmm.py --cases {a.cases}{' --no-r' if a.no_r else ''}\n\n{table}\n")
    print(f"written {out}")


if __name__ == "__main__":
    main()
