#!/usr/bin/env python
"""Build sparsemixed's documentation to HTML, and check it.

    python docs/build.py              # docs/*.md -> docs/_build/*.html, plus api.html
    python docs/build.py --check      # the same, and exit 1 listing every problem found
    python docs/build.py --update     # run the examples and paste their output into the pages

Pages are the Markdown files under docs/ (docs/_build/ excluded), rendered with the
``markdown`` package (``pip install "sparsemixed[docs]"``).  ``api.html`` is generated from
the docstrings of the public API (``API`` below) by ``inspect``.

``--check`` reports:

* links: relative links (``[text](other.md#anchor)``, images) whose file does not exist, or
  whose anchor is not a heading id / ``id=`` of the target page (or of api.html);
* references in backticks: dotted names rooted at ``sparsemixed`` (or ``sm``), at a public
  name of the package (``LmerResult.fixef``), or at the conventional variables ``result``
  (an LmerResult), ``model`` (a LinearMixedModel), ``md`` (a MixedLM) and ``mdf`` (a
  MixedLMResults) that do not resolve, keyword arguments that the callee does not take,
  and repository paths (``sparsemixed/linalg/select.py``) that do not exist.  Python code
  blocks of every page are compiled and their ``sm.``/``sparsemixed.`` names resolved too;
* examples: the python blocks of docs/examples/*.md (and of any page containing
  ``<!-- docs: run -->``) are executed in order, one namespace per page, in a temporary
  directory.  A block that raises is a problem; a ``text`` block right after a python
  block is its expected output, and the printed numbers must agree with it (to one unit
  in the last printed digit, or 1e-4 relative) with the same words around them;
* datasets.md has a section for every bundled data set, naming each of its columns.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import html
import importlib
import inspect
import io
import os
import re
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
BUILD = DOCS / "_build"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
os.environ.setdefault("MPLBACKEND", "Agg")

RUN_MARKER = "<!-- docs: run -->"
NAV = [("index.md", "Home"), ("formula.md", "Formulas"), ("notation.md", "Notation"), ("architecture.md", "Architecture"),
       ("engine.md", "Engine"), ("glmm.md", "GLMMs"), ("scaling.md", "Scaling"), ("datasets.md", "Data sets"),
       ("examples/sleepstudy.md", "sleepstudy"), ("examples/insteval.md", "InstEval"),
       ("api.html", "API")]

# The public API documented in api.html: (section, [dotted names]).  A name that is
# optional may be missing (a module not installed or not written yet) without a problem.
API = [
    ("Fitting: the lme4 interface", ["sparsemixed.lmer", "sparsemixed.LinearMixedModel",
                                     "sparsemixed.LmerResult", "sparsemixed.OptSummary",
                                     "sparsemixed.FitControl", "sparsemixed.BoundaryRules"]),
    ("Generalized linear mixed models", ["sparsemixed.glmer", "sparsemixed.GeneralizedLinearMixedModel",
                                         "sparsemixed.glmm.result.GlmerResult",
                                         "sparsemixed.families.Binomial", "sparsemixed.families.Poisson",
                                         "sparsemixed.families.family_from"]),
    ("Model comparison and tests", ["sparsemixed.anova", "sparsemixed.lrt_variance",
                                    "sparsemixed.oneway_anova"]),
    ("The statsmodels interface", ["sparsemixed.mixedlm", "sparsemixed.MixedLM",
                                   "sparsemixed.MixedLMParams", "sparsemixed.MixedLMResults"]),
    ("Data sets", ["sparsemixed.datasets.names", "sparsemixed.datasets.load",
                   "sparsemixed.datasets.describe"]),
    ("Data larger than memory", ["?sparsemixed.io.CSV", "?sparsemixed.io.Parquet",
                                 "?sparsemixed.io.StreamedDataError"]),
    ("Profiles", ["?sparsemixed.inference.profile.profile",
                  "?sparsemixed.inference.profile.profile_confint"]),
    ("Plots (extra [plot])", ["sparsemixed.plots.caterpillar", "sparsemixed.plots.group_panels",
                              "sparsemixed.plots.residuals_vs_fitted", "sparsemixed.plots.qq",
                              "sparsemixed.plots.profile_zeta"]),
    ("Command line", ["sparsemixed.cli.main"]),
]
# Every other name in sparsemixed.__all__ is added by api_sections(): exceptions and
# warnings under "Errors and warnings", the rest under "Other".

CSS = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 0 auto; padding: 0 1rem 3rem;
       line-height: 1.5; color: #222; }
nav { border-bottom: 1px solid #ccc; padding: .6rem 0; margin-bottom: 1rem; }
nav a { margin-right: .9rem; }
pre { background: #f6f8fa; padding: .7rem; overflow-x: auto; font-size: .85rem; line-height: 1.35; }
code { font-size: .9em; background: #f6f8fa; padding: 0 .2em; }
pre code { background: none; padding: 0; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .92rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; vertical-align: top; text-align: left; }
h2, h3 { margin-top: 2rem; }
.api-item { margin: 1rem 0 1.5rem; }
.api-sig { font-family: monospace; font-weight: bold; }
.api-kind { color: #777; font-size: .85rem; margin-left: .5rem; }
"""


