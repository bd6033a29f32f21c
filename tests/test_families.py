"""GLM families and links (sparsemixed.families) against R's binomial() / poisson().

The reference values come from tests/reference/make_family_reference.R (R's make.link,
family$variance, $dev.resids, $aic, $initialize on fixed grids with extremes); all are compared
at rtol 1e-12 (the largest discrepancy seen is ~2e-14: probit linkinv in the far tail, where
scipy's ndtr and R's pnorm differ in the last digits, and single-row poisson aic with y = mu,
where log-likelihood terms of size ~100 cancel to ~3).
"""

import json
import math
import pathlib
import warnings

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from sparsemixed.errors import ArgumentError, DataError
from sparsemixed.families import Binomial, Family, Gaussian, Link, Poisson, family_from

REF_FILE = pathlib.Path(__file__).parent / "reference" / "family_reference.json"
RTOL = 1e-12
EPS = np.finfo(float).eps
_SPECIAL = {"Inf": np.inf, "-Inf": -np.inf, "NaN": np.nan, "NA": np.nan}


def arr(v):
    return np.array([_SPECIAL[x] if isinstance(x, str) else x for x in v], dtype=float)


@pytest.fixture(scope="module")
def ref():
    return json.loads(REF_FILE.read_text())


def assert_r(ours, theirs, rtol=RTOL):
    np.testing.assert_allclose(np.asarray(ours, dtype=float), np.asarray(theirs, dtype=float), rtol=rtol,
                               atol=0, equal_nan=True)


LINK_CASES = [("binomial", "logit"), ("binomial", "probit"), ("binomial", "cloglog"), ("poisson", "log")]


# ------------------------------------------------------------------------------ against R


@pytest.mark.parametrize("family,link", LINK_CASES)
def test_links_match_r(ref, family, link):
    r = ref["links"][f"{family}_{link}"]
    eta = arr(ref["grids"]["eta"])
    mu = arr(ref["grids"][f"mu_{family}"])
    fam = family_from(family, link=link)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow / divide warnings at the extremes
        assert_r(fam.link.linkinv(eta), arr(r["linkinv"]))
        assert_r(fam.link.mu_eta(eta), arr(r["mu_eta"]))
        assert_r(fam.link.linkfun(mu), arr(r["linkfun"]))
    assert fam.valideta(eta[np.isfinite(eta)]) is r["valideta"] is True


def test_r_constants(ref):
    from sparsemixed import families

    assert families._PROBIT_THRESH == arr(ref["constants"]["probit_thresh"])[0]
    assert families._EPS == arr(ref["constants"]["double_eps"])[0]


def _aic_inputs(fam_name, fam_ref, g):
    if "rows" in g:
        rows = np.asarray(g["rows"], dtype=int)
        d = fam_ref["dev"]
        y, mu, wt = arr(d["y"])[rows], arr(d["mu"])[rows], arr(d["wt"])[rows]
        n = wt.copy() if fam_name == "binomial" else np.ones_like(y)
        return y, n, mu, wt
    return arr(g["y"]), arr(g["n"]), arr(g["mu"]), arr(g["wt"])


@pytest.mark.parametrize("name", ["binomial", "poisson"])
def test_family_functions_match_r(ref, name):
    fr = ref["families"][name]
    fam = family_from(name)
    mu = arr(ref["grids"][f"mu_{name}"])
    assert_r(fam.variance(mu), arr(fr["variance"]))
    d = fr["dev"]
    assert_r(fam.dev_resids(arr(d["y"]), arr(d["mu"]), arr(d["wt"])), arr(d["dev_resids"]))
    m = fr["mustart"]
    assert_r(fam.mustart(arr(m["y"]), arr(m["wt"])), arr(m["mustart"]))
    for case in fr["validmu"]:
        assert fam.validmu(arr(case["mu"])) is case["valid"], case
    # the same values whatever the link (R's family functions do not depend on it)
    if name == "binomial":
        for link in ("probit", "cloglog"):
            other = Binomial(link)
            assert np.array_equal(other.dev_resids(arr(d["y"]), arr(d["mu"]), arr(d["wt"])),
                                  fam.dev_resids(arr(d["y"]), arr(d["mu"]), arr(d["wt"])))


