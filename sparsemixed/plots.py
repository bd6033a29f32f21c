"""Diagnostic plots (matplotlib, the optional extra ``sparsemixed[plot]``)::

    caterpillar(result)          conditional modes b-hat with b-hat +- z * condsd, sorted
    group_panels(result, x)      data per group with the group's fitted curve (fixef + ranef)
                                 and the population curve (fixef), the sleepstudy figure;
                                 x numeric or a factor
    residuals_vs_fitted(result)  Pearson residuals (/ sigma for lmer) against fitted values
    binned_residuals(result)     glmer: mean response residual per bin of fitted values with
                                 +-2 standard-error bands (Gelman and Hill's binned plot)
    qq(result, which)            normal QQ plot of the scaled residuals or of the modes
    profile_zeta(profile_frame)  zeta against each parameter (lme4's xyplot(profile))
    effect_plot(emm)             estimated marginal means (sparsemixed.emmeans) or contrasts
                                 with confidence intervals, by factor levels

Each function draws on the axes/figure it creates (or on ``ax`` where given) and returns
the matplotlib Figure; ``savefig`` it to a file.  matplotlib is imported only here.
"""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .errors import SparseMixedError


def _plt():
    try:
        import matplotlib

        if matplotlib.get_backend().lower() not in ("agg", "module://matplotlib_inline.backend_inline") \
                and not _has_display():
            matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError("plots need matplotlib: pip install 'sparsemixed[plot]'") from None
    return plt


def _has_display() -> bool:
    import os

    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def caterpillar(result, group: str | None = None, level: float = 0.95, max_levels: int = 60):
    """Conditional modes with intervals b-hat +- z condsd, one panel per term of ``group``
    (default: the first grouping factor), levels sorted by the first term's mode; at most
    ``max_levels`` levels (evenly spaced in that order) so that large factors stay legible."""
    plt = _plt()
    rf = result.ranef_frame()
    group = group or rf["grpvar"].iloc[0]
    if group not in set(rf["grpvar"]):
        raise SparseMixedError(f"no grouping factor {group!r}; the model has {sorted(set(rf['grpvar']))}")
    part = rf[rf["grpvar"] == group]
    terms = list(dict.fromkeys(part["term"]))
    first = part[part["term"] == terms[0]].sort_values("condval")
    order = list(first["grp"])
    total = len(order)
    if len(order) > max_levels:
        order = [order[i] for i in np.linspace(0, len(order) - 1, max_levels).round().astype(int)]
    z = stats.norm.ppf(0.5 + level / 2)
    fig, axes = plt.subplots(1, len(terms), figsize=(3.2 * len(terms) + 1, max(3, 0.16 * len(order) + 1)),
                             sharey=True, squeeze=False)
    for ax, term in zip(axes[0], terms):
        t = part[part["term"] == term].set_index("grp").loc[order]
        ypos = np.arange(len(order))
        ax.errorbar(t["condval"], ypos, xerr=z * t["condsd"], fmt="o", ms=3, color="tab:blue", ecolor="0.5", lw=1)
        ax.axvline(0, color="0.3", lw=0.8, ls="--")
        ax.set_title(term)
        ax.set_yticks(ypos, [str(g) for g in order], fontsize=7)
        ax.set_xlabel("conditional mode (link scale)" if _is_glmm(result) else "conditional mode")
    axes[0][0].set_ylabel(f"{group} (sorted by {terms[0]})")
    subset = "" if len(order) == total else f"\n{len(order)} of {total} levels, evenly spaced in rank (max_levels={max_levels})"
    fig.suptitle(f"Conditional modes of {group} with {level:.0%} intervals{subset}", fontsize=10)
    fig.tight_layout()
    return fig


