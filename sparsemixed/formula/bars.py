"""Split an lme4 formula into its fixed part and its random-effects ("bar") terms.

    y ~ fixed + (expr | g) + (expr || g1:g2) + (1 | a/b)

* ``(expr | g)``   one term with a full (correlated) covariance of ``expr``'s columns;
* ``(expr || g)``  one term per term of ``expr`` (uncorrelated), lme4's ``||``;
* ``g1:g2``        the interaction of two grouping factors;
* ``a/b``          nesting, ``b:a + a`` (lme4 names the nested factor ``b:a``).

The terms come out in the order of lme4's ``findbars`` (which the model then sorts by
``assemble.lme4_term_order``): ``||`` is expanded first, into ``1`` (unless ``0 +`` /
``- 1``) then ``0 + t`` for each term t of ``expr`` in the order of R's ``terms()`` labels
(by degree: ``x*z`` gives x, z, x:z); then each term's ``a/b/c`` into ``c:b:a, b:a, a``,
the most deeply nested first.  So ``(1 + x || a/b)`` is ``(1|b:a) (1|a) (0+x|b:a) (0+x|a)``.

The fixed part is handed to formulaic unchanged (but for R's ``^``, below, and the column
names of names.py); only the bar terms are parsed here, and ``offset(expr)`` terms of the
fixed part are taken out of it (``ParsedFormula.offsets``: known terms added to the linear
predictor, lme4's offset()).  Grouping factors are column names, in backticks
(``(1 | `my grp`)``) or ``Q("my grp")`` when they are not syntactic names.

``^`` inside a function call (``I(x^2)``, ``log(x^2)``) is R's power, which Python spells
``**`` (in Python ``^`` is bitwise xor: formulaic would fit ``x xor 2`` for an integer x,
silently); between terms, ``(a + b)^2`` stays formulaic's interaction power, as in R.
"""
from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from ..errors import FormulaError

_NAME = re.compile(r"^(?:[^\W\d]|\.)[\w.]*$|^`[^`]+`$")
_QNAME = re.compile(r"""^Q\(\s*("(?:\\.|[^"\\])*"|'(?:\\.|[^'\\])*')\s*\)$""")


@dataclass(frozen=True)
class BarTerm:
    """One random-effects term ``(expr | factors)``.

    ``expr`` is the formula of the term's model matrix (formulaic syntax, intercept
    implied unless ``0 +`` or ``- 1``); ``factors`` names the grouping variables whose
    interaction defines the groups, in lme4's order (``b:a`` -> ``("b", "a")``).
    """

    expr: str
    factors: tuple[str, ...]

    @property
    def group_name(self) -> str:
        return ":".join(self.factors)

    def __str__(self) -> str:
        return f"({self.expr} | {self.group_name})"


@dataclass(frozen=True)
class ParsedFormula:
    response: str
    fixed: str          # right-hand side of the fixed part, formulaic syntax
    bars: tuple[BarTerm, ...]
    text: str
    offsets: tuple[str, ...] = ()     # the expressions of the fixed part's offset(...) terms

    @property
    def fixed_formula(self) -> str:
        return f"{self.response} ~ {self.fixed}"


def _outside_quotes(text: str):
    """(i, ch) for each character of ``text`` outside quotes and backticks (the quote
    characters themselves left out): what the scanners below see of a formula."""
    quote = None
    for i, ch in enumerate(text):
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"`":
            quote = ch
        else:
            yield i, ch


def _split_top(text: str, sep: str) -> list[str]:
    """Split ``text`` on ``sep`` at parenthesis depth 0 (not inside quotes or backticks)."""
    parts, depth, start = [], 0, 0
    for i, ch in _outside_quotes(text):
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == sep and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return parts


def _check_parens(text: str, formula: str) -> None:
    depth = 0
    for _, ch in _outside_quotes(text):
        depth += ch == "("
        depth -= ch == ")"
        if depth < 0:
            raise FormulaError(f"unbalanced parentheses in formula {formula!r}: a ')' has no matching '('")
    if depth:
        raise FormulaError(f"unbalanced parentheses in formula {formula!r}: {depth} '(' not closed")


def _strip_outer(s: str) -> str:
    s = s.strip()
    while s.startswith("(") and s.endswith(")"):
        depth = 0
        for i, ch in enumerate(s):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0 and i < len(s) - 1:
                return s
        s = s[1:-1].strip()
    return s


