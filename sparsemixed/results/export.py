"""Tidy and machine-readable forms of a fit: to_dict (JSON-ready), to_frame (one row per
estimate, like broom.mixed's tidy), an HTML summary for notebooks (``_repr_html_``), and
publication tables of one or several fits side by side (:func:`table`; ``to_latex``,
``to_markdown``), as sjPlot's tab_model or modelsummary give them:

    fixed effects     estimate, a confidence interval (Wald: estimate -+ z SE, or t with the
                      coefficient table's df when it has them; or any confint method) or the
                      standard error, and the p-value when the coefficient table has one
    random effects    per term its variances (or SDs) and correlations, the residual variance
    (options)         the adjusted ICC  var_random / (var_random + var_residual) and Nakagawa's
                      marginal / conditional R^2 (var_random = mean_i z_i' G z_i; for a binomial
                      GLMM on the latent scale, var_residual = pi^2/3 (logit), 1 (probit),
                      pi^2/6 (cloglog); not defined here for other families)
    fit               number of observations and of groups per factor, the estimation
                      (REML, ML, Laplace ...), AIC and log-likelihood
"""
from __future__ import annotations

import html
import math

import numpy as np
import pandas as pd


def ranef_records(rf: pd.DataFrame) -> list[dict]:
    """A ranef_frame() as JSON-able records (grpvar, term, grp, condval, condsd)."""
    return [{"grpvar": r.grpvar, "term": r.term, "grp": str(r.grp), "condval": _num(r.condval),
             "condsd": _num(r.condsd)} for r in rf.itertuples(index=False)]


