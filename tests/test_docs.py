"""The documentation: docs/build.py --check passes on docs/ (links, references, examples
and their printed output), the checker catches each kind of problem, and the data sets
carry their documentation (sparsemixed.datasets.describe)."""
import importlib.util
import pathlib
import subprocess
import sys

import pytest

import sparsemixed as sm

ROOT = pathlib.Path(__file__).resolve().parents[1]
BUILD_PY = ROOT / "docs" / "build.py"

import markdown  # noqa: E402,F401  (the test extra installs it: a missing extra fails, not skips)


def _build_module():
    if "docs_build" not in sys.modules:
        spec = importlib.util.spec_from_file_location("docs_build", BUILD_PY)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["docs_build"] = mod          # dataclasses look their module up there
        spec.loader.exec_module(mod)
    return sys.modules["docs_build"]


def test_docs_check_passes(tmp_path):
    """What CI runs: build the HTML (to a temporary directory) and check everything,
    including the worked examples (the InstEval fit is most of the time)."""
    out = tmp_path / "_build"
    proc = subprocess.run([sys.executable, str(BUILD_PY), "--check", "--out", str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ["index.html", "formula.html", "notation.html", "engine.html", "scaling.html",
                 "datasets.html", "examples/sleepstudy.html", "examples/insteval.html", "api.html"]:
        assert (out / page).is_file(), page
    api = (out / "api.html").read_text()
    for anchor in ["sparsemixed.lmer", "sparsemixed.LmerResult.fixef", "sparsemixed.MixedLM.score",
                   "sparsemixed.datasets.describe", "sparsemixed.cli.main"]:
        assert f'id="{anchor}"' in api, anchor
    # links between pages point at the built .html files
    assert 'href="formula.html"' in (out / "index.html").read_text()


def test_checker_reports_each_kind_of_problem(tmp_path):
    build = _build_module()
    docs = tmp_path / "docs"
    (docs / "examples").mkdir(parents=True)
    (docs / "index.md").write_text(
        "# Home\n\n## Real heading\n\n"
        "[ok](other.md#second-part) [ok](#real-heading) [gone](missing.md) "
        "[bad anchor](other.md#nowhere) [api](api.html#sparsemixed.nope)\n\n"
        "`sparsemixed.datasets.load` `sparsemixed.datasets.nope` `result.fixef` "
        "`result.no_such_method()` `sm.lmer(f, d, REML=False)` `sm.lmer(f, d, bogus=1)` "
        "`LmerResult.ranef_frame` `model.objective(result.theta)` `sparsemixed/linalg/select.py` "
        "`sparsemixed/linalg/nothing.py` `y ~ x + (1 | g)`\n\n"
        "```python\nimport sparsemixed as sm\nsm.datasets.unknown_function()\n```\n")
    (docs / "other.md").write_text("# Other\n\n## Second part\n\ntext\n")
    (docs / "examples" / "ex.md").write_text(
        "# Ex\n\n```python\nprint(1.2345, 'a')\n```\n\n```text\n1.2346 a\n```\n\n"
        "```python\nprint(2.5)\n```\n\n```text\n2.7\n```\n\n"
        "```python\nraise ValueError('boom')\n```\n\n```python\nprint('never run')\n```\n")
    problems = build.build(docs, tmp_path / "out", check=True, verbose=False)
    text = "\n".join(problems)
    assert "broken link 'missing.md'" in text
    assert "no anchor 'nowhere'" in text
    assert "api.html has no entry 'sparsemixed.nope'" in text
    assert "`sparsemixed.datasets.nope` does not resolve" in text
    assert "`result.no_such_method` does not resolve" in text
    assert "takes no keyword argument 'bogus'" in text
    assert "path `sparsemixed/linalg/nothing.py` does not exist" in text
    assert "`sm.datasets.unknown_function` does not resolve" in text
    assert "printed 2.5, the page shows 2.7" in text
    assert "raised ValueError: boom" in text
    for good in ("datasets.load`", "result.fixef`", "REML", "ranef_frame", "objective", "select.py"):
        assert not any(good in p for p in problems), good
    assert len(problems) == 10, problems
    assert (tmp_path / "out" / "index.html").is_file()
    assert 'href="other.html#second-part"' in (tmp_path / "out" / "index.html").read_text()


def test_update_pastes_output(tmp_path):
    build = _build_module()
    page = tmp_path / "docs" / "examples" / "p.md"
    page.parent.mkdir(parents=True)
    page.write_text("# P\n\n```python\nprint(round(3.14159, 3))\n```\n\n```text\nold\n```\n\n"
                    "```python\nprint('new block')\n```\n")
    problems, new = build.run_page(page, update=True)
    assert problems == []
    assert "```text\n3.142\n```" in new and "```text\nnew block\n```" in new
    page.write_text(new)
    assert build.run_page(page)[0] == []


@pytest.mark.parametrize("expected, actual, ok", [
    ("theta 0.9667 sigma 25.59", "theta 0.9667 sigma 25.59", True),
    ("theta 0.9667", "theta 0.9668", True),          # one unit in the last digit
    ("theta 0.9667", "theta 0.9670", False),
    ("1743.6283", "1743.6283", True),
    ("x 1.0e-05", "x 1.1e-05", True),
    ("a 1 b 2", "a 1 c 2", False),                   # the words around the numbers count
    ("a 1 b 2", "a 1 b 2 3", False),
])
def test_compare_output(expected, actual, ok):
    build = _build_module()
    assert (build.compare_output(expected, actual) is None) == ok


def test_datasets_describe():
    for name in sm.datasets.names():
        text = sm.datasets.describe(name)
        assert text.startswith(f"{name}: ")
        assert "Source:" in text and "Origin:" in text
        assert list(sm.datasets.DOCS[name]["columns"]) == list(sm.datasets.load(name).columns), name
        for col in sm.datasets.load(name).columns:
            assert f"  {col} " in text, (name, col)
    assert "GPL (>= 2)" in sm.datasets.describe("Penicillin")
    with pytest.raises(ValueError, match="unknown data set"):
        sm.datasets.describe("iris")
