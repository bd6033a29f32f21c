"""lme4-style text summary of an LmerResult, and R's rules for printing numbers.

lme4's print(summary(fit)) (1.1-31) uses digits = max(3, getOption("digits") - 3) = 4:

    scaled residuals   zapsmall(quantile(r), 5), printed as a named vector with 4 digits
    random effects     formatVC: variances together, standard deviations together, each with
                       format(x, digits = 4); a term's correlations format(round(r, 2), nsmall = 2)
    fixed effects      printCoefmat(coef, digits = 4): estimates and standard errors (and df, for
                       lmerTest's table) rounded to max(1, 4 - digmin) decimals, digmin = 1 +
                       floor(log10(smallest |value|)), then formatted together with 4 digits;
                       t/z values round(t, 3) formatted with 4 digits; p-values format.pval(p, 3)
                       and significance stars
    correlation        format(round(C, 3), nsmall = 3); rows labelled abbreviate(names, 11),
                       columns abbreviate(names, 6) (R's abbreviate: unique labels)

``format(x, digits = d)`` of a vector (R's formatReal) shows every element with d significant
digits (fewer when it needs fewer) and all with the same number of decimals: the largest
any element needs; scientific notation when the fixed width would exceed the scientific.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

R_DIGITS = 4                        # lme4's summary: max(3, getOption("digits") - 3)
MAX_CORRELATION = 12                # lme4's getOption("lme4.summary.cor.max")
EPS = 2.220446049250313e-16         # .Machine$double.eps (printCoefmat's eps.Pvalue)
SIGNIF_LEGEND = ("Signif. codes:  0 \u2018***\u2019 0.001 \u2018**\u2019 0.01 \u2018*\u2019 0.05 \u2018.\u2019 "
                 "0.1 \u2018 \u2019 1")


# -- R's formatting of numbers -----------------------------------------------------------
def _scientific(x: float, digits: int):
    """R's scientific(): (negative, exponent, significant digits needed (<= digits),
    rounding widens) of a finite x shown with ``digits`` significant digits."""
    if x == 0:
        return False, 0, 1, False
    r = abs(x)
    mant, exp = f"{r:.{digits - 1}e}".split("e")
    kpower = int(exp)
    nsig = max(1, len(mant.replace(".", "").rstrip("0")))
    rgt = min(max(digits - kpower, 0), 22)
    widens = 0 < kpower <= 22 and r < 10.0 ** kpower - 0.5 / 10.0 ** rgt
    return x < 0, kpower, nsig, widens


def format_r(x, digits: int = 7, nsmall: int = 0, na: str = "NA") -> list[str]:
    """R's ``format(x, digits = digits, nsmall = nsmall)`` of a numeric vector: common width,
    common number of decimals (or scientific notation for all)."""
    vals = [float(v) if v is not None else math.nan for v in np.asarray(x, dtype=object).ravel()]
    fin = [v for v in vals if math.isfinite(v)]
    if fin:
        parts = [_scientific(v, digits) for v in fin]
        neg = any(p[0] for p in parts)
        rgt, mxsl, mxns, mxe, mne = -10 ** 9, -10 ** 9, -10 ** 9, -10 ** 9, 10 ** 9
        mxl = -10 ** 9
        for n_, kp, nsig, widens in parts:
            left = kp + 1 - (1 if widens else 0)
            sleft = int(n_) + (1 if left <= 0 else left)
            rgt, mxl, mxsl, mxns = max(rgt, nsig - left), max(mxl, left), max(mxsl, sleft), max(mxns, nsig)
            mxe, mne = max(mxe, kp), min(mne, kp)
        if mxl < 0:
            mxsl = 1 + int(neg)
        rgt = max(rgt, 0)
        wF = mxsl + rgt + (rgt != 0)
        e = 2 if (mxe >= 100 or mne <= -99) else 1
        d = mxns - 1
        wE = int(neg) + (d > 0) + d + 4 + e
        if wF <= wE:
            if nsmall > rgt:
                rgt = nsmall
                wF = mxsl + rgt + (rgt != 0)
            fmt = lambda v: f"{v:.{rgt}f}"
            w = wF
        else:
            fmt = lambda v: f"{v:.{d}e}"
            w = wE
    else:
        fmt, w = None, 0
    out = []
    for v in vals:
        if math.isnan(v):
            s = na
        elif math.isinf(v):
            s = "Inf" if v > 0 else "-Inf"
        else:
            s = fmt(v)
            if s.startswith("-") and float(s) == 0 and v == 0:
                s = s[1:]
        out.append(s)
    w = max([w] + [len(s) for s in out])
    return [s.rjust(w) for s in out]


def format_num(x: float, digits: int = 7) -> str:
    """One number as R's cat()/print() shows it (``digits`` significant digits)."""
    return format_r([x], digits)[0].strip()


