"""The response of a GLMM, as glmer reads it (lme4's ``glmResp``: y, prior weights, offset, family).

    binomial:  y = successes / trials in [0, 1],  prior weight = trials
               (cbind(s, f) ~ ...: y = s / (s + f), weights s + f; 0/1, logical or a
               two-level factor: Bernoulli, the first level a failure; a proportion with
               weights= trials)
    poisson:   y = count >= 0,  prior weight 1 (or weights=)
    eta = offset + X beta + Z b,   mu = linkinv(eta)

:func:`prepare` rewrites the formula for the linear-model builder (the response becomes a
numeric column, ``offset(...)`` terms are evaluated and summed) on a copy of the data;
:class:`GLMResponse` holds the rows the model kept and evaluates mu, the working weights and
residuals, the deviance residuals and the conditional -2 log-likelihood at any eta.
"""
from __future__ import annotations

import contextlib
import re
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd

from ..errors import ArgumentError, DataError, FormulaError, SparseMixedError, SparseMixedWarning
from . import kernels

RESPONSE = "glmer_response__"
WEIGHTS = "glmer_weights__"
OFFSET = "glmer_offset__"
_FUNCS = {"log": np.log, "exp": np.exp, "sqrt": np.sqrt, "abs": np.abs, "log10": np.log10,
          "log2": np.log2, "log1p": np.log1p, "expm1": np.expm1}


class PerfectFitWarning(SparseMixedWarning):
    """Fitted probabilities numerically 0 or 1 (complete or quasi-complete separation), or
    fitted counts numerically 0."""


def _call_spans(text: str, name: str) -> list[tuple[int, int, str]]:
    """(start, end, inner) of each top-level ``name(...)`` call in ``text``."""
    out = []
    for m in re.finditer(rf"\b{name}\s*\(", text):
        depth, i = 1, m.end()
        while i < len(text) and depth:
            depth += {"(": 1, ")": -1}.get(text[i], 0)
            i += 1
        if depth:
            raise FormulaError(f"unbalanced parentheses in {name}(...) of the formula {text!r}")
        out.append((m.start(), i, text[m.end(): i - 1]))
    return out


def _evaluate(expr: str, data: pd.DataFrame, what: str) -> np.ndarray:
    """A column or an arithmetic expression of columns (``size - incidence``, ``log(t)``)."""
    expr = expr.strip()
    if expr in data.columns:
        return data[expr].to_numpy()
    names = {c: data[c].to_numpy() for c in data.columns if isinstance(c, str) and c.isidentifier()}
    try:
        code = compile(expr, "<formula>", "eval")
    except SyntaxError:
        raise FormulaError(f"cannot read {what} {expr!r}: not a column name or an arithmetic expression") from None
    missing = [n for n in code.co_names if n not in names and n not in _FUNCS]
    if missing:
        raise FormulaError(f"{what} {expr!r} uses {', '.join(map(repr, missing))}, not a column of the data "
                           f"(columns: {', '.join(map(str, list(data.columns)[:12]))}"
                           f"{', ...' if data.shape[1] > 12 else ''})")
    with np.errstate(all="ignore"):
        return np.asarray(eval(code, {"__builtins__": {}}, {**_FUNCS, **names}))


def _numeric(values, what: str) -> np.ndarray:
    try:
        out = np.asarray(pd.to_numeric(pd.Series(values), errors="raise"), dtype=float)
    except (TypeError, ValueError):
        raise DataError(f"{what} must be numeric") from None
    return out


def user_words(text: str, label: str) -> str:
    """A builder's message in the user's terms: the response column named as the user wrote
    it, the added weights/offset columns left out of column lists or named as arguments."""
    text = re.sub(rf",\s*(?:{RESPONSE}|{WEIGHTS}|{OFFSET})\b", "", text)
    return text.replace(RESPONSE, label).replace(WEIGHTS, "weights").replace(OFFSET, "offset")


