"""GLM families and links for generalized linear mixed models (R's ``binomial()``, ``poisson()``)::

    eta = g(mu),  mu = g^-1(eta),  d mu / d eta          (Link.linkfun, .linkinv, .mu_eta)
    V(mu): binomial mu (1 - mu), poisson mu, gaussian 1  (Family.variance)
    unit deviance times prior weight                     (Family.dev_resids)
        binomial 2 wt [y log(y/mu) + (1-y) log((1-y)/(1-mu))],  poisson 2 wt [y log(y/mu) - (y-mu)],
        gaussian wt (y - mu)^2,  with 0 log 0 = 0
    working weights   w = prior_w (dmu/deta)^2 / V(mu)
    working response  z = eta + (y - mu) / (dmu/deta)

A binomial ``y`` is a proportion and its prior weights are the numbers of trials (a 0/1 response
has weight 1), as in R. The arithmetic is R's (``make.link``, stats' C code), clamps included:
logit ``linkinv`` is expit(eta) within ``|eta| <= 30`` and eps/(1+eps), 1/(1+eps) beyond, its
``mu_eta`` eps beyond 30 (``eps`` = DBL_EPSILON); probit clamps eta to +-(-qnorm(eps)) and floors
``mu_eta`` at eps; cloglog ``linkfun`` is log(-log(1 - mu)) (inaccurate below mu ~ 1e-8, as R's),
``linkinv`` is clamped to [eps, 1 - eps], ``mu_eta`` caps eta at 700; log ``linkinv``/``mu_eta``
are max(exp(eta), eps). Out-of-range input gives NaN where R stops (``binomial()$linkfun(1.5)``);
``mustart`` raises :class:`DataError` as R's ``initialize`` stops.

``aic`` is -2 log-likelihood as R's ``family$aic``, from ``gammaln``/``xlogy``/``xlog1py`` (R uses
Loader's saddle point; the two agree to ~1e-15 relative for moderate counts and lose digits for
large counts with y close to mu). For non-integer counts, where R's ``dpois`` is -Inf, poisson uses
the continuation y log(mu) - mu - lgamma(y + 1). ``Gaussian`` (identity link) is internal:
its ``aic`` and ``simulate`` need sigma and raise NotImplementedError. Families with a dispersion
parameter (Gamma, inverse Gaussian, negative binomial, quasi) are refused by :func:`family_from`.
"""

from __future__ import annotations

import difflib
import re
import warnings

import numpy as np
from scipy.special import expit, gammaln, ndtr, ndtri, xlog1py, xlogy

from .errors import ArgumentError, DataError, SparseMixedWarning

__all__ = ["Link", "Family", "Binomial", "Poisson", "Gaussian", "family_from", "FAMILIES", "LINKS"]

_EPS = float(np.finfo(np.float64).eps)  # .Machine$double.eps, DBL_EPSILON
# -qnorm(.Machine$double.eps) as R computes it (0x1.04074bdbf8864p+3); scipy's ndtri is one ulp off.
_PROBIT_THRESH = float.fromhex("0x1.04074bdbf8864p+3")
_LOGIT_THRESH = 30.0  # THRESH / MTHRESH of R's src/library/stats/src/family.c
_LOGIT_LO = _EPS / (1.0 + _EPS)  # x_d_opx(DBL_EPSILON)
_LOGIT_HI = (1.0 / _EPS) / (1.0 + 1.0 / _EPS)  # x_d_opx(INVEPS)
_M_1_SQRT_2PI = 0.398942280401432677939946059934  # R's M_1_SQRT_2PI
_DNORM_ZERO = float(np.sqrt(-2.0 * np.log(2.0) * (-1021 + 1 - 53)))  # dnorm underflows beyond

LINKS = ("logit", "probit", "cloglog", "log", "identity")
FAMILIES = ("binomial", "poisson", "gaussian")


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _out(a: np.ndarray):
    """A numpy scalar for 0-d results, else the array."""
    return a[()] if isinstance(a, np.ndarray) and a.ndim == 0 else a