def r_round(x, digits: int):
    """R's round(x, digits) (half to even on the binary value, as R >= 4.0)."""
    return np.array([round(float(v), digits) if math.isfinite(v) else v for v in np.ravel(x)],
                    dtype=float).reshape(np.shape(x))


def zapsmall(x, digits: int):
    """R's zapsmall(x, digits) (R 4.2: round(x, digits - log10(max |x|)), the digits rounded
    to the nearest integer by round())."""
    x = np.asarray(x, dtype=float)
    fin = x[np.isfinite(x)]
    mx = float(np.max(np.abs(fin))) if fin.size else 0.0
    d = max(0, math.floor(digits - math.log10(mx) + 0.5)) if mx > 0 else digits
    return r_round(x, d)


def format_pval(pv, digits: int = 3, eps: float = EPS, na: str = "NA") -> list[str]:
    """R's format.pval(pv, digits, eps): fixed or scientific per magnitude, '<eps' below eps."""
    pv = np.asarray(pv, dtype=float)
    out = [na] * pv.size
    ok = np.flatnonzero(~np.isnan(pv))
    is0 = [i for i in ok if pv[i] < eps]
    rest = [i for i in ok if pv[i] >= eps]
    rr = {}
    if rest:
        expo = {i: math.floor(math.log10(pv[i] if pv[i] > 0 else 1e-50)) for i in rest}
        fixp = [i for i in rest if expo[i] >= -3 or (expo[i] == -4 and digits > 1)]
        sci = [i for i in rest if i not in fixp]
        for group in (fixp, sci):
            if group:
                rr.update(zip(group, format_r(pv[group], digits)))
    if is0:
        d = max(1, digits - 2)
        if rest:
            nc = max(len(s) for s in rr.values())
            if d > 1 and d + 6 > nc:
                d = max(1, nc - 7)
            sep = "" if d == 1 and nc <= 6 else " "
        else:
            sep = "" if d == 1 else " "
        for i in is0:
            rr[i] = "<" + sep + format_r([eps], d)[0]
    for i, s in rr.items():
        out[i] = s
    return out


def signif_stars(pv) -> list[str]:
    """R's symnum of p-values: *** <= 0.001 < ** <= 0.01 < * <= 0.05 < . <= 0.1 < ' '."""
    out = []
    for p in np.asarray(pv, dtype=float):
        out.append("" if np.isnan(p) else "***" if p <= 0.001 else "**" if p <= 0.01 else
                   "*" if p <= 0.05 else "." if p <= 0.1 else " ")
    return out


# -- R's abbreviate ----------------------------------------------------------------------
def _strip_chars(s: str, minlen: int) -> str:
    """R's C stripchars (abbreviate with use.classes = TRUE) on an ASCII string."""
    b = list(s)
    nspace = 0

    def short():
        return len(b) - nspace <= minlen

    def first(i):                       # FIRSTCHAR: the character before is a space
        return b[i - 1].isspace()

    def last(i):                        # LASTCHAR: ends a word
        return (not b[i - 1].isspace()) and (i + 1 >= len(b) or b[i + 1].isspace())

    def vowel(i):
        return b[i] in "aeiou"

    def done():
        if len(b) > minlen:
            for i in range(len(b) - 1, 0, -1):
                if b[i].isspace():
                    del b[i]
        return "".join(b)

    if len(b) < minlen:
        return done()
    trailing = True
    for i in range(len(b) - 1, 0, -1):
        if b[i].isspace():
            if trailing:
                del b[i:]
            else:
                nspace += 1
        else:
            trailing = False
        if short():
            return done()
    passes = [lambda i: vowel(i) and last(i), lambda i: vowel(i) and not first(i),
              lambda i: b[i].islower() and last(i), lambda i: b[i].islower() and not first(i),
              lambda i: not first(i) and not b[i].isspace()]
    for test in passes:
        for i in range(len(b) - 1, 0, -1):
            if i < len(b) and test(i):
                del b[i]
            if short():
                return done()
    return done()