# ---------------------------------------------------------------------------------------
# pages and Markdown
# ---------------------------------------------------------------------------------------
def find_pages(docs: Path = DOCS) -> list[Path]:
    """Every Markdown page under ``docs`` (the build directory excluded), index first."""
    pages = sorted(p for p in docs.rglob("*.md") if "_build" not in p.relative_to(docs).parts)
    return sorted(pages, key=lambda p: (p.name != "index.md" or p.parent != docs, str(p)))


@dataclasses.dataclass
class Block:
    lang: str
    code: str
    start: int          # line number (1-based) of the opening fence
    end: int            # line number of the closing fence


FENCE = re.compile(r"^(`{3,}|~{3,})\s*([\w+-]*)")


def fenced_blocks(text: str) -> list[Block]:
    """The fenced code blocks of a Markdown text, in order."""
    out, lines, i = [], text.split("\n"), 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang, start = m.group(1), m.group(2).lower(), i
        j = i + 1
        while j < len(lines) and not lines[j].startswith(fence):
            j += 1
        out.append(Block(lang, "\n".join(lines[i + 1: j]), start + 1, j + 1))
        i = j + 1
    return out


def render(text: str) -> str:
    """Markdown -> HTML body (tables, fenced code, heading ids)."""
    import markdown

    return markdown.markdown(text, extensions=["tables", "fenced_code", "toc", "sane_lists"],
                             output_format="html")


def element_ids(body: str) -> set[str]:
    return set(re.findall(r'\sid="([^"]+)"', body))


def hrefs(body: str) -> list[str]:
    return [html.unescape(h) for h in re.findall(r'\s(?:href|src)="([^"]*)"', body)]


def inline_code(body: str) -> list[str]:
    """The text of inline code spans (code blocks excluded)."""
    body = re.sub(r"<pre>.*?</pre>", "", body, flags=re.S)
    return [html.unescape(c) for c in re.findall(r"<code>(.*?)</code>", body, flags=re.S)]


