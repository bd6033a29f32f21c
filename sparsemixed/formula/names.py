"""Column names in a formula as R reads them, handed to formulaic under safe aliases.

R and formulaic read names differently; sparsemixed follows R:

* ``.`` is part of a name: ``IQ.verb`` is the column ``IQ.verb`` (Python would read the
  attribute ``verb`` of a column ``IQ``).  Only when no column has the whole dotted name
  and its root is a column is it Python's attribute access (``x.fillna(0)``).
* a data column shadows a function of the same name except where it is called: with
  columns ``Treatment``, ``C``, ``scale``, ``log`` ..., ``y ~ Treatment + log + log(x)``
  uses the columns ``Treatment`` and ``log`` and the function ``log``.  (formulaic would
  leave such a column out of the variables it reads, or call the column.)
* odd names are written in backticks, ``` `my col` ```, or as ``Q("my col")``.
* ``TRUE`` and ``FALSE`` (when not columns) are Python's ``True`` and ``False``, so R's
  ``scale(x, scale = FALSE)`` reads as written; R's ``sqrt``, ``log1p``, ``expm1``,
  ``floor``, ``ceiling``, ``trunc``, ``sign``, ``sin``, ``cos``, ``tan`` (which formulaic
  does not define) are numpy's (``R_FUNCTIONS``; the column names keep R's spelling).

:func:`scan` finds the columns a formula text reads (``required``); :class:`Names`
rewrites a text for formulaic, replacing each column that formulaic could not read as
written (a name that is not a Python identifier, a keyword, a formulaic built-in such as
``C``, ``Q``, ``I``, ``poly``, ``scale``, ``center``, ``exp``, ``log``, ``Treatment``, or a
name the formula calls) by an alias such as ``sm0__IQ_verb``, renames those columns of a
data frame the same way (the fit's frame and, in ``predict``, newdata), and maps
formulaic's column names back to R's (``IQ.verb``, ``` `my col` ```).  A formula whose
columns are all plain names is handed to formulaic unchanged.
"""
from __future__ import annotations

import builtins
import functools
import keyword
import re
from dataclasses import dataclass, field

import pandas as pd

_TOKEN = re.compile(r"""
    (?P<str>"(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')
  | (?P<tick>`[^`]*`)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?[jJL]?)
  | (?P<name>(?:[^\W\d]|\.)[\w.]*)
  | (?P<other>.)
""", re.VERBOSE | re.DOTALL)
_Q_CALL = re.compile(r"""Q\(\s*("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')\s*\)""")
_R_RESERVED = {"if", "else", "repeat", "while", "function", "for", "next", "break", "TRUE", "FALSE",
               "NULL", "Inf", "NaN", "NA", "NA_integer_", "NA_real_", "NA_character_", "in"}
_R_SYNTACTIC = re.compile(r"^(?:[A-Za-z]|\.(?![0-9]))[A-Za-z0-9._]*$|^\.$")
_R_LOGICAL = {"TRUE": "True", "FALSE": "False"}
R_FUNCTIONS = {"sqrt": "np.sqrt", "log1p": "np.log1p", "expm1": "np.expm1", "floor": "np.floor",
               "ceiling": "np.ceil", "trunc": "np.trunc", "sign": "np.sign", "sin": "np.sin", "cos": "np.cos",
               "tan": "np.tan"}
_R_BACK = re.compile(r"(?<![\w.])np\.(sqrt|log1p|expm1|floor|ceil|trunc|sign|sin|cos|tan)(?=\()")


def r_functions(name: str) -> str:
    """numpy's spelling of R's functions (R_FUNCTIONS) in a formulaic name put back."""
    return _R_BACK.sub(lambda m: "ceiling" if m.group(1) == "ceil" else m.group(1), name)


@functools.lru_cache(maxsize=1)
def transform_names() -> frozenset:
    """formulaic's built-in names (its TRANSFORMS namespace: np, log, exp, C, Q, I, poly,
    scale, center, Treatment, Sum, ...)."""
    from formulaic.transforms import TRANSFORMS

    return frozenset(TRANSFORMS)


def _known(name: str) -> bool:
    """A name that means something without the data (a built-in or a transform)."""
    return name in transform_names() or hasattr(builtins, name) or keyword.iskeyword(name) or name in _R_LOGICAL


@dataclass(frozen=True)
class Ref:
    """One reference to a column in a text: ``text[start:end]`` is replaced by the column's
    spelling for formulaic (``root`` True: only the root of ``col.attr`` is the column)."""

    start: int
    end: int
    column: str
    root: bool = False


def _unquote(s: str) -> str:
    import ast

    try:
        return ast.literal_eval(s)
    except (ValueError, SyntaxError):
        return s[1:-1]


