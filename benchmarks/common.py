"""Shared helpers for the benchmark scripts: machine info, markdown tables, result paths,
and ``measured``, which runs one case in its own process under GNU time."""
from __future__ import annotations

import datetime
import importlib.metadata as md
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def measured(cmd: list[str], timeout: float | None = None) -> dict:
    """Run ``cmd`` (its last stdout line is JSON) in its own process group under GNU time;
    add the 1-min load average at the start, the wall time, peak RSS in MB and CPU seconds.
    On timeout the group is killed and ``{"timeout": True, "error": ...}`` returned; on a
    non-zero exit ``{"error": <last stderr line>, "stderr": ...}``."""
    gnu_time = shutil.which("time")
    with tempfile.NamedTemporaryFile("r", suffix=".txt") as tf:
        full = [gnu_time, "-v", "-o", tf.name, *cmd] if gnu_time else cmd
        load = os.getloadavg()[0]
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)     # the group of the process started here
            proc.communicate()
            return {"timeout": True, "error": f"timeout after {timeout:.0f} s", "load": load,
                    "wall": time.perf_counter() - t0, "rss_mb": None}
        wall = time.perf_counter() - t0
        tv = tf.read() if gnu_time else ""
        m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", tv)
        cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", tv)) or None
    rss = int(m.group(1)) // 1024 if m else None
    if proc.returncode != 0:
        tail = stderr.strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
        killed = "killed (out of memory?) " if proc.returncode in (-9, 137) else ""
        return {"error": killed + tail[0][:300], "stderr": stderr[-3000:], "load": load, "wall": wall,
                "rss_mb": rss, "cpu": cpu}
    out = json.loads(stdout.strip().splitlines()[-1])
    out.update(load=load, wall=wall, rss_mb=rss, cpu=cpu)
    return out
RESULTS = ROOT / "benchmarks" / "results"
if str(ROOT) not in sys.path:         # run from a checkout without `pip install -e .`
    sys.path.insert(0, str(ROOT))


def result_path(suffix: str | None = None) -> Path:
    """benchmarks/results/<YYYY-MM-DD>-<suffix or hostname>.md"""
    RESULTS.mkdir(parents=True, exist_ok=True)
    return RESULTS / f"{datetime.date.today().isoformat()}-{suffix or socket.gethostname()}.md"


def md_table(headers: list[str], rows: list[list]) -> str:
    def fmt(v):
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 1e4 else f"{v:,.1f}"
        if isinstance(v, int):
            return f"{v:,}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(fmt(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _ram_gib() -> float | None:
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        return kb / 2**20
    except (OSError, AttributeError):
        return None


def _blas_loaded() -> str:
    """BLAS/LAPACK shared libraries mapped into this process once numpy and CHOLMOD are loaded."""
    import numpy  # noqa: F401
    import sksparse.cholmod  # noqa: F401

    try:
        libs = {Path(l.split()[-1]).name for l in Path("/proc/self/maps").read_text().splitlines()
                if re.search(r"blas|lapack|mkl|accelerate", l.split()[-1], re.I) and "/" in l}
        return ", ".join(sorted(libs)) or "none found"
    except OSError:
        return "unknown"


def _numpy_blas() -> str:
    import numpy

    try:
        blas = numpy.show_config(mode="dicts")["Build Dependencies"]["blas"]
        return f"{blas.get('name', '?')} {blas.get('version', '')}".strip()
    except Exception:  # numpy < 1.25 has no mode="dicts"
        return "unknown"


def _sparsemixed_version() -> str:
    import sparsemixed

    return sparsemixed.__version__


def _version(pkg: str) -> str:
    try:
        return md.version(pkg)
    except md.PackageNotFoundError:
        return "not installed"


def r_info() -> dict | None:
    """R and lme4 versions and R's BLAS, or None without Rscript."""
    if not shutil.which("Rscript"):
        return None
    code = ('cat(jsonlite::toJSON(list(R=R.version.string, lme4=as.character(packageVersion("lme4")),'
            ' BLAS=extSoftVersion()[["BLAS"]], LAPACK=La_library()), auto_unbox=TRUE))')
    try:
        out = subprocess.run(["Rscript", "-e", code], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    except (subprocess.CalledProcessError, json.JSONDecodeError):
        return None


def machine_info(with_r: bool = True) -> str:
    """A markdown bullet list describing the machine and the software versions."""
    ram = _ram_gib()
    items = [
        ("host", socket.gethostname()),
        ("CPU", _cpu_model()),
        ("cores", f"{os.cpu_count()} logical"),
        ("RAM", f"{ram:.1f} GiB" if ram else "unknown"),
        ("OS", platform.platform()),
        ("load average at start (1/5/15 min)", " / ".join(f"{x:.2f}" for x in os.getloadavg())),
        ("BLAS loaded (Python)", _blas_loaded()),
        ("numpy built with", _numpy_blas()),
        ("python", platform.python_version()),
        ("numpy / scipy / scikit-sparse", " / ".join(_version(p) for p in ("numpy", "scipy", "scikit-sparse"))),
        ("sparsemixed", _sparsemixed_version()),
        ("git commit", _git_commit()),
    ]
    r = r_info() if with_r else None
    if r:
        items += [("R", r["R"]), ("lme4", r["lme4"]), ("R BLAS / LAPACK", f"{r['BLAS']} / {r['LAPACK']}")]
    return "\n".join(f"- {k}: {v}" for k, v in items)


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
                             capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
