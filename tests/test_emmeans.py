"""Estimated marginal means and contrasts (sparsemixed/inference/emmeans.py, emm_adjust.py,
emm_contrasts.py, emm_display.py) against R's emmeans 1.8.4 on lme4 1.1-31 / lmerTest 3.1-3 /
pbkrtest fits: tests/reference/emmeans_reference.json, made by
`Rscript tests/reference/make_emmeans_reference.R` (the data are simulated there with a
seed and stored in the JSON).

Models: a psycholinguistic design (60 subjects x 40 items, cond a/b/c within both, freq
between items, 10% of the rows dropped) with rt ~ cond * freq + (1 + cond | subj) +
(1 + cond | item); a numeric covariate model rt ~ cond * len + freq + (1|subj) + (1|item);
a binomial and a Poisson glmer.

Two comparisons:
* at lme4's optimum (our result evaluated at lme4's theta; for the GLMMs lme4's beta and
  vcov, whose finite-difference Hessian is lme4's own): everything emmeans computes from
  (beta, V) agrees to rounding (1e-9), Satterthwaite df to ~1e-7 (lmerTest differentiates
  numerically, we analytically), Kenward-Roger to rounding, adjusted p-values to 1e-6
  (scipy's studentized range vs R's ptukey); mvt (randomized integration in both) to 2e-3
  and dunnettx intervals (R's uniroot stops at 5e-4) to 1e-4;
* at our own optimum (what a user gets): estimates, SEs and intervals to 1e-4 (lmer) /
  5e-3 (glmer: its SEs come from a finite-difference Hessian of an inexactly optimized
  deviance, 1e-3 to 1e-2 off an exact one, see tests/reference/glmm/README.md), df to 1e-3.
"""
from __future__ import annotations

import json
import pathlib

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from sparsemixed.errors import ArgumentError, SparseMixedError
from sparsemixed.glmm.result import GlmerResult
from sparsemixed.inference import emm_adjust
from sparsemixed.inference.emm_contrasts import poly as poly_family
from sparsemixed.inference.emmeans import EMMGrid, contrast, emmeans, pairs, ref_grid, regrid
from sparsemixed.results.lmer_result import LmerResult

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "emmeans_reference.json").read_text())
DATA = pd.DataFrame({k: v for k, v in REF["data"].items()})
CUSTOM = {"b_vs_a": [-1, 1, 0], "bc_vs_a": [-1, 0.5, 0.5]}

_FITS: dict = {}


def fit(name: str):
    """Our fit of model ``name``."""
    if name not in _FITS:
        r = REF[name]
        if name in ("psych", "cov"):
            _FITS[name] = sm.lmer(r["formula"], DATA).fit()
        else:
            fam = "binomial" if name == "bin" else "poisson"
            _FITS[name] = sm.glmer(r["formula"], DATA, family=fam).fit()
    return _FITS[name]


def at_lme4(name: str):
    """Our result evaluated at lme4's optimum (GLMMs: lme4's theta and beta)."""
    key = name + "@lme4"
    if key not in _FITS:
        r, res = REF[name], fit(name)
        m = res.model
        if name in ("psych", "cov"):
            _FITS[key] = LmerResult.from_state(m, m.pls(np.array(r["theta"])), res.optsummary, True)
        else:
            mode = m.mode(np.array(r["theta"]), np.array(r["fixef"]))
            _FITS[key] = GlmerResult(m, mode, res.optsummary, res.nAGQ)
    return _FITS[key]


def kw_for(name: str, where: str) -> dict:
    """emmeans() keywords: lme4's vcov for the GLMMs at lme4's optimum."""
    if name in ("bin", "pois") and where == "lme4":
        return {"vcov": np.array(REF[name]["vcov"])}
    return {}


