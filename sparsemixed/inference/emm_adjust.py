"""Multiplicity adjustments of p-values and confidence intervals, as R's emmeans applies them
(emmeans 1.8.4: ``.adj.p.value``, ``.adj.critval``, ``.pdunnx``, ``.qdunnx``; stats'
``p.adjust``).  For a family of ``n`` tests (the rows of one ``by`` group) with t ratios
t_i and degrees of freedom nu_i (Inf for z tests), p_i = 2 P(T_nu > |t_i|):

    tukey       P(Q_{k, nu} > sqrt(2) |t|), Q the studentized range of the k means compared
                (scipy.stats.studentized_range); only for one family of pairwise
                differences: any other family gets sidak, as emmeans does
    sidak       1 - (1 - p)^n                      bonferroni   min(1, n p)
    holm, hochberg, BH (= fdr), BY                 stats::p.adjust's step-up/down rules
    scheffe     P(F_{r, nu} > t^2 / r), r = rank of the family's linear functions
    dunnettx    1 - [w P(Q_{k', nu} < sqrt(2)|t|) + (1 - w) P(F_{1,nu} < t^2)^n],
                k' = (1 + sqrt(1 + 8 n)) / 2, w = (n - 1) / n   (emmeans' approximation
                to Dunnett's many-to-one distribution)
    mvt         1 - P(max_i |T_i| < |t|), T multivariate t with the family's correlation and
                the row's df truncated to an integer (as emmeans calls mvtnorm::pmvt):
                P = E_v[F_{r,df}(c^2 / (r max_i (a_i'v)^2))] over directions v of the
                rank-r factor A (corr = A A'), exact in the radius; the directions are a
                fine grid (r = 2, error ~1e-9) or 2^15 Sobol points (r > 2, ~1e-5).
                mvtnorm integrates by randomized quasi-Monte Carlo to 1e-3

Confidence intervals est +- c SE use the matching critical value c; the p.adjust methods
have no interval of their own and use bonferroni's (as emmeans).
"""
from __future__ import annotations

import math

import numpy as np
from scipy import optimize, stats

from ..errors import ArgumentError

PADJUST = ("holm", "hochberg", "hommel", "bonferroni", "BH", "BY", "fdr", "none")
METHODS = ("sidak", "tukey", "scheffe", "dunnettx", "mvt") + PADJUST
MVT_SEED = 20240611


def match_adjust(adjust: str, choices=METHODS) -> str:
    """R's pmatch of ``adjust`` against ``choices`` (case-insensitive; "bh"/"by" as R's)."""
    if not isinstance(adjust, str):
        raise ArgumentError(f"adjust must be a string such as 'tukey', 'holm' or 'none', got {adjust!r}")
    key = adjust.strip()
    low = {c.lower(): c for c in choices}
    if key.lower() in low:
        return low[key.lower()]
    hits = [c for c in choices if c.lower().startswith(key.lower())] if key else []
    if len(hits) == 1:
        return hits[0]
    raise ArgumentError(f"adjust method {adjust!r} is not recognized; use one of {', '.join(METHODS)}")


def zapsmall(x: np.ndarray, digits: int = 7) -> np.ndarray:
    """R's zapsmall (Inf makes it round to whole numbers, as in R)."""
    x = np.asarray(x, float)
    ok = ~np.isnan(x)
    if not ok.any():
        return x
    mx = float(np.max(np.abs(x[ok])))
    if not mx > 0:
        return x
    d = 0 if math.isinf(mx) else max(0, digits - int(math.ceil(math.log10(mx))))
    with np.errstate(invalid="ignore"):
        return np.where(np.isinf(x), x, np.round(x, d))


def p_adjust(p: np.ndarray, method: str, n: int | None = None) -> np.ndarray:
    """stats::p.adjust for the methods emmeans passes through (not hommel)."""
    p = np.asarray(p, float)
    lp = p.size
    n = lp if n is None else int(n)
    if method == "none" or lp == 0 or n <= 1:
        return p
    if method == "bonferroni":
        return np.minimum(1.0, n * p)
    if method == "holm":
        o = np.argsort(p, kind="stable")
        i = np.arange(1, lp + 1)
        out = np.empty(lp)
        out[o] = np.minimum(1.0, np.maximum.accumulate((n - i + 1) * p[o]))
        return out
    if method in ("hochberg", "BH", "fdr", "BY"):
        o = np.argsort(-p, kind="stable")
        i = np.arange(lp, 0, -1)
        if method == "hochberg":
            f = (n + 1 - i) * p[o]
        elif method == "BY":
            f = np.sum(1.0 / np.arange(1, n + 1)) * n / i * p[o]
        else:
            f = n / i * p[o]
        out = np.empty(lp)
        out[o] = np.minimum(1.0, np.minimum.accumulate(f))
        return out
    raise ArgumentError(f"p-value adjustment {method!r} is not implemented (hommel is not supported); use "
                        "holm, hochberg, BH/fdr, BY, bonferroni, sidak, tukey, scheffe, dunnettx, mvt or none")