# ---------------------------------------------------------------------------------------
# references: `sparsemixed.x.y`, `result.method()`, `sm.lmer(..., keyword=...)`, paths
# ---------------------------------------------------------------------------------------
class Resolver:
    """Resolves dotted names against the package and against small sample objects."""

    INSTANCE_ROOTS = {"result": "LmerResult", "model": "LinearMixedModel", "md": "MixedLM",
                      "mdf": "MixedLMResults"}

    def __init__(self):
        self._samples = None
        import sparsemixed

        self.pkg = sparsemixed
        self.public = set(getattr(sparsemixed, "__all__", []))

    def samples(self) -> dict:
        """One fitted sleepstudy model per interface (built once, on first need)."""
        if self._samples is None:
            import warnings

            sm = self.pkg
            d = sm.datasets.load("sleepstudy")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = sm.lmer("Reaction ~ Days + (Days | Subject)", d).fit()
                md = sm.mixedlm("Reaction ~ Days", d, groups="Subject", re_formula="~Days")
                mdf = md.fit()
            self._samples = {"result": result, "model": result.model, "md": md, "mdf": mdf,
                             "LmerResult": result, "LinearMixedModel": result.model,
                             "MixedLM": md, "MixedLMResults": mdf}
        return self._samples

    def knows_root(self, root: str) -> bool:
        return root in ("sparsemixed", "sm") or root in self.INSTANCE_ROOTS or root in self.public

    def resolve(self, dotted: str):
        """(object, None) or (None, error message) for a dotted name with a known root;
        the object is None where only its existence could be established."""
        parts = dotted.split(".")
        root = parts[0]
        if root in self.INSTANCE_ROOTS:
            obj, done, rest = self.samples()[root], root, parts[1:]
        elif root in ("sm", "sparsemixed"):
            obj, done, rest = self.pkg, root, parts[1:]
        else:                                   # a public name: LmerResult.fixef
            obj, done, rest = self.pkg, "sparsemixed", parts
        for k, part in enumerate(rest):
            if obj is None:
                break
            nxt, ok = self._attr(obj, part, k == len(rest) - 1)
            if not ok:
                return None, f"{done} has no attribute {part!r}"
            obj, done = nxt, f"{done}.{part}"
        return obj, None

    def _attr(self, obj, name: str, last: bool):
        if inspect.ismodule(obj):
            if hasattr(obj, name):
                return getattr(obj, name), True
            try:
                return importlib.import_module(f"{obj.__name__}.{name}"), True
            except Exception:  # noqa: BLE001 - not a submodule (or one that cannot be imported)
                return None, False
        if inspect.isclass(obj):
            if name in dir(obj):
                return inspect.getattr_static(obj, name), True
            if dataclasses.is_dataclass(obj) and name in {f.name for f in dataclasses.fields(obj)}:
                return None, True
            sample = self.samples().get(obj.__name__) if obj.__module__.startswith("sparsemixed") else None
            if sample is not None and name in dir(sample):
                return (getattr(sample, name) if not last else None), True
            return None, False
        if name in dir(obj):
            if last:
                return inspect.getattr_static(obj, name, None), True
            try:
                return getattr(obj, name), True
            except Exception:  # noqa: BLE001 - a property that needs more than the sample
                return None, True
        return None, False

    def check_expr(self, expr: str, roots_only: tuple | None = None) -> list[str]:
        """Problems with the names (and keyword arguments) used in a Python expression or
        statement; only names whose root is known (or in ``roots_only``) are checked."""
        try:
            tree = ast.parse(expr)
        except SyntaxError:
            m = re.match(r"[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)+", expr.strip())
            if not m:
                return []
            return self._check_chain(m.group(), roots_only)
        problems: list[str] = []
        chains = {}
        inner = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute):
                d = _dotted(node)
                if d:
                    chains[id(node)] = d
                    inner.add(id(node.value))
        for node in ast.walk(tree):
            if id(node) in chains and id(node) not in inner:
                problems += self._check_chain(chains[id(node)], roots_only)
            if isinstance(node, ast.Call):
                d = _dotted(node.func)
                if d and self._wanted(d, roots_only):
                    problems += self._check_keywords(d, node)
        return problems

    def _wanted(self, dotted: str, roots_only) -> bool:
        root = dotted.split(".")[0]
        if roots_only is not None:
            return root in roots_only
        return self.knows_root(root)

    def _check_chain(self, dotted: str, roots_only) -> list[str]:
        if "." not in dotted or not self._wanted(dotted, roots_only):
            return []
        _, err = self.resolve(dotted)
        return [f"`{dotted}` does not resolve: {err}"] if err else []

    def _check_keywords(self, dotted: str, call: ast.Call) -> list[str]:
        names = [k.arg for k in call.keywords if k.arg]
        if not names:
            return []
        obj, err = self.resolve(dotted)
        if err or obj is None:
            return []
        if isinstance(obj, (staticmethod, classmethod)):
            obj = obj.__func__
        try:
            sig = inspect.signature(obj)
        except (TypeError, ValueError):
            return []
        params = sig.parameters
        if any(p.kind is p.VAR_KEYWORD for p in params.values()):
            return []
        bad = [n for n in names if n not in params]
        return [f"`{dotted}` takes no keyword argument {n!r}" for n in bad]


