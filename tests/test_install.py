"""The installation's SuiteSparse detection (tools/scikit_sparse_spec.py, used by the Makefile
and the README's pip route), on faked headers: Debian 12 ships SuiteSparse 5.12 (scikit-sparse
0.4.x builds, 0.5 does not), Debian 13 ships 7.x (0.5).  What is not tested here: an actual
build of scikit-sparse 0.5 against SuiteSparse 7 (this machine has 5.12)."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "tools" / "scikit_sparse_spec.py"

HEADER = """/* SuiteSparse_config.h (excerpt) */
#define SUITESPARSE_DATE "{date}"
#define SUITESPARSE_MAIN_VERSION    {major}
#define SUITESPARSE_SUB_VERSION     {minor}
"""


def run(*args):
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, args)], capture_output=True, text=True)


@pytest.mark.parametrize("major,minor,spec", [
    (5, 12, "scikit-sparse>=0.4.12,<0.5"),      # Debian 12
    (6, 0, "scikit-sparse>=0.4.12,<0.5"),
    (7, 10, "scikit-sparse>=0.5"),               # Debian 13
    (7, 0, "scikit-sparse>=0.5"),
    (10, 1, "scikit-sparse>=0.5"),
])
def test_spec_follows_the_header(tmp_path, major, minor, spec):
    h = tmp_path / "SuiteSparse_config.h"
    h.write_text(HEADER.format(date="2024", major=major, minor=minor))
    out = run(h)
    assert out.returncode == 0 and out.stdout.strip() == spec


def test_missing_header_names_the_package(tmp_path):
    out = run(tmp_path / "nowhere.h")
    assert out.returncode == 2 and out.stdout == ""
    assert "libsuitesparse-dev" in out.stderr and "suitesparse-devel" in out.stderr


def test_a_header_without_the_version(tmp_path):
    h = tmp_path / "SuiteSparse_config.h"
    h.write_text("/* nothing here */\n")
    out = run(h)
    assert out.returncode == 2 and "SUITESPARSE_MAIN_VERSION" in out.stderr


def test_this_machine_matches_its_installed_scikit_sparse():
    """The spec for the system's own header is satisfied by the scikit-sparse installed."""
    from importlib.metadata import version

    out = run()
    assert out.returncode == 0, out.stderr
    installed = tuple(int(p) for p in version("scikit-sparse").split(".")[:2])
    if out.stdout.strip() == "scikit-sparse>=0.5":
        assert installed >= (0, 5)
    else:
        assert (0, 4) <= installed < (0, 5)


def test_makefile_reads_the_header_when_the_recipe_runs():
    """Not at parse time (before `sysdeps` installed libsuitesparse-dev on a fresh machine)."""
    text = (ROOT / "Makefile").read_text()
    assert "wildcard /usr/include/suitesparse" not in text
    assert "tools/scikit_sparse_spec.py" in text