def _num(v):
    """A JSON-safe number (NaN/inf -> None)."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def row_series(res, values, name: str, na_action: str | None = None) -> pd.Series:
    """Row-level values of a fit (fitted values, residuals) as a Series on the data's row
    labels: the rows used in the fit (``na_action`` "omit", R's na.omit), or every row of the
    data with NaN for the rows dropped for missing values ("exclude", R's na.exclude).  The
    default is the model's ``na_action`` ("exclude" if the model has it, else "omit")."""
    from ..errors import ArgumentError

    given = na_action
    if na_action is None:
        na_action = getattr(res.model, "na_action", None) or "omit"
    key = str(na_action).lower().removeprefix("na.")
    if key == "fail" and given is None:
        key = "omit"
    if key not in ("omit", "exclude"):
        raise ArgumentError(f"na_action must be 'omit' (the rows used in the fit) or 'exclude' (every row of the "
                            f"data, NaN for the rows dropped), got {na_action!r}")
    values = np.asarray(values, dtype=float)
    kept = getattr(res.model, "kept", None) if hasattr(res.model, "nAGQ") else res._frame().kept
    data = res.model.data
    full = data.index if isinstance(data, pd.DataFrame) else None
    if kept is not None:
        kept = np.asarray(kept, dtype=bool)
        if full is None or len(full) != kept.size:
            full = pd.RangeIndex(kept.size)
        if int(kept.sum()) != values.size:          # should not happen; keep the values usable
            return pd.Series(values, name=name)
        if key == "exclude":
            out = np.full(kept.size, np.nan)
            out[kept] = values
            return pd.Series(out, index=full, name=name)
        return pd.Series(values, index=full[kept], name=name)
    if full is None or len(full) != values.size:
        full = pd.RangeIndex(values.size)
    return pd.Series(values, index=full, name=name)


class ExportMixin:
    """Methods mixed into LmerResult."""

    def to_dict(self, ranef: bool = True) -> dict:
        """Every estimate as plain Python data (json.dumps-able)."""
        m = self.model
        fe = pd.DataFrame({"estimate": self.fixef, "std_error": self.fixef_se})
        fe["t_value"] = fe["estimate"] / fe["std_error"]
        out = {
            "formula": m.formula, "REML": bool(self.REML), "nobs": int(self.nobs),
            "ngroups": {k: int(v) for k, v in self.ngroups.items()},
            "criterion": "REML" if self.REML else "ML", "objective": _num(self.objective),
            "loglik": _num(self.loglik), "aic": _num(self.aic), "bic": _num(self.bic),
            "deviance": _num(self.deviance) if self.deviance is not None else None,
            "sigma": _num(self.sigma), "theta": [_num(t) for t in self.theta],
            "is_singular": bool(self.is_singular), "converged": bool(self.converged),
            "fixef": [{"term": k, **{c: _num(v) for c, v in row.items()}} for k, row in fe.iterrows()],
            "vcov": {"names": list(self.vcov.index), "matrix": [[_num(x) for x in r] for r in self.vcov.to_numpy()]},
            "varcorr": [{k: (_num(v) if k in ("vcov", "sdcor") else (None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)))
                         for k, v in row.items()} for row in self.varcorr.to_dict("records")],
            "optimizer": {"method": self.optsummary.method, "evaluations": int(self.optsummary.feval),
                          "seconds": _num(self.optsummary.seconds), "returnvalue": str(self.optsummary.returnvalue)},
            "dropped_fixef": list(getattr(m, "dropped_fixef", [])),
        }
        if ranef:
            rf = self.ranef_frame()
            out["ranef"] = ranef_records(rf)
        return out

    def to_frame(self) -> pd.DataFrame:
        """One row per estimate: effect ("fixed" / "ran_pars"), group, term, estimate,
        std_error (fixed effects; NaN for variance parameters), statistic."""
        rows = []
        for term, est in self.fixef.items():
            se = self.fixef_se[term]
            rows.append(("fixed", None, term, est, se, est / se))
        for r in self.varcorr.itertuples(index=False):
            if r.grp == "Residual":
                term = "sd__Observation"
            elif r.var2 is None or (isinstance(r.var2, float) and np.isnan(r.var2)):
                term = f"sd__{r.var1}"
            else:
                term = f"cor__{r.var1}.{r.var2}"
            rows.append(("ran_pars", r.grp, term, r.sdcor, np.nan, np.nan))
        from .display import whole

        return whole(pd.DataFrame(rows, columns=["effect", "group", "term", "estimate", "std_error", "statistic"]))

    def _repr_html_(self) -> str:
        """The summary for notebooks: random effects (Variance, Std.Dev., Corr), fixed effects
        (``coef_table()``'s columns: df and p-values when it has them), the fit's warnings."""
        from .display import aictab_lines, format_num

        if self.REML:
            crit = f"REML criterion at convergence: {format_num(round(self.objective, 1))}"
        else:
            crit = _aic_html(aictab_lines(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                                          [self.aic, self.bic, self.loglik, self.objective, self.nobs - self.npar]))
        title = f"Linear mixed model fit by {'REML' if self.REML else 'maximum likelihood'}"
        return fit_html(self, title, crit, sigma=self.sigma)

    def to_latex(self, **kw) -> str:
        """A publication table of this fit in LaTeX (booktabs); see :func:`table` for the options."""
        return table([self], **kw).to_latex()

    def to_markdown(self, **kw) -> str:
        """A publication table of this fit in Markdown; see :func:`table` for the options."""
        return table([self], **kw).to_markdown()


# -- HTML summary ------------------------------------------------------------------------
_TABLE_STYLE = "border-collapse: collapse; margin: 0.3em 0;"
_NUM = ' style="text-align: right; font-family: monospace;"'


def _aic_html(lines) -> str:
    heads, vals = lines[0].split(), lines[1].split()
    return "; ".join(f"{html.escape(h)} {html.escape(v)}" for h, v in zip(heads, vals))


def _html_table(caption: str, header, rows, numeric_from: int, spans=None, index: bool = False) -> str:
    """A small HTML table: ``header`` (label, colspan) cells, ``rows`` of strings; columns from
    ``numeric_from`` on right-aligned in monospace."""
    esc = html.escape
    out = [f'<table style="{_TABLE_STYLE}"><caption style="text-align: left; font-weight: bold;">'
           f"{esc(caption)}</caption><thead><tr>"]
    for label, span in header:
        out.append(f'<th colspan="{span}">{esc(label)}</th>' if span > 1 else f"<th>{esc(label)}</th>")
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>")
        for j, cell in enumerate(row):
            tag = "th" if index and j == 0 else "td"
            style = _NUM if j >= numeric_from else ' style="text-align: left;"'
            out.append(f"<{tag}{style}>{esc(cell.strip())}</{tag}>")
        out.append("</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def random_effects_html(res, sigma=None) -> str:
    """lme4's random-effects table as HTML: Groups, Name, Variance, Std.Dev., Corr (one column
    per correlated term member), lme4's digits."""
    from .display import vc_blocks, vc_cells

    cells, cols = vc_cells(vc_blocks(res.model.terms, res.cov_re), sigma)
    ncorr = len(cols) - 4
    header = [(c, 1) for c in cols[:4]] + ([("Corr", ncorr)] if ncorr else [])
    return _html_table("Random effects", header, cells, numeric_from=2)


def fixed_effects_html(res) -> str:
    """The fixed effects as ``res.coef_table()`` gives them (with df and p-values when it has
    them), printCoefmat's digits and stars."""
    from .display import coefmat_cells

    tab = summary_coef_table(res)
    cells, cols, legend = coefmat_cells(tab.to_numpy(dtype=float), list(tab.columns))
    rows = [[str(name)] + r for name, r in zip(tab.index, cells)]
    out = _html_table("Fixed effects", [("", 1)] + [(c, 1) for c in cols], rows, numeric_from=1, index=True)
    if legend:
        out += f'<p style="font-size: smaller;">{html.escape(legend)}</p>'
    return out


def summary_coef_table(res):
    """The fixed-effects table the text summary shows: ``coef_table()`` with the df method
    the summary chose (display.fixed_effects_table: Satterthwaite's unless too costly or a
    sparse-X fit); a glmer fit's z tests."""
    if _is_glmm(res):
        return res.coef_table()
    import warnings

    from .display import fixed_effects_table

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        method = fixed_effects_table(res, "auto")[1]
        return res.coef_table(ddf=method) if method else res.coef_table()


def fit_html(res, title: str, criterion: str, sigma=None, family: str | None = None) -> str:
    """The HTML summary of a fit (LmerResult or GlmerResult)."""
    from .display import fit_messages

    esc = html.escape
    m = res.model
    groups = "; ".join(f"{esc(str(k))}, {v:,}" for k, v in res.ngroups.items())
    parts = [f'<div class="sparsemixed-fit"><p><b>{esc(title)}</b> [sparsemixed]<br>',
             f"Family: {esc(family)}<br>" if family else "",
             f"Formula: <code>{esc(str(m.formula))}</code><br>{criterion}</p>",
             random_effects_html(res, sigma),
             f"<p>Number of obs: {res.nobs:,}, groups: {groups}</p>"]
    if len(res.fixef):
        try:
            parts.append(fixed_effects_html(res))
        except Exception as exc:        # e.g. a Hessian that is not positive definite
            parts.append(f"<p>Fixed effects not available: {esc(str(exc))}</p>")
    msgs = fit_messages(res)
    if msgs:
        parts.append('<p style="color: #a00;"><b>Warnings</b></p><ul style="color: #a00;">'
                     + "".join(f"<li>{esc(x)}</li>" for x in msgs) + "</ul>")
    parts.append("</div>")
    return "".join(parts)


# -- publication tables --------------------------------------------------------------------
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}",
                  "|": r"$|$", "<": r"$<$", ">": r"$>$", "\u2013": "--", "\u00b2": r"$^2$"}