def _f(fn: str, x, d1, d2):
    """scipy's F distribution ``fn`` (cdf, sf, ppf) with d2 = Inf as R's: chi^2_d1 / d1."""
    x, d1, d2 = np.broadcast_arrays(np.asarray(x, float), np.asarray(d1, float), np.asarray(d2, float))
    inf = np.isinf(d2)
    out = np.empty(x.shape)
    if (~inf).any():
        out[~inf] = getattr(stats.f, fn)(x[~inf], d1[~inf], d2[~inf])
    if inf.any():
        if fn == "ppf":
            out[inf] = stats.chi2.ppf(x[inf], d1[inf]) / d1[inf]
        else:
            out[inf] = getattr(stats.chi2, fn)(x[inf] * d1[inf], d1[inf])
    return out[()] if out.ndim == 0 else out


def ptukey_upper(q, k, df) -> np.ndarray:
    q, k, df = np.broadcast_arrays(np.asarray(q, float), np.asarray(k, float), np.asarray(df, float))
    return np.array([stats.studentized_range.sf(a, b, c) if np.isfinite(a) else (0.0 if a > 0 else 1.0)
                     for a, b, c in zip(q.ravel(), k.ravel(), df.ravel())]).reshape(q.shape)


def qtukey(level: float, k: float, df: float) -> float:
    return float(stats.studentized_range.ppf(level, k, df))


def pdunnx(x, k: float, df, twt: float | None = None) -> np.ndarray:
    """emmeans' .pdunnx: P(max statistic < x), Tukey/Sidak blend approximating Dunnett."""
    twt = (k - 1) / k if twt is None else twt
    x = np.asarray(x, float)
    tuk = 1.0 - ptukey_upper(math.sqrt(2) * x, (1 + math.sqrt(1 + 8 * k)) / 2, df)
    sid = _f("cdf", x ** 2, 1, df) ** k
    return twt * tuk + (1 - twt) * sid


def qdunnx(p: float, k: float, df: float) -> float:
    """emmeans' .qdunnx: the root of pdunnx(x) = p between the Tukey and Sidak values
    (Brent's method to tolerance 5e-4, as R's uniroot; the Tukey value if they are closer)."""
    if k < 1.005:
        return float(stats.t.ppf(1 - 0.5 * (1 - p), df))
    xtuk = qtukey(p, (1 + math.sqrt(1 + 8 * k)) / 2, df) / math.sqrt(2)
    xsid = math.sqrt(float(_f("ppf", p ** (1 / k), 1, df)))
    if abs(xtuk - xsid) < 5e-4:
        return xtuk
    fcn = lambda x: float(pdunnx(x, k, df)) - p
    try:
        return float(optimize.brentq(fcn, xtuk, xsid, xtol=5e-4))
    except ValueError:
        return xtuk


def _fix_df(df) -> int:
    return 0 if not np.isfinite(df) else int(df)


_SPHERE: dict = {}


def _sphere(r: int) -> np.ndarray:
    """Directions v on the unit sphere in R^r averaging the integrand below: r = 2, the
    half circle at 8192 equispaced angles (the integrand is periodic: error O(n^-2)); r > 2,
    2^15 scrambled Sobol normal vectors, normalized (fixed seed)."""
    if r not in _SPHERE:
        if r == 2:
            th = (np.arange(8192) + 0.5) * np.pi / 8192
            _SPHERE[r] = np.column_stack([np.cos(th), np.sin(th)])
        else:
            u = stats.qmc.Sobol(r, scramble=True, seed=MVT_SEED).random(2 ** 15)
            g = stats.norm.ppf(np.clip(u, 1e-12, 1 - 1e-12))
            _SPHERE[r] = g / np.linalg.norm(g, axis=1, keepdims=True)
    return _SPHERE[r]