@contextlib.contextmanager
def in_user_terms(label: str):
    """Errors and warnings of the linear-model builder re-worded by :func:`user_words`."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    except SparseMixedError as exc:
        raise type(exc)(user_words(str(exc), label)) from None
    finally:
        for w in caught:          # re-issued outside the recording block
            warnings.warn(user_words(str(w.message), label), w.category, stacklevel=4)


@dataclass
class Prepared:
    formula: str               # for the linear-model builder: numeric response, no offset()
    data: pd.DataFrame         # a copy with the response, weights and offset columns added
    trials_weights: bool       # the prior weights are binomial trials (cbind, or weights=)
    response_label: str        # the user's response, for printing


def prepare(formula: str, data, family, weights=None, offset=None) -> Prepared:
    """Rewrite ``formula`` and a copy of ``data`` for the builder (the user's frame is
    never modified): response -> RESPONSE (binomial: the proportion), prior weights ->
    WEIGHTS, every ``offset(expr)`` of the formula plus ``offset=`` -> OFFSET."""
    if not isinstance(formula, str) or "~" not in formula:
        raise FormulaError(f"the formula must be a string such as 'y ~ x + (1 | g)', got {formula!r}")
    if not isinstance(data, pd.DataFrame):
        if isinstance(data, dict):
            data = pd.DataFrame(data)
        else:
            raise ArgumentError("glmer needs an in-memory pandas DataFrame (streamed and Dask sources are "
                                "not supported for generalized models yet)")
    lhs, rhs = formula.split("~", 1)
    lhs = lhs.strip()
    df = data.copy(deep=False)
    n = len(df)
    # offsets: offset(expr) terms of the formula, and the offset= argument
    off = np.zeros(n)
    for start, end, inner in reversed(_call_spans(rhs, "offset")):
        off = off + _numeric(_evaluate(inner, df, "the offset"), f"offset({inner})")
        rhs = _drop_term(rhs, start, end)
    if offset is not None:
        vals = df[offset].to_numpy() if isinstance(offset, str) and offset in df.columns else offset
        if isinstance(offset, str) and offset not in df.columns:
            raise DataError(f"offset column {offset!r} not found in the data")
        vals = _numeric(vals, "offset")
        if vals.shape != (n,):
            raise DataError(f"offset has {vals.size} values for {n} rows")
        off = off + vals
    # prior weights
    if weights is not None:
        if isinstance(weights, str):
            if weights not in df.columns:
                raise DataError(f"weights column {weights!r} not found in the data")
            w = _numeric(df[weights].to_numpy(), f"weights column {weights!r}")
        else:
            w = _numeric(weights, "weights")
            if w.shape != (n,):
                raise DataError(f"weights has {w.size} values for {n} rows")
        if np.any(w[np.isfinite(w)] < 0):
            raise DataError("weights must be >= 0 (binomial: the number of trials of each row)")
    else:
        w = np.ones(n)
    # the response
    spans = _call_spans(lhs, "cbind")
    trials = weights is not None and family.name == "binomial"
    if spans:
        if family.name != "binomial":
            raise FormulaError(f"cbind(successes, failures) is a binomial response, but the family is {family.name}")
        if len(spans) != 1 or spans[0][0] != 0 or spans[0][1] != len(lhs):
            raise FormulaError(f"the response {lhs!r}: write cbind(successes, failures) alone on the left of '~'")
        args = _split_args(spans[0][2])
        if len(args) != 2:
            raise FormulaError(f"cbind() takes two columns (successes, failures), got {len(args)}: {lhs!r}")
        s = _numeric(_evaluate(args[0], df, "the successes"), f"successes {args[0]!r}")
        f = _numeric(_evaluate(args[1], df, "the failures"), f"failures {args[1]!r}")
        bad = np.isfinite(s) & np.isfinite(f) & ((s < 0) | (f < 0))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise DataError(f"cbind({args[0]}, {args[1]}): negative counts (first at row label {df.index[i]!r}); "
                            "successes and failures must be >= 0")
        m = s + f
        with np.errstate(invalid="ignore", divide="ignore"):
            y = np.where(m > 0, s / np.where(m > 0, m, 1.0), 0.0)
        y[~(np.isfinite(s) & np.isfinite(f))] = np.nan
        w = w * m
        trials = True
    else:
        y = _response_values(lhs, df, family)
    if family.name == "binomial" and not trials:
        ok = np.isfinite(y)
        if np.any((y[ok] != 0) & (y[ok] != 1)):
            raise DataError(f"binomial response {lhs!r} has values other than 0 and 1 without weights=: for "
                            "proportions give the numbers of trials as weights=, or write "
                            "cbind(successes, failures) ~ ...")
    df[RESPONSE] = y
    df[WEIGHTS] = w
    df[OFFSET] = off
    new_formula = f"{RESPONSE} ~ {rhs}"
    return Prepared(new_formula, df, trials, lhs)


def _drop_term(rhs: str, start: int, end: int) -> str:
    """rhs without the term at [start, end) and the '+' joining it to its neighbours
    (the term alone: '1', the intercept it leaves)."""
    before, after = rhs[:start].rstrip(), rhs[end:].lstrip()
    if before.endswith("+"):
        return (before[:-1].rstrip() + " " + after).strip()
    if after.startswith("+"):
        return (before + " " + after[1:].lstrip()).strip()
    if before or after:
        raise FormulaError(f"cannot read offset(...) in {rhs!r}: join it to the other terms with '+'")
    return "1"


def _split_args(text: str) -> list[str]:
    out, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
            continue
        depth += {"(": 1, ")": -1}.get(ch, 0)
        cur += ch
    out.append(cur)
    return [a.strip() for a in out if a.strip()]


def _response_values(lhs: str, df: pd.DataFrame, family) -> np.ndarray:
    raw = _evaluate(lhs, df, "the response")
    s = pd.Series(raw)
    if family.name == "binomial" and (s.dtype == bool or str(s.dtype) == "boolean"):
        return s.astype("float64").to_numpy() if str(s.dtype) != "boolean" else s.astype("Float64").to_numpy(
            dtype=float, na_value=np.nan)
    if family.name == "binomial" and (isinstance(s.dtype, pd.CategoricalDtype) or s.dtype == object
                                      or pd.api.types.is_string_dtype(s.dtype)):
        levels = list(s.cat.categories) if isinstance(s.dtype, pd.CategoricalDtype) else sorted(s.dropna().unique())
        if len(levels) != 2:
            raise DataError(f"binomial response {lhs!r} is a factor with {len(levels)} levels "
                            f"({', '.join(map(str, levels[:6]))}); it needs exactly two (the first a failure), "
                            "0/1 values, or cbind(successes, failures)")
        out = np.where(s.isna(), np.nan, (s == levels[1]).to_numpy(dtype=float))
        return out.astype(float)
    if s.dtype == object or pd.api.types.is_string_dtype(s.dtype):
        raise DataError(f"the response {lhs!r} is text; a {family.name} response must be numeric")
    if str(s.dtype) == "boolean" or s.dtype == bool:
        s = s.astype("Float64")
    return np.asarray(pd.to_numeric(s, errors="coerce").astype("float64"), dtype=float)


@dataclass(eq=False)
class GLMResponse:
    """y, prior weights, offset and family of the kept rows (lme4's glmResp)."""

    y: np.ndarray
    prior_weights: np.ndarray
    offset: np.ndarray
    family: object
    trials_weights: bool = False

    def __post_init__(self):
        for name in ("y", "prior_weights", "offset"):
            setattr(self, name, np.ascontiguousarray(getattr(self, name), dtype=np.float64))
        self._saturated = None

    @property
    def n(self) -> int:
        return self.y.shape[0]

    def check(self, label: str, whole: bool = True) -> None:
        """glm's checks of the response, with the column named (``whole`` False: a part of
        the rows, whose all-0 or all-1 response says nothing about the whole)."""
        fam, y, w = self.family, self.y, self.prior_weights
        if fam.name == "binomial":
            if np.any((y < 0) | (y > 1)):
                raise DataError(f"binomial response {label!r} has values outside [0, 1]")
            if self.trials_weights:
                mw = y * w
                if np.any(np.abs(mw - np.round(mw)) > 1e-7 * np.maximum(1.0, np.abs(mw))):
                    warnings.warn(f"non-integer numbers of successes in the binomial response {label!r} "
                                  "(proportion times weights)", SparseMixedWarning, stacklevel=4)
            used = w > 0
            if whole and used.any() and (np.all(y[used] == 0) or np.all(y[used] == 1)):
                v = int(y[used][0])
                raise DataError(f"binomial response {label!r} is {v} in every row: nothing to estimate "
                                f"(the fixed intercept would be {'-' if v == 0 else '+'}infinity)")
        elif fam.name == "poisson":
            if np.any(y < 0):
                i = int(np.flatnonzero(y < 0)[0])
                raise DataError(f"poisson response {label!r} has negative counts (first: {y[i]:g}); counts must "
                                "be >= 0")
            if np.any(np.abs(y - np.round(y)) > 1e-7 * np.maximum(1.0, np.abs(y))):
                warnings.warn(f"non-integer counts in the poisson response {label!r} (glm warns alike; the "
                              "log-likelihood uses the gamma-function continuation)", SparseMixedWarning,
                              stacklevel=4)
            if whole and np.all(y == 0):
                raise DataError(f"poisson response {label!r} is 0 in every row: nothing to estimate")

    @property
    def trials(self) -> np.ndarray:
        """R's ``n`` argument of family$aic: the binomial trials (prior weights) or ones."""
        return self.prior_weights if self.trials_weights else np.ones(self.n)

    @property
    def _kernel(self) -> int:
        return kernels.kind(self.family)

    def mu(self, eta: np.ndarray) -> np.ndarray:
        if self._kernel:
            out = np.empty_like(eta)
            kernels.mu_of(self._kernel, np.ascontiguousarray(eta, dtype=float), out)
            return out
        return self.family.link.linkinv(eta)

    def working(self, eta: np.ndarray):
        """(mu, w, z): the working weights w = prior_w (dmu/deta)^2 / V(mu) and the working
        response z = eta - offset + (y - mu) / (dmu/deta) (net of the offset)."""
        if self._kernel:
            eta = np.ascontiguousarray(eta, dtype=float)
            mu, w, z = np.empty_like(eta), np.empty_like(eta), np.empty_like(eta)
            kernels.working(self._kernel, eta, self.y, self.prior_weights, self.offset, mu, w, z)
            return mu, w, z
        link = self.family.link
        mu = link.linkinv(eta)
        d = link.mu_eta(eta)
        var = self.family.variance(mu)
        w = self.prior_weights * d * d / var
        z = eta - self.offset + (self.y - mu) / d
        return mu, w, z

    def gradient_terms(self, eta: np.ndarray):
        """(d, w'): d_i = -2 prior_w (y - mu) (dmu/deta) / V(mu), the derivative of the
        deviance residual in eta, and w'(eta) of the working weights (glmm/gradient.py,
        canonical links only: their fused kernel)."""
        if not self._kernel:
            raise SparseMixedError(f"the Laplace gradient is for canonical links; {self.family!r} has none here")
        eta = np.ascontiguousarray(eta, dtype=float)
        d, dw = np.empty_like(eta), np.empty_like(eta)
        kernels.gradient_terms(self._kernel, eta, self.y, self.prior_weights, d, dw)
        return d, dw

    def deviance(self, mu: np.ndarray) -> float:
        """sum of deviance residuals squared: sum dev_resids(y, mu, prior_w)."""
        if self._kernel:
            return float(kernels.deviance(self._kernel, self.y, np.ascontiguousarray(mu, dtype=float),
                                          self.prior_weights))
        return float(np.sum(self.family.dev_resids(self.y, mu, self.prior_weights)))

    def minus2loglik(self, mu: np.ndarray, deviance: float | None = None) -> float:
        """-2 log p(y | u) (R's family$aic: the conditional -2 log-likelihood); with the sum
        of deviance residuals at mu given, as that sum plus the saturated model's value
        where the two differ by it exactly (:meth:`saturated_offset`)."""
        sat = self.saturated_offset()
        if deviance is not None and sat is not None:
            return float(deviance) + sat
        return float(self.family.aic(self.y, self.trials, mu, self.prior_weights))

    def saturated_offset(self) -> float | None:
        """-2 log p(y | mu = y) when family$aic(mu) = deviance(mu) + that constant for every
        mu: Poisson, and binomial with whole numbers of successes (R's aic rounds m y, the
        deviance does not); else None.  Computed once per response."""
        if self._saturated is None:
            fam = self.family
            if fam.name == "poisson":
                ok = True
            elif fam.name == "binomial":
                t = self.trials
                m = t if np.any(t > 1) else self.prior_weights
                my = m * self.y
                ok = bool(np.all(np.abs(my - np.round(my)) <= 1e-9 * np.maximum(1.0, np.abs(my))))
            else:
                ok = False
            self._saturated = (self.saturated_minus2loglik(),) if ok else (None,)
        return self._saturated[0]

    def saturated_minus2loglik(self) -> float:
        """-2 log p(y | mu = y): the constant glmer's AGQ values leave out."""
        return float(self.family.aic(self.y, self.trials, np.clip(self.y, 1e-300, None) if self.family.name ==
                                     "poisson" else self.y, self.prior_weights))


def perfect_fit_warning(resp: GLMResponse, mu: np.ndarray) -> str | None:
    """A message when fitted probabilities are numerically 0 or 1 (or counts 0)."""
    eps = 10 * np.finfo(float).eps
    if resp.family.name == "binomial":
        k = int(np.sum((mu < eps) | (mu > 1 - eps)))
        if k:
            return (f"fitted probabilities numerically 0 or 1 occurred in {k} of {resp.n} rows: complete or "
                    "quasi-complete separation; the estimates of the fixed effects that separate them are "
                    "unreliable (consider fewer predictors or a penalized/Bayesian fit)")
    elif resp.family.name == "poisson":
        k = int(np.sum(mu < eps))
        if k:
            return f"fitted counts numerically 0 occurred in {k} of {resp.n} rows"
    return None