def _latex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))


def _md(text: str) -> str:
    return str(text).replace("|", "\\|")


def _is_glmm(res) -> bool:
    return hasattr(res, "nAGQ")


def _estimation(res) -> str:
    if _is_glmm(res):
        return ("Laplace" if res.nAGQ == 1 else f"AGQ ({res.nAGQ} points)" if res.nAGQ > 1
                else "Laplace (nAGQ = 0)")
    return "REML" if res.REML else "ML"


def _coefs(res, ddf, ci, level, ci_method):
    """Per fixed effect: estimate, SE, CI bounds, p-value (NaN when the table has none)."""
    from scipy import stats

    if ddf is not None and not _is_glmm(res):
        tab = res.coef_table(ddf=ddf)
    else:
        tab = res.coef_table()
    est = tab["Estimate"].to_numpy(dtype=float)
    se = tab["Std. Error"].to_numpy(dtype=float)
    pcol = [c for c in tab.columns if str(c).startswith("Pr(")]
    p = tab[pcol[0]].to_numpy(dtype=float) if pcol else np.full(est.size, np.nan)
    lo = hi = np.full(est.size, np.nan)
    if ci:
        if ci_method.lower() == "wald":
            a = (1 + level) / 2
            q = stats.t.ppf(a, tab["df"].to_numpy(dtype=float)) if "df" in tab.columns else stats.norm.ppf(a)
            lo, hi = est - q * se, est + q * se
        else:
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cf = res.confint(parm=list(tab.index), level=level, method=ci_method)
            lo, hi = cf.iloc[:, 0].to_numpy(dtype=float), cf.iloc[:, 1].to_numpy(dtype=float)
    return list(tab.index), est, se, lo, hi, p