def _suggest(name: str, allowed) -> str:
    close = difflib.get_close_matches(name, list(allowed), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


# --------------------------------------------------------------------------------------- links


def _dnorm(x: np.ndarray) -> np.ndarray:
    """R's dnorm(x) (stats' dnorm4 without MATHLIB_FAST_dnorm): splits x for |x| >= 5."""
    ax = np.abs(x)
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):
        naive = _M_1_SQRT_2PI * np.exp(-0.5 * ax * ax)
        x1 = np.ldexp(np.rint(np.ldexp(ax, 16)), -16)
        x2 = ax - x1
        split = _M_1_SQRT_2PI * (np.exp(-0.5 * x1 * x1) * np.exp((-0.5 * x2 - x1) * x2))
    out = np.where(ax < 5, naive, split)
    out = np.where(ax > _DNORM_ZERO, 0.0, out)
    return np.where(np.isnan(x), np.nan, out)


class Link:
    """A GLM link g: ``linkfun`` (mu -> eta), ``linkinv`` (eta -> mu), ``mu_eta`` (dmu/deta).

    ``Link(name)`` for ``name`` in ``"logit"``, ``"probit"``, ``"cloglog"``, ``"log"``,
    ``"identity"``; the functions take and return float arrays (numpy scalars for scalars) and
    follow R's ``make.link(name)`` exactly, clamps included.
    """

    def __init__(self, name: str):
        if isinstance(name, Link):
            name = name.name
        if not isinstance(name, str):
            raise ArgumentError(f"a link is given by its name, one of {', '.join(map(repr, LINKS))}; "
                                f"got {type(name).__name__}")
        key = name.strip().lower()
        if key not in LINKS:
            raise ArgumentError(f"unknown link {name!r}{_suggest(key, LINKS)}: the links are "
                                f"{', '.join(map(repr, LINKS))}")
        self.name = key

    # -- eta = g(mu)
    def linkfun(self, mu):
        mu = _arr(mu)
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.name == "logit":  # C_logit_link: log(mu / (1 - mu))
                out = np.where((mu < 0) | (mu > 1), np.nan, np.log(mu / (1.0 - mu)))
            elif self.name == "probit":  # qnorm(mu)
                out = ndtri(mu)
            elif self.name == "cloglog":  # log(-log(1 - mu)), as R (not log1p)
                out = np.log(-np.log(1.0 - mu))
            elif self.name == "log":
                out = np.log(mu)
            else:
                out = mu.copy()
        return _out(out)

    # -- mu = g^-1(eta)
    def linkinv(self, eta):
        eta = _arr(eta)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            if self.name == "logit":  # C_logit_linkinv
                out = np.where(eta < -_LOGIT_THRESH, _LOGIT_LO,
                               np.where(eta > _LOGIT_THRESH, _LOGIT_HI, expit(eta)))
            elif self.name == "probit":
                out = ndtr(np.clip(eta, -_PROBIT_THRESH, _PROBIT_THRESH))
            elif self.name == "cloglog":
                out = np.clip(-np.expm1(-np.exp(eta)), _EPS, 1.0 - _EPS)
            elif self.name == "log":
                out = np.maximum(np.exp(eta), _EPS)
            else:
                out = eta.copy()
        return _out(out)

    # -- d mu / d eta
    def mu_eta(self, eta):
        eta = _arr(eta)
        with np.errstate(over="ignore", under="ignore", invalid="ignore"):
            if self.name == "logit":  # C_logit_mu_eta
                e = np.exp(-np.abs(eta))
                out = np.where(np.abs(eta) > _LOGIT_THRESH, _EPS, e / ((1.0 + e) * (1.0 + e)))
            elif self.name == "probit":
                out = np.maximum(_dnorm(eta), _EPS)
            elif self.name == "cloglog":
                e = np.minimum(eta, 700.0)
                out = np.maximum(np.exp(e) * np.exp(-np.exp(e)), _EPS)
            elif self.name == "log":
                out = np.maximum(np.exp(eta), _EPS)
            else:
                out = np.ones_like(eta)
        return _out(out)

    def valideta(self, eta) -> bool:
        """R's ``valideta``: TRUE for all five links."""
        return True

    def __repr__(self) -> str:
        return f"Link({self.name!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Link) and other.name == self.name

    def __hash__(self) -> int:
        return hash(("Link", self.name))