def _dotted(node) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


PATH_RE = re.compile(r"^[\w.-]+(?:/[\w.-]+)+/?$")


def check_path_ref(span: str) -> str | None:
    """A repository path in backticks (``sparsemixed/linalg/select.py``) must exist, relative
    to the repository, the package or docs/."""
    if not PATH_RE.match(span) or span.startswith(("http", "s3", "tcp", "docs/_build", "_build")):
        return None                             # not a path, or one the build makes
    if "." not in span.rstrip("/").split("/")[-1] and not span.endswith("/"):
        return None                             # "a/b": a ratio or a formula, not a path
    for base in (ROOT, ROOT / "sparsemixed", DOCS):
        if (base / span).exists():
            return None
    return f"path `{span}` does not exist"


# ---------------------------------------------------------------------------------------
# examples
# ---------------------------------------------------------------------------------------
NUM = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")


def _unit(token: str) -> float:
    """One unit in the last printed digit of a number token."""
    mant, _, exp = token.lower().partition("e")
    dec = len(mant.split(".")[1]) if "." in mant else 0
    return 10.0 ** (-dec + (int(exp) if exp else 0))


def compare_output(expected: str, actual: str) -> str | None:
    """None if ``actual`` prints the same numbers as ``expected`` (to one unit in the last
    digit or 1e-4 relative) with the same words around them, else what differs."""
    exp_nums, act_nums = NUM.findall(expected), NUM.findall(actual)
    skel_e = " ".join(NUM.sub("#", expected).split())
    skel_a = " ".join(NUM.sub("#", actual).split())
    if skel_e != skel_a or len(exp_nums) != len(act_nums):
        el, al = expected.strip().splitlines(), actual.strip().splitlines()
        for k in range(max(len(el), len(al))):
            e = el[k] if k < len(el) else "<end>"
            a = al[k] if k < len(al) else "<end>"
            if " ".join(NUM.sub("#", e).split()) != " ".join(NUM.sub("#", a).split()):
                return f"output line {k + 1} differs: expected {e.strip()!r}, got {a.strip()!r}"
        return f"output has {len(act_nums)} numbers, the page shows {len(exp_nums)}"
    for e, a in zip(exp_nums, act_nums):
        x, y = float(e), float(a)
        if abs(x - y) > max(1.01 * _unit(e), 1e-4 * max(abs(x), abs(y))):
            return f"printed {a}, the page shows {e}"
    return None