def abbreviate(names, minlength: int = 4) -> list[str]:
    """R's ``abbreviate(names, minlength)`` (method "left.kept"): lower-case vowels from the
    end first, then lower-case letters, then any; ``minlength`` grows for the names whose
    abbreviations collide until all are unique."""
    names = [str(n).strip(" ") for n in names]
    if minlength <= 0:
        return [""] * len(names)
    uniq = list(dict.fromkeys(names))

    def one(s, m):
        return _strip_chars(s, m) if len(s) > m else s

    x = list(uniq)
    dup2 = [True] * len(uniq)
    m = minlength
    while True:
        for i, flag in enumerate(dup2):
            if flag:
                x[i] = one(uniq[i], m)
        seen, dup = set(), []
        for v in x:
            dup.append(v in seen)
            seen.add(v)
        if not any(dup):
            break
        m += 1
        dups = {v for v, d in zip(x, dup) if d}
        dup2 = [d or v in dups for v, d in zip(x, dup)]
    out = dict(zip(uniq, x))
    return [out[n] for n in names]


# -- R's printing of character matrices and named vectors ----------------------------------
def matrix_lines(cells, colnames, rownames=None, right: bool = False) -> list[str]:
    """print.default of a character matrix (quote = FALSE): row names left-justified, each
    column (header included) left- or right-justified to its widest entry, one space apart."""
    nr = len(cells)
    rownames = [""] * nr if rownames is None else [str(r) for r in rownames]
    rw = max([len(r) for r in rownames] + [0])
    widths = [max([len(colnames[j])] + [len(cells[i][j]) for i in range(nr)]) for j in range(len(colnames))]
    just = (lambda s, w: s.rjust(w)) if right else (lambda s, w: s.ljust(w))
    lines = [" " * rw + "".join(" " + just(c, w) for c, w in zip(colnames, widths))]
    for i in range(nr):
        lines.append(rownames[i].ljust(rw) + "".join(" " + just(c, w) for c, w in zip(cells[i], widths)))
    return lines


def named_vector_lines(names, values) -> list[str]:
    """print of a named vector of formatted strings: a common width, right-justified."""
    w = max([len(n) for n in names] + [len(v) for v in values])
    return ["".join(n.rjust(w) + " " for n in names), "".join(v.rjust(w) + " " for v in values)]


# -- the blocks of lme4's summary --------------------------------------------------------
def coefmat_cells(values, colnames, digits: int = R_DIGITS, stars: bool = True):
    """R's printCoefmat (defaults: the last column p-values when named "Pr(..." or "p-v...",
    the one before it the test statistic, the columns before that estimates, standard errors
    and df): (cells, column names, legend or None) of the printed matrix."""
    xm = np.array(values, dtype=float)
    if xm.ndim == 1:
        xm = xm[:, None]
    nr, nc = xm.shape
    colnames = [str(c) for c in colnames]
    has_p = nc >= 4 and colnames[-1][:3] in ("Pr(", "p-v")
    k = nc - int(has_p) - 1
    cs, tst = list(range(k)), k
    dig_tst = max(1, min(5, digits - 1))
    cf = [[""] * nc for _ in range(nr)]
    ok = ~np.isnan(xm)
    if cs:
        cse = xm[:, cs]
        acs = np.abs(cse)
        fin = np.isfinite(acs)
        if fin.any():
            nz = acs[fin & (acs != 0)]
            digmin = 1 + (math.floor(math.log10(nz.min())) if nz.size else 0)
            dec = max(1, digits - digmin)
            flat = format_r(r_round(cse, dec).ravel(), digits)
            for i in range(nr):
                for jj, j in enumerate(cs):
                    cf[i][j] = flat[i * len(cs) + jj]
    if 0 <= tst < nc:
        col = format_r(r_round(xm[:, tst], dig_tst), digits)
        for i in range(nr):
            cf[i][tst] = col[i]
    okp = ok.copy()
    if 0 <= tst < nc:
        okp[:, tst] = False
    if has_p:
        okp[:, nc - 1] = False
    fix = [(i, j) for i in range(nr) for j in range(nc) if okp[i, j]
           and (xm[i, j] == 0) != (float(cf[i][j]) == 0 if cf[i][j].strip() not in ("", "NA", "NaN", "Inf", "-Inf")
                                    else False)]
    if fix:
        new = format_r([xm[i, j] for i, j in fix], max(1, digits - 1))
        for (i, j), s in zip(fix, new):
            cf[i][j] = s
    for i in range(nr):
        for j in range(nc):
            if np.isnan(xm[i, j]):
                cf[i][j] = "NA"
    legend = None
    if has_p:
        pv = xm[:, nc - 1]
        okr = ~np.isnan(pv)
        if okr.any():
            ps = format_pval(pv[okr], dig_tst)
            for i, s in zip(np.flatnonzero(okr), ps):
                cf[i][nc - 1] = s
            if stars and np.any(pv[okr] < 0.1):
                st = signif_stars(pv)
                w = max(len(s) for s in st)
                for i in range(nr):
                    cf[i].append(st[i].ljust(w))
                colnames = colnames + [""]
                legend = SIGNIF_LEGEND
    return cf, colnames, legend