@pytest.mark.parametrize("name", ["binomial", "poisson"])
def test_aic_matches_r(ref, name):
    fr = ref["families"][name]
    fam = family_from(name)
    for g in fr["aic"]:
        y, n, mu, wt = _aic_inputs(name, fr, g)
        assert_r(fam.aic(y, n, mu, wt), g["aic"])
        each = [fam.aic(y[i], n[i], mu[i], wt[i]) for i in range(len(y))]
        assert_r(each, arr(g["aic_each"]))


# ------------------------------------------------------------------------------ invariants

# ranges where linkinv is not clamped and linkfun does not lose the digits the round trip needs:
# R's cloglog linkfun log(-log(1 - mu)) rounds 1 - mu, a relative error of ~1e-16 / mu in mu.
ROUND_TRIP = {"logit": (1e-12, 1 - 1e-12), "probit": (1e-12, 1 - 1e-12), "cloglog": (1e-6, 1 - 1e-12),
              "log": (1e-15, 1e300), "identity": (-1e300, 1e300)}


@pytest.mark.parametrize("link", sorted(ROUND_TRIP))
@settings(max_examples=200)
@given(u=st.floats(0, 1))
def test_linkinv_linkfun_round_trip(link, u):
    lo, hi = ROUND_TRIP[link]
    if link == "log":
        mu = math.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    else:
        mu = lo + u * (hi - lo)
    lk = Link(link)
    back = float(lk.linkinv(lk.linkfun(mu)))
    assert back == pytest.approx(mu, rel=1e-10, abs=0 if mu else 1e-300)


# eta ranges away from the clamps (logit +-30, probit +-8.13, cloglog/log mu >= eps at -36)
FD_RANGE = {"logit": (-29.9, 29.9), "probit": (-8.0, 8.0), "cloglog": (-35.0, 3.0), "log": (-35.0, 700.0),
            "identity": (-1e6, 1e6)}


@pytest.mark.parametrize("link", sorted(FD_RANGE))
@settings(max_examples=200)
@given(u=st.floats(0, 1))
def test_mu_eta_is_derivative_of_linkinv(link, u):
    lo, hi = FD_RANGE[link]
    eta = lo + u * (hi - lo)
    lk = Link(link)
    h = 1e-5 * max(1.0, abs(eta)) if link != "log" else 1e-6
    up, dn = eta + h, eta - h
    fd = (float(lk.linkinv(up)) - float(lk.linkinv(dn))) / (up - dn)
    d = float(lk.mu_eta(eta))
    rounding = 4 * EPS * max(abs(float(lk.linkinv(up))), abs(float(lk.linkinv(dn)))) / (up - dn)
    assert abs(fd - d) <= 1e-6 * abs(d) + rounding


@st.composite
def binomial_rows(draw):
    n = draw(st.integers(1, 50))
    k = draw(st.integers(0, n))
    mu = draw(st.floats(EPS, 1 - EPS))
    return k / n, float(n), mu


@settings(max_examples=300)
@given(rows=st.lists(binomial_rows(), min_size=1, max_size=20))
def test_binomial_dev_resids_nonnegative_and_zero_at_y(rows):
    fam = Binomial()
    y, wt, mu = (np.array(c) for c in zip(*rows))
    dev = fam.dev_resids(y, mu, wt)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = wt * (np.abs(np.where(y > 0, y * np.log(y / mu), 0)) +
                      np.abs(np.where(y < 1, (1 - y) * np.log((1 - y) / (1 - mu)), 0)))
    assert np.all(dev >= -64 * EPS * scale)
    # at mu = y, clamped as linkinv clamps (mu in [eps, 1 - eps])
    at_y = fam.dev_resids(y, np.clip(y, EPS, 1 - EPS), wt)
    inner = (y > 0) & (y < 1)
    assert np.all(at_y[inner] == 0)
    assert np.all((at_y[~inner] >= 0) & (at_y[~inner] <= 4 * EPS * wt[~inner]))