def _latent_variance(res):
    """The distribution-specific variance of a binomial GLMM on the latent scale (None otherwise)."""
    fam = res.model.family
    if fam.name != "binomial":
        return None
    return {"logit": math.pi ** 2 / 3, "probit": 1.0, "cloglog": math.pi ** 2 / 6}.get(fam.link.name)


def _variance_parts(res):
    """(var_fixed, var_random, var_residual) for the ICC and R^2 (var_residual None when not
    defined for the family)."""
    if not _is_glmm(res):
        r2 = res.r2_nakagawa()
        return r2["var_fixed"], r2["var_random"], r2["var_residual"]
    import scipy.sparse as sp

    X, Z = res.model.X, sp.csr_matrix(res.model.Z)
    var_f = float(np.var(X @ res.beta, ddof=1)) if X.shape[1] else 0.0
    L = res.model.Lambda(res.theta)
    G = (L @ L.T).tocsc()
    var_r = float(np.asarray((Z @ G).multiply(Z).sum(axis=1)).mean())
    return var_f, var_r, _latent_variance(res)


class ModelTable:
    """A publication table of one or several fits side by side (:func:`table`): ``to_latex()``,
    ``to_markdown()``, ``to_html()``, ``to_frame()`` (the cells, a DataFrame) and ``str()``."""

    def __init__(self, names, subcols, sections, notes):
        self.names, self.subcols, self.sections, self.notes = names, subcols, sections, notes

    # the grid: rows of (label, [per model: list of cells (len(subcols)) or one spanning str])
    def _rows(self):
        for title, rows in self.sections:
            yield ("section", title, None)
            for label, cells in rows:
                yield ("row", label, cells)

    def to_frame(self):
        from .display import whole

        cols = pd.MultiIndex.from_tuples([(n, c) for n in self.names for c in self.subcols])
        data, index = [], []
        for title, rows in self.sections:
            for label, cells in rows:
                line = []
                for c in cells:
                    line += list(c) if isinstance(c, list) else [c] + [""] * (len(self.subcols) - 1)
                data.append(line)
                index.append((title, label))
        return whole(pd.DataFrame(data, index=pd.MultiIndex.from_tuples(index), columns=cols))

    def to_markdown(self) -> str:
        k = len(self.subcols)
        multi = len(self.names) > 1 or self.names[0]
        head = [""] + [f"{n} {c}".strip() if multi else c for n in self.names for c in self.subcols]
        align = [":--"] + ["--:" if c != self.subcols[1] or k < 2 else ":-:" for _ in self.names for c in self.subcols]
        out = ["| " + " | ".join(_md(h) for h in head) + " |", "|" + "|".join(align) + "|"]
        for kind, label, cells in self._rows():
            if kind == "section":
                out.append(f"| **{_md(label)}** |" + " |" * (len(head) - 1))
                continue
            line = [_md(label)]
            for c in cells:
                line += [_md(x) for x in c] if isinstance(c, list) else [_md(c)] + [""] * (k - 1)
            out.append("| " + " | ".join(line) + " |")
        if self.notes:
            out += [""] + [f"*{_md(n)}*" for n in self.notes]
        return "\n".join(out)

    def to_latex(self, caption: str | None = None, label: str | None = None) -> str:
        """A booktabs tabular (``\\usepackage{booktabs}``); with ``caption`` (and ``label``) in a
        table environment."""
        k, m = len(self.subcols), len(self.names)
        ncol = 1 + k * m
        out = [r"\begin{tabular}{l" + "".join("c" * k for _ in range(m)) + "}", r"\toprule"]
        if m > 1 or self.names[0]:
            out.append(" & " + " & ".join(rf"\multicolumn{{{k}}}{{c}}{{{_latex(n)}}}" if k > 1 else _latex(n)
                                         for n in self.names) + r" \\")
            if k > 1:
                out.append(" ".join(rf"\cmidrule(lr){{{2 + i * k}-{1 + (i + 1) * k}}}" for i in range(m)))
        out.append(" & " + " & ".join(_latex(c) for _ in self.names for c in self.subcols) + r" \\")
        for kind, text, cells in self._rows():
            if kind == "section":
                out.append(r"\midrule")
                out.append(rf"\multicolumn{{{ncol}}}{{l}}{{\textit{{{_latex(text)}}}}} \\")
                continue
            line = [_latex(text)]
            for c in cells:
                if isinstance(c, list):
                    line += [_latex(x) for x in c]
                else:
                    line.append(rf"\multicolumn{{{k}}}{{c}}{{{_latex(c)}}}" if k > 1 else _latex(c))
            out.append(" & ".join(line) + r" \\")
        out += [r"\bottomrule", r"\end{tabular}"]
        if self.notes:
            out += [r"\par\smallskip{\footnotesize " + _latex(" ".join(self.notes)) + "}"]
        if caption is not None:
            out = ([r"\begin{table}[htbp]", r"\centering", rf"\caption{{{_latex(caption)}}}"]
                   + ([rf"\label{{{label}}}"] if label else []) + out + [r"\end{table}"])
        return "\n".join(out)

    def to_html(self) -> str:
        esc = html.escape
        k, m = len(self.subcols), len(self.names)
        out = [f'<table style="{_TABLE_STYLE}"><thead>']
        if m > 1 or self.names[0]:
            out.append("<tr><th></th>" + "".join(f'<th colspan="{k}">{esc(n)}</th>' for n in self.names) + "</tr>")
        out.append("<tr><th></th>" + "".join(f"<th>{esc(c)}</th>" for _ in self.names for c in self.subcols)
                   + "</tr></thead><tbody>")
        for kind, label, cells in self._rows():
            if kind == "section":
                out.append(f'<tr><td colspan="{1 + k * m}" style="text-align: left;"><i>{esc(label)}</i></td></tr>')
                continue
            row = [f'<td style="text-align: left;">{esc(label)}</td>']
            for c in cells:
                if isinstance(c, list):
                    row += [f"<td{_NUM}>{esc(x)}</td>" for x in c]
                else:
                    row.append(f'<td colspan="{k}"{_NUM.replace("right", "center")}>{esc(c)}</td>')
            out.append("<tr>" + "".join(row) + "</tr>")
        out.append("</tbody></table>")
        if self.notes:
            out.append(f'<p style="font-size: smaller;">{esc(" ".join(self.notes))}</p>')
        return "".join(out)

    _repr_html_ = to_html

    def __str__(self) -> str:
        k = len(self.subcols)
        multi = len(self.names) > 1 or self.names[0]
        grid = []
        if multi:
            grid.append([""] + [n if j == 0 else "" for n in self.names for j in range(k)])
        grid.append([""] + list(self.subcols) * len(self.names))
        for kind, label, cells in self._rows():
            if kind == "section":
                grid.append([label] + [""] * (k * len(self.names)))
                continue
            line = ["  " + label]
            for c in cells:
                line += list(c) if isinstance(c, list) else [c] + [""] * (k - 1)
            grid.append(line)
        w = [max(len(r[j]) for r in grid) for j in range(len(grid[0]))]
        lines = [(r[0].ljust(w[0]) + "".join("  " + x.rjust(wj) for x, wj in zip(r[1:], w[1:]))).rstrip()
                 for r in grid]
        return "\n".join(lines + ([""] + self.notes if self.notes else []))

    def __repr__(self) -> str:
        return str(self)