# each case: (kind, build(result, kw) -> EMMGrid or summary, summary keywords)
#   kind "emm": compare .summary(); "con": .summary() and .confint(); "tab": the summary built
def _psych_cases():
    E = lambda r, kw: emmeans(r, "cond", by="freq", **kw)
    K = lambda r, kw: emmeans(r, "cond", by="freq", lmer_df="kenward-roger", **kw)
    C = lambda r, kw: emmeans(r, "cond", **kw)
    CF = lambda r, kw: emmeans(r, ["cond", "freq"], **kw)
    return {
        "emm_cond_by_freq": ("emm", E, {}),
        "emm_cond_by_freq_kr": ("emm", K, {}),
        "emm_cond_freq": ("emm", CF, {}),
        "emm_cond": ("emm", C, {}),
        "emm_cond_prop": ("emm", lambda r, kw: emmeans(r, "cond", weights="proportional", **kw), {}),
        "emm_freq": ("emm", lambda r, kw: emmeans(r, "freq", **kw), {}),
        "emm_freq_by_cond_kr": ("emm", lambda r, kw: emmeans(r, "freq", by="cond", lmer_df="KR", **kw), {}),
        "emm_cond_level90": ("tab", lambda r, kw: C(r, kw).confint(level=0.90), {}),
        "pairs_tukey": ("con", lambda r, kw: pairs(E(r, kw)), {}),
        "pairs_tukey_kr": ("con", lambda r, kw: pairs(K(r, kw)), {}),
        "pairs_holm": ("con", lambda r, kw: pairs(E(r, kw)), {"adjust": "holm"}),
        "pairs_bonferroni": ("con", lambda r, kw: pairs(E(r, kw)), {"adjust": "bonferroni"}),
        "pairs_sidak": ("con", lambda r, kw: pairs(E(r, kw)), {"adjust": "sidak"}),
        "pairs_none": ("con", lambda r, kw: pairs(E(r, kw)), {"adjust": "none"}),
        "pairs_fdr": ("con", lambda r, kw: pairs(E(r, kw)), {"adjust": "fdr"}),
        "pairs_scheffe": ("con", lambda r, kw: pairs(E(r, kw)), {"adjust": "scheffe"}),
        "pairs_all6_tukey": ("con", lambda r, kw: pairs(CF(r, kw)), {}),
        "pairs_nobys_tukey": ("con", lambda r, kw: contrast(E(r, kw), "pairwise", by=None), {}),
        "revpairwise": ("con", lambda r, kw: contrast(E(r, kw), "revpairwise"), {}),
        "trt_vs_ctrl": ("con", lambda r, kw: contrast(E(r, kw), "trt.vs.ctrl"), {}),
        "trt_vs_ctrl_ref3": ("con", lambda r, kw: contrast(E(r, kw), "trt.vs.ctrl", ref=3), {}),
        "trt_vs_ctrl_tukey": ("con", lambda r, kw: contrast(E(r, kw), "trt.vs.ctrl"), {"adjust": "tukey"}),
        "poly": ("con", lambda r, kw: contrast(E(r, kw), "poly"), {}),
        "eff": ("con", lambda r, kw: contrast(E(r, kw), "eff"), {}),
        "custom": ("con", lambda r, kw: contrast(E(r, kw), CUSTOM), {}),
        "custom_holm": ("con", lambda r, kw: contrast(E(r, kw), CUSTOM, adjust="holm"), {}),
        "pairs_freq_by_cond": ("con", lambda r, kw: pairs(emmeans(r, "freq", by="cond", **kw)), {}),
        "interaction_pairwise": ("con", lambda r, kw: contrast(CF(r, kw), interaction="pairwise"), {}),
        "consec_mvt": ("con", lambda r, kw: contrast(E(r, kw), "consec"), {}),
        "pairs_mvt": ("con", lambda r, kw: pairs(E(r, kw)), {"adjust": "mvt"}),
        "pairs_both": ("tab", lambda r, kw: pairs(E(r, kw)).summary(infer=(True, True)), {}),
        "emm_test_null": ("tab", lambda r, kw: C(r, kw).test(null=600), {}),
        "emm_regrid": ("emm", lambda r, kw: regrid(C(r, kw)), {}),
        "pairs_regrid": ("con", lambda r, kw: pairs(regrid(C(r, kw))), {}),
    }


def _cov_cases():
    E = lambda r, kw: emmeans(r, "cond", **kw)
    A = lambda r, kw: emmeans(r, "cond", by="len", at={"len": [4, 8]}, **kw)
    return {
        "emm_cond": ("emm", E, {}),
        "emm_cond_kr": ("emm", lambda r, kw: emmeans(r, "cond", lmer_df="kenward-roger", **kw), {}),
        "emm_cond_by_len_at": ("emm", A, {}),
        "emm_freq_at_len5": ("emm", lambda r, kw: emmeans(r, "freq", at={"len": 5}, **kw), {}),
        "pairs_cov": ("con", lambda r, kw: pairs(E(r, kw)), {}),
        "pairs_by_len_at": ("con", lambda r, kw: pairs(A(r, kw)), {}),
    }


