"""Printing and tables of fitted models, against lme4 1.1-31's printed output
(tests/reference/printing/lme4_printing.json, made by tests/reference/make_printing_reference.R).

* R's formatting rules (format, format.pval, abbreviate, printCoefmat, formatVC, the
  correlation of the fixed effects) applied to lme4's own numbers reproduce lme4's printed
  blocks line for line (trailing blanks aside);
* the summaries of our fits print the numbers lme4 prints, with the same digits: each printed
  number has the same form (decimals, fixed or scientific) as lme4's and agrees with it to one
  unit in its last digit (GLMMs: to their standard errors' accuracy, see tests/reference/glmm);
* tables print whole, the HTML repr, publication tables, fitted/residuals as Series, profile()
  and the warnings of internal refits.
"""
from __future__ import annotations

import json
import pathlib
import re
import warnings

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from sparsemixed.results import display as D

REF_DIR = pathlib.Path(__file__).parent / "reference"
REF = json.loads((REF_DIR / "printing" / "lme4_printing.json").read_text())
MODELS = REF["models"]
FACTORS = {"sleepstudy": ["Subject"], "Dyestuff2": ["Batch"], "Penicillin": ["plate", "sample"],
           "Pastes": ["batch", "cask", "sample"], "cbpp": ["herd", "period"], "VerbAgg": ["id", "item"],
           "stroop": []}


def load(name: str) -> pd.DataFrame:
    for d in (pathlib.Path(sm.datasets.__file__).parent / "data", REF_DIR / "glmm" / "data", REF_DIR / "printing"):
        f = d / f"{name}.csv"
        if f.exists():
            df = pd.read_csv(f)
            break
    for c in df.columns:
        if df[c].dtype == object or c in FACTORS[name]:
            df[c] = df[c].astype(str)
    return df


_FITS: dict = {}


def fit(name: str):
    if name not in _FITS:
        r = MODELS[name]
        df = load(r["data"])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if r.get("family"):
                _FITS[name] = sm.glmer(r["formula"], df, family=r["family"]).fit()
            else:
                _FITS[name] = sm.lmer(r["formula"], df, REML=r["reml"]).fit()
    return _FITS[name]


# -- the printed blocks of a summary ------------------------------------------------------
STOP = ("optimizer (", "boundary (singular)", "Correlation of Fixed", "fixed-effect model matrix",
        "Model failed", "Model is nearly", "Correlation matrix not shown")


def blocks(text: str) -> dict:
    """The blocks of a printed summary: criterion, aic, residuals, random, groups, fixed,
    correlation (lists of lines, trailing blanks removed)."""
    lines = [ln.rstrip() for ln in text.splitlines()]
    out: dict = {}
    i = 0
    while i < len(lines):
        ln = lines[i]
        if ln.startswith("REML criterion at convergence:"):
            out["criterion"] = [ln]
        elif ln.split()[:2] == ["AIC", "BIC"]:
            out["aic"] = lines[i: i + 2]
            i += 1
        elif ln.startswith("Scaled residuals:"):
            out["residuals"] = lines[i + 1: i + 3]
            i += 2
        elif ln.startswith("Random effects:"):
            j = i + 1
            while not lines[j].startswith("Number of obs"):
                j += 1
            out["random"], out["groups"] = lines[i + 1: j], [lines[j]]
            i = j
        elif ln.startswith("Fixed effects:") or ln.startswith("Correlation of Fixed Effects:"):
            j = i + 1
            while j < len(lines) and lines[j] and not lines[j].startswith(STOP):
                j += 1
            out["fixed" if ln.startswith("Fixed") else "correlation"] = lines[i + 1: j]
            i = j - 1
        i += 1
    return out


def numbers(lines) -> list[str]:
    """The whitespace-separated tokens that are numbers."""
    out = []
    for ln in lines:
        for tok in ln.split():
            try:
                float(tok)
            except ValueError:
                continue
            out.append(tok)
    return out