def _pmvt_box(c: float, corr: np.ndarray, df: int) -> float:
    """P(|T_i| < c for all i), T = Z / s centred multivariate t (df 0: normal), Z ~ N(0, corr)
    (singular allowed: a family of pairwise differences is), s^2 = chi^2_df / df.

    With corr = A A' (A: k x r, r = rank) Z = A R v, v uniform on the unit sphere of R^r and
    R ~ chi_r independent of it, so the event is R / s < rho(v) = c / max_i |a_i'v| and

        P = E_v[ F_{r, df}(rho(v)^2 / r) ]     (df 0: the chi^2_r distribution of rho^2)

    exactly; only the average over directions is numerical (_sphere)."""
    w, U = np.linalg.eigh(corr)
    keep = w > 1e-10 * max(w.max(), 1e-300)
    A = U[:, keep] * np.sqrt(w[keep])
    r = int(keep.sum())
    if r == 1:
        m = np.max(np.abs(A[:, 0]))
        x = (c / m) ** 2
        return float(stats.chi2.cdf(x, 1) if not df else stats.f.cdf(x, 1, df))
    m = np.max(np.abs(_sphere(r) @ A.T), axis=1)
    x = (c / m) ** 2 / r
    return float(np.mean(stats.chi2.cdf(x * r, r) if not df else stats.f.cdf(x, r, df)))


def pmvt_upper(t, df, corr) -> np.ndarray:
    """1 - P(max |T| < |t_i|) per row (two-sided)."""
    return np.array([1.0 - _pmvt_box(abs(a), corr, _fix_df(d)) for a, d in zip(t, df)])


def qmvt(level: float, df: float, corr: np.ndarray) -> float:
    d = _fix_df(df)
    k = corr.shape[0]
    lo = float(stats.t.ppf(0.5 + level / 2, d) if d else stats.norm.ppf(0.5 + level / 2))
    hi = float(stats.t.ppf(1 - (1 - level) / (2 * k), d) if d else stats.norm.ppf(1 - (1 - level) / (2 * k)))
    if k == 1 or hi - lo < 1e-10:
        return lo
    return float(optimize.brentq(lambda c: _pmvt_box(c, corr, d) - level, lo * 0.999, hi * 1.001, xtol=1e-6))


def _do_msg(adjust: str, fs: float) -> bool:
    chk = {"none": 1, "tukey": 2, "scheffe": 3}.get(adjust, 99)
    return chk > 1 and not (fs < 3 and chk < 10)


def _num(x) -> str:
    x = float(x)
    return str(int(x)) if x == int(x) else f"{x:.7g}"


def adj_pvalue(t, df, adjust: str, fam_size, n_contr: int, et: int, by_rows, corr=None, sch_rank=None):
    """(p-values, message, adjust used, notes): emmeans' .adj.p.value for two-sided tests.
    ``fam_size`` may be the string "(varies)"/"uneven" (ragged families)."""
    t = np.asarray(t, float)
    DF = np.where(np.isnan(np.asarray(df, float)), np.inf, np.asarray(df, float))
    notes = []
    if n_contr == 1 and adjust != "scheffe":
        adjust = "none"
    adjust = match_adjust(adjust)
    if et != 3 and adjust == "tukey":
        notes.append('Note: adjust = "tukey" was changed to "sidak"\nbecause "tukey" is only appropriate '
                     "for one set of pairwise comparisons")
        adjust = "sidak"
    ragged = isinstance(fam_size, str) or adjust in ("mvt",) + PADJUST
    rows_list = [np.asarray(r) for r in by_rows] if ragged else [np.arange(t.size)]
    p_unadj = 2 * stats.t.sf(np.abs(t), DF)
    pval = np.full(t.size, np.nan)
    for jj, rows in enumerate(rows_list):
        up, at, d = p_unadj[rows], np.abs(t[rows]), DF[rows]
        n, fs = n_contr, fam_size
        if ragged:
            n = rows.size
            fs = (1 + math.sqrt(1 + 8 * n)) / 2
        if adjust in PADJUST:
            pval[rows] = p_adjust(up, "BH" if adjust == "fdr" else adjust, n=n)
        elif adjust == "sidak":
            pval[rows] = 1 - (1 - up) ** n
        elif adjust == "tukey":
            pval[rows] = ptukey_upper(math.sqrt(2) * at, fs, zapsmall(d))
        elif adjust == "scheffe":
            r = sch_rank[jj]
            pval[rows] = _f("sf", t[rows] ** 2 / r, r, d)
        elif adjust == "dunnettx":
            pval[rows] = 1 - pdunnx(at, n, d)
        elif adjust == "mvt":
            pval[rows] = pmvt_upper(t[rows], d, corr[np.ix_(rows, rows)])
    nc, fs_msg, sch_dim = _message_family(ragged, by_rows, n_contr, fam_size, sch_rank)
    mesg = None
    if _do_msg(adjust, fs_msg if not isinstance(fs_msg, str) else 99):
        if adjust == "tukey":
            xtra = f"for comparing a family of {_num(fam_size)} estimates"
        elif adjust == "scheffe":
            xtra = f"with rank {sch_dim}"
        else:
            nshow = len(by_rows[-1]) if ragged else n_contr
            xtra = f"for {nshow} tests"
        mesg = f"P value adjustment: {adjust} method {xtra}"
    return np.clip(pval, 0.0, 1.0), mesg, adjust, notes