def _bin_cases():
    L = lambda r, kw: emmeans(r, "cond", by="freq", **kw)
    Rr = lambda r, kw: emmeans(r, "cond", by="freq", type="response", **kw)
    C = lambda r, kw: emmeans(r, "cond", type="response", **kw)
    return {
        "emm_link": ("emm", L, {}),
        "emm_response": ("emm", Rr, {}),
        "emm_cond_response": ("emm", C, {}),
        "emm_cond_response_prop": ("emm", lambda r, kw: emmeans(r, "cond", type="response",
                                                                weights="proportional", **kw), {}),
        "pairs_link": ("con", lambda r, kw: pairs(L(r, kw)), {}),
        "pairs_odds_ratio": ("con", lambda r, kw: pairs(Rr(r, kw)), {}),
        "pairs_odds_ratio_holm": ("con", lambda r, kw: pairs(Rr(r, kw)), {"adjust": "holm"}),
        "pairs_regrid": ("con", lambda r, kw: pairs(regrid(Rr(r, kw))), {}),
        "trt_vs_ctrl_response": ("con", lambda r, kw: contrast(C(r, kw), "trt.vs.ctrl"), {}),
        "pairs_link_type_response": ("con", lambda r, kw: pairs(L(r, kw)), {"type": "response"}),
        "emm_cond_link": ("emm", lambda r, kw: emmeans(r, "cond", **kw), {}),
        "emm_response_test": ("tab", lambda r, kw: C(r, kw).test(), {}),
        "emm_response_level90": ("tab", lambda r, kw: C(r, kw).confint(level=0.9), {}),
        "pairs_response_both": ("tab", lambda r, kw: pairs(C(r, kw)).summary(infer=(True, True)), {}),
    }


def _pois_cases():
    Rr = lambda r, kw: emmeans(r, "cond", type="response", **kw)
    return {
        "emm_response": ("emm", Rr, {}),
        "pairs_ratio": ("con", lambda r, kw: pairs(Rr(r, kw)), {}),
        "pairs_regrid": ("con", lambda r, kw: pairs(regrid(Rr(r, kw))), {}),
    }


CASES = {"psych": _psych_cases(), "cov": _cov_cases(), "bin": _bin_cases(), "pois": _pois_cases()}
ALL = [(m, c) for m in CASES for c in CASES[m]]


def ref_table(t) -> pd.DataFrame:
    """A table of the JSON (jsonlite writes Inf as null: df = null is df = Inf, the z tests)."""
    vals = {c: t["values"][c] for c in t["cols"]}
    if "df" in vals:
        vals["df"] = [np.inf if v is None else v for v in vals["df"]]
    return pd.DataFrame(vals, columns=list(t["cols"]))


def frames(model: str, case: str, result, kw_extra: dict) -> list:
    """[(ours, reference)] for one case."""
    kind, build, kw = CASES[model][case]
    ref = REF[model]["cases"][case]
    obj = build(result, kw_extra)
    if kind == "tab":
        return [(obj, ref_table(ref["summary"]))]
    out = [(obj.summary(**kw), ref_table(ref["summary"]))]
    if kind == "con":
        out.append((obj.confint(**kw), ref_table(ref["confint"])))
    return out


NUMERIC_AT_LME4 = {"df": 2e-6, "p.value": 1e-6, "lower.CL": 1e-7, "upper.CL": 1e-7, "asymp.LCL": 1e-7,
                   "asymp.UCL": 1e-7}


