"""R's ``update``: a new formula from an old one, and a refit of a result with it.

update_formula(old, new) is R's update.formula: ``.`` on the left of ``new`` stands for the
old response, on the right for the old right-hand side (in parentheses), and the result is
R's terms.formula(simplify = TRUE) of that, deparsed as R prints it:

  variables  the response, then every other variable in the order of a left-to-right walk
             of the formula (a name, a call such as ``log(x)``, ``I(x^2)``, ``offset(t)``,
             or a random-effects term ``1 + x | g``: each is one variable);
  terms      sets of variables, expanded as R's EncodeVars does:
               a + b   terms of a, then those of b not already there
               a:b     every union l | r (l over a's terms, r over b's), a %in% b:  l | (all of b)
               a*b     a + b + a:b,   a/b  a + r | (all of a) for each term r of b
               (a)^n   a, then its products with itself up to n factors
               a - b   a's terms without b's;  1 / + 1 keep the intercept, 0 / - 1 drop it
  order      terms sorted by their number of variables (stably), each labelled by its
             variables in variable order joined by ":" (``b:a`` if b came first)
  output     ``lhs ~ t1 + t2 + ... + offset(...)``, ``1`` for no term, `` - 1`` without
             intercept; random-effects terms in parentheses, ``(1 | g)``; R's deparse spacing
             (spaces around + - * | ||  ~ and comparisons, none around : / ^).

So ``update_formula("y ~ a*b + (1|g)", ". ~ . - a:b + c")`` is ``"y ~ a + b + (1 | g) + c"``
(R gives the same string: tests/reference/make_tables_reference.R records 40 such pairs).

refit_lmer / refit_glmer: R's update(fit, formula, data = , REML = ...): the model rebuilt
with the new formula and/or data, with the fit's other arguments (weights, offset,
na_action, sparse_X; a GLMM's family, nAGQ and prior weights), and fitted.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from ..errors import ArgumentError, FormulaError

# ---------------------------------------------------------------------------------------
# R expressions: tokens, a precedence parser, R's deparse
# ---------------------------------------------------------------------------------------
_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<num>(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?L?)
  | (?P<str>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
  | (?P<name>`[^`]+`|[A-Za-z_.][A-Za-z0-9_.]*)
  | (?P<op>\|\||\*\*|%[^%]*%|==|!=|<=|>=|&&|[~+\-*/^:|(),<>!&=])
""", re.VERBOSE)

# binary operators: precedence (higher binds tighter), right-associative?
_BINARY = {"~": (1, False), "||": (2, False), "|": (2, False), "&&": (3, False), "&": (3, False),
           "==": (5, False), "!=": (5, False), "<": (5, False), ">": (5, False), "<=": (5, False),
           ">=": (5, False), "+": (6, False), "-": (6, False), "*": (7, False), "/": (7, False),
           "%": (8, False), ":": (9, False), "^": (11, True)}
_UNARY = {"-": 10, "+": 10, "!": 4, "~": 1}
_SPACED = {"~", "||", "|", "&&", "&", "==", "!=", "<", ">", "<=", ">=", "+", "-", "*", "%"}


@dataclass(frozen=True)
class Node:
    kind: str                  # name, num, str, call, bin, un, paren
    value: str = ""            # the name, number, string, function name or operator
    args: tuple = ()           # children (call: (argname or "", Node) pairs)


def _tokens(text: str) -> list:
    out, pos = [], 0
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise FormulaError(f"update: cannot read the formula {text!r} at {text[pos:pos + 10]!r}")
        pos = m.end()
        kind = m.lastgroup
        if kind == "ws":
            continue
        val = m.group(kind)
        if kind == "op" and val == "**":
            val = "^"
        out.append((kind, val))
    return out