def run_page(path: Path, update: bool = False) -> tuple[list[str], str | None]:
    """Execute the python blocks of one page; (problems, new page text if ``update``)."""
    text = path.read_text()
    blocks = fenced_blocks(text)
    lines = text.split("\n")
    problems, replacements = [], []          # (start line idx, end line idx, new lines)
    ns = {"__name__": "__docs__"}
    rel = _rel(path)
    with tempfile.TemporaryDirectory() as tmp, _chdir(tmp), _one_blas_thread():
        for k, b in enumerate(blocks):
            if b.lang not in ("python", "py"):
                continue
            out = io.StringIO()
            try:
                code = compile(b.code, f"{rel}:{b.start}", "exec")
                with contextlib.redirect_stdout(out):
                    exec(code, ns)  # noqa: S102 - the documentation's own examples
            except Exception:  # noqa: BLE001
                tb = traceback.format_exc().strip().splitlines()
                where = [ln.strip() for ln in tb if f'"{rel}:' in ln]
                problems.append(f"{rel}:{b.start}: the python block raised {tb[-1]}"
                                + (f" ({where[-1]})" if where else ""))
                break                           # later blocks depend on this one
            printed = out.getvalue().rstrip("\n")
            nxt = blocks[k + 1] if k + 1 < len(blocks) else None
            adjacent = nxt is not None and nxt.lang in ("text", "output") and \
                all(not ln.strip() for ln in lines[b.end: nxt.start - 1])
            if adjacent:
                if update:
                    replacements.append((nxt.start, nxt.end - 1, printed.split("\n")))
                else:
                    diff = compare_output(nxt.code, printed)
                    if diff:
                        problems.append(f"{rel}:{nxt.start}: {diff}")
            elif update and printed:
                replacements.append((b.end, b.end, ["", "```text"] + printed.split("\n") + ["```"]))
    new_text = None
    if update and replacements:
        for start, end, new in sorted(replacements, reverse=True):
            lines[start:end] = new
        new_text = "\n".join(lines)
    return problems, new_text