def compare(ours: pd.DataFrame, ref: pd.DataFrame, tol: dict, default: float, atol_p: float = 1e-10) -> dict:
    """Assert agreement column by column; returns the max relative difference per column."""
    assert list(ours.columns) == list(ref.columns)
    worst = {}
    for c in ref.columns:
        if not pd.api.types.is_numeric_dtype(ref[c]):
            assert [str(v) for v in ours[c]] == [str(v) for v in ref[c]], c
            continue
        a, b = ours[c].to_numpy(float), ref[c].to_numpy(float)
        assert np.array_equal(np.isinf(a), np.isinf(b)), c
        fin = np.isfinite(b)
        # R's ptukey is accurate to ~1e-10 absolute (7.1530e-08 for 7.1462e-08 in pairs_regrid,
        # which scipy and an independent quadrature give): small p-values are compared absolutely
        big = fin & (np.abs(b) > (1e-5 if c == "p.value" else 0.0))
        rel = np.abs(a[big] - b[big]) / np.abs(b[big])
        worst[c] = float(rel.max()) if rel.size else 0.0
        # p-values: also absolute (tiny ones); intervals: relative to the column's scale
        atol = atol_p if c == "p.value" else (tol.get(c, default) * np.max(np.abs(b[fin]), initial=0.0)
                                              if c.endswith(("CL", "LCL", "UCL")) else 0.0)
        np.testing.assert_allclose(a[fin], b[fin], rtol=tol.get(c, default), atol=atol, err_msg=c)
    return worst


def _special_tol(model: str, case: str, base: dict, default: float) -> tuple[dict, float, float]:
    tol = dict(base)
    atol_p = 1e-10

    def loosen(**kw):
        for c, v in kw.items():
            tol[c] = max(tol.get(c, default), v)

    if "mvt" in case:               # mvtnorm integrates by randomized quasi-Monte Carlo (abseps 1e-3)
        loosen(**{"lower.CL": 1e-3, "upper.CL": 1e-3})
        atol_p = 2e-3
    if case.startswith("trt_vs_ctrl") and case != "trt_vs_ctrl_tukey":   # R's uniroot tol 5e-4
        loosen(**{"lower.CL": 1e-4, "upper.CL": 1e-4, "asymp.LCL": 1e-4, "asymp.UCL": 1e-4})
    return tol, default, atol_p


# ------------------------------------------------------------------------------ against R
@pytest.mark.parametrize("model,case", ALL, ids=[f"{m}-{c}" for m, c in ALL])
def test_against_emmeans_at_lme4_optimum(model, case):
    res = at_lme4(model)
    tol, default, atol_p = _special_tol(model, case, NUMERIC_AT_LME4, 1e-9)
    for ours, ref in frames(model, case, res, kw_for(model, "lme4")):
        compare(ours, ref, tol, default, atol_p)


OWN = [(m, c) for m, c in ALL if "mvt" not in c]


@pytest.mark.parametrize("model,case", OWN, ids=[f"{m}-{c}" for m, c in OWN])
def test_against_emmeans_at_our_optimum(model, case):
    glmm = model in ("bin", "pois")
    tol = {"df": 1e-3, "p.value": 1e-1 if glmm else 1e-2, "t.ratio": 1e-3, "z.ratio": 1.5e-2}
    default = 1.5e-2 if glmm else 1e-4
    tol, default, atol_p = _special_tol(model, case, tol, default)
    for ours, ref in frames(model, case, fit(model), {}):
        compare(ours, ref, tol, default, atol_p=max(atol_p, 1e-6))


TEXT_CASES = [("psych", "emm_cond_by_freq"), ("psych", "emm_cond_by_freq_kr"), ("psych", "emm_cond"),
              ("psych", "pairs_tukey"), ("psych", "pairs_all6_tukey"), ("psych", "poly"), ("psych", "eff"),
              ("psych", "trt_vs_ctrl"), ("psych", "pairs_holm"), ("psych", "pairs_scheffe"),
              ("psych", "pairs_both"), ("psych", "emm_test_null"), ("psych", "emm_regrid"),
              ("psych", "interaction_pairwise"), ("cov", "emm_cond_by_len_at"), ("cov", "pairs_cov"),
              ("bin", "emm_link"), ("bin", "emm_response"), ("bin", "pairs_odds_ratio"), ("bin", "pairs_link"),
              ("bin", "pairs_regrid"), ("bin", "emm_response_test"), ("bin", "pairs_response_both"),
              ("pois", "emm_response"), ("pois", "pairs_ratio")]


def _text(s: str) -> list:
    return [line.rstrip() for line in s.rstrip().splitlines()]


@pytest.mark.parametrize("model,case", TEXT_CASES, ids=[f"{m}-{c}" for m, c in TEXT_CASES])
def test_printed_as_emmeans(model, case):
    """The printed table and its notes are emmeans' (at lme4's optimum, so that the last
    printed digit is the same)."""
    ours, _ = frames(model, case, at_lme4(model), kw_for(model, "lme4"))[0]
    assert _text(repr(ours)) == _text(REF[model]["cases"][case]["text"])


