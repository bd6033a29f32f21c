"""The compiled kernels' on-disk cache (sparsemixed/linalg/jit.py) on a read-only installation.

Each test copies the package into a temporary tree, makes it read-only, points HOME at a
directory that cannot be written and runs a fit in a new process, as another user when
the tests run as root (root writes through file permissions: the process runs as
``nobody`` then).  The process reports whether it could write the tree and the kernels'
cache hits and misses, so neither test passes when nothing was read-only.
"""
from __future__ import annotations

import json
import os
import pwd
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm

PACKAGE = Path(sm.__file__).parent

SCRIPT = r"""
import json, os, sys
import pandas as pd
import sparsemixed as sm
from sparsemixed.linalg import jit

tree = os.path.dirname(sm.__file__)
sleep = sm.lmer("Reaction ~ Days + (Days|Subject)", sm.datasets.load("sleepstudy")).fit()
crossed = sm.lmer("y ~ x + (1|u) + (1|i)", pd.read_csv(sys.argv[1]), ordering="blocked").fit()
stats = [k.stats for k in jit.kernels()]
print(json.dumps({
    "file": sm.__file__,
    "tree_writable": os.access(os.path.join(tree, "linalg"), os.W_OK),
    "home_writable": os.access(os.environ["HOME"], os.W_OK),
    "sleepstudy": sleep.objective, "crossed": crossed.objective,
    "hits": sum(sum(s.cache_hits.values()) for s in stats),
    "misses": sum(sum(s.cache_misses.values()) for s in stats),
}))
"""


def _crossed_frame() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    u, i = rng.integers(0, 40, n), rng.integers(0, 15, n)
    y = rng.normal(size=n) + rng.normal(size=40)[u] + 0.8 * rng.normal(size=15)[i]
    return pd.DataFrame({"y": y, "x": rng.normal(size=n), "u": [f"u{k}" for k in u], "i": [f"i{k}" for k in i]})


def _other_user() -> dict:
    """subprocess.run keywords running the process as ``nobody`` when we are root, else {}."""
    if os.geteuid() != 0:
        return {}
    try:
        pw = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("running as root without a user 'nobody' to drop to")
    return {"user": pw.pw_uid, "group": pw.pw_gid, "extra_groups": []}


@pytest.fixture(autouse=True)
def _interpreter_reachable():
    """``nobody`` must reach the interpreter and its site-packages (the checkout's .venv).
    A checkout in a private directory (``mktemp -d``: 0700, or a 0700 home) does not let it:
    its ancestors get the others' search bit (o+x: pass through, not list) for the test's
    duration, and exactly their modes back afterwards."""
    changed = []
    if os.geteuid() == 0:
        for d in Path(sys.prefix).resolve().parents:
            mode = d.stat().st_mode
            if not mode & stat.S_IXOTH:
                d.chmod(mode | stat.S_IXOTH)
                changed.append((d, mode))
    try:
        yield
    finally:
        for d, mode in changed:
            d.chmod(stat.S_IMODE(mode))


def _set_writable(root: Path, writable: bool) -> None:
    for path in [root, *root.rglob("*")]:
        if path.is_symlink():
            continue
        mode = path.stat().st_mode
        mode = mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)
        path.chmod(mode)


@pytest.fixture
def sandbox():
    """A directory readable by everyone: ``pkg/`` for the package copy, ``home/`` (made
    read-only) for HOME, and the crossed data as CSV; removed afterwards."""
    root = Path(tempfile.mkdtemp(prefix="sparsemixed-jit-"))
    root.chmod(0o755)
    (root / "pkg").mkdir(mode=0o755)
    (root / "home").mkdir(mode=0o755)
    _crossed_frame().to_csv(root / "crossed.csv", index=False)
    (root / "crossed.csv").chmod(0o644)
    try:
        yield root
    finally:
        _set_writable(root, True)
        shutil.rmtree(root, ignore_errors=True)


def _copy_package(root: Path, with_cache: bool) -> Path:
    """The package into ``root/pkg`` without __pycache__ (or with only numba's cache files)."""
    def ignore(directory, names):
        if Path(directory).name == "__pycache__":
            return [n for n in names if not (with_cache and n.endswith((".nbi", ".nbc")))]
        return [] if with_cache else [n for n in names if n == "__pycache__"]

    dst = root / "pkg" / "sparsemixed"
    shutil.copytree(PACKAGE, dst, ignore=ignore)
    _set_writable(dst, True)
    for path in [dst, *dst.rglob("*")]:
        path.chmod(path.stat().st_mode | stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
                   | (stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH if path.is_dir() else 0))
    return dst


def _run(root: Path, **kw) -> dict:
    env = {k: v for k, v in os.environ.items()
           if k not in ("NUMBA_CACHE_DIR", "XDG_CACHE_HOME", "PYTHONPATH", "NUMBA_DEBUG_CACHE")}
    env.update(HOME=str(root / "home"), PYTHONPATH=str(root / "pkg"), PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(root / "crossed.csv")], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120, **kw)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["file"] == str(root / "pkg" / "sparsemixed" / "__init__.py")
    return out


def _files(root: Path) -> set:
    return {p.relative_to(root) for p in root.rglob("*")}


def _expected() -> dict:
    sleep = sm.lmer("Reaction ~ Days + (Days|Subject)", sm.datasets.load("sleepstudy")).fit()
    crossed = sm.lmer("y ~ x + (1|u) + (1|i)", _crossed_frame(), ordering="blocked").fit()
    return {"sleepstudy": sleep.objective, "crossed": crossed.objective}


def test_read_only_install_without_writable_home_imports_and_fits(sandbox):
    """No writable cache anywhere (numba's cache=True raised at import: "no locator
    available"): import and fits work, the kernels compiled in memory, nothing written."""
    user = _other_user()
    tree = _copy_package(sandbox, with_cache=False)
    _set_writable(tree, False)
    _set_writable(sandbox / "home", False)
    before = _files(sandbox)
    out = _run(sandbox, **user)
    assert not out["tree_writable"] and not out["home_writable"]
    assert out["misses"] > 0 and out["hits"] == 0
    assert _files(sandbox) == before
    want = _expected()
    assert out["sleepstudy"] == pytest.approx(want["sleepstudy"], rel=1e-10)
    assert out["crossed"] == pytest.approx(want["crossed"], rel=1e-10)


def test_precompiled_read_only_tree_is_used_by_another_user(sandbox):
    """A tree whose __pycache__ holds the kernels (written by its owner, as
    ``python -m sparsemixed.precompile`` does) and is then made read-only: another user
    loads every kernel from it and compiles none, without a writable home and with one
    (where numba's own cache looked only in the user's cache directory)."""
    user = _other_user()
    tree = _copy_package(sandbox, with_cache=True)       # the checkout's entries: fewer to compile
    seeded = _run(sandbox)                                # as the owner: saves into the tree
    assert seeded["tree_writable"]
    _set_writable(tree, False)
    before = _files(tree)
    for home_mode in (0o555, 0o777):
        (sandbox / "home").chmod(home_mode)
        out = _run(sandbox, **user)
        assert not out["tree_writable"] and out["home_writable"] == (home_mode == 0o777)
        assert out["hits"] > 0 and out["misses"] == 0
        assert _files(tree) == before
        assert out["sleepstudy"] == seeded["sleepstudy"] and out["crossed"] == seeded["crossed"]