def _message_family(ragged: bool, by_rows, n_contr: int, fam_size, sch_rank):
    """(contrasts per family, family size and Scheffe rank) as emmeans' messages state them;
    for families of different sizes (``ragged``) the largest, and the rank "(varies)"."""
    if ragged:
        nc = max(len(r) for r in by_rows)
        return nc, (1 + math.sqrt(1 + 8 * nc)) / 2, "(varies)"
    return n_contr, fam_size, sch_rank[0] if sch_rank is not None else None


def adj_critval(level: float, df, adjust: str, fam_size, n_contr: int, et: int, by_rows, corr=None,
                sch_rank=None):
    """(critical values c, message, adjust used, notes) for two-sided intervals est +- c SE:
    emmeans' .adj.critval."""
    DF = np.asarray(df, float)
    notes = []
    ragged = isinstance(fam_size, str)
    if not ragged and n_contr == 1 and adjust != "scheffe":
        adjust = "none"
    try:
        adjust = match_adjust(adjust, ("sidak", "tukey", "scheffe", "dunnettx", "mvt", "bonferroni", "none"))
    except ArgumentError:
        match_adjust(adjust)                      # a valid p-value method: intervals use bonferroni
        adjust = "bonferroni"
    rows_list = [np.asarray(r) for r in by_rows]
    if not ragged and adjust != "mvt" and np.unique(DF[~np.isnan(DF)]).size <= 1:
        rows_list = [np.arange(DF.size)]
    if et != 3 and adjust == "tukey":
        notes.append('Note: adjust = "tukey" was changed to "sidak"\nbecause "tukey" is only appropriate '
                     "for one set of pairwise comparisons")
        adjust = "sidak"
    DF = np.where(np.isnan(DF), np.inf, DF)
    nc, fs_msg, sch_dim = _message_family(ragged, by_rows, n_contr, fam_size, sch_rank)
    mesg = None
    if _do_msg(adjust, fs_msg if not isinstance(fs_msg, str) else 99):
        xtra = (f"for comparing a family of {_num(fam_size)} estimates" if adjust == "tukey"
                else f"with rank {sch_dim}" if adjust == "scheffe" else f"for {n_contr} estimates")
        mesg = f"Conf-level adjustment: {adjust} method {xtra}"
    cv = np.full(DF.size, np.nan)
    for jj, rows in enumerate(rows_list):
        d = DF[rows]
        n, fs = n_contr, fam_size
        if ragged:
            n = rows.size
            fs = (1 + math.sqrt(1 + 8 * n)) / 2
        if adjust == "none":
            cv[rows] = stats.t.ppf(1 - (1 - level) / 2, d)
        elif adjust == "sidak":
            cv[rows] = -stats.t.ppf((1 - level ** (1 / n)) / 2, d)
        elif adjust == "bonferroni":
            cv[rows] = -stats.t.ppf((1 - level) / n / 2, d)
        elif adjust == "tukey":
            cv[rows] = [qtukey(level, fs, x) / math.sqrt(2) for x in d]
        elif adjust == "scheffe":
            r = sch_rank[jj] if jj < len(sch_rank) else sch_rank[0]
            cv[rows] = np.sqrt(r * _f("ppf", level, r, d))
        elif adjust == "dunnettx":
            cv[rows] = [qdunnx(level, n, x) for x in d]
        elif adjust == "mvt":
            C = corr[np.ix_(rows, rows)]
            cv[rows] = [qmvt(level, x, C) for x in d]
    return cv, mesg, adjust, notes