def test_worst_differences_are_small():
    """The agreement reported in docs/emmeans.md, over every case but mvt and dunnettx: at
    lme4's optimum estimates and SEs agree to 1e-9, Satterthwaite df to ~5e-7, intervals
    (which use the df) to 1e-7, p-values above 1e-5 to 1e-6."""
    worst: dict = {}
    for model, case in ALL:
        if "mvt" in case or case.startswith("trt_vs_ctrl"):
            continue
        for ours, ref in frames(model, case, at_lme4(model), kw_for(model, "lme4")):
            for c, v in compare(ours, ref, {"df": 1e-5, "p.value": 1e-5}, 1e-6, 1e-10).items():
                worst[c] = max(worst.get(c, 0.0), v)
    print({c: f"{v:.1e}" for c, v in sorted(worst.items())})
    assert worst["df"] < 2e-6 and worst["p.value"] < 1e-6
    assert max(worst[c] for c in ("lower.CL", "upper.CL", "asymp.LCL", "asymp.UCL")) < 1e-7
    assert max(v for c, v in worst.items() if c not in ("df", "p.value", "lower.CL", "upper.CL", "asymp.LCL",
                                                         "asymp.UCL", "null")) < 1e-9


# ------------------------------------------------------------------------------ behaviour
def test_api_entry_points():
    res = fit("psych")
    a = sm.emmeans(res, "cond", by="freq")
    b = res.emmeans("cond", by="freq")
    c = emmeans(res, "~ cond | freq")
    for e in (b, c):
        pd.testing.assert_frame_equal(pd.DataFrame(a.summary()), pd.DataFrame(e.summary()))
    assert "emmeans" in sm.__all__ and "contrast" in sm.__all__
    both = emmeans(res, "pairwise ~ cond | freq")
    assert set(both) == {"emmeans", "contrasts"}
    pd.testing.assert_frame_equal(pd.DataFrame(both["contrasts"].summary()),
                                  pd.DataFrame(sm.contrast(a, "pairwise").summary()))
    g = fit("bin")
    pd.testing.assert_frame_equal(pd.DataFrame(g.emmeans("cond", type="response").summary()),
                                  pd.DataFrame(emmeans(g, "cond", type="response").summary()))


def test_dataframe_like():
    e = emmeans(fit("psych"), "cond", by="freq")
    assert isinstance(e, EMMGrid)
    assert list(e.columns) == ["cond", "freq", "emmean", "SE", "df", "lower.CL", "upper.CL"]
    assert len(e) == 6 and e["emmean"].shape == (6,)
    assert e.shape == (6, 7)
    f = e.to_frame()
    assert type(f) is pd.DataFrame and f.attrs["notes"][-1] == "Confidence level used: 0.95"
    s = e.summary()
    assert isinstance(s, pd.DataFrame) and "freq = high:" in repr(s)
    assert type(s[["emmean"]]) is pd.DataFrame          # operations give plain frames
    assert e.vcov().shape == (6, 6)


def test_reference_grid_and_weights():
    """The grid: factor levels, covariate means, at=; equal vs proportional weights by hand."""
    res = fit("cov")
    rg = ref_grid(res)
    assert list(rg.labels.columns) == ["cond", "len", "freq"]
    assert np.allclose(rg.labels["len"], REF["cov"]["len_mean"])
    assert len(rg) == 6
    X = rg.linfct
    e = emmeans(res, "cond")
    # equal weights: the mean over freq of the grid rows
    lab = rg.labels
    for i, c in enumerate(["a", "b", "c"]):
        np.testing.assert_allclose(e.linfct[i], X[lab["cond"] == c].mean(axis=0))
    ep = emmeans(res, "cond", weights="proportional")
    counts = DATA.groupby("freq").size()
    w = counts.reindex(lab["freq"]).to_numpy(float)
    for i, c in enumerate(["a", "b", "c"]):
        sel = (lab["cond"] == c).to_numpy()
        np.testing.assert_allclose(ep.linfct[i], w[sel] @ X[sel] / w[sel].sum())
    ec = emmeans(res, "cond", weights="cells")
    cells = DATA.groupby(["cond", "freq"]).size()
    for i, c in enumerate(["a", "b", "c"]):
        sel = (lab["cond"] == c).to_numpy()
        ww = np.array([cells[(c, f)] for f in lab["freq"][sel]], float)
        np.testing.assert_allclose(ec.linfct[i], ww @ X[sel] / ww.sum())
    en = emmeans(res, "cond", weights=[1, 3])
    for i, c in enumerate(["a", "b", "c"]):
        sel = (lab["cond"] == c).to_numpy()
        np.testing.assert_allclose(en.linfct[i], (X[sel][0] + 3 * X[sel][1]) / 4)
    one = emmeans(res, "1")
    assert list(one["1"]) == ["overall"] and len(one) == 1
    np.testing.assert_allclose(one.linfct[0], X.mean(axis=0))
    sub = emmeans(res, "cond", at={"cond": ["c", "a"]})
    assert list(sub["cond"]) == ["c", "a"]


