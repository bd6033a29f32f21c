"""Profile likelihood (sparsemixed/inference/profile/) against lme4 1.1-31's profile() and
confint(method="profile"), stored in tests/reference/lme4_profile.json (regenerate with
`Rscript tests/reference/make_profile_reference.R`).

lme4 profiles the ML deviance also for REML fits (devfun2 refits by ML), and so do we.
Interval endpoints: within 1e-3 relative of lme4's (1e-3 absolute on a bound).  lme4
inverts a spline through its grid, we solve zeta(c) = -+1.96 on the profile itself, so
the two differ by lme4's interpolation error (up to ~2e-4 relative here); at lme4's grid
points the two profiles agree to ~1e-8 where lme4's inner optimizer converged.
Independent checks: the profiled deviance at a point against direct minimisations over
the other parameters (a re-fit with an offset, and generic optimizers on the deviance
d(sigma, theta) of sparsemixed.inference.varpar on lme4's sd/cor scale).
"""
import json
import math
import pathlib
import warnings

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import minimize, minimize_scalar
from scipy.stats import chi2

import sparsemixed as sm
from sparsemixed.errors import SparseMixedError
from sparsemixed.inference.profile import core as prof_mod
from sparsemixed.inference.profile import Profiler, profile, profile_confint
from sparsemixed.inference.varpar import deviance as dev_sigma_theta

# the singular reference model warns at each (re)fit; that is not what is tested here
pytestmark = pytest.mark.filterwarnings(r"ignore:boundary \(singular\) fit")

REF = json.loads((pathlib.Path(__file__).parent / "reference" / "lme4_profile.json").read_text())
MODELS = [k for k in REF if not k.startswith("_")]
FULL = [k for k in MODELS if k != "sim3_correlated"]


def _data(r):
    if r["data"] == "sim3":
        df = pd.DataFrame(r["frame"])
        df["g"] = pd.Categorical(df["g"], categories=sorted(set(df["g"])))
        return df
    return sm.datasets.load(r["data"])


_FITS, _CIS, _PROFILERS = {}, {}, {}


def fit(name):
    if name not in _FITS:
        r = REF[name]
        _FITS[name] = sm.lmer(r["formula"], _data(r), REML=r["reml"]).fit()
    return _FITS[name]


def confint(name):
    """profile_confint once per model, for the parameters lme4's reference has."""
    if name not in _CIS:
        r = REF[name]
        parm = None if name in FULL else r["parm"]
        _CIS[name] = profile_confint(fit(name), parm)
    return _CIS[name]


def profiler(name):
    if name not in _PROFILERS:
        _PROFILERS[name] = Profiler(fit(name))
    return _PROFILERS[name]


def test_reference_covers_the_required_models():
    assert {"dyestuff_reml", "sleepstudy_reml", "sleepstudy_ml", "penicillin_crossed",
            "dyestuff2_singular"} <= set(MODELS)
    assert REF["dyestuff2_singular"]["lower"][0] == 0      # the singular case has a bound


# -- intervals ---------------------------------------------------------------------------
@pytest.mark.expect_warnings((sm.SingularFitWarning,))
@pytest.mark.parametrize("name", MODELS)
def test_confint_matches_lme4(name):
    r = REF[name]
    ci = confint(name)
    assert list(ci.index) == r["parm"]
    assert list(ci.columns) == ["2.5 %", "97.5 %"]
    for col, ref in ((0, r["lower"]), (1, r["upper"])):
        ours, ref = ci.iloc[:, col].to_numpy(), np.asarray(ref)
        bound = np.isin(ref, [0.0, -1.0, 1.0]) & np.array([p.startswith(".sig") for p in r["parm"]])
        err = np.abs(ours - ref) / np.where(bound, 1.0, np.abs(ref))
        assert np.all(err < 1e-3), dict(zip(r["parm"], err))
    assert np.all(ci.iloc[:, 0] < ci.iloc[:, 1])


def test_singular_fit_lower_limit_is_the_bound():
    ci = confint("dyestuff2_singular")
    assert ci.loc[".sig01", "2.5 %"] == 0.0
    assert ci.loc[".sig01", "97.5 %"] > 1.0


@pytest.mark.expect_warnings((sm.SingularFitWarning,))
def test_intervals_contain_the_ml_estimates():
    for name in FULL:
        r = REF[name]
        est = np.concatenate([r["ml"]["sdcor"][:-1], [r["ml"]["sigma"]], r["ml"]["fixef"]])
        # lme4's sdcor lists sds then correlations; put it in profile order
        pr = profiler(name)
        assert np.allclose(np.sort(est), np.sort(pr.opt), rtol=2e-4, atol=1e-7)
        ci = confint(name).to_numpy()
        assert np.all(ci[:, 0] <= pr.opt) and np.all(pr.opt <= ci[:, 1])