def _shape(tok: str):
    """(scientific, decimals) of a printed number."""
    mant = tok.lower().split("e")[0]
    return "e" in tok.lower(), len(mant.split(".")[1]) if "." in mant else 0


def assert_same_numbers(ours, theirs, what: str, rtol: float = 0.0) -> None:
    """Same count of printed numbers, each of the same form as lme4's, equal to one unit in
    the last printed digit (or within ``rtol``)."""
    a, b = numbers(ours), numbers(theirs)
    assert len(a) == len(b), f"{what}: {len(a)} numbers printed, lme4 prints {len(b)}\n" + \
        "\n".join(ours) + "\n--- lme4:\n" + "\n".join(theirs)
    for x, y in zip(a, b):
        assert _shape(x) == _shape(y), f"{what}: {x} printed where lme4 prints {y}\n" + "\n".join(ours)
        sci, dec = _shape(y)
        unit = 10.0 ** -dec * (10.0 ** int(y.lower().split("e")[1]) if sci else 1.0)
        assert abs(float(x) - float(y)) <= 1.001 * unit + rtol * abs(float(y)), f"{what}: {x} vs lme4's {y}"


# -- R's formatting on lme4's own numbers ------------------------------------------------
def test_format_matches_r():
    for f in REF["format"]:
        for d in (3, 4, 7):
            assert D.format_r(f["x"], d) == f[f"d{d}"], (f["x"], d)
    for f in REF["correlation_format"]:
        assert D.format_r(D.r_round(f["x"], 3), 7, nsmall=3) == f["out"]
        assert D.format_r(D.r_round(f["x"], 2), 7, nsmall=2) == f["out2"]
    for f in REF["pvalue_format"]:
        assert D.format_pval(f["x"], 3) == f["out"], f["x"]


def test_abbreviate_matches_r():
    for a in REF["abbreviate"]:
        for m in (4, 6, 11):
            assert D.abbreviate(a["names"], m) == a[f"m{m}"], (a["names"], m)
    # lme4's labels of the fixed effects' correlation are unique
    names = ["(Intercept)", "condincongruent", "condincongruent:freqlow"]
    assert len(set(D.abbreviate(names, 6))) == 3


def vec(x) -> list:
    """A JSON vector (jsonlite writes length-1 vectors as scalars)."""
    return list(x) if isinstance(x, list) else [x]


def _coef_frame(c) -> pd.DataFrame:
    return pd.DataFrame({k: vec(v) for k, v in zip(c["columns"], c["values"])}, index=vec(c["names"]),
                        columns=c["columns"])


def _ref_blocks_from_numbers(r) -> dict:
    """Our formatting functions applied to lme4's numbers."""
    out = {}
    vc = [(g["group"], vec(g["names"]), np.asarray(vec(g["stddev"])),
           None if g["correlation"] is None else np.asarray(g["correlation"]).T) for g in r["varcorr"]]
    cells, cols = D.vc_cells(vc, r["sigma"])
    out["random"] = D.matrix_lines(cells, cols)
    out["fixed"] = D.coefmat_lines(_coef_frame(r["coefficients"]))
    C = np.atleast_2d(np.asarray(r["fixef_correlation"], dtype=float)).T
    if C.shape[0] > 1:
        out["correlation"] = D.correlation_lines(C, vec(r["coefficients"]["names"]))
    out["residuals"] = D.quantile_lines(np.asarray(r["residual_quantiles"]))
    tab = r["aictab"]
    if "REML" in tab:
        out["criterion"] = [f"REML criterion at convergence: {D.format_num(round(tab['REML'], 1))}"]
    else:
        out["aic"] = D.aictab_lines(["AIC", "BIC", "logLik", "deviance", "df.resid"],
                                    [tab[k] for k in ("AIC", "BIC", "logLik", "deviance", "df.resid")])
    return out


