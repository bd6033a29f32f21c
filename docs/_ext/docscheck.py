"""Sphinx extension: the checks of sparsemixed's documentation beyond Sphinx's own.

Loaded by docs/conf.py; ``make docs`` (``sphinx-build -W -n``) turns each problem below into
a failed build, and tests/test_docs.py runs that build.  Sphinx and MyST check the links
between pages and their anchors, and (``nitpicky``) every cross-reference; this extension adds:

* examples: the python blocks of docs/examples/*.md and of every page containing
  ``<!-- docs: run -->`` are executed in order, one namespace per page, in a temporary
  directory, with one BLAS thread.  A block that raises is a problem; a ``text`` block
  right after a python block is its expected output, and the printed numbers must agree
  with it (to one unit in the last printed digit, or 1e-4 relative) with the same words
  around them.  ``python docs/_ext/docscheck.py --update [PAGE ...]`` runs the examples
  and pastes their output into the pages instead;
* names in inline code: dotted names rooted at ``sparsemixed`` (or ``sm``), at a public
  name of the package (``LmerResult.fixef``), or at the conventional variables ``result``
  (an LmerResult), ``model`` (a LinearMixedModel), ``md`` (a MixedLM) and ``mdf`` (a
  MixedLMResults) must resolve, keyword arguments must be ones the callee takes, and
  repository paths (``sparsemixed/linalg/select.py``) must exist.  The python blocks of
  every page must compile and their ``sm.``/``sparsemixed.`` names resolve.  Inline code
  naming a documented object links to its entry in the API reference;
* links from a page to repository files outside docs/ (``../benchmarks/README.md#speed``):
  the file, and for Markdown the anchor, must exist; the built page links to the file in
  the checkout.  The README's links are checked the same way;
* datasets.md has a section for every bundled data set, naming each of its columns;
* the API reference: a name of ``sparsemixed.__all__`` that no page under docs/api/
  documents is documented under "Other public names" (``{sparsemixed-undocumented}``);
  a cross-reference, in a docstring, to an object of the package that exists but has no
  entry of its own (a private helper, an internal class in a signature) is shown as code
  without a link, or links to the entry of the same object under its public name
  (``sparsemixed.results.LmerResult`` -> ``sparsemixed.LmerResult``); a reference to a
  name that does not exist stays a broken reference;
* ``docscheck_verbatim`` (conf.py): docstrings shown as preformatted text because they are
  not valid reStructuredText yet.
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import dataclasses
import importlib
import inspect
import io
import os
import re
import sys
import tempfile
import traceback
from pathlib import Path

DOCS = Path(__file__).resolve().parents[1]
ROOT = DOCS.parent
RUN_MARKER = "<!-- docs: run -->"
API_DIR = "api"

try:                                        # Sphinx is only needed for the extension
    from docutils import nodes
    from docutils.statemachine import StringList
    from sphinx import addnodes
    from sphinx.transforms import SphinxTransform
    from sphinx.util import logging
    from sphinx.util.docutils import SphinxDirective
    from sphinx.util.nodes import make_refnode

    logger = logging.getLogger(__name__)
except ImportError:  # pragma: no cover - the --update command line without Sphinx
    SphinxTransform = SphinxDirective = object
    logger = None


# ---------------------------------------------------------------------------------------
# fenced code blocks of a Markdown source
# ---------------------------------------------------------------------------------------
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


def runs(path: Path, docs: Path = DOCS) -> bool:
    """Whether the examples of a page are run: docs/examples/*.md and marked pages."""
    rel = path.resolve().relative_to(docs.resolve())
    return rel.parts[0] == "examples" or RUN_MARKER in path.read_text()


# ---------------------------------------------------------------------------------------
# examples: run them, compare their printed numbers with the page
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


def run_page(path: Path, update: bool = False) -> tuple[list[tuple[int, str]], str | None]:
    """Execute the python blocks of one page: ([(line, problem)], the page's new text when
    ``update`` and some output changed)."""
    text = path.read_text()
    blocks = fenced_blocks(text)
    lines = text.split("\n")
    problems, replacements = [], []          # (start line idx, end line idx, new lines)
    ns = {"__name__": "__docs__"}
    label = _rel(path)
    with tempfile.TemporaryDirectory() as tmp, _chdir(tmp), _one_blas_thread():
        for k, b in enumerate(blocks):
            if b.lang not in ("python", "py"):
                continue
            out = io.StringIO()
            try:
                code = compile(b.code, f"{label}:{b.start}", "exec")
                with contextlib.redirect_stdout(out):
                    exec(code, ns)  # noqa: S102 - the documentation's own examples
            except Exception:  # noqa: BLE001
                tb = traceback.format_exc().strip().splitlines()
                where = [ln.strip() for ln in tb if f'"{label}:' in ln]
                problems.append((b.start, f"the python block raised {tb[-1]}"
                                 + (f" ({where[-1]})" if where else "")))
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
                        problems.append((nxt.start, diff))
            elif update and printed:
                replacements.append((b.end, b.end, ["", "```text"] + printed.split("\n") + ["```"]))
    new_text = None
    if update and replacements:
        for start, end, new in sorted(replacements, reverse=True):
            lines[start:end] = new
        new_text = "\n".join(lines)
        if new_text == text:
            new_text = None
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
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


# ---------------------------------------------------------------------------------------
# names in inline code and code blocks: `sparsemixed.x.y`, `result.method()`, paths
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
            with warnings.catch_warnings(), _one_blas_thread():
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


def check_span(span: str, resolver: Resolver) -> list[str]:
    """Problems with one inline code span of a page."""
    span = span.strip()
    if PATH_RE.match(span):
        err = check_path_ref(span)
        return [err] if err else []
    return resolver.check_expr(span)


def check_code_blocks(text: str, resolver: Resolver) -> list[tuple[int, str]]:
    """The python blocks of a page compile and their ``sm.``/``sparsemixed.`` names resolve."""
    out = []
    for b in fenced_blocks(text):
        if b.lang not in ("python", "py"):
            continue
        try:
            compile(b.code, f"line {b.start}", "exec")
        except SyntaxError as exc:
            out.append((b.start + (exc.lineno or 0), f"syntax error in a python block: {exc.msg}"))
            continue
        for e in resolver.check_expr(b.code, roots_only=("sm", "sparsemixed")):
            out.append((b.start, e))
    return out


# ---------------------------------------------------------------------------------------
# links to repository files outside docs/ (and the README's links)
# ---------------------------------------------------------------------------------------
def _slugify(text: str) -> str:
    try:
        from myst_parser.slugs import github_slugify
    except ImportError:  # pragma: no cover - myst-parser < 5.2
        from myst_parser.mdit_to_docutils.base import default_slugify as github_slugify
    return github_slugify(text)


def markdown_anchors(path: Path) -> set[str]:
    """The heading ids of a Markdown file (GitHub's, as MyST makes them) and its ``id=``."""
    from markdown_it import MarkdownIt

    text = path.read_text()
    tokens = MarkdownIt("commonmark").parse(text)
    ids, seen = set(), {}
    for k, tok in enumerate(tokens):
        if tok.type == "heading_open" and k + 1 < len(tokens):
            slug = _slugify(tokens[k + 1].content)
            n = seen.get(slug, 0)
            seen[slug] = n + 1
            ids.add(slug if n == 0 else f"{slug}-{n}")
    ids |= set(re.findall(r'\sid="([^"]+)"', text))
    return ids


def check_file_link(target: Path, anchor: str | None) -> str | None:
    """None if ``target`` exists and, for Markdown, has the heading ``anchor``."""
    if not target.exists():
        return f"{_rel(target)} does not exist"
    if anchor and target.suffix == ".md" and anchor not in markdown_anchors(target):
        return f"no anchor {anchor!r} in {_rel(target)}"
    return None


def readme_problems(readme: Path = ROOT / "README.md") -> list[tuple[int, str]]:
    """Links of the README to missing files or anchors (external URLs are not fetched)."""
    if not readme.exists():
        return []
    from markdown_it import MarkdownIt

    out = []
    for tok in MarkdownIt("commonmark").parse(readme.read_text()):
        for child in tok.children or []:
            url = child.attrGet("href") or child.attrGet("src") if child.type in ("link_open", "image") else None
            if not url or re.match(r"^[a-z][a-z0-9+.-]*:|^//", url):
                continue
            path, _, frag = url.partition("#")
            err = check_file_link((readme.parent / path).resolve() if path else readme, frag or None)
            if err:
                out.append(((tok.map[0] + 1) if tok.map else 0, f"link {url!r}: {err}"))
    return out


class RepositoryLinks(SphinxTransform):
    """``[text](../benchmarks/README.md#speed)``: a link from a page to a file of the
    repository outside docs/ is checked, then made a plain link to the file in the
    checkout, relative to the built page.  (MyST would look for a document there.)"""

    default_priority = 200

    def apply(self, **kwargs) -> None:
        srcdir = Path(self.env.srcdir).resolve()
        docdir = (srcdir / self.env.docname).parent
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst" or node.get("refdomain") != "doc":
                continue
            target = node["reftarget"]
            if target in self.env.found_docs:
                continue
            base = Path(target) if Path(target).is_absolute() else srcdir / target
            for suffix in self.config.source_suffix:
                if base.with_name(base.name + suffix).exists():
                    self._replace(node, base.with_name(base.name + suffix), node.get("reftargetid"))
                    break
        for node in list(self.document.findall(addnodes.download_reference)):
            if node.get("reftype") != "myst":
                continue
            path, _, frag = node["reftarget"].partition("#")
            target = (docdir / path).resolve()
            if not target.is_relative_to(srcdir):
                self._replace(node, target, frag or None)

    def _replace(self, node, target: Path, anchor: str | None) -> None:
        err = check_file_link(target, anchor)
        if err:
            logger.warning(f"link to {_rel(target)}: {err}", location=node, type="docscheck",
                           subtype="link")
        page_dir = (Path(self.app.outdir) / self.env.docname).parent
        uri = os.path.relpath(target, page_dir) + (f"#{anchor}" if anchor else "")
        ref = nodes.reference("", "", internal=False, refuri=uri)
        for child in node.children:
            ref += child.deepcopy()
        node.replace_self(ref)


# ---------------------------------------------------------------------------------------
# the Sphinx side: per page checks, the API reference
# ---------------------------------------------------------------------------------------
def _page_literals(doctree, in_links: bool = True):
    """Inline code written in the page itself: not a role's text (``{class}`x```), not a
    docstring's, not in a heading or a code block; in the text of a link or not."""
    stop = (addnodes.desc, nodes.title, nodes.literal_block)
    if not in_links:
        stop += (nodes.reference, addnodes.pending_xref)
    for node in doctree.findall(nodes.literal):
        if "xref" in node.get("classes", []):
            continue
        anc, skip = node.parent, False
        while anc is not None and not skip:
            skip = isinstance(anc, stop) or ":docstring of " in (anc.get("source") or "")
            anc = anc.parent
        if not skip:
            yield node


def _warn(msg: str, docname: str, line: int | None = None, subtype: str = "check") -> None:
    logger.warning(msg, location=(docname, line) if line else docname, type="docscheck",
                   subtype=subtype)


def _resolver(app) -> Resolver:
    if getattr(app, "_docscheck_resolver", None) is None:
        app._docscheck_resolver = Resolver()
    return app._docscheck_resolver


def on_doctree_read(app, doctree) -> None:
    env = app.env
    docname = env.docname
    path = Path(env.doc2path(docname))
    if path.suffix != ".md":
        return
    text = path.read_text()
    resolver = _resolver(app)
    seen = set()
    for node in _page_literals(doctree):
        span = node.astext().strip()
        if span in seen:
            continue
        seen.add(span)
        for problem in check_span(span, resolver):
            _warn(problem, docname, node.line or _line_of(node), "reference")
    for line, problem in check_code_blocks(text, resolver):
        _warn(problem, docname, line, "reference")
    if docname == "datasets":
        for problem in datasets_problems(doctree):
            _warn(problem, docname, None, "datasets")
    if app.config.docscheck_run_examples and runs(path, Path(env.srcdir)):
        problems, _ = run_page(path)
        for line, problem in problems:
            _warn(problem, docname, line, "example")


def _line_of(node) -> int | None:
    while node is not None:
        if getattr(node, "line", None):
            return node.line
        node = node.parent
    return None


def datasets_problems(doctree) -> list[str]:
    """docs/datasets.md documents every bundled data set and all its columns."""
    import sparsemixed as sm

    ids = {i for sec in doctree.findall(nodes.section) for i in sec["ids"]}
    codes = {n.astext() for n in doctree.findall(nodes.literal)}
    out = []
    for name in sm.datasets.names():
        if name.lower() not in ids:
            out.append(f"no section (heading '{name}') for the data set {name}")
        missing = [c for c in sm.datasets.load(name).columns if c not in codes]
        if missing:
            out.append(f"data set {name}: columns {missing} are not documented (in backticks)")
    return out


def on_check_consistency(app, env) -> None:
    for line, problem in readme_problems():
        logger.warning(f"README.md:{line}: {problem}", type="docscheck", subtype="link")


def _import_dotted(name: str):
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for p in parts[cut:]:
            obj = inspect.getattr_static(obj, p) if inspect.isclass(obj) else getattr(obj, p)
        return obj
    raise ImportError(name)


def _documentable(obj) -> bool:
    """Objects whose identity names them (not ints, strings ... shared by many names)."""
    return inspect.ismodule(obj) or inspect.isclass(obj) or inspect.isroutine(obj) or \
        isinstance(obj, (property, classmethod, staticmethod))


def _documented(app) -> dict[int, tuple[str, str, str]]:
    """id(object) -> (name, docname, anchor) of every object with an entry (built once per
    process, after reading: ids mean nothing in another process, so not kept in the env)."""
    env = app.env
    cache = getattr(app, "_docscheck_documented", None)
    if cache is None:
        cache = {}
        for name, entry in env.get_domain("py").objects.items():
            if not name.startswith("sparsemixed") or getattr(entry, "aliased", False):
                continue
            try:
                obj = _import_dotted(name)
            except Exception:  # noqa: BLE001 - a dataclass field, a name only in the docs
                continue
            if _documentable(obj):
                cache.setdefault(id(obj), (name, entry.docname, entry.node_id))
        app._docscheck_documented = cache
    return cache


def on_env_purge(app, env, docname) -> None:
    app._docscheck_documented = None


def on_missing_reference(app, env, node, contnode):
    """A py reference to an object of the package that exists: the entry of the same object
    under its documented name, or plain code when it has none.  Anything else stays
    missing (and fails the nitpicky build)."""
    if node.get("refdomain") != "py":
        return None
    target = node["reftarget"].lstrip(".~")
    mod, cls = node.get("py:module"), node.get("py:class")
    candidates = [target]
    if mod and cls:
        candidates.append(f"{mod}.{cls}.{target}")
    if mod:
        candidates.append(f"{mod}.{target}")
    # in a docstring, also relative to where the documented object is defined:
    # "...: docstring of sparsemixed.optimize.BoundaryRules" -> sparsemixed.optimize.<target>
    m = re.search(r":docstring of ([\w.]+)", _source_of(node))
    if m:
        owner = m.group(1).split(".")
        candidates += [".".join(owner[:k] + [target]) for k in range(len(owner), 0, -1)]
    candidates.append(f"sparsemixed.{target}")
    for name in candidates:
        if not name.startswith("sparsemixed"):
            continue
        try:
            obj = _import_dotted(name)
        except Exception:  # noqa: BLE001
            continue
        found = _documented(app).get(id(obj)) if _documentable(obj) else None
        if found:
            full, docname, anchor = found
            return make_refnode(app.builder, node["refdoc"], docname, anchor, contnode, full)
        return contnode
    return None


def _source_of(node) -> str:
    while node is not None:
        if isinstance(node, nodes.Element) and node.get("source"):
            return node["source"]
        if getattr(node, "source", None):
            return node.source
        node = node.parent
    return ""


def on_process_docstring(app, what, name, obj, options, lines) -> None:
    """Docstrings listed in ``docscheck_verbatim`` are shown as preformatted text."""
    real = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
    if inspect.ismodule(obj):
        real = obj.__name__
    verbatim = set(app.config.docscheck_verbatim)
    if lines and (name in verbatim or real in verbatim):
        tail = []                               # numpydoc's mark (a comment), kept last
        while lines and (not lines[-1].strip() or lines[-1].strip() in ("..", "!! processed by numpydoc !!")):
            tail.insert(0, lines.pop())
        lines[:] = ["::", ""] + ["    " + ln if ln.strip() else "" for ln in lines] + [""] + tail


def on_doctree_resolved(app, doctree, docname) -> None:
    """Inline code naming a documented object links to its entry: `LmerResult.fixef`,
    `result.confint(method="profile")`, `sm.datasets.load`."""
    py = app.env.get_domain("py").objects
    for node in list(_page_literals(doctree, in_links=False)):
        m = re.match(r"(?:sm\.|sparsemixed\.)?([A-Za-z_][\w.]*)", node.astext())
        if not m:
            continue
        parts = m.group(1).rstrip(".").split(".")
        if len(parts) > 1:
            parts[0] = Resolver.INSTANCE_ROOTS.get(parts[0], parts[0])
        entry = py.get("sparsemixed." + ".".join(parts))
        if entry is None:
            continue
        uri = app.builder.get_relative_uri(docname, entry.docname) + "#" + entry.node_id
        ref = nodes.reference("", "", internal=True, refuri=uri, reftitle="sparsemixed." + ".".join(parts))
        node.replace_self(ref)
        ref += node


class Undocumented(SphinxDirective):
    """The names of ``sparsemixed.__all__`` that no page under docs/api/ documents
    (``autofunction`` / ``autoclass`` / ``automodule`` ... of the same object)."""

    def run(self):
        import sparsemixed

        documented_names, documented_ids = set(), set()
        api = Path(self.env.srcdir) / API_DIR
        directive = re.compile(r"^\s*\.\. auto\w+::\s*([\w.]+)\s*$", re.M)
        for page in sorted(api.glob("*.md")):
            text = page.read_text()
            for name in directive.findall(text):
                documented_names.add(name)
                with contextlib.suppress(Exception):
                    documented_ids.add(id(_import_dotted(name)))
            self.env.note_dependency(str(page))
        lines = []
        for name in sparsemixed.__all__:
            obj = getattr(sparsemixed, name)
            if f"sparsemixed.{name}" in documented_names or id(obj) in documented_ids:
                continue
            if inspect.ismodule(obj):
                kind, opts = "automodule", ["   :members:"]
            elif inspect.isclass(obj) and issubclass(obj, BaseException):
                kind, opts = "autoexception", []
            elif inspect.isclass(obj):
                kind, opts = "autoclass", []
            elif callable(obj):
                kind, opts = "autofunction", []
            else:
                kind, opts = "autodata", []
            lines += ["```{eval-rst}", f".. {kind}:: sparsemixed.{name}", *opts, "```", ""]
            logger.info(f"docs/api: sparsemixed.{name} is documented under 'Other public names'")
        if not lines:
            lines = ["None: every public name has its place in the reference."]
        container = nodes.container()
        self.state.nested_parse(StringList(lines), self.content_offset, container)
        return container.children


class CliHelp(SphinxDirective):
    """The ``--help`` of the command line and of each of its commands."""

    def run(self):
        from sparsemixed import cli

        parser = cli._parser()
        texts = [("sparsemixed --help", parser.format_help())]
        for action in parser._actions:
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                texts += [(f"sparsemixed {k} --help", v.format_help()) for k, v in choices.items()]
        out = []
        for title, text in texts:
            out.append(nodes.literal_block(text, f"$ {title}\n{text}", language="text"))
        return out


def setup(app):
    app.add_config_value("docscheck_run_examples", True, "env", types=(bool,))
    app.add_config_value("docscheck_verbatim", [], "env", types=(list, tuple, set))
    app.add_transform(RepositoryLinks)
    app.add_directive("sparsemixed-undocumented", Undocumented)
    app.add_directive("sparsemixed-cli-help", CliHelp)
    app.connect("doctree-read", on_doctree_read)
    app.connect("env-check-consistency", on_check_consistency)
    app.connect("env-purge-doc", on_env_purge)
    app.connect("autodoc-process-docstring", on_process_docstring, priority=600)
    app.connect("missing-reference", on_missing_reference)
    app.connect("doctree-resolved", on_doctree_resolved)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}


# ---------------------------------------------------------------------------------------
# command line: paste the examples' output into the pages
# ---------------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="Run the examples of the documentation's pages; "
                                             "report (or, with --update, paste) their output.")
    ap.add_argument("pages", nargs="*", type=Path,
                    help="Markdown pages (default: every page whose examples run)")
    ap.add_argument("--update", action="store_true", help="paste the printed output into the pages")
    args = ap.parse_args(argv)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    os.environ.setdefault("MPLBACKEND", "Agg")
    pages = args.pages or [p for p in sorted(DOCS.rglob("*.md"))
                           if "_build" not in p.relative_to(DOCS).parts and runs(p)]
    status = 0
    for page in pages:
        problems, new = run_page(page, update=args.update)
        for line, problem in problems:
            print(f"{_rel(page)}:{line}: {problem}", file=sys.stderr)
            status = 1
        if new is not None:
            page.write_text(new)
            print(f"{_rel(page)}: output pasted")
    return status


if __name__ == "__main__":
    sys.exit(main())