def test_response_scale_is_the_delta_method():
    g = fit("bin")
    link = emmeans(g, "cond").summary()
    resp = emmeans(g, "cond", type="response").summary()
    p = 1 / (1 + np.exp(-link["emmean"]))
    np.testing.assert_allclose(resp["prob"], p, rtol=1e-12)
    np.testing.assert_allclose(resp["SE"], p * (1 - p) * link["SE"], rtol=1e-12)
    np.testing.assert_allclose(resp["asymp.LCL"], 1 / (1 + np.exp(-link["asymp.LCL"])), rtol=1e-12)
    pr = pairs(emmeans(g, "cond", type="response")).summary()
    pl = pairs(emmeans(g, "cond")).summary()
    np.testing.assert_allclose(pr["odds.ratio"], np.exp(pl["estimate"]), rtol=1e-12)
    np.testing.assert_allclose(pr["SE"], np.exp(pl["estimate"]) * pl["SE"], rtol=1e-12)
    np.testing.assert_allclose(pr["z.ratio"], pl["z.ratio"], rtol=1e-12)
    assert list(pr["contrast"]) == ["a / b", "a / c", "b / c"]
    # regrid: differences of probabilities, SE from the delta-method covariance
    rg = regrid(emmeans(g, "cond", type="response"))
    d = pairs(rg).summary()
    np.testing.assert_allclose(d["estimate"][0], resp["prob"][0] - resp["prob"][1], rtol=1e-12)
    V = emmeans(g, "cond").vcov().to_numpy()
    D = np.diag(p * (1 - p))
    Vp = D @ V @ D
    np.testing.assert_allclose(d["SE"][0], np.sqrt(Vp[0, 0] + Vp[1, 1] - 2 * Vp[0, 1]), rtol=1e-12)


def test_lmer_response_transformation():
    """A log response: emmeans' automatic back-transformation (response = exp(emmean))."""
    res = sm.lmer("np.log(rt) ~ cond + freq + (1 | subj)", DATA).fit()
    link = emmeans(res, "cond").summary()
    resp = emmeans(res, "cond", type="response").summary()
    assert "response" in resp.columns and "Intervals are back-transformed from the log scale" in resp.attrs["notes"]
    np.testing.assert_allclose(resp["response"], np.exp(link["emmean"]), rtol=1e-12)
    ratio = pairs(emmeans(res, "cond", type="response")).summary()
    assert "ratio" in ratio.columns


def test_adjustments_by_hand():
    p = np.array([0.01, 0.04, 0.03, 0.2])
    np.testing.assert_allclose(emm_adjust.p_adjust(p, "holm"), [0.04, 0.09, 0.09, 0.2])
    # R: p.adjust(c(0.01, 0.04, 0.03, 0.2), method)
    np.testing.assert_allclose(emm_adjust.p_adjust(p, "BH"), [0.04, 0.16 / 3, 0.16 / 3, 0.2])
    np.testing.assert_allclose(emm_adjust.p_adjust(p, "hochberg"), [0.04, 0.08, 0.08, 0.2])
    np.testing.assert_allclose(emm_adjust.p_adjust(p, "BY"), [1 / 12, 1 / 9, 1 / 9, 5 / 12])
    np.testing.assert_allclose(emm_adjust.p_adjust(p, "bonferroni"), [0.04, 0.16, 0.12, 0.8])
    assert emm_adjust.match_adjust("bonf") == "bonferroni" and emm_adjust.match_adjust("Tukey") == "tukey"
    with pytest.raises(ArgumentError):
        emm_adjust.match_adjust("nonsense")
    # R: ptukey(3.855, 3, 42, lower.tail = FALSE), qtukey(0.95, 3, 42) / sqrt(2)
    np.testing.assert_allclose(emm_adjust.ptukey_upper(3.855, 3, 42.0), 0.0247423534083117, rtol=1e-9)
    np.testing.assert_allclose(emm_adjust.qtukey(0.95, 3, 42.0) / np.sqrt(2), 2.429493757009169, rtol=1e-9)