@settings(max_examples=300)
@given(y=st.lists(st.integers(0, 10_000), min_size=1, max_size=20), data=st.data())
def test_poisson_dev_resids_nonnegative_and_zero_at_y(y, data):
    fam = Poisson()
    y = np.array(y, dtype=float)
    mu = np.array(data.draw(st.lists(st.floats(EPS, 1e6), min_size=len(y), max_size=len(y))))
    wt = np.array(data.draw(st.lists(st.floats(0, 100), min_size=len(y), max_size=len(y))))
    dev = fam.dev_resids(y, mu, wt)
    with np.errstate(divide="ignore", invalid="ignore"):
        scale = wt * (np.abs(np.where(y > 0, y * np.log(y / mu), 0)) + np.abs(y) + mu)
    assert np.all(dev >= -64 * EPS * scale)
    at_y = fam.dev_resids(y, np.maximum(y, EPS), wt)  # linkinv clamps mu >= eps
    assert np.all(at_y[y > 0] == 0)
    assert np.all(at_y[y == 0] == 2 * (EPS * wt[y == 0]))   # R: 2 * (mu * wt), mu clamped to eps


@settings(max_examples=200)
@given(rows=st.lists(binomial_rows(), min_size=1, max_size=20), data=st.data())
def test_binomial_aic_is_minus_twice_scipy_loglik(rows, data):
    fam = Binomial()
    y, n, mu = (np.array(c) for c in zip(*rows))
    if data.draw(st.booleans()):  # 0/1 response with prior weights: m = wt
        y = np.round(y)
        n = np.ones_like(y)
        wt = np.array(data.draw(st.lists(st.sampled_from([0.0, 0.5, 1.0, 2.0, 3.7]), min_size=len(y),
                                         max_size=len(y))))
    else:
        wt = n.copy()
    m = n if np.any(n > 1) else wt
    mult = np.where(m > 0, wt / np.where(m > 0, m, 1), 0)
    want = -2 * np.sum(mult * scipy.stats.binom.logpmf(np.round(m * y), np.round(m), mu))
    assert fam.aic(y, n, mu, wt) == pytest.approx(want, rel=1e-12, abs=1e-12)


@settings(max_examples=200)
@given(y=st.lists(st.integers(0, 500), min_size=1, max_size=20), data=st.data())
def test_poisson_aic_is_minus_twice_scipy_loglik(y, data):
    fam = Poisson()
    y = np.array(y, dtype=float)
    mu = np.array(data.draw(st.lists(st.floats(1e-10, 1e4), min_size=len(y), max_size=len(y))))
    wt = np.array(data.draw(st.lists(st.floats(0, 10), min_size=len(y), max_size=len(y))))
    want = -2 * np.sum(wt * scipy.stats.poisson.logpmf(y, mu))
    assert fam.aic(y, np.ones_like(y), mu, wt) == pytest.approx(want, rel=1e-12, abs=1e-12)


def test_poisson_aic_non_integer_counts_use_gamma_continuation():
    from scipy.special import gammaln

    y, mu, wt = np.array([0.5, 2.25, 7.9]), np.array([1.0, 3.0, 5.5]), np.array([1.0, 2.0, 0.5])
    want = -2 * np.sum(wt * (y * np.log(mu) - mu - gammaln(y + 1)))
    assert Poisson().aic(y, np.ones(3), mu, wt) == pytest.approx(want, rel=1e-13)


def test_aic_edge_cases():
    fam = Binomial()
    # mu at 0 / 1 exactly (the saturated model) and zero-weight rows contribute 0
    assert fam.aic(np.array([0.0, 1.0]), np.ones(2), np.array([0.0, 1.0]), np.ones(2)) == 0.0
    assert fam.aic(np.array([1.0, 0.0]), np.ones(2), np.array([0.3, 0.4]), np.array([0.0, 1.0])) == \
        pytest.approx(-2 * math.log(0.6), rel=1e-15)
    assert fam.aic(np.array([1.0]), np.ones(1), np.array([0.0]), np.ones(1)) == math.inf
    assert Poisson().aic(np.array([0.0, 3.0]), np.ones(2), np.array([1e-300, 3.0]), np.ones(2)) == \
        pytest.approx(-2 * scipy.stats.poisson.logpmf(3, 3.0), rel=1e-14)