def scan(text: str, columns=None):
    """(column references, unknown names, called names, logical constants) of ``text``.

    ``columns`` (the data's column names, or None when not known yet) decides between a
    column and something else; an ``unknown`` name is neither a column nor a known name (a
    missing column, for the caller to report).  Without ``columns``, a name is taken to be
    a column unless it is a built-in used inside a call's arguments (``C(f, Treatment)``):
    a term of the formula itself (``y ~ Treatment``) can only be a column, as in R."""
    cols = None if columns is None else {c for c in columns if isinstance(c, str)}
    refs: list[Ref] = []
    unknown: list[str] = []
    called: set[str] = set()
    logical: list[tuple[int, int, str]] = []
    toks = [(m.lastgroup, m.group(), m.start(), m.end()) for m in _TOKEN.finditer(text)]
    sig = [i for i, t in enumerate(toks) if not (t[0] == "other" and t[1].isspace())]
    nxt = {sig[k]: sig[k + 1] for k in range(len(sig) - 1)}
    prv = {sig[k + 1]: sig[k] for k in range(len(sig) - 1)}
    skip_to = -1
    depth = 0
    stack: list[bool] = []              # per open parenthesis: is it a call's
    call_parens: set[int] = set()
    for i, (kind, val, start, end) in enumerate(toks):
        if i < skip_to:
            continue
        if kind == "other":
            depth += {"(": 1, ")": -1, "[": 1, "]": -1}.get(val, 0)
            if val in "([":
                stack.append(i in call_parens or val == "[")
            elif val in ")]" and stack:
                stack.pop()
            continue
        j = nxt.get(i)
        after = toks[j][1] if j is not None else ""
        if kind == "tick":
            refs.append(Ref(start, end, val[1:-1]))
            continue
        if kind != "name":
            continue
        if after == "(":                               # a call
            call_parens.add(j)
            m = _Q_CALL.match(text, start) if val == "Q" else None
            if m:
                refs.append(Ref(start, m.end(), _unquote(m.group(1))))
                skip_to = next((k for k, t in enumerate(toks) if t[2] >= m.end()), len(toks))
                continue
            root = val.split(".", 1)[0]
            if "." in val and root and (cols is None or root in cols) and not _known(root):
                refs.append(Ref(start, start + len(root), root, root=True))   # col.method(...)
            else:
                called.add(val)
                if val in R_FUNCTIONS and val not in transform_names():
                    logical.append((start, end, R_FUNCTIONS[val]))
            continue
        p = prv.get(i)
        if depth > 0 and after == "=" and (j + 1 >= len(toks) or toks[j + 1][1] != "=") and \
                p is not None and toks[p][1] in ("(", ","):
            continue                                    # a keyword argument's name
        if p is not None and toks[p][1] == "." and toks[p][0] == "other":
            continue                                    # (expr).attr
        if set(val) == {"."}:
            continue                                    # R's '.' (formulaic reports it)
        if cols is not None and val in cols:
            refs.append(Ref(start, end, val))
            continue
        root = val.split(".", 1)[0]
        if val in _R_LOGICAL:
            logical.append((start, end, _R_LOGICAL[val]))
        elif cols is not None and "." in val and root in cols:
            refs.append(Ref(start, start + len(root), root, root=True))
        elif not any(stack) and "." not in val and not keyword.iskeyword(val):
            if cols is None:                            # a term of the formula: a column
                refs.append(Ref(start, end, val))
            else:
                unknown.append(val)
        elif _known(val) or ("." in val and _known(root)):
            continue
        elif cols is None:
            refs.append(Ref(start, end, val))
        else:
            unknown.append(val)
    return refs, unknown, called, logical


def required(text: str, columns=None) -> set[str]:
    """The columns ``text`` reads, and any name that is neither a column nor a built-in."""
    refs, unknown, _, _ = scan(text, columns)
    return {r.column for r in refs} | set(unknown)


def r_display(col: str) -> str:
    """How R prints a variable name: as it is when syntactic, else in backticks."""
    return col if _R_SYNTACTIC.match(col) and col not in _R_RESERVED else f"`{col}`"


@dataclass(frozen=True)
class Names:
    """The aliases of a model's columns for formulaic (see the module docstring)."""

    aliases: tuple = ()           # ((column, alias), ...)
    columns: tuple | None = None  # the data's columns the texts were read against
    _restore: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self):
        self._restore.update({a: r_display(c) for c, a in self.aliases})

    @classmethod
    def build(cls, texts, columns, also=()) -> "Names":
        """The aliases for the columns ``texts`` read and the columns ``also`` handed to
        formulaic with them (grouping factors: a column ``log`` in the frame would shadow
        the function ``log`` of ``log(x)``)."""
        cols = [c for c in columns if isinstance(c, str)]
        called: set[str] = set()
        used: dict[str, None] = {}
        for t in texts:
            refs, _, call, _ = scan(t, cols)
            called |= call
            used.update((r.column, None) for r in refs)
        used.update((c, None) for c in also if isinstance(c, str))
        taken = set(cols) | set(transform_names()) | called
        aliases = []
        for k, c in enumerate(used):
            if c.isidentifier() and not keyword.iskeyword(c) and c not in transform_names() and c not in called \
                    and not c.startswith("__"):
                continue
            base = re.sub(r"\W", "_", c) or "col"
            alias = f"sm{k}__{base}"
            while alias in taken:
                alias += "_"
            taken.add(alias)
            aliases.append((c, alias))
        return cls(tuple(aliases), tuple(cols))

    @property
    def mapping(self) -> dict:
        return dict(self.aliases)

    def text(self, text: str) -> str:
        """``text`` with each column spelled for formulaic (R's ``TRUE``/``FALSE`` as Python's)."""
        refs, _, _, logical = scan(text, self.columns)
        alias = self.mapping
        edits = [(r.start, r.end, alias.get(r.column, r.column)) for r in refs]
        edits += logical
        for start, end, new in sorted(edits, reverse=True):
            text = text[:start] + new + text[end:]
        return text

    def frame(self, data):
        """``data`` with the aliased columns renamed (the others as they are; not copied when
        nothing is renamed)."""
        if not self.aliases or not isinstance(data, pd.DataFrame):
            return data
        ren = {c: a for c, a in self.aliases if c in data.columns}
        return data.rename(columns=ren) if ren else data

    def restore(self, text: str) -> str:
        """The aliases in a formulaic name put back as R prints the columns."""
        if not self._restore:
            return text
        pat = "|".join(re.escape(a) for a in sorted(self._restore, key=len, reverse=True))
        return re.sub(rf"(?<![\w.])(?:{pat})(?![\w])", lambda m: self._restore[m.group()], text)