def group_panels(result, x: str, group: str | None = None, ncols: int = 6, max_groups: int = 36):
    """Per level of ``group``: the observations of the response against ``x``, the group's
    fitted curve (fixed effects plus its random effects) and the population curve (fixed
    effects only), both from ``result.predict`` on a grid of ``x`` (50 points from its
    minimum to its maximum, or each level of a factor), the model's other covariates held at
    their mean (numbers) or most frequent value (factors): any model, not only one linear in
    ``x`` (for a glmer fit, on the response scale).  At most ``max_groups`` groups are shown
    (the first ones in level order); the title says when that is a subset."""
    plt = _plt()
    m = result.model
    data = m.data
    if data is None or not isinstance(data, pd.DataFrame):
        raise SparseMixedError("group_panels needs the data the model was built from, and this model has none "
                               "(model.data is None: built from matrices or a streamed source); plot a model "
                               "built with sm.lmer(formula, DataFrame)")
    if x not in data.columns:
        raise SparseMixedError(f"group_panels: x={x!r} is not a column of the model's data")
    response = m.parsed.response
    groups = sorted({t.group.name for t in m.terms}, key=[t.group.name for t in m.terms].index)
    group = group or groups[0]
    if group not in groups or group not in data.columns:
        raise SparseMixedError(f"no grouping factor {group!r} among the data's columns; the model has {groups}")
    keys = data[group].astype(str)
    all_levels = list(dict.fromkeys(keys[data[group].notna()]))
    if isinstance(data[group].dtype, pd.CategoricalDtype):
        present = set(all_levels)
        all_levels = [str(v) for v in data[group].cat.categories if str(v) in present]
    levels = all_levels[:max_groups]
    factor_x = not pd.api.types.is_numeric_dtype(data[x].dtype) or pd.api.types.is_bool_dtype(data[x].dtype)
    if factor_x:
        xcat = data[x].astype("category") if not isinstance(data[x].dtype, pd.CategoricalDtype) else data[x]
        grid_x = list(xcat.cat.categories)
        pos = {v: i for i, v in enumerate(grid_x)}
    else:
        grid_x = np.linspace(float(data[x].min()), float(data[x].max()), 50)
    glmm = _is_glmm(result)
    kw = {"type": "response"} if glmm else {}
    template = _typical_row(data, exclude={x, group, response})
    nrows = math.ceil(len(levels) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(2.1 * ncols, 1.9 * nrows + 0.4), sharex=True, sharey=True,
                             squeeze=False)
    pop = None
    for ax, lev in zip(axes.ravel(), levels):
        sub = data[keys == lev]
        nd = pd.concat([template] * len(grid_x), ignore_index=True)
        nd[x] = pd.Series(grid_x, dtype=data[x].dtype) if factor_x else grid_x
        nd[group] = pd.Series([sub[group].iloc[0]] * len(grid_x), dtype=data[group].dtype)
        fit = np.asarray(result.predict(nd, **kw), dtype=float)
        if pop is None:
            pop = np.asarray(result.predict(nd, re_form="~0", **kw), dtype=float)
        xs_obs = sub[x].map(pos).to_numpy(float) if factor_x else sub[x].to_numpy(float)
        xs_fit = np.arange(len(grid_x)) if factor_x else grid_x
        if factor_x:           # a little horizontal jitter so that tied points stay visible
            xs_obs = xs_obs + np.random.default_rng(0).uniform(-0.12, 0.12, xs_obs.size)
        ax.plot(xs_obs, sub[response], "o", ms=3, color="tab:blue", alpha=0.8)
        style = dict(marker="s", ms=3) if factor_x else {}
        ax.plot(xs_fit, fit, color="tab:red", lw=1.2, label=f"{group} fit", **style)
        ax.plot(xs_fit, pop, color="0.4", lw=1, ls="--", label="population", **style)
        ax.set_title(f"{lev}", fontsize=8)
    for ax in axes.ravel()[len(levels):]:
        ax.set_visible(False)
    if factor_x:
        labels = [str(v) for v in grid_x]
        long = max(map(len, labels)) * len(labels) > 16
        for ax in axes[-1]:
            ax.set_xticks(range(len(grid_x)), labels, fontsize=7, rotation=35 if long else 0,
                          ha="right" if long else "center")
    else:
        _integer_ticks(axes[0][0].xaxis, data[x])
    _integer_ticks(axes[0][0].yaxis, data[response])
    axes[0][0].legend(fontsize=6, loc="best")
    shown = (f"{group}: all {len(all_levels)} levels" if len(levels) == len(all_levels)
             else f"{group}: the first {len(levels)} of {len(all_levels)} levels (max_groups={max_groups})")
    fig.suptitle(f"{response} against {x} by {shown}", fontsize=10)
    fig.supxlabel(x)
    fig.supylabel(response + (" (fitted: response scale)" if glmm else ""))
    fig.tight_layout()
    return fig