# --------------------------------------------------------------------------------- the API


def test_attributes_and_repr():
    b, p, g = Binomial(), Poisson(), Gaussian()
    assert (b.name, b.link.name, b.dispersion_free) == ("binomial", "logit", True)
    assert (p.name, p.link.name, p.dispersion_free) == ("poisson", "log", True)
    assert (g.name, g.link.name, g.dispersion_free) == ("gaussian", "identity", False)
    assert repr(b) == 'Binomial(link="logit")'
    assert repr(Binomial("cloglog")) == 'Binomial(link="cloglog")'
    assert repr(p) == 'Poisson(link="log")'
    assert repr(g) == 'Gaussian(link="identity")'
    assert isinstance(b, Family) and b == Binomial("logit") and b != Binomial("probit")
    assert isinstance(b.link, Link) and b.link == Link("logit")


def test_scalars_in_scalars_out():
    lk = Binomial().link
    assert isinstance(lk.linkinv(0.0), np.floating) and lk.linkinv(0.0) == 0.5
    assert lk.mu_eta(0.0) == 0.25 and lk.linkfun(0.5) == 0.0
    assert Poisson().variance(2.0) == 2.0 and Binomial().variance(0.5) == 0.25


@pytest.mark.parametrize("spec,name,link", [
    ("binomial", "binomial", "logit"), ("Binomial", "binomial", "logit"), ("POISSON", "poisson", "log"),
    ("gaussian", "gaussian", "identity"), ("binomial()", "binomial", "logit"),
    ("binomial(link='probit')", "binomial", "probit"), ('binomial(link = "probit")', "binomial", "probit"),
    ("binomial(probit)", "binomial", "probit"), ("binomial(link=cloglog)", "binomial", "cloglog"),
    ("stats::binomial(link = 'cloglog')", "binomial", "cloglog"), ("poisson(link = \"log\")", "poisson", "log"),
    (" Binomial ( 'logit' ) ", "binomial", "logit"),
])
def test_family_from_strings(spec, name, link):
    fam = family_from(spec)
    assert (fam.name, fam.link.name) == (name, link)


def test_family_from_objects_and_classes():
    b = Binomial("probit")
    assert family_from(b) is b
    assert family_from(Binomial) == Binomial()
    assert family_from(Binomial, link="cloglog") == Binomial("cloglog")
    assert family_from(Poisson) == Poisson()
    assert family_from("binomial", link="probit") == Binomial("probit")
    assert family_from("binomial", link=Link("cloglog")) == Binomial("cloglog")
    assert family_from("binomial(probit)", link="probit") == Binomial("probit")


def test_errors_are_argument_errors_and_type_errors():
    with pytest.raises(ArgumentError) as e:
        family_from("binomal")
    assert isinstance(e.value, TypeError) and isinstance(e.value, ValueError)
    msg = str(e.value)
    assert "did you mean 'binomial'" in msg and "'poisson'" in msg and "'gaussian'" in msg
    with pytest.raises(ArgumentError, match="did you mean 'poisson'"):
        family_from("poison")
    with pytest.raises(ArgumentError, match="unknown family 'foo'"):
        family_from("foo")


def test_misspelt_links():
    with pytest.raises(ArgumentError, match="did you mean 'logit'.*'logit', 'probit', 'cloglog'"):
        Binomial("logti")
    with pytest.raises(ArgumentError, match="did you mean 'probit'"):
        family_from("binomial(link='probt')")
    with pytest.raises(ArgumentError, match="did you mean 'cloglog'"):
        family_from("binomial", link="clolog")
    with pytest.raises(ArgumentError, match="not available for the binomial family.*'logit', 'probit', 'cloglog'"):
        Binomial("log")  # R allows it; not supported here
    with pytest.raises(ArgumentError, match="not available for the binomial family"):
        Binomial("cauchit")
    with pytest.raises(ArgumentError, match="the poisson links are 'log'"):
        Poisson("identity")
    with pytest.raises(ArgumentError, match="not available for the poisson family"):
        family_from("poisson(link = 'sqrt')")
    with pytest.raises(ArgumentError, match="did you mean 'logit'"):
        Link("logt")


