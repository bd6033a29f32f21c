"""Text display of emmeans summaries, as R's print.summary_emm lays them out.

Numbers are formatted per column with R's ``format(x, digits)``: the fewest decimals that
show every value to ``digits`` significant digits.  ``digits`` is emmeans' "optimal"
choice, max over rows of round(1.51 - log10(4 SE / max|est -+ 2 SE|)), at least 3 (so
that the estimates are shown to the precision their standard errors warrant); df is
rounded to 2 decimals first, t/z ratios are shown with 3 decimals and p-values with 4
("<.0001" below).  ``by`` groups are printed as separate tables headed "by = level:", then
the notes.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .emm_adjust import zapsmall

STAT_COLS = ("t.ratio", "z.ratio")


def _sci_parts(x: float, digits: int):
    """(exponent, significant digits needed) of |x| rounded to ``digits`` digits (R's scientific())."""
    if x == 0 or not math.isfinite(x):
        return 0, 1
    mant, exp = f"{abs(x):.{digits - 1}e}".split("e")
    sig = mant.replace(".", "").rstrip("0")
    return int(exp), max(1, len(sig))


def r_format(values, digits: int) -> list[str]:
    """R's format(x, digits = digits) for a numeric vector (common decimals, right-aligned)."""
    x = np.asarray(values, float)
    fin = x[np.isfinite(x)]
    if fin.size == 0:
        out = ["NA" if np.isnan(v) else ("Inf" if v > 0 else "-Inf") for v in x]
    else:
        parts = [_sci_parts(float(v), digits) for v in fin]
        rgt = max(0, max(sig - kp - 1 for kp, sig in parts))
        rgt = min(rgt, 15)
        neg = bool(np.any(fin < 0))
        mxsl = max((kp + 1 if kp >= 0 else 1) for kp, _ in parts)
        w_fixed = neg + mxsl + rgt + (rgt > 0)
        mxns = max(sig for _, sig in parts)
        w_sci = neg + (mxns + 1 if mxns > 1 else mxns) + 4
        if w_fixed <= w_sci:
            fmt = lambda v: f"{v:.{rgt}f}"
        else:
            fmt = lambda v: _r_sci(v, mxns)
        out = []
        for v in x:
            if np.isnan(v):
                out.append("NA")
            elif np.isinf(v):
                out.append("Inf" if v > 0 else "-Inf")
            else:
                out.append(fmt(float(v)))
    w = max(len(s) for s in out) if out else 0
    return [s.rjust(w) for s in out]


def _r_sci(v: float, nsig: int) -> str:
    m, e = f"{v:.{max(nsig - 1, 0)}e}".split("e")
    return f"{m}e{int(e):+03d}"


def _opt_digits(est: np.ndarray, se: np.ndarray) -> int:
    """emmeans' .opt.dig over the rows (est - 2 SE, est, est + 2 SE)."""
    best = 3
    for e, s in zip(est, se):
        x = np.array([e - 2 * s, e, e + 2 * s])
        if not np.all(np.isfinite(x)):
            continue
        m = np.max(np.abs(x))
        if not m > 0:
            continue
        z = np.array([x.min(), x.max()]) / m
        dz = zapsmall(np.array([z[1] - z[0], z[0], z[1]]), 8)[0]
        if dz <= 0:
            continue
        zz = int(np.round(1.51 - math.log10(dz)))
        best = max(best, zz)
    return best


def _label_strings(col: pd.Series, digits: int) -> list[str]:
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return [s.strip() for s in r_format(col.to_numpy(float), digits)]
    return [str(v) for v in col]


def format_summary(frame: pd.DataFrame) -> str:
    """The emmeans-style text of a summary frame (attrs: est_name, by_vars, notes, label_cols)."""
    attrs = frame.attrs
    est_name = attrs.get("est_name")
    by = list(attrs.get("by_vars") or [])
    labels = list(attrs.get("label_cols") or [])
    notes = list(attrs.get("notes") or [])
    x = frame.copy()
    cols = list(x.columns)
    cells, right = {}, {}
    digits = 3
    if est_name in x.columns and "SE" in x.columns:
        digits = _opt_digits(x[est_name].to_numpy(float), x["SE"].to_numpy(float))
    for c in cols:
        col = x[c]
        if c in labels:
            numeric = pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col)
            cells[c] = _label_strings(col, digits)
            right[c] = numeric
            continue
        v = col.to_numpy(float)
        right[c] = True
        if c in STAT_COLS:
            cells[c] = [("NA" if np.isnan(a) else f"{np.round(a, 3):.3f}") for a in v]
        elif c == "p.value":
            s = [("NA" if np.isnan(a) else f"{np.round(a, 4):.4f}") for a in v]
            cells[c] = ["<.0001" if t == "0.0000" else t for t in s]
        else:
            v = zapsmall(v)
            if c == "df":
                v = np.where(np.isfinite(v), np.round(v, 2), v)
            s = [t.strip() for t in r_format(v, digits)]
            if c == est_name:
                s = ["nonEst" if np.isnan(a) else t for a, t in zip(v, s)]
            cells[c] = s
    widths = {c: max([len(c)] + [len(s) for s in cells[c]]) for c in cols}

    def line(cs, rows):
        out = []
        head = " " + " ".join((c.rjust(widths[c]) if right[c] else c.ljust(widths[c])) for c in cs)
        out.append(head.rstrip() if not cs else head)
        for i in rows:
            out.append(" " + " ".join((cells[c][i].rjust(widths[c]) if right[c] else cells[c][i].ljust(widths[c]))
                                      for c in cs))
        return out

    lines = list(attrs.get("messages") or [])     # emmeans' messages (R prints them first)
    n = len(x)
    if not by:
        lines += line(cols, range(n))
        lines.append("")
    else:
        show = [c for c in cols if c not in by]
        keys = []
        for v in reversed(by):
            col = x[v]
            if isinstance(col.dtype, pd.CategoricalDtype):
                keys.append(col.cat.codes.to_numpy())
            else:
                keys.append(pd.factorize(col, sort=False)[0])
        order = np.lexsort(keys[::-1]) if keys else np.arange(n)
        groups = {}
        for i in order:
            lab = ", ".join(f"{v} = {cells[v][i].strip()}" for v in by)
            groups.setdefault(lab, []).append(i)
        for lab, rows in groups.items():
            lines.append(f"{lab}:")
            lines += line(show, rows)
            lines.append("")
    for m in dict.fromkeys(notes):
        lines.append(m)
    return "\n".join(lines).rstrip("\n")