def _typical_row(data: pd.DataFrame, exclude: set) -> pd.DataFrame:
    """One row: each column at its mean (numbers) or its most frequent value (others)."""
    row = {}
    for c in data.columns:
        if c in exclude:
            continue
        col = data[c].dropna()
        if pd.api.types.is_numeric_dtype(col.dtype) and not pd.api.types.is_bool_dtype(col.dtype):
            row[c] = pd.Series([col.mean() if len(col) else np.nan])
        else:
            row[c] = pd.Series([col.mode().iloc[0] if len(col) else None], dtype=data[c].dtype)
    return pd.DataFrame(row)


def _integer_ticks(axis, values) -> None:
    """Whole-number ticks on an axis whose data are whole numbers (days, counts)."""
    v = pd.Series(values).dropna()
    if len(v) and pd.api.types.is_numeric_dtype(v.dtype) and not pd.api.types.is_bool_dtype(v.dtype) \
            and np.all(np.mod(v.to_numpy(float), 1) == 0):
        from matplotlib.ticker import MaxNLocator

        axis.set_major_locator(MaxNLocator(integer=True))


def _is_glmm(result) -> bool:
    return hasattr(result, "nAGQ")


def _pearson(result) -> np.ndarray:
    """Pearson residuals: scaled by sigma for a linear model, as they are for a GLMM
    (dispersion 1)."""
    r = result.residuals("pearson") if _is_glmm(result) else result.residuals("pearson", scaled=True)
    return np.asarray(r, dtype=float)


def residuals_vs_fitted(result, ax=None):
    plt = _plt()
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5, 4))
    glmm = _is_glmm(result)
    ax.scatter(result.fitted(), _pearson(result), s=6, alpha=0.6)
    ax.axhline(0, color="0.3", lw=0.8)
    ax.set_xlabel("fitted mean (response scale)" if glmm else "fitted values")
    ax.set_ylabel("Pearson residuals" if glmm else "scaled Pearson residuals")
    ax.set_title("Residuals vs fitted")
    fig.tight_layout()
    return fig


def binned_residuals(result, bins: int | None = None, ax=None):
    """For a glmer fit: the rows grouped into ``bins`` bins of equal size by fitted mean
    (default about sqrt(n), at most 100); per bin the mean response residual y - mu-hat
    against the mean fitted value, with +-2 standard errors of that mean under the model,
    2 sqrt(sum V(mu_i) / w_i) / n_bin (Gelman and Hill, arm::binnedplot). About 95% of the
    points should fall inside the bands; a pattern in the means is misfit that a scatter
    of 0/1 residuals hides."""
    if not _is_glmm(result):
        raise SparseMixedError("binned_residuals is for glmer fits; for a linear mixed model use "
                               "residuals_vs_fitted")
    plt = _plt()
    mu = np.asarray(result.fitted(), dtype=float)
    r = np.asarray(result.residuals("response"), dtype=float)
    resp = result.model.response
    var = np.asarray(resp.family.variance(mu), dtype=float) / np.where(resp.prior_weights > 0, resp.prior_weights, np.inf)
    n = mu.size
    k = int(min(100, max(1, round(math.sqrt(n))))) if bins is None else int(bins)
    if k < 1:
        raise SparseMixedError(f"bins must be a positive whole number, got {bins!r}")
    order = np.argsort(mu, kind="stable")
    groups = np.array_split(order, min(k, n))
    mx = np.array([mu[g].mean() for g in groups])
    my = np.array([r[g].mean() for g in groups])
    se = np.array([2 * math.sqrt(var[g].sum()) / g.size for g in groups])
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(5.5, 4))
    ax.fill_between(mx, -se, se, color="0.85", label="+-2 SE under the model")
    ax.plot(mx, my, "o", ms=3.5, color="tab:blue", label="mean residual per bin")
    ax.axhline(0, color="0.3", lw=0.8)
    outside = float(np.mean(np.abs(my) > se))
    ax.set_xlabel("mean fitted value in the bin (response scale)")
    ax.set_ylabel("mean residual, y - fitted")
    ax.set_title(f"Binned residuals ({len(groups)} bins of ~{n // len(groups)} rows; {outside:.0%} outside)")
    ax.legend(fontsize=7, loc="best")
    fig.tight_layout()
    return fig