def _one_blas_thread():
    """Examples run with one BLAS thread: small dense products are many times faster so on
    a busy machine (threaded OpenBLAS spins), and the output does not depend on the count."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


@contextlib.contextmanager
def _chdir(path):
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def runs(path: Path, docs: Path) -> bool:
    rel = path.relative_to(docs)
    return rel.parts[0] == "examples" or RUN_MARKER in path.read_text()


# ---------------------------------------------------------------------------------------
# API reference
# ---------------------------------------------------------------------------------------
def _import_dotted(name: str):
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for p in parts[cut:]:
            obj = getattr(obj, p)
        return obj
    raise ImportError(name)


def _signature(obj) -> str:
    try:
        return str(inspect.signature(obj))
    except (TypeError, ValueError):
        return ""


def _doc(obj) -> str:
    d = inspect.getdoc(obj)
    return d or ""


def _kind(raw) -> str:
    if isinstance(raw, property):
        return "property"
    if isinstance(raw, classmethod):
        return "classmethod"
    if isinstance(raw, staticmethod):
        return "staticmethod"
    if inspect.isfunction(raw):
        return "method"
    if inspect.isclass(raw):
        return "class"
    return "attribute"


def class_members(cls) -> list[tuple[str, str, object]]:
    """(name, kind, object) of the public members that sparsemixed defines on ``cls`` (its
    own and its mixins'), in alphabetical order."""
    out = []
    for name in sorted(dir(cls)):
        if name.startswith("_"):
            continue
        owner = next((k for k in cls.__mro__ if name in vars(k)), None)
        if owner is None or not owner.__module__.startswith("sparsemixed"):
            continue
        raw = vars(owner)[name]
        kind = _kind(raw)
        obj = raw.fget if isinstance(raw, property) else getattr(raw, "__func__", raw)
        if kind == "attribute" and name in getattr(cls, "__dataclass_fields__", {}):
            continue
        out.append((name, kind, obj))
    return out


def api_sections() -> list[tuple[str, list[str]]]:
    """API plus the names of ``sparsemixed.__all__`` that it does not list."""
    import sparsemixed

    listed = {n.lstrip("?") for _, names in API for n in names}
    errors, other = [], []
    for name in sparsemixed.__all__:
        full = f"sparsemixed.{name}"
        obj = getattr(sparsemixed, name, None)
        if full in listed or inspect.ismodule(obj):
            continue
        (errors if inspect.isclass(obj) and issubclass(obj, (Exception, Warning)) else other).append(full)
    return API + [(t, n) for t, n in (("Errors and warnings", errors), ("Other", other)) if n]


def api_entries() -> tuple[list, list[str]]:
    """[(section, [(id, heading, signature, kind, doc, members)])], problems."""
    sections, problems = [], []
    for title, names in api_sections():
        items = []
        for name in names:
            optional = name.startswith("?")
            name = name.lstrip("?")
            try:
                obj = _import_dotted(name)
            except (ImportError, AttributeError) as exc:
                if not optional:
                    problems.append(f"docs/build.py API: {name} cannot be imported ({exc})")
                continue
            members = []
            if inspect.isclass(obj):
                if dataclasses.is_dataclass(obj):
                    for f in dataclasses.fields(obj):
                        if f.repr or f.name == "model":
                            t = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
                            members.append((f"{name}.{f.name}", f.name, "", "field", f"type: {t}"))
                for mname, kind, mobj in class_members(obj):
                    sig = _signature(mobj) if kind in ("method", "classmethod", "staticmethod") else ""
                    if kind in ("method", "classmethod"):
                        sig = re.sub(r"^\(self,?\s*|^\(cls,?\s*", "(", sig)
                    members.append((f"{name}.{mname}", mname, sig, kind, _doc(mobj) if kind != "attribute" else ""))
            kind = "class" if inspect.isclass(obj) else "function"
            sig = _signature(obj)
            doc = _doc(obj)
            if name == "sparsemixed.cli.main":
                from sparsemixed import cli

                usage = [cli._parser().format_help()]
                sub = cli._parser()._subparsers._group_actions[0].choices
                usage += [f"$ sparsemixed {k} --help\n{v.format_help()}" for k, v in sub.items()]
                doc = doc + "\n\n" + "\n".join(usage) if doc else "\n".join(usage)
            items.append((name, name, sig, kind, doc, members))
        sections.append((title, items))
    return sections, problems


def api_html(sections) -> tuple[str, set[str]]:
    ids, parts = set(), ["<h1>API reference</h1>",
                         "<p>Generated from the docstrings by <code>docs/build.py</code>. "
                         "Import the package as <code>import sparsemixed as sm</code>.</p>", "<ul>"]
    for title, items in sections:
        sid = "sec-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        parts.append(f'<li><a href="#{sid}">{html.escape(title)}</a>: '
                     + ", ".join(f'<a href="#{i[0]}">{html.escape(i[0].split(".")[-1])}</a>' for i in items)
                     + "</li>")
    parts.append("</ul>")
    for title, items in sections:
        sid = "sec-" + re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        ids.add(sid)
        parts.append(f'<h2 id="{sid}">{html.escape(title)}</h2>')
        for name, heading, sig, kind, doc, members in items:
            ids.add(name)
            parts.append(f'<div class="api-item"><h3 id="{name}"><span class="api-sig">'
                         f'{html.escape(heading)}{html.escape(sig)}</span><span class="api-kind">{kind}'
                         f"</span></h3>")
            if doc:
                parts.append(f"<pre>{html.escape(doc)}</pre>")
            if members:
                parts.append("<dl>")
                for mid, mname, msig, mkind, mdoc in members:
                    ids.add(mid)
                    parts.append(f'<dt id="{mid}"><span class="api-sig">{html.escape(mname)}{html.escape(msig)}'
                                 f'</span><span class="api-kind">{mkind}</span></dt>')
                    parts.append(f"<dd><pre>{html.escape(mdoc)}</pre></dd>" if mdoc and "\n" in mdoc
                                 else f"<dd>{html.escape(mdoc)}</dd>")
                parts.append("</dl>")
            parts.append("</div>")
    return "\n".join(parts), ids


# ---------------------------------------------------------------------------------------
# building
# ---------------------------------------------------------------------------------------
def page_html(title: str, body: str, out_rel: Path) -> str:
    up = "../" * (len(out_rel.parts) - 1)
    nav = " ".join(f'<a href="{up}{target.replace(".md", ".html")}">{label}</a>' for target, label in NAV)
    return (f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)} - sparsemixed</title><style>{CSS}</style></head>\n"
            f"<body><nav>{nav}</nav>\n{body}\n</body></html>\n")