# ------------------------------------------------------------------------------------ families


class Family:
    """A GLM family: ``name``, ``link`` (a :class:`Link`), ``dispersion_free`` (dispersion fixed at
    1), and R's family functions ``variance``, ``dev_resids``, ``aic``, ``mustart``
    (``initialize``), ``validmu``, ``valideta``, ``simulate``. Use :class:`Binomial`,
    :class:`Poisson` (or :class:`Gaussian`, internal) or :func:`family_from`."""

    name: str = ""
    allowed_links: tuple = ()
    default_link: str = ""
    dispersion_free: bool = True

    def __init__(self, link: str | Link | None = None):
        if type(self) is Family:
            raise ArgumentError("Family is a base class: use Binomial(), Poisson() or family_from(...)")
        if link is None:
            link = self.default_link
        if isinstance(link, Link):
            key = link.name
        elif isinstance(link, str):
            key = link.strip().lower()
        else:
            raise ArgumentError(f"link= takes a link name ({', '.join(map(repr, self.allowed_links))}), "
                                f"got {type(link).__name__}")
        if key not in self.allowed_links:
            raise ArgumentError(f"link {link if isinstance(link, str) else key!r} is not available for the "
                                f"{self.name} family{_suggest(key, self.allowed_links)}: the {self.name} links "
                                f"are {', '.join(map(repr, self.allowed_links))}")
        self.link = Link(key)

    # the link's functions, as R's family objects carry them
    def linkfun(self, mu):
        return self.link.linkfun(mu)

    def linkinv(self, eta):
        return self.link.linkinv(eta)

    def mu_eta(self, eta):
        return self.link.mu_eta(eta)

    def variance(self, mu):
        raise NotImplementedError

    def dev_resids(self, y, mu, wt):
        raise NotImplementedError

    def aic(self, y, n, mu, wt):
        raise NotImplementedError

    def mustart(self, y, wt):
        raise NotImplementedError

    def validmu(self, mu) -> bool:
        return True

    def valideta(self, eta) -> bool:
        return self.link.valideta(eta)

    def simulate(self, mu, wt=None, rng=None):
        raise NotImplementedError

    def __repr__(self) -> str:
        return f'{type(self).__name__}(link="{self.link.name}")'

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.link == self.link

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.link.name))