def coefmat_lines(table, digits: int = R_DIGITS, stars: bool = True) -> list[str]:
    """printCoefmat(table) as lines (``table``: a DataFrame, rows the coefficients)."""
    cells, cols, legend = coefmat_cells(table.to_numpy(dtype=float), list(table.columns), digits, stars)
    lines = matrix_lines(cells, cols, list(table.index), right=True)
    if legend:
        lines += ["---", legend]
    return lines


def vc_cells(blocks, sigma=None, digits: int = R_DIGITS, comp=("Variance", "Std.Dev.")):
    """lme4's formatVC: ``blocks`` a list of (group, column names, sds, correlation matrix or
    None); ``sigma`` the residual SD (None for a GLMM).  Returns (cells, column names)."""
    groups, names, sds = [], [], []
    for g, cols, sd, _ in blocks:
        for i, c in enumerate(cols):
            groups.append(g if i == 0 else "")
            names.append(str(c))
            sds.append(float(sd[i]))
    if sigma is not None:
        groups.append("Residual")
        names.append("")
        sds.append(float(sigma))
    sds = np.asarray(sds, dtype=float)
    colnames = ["Groups", "Name"]
    cols = [groups, names]
    if "Variance" in comp:
        colnames.append("Variance")
        cols.append(format_r(sds ** 2, digits))
    if "Std.Dev." in comp:
        colnames.append("Std.Dev.")
        cols.append(format_r(sds, digits))
    cells = [list(r) for r in zip(*cols)]
    maxlen = max([len(b[1]) for b in blocks] + [1])
    if maxlen > 1:
        dig = max(2, digits - 2)
        corr_rows = []
        for _, cols_, _, C in blocks:
            k = len(cols_)
            C = np.eye(k) if C is None else np.asarray(C, dtype=float)
            f = format_r(r_round(C.T.ravel(), dig), 7, nsmall=dig)     # column-major, as R's matrix
            cc = [[f[j * k + i] if i > j else "" for j in range(k)] for i in range(k)]
            corr_rows += [r + [""] * (maxlen - k) for r in cc]
        corr_rows = [r[:maxlen - 1] for r in corr_rows]
        corr_rows += [[""] * (maxlen - 1)] * (len(cells) - len(corr_rows))
        cells = [a + b for a, b in zip(cells, corr_rows)]
        colnames += ["Corr"] + [""] * (maxlen - 2)
    return cells, colnames


def vc_blocks(terms, cov_re: dict) -> list:
    """(group, columns, sds, correlations) per random-effects term, from result.cov_re."""
    out = []
    for t in terms:
        S = np.asarray(cov_re[t.name], dtype=float)
        sd = np.sqrt(np.clip(np.diag(S), 0.0, None))
        with np.errstate(invalid="ignore", divide="ignore"):
            C = S / np.outer(sd, sd)
        np.fill_diagonal(C, 1.0)
        out.append((t.name, list(t.columns), sd, C if len(t.columns) > 1 else None))
    return out


def correlation_lines(C, names) -> list[str]:
    """lme4's "Correlation of Fixed Effects" block (without its title)."""
    C = np.asarray(C, dtype=float)
    p = C.shape[0]
    f = format_r(r_round(C.T.ravel(), 3), 7, nsmall=3)
    rows, cols = abbreviate(names, 11), abbreviate(names, 6)
    cells = [[f[j * p + i] if i > j else "" for j in range(p - 1)] for i in range(1, p)]
    return matrix_lines(cells, cols[:-1], rows[1:], right=False)


def residual_lines(r, digits: int = R_DIGITS) -> list[str]:
    """lme4's "Scaled residuals" block (without its title)."""
    r = np.asarray(r, dtype=float)
    return quantile_lines(np.quantile(r[np.isfinite(r)], [0, 0.25, 0.5, 0.75, 1.0]), digits)


def quantile_lines(q, digits: int = R_DIGITS) -> list[str]:
    """The five quantiles as lme4 prints them: zapsmall(q, digits + 1), then digits."""
    return named_vector_lines(["Min", "1Q", "Median", "3Q", "Max"], format_r(zapsmall(q, digits + 1), digits))