def test_level_and_column_labels():
    r = REF["dyestuff_reml"]
    ci = profile_confint(fit("dyestuff_reml"), level=0.90)
    assert list(ci.columns) == ["5 %", "95 %"]
    assert np.allclose(ci.iloc[:, 0], r["lower90"], rtol=1e-3)
    assert np.allclose(ci.iloc[:, 1], r["upper90"], rtol=1e-3)
    assert prof_mod._perc_labels([0.0005, 0.9995]) == ["0.05 %", "99.95 %"]
    assert prof_mod._perc_labels([0.005, 0.995]) == ["0.5 %", "99.5 %"]


def test_reml_fit_is_profiled_on_the_ml_deviance_as_lme4():
    """lme4 refits REML fits by ML before profiling: same intervals as the ML fit."""
    d = sm.datasets.load("Dyestuff")
    reml = sm.lmer("Yield ~ 1 + (1|Batch)", d, REML=True).fit()
    ml = sm.lmer("Yield ~ 1 + (1|Batch)", d, REML=False).fit()
    a, b = profile_confint(reml, ".sigma"), profile_confint(ml, ".sigma")
    assert np.allclose(a.to_numpy(), b.to_numpy(), rtol=1e-6)
    pr = Profiler(reml)
    assert pr.base == pytest.approx(REF["dyestuff_reml"]["ml"]["deviance"], rel=1e-10)
    assert pr.opt[:2] == pytest.approx(REF["dyestuff_reml"]["ml"]["sdcor"], rel=1e-6)
    assert pr.opt[0] != pytest.approx(reml.varcorr["sdcor"][0], rel=1e-3)   # not REML's sd


def test_negative_correlation_mirrors_the_positive_one():
    """sleepstudy with Days -> -Days: the same model with the correlation negated, so its
    interval is lme4's for the original model reflected."""
    d = sm.datasets.load("sleepstudy").copy()
    d["nDays"] = -d["Days"]
    res = sm.lmer("Reaction ~ nDays + (nDays|Subject)", d, REML=False).fit()
    ci = profile_confint(res, ".sig02")
    r = REF["sleepstudy_ml"]
    i = r["parm"].index(".sig02")
    assert ci.iloc[0, 0] == pytest.approx(-r["upper"][i], rel=1e-3)
    assert ci.iloc[0, 1] == pytest.approx(-r["lower"][i], rel=1e-3)


# -- the profile itself -------------------------------------------------------------------
@pytest.mark.parametrize("name", MODELS)
def test_profiled_points_match_lme4(name):
    """Our zeta at lme4's grid points: never above lme4's deviance (lme4's inner optimizer
    may stop short), and equal where lme4 converged."""
    r, pr = REF[name], profiler(name)
    cols = r["columns"][1:]
    assert cols == pr.names
    zdiff = []
    for par, rows in r["points"].items():
        w = pr.names.index(par)
        for row in rows:
            pt = pr.point(w, row[par])
            z, zl = pr.zeta(w, pt), row[".zeta"]
            assert np.sign(z) == np.sign(zl) or abs(zl) < 1e-8
            assert abs(z) <= abs(zl) + 1e-6, (par, row[par], z, zl)
            if abs(zl) < 2.5:       # near the interval: zeta and all the parameters agree
                zdiff.append(abs(z - zl))
                lrow = np.array([row[c] for c in cols], float)
                ok = np.isclose(pt.row, lrow, rtol=5e-3, atol=1e-4) | np.isnan(lrow)
                assert ok.all(), (par, dict(zip(cols, zip(pt.row, lrow))))
    assert max(zdiff) < 1e-4


@pytest.mark.expect_warnings((sm.SingularFitWarning,))
@pytest.mark.parametrize("name", ["dyestuff_reml", "dyestuff2_singular"])
def test_profile_frame(name):
    r = REF[name]
    res = fit(name)
    df = profile(res)
    pr = profiler(name)
    assert list(df.columns) == r["columns"] + [".par", ".focal"]
    assert list(df[".par"].cat.categories) == r["parm"]
    nptot = len(pr.names)
    cutoff = math.sqrt(chi2.ppf(0.99, nptot))
    for w, par in enumerate(pr.names):
        sub = df[df[".par"] == par]
        assert len(sub) == r["nrows"][par]            # lme4's grid, step for step
        assert np.all(sub[".focal"].to_numpy() == sub[par].to_numpy())
        x, z = sub[".focal"].to_numpy(), sub[".zeta"].to_numpy()
        assert np.all(np.diff(x) > 0) and np.all(np.diff(z) > 0)      # monotone
        at = np.flatnonzero(np.isclose(x, pr.opt[w], rtol=1e-12, atol=0))
        assert at.size == 1 and z[at[0]] == 0.0                          # 0 at the estimate
        assert z[-1] > cutoff
        assert z[0] < -cutoff or x[0] == 0.0                           # a bound (sd = 0)
    # the singular fit's sd profile starts at its estimate 0, on the bound
    if name == "dyestuff2_singular":
        sub = df[df[".par"] == ".sig01"]
        assert sub[".focal"].iloc[0] == 0.0 and sub[".zeta"].iloc[0] == 0.0