def _binom_logpmf(k: np.ndarray, size: np.ndarray, p: np.ndarray) -> np.ndarray:
    """log dbinom(k, size, p) for whole k, size: -inf outside 0 <= k <= size, NaN for invalid
    size or p (as R's dbinom)."""
    valid = (k >= 0) & (k <= size)
    kk = np.where(valid, k, 0.0)
    nn = np.where(valid, size, 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = (gammaln(nn + 1.0) - gammaln(kk + 1.0) - gammaln(nn - kk + 1.0)
              + xlogy(kk, p) + xlog1py(nn - kk, -p))
    lp = np.where(valid, lp, -np.inf)
    bad = (p < 0) | (p > 1) | (size < 0) | np.isnan(p) | np.isnan(size) | np.isnan(k)
    return np.where(bad, np.nan, lp)


def _pois_logpmf(y: np.ndarray, mu: np.ndarray) -> np.ndarray:
    """log dpois(y, mu); the gamma-function continuation for non-integer y (R: -Inf)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        lp = xlogy(y, mu) - mu - gammaln(y + 1.0)
    lp = np.where(y < 0, -np.inf, lp)
    lp = np.where(np.isposinf(mu), -np.inf, lp)
    lp = np.where(mu == 0, np.where(y == 0, 0.0, -np.inf), lp)
    return np.where((mu < 0) | np.isnan(mu) | np.isnan(y), np.nan, lp)


def _rng(rng):
    return np.random.default_rng(rng)


class Binomial(Family):
    """R's ``binomial(link)``: y a proportion in [0, 1], prior weights the numbers of trials;
    links ``"logit"`` (default), ``"probit"``, ``"cloglog"``."""

    name = "binomial"
    allowed_links = ("logit", "probit", "cloglog")
    default_link = "logit"
    dispersion_free = True

    def __init__(self, link: str | Link = "logit"):
        super().__init__(link)

    def variance(self, mu):
        mu = _arr(mu)
        return _out(mu * (1.0 - mu))

    def dev_resids(self, y, mu, wt):
        """C_binomial_dev_resids: 2 wt (y log(y/mu) + (1-y) log((1-y)/(1-mu))), 0 log 0 = 0."""
        y, mu, wt = np.broadcast_arrays(_arr(y), _arr(mu), _arr(wt))
        with np.errstate(divide="ignore", invalid="ignore"):
            a = np.where(y != 0, y * np.log(y / mu), 0.0)
            omy = 1.0 - y
            b = np.where(omy != 0, omy * np.log(omy / (1.0 - mu)), 0.0)
        return _out(2.0 * wt * (a + b))

    def aic(self, y, n, mu, wt):
        """-2 sum(ifelse(m > 0, wt/m, 0) dbinom(round(m y), round(m), mu, log=TRUE)) with
        m = n if any(n > 1) else wt (R's binomial()$aic). Rows of zero weight contribute 0."""
        y, n, mu, wt = np.broadcast_arrays(_arr(y), _arr(n), _arr(mu), _arr(wt))
        m = n if np.any(n > 1) else wt
        mult = np.divide(wt, m, out=np.zeros(m.shape), where=m > 0)
        lp = _binom_logpmf(np.round(m * y), np.round(m), mu)
        with np.errstate(invalid="ignore"):
            terms = np.where(mult != 0, mult * lp, 0.0)
        return float(-2.0 * np.sum(terms))

    def mustart(self, y, wt):
        """R's initialize for a proportion response: (wt y + 0.5) / (wt + 1)."""
        y, wt = np.broadcast_arrays(_arr(y), _arr(wt))
        y = np.where(wt == 0, 0.0, y)  # R: y[weights == 0] <- 0
        if np.any((y < 0) | (y > 1)):
            raise DataError("y values must be 0 <= y <= 1 for the binomial family (a proportion of "
                            "successes, with the numbers of trials as weights)")
        return _out((wt * y + 0.5) / (wt + 1.0))

    def validmu(self, mu) -> bool:
        mu = _arr(mu)
        return bool(np.all(np.isfinite(mu)) and np.all((mu > 0) & (mu < 1)))

    def simulate(self, mu, wt=None, rng=None):
        """Proportions rbinom(wt, mu) / wt (Bernoulli draws for wt = 1); rows with wt = 0 get 0.
        The weights must be whole numbers of trials (R stops likewise)."""
        mu = _arr(mu)
        wt = np.ones_like(mu) if wt is None else _arr(wt)
        mu, wt = np.broadcast_arrays(mu, wt)
        if np.any(wt < 0) or np.any(wt % 1 != 0):
            raise DataError("cannot simulate from non-integer prior weights: binomial weights are numbers "
                            "of trials")
        draws = _rng(rng).binomial(wt.astype(np.int64), mu).astype(np.float64)
        return _out(np.divide(draws, wt, out=np.zeros(draws.shape), where=wt > 0))


class Poisson(Family):
    """R's ``poisson(link = "log")``: y a count >= 0; only the log link."""

    name = "poisson"
    allowed_links = ("log",)
    default_link = "log"
    dispersion_free = True

    def __init__(self, link: str | Link = "log"):
        super().__init__(link)

    def variance(self, mu):
        return _out(_arr(mu).copy())

    def dev_resids(self, y, mu, wt):
        """R's poisson()$dev.resids: 2 wt (y log(y/mu) - (y - mu)), and 2 wt mu where y = 0."""
        y, mu, wt = np.broadcast_arrays(_arr(y), _arr(mu), _arr(wt))
        with np.errstate(divide="ignore", invalid="ignore"):
            pos = wt * (y * np.log(y / mu) - (y - mu))
        return _out(2.0 * np.where(y > 0, pos, mu * wt))

    def aic(self, y, n, mu, wt):
        """-2 sum(dpois(y, mu, log=TRUE) wt) (R's poisson()$aic; n is not used); non-integer y use
        the continuation y log(mu) - mu - lgamma(y + 1) where R's dpois gives -Inf."""
        y, mu, wt = np.broadcast_arrays(_arr(y), _arr(mu), _arr(wt))
        return float(-2.0 * np.sum(_pois_logpmf(y, mu) * wt))

    def mustart(self, y, wt=None):
        """R's initialize: y + 0.1."""
        y = _arr(y)
        if np.any(y < 0):
            raise DataError("negative values not allowed for the Poisson family")
        return _out(y + 0.1)

    def validmu(self, mu) -> bool:
        mu = _arr(mu)
        return bool(np.all(np.isfinite(mu)) and np.all(mu > 0))

    def simulate(self, mu, wt=None, rng=None):
        """Counts rpois(mu). Prior weights are ignored, with a warning when not all 1 (as R)."""
        mu = _arr(mu)
        if wt is not None and np.any(_arr(wt) != 1):
            warnings.warn("ignoring prior weights when simulating from the Poisson family",
                          SparseMixedWarning, stacklevel=2)
        return _out(_rng(rng).poisson(mu).astype(np.float64))


class Gaussian(Family):
    """R's ``gaussian()`` with the identity link, for internal use (Gaussian mixed models are fit by
    ``sparsemixed.lmer``). Its dispersion (sigma^2) is not fixed: ``aic`` and ``simulate`` need
    it and raise NotImplementedError."""

    name = "gaussian"
    allowed_links = ("identity",)
    default_link = "identity"
    dispersion_free = False

    def __init__(self, link: str | Link = "identity"):
        super().__init__(link)

    def variance(self, mu):
        return _out(np.ones_like(_arr(mu)))

    def dev_resids(self, y, mu, wt):
        y, mu, wt = np.broadcast_arrays(_arr(y), _arr(mu), _arr(wt))
        return _out(wt * (y - mu) ** 2)

    def aic(self, y, n, mu, wt):
        raise NotImplementedError("the Gaussian log-likelihood needs the residual variance: fit Gaussian "
                                  "mixed models with sparsemixed.lmer")

    def mustart(self, y, wt=None):
        """R's initialize: y."""
        return _out(_arr(y).copy())

    def simulate(self, mu, wt=None, rng=None):
        raise NotImplementedError("simulating a Gaussian response needs the residual variance: use "
                                  "sparsemixed.lmer")


# -------------------------------------------------------------------------------- family_from

_CLASSES = {"binomial": Binomial, "poisson": Poisson, "gaussian": Gaussian}

# families with a dispersion (or extra) parameter, normalized (lower case, "." and "-" -> "_")
_DISPERSION = {
    "gamma": "Gamma", "inverse_gaussian": "inverse.gaussian", "inversegaussian": "inverse.gaussian",
    "inverse_gauss": "inverse.gaussian", "negative_binomial": "negative binomial",
    "negativebinomial": "negative binomial", "neg_binomial": "negative binomial",
    "negbinomial": "negative binomial", "negbin": "negative binomial", "neg_bin": "negative binomial",
    "nbinom": "negative binomial", "nbinom1": "negative binomial", "nbinom2": "negative binomial",
    "nb": "negative binomial", "quasi": "quasi", "quasibinomial": "quasibinomial",
    "quasipoisson": "quasipoisson", "tweedie": "Tweedie", "beta": "beta", "beta_family": "beta",
    "betabinomial": "beta-binomial", "genpois": "generalized Poisson", "compois": "Conway-Maxwell-Poisson",
    "lognormal": "lognormal", "t_family": "Student t", "student": "Student t",
}

_SPEC = re.compile(r"""^\s*(?:stats\s*::\s*)?([A-Za-z][A-Za-z0-9_.\-]*)\s*
                       (?:\(\s*(?:link\s*=\s*)?(?:"([^"]*)"|'([^']*)'|([A-Za-z][A-Za-z0-9_.]*))?\s*\))?\s*$""",
                   re.VERBOSE)


def _refuse_dispersion(display: str) -> ArgumentError:
    return ArgumentError(f"the {display} family has a dispersion parameter; families with a dispersion "
                         "parameter are not supported yet: fit this model with glmmTMB in R, or, for a "
                         "Gaussian response, use sparsemixed.lmer")


def _family_class(name: str):
    key = name.strip().lower()
    if key in _CLASSES:
        return _CLASSES[key]
    norm = re.sub(r"[.\-\s]", "_", key)
    if norm in _DISPERSION:
        raise _refuse_dispersion(_DISPERSION[norm])
    close = difflib.get_close_matches(key, list(FAMILIES), n=1, cutoff=0.6)
    if close:
        hint = f" (did you mean {close[0]!r}?)"
    else:
        near = difflib.get_close_matches(norm, list(_DISPERSION), n=1, cutoff=0.75)
        hint = (f" (if you meant {_DISPERSION[near[0]]!r}: families with a dispersion parameter are not "
                "supported yet; use glmmTMB in R)") if near else ""
    raise ArgumentError(f"unknown family {name!r}{hint}: the families are {', '.join(map(repr, FAMILIES))} "
                        "(gaussian: use sparsemixed.lmer)")


def family_from(spec, link: str | Link | None = None) -> Family:
    """A :class:`Family` from ``spec``: a Family instance (returned as is, then ``link`` must be
    None), a Family class (``Binomial``), or a string, case-insensitive: ``"binomial"``,
    ``"poisson"``, ``"gaussian"``, or R's spelling ``"binomial(link = 'probit')"``,
    ``"binomial(probit)"``. ``link`` (a name or a :class:`Link`) overrides the default link and
    must agree with a link written in the string. Families with a dispersion parameter (Gamma,
    inverse.gaussian, negative binomial, ...) raise :class:`ArgumentError`; gaussian is returned
    as :class:`Gaussian` for the caller to accept or refuse."""
    if isinstance(spec, Family):
        if link is not None:
            raise ArgumentError(f"family_from got the family object {spec!r} and link={link!r}: give the link "
                                f"to the family itself, e.g. {type(spec).__name__}(link=...), or pass the "
                                "family by name")
        return spec
    if isinstance(spec, type) and issubclass(spec, Family):
        if spec is Family:
            raise ArgumentError("Family is a base class: use Binomial, Poisson or a family name")
        return spec(link) if link is not None else spec()
    if not isinstance(spec, str):
        raise ArgumentError(f"family must be a name ({', '.join(map(repr, FAMILIES))}), a Family class or a "
                            f"Family object such as Binomial(link='probit'); got {type(spec).__name__}")
    m = _SPEC.match(spec)
    if m is None:
        raise ArgumentError(f"cannot read the family {spec!r}: write a family name such as 'binomial', or "
                            "R's form \"binomial(link = 'probit')\"")
    cls = _family_class(m.group(1))
    inner = next((g for g in m.group(2, 3, 4) if g is not None), None)
    inner = inner.strip() if inner else None
    if inner and link is not None:
        given = link.name if isinstance(link, Link) else str(link).strip().lower()
        if given != inner.lower():
            raise ArgumentError(f"the family {spec!r} names the link {inner!r} but link={link!r} was also "
                                "given: give the link once")
    chosen = link if link is not None else inner
    return cls(chosen) if chosen else cls()