def aictab_lines(names, values) -> list[str]:
    """lme4's .prt.aictab: round(x, 1), formatted together (7 digits), df.resid alone."""
    vals = r_round(np.asarray(values, dtype=float), 1)
    f = format_r(vals, 7)[:-1] + [format_num(vals[-1])]
    return named_vector_lines(list(names), f)


def lme4_summary(res, ddf="auto") -> str:
    m = res.model
    lines = []
    method = "REML" if res.REML else "maximum likelihood"
    fixed_lines, ddf_method = fixed_effects_table(res, ddf)
    tests = f". t-tests use {ddf_method}'s method" if ddf_method else ""
    lines.append(f"Linear mixed model fit by {method}{tests} ['sparsemixed']")
    lines.append(f"Formula: {m.formula}")
    lines.append("")
    if res.REML:
        lines.append(f"REML criterion at convergence: {format_num(round(res.objective, 1))}")
    else:
        lines += aictab_lines(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                              [res.aic, res.bic, res.loglik, res.objective, res.nobs - res.npar])
    lines.append("")
    if m.data is not None:
        try:
            r = res.residuals("pearson", scaled=True)
            lines.append("Scaled residuals: ")
            lines += residual_lines(r)
            lines.append("")
        except Exception:  # the data may have changed since the fit
            pass
    lines.append("Random effects:")
    lines += random_effects_lines(res, sigma=res.sigma)
    lines.append(groups_line(res))
    if m.fixef_names:
        lines.append("")
        lines.extend(fixed_lines)
        lines += fixef_correlation_lines(res)
    lines += fit_messages(res)
    return "\n".join(lines)


def random_effects_lines(res, sigma=None, digits: int = R_DIGITS) -> list[str]:
    """lme4's random-effects table (Groups, Name, Variance, Std.Dev., Corr) of a fit."""
    cells, cols = vc_cells(vc_blocks(res.model.terms, res.cov_re), sigma, digits)
    return matrix_lines(cells, cols)


def groups_line(res) -> str:
    ng = "; ".join(f"{g}, {n}" for g, n in res.ngroups.items())
    return f"Number of obs: {res.nobs}, groups:  {ng}"


def _vcov_matrix(res) -> np.ndarray:
    V = res.vcov
    V = V() if callable(V) else V
    return V.to_numpy(dtype=float)


def fixef_correlation_lines(res) -> list[str]:
    """The "Correlation of Fixed Effects" block (lme4 shows it for 1 < p <= 12 when the
    covariance is at hand; a sparse-X fit says how to get it)."""
    names = list(res.fixef.index)
    if len(names) < 2:
        return []
    if not getattr(res, "show_correlation", True):
        return ["", f"Correlation matrix not shown by default, as p = {len(names)} > 12 (sparse-X fit; "
                    "res.vcov computes it)"]
    if len(names) > MAX_CORRELATION:       # lme4's getOption("lme4.summary.cor.max")
        return ["", f"Correlation matrix not shown by default, as p = {len(names)} > {MAX_CORRELATION}; "
                    "res.vcov has the covariance of the fixed effects"]
    try:
        V = _vcov_matrix(res)
    except Exception as exc:            # e.g. a GLMM whose Hessian is not positive definite
        return ["", f"Correlation of Fixed Effects not available: {exc}"]
    d = np.sqrt(np.diag(V))
    return ["", "Correlation of Fixed Effects:"] + correlation_lines(V / np.outer(d, d), names)


def fit_messages(res) -> list[str]:
    """The fit's warnings, as lme4 prints them below the summary: dropped columns, the
    optimizer's convergence code, failed convergence checks, a singular fit."""
    out = []
    m = res.model
    dropped = list(getattr(getattr(m, "lmm", m), "dropped_fixef", []) or [])
    if dropped:
        out.append(f"fixed-effect model matrix is rank deficient so dropping {len(dropped)} "
                   f"columns / coefficients: {', '.join(dropped)}")
    opt = getattr(res, "optsummary", None)
    if opt is not None and not opt.converged:
        out.append(f"optimizer ({opt.method}) convergence code: {opt.returnvalue}")
    diag = getattr(opt, "diagnostics", None) or {}
    if diag.get("checked") and "hessian_positive_definite" in diag:
        if not diag["hessian_positive_definite"]:
            out.append("Model is nearly unidentifiable: the Hessian of the criterion is not positive definite "
                       f"(smallest eigenvalue {diag['hessian_min_eigenvalue']:.3g})")
        else:
            from ..diagnostics import SCALED_GRAD_TOL

            g = np.max(np.abs(np.asarray(diag["scaled_gradient"], dtype=float)))
            if g > SCALED_GRAD_TOL:
                out.append(f"Model failed to converge with max|scaled grad| = {g:.3g} (tol = {SCALED_GRAD_TOL})")
    if res.is_singular:
        out.append("boundary (singular) fit: see help('isSingular')")
    return out