class _Parser:
    def __init__(self, text: str):
        self.text = text
        self.toks = _tokens(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i] if self.i < len(self.toks) else (None, None)

    def take(self, val=None):
        tok = self.peek()
        if tok[0] is None or (val is not None and tok[1] != val):
            raise FormulaError(f"update: cannot read the formula {self.text!r}: expected {val or 'more'!r}")
        self.i += 1
        return tok

    def parse(self) -> Node:
        node = self.expr(0)
        if self.i != len(self.toks):
            raise FormulaError(f"update: cannot read the formula {self.text!r} after {self.toks[self.i - 1][1]!r}")
        return node

    @staticmethod
    def _binary(tok):
        if tok[0] != "op":
            return None
        key = "%" if tok[1].startswith("%") else tok[1]
        return _BINARY.get(key)

    def expr(self, minprec: int) -> Node:
        left = self.unary()
        while True:
            tok = self.peek()
            info = self._binary(tok)
            if info is None or info[0] < minprec:
                return left
            prec, right_assoc = info
            self.take()
            right = self.expr(prec if right_assoc else prec + 1)
            left = Node("bin", tok[1], (left, right))

    def unary(self) -> Node:
        kind, val = self.peek()
        if kind == "op" and val in _UNARY:
            self.take()
            return Node("un", val, (self.expr(_UNARY[val]),))
        return self.primary()

    def primary(self) -> Node:
        kind, val = self.take()
        if kind == "op" and val == "(":
            inner = self.expr(0)
            self.take(")")
            return Node("paren", "", (inner,))
        if kind == "num":
            return Node("num", val)
        if kind == "str":
            return Node("str", val)
        if kind == "name":
            if self.peek() == ("op", "("):
                self.take()
                args = []
                while self.peek() != ("op", ")"):
                    name = ""
                    if self.peek()[0] == "name" and self.i + 1 < len(self.toks) and self.toks[self.i + 1] == ("op", "="):
                        name = self.take()[1]
                        self.take("=")
                    args.append((name, self.expr(0)))
                    if self.peek() == ("op", ","):
                        self.take()
                self.take(")")
                return Node("call", val, tuple(args))
            return Node("name", val)
        raise FormulaError(f"update: cannot read the formula {self.text!r} at {val!r}")


def parse(text: str) -> Node:
    return _Parser(text).parse()


def _num(text: str) -> str:
    t = text.rstrip("L")
    try:
        v = float(t)
    except ValueError:
        return text
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    return f"{v:.15g}"


def deparse(node: Node) -> str:
    """R's deparse of an expression (its spacing)."""
    k = node.kind
    if k in ("name",):
        return node.value
    if k == "num":
        return _num(node.value)
    if k == "str":
        return '"' + node.value[1:-1] + '"'
    if k == "paren":
        return "(" + deparse(node.args[0]) + ")"
    if k == "call":
        parts = [(f"{n} = " if n else "") + deparse(a) for n, a in node.args]
        return f"{node.value}({', '.join(parts)})"
    if k == "un":
        return node.value + deparse(node.args[0]) if node.value != "~" else "~" + deparse(node.args[0])
    op = node.value
    key = "%" if op.startswith("%") else op
    sep = f" {op} " if key in _SPACED else op
    return deparse(node.args[0]) + sep + deparse(node.args[1])


def _substitute_dot(node: Node, by: Node) -> Node:
    if node.kind == "name" and node.value == ".":
        return by
    if node.kind in ("bin", "un", "paren"):
        return Node(node.kind, node.value, tuple(_substitute_dot(a, by) for a in node.args))
    if node.kind == "call":
        return Node("call", node.value, tuple((n, _substitute_dot(a, by)) for n, a in node.args))
    return node