def test_which_selects_parameters():
    res = fit("dyestuff_reml")
    df = profile(res, which="beta_")
    assert set(df[".par"]) == {"(Intercept)"}
    pr = Profiler(res)
    assert pr.which("theta_") == [0, 1]
    assert pr.which(None) == [0, 1, 2]
    assert pr.which([".sigma", 0]) == [0, 1]
    with pytest.raises(SparseMixedError, match="unknown parameter"):
        profile_confint(res, "sigma_b")
    with pytest.raises(SparseMixedError, match="level"):
        profile_confint(res, level=1.5)


# -- the profiled deviance is minimised over the other parameters -------------------------
def test_fixed_effect_point_equals_refit_with_offset():
    """Days fixed at c: the profiled deviance equals an ML fit of the model without Days
    and with c * Days as an offset, built from the data."""
    name, c = "sleepstudy_ml", 8.0
    pr = profiler(name)
    pt = pr.point(pr.names.index("Days"), c)
    d = sm.datasets.load("sleepstudy")
    refit = sm.lmer("Reaction ~ 1 + (Days|Subject)", d, REML=False,
                    offset=c * d["Days"].to_numpy(float)).fit()
    assert pt.dev == pytest.approx(refit.objective, abs=1e-7)
    assert pt.row[pr.names.index("(Intercept)")] == pytest.approx(refit.beta[0], rel=1e-6)
    assert pt.row[pr.names.index(".sigma")] == pytest.approx(refit.sigma, rel=1e-5)


def test_sigma_and_sd_points_against_one_dimensional_minimisation():
    """Dyestuff: .sigma = s leaves theta free; .sig01 = s leaves sigma free (theta = s/sigma).
    Each is a 1-D minimisation of d(sigma, theta) done here independently."""
    name = "dyestuff_reml"
    pr, model = profiler(name), fit(name).model
    s = 60.0
    pt = pr.point(1, s)
    direct = minimize_scalar(lambda th: dev_sigma_theta(model, s, [th], False), bounds=(0, 5),
                             method="bounded", options={"xatol": 1e-10})
    assert pt.dev == pytest.approx(direct.fun, abs=1e-8)
    assert pt.theta[0] == pytest.approx(direct.x, rel=1e-5)
    for s in (0.0, 20.0, 80.0):
        pt = pr.point(0, s)
        if s == 0.0:
            direct_fun = model.objective([0.0], REML=False)
        else:
            direct_fun = minimize_scalar(lambda sg: dev_sigma_theta(model, sg, [s / sg], False),
                                         bounds=(10, 200), method="bounded",
                                         options={"xatol": 1e-10}).fun
        assert pt.dev == pytest.approx(direct_fun, abs=1e-8), s
        assert pt.row[0] == s


def _sleepstudy_dev(model, sd1, rho, sd2, sigma):
    """d on lme4's scale: theta = chol([[sd1^2, rho sd1 sd2], [., sd2^2]]) / sigma."""
    L = np.linalg.cholesky(np.array([[sd1 ** 2, rho * sd1 * sd2], [rho * sd1 * sd2, sd2 ** 2]]))
    return dev_sigma_theta(model, sigma, L[[0, 1, 1], [0, 0, 1]] / sigma, False)


@pytest.mark.parametrize("par,value", [(".sig02", 0.6), (".sig03", 4.0), (".sig01", 35.0)])
def test_vector_term_points_against_nelder_mead(par, value):
    """sleepstudy: a correlation or an sd fixed, the other three variance parameters free,
    minimised by Nelder-Mead on lme4's (sd, cor, sigma) scale from the ML estimates."""
    name = "sleepstudy_ml"
    pr, model = profiler(name), fit(name).model
    w = pr.names.index(par)
    pt = pr.point(w, value)
    est = pr.opt[:4]                         # sd1, rho, sd2, sigma

    def full(x):
        p = list(est)
        free = [i for i in range(4) if i != w]
        for i, v in zip(free, x):
            p[i] = math.tanh(v) if i == 1 else math.exp(v)
        p[w] = value
        return p

    x0 = [math.atanh(est[i]) if i == 1 else math.log(est[i]) for i in range(4) if i != w]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = minimize(lambda x: _sleepstudy_dev(model, *full(x)), x0, method="Nelder-Mead",
                       options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 20000, "maxfev": 20000})
    assert pt.dev == pytest.approx(res.fun, abs=2e-7)
    assert np.allclose(pt.row[:4], full(res.x), rtol=1e-3)
    assert pr.zeta(w, pt) == pytest.approx(
        np.sign(value - pr.opt[w]) * math.sqrt(res.fun - pr.base), abs=1e-5)