@pytest.mark.parametrize("name", list(MODELS))
def test_formatting_of_lme4_numbers_reproduces_lme4(name):
    """Line for line (trailing blanks aside), on lme4's own estimates."""
    r = MODELS[name]
    want = blocks(r["text"])
    got = _ref_blocks_from_numbers(r)
    for key, lines in got.items():
        assert [ln.rstrip() for ln in lines] == want[key], f"{name} {key}:\n" + "\n".join(lines) + \
            "\n--- lme4:\n" + "\n".join(want[key])
    if "lmertest" in r:
        lt = r["lmertest"]
        ours = D.coefmat_lines(_coef_frame({"names": vec(r["coefficients"]["names"]), "columns": lt["columns"],
                                            "values": lt["values"]}))
        assert [ln.rstrip() for ln in ours] == blocks(lt["text"])["fixed"]


# -- our fits, printed -------------------------------------------------------------------
@pytest.mark.parametrize("name", list(MODELS))
def test_summary_prints_lme4_numbers(name):
    r = MODELS[name]
    res = fit(name)
    glmm = bool(r.get("family"))
    text = res.summary() if glmm else res.summary(ddf=None)
    ours, theirs = blocks(text), blocks(r["text"])
    keys = ["criterion", "aic", "residuals", "random", "groups", "fixed", "correlation"]
    for key in keys:
        assert (key in ours) == (key in theirs), f"{name}: block {key}"
        if key not in theirs:
            continue
        if key == "fixed" and glmm:
            # glmer's standard errors come from its finite-difference Hessian, 1e-3 to 1e-2 off the
            # exact one (tests/reference/glmm/README.md): compare the estimates and the layout
            a, b = ours[key], theirs[key]
            assert a[0].split() == b[0].split() and len(a) == len(b)
            for x, y in zip(a[1:len(res.fixef) + 1], b[1:len(res.fixef) + 1]):
                assert x.split()[0] == y.split()[0]
                assert_same_numbers([x.split()[1]], [y.split()[1]], f"{name} estimate", rtol=2e-3)
                assert _shape(x.split()[2]) == _shape(y.split()[2])
            continue
        rtol = 0.0 if not glmm else (2e-2 if key == "correlation" else 1e-3)
        assert_same_numbers(ours[key], theirs[key], f"{name} {key}", rtol=rtol)
        if key in ("random", "groups"):        # the labels too
            strip = lambda lines: [re.sub(r"[-\d.]+", "#", ln).split() for ln in lines]
            assert strip(ours[key]) == strip(theirs[key])
    if "correlation" in theirs:                 # the labels of the correlation block
        assert ours["correlation"][0].split() == theirs["correlation"][0].split()
        assert [ln.split()[0] for ln in ours["correlation"][1:]] == \
            [ln.split()[0] for ln in theirs["correlation"][1:]]
    if "boundary (singular) fit" in r["text"]:
        assert "boundary (singular) fit: see help('isSingular')" in text


@pytest.mark.expect_warnings((sm.inference.varpar.VarParWarning,))
def test_lmertest_columns_printed_as_lmertest():
    """summary(ddf="Satterthwaite"): df and Pr(>|t|) formatted by printCoefmat as lmerTest."""
    for name in ("sleepstudy_reml", "stroop"):
        res = fit(name)
        ours = blocks(res.summary(ddf="Satterthwaite"))["fixed"]
        theirs = blocks(MODELS[name]["lmertest"]["text"])["fixed"]
        assert ours[0].split() == theirs[0].split()
        assert ours[-2:] == theirs[-2:]          # the legend
        # estimates, SEs and df formatted together (as lmerTest); p-values to 3 digits
        for x, y in zip(ours[1:-2], theirs[1:-2]):
            xs, ys = x.split(), y.split()
            assert xs[0] == ys[0] and len(xs) == len(ys)
            assert_same_numbers(xs[1:3] + xs[4:5], ys[1:3] + ys[4:5], name)
            assert _shape(xs[3]) == _shape(ys[3])
            assert float(xs[3]) == pytest.approx(float(ys[3]), rel=2e-3)


