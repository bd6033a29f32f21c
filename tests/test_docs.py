"""The documentation: the Sphinx build of docs/ passes with -W and nitpicky (what `make docs`
runs: links, cross-references, the API reference, and docs/_ext/docscheck.py's checks,
which run the examples and compare their printed output with the pages), each check
catches its kind of problem, and the data sets carry their documentation
(sparsemixed.datasets.describe)."""
import importlib.util
import pathlib
import re
import subprocess
import sys

import pytest

import sparsemixed as sm

# the test extra installs the docs extra: a missing package fails, not skips
import myst_parser  # noqa: E402,F401
import numpydoc  # noqa: E402,F401
import sphinx  # noqa: E402,F401

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
DOCSCHECK = DOCS / "_ext" / "docscheck.py"


def _docscheck():
    if "docscheck" not in sys.modules:
        spec = importlib.util.spec_from_file_location("docscheck", DOCSCHECK)
        mod = importlib.util.module_from_spec(spec)
        sys.modules["docscheck"] = mod          # dataclasses look their module up there
        spec.loader.exec_module(mod)
    return sys.modules["docscheck"]


def _sphinx(src, out, *options):
    return subprocess.run([sys.executable, "-m", "sphinx", "-b", "html", "-n", "-E", "-q",
                           *options, str(src), str(out)],
                          capture_output=True, text=True, timeout=900, cwd=ROOT)


def test_docs_build(tmp_path):
    """What `make docs` runs, into a temporary directory: any warning fails, and the
    examples run (the InstEval fit is most of their time)."""
    out = tmp_path / "html"
    proc = _sphinx(DOCS, out, "-W", "--keep-going")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    for page in ["index", "tutorial", "formula", "notation", "engine", "architecture", "glmm",
                 "scaling", "datasets", "examples/sleepstudy", "examples/insteval", "api/index"]:
        assert (out / f"{page}.html").is_file(), page
    api = {p.stem: p.read_text() for p in (out / "api").glob("*.html")}
    for page, anchor in [("fitting", "sparsemixed.lmer"), ("fitting", "sparsemixed.LmerResult.fixef"),
                         ("statsmodels", "sparsemixed.MixedLM.score"),
                         ("datasets", "sparsemixed.datasets.describe"), ("cli", "sparsemixed.cli.main")]:
        assert f'id="{anchor}"' in api[page], anchor
    everything = "\n".join(api.values())
    for name in sm.__all__:                     # the whole public API has an entry
        assert re.search(rf'id="(module-)?sparsemixed\.{name}"', everything), name
    index = (out / "index.html").read_text()
    assert 'href="formula.html"' in index                       # links between pages
    assert 'href="api/fitting.html#sparsemixed.lmer"' in index  # `sm.lmer` links to its entry


def test_checks_report_each_kind_of_problem(tmp_path):
    """A small site with one problem of each kind, built with docs/conf.py's settings."""
    docs = tmp_path / "docs"
    (docs / "examples").mkdir(parents=True)
    (docs / "conf.py").write_text(
        "import runpy, types\n"
        f"_conf = runpy.run_path({str(DOCS / 'conf.py')!r})\n"
        "globals().update({k: v for k, v in _conf.items()\n"
        "                  if not k.startswith('_') and not isinstance(v, types.ModuleType)})\n")
    (tmp_path / "notes.md").write_text("# Notes\n\ntext\n")
    (docs / "index.md").write_text(
        "# Home\n\n```{toctree}\nother\nexamples/ex\n```\n\n## Real heading\n\n"
        "[ok](other.md#second-part) [ok](#real-heading) [gone](missing.md) "
        "[bad anchor](other.md#nowhere) [repo ok](../notes.md#notes) "
        "[repo anchor](../notes.md#nowhere)\n\n"
        "`sparsemixed.datasets.load` `sparsemixed.datasets.nope` `result.fixef` "
        "`result.no_such_method()` `sm.lmer(f, d, REML=False)` `sm.lmer(f, d, bogus=1)` "
        "`LmerResult.ranef_frame` `model.objective(result.theta)` `sparsemixed/linalg/select.py` "
        "`sparsemixed/linalg/nothing.py` `y ~ x + (1 | g)`\n\n"
        "{func}`sparsemixed.no_such_function` {func}`sparsemixed.optimize.leave_boundary`\n\n"
        "```python\nimport sparsemixed as sm\nsm.datasets.unknown_function()\n```\n")
    (docs / "other.md").write_text("# Other\n\n## Second part\n\ntext\n")
    (docs / "examples" / "ex.md").write_text(
        "# Ex\n\n```python\nprint(1.2345, 'a')\n```\n\n```text\n1.2346 a\n```\n\n"
        "```python\nprint(2.5)\n```\n\n```text\n2.7\n```\n\n"
        "```python\nraise ValueError('boom')\n```\n\n```python\nprint('never run')\n```\n")
    proc = _sphinx(docs, tmp_path / "out")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    warnings = [ln for ln in proc.stderr.splitlines() if "WARNING" in ln or "ERROR" in ln]
    text = "\n".join(warnings)
    expected = [
        "'missing.md'",                                         # MyST: no such page
        "local id not found in doc 'other': 'nowhere'",         # MyST: no such anchor
        "no anchor 'nowhere' in",                               # repository file's anchor
        "`sparsemixed.datasets.nope` does not resolve",
        "`result.no_such_method` does not resolve",
        "takes no keyword argument 'bogus'",
        "path `sparsemixed/linalg/nothing.py` does not exist",
        "py:func reference target not found: sparsemixed.no_such_function",
        "`sm.datasets.unknown_function` does not resolve",
        "printed 2.5, the page shows 2.7",
        "raised ValueError: boom",
    ]
    for e in expected:
        assert e in text, (e, text)
    for good in ("datasets.load`", "result.fixef`", "REML", "ranef_frame", "objective", "select.py",
                 "leave_boundary", "second-part", "'notes'", "never run"):
        assert good not in text, (good, text)
    assert len(warnings) == len(expected), text
    html = (tmp_path / "out" / "index.html").read_text()
    assert 'href="other.html#second-part"' in html
    assert 'notes.md#notes"' in html                # a repository file: linked in the checkout


def test_readme_links(tmp_path):
    """The README is not a page of the site; its links are checked the same way."""
    check = _docscheck()
    assert check.readme_problems() == []
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# A\n\n## Part two\n")
    readme = tmp_path / "README.md"
    readme.write_text("# R\n\n## Speed\n\n[ok](docs/a.md#part-two) [ok](#speed) [web](https://x.org/y)\n"
                      "[gone](docs/b.md) [bad](docs/a.md#part-three)\n\n![img](docs/fig.png)\n")
    problems = [p for _, p in check.readme_problems(readme)]
    assert len(problems) == 3, problems
    assert any("b.md does not exist" in p for p in problems)
    assert any("no anchor 'part-three'" in p for p in problems)
    assert any("fig.png does not exist" in p for p in problems)


def test_update_pastes_output(tmp_path):
    check = _docscheck()
    page = tmp_path / "docs" / "examples" / "p.md"
    page.parent.mkdir(parents=True)
    page.write_text("# P\n\n```python\nprint(round(3.14159, 3))\n```\n\n```text\nold\n```\n\n"
                    "```python\nprint('new block')\n```\n")
    problems, new = check.run_page(page, update=True)
    assert problems == []
    assert "```text\n3.142\n```" in new and "```text\nnew block\n```" in new
    page.write_text(new)
    assert check.run_page(page) == ([], None)


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
    assert (_docscheck().compare_output(expected, actual) is None) == ok


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
