"""Import plus the first InstEval fit in a new process: cold, after precompiling, warm.

    python benchmarks/first_fit.py [--reps 2]

Each case runs on a copy of the checkout's package in a temporary directory (so the
checkout's own ``__pycache__`` plays no part), in a new process, with NUMBA_CACHE_DIR
unset and HOME pointing into the temporary directory:

* cold: a fresh copy (no compiled kernels anywhere): numba compiles every kernel the fit
  calls, and saves them next to the sources (the copy is writable);
* warm: the next process on that copy: every kernel loads from the copy's cache;
* installed: a fresh copy after ``python -m sparsemixed.precompile``, then made read-only,
  run by another user (``nobody`` when this runs as root) without a writable home: the
  first fit of a user of a system install;
* read-only, not precompiled: the same without the precompile step: no cache can be
  written, each process compiles (the floor for an install that skipped precompile).

Model: ``y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)``, REML (the default).
Prints a markdown table and writes benchmarks/results/<date>-first-fit.md.
"""
from __future__ import annotations

import argparse
import json
import os
import pwd
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, machine_info, md_table, result_path

FORMULA = "y ~ 1 + service + (1|s) + (1|d) + (1|dept:service)"

SCRIPT = r"""
import json, time
t0 = time.perf_counter()
import sparsemixed as sm
t1 = time.perf_counter()
data = sm.datasets.load("InstEval")
t2 = time.perf_counter()
result = sm.lmer(%r, data).fit()
t3 = time.perf_counter()
from sparsemixed.linalg import jit
stats = [k.stats for k in jit.kernels()]
print(json.dumps({"import": t1 - t0, "read": t2 - t1, "fit": t3 - t2, "file": sm.__file__,
                  "objective": result.objective,
                  "compiled": sum(sum(s.cache_misses.values()) for s in stats),
                  "loaded": sum(sum(s.cache_hits.values()) for s in stats)}))
""" % FORMULA


def _other_user() -> dict:
    if os.geteuid() != 0:
        return {}
    pw = pwd.getpwnam("nobody")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


def _chmod_tree(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        mode = path.stat().st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
        if path.is_dir():
            mode |= stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
        mode = mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        path.chmod(mode)


class Sandbox:
    """A temporary directory readable by all: pkg/sparsemixed (a copy without __pycache__)
    and home/."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="sparsemixed-first-fit-"))
        self.root.chmod(0o755)
        shutil.copytree(ROOT / "sparsemixed", self.root / "pkg" / "sparsemixed",
                        ignore=shutil.ignore_patterns("__pycache__"))
        (self.root / "home").mkdir()
        _chmod_tree(self.root, True)

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH")}
        env.update(HOME=str(self.root / "home"), PYTHONPATH=str(self.root / "pkg"), PYTHONDONTWRITEBYTECODE="1")
        return env

    def run(self, args: list[str], **kw) -> tuple[float, str]:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, *args], cwd=self.root, env=self.env(), capture_output=True,
                              text=True, **kw)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr[-2000:])
        return wall, proc.stdout

    def fit(self, **kw) -> dict:
        loadavg = os.getloadavg()[0]
        wall, stdout = self.run(["-c", SCRIPT], **kw)
        out = json.loads(stdout.strip().splitlines()[-1])
        assert out["file"].startswith(str(self.root)), out["file"]
        out.update(process=wall, loadavg=loadavg)
        return out

    def read_only(self) -> None:
        _chmod_tree(self.root / "pkg", False)
        _chmod_tree(self.root / "home", False)

    def remove(self) -> None:
        _chmod_tree(self.root, True)
        shutil.rmtree(self.root, ignore_errors=True)


def one_round() -> dict:
    cases = {}
    box = Sandbox()
    try:
        cases["cold"] = box.fit()
        cases["warm"] = box.fit()
    finally:
        box.remove()
    box = Sandbox()
    try:
        wall, _ = box.run(["-m", "sparsemixed.precompile"])
        box.read_only()
        cases["installed"] = box.fit(**_other_user())
        cases["installed"]["precompile"] = wall
    finally:
        box.remove()
    box = Sandbox()
    try:
        box.read_only()
        cases["read-only, not precompiled"] = box.fit(**_other_user())
    finally:
        box.remove()
    return cases


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--suffix", default="first-fit", help="results file: <date>-<suffix>.md")
    args = ap.parse_args()
    info = machine_info(with_r=False)
    rounds = []
    for k in range(args.reps):
        rounds.append(one_round())
        print(f"round {k + 1}: " + ", ".join(f"{c} {r['import'] + r['read'] + r['fit']:.2f} s"
                                              for c, r in rounds[-1].items()), file=sys.stderr)
    rows = []
    for case in rounds[0]:
        rs = [r[case] for r in rounds]
        med = lambda key: statistics.median(r[key] for r in rs)
        total = [r["import"] + r["read"] + r["fit"] for r in rs]
        rows.append([case, med("import"), med("read"), med("fit"), statistics.median(total),
                     ", ".join(f"{t:.2f}" for t in total), med("process"),
                     ", ".join(f"{r['loadavg']:.1f}" for r in rs),
                     f"{rs[0]['compiled']} / {rs[0]['loaded']}", f"{rs[0]['objective']:.6f}"])
    table = md_table(["case", "import s", "read InstEval s", "build + fit s", "total s (median)",
                      "total s (each run)", "process wall s", "load at start", "kernels compiled / loaded",
                      "objective"], rows)
    pre = statistics.median(r["installed"]["precompile"] for r in rounds)
    text = (f"# First InstEval fit after installing (issue 18), {time.strftime('%Y-%m-%d')}\n\n"
            f"`python benchmarks/first_fit.py --reps {args.reps}"
            f"{'' if args.suffix == 'first-fit' else ' --suffix ' + args.suffix}`: `{FORMULA}`, REML; each case a new "
            "process on a fresh copy of the package (benchmarks/first_fit.py says how each is made). "
            f"total = import + reading the CSV + build + fit; medians of {args.reps} runs; load at start: "
            "the 1-minute load average when each run started (2 cores: above ~1, another process shares them)."
            "\n\n"
            f"{table}\n\n`python -m sparsemixed.precompile` on a fresh copy took {pre:.0f} s (median).\n\n"
            f"Machine:\n\n{info}\n")
    print(text)
    path = result_path(args.suffix)
    path.write_text(text)
    print(f"written: {path.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