def fixed_effects_table(res, ddf="auto") -> tuple[list, str | None]:
    """The summary's fixed-effects block and the df method used (None: lme4's table).

    ``ddf="auto"`` (the default): Satterthwaite's df and p-values (lmerTest's summary)
    unless the model has a sparse X (no dense R_ZX) or their estimated cost exceeds the
    fit's (inference.satterthwaite.too_costly), then lme4's t table and one line saying
    so; "Satterthwaite"/"Kenward-Roger" force that method; None gives lme4's table."""
    import warnings

    from ..inference import satterthwaite as satt
    from ..inference.ddf import _method

    m = res.model
    fe = res.fixef
    w = max(12, max(len(s) for s in fe.index) + 1)
    auto = isinstance(ddf, str) and ddf.lower() == "auto"
    method = "Satterthwaite" if auto else _method(ddf)
    note = None
    if auto and getattr(m, "sparse_X", False):
        method, note = None, ("t tests without df: Satterthwaite's df need the dense R_ZX, which a sparse-X "
                              "fit does not form (refit with sparse_X=False for them)")
    elif auto:
        cost = satt.too_costly(m, res.optsummary)
        if cost is not None:
            method, note = None, (f"t tests without df: at q = {m.q:,} random effects Satterthwaite's df "
                                  f"would cost about {cost[0]:.0f} criterion evaluations, more than the fit's "
                                  f"{cost[1]:.0f}; summary(ddf='Satterthwaite') computes them")
    tab = None
    if method is not None:
        with warnings.catch_warnings():
            if auto:                      # the boundary is reported below the table already
                from ..inference.varpar import VarParWarning

                warnings.simplefilter("ignore", VarParWarning)
            tab = res.coef_table(ddf=method)
        if auto and not np.all(np.isfinite(tab["df"].to_numpy(float))):
            tab, method, note = None, None, ("t tests without df: the Hessian of the deviance in the variance "
                                             "parameters is not positive definite at the fit, so Satterthwaite's "
                                             "df are undefined")
    lines = ["Fixed effects:"]
    if tab is None:
        se = res.fixef_se
        lines += coefmat_lines(pd.DataFrame({"Estimate": fe, "Std. Error": se, "t value": fe / se}))
        if note:
            lines.append(f"({note})")
        return lines, None
    lines += coefmat_lines(tab.set_axis(fe.index))
    return lines, method


# -- tables that print whole -------------------------------------------------------------
class Table(pd.DataFrame):
    """A DataFrame that prints every column (pandas hides columns behind "..." when a frame
    is wider than the terminal, or than 80 characters outside one): the tables of a fit
    (varcorr, ranef, coef, anova, coef_table, confint, to_frame ...) print whole, each row on
    one line.  Rows are shortened as pandas does (display.max_rows).  Operations on it
    (round, head, loc ...) return Tables too; otherwise it is a pandas DataFrame."""

    @property
    def _constructor(self):
        return Table

    _OPTIONS = ("display.max_columns", None, "display.expand_frame_repr", False, "display.max_colwidth", None)

    def __repr__(self) -> str:
        with pd.option_context(*self._OPTIONS):
            return super().__repr__()

    def _repr_html_(self):
        with pd.option_context(*self._OPTIONS):
            return super()._repr_html_()


def whole(obj):
    """A DataFrame as a :class:`Table` (attrs kept), a dict of them likewise; anything else as is."""
    if isinstance(obj, Table):
        return obj
    if isinstance(obj, pd.DataFrame):
        out = Table(obj)
        out.attrs = dict(obj.attrs)
        return out
    if isinstance(obj, dict) and obj and all(isinstance(v, pd.DataFrame) for v in obj.values()):
        return {k: whole(v) for k, v in obj.items()}
    return obj


def returns_table(fn):
    """Wrap a method so that the DataFrame(s) it returns print whole (:func:`whole`)."""
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        return whole(fn(*args, **kwargs))

    return wrapper