def test_sleepstudy_summary_is_lme4s_text():
    """The whole summary equals lme4's but for its title, the Data/Control lines and blanks."""
    res = fit("sleepstudy_reml")
    ours = [ln.rstrip() for ln in res.summary(ddf=None).splitlines()[1:]]
    theirs = [ln.rstrip() for ln in MODELS["sleepstudy_reml"]["text"].splitlines()[1:]
              if not ln.startswith(("   Data:", "Control:"))]
    assert ours == theirs


# -- tables print whole --------------------------------------------------------------------
def _sleep_fits():
    sleep = sm.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        r1 = fit("sleepstudy_reml")
        r0 = sm.lmer("Reaction ~ Days + (Days || Subject)", sleep).fit()
    return r0, r1


def test_tables_print_every_column():
    r0, r1 = _sleep_fits()
    cbpp = fit("cbpp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = sm.anova(r0, r1)
    frames = {"anova": a, "varcorr": r1.varcorr, "ranef_frame": r1.ranef_frame(), "to_frame": r1.to_frame(),
              "coef_table": r1.coef_table("Satterthwaite"), "anova_F": r1.anova(), "confint": r1.confint(),
              "coef": r1.coef()["Subject"], "ranef": r1.ranef["Subject"], "glmer_coef_table": cbpp.coef_table(),
              "glmer_to_frame": cbpp.to_frame(), "glmer_ranef_frame": cbpp.ranef_frame(),
              "glmer_varcorr": cbpp.varcorr, "rounded": a.round(4)}
    with pd.option_context("display.width", 30, "display.max_columns", 0):
        for what, df in frames.items():
            assert isinstance(df, D.Table), what
            text = repr(df)
            assert "..." not in text, (what, text)
            header = text.splitlines()[0]
            for c in df.columns:
                assert str(c) in header, (what, c, header)
    # a plain DataFrame at that width hides columns (what Table avoids)
    with pd.option_context("display.width", 30, "display.max_columns", 0):
        assert "..." in repr(pd.DataFrame(a))
    assert a.attrs["formulas"] and isinstance(a.attrs["fits"], list)
    # rows are still shortened as pandas does
    with pd.option_context("display.max_rows", 10, "display.min_rows", 4):
        assert ".." in repr(r1.ranef_frame()).splitlines()[3]


# -- the HTML repr -------------------------------------------------------------------------
def _headers(h: str) -> list[str]:
    return re.findall(r"<th[^>]*>([^<]*)</th>", h)


def test_html_random_effects_fixed_effects_and_warnings():
    res = fit("sleepstudy_reml")
    h = res._repr_html_()
    heads = _headers(h)
    for c in ("Groups", "Name", "Variance", "Std.Dev.", "Corr"):
        assert c in heads
    # the summary's fixed-effects table: Satterthwaite's df and p-values (coef_table's columns)
    for c in res.coef_table("Satterthwaite").columns:
        assert c.replace(">", "&gt;") in heads
    assert ">612.09<" in h and ">24.740<" in h and ">0.07<" in h and ">251.405<" in h
    assert "Warnings" not in h
    # a singular fit says so
    sing = fit("dyestuff2_singular")
    hs = sing._repr_html_()
    assert "Warnings" in hs and "boundary (singular) fit" in hs
    # GLMM: z tests, family, formula
    g = fit("cbpp")._repr_html_()
    assert "Pr(&gt;|z|)" in _headers(g) and "binomial" in g and "cbind(incidence, size - incidence)" in g
    assert "Variance" in _headers(g) and "Corr" not in _headers(g)


def test_unconverged_fit_reports_its_warning():
    sleep = sm.datasets.load("sleepstudy")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.lmer("Reaction ~ Days + (Days | Subject)", sleep).fit(optimizer="bobyqa", maxeval=4)
    assert not res.converged
    msg = f"optimizer ({res.optsummary.method}) convergence code"
    assert msg in res.summary(ddf=None)
    assert msg in res._repr_html_()


# -- publication tables --------------------------------------------------------------------
def test_table_of_two_fits_markdown_and_latex():
    from scipy.stats import norm

    r0, r1 = _sleep_fits()
    t = sm.table([r0, r1], names=["uncorrelated", "correlated"], icc=True, r2=True)
    md = t.to_markdown()
    lines = md.splitlines()
    assert lines[0].startswith("|  | uncorrelated Estimate | uncorrelated 95% CI |")
    row = next(ln for ln in lines if ln.startswith("| Days |")).split("|")
    lo, hi = r1.fixef["Days"] + np.array([-1, 1]) * norm.ppf(0.975) * r1.fixef_se["Days"]
    assert row[4].strip() == f"{r1.fixef['Days']:.2f}" and row[5].strip() == f"{lo:.2f} \u2013 {hi:.2f}"
    split = lambda ln: re.split(r"(?<!\\)\|", ln)
    cells = {split(ln)[1].strip(): [c.strip() for c in split(ln)[2:-1]] for ln in lines[2:] if ln.startswith("| ")}
    assert cells["Var (Intercept) \\| Subject"][2] == f"{r1.cov_re['Subject'].iloc[0, 0]:.2f}"
    assert cells["Cor (Intercept), Days \\| Subject"][2] == "0.07"
    assert cells["Var Residual"][0] == f"{r0.sigma ** 2:.2f}"
    r2 = r1.r2_nakagawa()
    assert cells["ICC (adjusted)"][2] == f"{r2['var_random'] / (r2['var_random'] + r2['var_residual']):.2f}"
    assert cells["R\u00b2 marginal"][2] == f"{r2['marginal']:.2f}"
    assert cells["N Subject"][0] == "18" and cells["Observations"][2] == "180"
    assert cells["AIC"][2] == f"{r1.aic:.2f}" and cells["log-Likelihood"][0] == f"{r0.loglik:.2f}"
    assert cells["Estimation"][0] == "REML"
    tex = t.to_latex(caption="Sleep deprivation", label="tab:sleep")
    assert tex.startswith("\\begin{table}") and "\\begin{tabular}{lcccc}" in tex
    assert tex.rstrip().endswith("\\end{table}")
    assert "\\multicolumn{2}{c}{uncorrelated}" in tex and "95\\% CI" in tex and "\\label{tab:sleep}" in tex
    assert "Var (Intercept) $|$ Subject & \\multicolumn{2}{c}{" in tex and " -- " in tex
    body = [ln for ln in tex.splitlines() if ln.endswith("\\\\")]
    for ln in body:                     # every row has 5 columns (multicolumns counted)
        spans = sum(int(k) for k in re.findall(r"\\multicolumn\{(\d+)\}", ln))
        plain = ln.count("&") + 1 - len(re.findall(r"\\multicolumn", ln))
        assert spans + plain == 5, ln
    s = str(t)
    assert "uncorrelated" in s and "Random effects" in s and "ICC (adjusted)" in s
    assert isinstance(t.to_frame(), D.Table) and t.to_frame().shape[1] == 4


def test_table_p_values_standard_errors_and_glmm():
    res = fit("sleepstudy_reml")
    md = res.to_markdown(ci=False, ddf="Satterthwaite")
    head = md.splitlines()[0]
    assert head == "|  | Estimate | Std. Error | p |"
    assert f"| Days | {res.fixef['Days']:.2f} | {res.fixef_se['Days']:.2f} | <0.001 |" in md
    assert "| p |" not in res.to_markdown()            # lme4's table has no p-values
    tex = res.to_latex(digits=3)
    assert "\\toprule" in tex and f"{res.fixef['Days']:.3f}" in tex and "\\begin{table}" not in tex
    g = fit("cbpp")
    gm = g.to_markdown(icc=True)
    p = g.coef_table()["Pr(>|z|)"]
    assert gm.splitlines()[0] == "|  | Estimate | 95% CI | p |"
    assert f"| period2 | {g.fixef['period2']:.2f} |" in gm and f"| {p['period2']:.3f} |" in gm
    icc = g.varcorr["vcov"].iloc[0] / (g.varcorr["vcov"].iloc[0] + np.pi ** 2 / 3)
    assert f"| ICC (adjusted) | {icc:.2f} |" in gm
    assert "Var Residual" not in gm and "| Estimation | Laplace |" in gm
    mixed = sm.table([res, g])                          # an lmer and a glmer fit side by side
    assert "| p |" not in mixed.to_markdown().splitlines()[0] and "(1) p" in mixed.to_markdown().splitlines()[0]


# -- fitted values and residuals as Series ---------------------------------------------------
def test_fitted_and_residuals_are_series_on_the_data_index():
    sleep = sm.datasets.load("sleepstudy")
    df = sleep.set_index(pd.Index([f"r{i}" for i in range(len(sleep))]))
    df.loc[["r3", "r50"], "Reaction"] = np.nan
    df.loc["r7", "Days"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = sm.lmer("Reaction ~ Days + (Days | Subject)", df).fit()
    f, r = res.fitted(), res.residuals()
    assert isinstance(f, pd.Series) and len(f) == 177 and {"r3", "r7", "r50"}.isdisjoint(f.index)
    assert list(f.index) == [i for i in df.index if i not in ("r3", "r7", "r50")]
    np.testing.assert_allclose(r, df.loc[f.index, "Reaction"] - f, atol=1e-10)
    fx = res.fitted(na_action="exclude")
    assert list(fx.index) == list(df.index) and fx[["r3", "r7", "r50"]].isna().all()
    pd.testing.assert_series_equal(fx.dropna(), f)
    rx = res.residuals("pearson", scaled=True, na_action="exclude")
    assert rx.index.equals(df.index) and rx.isna().sum() == 3
    np.testing.assert_allclose(rx.dropna(), r / res.sigma)
    # arrays still work where they did
    assert np.asarray(f).shape == (177,) and float(f.iloc[0]) == pytest.approx(f.to_numpy()[0])
    np.testing.assert_allclose(res.predict().to_numpy(), f.to_numpy(), rtol=1e-12)
    with pytest.raises(sm.SparseMixedError, match="na_action"):
        res.fitted(na_action="pass")
    # na_action="exclude" on the model (R's lmer(..., na.action = na.exclude)): the same fit,
    # every row back from fitted() and residuals()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ex = sm.lmer("Reaction ~ Days + (Days | Subject)", df, na_action="exclude").fit()
    assert ex.objective == res.objective
    pd.testing.assert_series_equal(ex.fitted(), fx)
    assert ex.residuals().index.equals(df.index) and ex.fitted(na_action="omit").index.equals(f.index)
    # GLMM: the same
    d = load("cbpp")
    d.index = d.index + 100
    d.loc[102, "incidence"] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = sm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial").fit()
    gf = g.fitted()
    assert isinstance(gf, pd.Series) and 102 not in gf.index and len(gf) == 55 and gf.index[0] == 100
    gx = g.residuals("pearson", na_action="exclude")
    assert gx.index.equals(d.index) and np.isnan(gx[102]) and gx.notna().sum() == 55


# -- profile() and the warnings of internal refits -------------------------------------------
def _singular_when_ml():
    """Data whose REML fit is regular and whose ML refit is singular."""
    rng = np.random.default_rng(12)
    g = np.repeat(np.arange(6), 4)
    y = rng.normal(size=24) + 0.25 * rng.normal(size=6)[g]
    x = rng.normal(size=24)
    return pd.DataFrame({"y": y, "x": x, "g": g.astype(str)})


def test_profile_method_returns_the_profile_object():
    res = fit("sleepstudy_reml")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                  # the ML refit of a regular fit: nothing to say
        prof = res.profile(which="beta_")
    from sparsemixed.inference.profile import LikelihoodProfile

    assert isinstance(prof, LikelihoodProfile) and isinstance(prof, pd.DataFrame)
    assert list(prof[".par"].unique()) == ["(Intercept)", "Days"]
    assert prof.attrs["refit_warnings"] == [] and prof.attrs["deviance"] == pytest.approx(1751.9393, abs=1e-3)
    ci = prof.confint()
    direct = res.confint(method="profile", parm="beta_")
    width = (direct.iloc[:, 1] - direct.iloc[:, 0]).to_numpy()
    np.testing.assert_allclose(ci.to_numpy(), direct.to_numpy(), atol=2e-3 * width.max())
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    assert isinstance(prof.head(3), LikelihoodProfile)


def test_internal_refit_warnings_are_reworded_and_recorded():
    df = _singular_when_ml()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        r1 = sm.lmer("y ~ x + (1 | g)", df).fit()                  # regular: no warning
        r0 = sm.lmer("y ~ 1 + (1 | g)", df).fit()
    assert not r1.is_singular
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = sm.anova(r0, r1)
    msgs = [str(w.message) for w in caught if issubclass(w.category, sm.SingularFitWarning)]
    assert msgs and all(m.startswith("anova's ML refit of m") for m in msgs)
    assert any(m.startswith("anova's ML refit of m1 (y ~ x + (1 | g))") for m in msgs)
    assert all(w.filename == __file__ for w in caught)             # pointed at the caller
    assert "m1" in a.attrs["refit_warnings"] and "boundary (singular) fit" in a.attrs["refit_warnings"]["m1"][0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        prof = r1.profile(which="beta_")
    sing = [str(w.message) for w in caught if issubclass(w.category, sm.SingularFitWarning)]
    assert len(sing) == 1 and sing[0].startswith("profile(): the ML refit of this REML fit")
    assert prof.attrs["refit_warnings"] and "boundary (singular) fit" in prof.attrs["refit_warnings"][0]


def test_refit_convergence_warnings_reworded(monkeypatch):
    """A convergence problem of an internal ML refit is shown once, naming the refit."""
    from sparsemixed.model import LinearMixedModel

    res = fit("sleepstudy_reml")
    original = LinearMixedModel.fit

    def noisy(self, REML=None, **kw):
        out = original(self, REML=REML, **kw)
        if REML is False:
            warnings.warn("the optimizer stopped with a scaled gradient of 0.1", sm.ConvergenceWarning)
            warnings.warn("something internal", RuntimeWarning)
        return out

    monkeypatch.setattr(LinearMixedModel, "fit", noisy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ci = res.confint(method="profile", parm="Days")
    conv = [str(w.message) for w in caught if issubclass(w.category, sm.ConvergenceWarning)]
    assert conv == ["confint(method='profile'): the ML refit of this REML fit (lme4 profiles the ML deviance): "
                    "the optimizer stopped with a scaled gradient of 0.1"]
    assert not any(issubclass(w.category, RuntimeWarning) for w in caught)
    assert len(ci.attrs["refit_warnings"]) == 2
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        a = sm.anova(fit("sleepstudy_reml"), sm.lmer("Reaction ~ Days + (1 | Subject)",
                                                      sm.datasets.load("sleepstudy")).fit())
    conv = [str(w.message) for w in caught if issubclass(w.category, sm.ConvergenceWarning)]
    assert sorted(conv) == ["anova's ML refit of m0 (Reaction ~ Days + (Days | Subject)): the optimizer stopped "
                            "with a scaled gradient of 0.1",
                            "anova's ML refit of m1 (Reaction ~ Days + (1 | Subject)): the optimizer stopped "
                            "with a scaled gradient of 0.1"]
    assert set(a.attrs["refit_warnings"]) == {"m0", "m1"}