def _rewrite_links(body: str, src: Path, docs: Path, out: Path, out_file: Path) -> str:
    """.md links between pages -> .html; links to other repository files -> relative to
    the built page."""
    def fix(m):
        attr, url = m.group(1), html.unescape(m.group(2))
        if re.match(r"^[a-z][a-z0-9+.-]*:|^//|^#", url):
            return m.group(0)
        path, _, frag = url.partition("#")
        target = (src.parent / path).resolve()
        try:
            inside = target.relative_to(docs.resolve())
        except ValueError:
            inside = None
        if inside is not None and "_build" not in inside.parts:
            new = str(inside.with_suffix(".html")) if inside.suffix == ".md" else str(inside)
            new = os.path.relpath(BUILD_PLACEHOLDER / new, (BUILD_PLACEHOLDER / out_file).parent)
        else:
            new = os.path.relpath(target, (out / out_file).parent.resolve())
        return f'{attr}="{html.escape(new + ("#" + frag if frag else ""))}"'

    return re.sub(r'\b(href|src)="([^"]*)"', fix, body)


BUILD_PLACEHOLDER = Path("/__build__")


def _title(text: str, default: str) -> str:
    m = re.search(r"^#\s+(.+)$", text, flags=re.M)
    return m.group(1).strip() if m else default


def _link_api(body: str, api_ids: set[str], out_rel: Path) -> str:
    """Inline code naming a documented object links to its entry in api.html."""
    up = "../" * (len(out_rel.parts) - 1)

    def fix(m):
        code = html.unescape(m.group(1))
        name = re.match(r"(?:sm\.|sparsemixed\.)?([A-Za-z_][\w.]*)", code)
        if not name:
            return m.group(0)
        parts = name.group(1).rstrip(".").split(".")
        parts[0] = Resolver.INSTANCE_ROOTS.get(parts[0], parts[0]) if len(parts) > 1 else parts[0]
        full = "sparsemixed." + ".".join(parts)
        if full in api_ids:
            return f'<a href="{up}api.html#{full}">{m.group(0)}</a>'
        return m.group(0)

    parts = re.split(r"(<pre>.*?</pre>)", body, flags=re.S)
    return "".join(p if p.startswith("<pre>") else re.sub(r"<code>(.*?)</code>", fix, p) for p in parts)


def build(docs: Path = DOCS, out: Path = BUILD, check: bool = False, update: bool = False,
          run_examples: bool = True, verbose: bool = True) -> list[str]:
    """Build the HTML into ``out``; return the problems (checked when ``check``)."""
    t0 = time.perf_counter()
    problems: list[str] = []
    pages = find_pages(docs)
    sections, api_problems = api_entries()
    problems += api_problems
    api_body, api_ids = api_html(sections)
    bodies = {p: render(p.read_text()) for p in pages}
    ids = {p.resolve(): element_ids(b) for p, b in bodies.items()}
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for p, body in bodies.items():
        rel = p.relative_to(docs).with_suffix(".html")
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        page = _link_api(_rewrite_links(body, p, docs, out, rel), api_ids, rel)
        (out / rel).write_text(page_html(_title(p.read_text(), p.stem), page, rel))
    for img in docs.rglob("*"):
        if img.suffix.lower() in (".png", ".svg", ".jpg") and "_build" not in img.relative_to(docs).parts:
            dst = out / img.relative_to(docs)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(img, dst)
    (out / "api.html").write_text(page_html("API reference", api_body, Path("api.html")))
    if verbose:
        print(f"built {len(pages)} pages and api.html into {_rel(out)} ({time.perf_counter() - t0:.1f} s)")
    if not (check or update):
        return problems
    resolver = Resolver()
    readme = ROOT / "README.md"
    for p in pages + ([readme] if readme.exists() and docs == DOCS else []):
        body = bodies.get(p) or render(p.read_text())
        problems += check_links(p, body, docs, ids, api_ids)
        if p == readme:
            continue
        problems += check_references(p, body, resolver)
    if (docs / "datasets.md").exists() or docs == DOCS:
        problems += check_datasets(docs)
    if run_examples:
        for p in pages:
            if runs(p, docs):
                t = time.perf_counter()
                found, new_text = run_page(p, update=update)
                problems += found
                if update and new_text is not None:
                    p.write_text(new_text)
                if verbose:
                    print(f"ran {_rel(p)} ({time.perf_counter() - t:.1f} s)"
                          + (" and pasted its output" if update and new_text else ""))
    return problems