def _expand_groups(gexpr: str, formula: str) -> list[tuple[str, ...]]:
    """``a/b`` -> [(b, a), (a,)];  ``a/b/c`` -> [(c, b, a), (b, a), (a,)] (lme4's
    expandSlash: the most deeply nested first);  ``a:b`` -> [(a, b)];  ``a + b`` -> [(a,), (b,)]."""
    out: list[tuple[str, ...]] = []
    for piece in _split_top(gexpr, "+"):
        piece = _strip_outer(piece)
        if not piece:
            raise FormulaError(f"empty grouping factor in a random-effects term of {formula!r}")
        nest = [p.strip() for p in _split_top(piece, "/")]
        for level in reversed(range(len(nest))):
            # lme4's expandSlash: a/b -> b:a + a ; within one part keep the written order
            names: list[str] = []
            for part in reversed(nest[: level + 1]):
                names.extend(x.strip() for x in _split_top(part, ":"))
            for n in names:
                if not n or not (_NAME.match(n) or _QNAME.match(n)):
                    raise FormulaError(
                        f"grouping factor {n!r} in {formula!r} is not a column name; "
                        "grouping factors are column names joined by ':' or '/' (odd names in "
                        "backticks, `my group`, or as Q(\"my group\"))"
                    )
            tup = tuple(_group_name(n) for n in names)
            if tup not in out:
                out.append(tup)
    return out


def _group_name(n: str) -> str:
    r"""A grouping factor's column: ``g``, ``\`my g\``` or ``Q("my g")`` -> the name."""
    m = _QNAME.match(n)
    if m:
        import ast

        return ast.literal_eval(m.group(1))
    return n[1:-1] if n.startswith("`") and n.endswith("`") else n


def _offset_call(term: str) -> str | None:
    """``offset(expr)`` -> ``expr``; anything else -> None."""
    m = re.match(r"^offset\s*\(", term)
    if not m or not term.endswith(")"):
        return None
    inner = term[m.end():-1]
    return inner.strip() if _strip_outer("(" + inner + ")") == inner.strip() else None


def _expr_columns(expr: str) -> list[str]:
    """Split a term's expression into its terms for ``||`` (lme4's expandDoubleVerts):
    ``"1"`` first unless the intercept is removed, then ``"0 + t"`` for each term t in the
    order of R's ``terms()`` labels (formulaic's: by degree, then as written; ``*``
    expanded).  A term written as a piece of ``expr`` keeps its text."""
    intercept, pieces = _expr_pieces(expr)
    try:
        import formulaic

        labels = [str(t) for t in formulaic.Formula(expr)]
        own = {}
        for p in pieces:
            lab = [str(t) for t in formulaic.Formula(f"0 + {p}")]
            if len(lab) == 1:
                own.setdefault(lab[0], p)
        intercept = "1" in labels
        pieces = [own.get(lab, lab) for lab in labels if lab != "1"]
    except Exception:       # not formulaic syntax: the written pieces, for the encoding to report
        pass
    return (["1"] if intercept else []) + [f"0 + {t}" for t in pieces]


def _expr_pieces(expr: str) -> tuple[bool, list[str]]:
    """(intercept kept, the written pieces of ``expr``) split at ``+`` and ``-``."""
    pieces = [p.strip() for p in _split_top(expr, "+")]
    has_intercept = True
    terms = []
    for p in pieces:
        if p in ("0", "-1") or p == "":
            if p != "":
                has_intercept = False
            continue
        if p == "1":
            continue
        for q in _split_top(p, "-"):
            q = q.strip()
            if q == "1":
                has_intercept = False
            elif q == "0":
                has_intercept = False
            elif q:
                terms.append(q)
    return has_intercept, terms


def r_power(text: str) -> str:
    """``^`` inside a function call's parentheses -> ``**`` (R's power); elsewhere, and
    inside quotes or backticks, unchanged."""
    out, stack = list(text), []
    for i, ch in _outside_quotes(text):
        if ch == "(":
            j = i - 1
            while j >= 0 and text[j] == " ":
                j -= 1
            stack.append(j >= 0 and (text[j].isalnum() or text[j] in "_."))   # a call: name(
        elif ch == ")" and stack:
            stack.pop()
        elif ch == "^" and any(stack) and not (i and text[i - 1] == "*"):     # (x*^2: not R, left as it is)
            out[i] = "**"
    return "".join(out)