@pytest.mark.parametrize("spec", ["Gamma", "gamma", "Gamma(link = 'log')", "inverse.gaussian", "inverse_gaussian",
                                  "negative_binomial", "negative.binomial", "negbin", "nbinom", "nbinom2",
                                  "quasipoisson", "quasibinomial", "tweedie"])
def test_dispersion_families_refused(spec):
    with pytest.raises(ArgumentError, match="dispersion parameter are not supported yet") as e:
        family_from(spec)
    assert "glmmTMB" in str(e.value) and "sparsemixed.lmer" in str(e.value)


def test_near_miss_of_a_dispersion_family():
    with pytest.raises(ArgumentError, match="Gamma.*not supported yet"):
        family_from("gama")


def test_family_from_refusals():
    with pytest.raises(ArgumentError, match="give the link to the family itself"):
        family_from(Binomial(), link="probit")
    with pytest.raises(ArgumentError, match="give the link once"):
        family_from("binomial(probit)", link="logit")
    with pytest.raises(ArgumentError, match="cannot read the family"):
        family_from("binomial(link='probit', x=1)")
    with pytest.raises(ArgumentError, match="got int"):
        family_from(3)
    with pytest.raises(ArgumentError, match="base class"):
        family_from(Family)
    with pytest.raises(ArgumentError, match="base class"):
        Family()


def test_mustart_checks_as_r_initialize():
    with pytest.raises(DataError, match="0 <= y <= 1"):
        Binomial().mustart(np.array([0.0, 1.5]), np.ones(2))
    with pytest.raises(DataError, match="negative values"):
        Poisson().mustart(np.array([0.0, -1.0]), np.ones(2))
    assert np.array_equal(Gaussian().mustart(np.array([1.5, -2.0]), np.ones(2)), [1.5, -2.0])


def test_gaussian_internal_family():
    g = Gaussian()
    assert np.array_equal(g.variance(np.array([1.0, 5.0])), [1.0, 1.0])
    assert np.array_equal(g.dev_resids(np.array([1.0, 2.0]), np.array([0.0, 4.0]), np.array([1.0, 0.5])), [1.0, 2.0])
    assert g.validmu(np.array([-1e300])) and g.valideta(np.array([3.0]))
    with pytest.raises(NotImplementedError, match="lmer"):
        g.aic(np.ones(2), np.ones(2), np.ones(2), np.ones(2))
    with pytest.raises(ArgumentError, match="the gaussian links are 'identity'"):
        Gaussian("log")


def test_simulate():
    rng = np.random.default_rng(1)
    b = Binomial()
    mu = np.full(20_000, 0.3)
    draws = b.simulate(mu, np.ones_like(mu), rng)
    assert set(np.unique(draws)) <= {0.0, 1.0} and abs(draws.mean() - 0.3) < 0.02
    wt = np.array([1.0, 5.0, 20.0, 0.0] * 5000)
    prop = b.simulate(np.full(wt.shape, 0.4), wt, rng)
    assert np.all((prop >= 0) & (prop <= 1)) and np.all(prop[wt == 0] == 0)
    assert np.allclose(prop * wt, np.round(prop * wt)) and abs(prop[wt == 20].mean() - 0.4) < 0.02
    assert np.array_equal(b.simulate(mu[:50], 1, 7), b.simulate(mu[:50], 1, 7))
    with pytest.raises(DataError, match="non-integer prior weights"):
        b.simulate(np.array([0.5]), np.array([2.5]), rng)
    counts = Poisson().simulate(np.full(20_000, 4.0), None, rng)
    assert np.all(counts == np.round(counts)) and abs(counts.mean() - 4.0) < 0.1
    with pytest.warns(UserWarning, match="ignoring prior weights"):
        Poisson().simulate(np.ones(3), np.array([1.0, 2.0, 1.0]), rng)
    with pytest.raises(NotImplementedError):
        Gaussian().simulate(np.ones(3), None, rng)