def qq(result, which: str = "residuals", group: str | None = None, ax=None):
    """Normal QQ plot of the scaled residuals (``which="residuals"``) or of the
    conditional modes of one grouping factor's first term (``which="ranef"``)."""
    plt = _plt()
    if which == "residuals":
        v = _pearson(result)
        title = "Normal QQ plot of the Pearson residuals" if _is_glmm(result) else \
            "Normal QQ plot of the scaled residuals"
    elif which == "ranef":
        rf = result.ranef_frame()
        group = group or rf["grpvar"].iloc[0]
        part = rf[rf["grpvar"] == group]
        term = part["term"].iloc[0]
        v = part[part["term"] == term]["condval"].to_numpy()
        title = f"Normal QQ plot of the conditional modes\n{group}: {term}"
    else:
        raise SparseMixedError(f"which must be 'residuals' or 'ranef', got {which!r}")
    fig, ax = (ax.figure, ax) if ax is not None else plt.subplots(figsize=(4.5, 4.5))
    (osm, osr), (slope, icpt, _) = stats.probplot(v, dist="norm")
    ax.plot(osm, osr, "o", ms=3)
    ax.plot(osm, slope * osm + icpt, color="tab:red", lw=1)
    ax.set_xlabel("standard normal quantiles")
    ax.set_ylabel(f"conditional mode of {term}" if which == "ranef" else
                  ("Pearson residual" if _is_glmm(result) else "scaled residual"))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def profile_zeta(profile_frame: pd.DataFrame, level: float = 0.95):
    """zeta against each parameter from a profile frame (columns ``.zeta``, ``.par`` and
    one column per parameter, lme4's as.data.frame(profile(fit)))."""
    plt = _plt()
    pars = list(dict.fromkeys(profile_frame[".par"]))
    ncols = min(4, len(pars))
    nrows = math.ceil(len(pars) / ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(3 * ncols, 2.6 * nrows), sharey=True, squeeze=False)
    z = stats.norm.ppf(0.5 + level / 2)
    for ax, p in zip(axes.ravel(), pars):
        sub = profile_frame[profile_frame[".par"] == p].sort_values(p)
        ax.plot(sub[p], sub[".zeta"], "-", color="tab:blue")
        for h in (-z, z):
            ax.axhline(h, color="0.5", lw=0.7, ls="--")
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_title(p, fontsize=9)
    for ax in axes.ravel()[len(pars):]:
        ax.set_visible(False)
    axes[0][0].set_ylabel("zeta")
    fig.tight_layout()
    return fig