# ---------------------------------------------------------------------------------------
# R's terms.formula
# ---------------------------------------------------------------------------------------
@dataclass
class Terms:
    response: str | None
    variables: list            # deparsed variables (response first when there is one)
    terms: list                # frozensets of variable indices, R's order
    intercept: bool
    offsets: list              # deparsed offset(...) variables

    def label(self, term) -> str:
        return ":".join(self.variables[i] for i in sorted(term))

    @property
    def labels(self) -> list:
        return [self.label(t) for t in self.terms]

    def is_bar(self, term) -> bool:
        return len(term) == 1 and _is_bar_text(self.variables[next(iter(term))])

    def rhs(self, model: bool = False) -> str:
        """The right-hand side as R writes it; ``model=True``: ``0 + ...`` instead of a
        trailing ``- 1`` (which lme4 formulas with bar terms need in sparsemixed's parser)."""
        parts = [f"({lab})" if "|" in lab else lab for lab in self.labels] + list(self.offsets)
        rhs = " + ".join(parts) if parts else "1"
        if not self.intercept:
            rhs = ("0 + " + rhs if parts else "0") if model else rhs + " - 1"
        return rhs

    def formula(self, model: bool = False) -> str:
        """R's formula(terms(., simplify = TRUE)), deparsed (``model``: see :meth:`rhs`)."""
        rhs = self.rhs(model)
        return f"{self.response} ~ {rhs}" if self.response is not None else f"~{rhs}"

    def drop_scope(self) -> list:
        """R's drop.scope: the labels of the terms whose variables are in no other term."""
        return [self.label(t) for t in self.terms if not any(t < u for u in self.terms)]


def _is_bar_text(text: str) -> bool:
    return "|" in text


class _Encoder:
    """R's EncodeVars over the right-hand side of a parsed formula."""

    def __init__(self):
        self.variables: list = []
        self.intercept = True
        self.parity = True
        self.offsets: list = []

    def var(self, node: Node) -> int:
        text = deparse(node)
        if text not in self.variables:
            self.variables.append(text)
        return self.variables.index(text)

    def collect(self, node: Node) -> None:
        """R's ExtractVars: install the variables in the order of a left-to-right walk."""
        if node.kind == "bin" and node.value in ("+", "-", "*", "/", ":", "^", "~", "%in%"):
            self.collect(node.args[0])
            if node.value != "^":
                self.collect(node.args[1])
        elif node.kind == "un" and node.value in ("+", "-", "~"):
            self.collect(node.args[0])
        elif node.kind == "paren" and not _bar(node.args[0]):
            self.collect(node.args[0])
        elif node.kind == "num":
            return
        elif node.kind == "paren":
            self.var(node.args[0])
        else:
            self.var(node)

    @staticmethod
    def _trim(terms: list) -> list:
        out = []
        for t in terms:
            if t not in out:
                out.append(t)
        return out

    def _number(self, node: Node) -> None:
        """0 and 1 set the intercept (R's parity: inside the right of '-', the other way)."""
        v = float(node.value.rstrip("L"))
        if v not in (0, 1):
            raise FormulaError(f"update: a number {node.value!r} is not a term (only 0 and 1 are)")
        self.intercept = (v == 1) == self.parity

    def encode(self, node: Node) -> list:
        k, op = node.kind, node.value
        if k == "num":
            self._number(node)
            return []
        if k == "paren":
            if _bar(node.args[0]):
                return [frozenset([self.var(node.args[0])])]
            return self.encode(node.args[0])
        if k == "un":
            if op == "-":                  # R's DeleteTerms(NULL, x)
                self.parity = not self.parity
                self.encode(node.args[0])
                self.parity = not self.parity
                return []
            if op == "+":
                return self.encode(node.args[0])
            raise FormulaError(f"update: unary {op!r} in a formula's terms")
        if k == "bin":
            if op == "+":
                return self._trim(self.encode(node.args[0]) + self.encode(node.args[1]))
            if op == "-":
                left = self.encode(node.args[0])
                self.parity = not self.parity
                right = self.encode(node.args[1])
                self.parity = not self.parity
                return [t for t in left if t not in right]
            if op == ":":
                return self._interact(self.encode(node.args[0]), self.encode(node.args[1]))
            if op == "%in%":
                left, right = self.encode(node.args[0]), self.encode(node.args[1])
                allr = frozenset().union(*right) if right else frozenset()
                return self._trim([t | allr for t in left])
            if op == "*":
                left, right = self.encode(node.args[0]), self.encode(node.args[1])
                return self._trim(left + right + self._interact(left, right))
            if op == "/":
                left, right = self.encode(node.args[0]), self.encode(node.args[1])
                alll = frozenset().union(*left) if left else frozenset()
                return self._trim(left + [r | alll for r in right])
            if op == "^":
                base = self.encode(node.args[0])
                if node.args[1].kind != "num":
                    raise FormulaError(f"update: the power in {deparse(node)!r} must be a number")
                out = list(base)
                for _ in range(int(float(node.args[1].value.rstrip("L"))) - 1):
                    out = self._trim(out + self._interact(out, base))
                return out
            if op in ("|", "||"):
                return [frozenset([self.var(node)])]
            if op.startswith("%"):
                raise FormulaError(f"update: operator {op!r} between terms of a formula")
            return [frozenset([self.var(node)])]        # a comparison: one variable, as in R
        if k == "call" and node.value == "offset":
            text = deparse(node)
            if text not in self.offsets:
                self.offsets.append(text)
            self.var(node)
            return []
        return [frozenset([self.var(node)])]

    def _interact(self, left: list, right: list) -> list:
        return self._trim([a | b for a in left for b in right])