def parse_formula(formula: str) -> ParsedFormula:
    """Parse an lme4 formula string; see the module docstring for the syntax.  (Parsed
    once per distinct text: a ParsedFormula is immutable; errors are raised each time.)"""
    if not isinstance(formula, str):
        raise FormulaError(f"the formula must be a string such as 'y ~ x + (1 | g)', got {type(formula).__name__}")
    return _parse_formula(formula)


@functools.lru_cache(maxsize=512)
def _parse_formula(formula: str) -> ParsedFormula:
    text = r_power(formula.strip())
    _check_parens(text, formula)
    sides = _split_top(text, "~")
    if len(sides) != 2 or not sides[0].strip() or not sides[1].strip():
        raise FormulaError(
            f"formula {formula!r} must have the form 'response ~ terms', with one '~' outside parentheses"
        )
    response, rhs = sides[0].strip(), sides[1].strip()
    fixed_parts: list[str] = []
    offsets: list[str] = []
    bars: list[BarTerm] = []
    # split on top-level '+' but keep '-' terms with the fixed part
    for raw in _split_top(rhs, "+"):
        piece = raw.strip()
        if not piece:
            raise FormulaError(f"empty term (two '+' in a row or a trailing '+') in formula {formula!r}")
        inner = _strip_outer(piece) if piece.startswith("(") and piece.endswith(")") else None
        if inner is not None and len(_split_top(inner, "|")) > 1:
            double = "||" in inner and len(_split_top(inner.replace("||", "\x00"), "\x00")) == 2
            if double:
                lhs, gexpr = _split_top(inner.replace("||", "\x00"), "\x00")
            else:
                parts = _split_top(inner, "|")
                if len(parts) != 2:
                    raise FormulaError(f"random-effects term {piece!r} in {formula!r} must have exactly one '|' or '||'")
                lhs, gexpr = parts
            lhs, gexpr = lhs.strip(), gexpr.strip()
            if "|" in lhs or "|" in gexpr:
                raise FormulaError(f"random-effects term {piece!r} in {formula!r} must have exactly one '|' or '||', "
                                   "e.g. '(1 + x | g)' or '(1 + x || g)'")
            if "~" in inner:
                raise FormulaError(f"'~' inside the random-effects term {piece!r} of {formula!r}: a formula has "
                                   "one '~', between the response and the terms, e.g. 'y ~ x + (1 | g)'")
            if not lhs or not gexpr:
                raise FormulaError(
                    f"empty side in random-effects term {piece!r} of {formula!r}: write '(expr | group)', "
                    "e.g. '(1 | subject)' or '(1 + days | subject)'"
                )
            groups = _expand_groups(gexpr, formula)
            exprs = _expr_columns(lhs) if double else [lhs]
            if not exprs:
                raise FormulaError(f"random-effects term {piece!r} of {formula!r} has no columns")
            for e in exprs:             # lme4: || expanded first, then each term's a/b
                for g in groups:
                    bars.append(BarTerm(e, g))
        elif "|" in piece:
            raise FormulaError(
                f"'|' outside parentheses in {piece!r} of formula {formula!r}: random-effects terms "
                "must be written in parentheses, e.g. '(1 | g)'"
            )
        else:
            first, *minus = _split_top(piece, "-")
            inner = _offset_call(first.strip())
            if inner is not None:                 # offset(expr) [- terms]: lme4's offset()
                if not inner:
                    raise FormulaError(f"empty offset() in formula {formula!r}: write offset(column) or "
                                       "offset(log(column))")
                offsets.append(inner)
                if minus:                         # offset(t) - 1: the terms removed stay removed
                    rest = " - ".join(m.strip() for m in minus)
                    if fixed_parts:
                        fixed_parts[-1] = f"{fixed_parts[-1]} - {rest}"
                    else:
                        fixed_parts.append(f"1 - {rest}")
                piece = ""
            if any(_offset_call(m.strip()) is not None for m in minus):
                raise FormulaError(f"'- offset(...)' in formula {formula!r}: an offset is added to the linear "
                                   "predictor; write '+ offset(-expr)' to subtract it")
            if piece:
                fixed_parts.append(piece)
    fixed = " + ".join(fixed_parts) if fixed_parts else "1"
    for where in [fixed] + [b.expr for b in bars]:
        if re.search(r"(?<![\w.`])offset\s*\(", where):
            raise FormulaError(f"offset(...) in {where!r} of formula {formula!r}: an offset is a term of the "
                               "fixed part on its own, e.g. 'y ~ x + offset(log(t)) + (1 | g)'")
    return ParsedFormula(response=response, fixed=fixed, bars=tuple(bars), text=formula,
                         offsets=tuple(offsets))
