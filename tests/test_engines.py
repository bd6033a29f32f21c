"""The factorization methods agree, and the analytic gradient matches finite differences.

Every reference model is built with each method (CHOLMOD with natural/AMD/METIS
orderings, supernodal and simplicial, and the blocked Schur-complement factor); the criterion, the fixed effects
and the conditional modes at lme4's theta must agree, and each method's analytic
gradient must match central finite differences of its own criterion.
"""
import zlib

import numpy as np
import pytest

import sparsemixed as sm
from test_lme4_reference import NAMES

METHODS = ["natural", "amd", "metis", "blocked"]
SMALL = [n for n in NAMES if n != "insteval_crossed"]
MODES = {"supernodal": 0.0, "simplicial": float("inf")}     # select.SUPERNODAL_SWITCH forcing each


@pytest.fixture(params=list(MODES))
def cholmod_mode(request, monkeypatch):
    """CHOLMOD's factor forced supernodal or simplicial (the default picks by flops per entry)."""
    from sparsemixed.linalg import select

    monkeypatch.setattr(select, "SUPERNODAL_SWITCH", MODES[request.param])
    return request.param


def _model(ref, name, method):
    r = ref[name]
    return sm.lmer(r["formula"], sm.datasets.load(r["data"]), REML=r["reml"], ordering=method)


@pytest.mark.parametrize("name", NAMES)
def test_methods_agree(name, lme4_ref, cholmod_mode):
    theta = np.array(lme4_ref[name]["theta"], dtype=float).reshape(-1) * 1.1 + 0.01
    vals, betas, modes = [], [], []
    for method in METHODS:
        m = _model(lme4_ref, name, method)
        assert m.factor.ordering == method
        assert method == "blocked" or m.factor.mode == cholmod_mode
        vals.append(m.objective(theta))
        betas.append(m.pls(theta).beta)
        modes.append(m.random_effects(theta)[1])
    assert np.allclose(vals, vals[0], rtol=1e-10, atol=0)
    for b, u in zip(betas[1:], modes[1:]):
        assert np.allclose(b, betas[0], rtol=1e-8, atol=1e-10)
        assert np.allclose(u, modes[0], rtol=1e-7, atol=1e-9 * np.abs(modes[0]).max())


def _fd(m, theta, h=1e-6):
    return np.array([(m.objective(theta + h * e) - m.objective(theta - h * e)) / (2 * h)
                     for e in np.eye(theta.size)])


@pytest.mark.parametrize("method,mode", [(m, k) for m in METHODS for k in MODES
                                         if m != "blocked" or k == "supernodal"])   # blocked: no mode
@pytest.mark.parametrize("name", SMALL)
def test_gradient_finite_differences(name, method, mode, lme4_ref, monkeypatch):
    from sparsemixed.linalg import select

    monkeypatch.setattr(select, "SUPERNODAL_SWITCH", MODES[mode])
    m = _model(lme4_ref, name, method)
    assert method == "blocked" or m.factor.mode == mode
    rng = np.random.default_rng(zlib.crc32(name.encode()))     # not hash(): salted per process
    theta = np.abs(np.array(lme4_ref[name]["theta"], float).reshape(-1)) * rng.uniform(0.6, 1.5) + 0.05
    theta = np.where(m.lower == 0, np.abs(theta), theta * rng.choice([-1, 1], theta.size))
    g = m.gradient(theta)
    fd = _fd(m, theta)
    assert np.allclose(g, fd, rtol=1e-5, atol=1e-5 * np.abs(fd).max())


def test_gradient_zero_on_scalar_boundary(lme4_ref):
    """The criterion is even in a scalar theta_k: at theta_k = 0 its derivative is 0."""
    m = _model(lme4_ref, "penicillin_crossed", "blocked")
    g = m.gradient(np.array([0.0, 1.3]))
    assert g[0] == pytest.approx(0.0, abs=1e-8)
    # one-sided differences shrink linearly with the step: f(h) - f(0) = O(h^2)
    f0 = m.objective([0.0, 1.3])
    d5 = (m.objective([1e-5, 1.3]) - f0) / 1e-5
    d6 = (m.objective([1e-6, 1.3]) - f0) / 1e-6
    assert abs(d6) < 0.2 * abs(d5)


def test_insteval_gradient(lme4_ref):
    m = _model(lme4_ref, "insteval_crossed", "blocked")
    theta = np.array([0.3, 0.5, 0.12])
    assert np.allclose(m.gradient(theta), _fd(m, theta, 1e-5), rtol=1e-5)