def _bar(node: Node) -> bool:
    return node.kind == "bin" and node.value in ("|", "||")


def terms(formula) -> Terms:
    """R's terms.formula of a formula (string or parsed), terms sorted by degree."""
    node = parse(formula) if isinstance(formula, str) else formula
    enc = _Encoder()
    if node.kind == "bin" and node.value == "~":
        lhs, rhs = node.args
        response = deparse(lhs)
        enc.var(lhs)
    elif node.kind == "un" and node.value == "~":
        lhs, rhs, response = None, node.args[0], None
    else:
        raise FormulaError(f"update: {formula!r} is not a formula (no '~')")
    enc.collect(rhs)
    found = enc.encode(rhs)
    if response is not None:
        found = [t for t in found if t != frozenset([0])]
    found = [t for t in found if t]
    order = sorted(range(len(found)), key=lambda i: (len(found[i]), i))
    return Terms(response, enc.variables, [found[i] for i in order], enc.intercept, enc.offsets)


def update_formula(old: str, new: str, model: bool = False) -> str:
    """R's ``update.formula(old, new)``, deparsed as R prints it.

    ``.`` on the left of ``new`` is the old response, on the right the old right-hand side;
    the terms are expanded (``*``, ``:``, ``/``, ``^``, ``%in%``, ``-``, ``0``/``1``) and
    sorted by their number of variables as R's ``terms.formula`` does, each random-effects
    term such as ``(1 | g)`` being one variable.  For example
    ``update_formula("y ~ a*b + (1|g)", ". ~ . - a:b + c")`` is ``"y ~ a + b + (1 | g) + c"``.
    ``model=True`` writes a removed intercept as ``0 + ...`` instead of R's trailing
    ``- 1`` (the form sparsemixed's formula parser needs with random-effects terms).
    """
    o, n = parse(old), parse(new)
    if not (o.kind == "bin" and o.value == "~"):
        raise FormulaError(f"update: the old formula {old!r} needs a response ('y ~ ...')")
    olhs, orhs = o.args
    if n.kind == "bin" and n.value == "~":
        nlhs, nrhs = n.args
        lhs = _substitute_dot(nlhs, olhs)
    elif n.kind == "un" and n.value == "~":
        lhs, nrhs = olhs, n.args[0]
    else:
        raise FormulaError(f"update: the new formula {new!r} needs a '~' (e.g. '. ~ . - x')")
    rhs = _substitute_dot(nrhs, Node("paren", "", (orhs,)))
    return terms(Node("bin", "~", (lhs, rhs))).formula(model)


# ---------------------------------------------------------------------------------------
# refits
# ---------------------------------------------------------------------------------------
LMER_ARGS = ("REML", "weights", "offset", "na_action", "ordering", "memory_limit", "sparse_X")


def _same_rows(old_data, data) -> bool:
    return data is None or data is old_data


def refit_lmer(res, formula=None, data=None, **kw):
    """R's update(fit, formula, data = , REML = , ...) for an lmer fit: the model rebuilt
    with the new formula (``update_formula`` of the old one; None keeps it) and data (None:
    the fit's), the other arguments as the fit's unless given, and fitted.  Keyword
    arguments other than lmer's (REML, weights, offset, na_action, ordering, memory_limit,
    sparse_X) go to fit()."""
    m = res.model
    if m.formula is None or getattr(m.source, "arrays", None) is not None:
        raise ArgumentError("update() needs a model built from a formula and data (this one was built "
                            "from arrays: build the new model with LinearMixedModel.from_parts)")
    new_formula = m.formula if formula is None else update_formula(m.formula, formula, model=True)
    return fit_formula(res, new_formula, data, **kw)