def effect_plot(emm, by_as: str = "panels", level: float | None = None, type: str | None = None, ax=None,
                dodge: float = 0.18, ncols: int = 4):
    """Estimated marginal means (or contrasts) with confidence intervals, from
    ``sparsemixed.emmeans`` / ``sparsemixed.contrast`` (an EMMGrid, or a summary of one).

    The first factor of the means is on the x axis; a second one is drawn in colors.  The
    ``by`` factors make one panel per level (``by_as="panels"``) or colors
    (``by_as="colors"``).  Axis labels are the variable names; the y label names the
    response and its scale (link scale, probability, rate, odds ratio ...).  ``level`` and
    ``type`` ("link" / "response") are passed to ``emm.confint``; ``ax`` draws a single
    panel on existing axes."""
    plt = _plt()
    if by_as not in ("panels", "colors"):
        raise SparseMixedError(f"by_as must be 'panels' or 'colors', got {by_as!r}")
    if hasattr(emm, "confint") and hasattr(emm, "linfct"):
        s = emm.confint(level=level, type=type)
    elif isinstance(emm, pd.DataFrame) and "est_name" in emm.attrs:
        s = emm
    else:
        raise SparseMixedError("effect_plot takes the result of sparsemixed.emmeans or contrast (or its summary)")
    est = s.attrs["est_name"]
    lo_col = next((c for c in s.columns if c in ("lower.CL", "asymp.LCL")), None)
    hi_col = next((c for c in s.columns if c in ("upper.CL", "asymp.UCL")), None)
    by = list(s.attrs.get("by_vars") or [])
    labels = list(s.attrs.get("label_cols") or [])
    pri = [c for c in labels if c not in by]
    if not pri:
        raise SparseMixedError("nothing to plot on the x axis: every variable is a by variable")
    xvar, colors = pri[0], pri[1:]
    panels = by if by_as == "panels" else []
    if by_as == "colors":
        colors = colors + by

    def text(v) -> str:
        return f"{v:g}" if isinstance(v, (float, np.floating)) else str(v)

    def key(row, cols):
        return ", ".join(text(row[c]) for c in cols)

    xlev = list(dict.fromkeys(text(v) for v in s[xvar]))
    pkeys = list(dict.fromkeys(key(r, panels) for _, r in s.iterrows())) if panels else [""]
    gkeys = list(dict.fromkeys(key(r, colors) for _, r in s.iterrows())) if colors else [""]
    ptitle = {key(r, panels): ", ".join(f"{v} = {text(r[v])}" for v in panels) for _, r in s.iterrows()}
    npan = len(pkeys)
    if ax is not None:
        if npan > 1:
            raise SparseMixedError(f"{npan} panels do not fit on one ax; pass ax=None or by_as='colors'")
        fig, axes = ax.figure, np.array([[ax]])
    else:
        nc = min(ncols, npan)
        nr = math.ceil(npan / nc)
        width = max(3.2, 0.9 * len(xlev) + 1.6 + (1.2 if colors else 0))
        fig, axes = plt.subplots(nr, nc, figsize=(width * nc, 3.6 * nr), sharey=True, squeeze=False)
    palette = plt.rcParams["axes.prop_cycle"].by_key().get("color", ["C0"])
    pos = np.arange(len(xlev), dtype=float)
    offsets = (np.arange(len(gkeys)) - (len(gkeys) - 1) / 2) * dodge
    for k, (pk, a) in enumerate(zip(pkeys, axes.ravel())):
        part = s if not panels else s[[key(r, panels) == pk for _, r in s.iterrows()]]
        for g, (gk, off) in enumerate(zip(gkeys, offsets)):
            sub = part if not colors else part[[key(r, colors) == gk for _, r in part.iterrows()]]
            if sub.empty:
                continue
            xs = pos[[xlev.index(text(v)) for v in sub[xvar]]] + off
            y = sub[est].to_numpy(float)
            contrast = est in ("estimate", "odds.ratio", "ratio")
            kw = dict(fmt="o-" if colors and len(xlev) > 1 and not contrast else "o",
                      color=palette[g % len(palette)], ms=5, capsize=3, lw=1.2, label=gk if colors else None)
            if lo_col is not None:
                yerr = np.vstack([y - sub[lo_col].to_numpy(float), sub[hi_col].to_numpy(float) - y])
                a.errorbar(xs, y, yerr=yerr, **kw)
            else:
                a.plot(xs, y, kw["fmt"], color=kw["color"], label=kw["label"])
        if est in ("estimate", "odds.ratio", "ratio"):
            a.axhline(1.0 if est in ("odds.ratio", "ratio") else 0.0, color="0.5", lw=0.8, ls="--")
        a.set_xticks(pos, xlev)
        a.set_xlim(-0.6, len(xlev) - 0.4)
        a.set_xlabel(xvar)
        if panels:
            a.set_title(ptitle[pk], fontsize=10)
        a.grid(axis="y", color="0.9", lw=0.6)
    for a in axes.ravel()[npan:]:
        a.set_visible(False)
    resp = s.attrs.get("response")
    scale = s.attrs.get("scale")
    if est in ("estimate", "odds.ratio", "ratio"):
        ylab = {"estimate": "estimate", "odds.ratio": "odds ratio", "ratio": "ratio"}[est]
        if resp:
            ylab = f"{ylab} ({resp}{', ' + scale if scale and est == 'estimate' else ''})"
    else:
        ylab = resp or est
        ylab = f"{ylab} ({scale})" if scale else f"{ylab} (estimated marginal mean)"
    for row in axes:
        row[0].set_ylabel(ylab)
    if colors and gkeys != [""]:
        axes.ravel()[0].legend(title=", ".join(colors), fontsize=8, title_fontsize=8, loc="best")
    lev = s.attrs.get("level", 0.95)
    if ax is None:
        fig.suptitle(f"{'Contrasts' if est in ('estimate', 'odds.ratio', 'ratio') else 'Estimated marginal means'}"
                     f" with {lev:.0%} confidence intervals", fontsize=11)
    fig.tight_layout()
    return fig