def test_tukey_becomes_sidak_for_non_pairwise_families():
    e = emmeans(fit("psych"), "cond", by="freq")
    s = contrast(e, "trt.vs.ctrl").summary(adjust="tukey")
    assert "P value adjustment: sidak method for 2 tests" in s.attrs["notes"]
    assert any("changed to \"sidak\"" in n for n in s.attrs["messages"])
    assert repr(s).startswith('Note: adjust = "tukey" was changed to "sidak"')
    # pairs regrouped by another `by` are no longer one set of pairwise comparisons
    s2 = pairs(e).summary(by=None)
    assert "P value adjustment: sidak method for 6 tests" in s2.attrs["notes"]


def test_poly_coefficients_are_emmeans():
    for k, first in [(3, [[-1, 0, 1], [1, -2, 1]]), (4, [[-3, -1, 1, 3], [1, -1, -1, 1], [-1, 3, -3, 1]]),
                     (5, [[-2, -1, 0, 1, 2], [2, -1, -2, -1, 2], [-1, 2, 0, -2, 1], [1, -4, 6, -4, 1]])]:
        fam = poly_family([str(i) for i in range(k)])
        np.testing.assert_array_equal(fam.coef.T, np.array(first, float))


def test_errors():
    res = fit("psych")
    with pytest.raises(ArgumentError, match="no variable named"):
        emmeans(res, "nope")
    with pytest.raises(ArgumentError, match="lmer_df"):
        emmeans(res, "cond", lmer_df="nope")
    with pytest.raises(ArgumentError, match="weights"):
        emmeans(res, "cond", weights="nope")
    with pytest.raises(ArgumentError, match="levels"):
        emmeans(res, "cond", at={"cond": ["z"]})
    e = emmeans(res, "cond")
    with pytest.raises(ArgumentError, match="3 levels"):
        contrast(e, {"bad": [1, -1]})
    with pytest.raises(ArgumentError, match="unknown contrast method"):
        contrast(e, "nope")
    with pytest.raises(ArgumentError, match="adjust"):
        pairs(e).summary(adjust="nope")
    with pytest.raises(ArgumentError):
        contrast(res, "pairwise")
    ml = sm.lmer(REF["cov"]["formula"], DATA, REML=False).fit()
    with pytest.raises(SparseMixedError, match="REML"):
        emmeans(ml, "cond", lmer_df="kenward-roger").summary()


def test_rank_deficient_model_marks_non_estimable_means():
    d = DATA[~((DATA["cond"] == "c") & (DATA["freq"] == "low"))]
    with pytest.warns(Warning):
        res = sm.lmer("rt ~ cond * freq + (1 | subj)", d).fit()
    e = emmeans(res, "cond", by="freq")
    s = e.summary()
    est = s["emmean"].to_numpy()
    assert np.isnan(est[5]) and np.all(np.isfinite(est[:5]))
    assert "nonEst" in repr(s)


def test_effect_plot_png(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    from sparsemixed.plots import effect_plot

    e = emmeans(fit("psych"), "cond", by="freq")
    fig = effect_plot(e)
    out = tmp_path / "emm.png"
    fig.savefig(out, dpi=80)
    assert out.stat().st_size > 5000
    ax = fig.axes[0]
    assert ax.get_xlabel() == "cond" and ax.get_ylabel().startswith("rt")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["a", "b", "c"]
    assert len(fig.axes) == 2 and fig.axes[1].get_title() == "freq = low"
    fig2 = effect_plot(emmeans(fit("bin"), "cond", by="freq", type="response"), by_as="colors")
    assert fig2.axes[0].get_ylabel() == "acc (probability)"
    assert fig2.axes[0].get_legend() is not None
    fig2.savefig(tmp_path / "glmm.png", dpi=80)
    fig3 = effect_plot(pairs(emmeans(fit("bin"), "cond", type="response")))
    assert fig3.axes[0].get_ylabel().startswith("odds ratio")
    import matplotlib.pyplot as plt

    plt.close("all")