def fit_formula(res, new_formula: str, data=None, **kw):
    """:func:`refit_lmer` with the new model's whole formula."""
    from ..api import lmer

    m = res.model
    build = {"REML": res.REML, "weights": m.weights_arg, "offset": m.offset_arg,
             "na_action": m.na_action or "omit", "sparse_X": bool(m.sparse_X)}
    for key in LMER_ARGS:
        if key in kw:
            build[key] = kw.pop(key)
    new_data = m.data if data is None else data
    if new_data is None:
        raise ArgumentError("update() needs the data: the model's was released (model.data = None); "
                            "pass data=")
    if data is not None:
        for key in ("weights", "offset"):
            v = build[key]
            if v is not None and not isinstance(v, str) and key not in kw and np.ndim(v) and \
                    len(v) != len(data):
                raise ArgumentError(f"update(data=...): the fit's {key} are an array of {len(v)} values and the "
                                    f"new data have {len(data)} rows; pass {key}= for the new data")
    model = lmer(new_formula, new_data, **build)
    return model.fit(**kw)


def glmer_arguments(res) -> dict:
    """The fit's prior weights and offset as glmer arguments, recovered from its response
    (the model keeps the values, not the arguments): weights = prior weights / the trials of
    a cbind() response, offset = the offset less the formula's offset() terms; None where
    they are 1 and 0.  Arrays over the rows of the model's data (1 and 0 on dropped rows)."""
    from ..glmm.response import OFFSET, WEIGHTS, prepare

    m = res.model
    r = m.response
    if r is None:
        raise ArgumentError("update() of a GLMM built from a Dask DataFrame is not supported (no rows "
                            "kept); build the new model with glmer()")
    prep = prepare(m.formula, m.data, m.family, weights=np.ones(len(m.data)))   # unit weights: any response
    n = len(prep.data)
    kept = np.ones(n, bool) if m.kept is None else np.asarray(m.kept, bool)
    base_w = prep.data[WEIGHTS].to_numpy(float)[kept]
    base_off = prep.data[OFFSET].to_numpy(float)[kept]
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(base_w > 0, r.prior_weights / np.where(base_w > 0, base_w, 1.0), 1.0)
    off = r.offset - base_off
    out = {"weights": None, "offset": None}
    if not np.allclose(w, 1.0, rtol=1e-12, atol=0):
        full = np.ones(n)
        full[kept] = w
        out["weights"] = full
    if not np.allclose(off, 0.0, rtol=0, atol=1e-12):
        full = np.zeros(n)
        full[kept] = off
        out["offset"] = full
    return out


def refit_glmer(res, formula=None, data=None, **kw):
    """R's update(fit, formula, data = , ...) for a glmer fit: family, nAGQ, prior weights
    and offset as the fit's (:func:`glmer_arguments`) unless given; other keyword arguments
    go to fit()."""
    from ..glmm import glmer

    m = res.model
    new_formula = m.formula if formula is None else update_formula(m.formula, formula, model=True)
    build = {"family": m.family, "nAGQ": res.nAGQ, "sparse_X": getattr(m, "sparse_X", False)}
    for key in ("family", "nAGQ", "weights", "offset", "na_action", "ordering", "memory_limit", "sparse_X"):
        if key in kw:
            build[key] = kw.pop(key)
    if "weights" not in build or "offset" not in build:
        args = glmer_arguments(res)
        if data is not None and any(args[k] is not None and k not in build for k in args):
            raise ArgumentError("update(data=...) of a GLMM fitted with prior weights or an offset: pass "
                                "weights= and offset= for the new data")
        for k, v in args.items():
            build.setdefault(k, v)
    new_data = m.data if data is None else data
    model = glmer(new_formula, new_data, **build)
    return model.fit(**kw)