def check_links(page: Path, body: str, docs: Path, ids: dict, api_ids: set[str]) -> list[str]:
    out = []
    rel = _rel(page)
    for url in hrefs(body):
        if not url or re.match(r"^[a-z][a-z0-9+.-]*:|^//", url):
            continue
        path, _, frag = url.partition("#")
        if not path:
            target = page.resolve()
        else:
            target = (page.parent / path).resolve()
        generated_api = target == (docs / "api.html").resolve()
        if generated_api:
            if frag and frag not in api_ids:
                out.append(f"{rel}: link {url!r}: api.html has no entry {frag!r}")
            continue
        if not target.exists():
            out.append(f"{rel}: broken link {url!r} ({_rel(target)} does not exist)")
            continue
        if frag and target.suffix == ".md":
            known = ids.get(target)
            if known is None:
                known = element_ids(render(target.read_text()))
                ids[target] = known
            if frag not in known:
                out.append(f"{rel}: link {url!r}: no anchor {frag!r} in {_rel(target)}")
    return out


def check_references(page: Path, body: str, resolver: Resolver) -> list[str]:
    out = []
    rel = _rel(page)
    seen = set()
    for span in inline_code(body):
        span = span.strip()
        if span in seen:
            continue
        seen.add(span)
        if PATH_RE.match(span):
            err = check_path_ref(span)
            if err:
                out.append(f"{rel}: {err}")
            continue
        for e in resolver.check_expr(span):
            out.append(f"{rel}: {e}")
    for b in fenced_blocks(page.read_text()):
        if b.lang not in ("python", "py"):
            continue
        try:
            compile(b.code, f"{rel}:{b.start}", "exec")
        except SyntaxError as exc:
            out.append(f"{rel}:{b.start + (exc.lineno or 0)}: syntax error in a python block: {exc.msg}")
            continue
        for e in resolver.check_expr(b.code, roots_only=("sm", "sparsemixed")):
            out.append(f"{rel}:{b.start}: {e}")
    return out


def check_datasets(docs: Path) -> list[str]:
    """docs/datasets.md documents every bundled data set and all its columns."""
    import sparsemixed as sm

    page = docs / "datasets.md"
    if not page.exists():
        return [f"{_rel(page)} is missing"]
    body = render(page.read_text())
    ids, codes = element_ids(body), set(inline_code(body))
    out = []
    for name in sm.datasets.names():
        if name.lower() not in ids:
            out.append(f"{_rel(page)}: no section (heading '{name}') for the data set {name}")
        cols = sm.datasets.load(name).columns
        missing = [c for c in cols if c not in codes]
        if missing:
            out.append(f"{_rel(page)}: data set {name}: columns {missing} are not documented (in backticks)")
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--check", action="store_true", help="check links, references and examples; exit 1 on problems")
    ap.add_argument("--update", action="store_true", help="run the examples and paste their output into the pages")
    ap.add_argument("--no-examples", action="store_true", help="with --check: do not run the examples")
    ap.add_argument("--out", type=Path, default=BUILD, help="output directory (default docs/_build)")
    args = ap.parse_args(argv)
    try:
        import markdown  # noqa: F401
    except ImportError:
        print("docs/build.py needs the markdown package: pip install 'sparsemixed[docs]'", file=sys.stderr)
        return 2
    problems = build(DOCS, args.out, check=args.check, update=args.update,
                     run_examples=not args.no_examples)
    if problems:
        print(f"{len(problems)} problem(s):", file=sys.stderr)
        for p in problems:
            print(f"  {p}", file=sys.stderr)
        return 1 if args.check else 0
    if args.check:
        print("docs check: no problems")
    return 0


if __name__ == "__main__":
    sys.exit(main())