def table(results, names=None, ci: bool = True, level: float = 0.95, ci_method: str = "Wald", ddf=None,
          p_values: bool = True, random: str = "variance", icc: bool = False, r2: bool = False,
          digits: int = 2, p_digits: int = 3) -> ModelTable:
    """A publication table of fitted models side by side (sjPlot's tab_model, modelsummary):
    ``sparsemixed.table([m1, m2]).to_latex()`` / ``.to_markdown()`` / ``.to_html()``.

    Fixed effects: the estimate, its ``level`` confidence interval (``ci=True``: Wald,
    estimate -+ z SE, t quantiles when the coefficient table has df; ``ci_method="profile"``
    or ``"boot"``: ``result.confint``) or its standard error (``ci=False``), and the p-value
    when the coefficient table has one (``p_values``): a glmer fit's z tests, an lmer fit's
    ``coef_table()`` columns, or ``ddf="Satterthwaite"``/``"Kenward-Roger"`` (lmerTest's).
    Random effects: per term the variances (``random="variance"``) or standard deviations
    (``"sd"``) and correlations, the residual's; the adjusted ICC (``icc=True``) and
    Nakagawa's R^2 (``r2=True``).  Then the number of groups per factor, observations, the
    estimation, AIC and log-likelihood.  Numbers with ``digits`` decimals, p-values with
    ``p_digits`` (below 10^-p_digits as "<0.001").  ``names``: column titles (default "(1)",
    "(2)", ...; none for a single model)."""
    from ..errors import ArgumentError

    if not isinstance(results, (list, tuple)):
        results = [results]
    if not results:
        raise ArgumentError("table() needs at least one fitted model")
    if random not in ("variance", "sd"):
        raise ArgumentError(f"random must be 'variance' or 'sd', got {random!r}")
    if names is None:
        names = [""] if len(results) == 1 else [f"({i + 1})" for i in range(len(results))]
    names = [str(n) for n in names]
    if len(names) != len(results):
        raise ArgumentError(f"names must have {len(results)} entries, got {len(names)}")
    num = lambda v: "" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"

    def pval(p):
        if not np.isfinite(p):
            return ""
        return f"<{10.0 ** -p_digits:.{p_digits}f}" if p < 10.0 ** -p_digits else f"{p:.{p_digits}f}"

    coefs = [_coefs(r, ddf, ci, level, ci_method) for r in results]
    show_p = p_values and any(np.isfinite(c[5]).any() for c in coefs)
    subcols = ["Estimate", f"{100 * level:g}% CI" if ci else "Std. Error"] + (["p"] if show_p else [])

    # fixed effects: the union of the terms, in order of first appearance
    terms = list(dict.fromkeys(t for c in coefs for t in c[0]))
    fixed = []
    for t in terms:
        cells = []
        for names_i, est, se, lo, hi, p in coefs:
            if t not in names_i:
                cells.append([""] * len(subcols))
                continue
            j = names_i.index(t)
            mid = f"{num(lo[j])} \u2013 {num(hi[j])}" if ci and np.isfinite(lo[j]) else (num(se[j]) if not ci else "")
            cells.append([num(est[j]), mid] + ([pval(p[j])] if show_p else []))
        fixed.append((t, cells))

    # random effects
    def re_rows(res):
        rows = []
        for t in res.model.terms:
            S = np.asarray(res.cov_re[t.name], dtype=float)
            sd = np.sqrt(np.clip(np.diag(S), 0, None))
            for i, c in enumerate(t.columns):
                rows.append((f"{'Var' if random == 'variance' else 'SD'} {c} | {t.name}",
                             S[i, i] if random == "variance" else sd[i]))
            for j in range(len(t.columns)):
                for i in range(j + 1, len(t.columns)):
                    den = sd[i] * sd[j]
                    rows.append((f"Cor {t.columns[j]}, {t.columns[i]} | {t.name}",
                                 S[i, j] / den if den > 0 else np.nan))
        return rows

    def residual_rows(res):
        if _is_glmm(res):
            return []
        return [("Var Residual" if random == "variance" else "SD Residual",
                 res.sigma ** 2 if random == "variance" else res.sigma)]

    def merge(per_model):
        per_model = [dict(rows) for rows in per_model]
        labels = list(dict.fromkeys(lab for rows in per_model for lab in rows))
        return [(lab, [num(rows[lab]) if lab in rows else "" for rows in per_model]) for lab in labels]

    random_rows = merge([re_rows(r) for r in results]) + merge([residual_rows(r) for r in results])
    if icc or r2:
        parts = [_variance_parts(r) for r in results]
        if icc:
            random_rows.append(("ICC (adjusted)", [num(vr / (vr + ve)) if ve is not None else ""
                                                   for _, vr, ve in parts]))
        if r2:
            random_rows.append(("R\u00b2 marginal", [num(vf / (vf + vr + ve)) if ve is not None else ""
                                                    for vf, vr, ve in parts]))
            random_rows.append(("R\u00b2 conditional", [num((vf + vr) / (vf + vr + ve)) if ve is not None else ""
                                                       for vf, vr, ve in parts]))
    groups = list(dict.fromkeys(g for r in results for g in r.ngroups))
    fit_rows = [(f"N {g}", [str(r.ngroups[g]) if g in r.ngroups else "" for r in results]) for g in groups]
    fit_rows.append(("Observations", [f"{r.nobs}" for r in results]))
    fit_rows.append(("Estimation", [_estimation(r) for r in results]))
    fit_rows.append(("AIC", [num(r.aic) for r in results]))
    fit_rows.append(("log-Likelihood", [num(r.loglik) for r in results]))
    notes = []
    if any(not _is_glmm(r) and r.REML for r in results):
        notes.append("AIC and log-likelihood of REML fits are the restricted ones (compare them only between "
                     "fits with the same fixed effects).")
    sections = [("Fixed effects", fixed), ("Random effects", random_rows), ("Model fit", fit_rows)]
    return ModelTable(names, subcols, sections, notes)
