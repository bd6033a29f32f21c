"""Property-based tests of the profiled criterion and of the fit's invariances.

The sparse engine's objective(theta) is compared with a dense brute-force profiled
log-likelihood built here from the raw data with numpy only (Z, X, Lambda and
V0 = Z Lambda Lambda' Z' + W^-1 are all constructed independently of the package);
the fit is checked for invariance to row order and level labels, and for
equivariance under y -> a y + c.

All designs are small and UNBALANCED (random group sizes, levels with 1 or 2 rows):
in a balanced design beta is the OLS estimate whatever theta, which hides engine bugs.
"""
from __future__ import annotations

import math
import string
import warnings

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sparsemixed as sm

# random unbalanced designs: singular fits and terms with more parameters than levels are
# part of the space these properties are checked on
pytestmark = pytest.mark.expect_warnings((sm.SingularFitWarning, sm.IdentifiabilityWarning))

SETTINGS = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                     HealthCheck.filter_too_much])

# ---------------------------------------------------------------------------------------
# random unbalanced data
# ---------------------------------------------------------------------------------------


@st.composite
def unbalanced_frames(draw, min_rows: int = 14):
    """A small unbalanced data set with columns

    g  grouping factor, random group sizes 1..7 (some levels with 1-2 rows)
    a  = g (alias used for nesting), h  sub-groups nested in a (1-3 per a level)
    b  a second factor crossed with g, random per row
    x  continuous covariate, f  a 3-level factor, w  positive weights, y response
    """
    ng = draw(st.integers(3, 9))
    sizes = draw(st.lists(st.integers(1, 7), min_size=ng, max_size=ng))
    # make sure the set really is unbalanced and holds a level with 1-2 rows
    sizes[draw(st.integers(0, ng - 1))] = draw(st.integers(1, 2))
    n = int(sum(sizes))
    assume(n >= min_rows)
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    g = np.repeat(np.arange(ng), sizes)
    nb = draw(st.integers(2, 5))
    b = rng.integers(0, nb, n)
    assume(len(np.unique(b)) >= 2)
    nh = rng.integers(1, 4, ng)                          # sub-groups per level of a
    h = np.array([rng.integers(0, nh[gi]) for gi in g])
    x = rng.normal(size=n) * draw(st.sampled_from([1.0, 3.0]))
    f = rng.choice(np.array(["p", "q", "r"]), size=n)
    sd_g, sd_b, sd_s = rng.uniform(0, 2, 3)
    y = (1.0 + 0.5 * x + sd_g * rng.normal(size=ng)[g] + sd_b * rng.normal(size=nb)[b]
         + sd_s * rng.normal(size=ng)[g] * x + rng.normal(size=n))
    w = rng.uniform(0.3, 3.0, n)
    df = pd.DataFrame({
        "g": [f"G{v}" for v in g], "a": [f"G{v}" for v in g], "h": [f"H{v}" for v in h],
        "b": b.astype(np.int64), "x": x, "f": f, "w": w, "y": y,
    })
    return df


# ---------------------------------------------------------------------------------------
# independent dense reference
# ---------------------------------------------------------------------------------------

def _term_matrix(expr: str, df: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """The model matrix of a random-effects term's expression, built by hand."""
    n = len(df)
    one = np.ones((n, 1))
    x = df["x"].to_numpy(float)[:, None]
    e = expr.replace(" ", "")
    if e == "1":
        return one, ["(Intercept)"]
    if e in ("1+x", "x"):
        return np.hstack([one, x]), ["(Intercept)", "x"]
    if e in ("0+x", "x-1", "-1+x"):
        return x, ["x"]
    if e in ("0+f", "f-1"):
        levs = sorted(df["f"].unique())
        return (df["f"].to_numpy()[:, None] == np.array(levs)[None, :]).astype(float), [f"f{v}" for v in levs]
    raise AssertionError(f"test helper does not know the term expression {expr!r}")


def _fixed_matrix(rhs: str, df: pd.DataFrame) -> tuple[np.ndarray, list[str]]:
    """X for the fixed parts used here: '1', '1 + x', '1 + x + f' (treatment contrasts)."""
    n = len(df)
    cols, names = [np.ones(n)], ["(Intercept)"]
    parts = [p.strip() for p in rhs.split("+")]
    if "x" in parts:
        cols.append(df["x"].to_numpy(float))
        names.append("x")
    if "f" in parts:
        levs = sorted(df["f"].unique())
        for v in levs[1:]:
            cols.append((df["f"].to_numpy() == v).astype(float))
            names.append(f"f{v}")
    return np.column_stack(cols), names


def _group_codes(factors: tuple[str, ...], df: pd.DataFrame) -> np.ndarray:
    """Level index of each row for the interaction of ``factors`` (our own level order:
    first appearance, deliberately not the package's sorted order)."""
    keys = pd.Series(list(zip(*[df[f].astype(str) for f in factors])))
    codes, _ = pd.factorize(keys)
    return codes.astype(np.int64)


def _tri_factor(theta_k: np.ndarray, k: int) -> np.ndarray:
    """k x k lower triangular T from the column-wise lower triangle theta_k."""
    T = np.zeros((k, k))
    pos = 0
    for j in range(k):
        for i in range(j, k):
            T[i, j] = theta_k[pos]
            pos += 1
    return T


def dense_design(model, df: pd.DataFrame):
    """(Z, blocks) in model.terms order with our own level order; blocks[k] = (k, L)."""
    Zs, blocks = [], []
    for t in model.terms:
        vals, names = _term_matrix(t.expr, df)
        assert list(t.columns) == names, (t.columns, names)
        codes = _group_codes(tuple(t.group.factors), df)
        L = int(codes.max()) + 1
        assert L == t.nlevels
        k = vals.shape[1]
        Z = np.zeros((len(df), L * k))
        for c in range(k):
            Z[np.arange(len(df)), codes * k + c] = vals[:, c]
        Zs.append(Z)
        blocks.append((k, L))
    return np.hstack(Zs), blocks


def dense_lambda(theta: np.ndarray, blocks) -> np.ndarray:
    mats, off = [], 0
    for k, L in blocks:
        nt = k * (k + 1) // 2
        T = _tri_factor(theta[off: off + nt], k)
        off += nt
        mats.append(np.kron(np.eye(L), T))
    assert off == theta.size
    q = sum(m.shape[0] for m in mats)
    out = np.zeros((q, q))
    o = 0
    for m in mats:
        out[o: o + m.shape[0], o: o + m.shape[0]] = m
        o += m.shape[0]
    return out


def dense_profiled(y, X, Z, Lam, reml: bool, w=None) -> dict:
    """Brute-force profiled ML deviance / REML criterion (lme4's conventions)."""
    n, p = X.shape
    Winv = np.diag(1.0 / w) if w is not None else np.eye(n)
    ZL = Z @ Lam
    V0 = ZL @ ZL.T + Winv
    C = np.linalg.cholesky(V0)
    logdetV = 2.0 * np.log(np.diag(C)).sum()
    Vi = np.linalg.inv(V0)
    XtViX = X.T @ Vi @ X
    beta = np.linalg.solve(XtViX, X.T @ Vi @ y)
    r = y - X @ beta
    r2 = float(r @ Vi @ r)
    sum_log_w = float(np.log(w).sum()) if w is not None else 0.0
    # log|Lambda'Z'WZ Lambda + I| = log|V0| + sum log w  (Sylvester), so the -sum log w of
    # the weighted criterion is already inside log|V0|
    if reml:
        nu = n - p
        val = logdetV + np.linalg.slogdet(XtViX)[1] + nu * (1 + math.log(2 * math.pi * r2 / nu))
    else:
        nu = n
        val = logdetV + nu * (1 + math.log(2 * math.pi * r2 / nu))
    b = Lam @ Lam.T @ Z.T @ Vi @ r                     # BLUP (relative scale: sigma^2 cancels)
    return {"objective": val, "beta": beta, "r2": r2, "sigma2": r2 / nu, "b": b,
            "vcov_rel": np.linalg.inv(XtViX), "sum_log_w": sum_log_w}


MODELS = {
    "crossed": ("y ~ x + (1|g) + (1|b)", "1 + x"),
    "nested": ("y ~ x + (1|a/h)", "1 + x"),
    "slope": ("y ~ x + (1 + x|g)", "1 + x"),
    "uncorrelated": ("y ~ x + (x||g)", "1 + x"),
    "factor_valued": ("y ~ x + (0 + f|g)", "1 + x"),
    "several_on_one": ("y ~ x + f + (1|g) + (0 + x|g) + (1|b)", "1 + x + f"),
    "slope_and_crossed": ("y ~ 1 + (x|g) + (1|b)", "1"),
}


# these data are small: "auto" is the dense small-model engine; "natural" keeps CHOLMOD's
ENGINES = st.sampled_from(["auto", "natural"])


def _build(formula, df, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("error", sm.MissingDataWarning)
        return sm.lmer(formula, df, **kw)


def _theta_strategy(model):
    """theta for the model: diagonal entries in [0, 3] with exact 0 and 1e-6 often,
    off-diagonal entries free."""
    diag = st.one_of(st.just(0.0), st.just(1e-6), st.floats(0.01, 3.0))
    off = st.one_of(st.just(0.0), st.floats(-2.0, 2.0))
    parts = []
    for t in model.terms:
        for j in range(t.k):
            for i in range(j, t.k):
                parts.append(diag if i == j else off)
    return st.tuples(*parts).map(lambda v: np.array(v, dtype=float))


def _design_ok(model, df) -> bool:
    n = len(df)
    return model.q < n and all(t.q < n for t in model.terms)


def _check_objective_against_dense(name, df, data, reml, weighted):
    formula, rhs = MODELS[name]
    kw = {"weights": "w"} if weighted else {}
    kw["ordering"] = data.draw(ENGINES, label="ordering")
    try:
        model = _build(formula, df, REML=reml, **kw)
    except sm.DataError:
        assume(False)     # e.g. a grouping factor with as many levels as rows
    Z, blocks = dense_design(model, df)
    X, xnames = _fixed_matrix(rhs, df)
    assume(np.linalg.matrix_rank(X) == X.shape[1])
    assert model.fixef_names == xnames
    theta = data.draw(_theta_strategy(model), label="theta")
    Lam = dense_lambda(theta, blocks)
    w = df["w"].to_numpy(float) if weighted else None
    y = df["y"].to_numpy(float)
    ref = dense_profiled(y, X, Z, Lam, reml, w)
    got = model.objective(theta)
    assert got == pytest.approx(ref["objective"], rel=1e-8, abs=1e-8), (theta, got, ref["objective"])
    # the other criterion from the same model, through the REML= override
    ref2 = dense_profiled(y, X, Z, Lam, not reml, w)
    assert model.objective(theta, REML=not reml) == pytest.approx(ref2["objective"], rel=1e-8, abs=1e-8)


@pytest.mark.parametrize("name", list(MODELS))
@settings(max_examples=25, **SETTINGS)
@given(df=unbalanced_frames(), data=st.data(), reml=st.booleans())
def test_objective_equals_dense_profiled_likelihood(name, df, data, reml):
    _check_objective_against_dense(name, df, data, reml, weighted=False)


@pytest.mark.parametrize("name", ["crossed", "nested", "slope", "several_on_one", "slope_and_crossed"])
@settings(max_examples=15, **SETTINGS)
@given(df=unbalanced_frames(), data=st.data(), reml=st.booleans(), weighted=st.booleans())
def test_gradient_equals_central_differences(name, df, data, reml, weighted):
    """The analytic gradient (selected inverse) against central differences of the
    criterion, at interior points and near the boundary (diagonals 0 and 1e-6 are drawn
    often: the criterion is even in them, so differences across 0 are still central)."""
    formula, _ = MODELS[name]
    try:
        model = _build(formula, df, REML=reml, ordering=data.draw(ENGINES, label="ordering"),
                       **({"weights": "w"} if weighted else {}))
    except sm.DataError:
        assume(False)
    theta = data.draw(_theta_strategy(model), label="theta")
    try:
        g = model.gradient(theta)
    except sm.NumericalError:
        assume(False)                   # X'V^-1X numerically singular at this theta
    fd = _central_differences(model, theta)
    scale = max(1.0, float(np.abs(fd).max()))
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-5 * scale)


def _central_differences(model, theta) -> np.ndarray:
    """Central differences of the criterion, step 1e-5 relative (absolute below 1)."""
    fd = np.empty_like(theta)
    for j in range(theta.size):
        h = 1e-5 * max(1.0, abs(theta[j]))
        e = np.zeros_like(theta)
        e[j] = h
        fd[j] = (model.objective(theta + e) - model.objective(theta - e)) / (2 * h)
    return fd


@pytest.mark.parametrize("name", ["crossed", "slope", "several_on_one"])
@settings(max_examples=15, **SETTINGS)
@given(df=unbalanced_frames(), data=st.data(), reml=st.booleans())
def test_weighted_objective_equals_dense_profiled_likelihood(name, df, data, reml):
    """Prior weights: V0 = Z Lambda Lambda' Z' + W^-1 (the criterion's -sum log w is
    log|W^-1| inside log|V0|)."""
    _check_objective_against_dense(name, df, data, reml, weighted=True)


@pytest.mark.parametrize("name", list(MODELS))
def test_objective_on_the_boundary(name):
    """All diagonal elements of theta 0 (V0 = I: the OLS likelihood, which numpy's lstsq
    gives directly) and a mixed interior/boundary theta."""
    rng = np.random.default_rng(7)
    sizes = [1, 2, 5, 7, 3, 1, 6]
    g = np.repeat(np.arange(len(sizes)), sizes)
    n = g.size
    df = pd.DataFrame({"g": [f"G{v}" for v in g], "a": [f"G{v}" for v in g],
                       "h": [f"H{v}" for v in rng.integers(0, 2, n)], "b": rng.integers(0, 4, n),
                       "x": rng.normal(size=n), "f": rng.choice(["p", "q", "r"], n),
                       "w": rng.uniform(0.5, 2, n), "y": rng.normal(size=n)})
    formula, rhs = MODELS[name]
    X, _ = _fixed_matrix(rhs, df)
    y = df["y"].to_numpy()
    for reml in (False, True):
        model = _build(formula, df, REML=reml)
        zero = np.zeros(model.theta0.size)
        # OLS: r2 = RSS, log|V0| = 0
        rss = float(np.sum((y - X @ np.linalg.lstsq(X, y, rcond=None)[0]) ** 2))
        p = X.shape[1]
        nu = n - p if reml else n
        ols = nu * (1 + math.log(2 * math.pi * rss / nu))
        if reml:
            ols += np.linalg.slogdet(X.T @ X)[1]
        assert model.objective(zero) == pytest.approx(ols, rel=1e-10)
        Z, blocks = dense_design(model, df)
        mixed = np.where(model.lower == 0, 1e-6, 0.3)
        mixed[np.flatnonzero(model.lower == 0)[-1]] = 1.7
        ref = dense_profiled(y, X, Z, dense_lambda(mixed, blocks), reml)
        assert model.objective(mixed) == pytest.approx(ref["objective"], rel=1e-8)


@pytest.mark.parametrize("name", ["crossed", "slope", "several_on_one"])
@settings(max_examples=15, **SETTINGS)
@given(df=unbalanced_frames(min_rows=18), reml=st.booleans())
def test_fit_estimates_equal_dense_gls(name, df, reml):
    """At the fitted theta: fixef = GLS beta, sigma^2 = r2/nu, vcov = sigma^2 (X'V0^-1X)^-1,
    ranef = Lambda Lambda' Z' V0^-1 (y - X beta), fitted = X beta + Z b."""
    formula, rhs = MODELS[name]
    try:
        model = _build(formula, df, REML=reml)
    except sm.DataError:
        assume(False)
    X, _ = _fixed_matrix(rhs, df)
    assume(np.linalg.matrix_rank(X) == X.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.ConvergenceWarning)
        res = model.fit()
    Z, blocks = dense_design(model, df)
    y = df["y"].to_numpy(float)
    ref = dense_profiled(y, X, Z, dense_lambda(res.theta, blocks), reml)
    assert res.objective == pytest.approx(ref["objective"], rel=1e-8)
    scale = max(1.0, float(np.abs(ref["beta"]).max()))
    np.testing.assert_allclose(res.fixef.to_numpy(), ref["beta"], rtol=1e-7, atol=1e-7 * scale)
    assert res.sigma ** 2 == pytest.approx(ref["sigma2"], rel=1e-7)
    np.testing.assert_allclose(res.vcov.to_numpy(), ref["sigma2"] * ref["vcov_rel"],
                               rtol=1e-6, atol=1e-9 * ref["sigma2"])
    # ranef: the package orders levels as term.group.levels; ours are first-appearance
    off = 0
    bscale = max(1.0, float(np.abs(ref["b"]).max()))
    for t in model.terms:
        codes = _group_codes(tuple(t.group.factors), df)
        labels = [":".join(map(str, v)) for v in pd.Series(list(zip(*[df[f].astype(str) for f in t.group.factors])))]
        first = {}
        for c, lab in zip(codes, labels):
            first.setdefault(lab, c)
        block = ref["b"][off: off + t.q].reshape(t.nlevels, t.k)
        off += t.q
        re = res.ranef[t.group.name]
        for lab, c in first.items():
            np.testing.assert_allclose(_ranef_row(re, t, lab), block[c], atol=1e-6 * bscale)
    fitted = X @ ref["beta"] + Z @ ref["b"]
    np.testing.assert_allclose(res.fitted(), fitted, atol=1e-6 * max(1.0, float(np.abs(y).max())))
    np.testing.assert_allclose(res.residuals(), y - fitted, atol=1e-6 * max(1.0, float(np.abs(y).max())))


def _ranef_row(re: pd.DataFrame, t, lab: str) -> np.ndarray:
    """The values of term t at level lab in ranef's frame (several terms of one factor
    share a frame; a repeated column name gets a '.1' suffix)."""
    cols = [c for c in re.columns if c.removesuffix(".1") in t.columns]
    if len(cols) == t.k:
        return re.loc[lab, cols].to_numpy(float)
    # several terms with the same column name on one factor: not used by these models
    raise AssertionError(f"cannot locate the columns of {t.expr} in {list(re.columns)}")


# ---------------------------------------------------------------------------------------
# invariances of the fit
# ---------------------------------------------------------------------------------------

TIGHT = dict(ftol_abs=1e-12, xtol_abs=1e-10)   # so that two fits can be compared closely


def _fit(formula, df, reml, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.ConvergenceWarning)
        model = _build(formula, df, REML=reml, **kw)
        res = model.fit(**TIGHT)
        # one restart from the optimum (a fresh trust region); keep the lower
        res2 = model.fit(start=res.theta, **TIGHT)
        return res2 if res2.objective < res.objective else res


def estimates_at(model, theta):
    """The result object at a given interior theta (no optimisation: one evaluation at the
    start), so that profiled estimates can be compared exactly between models."""
    theta = np.asarray(theta, float)
    assert np.all(theta[model.lower == 0] > 0), "the start must be interior"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.ConvergenceWarning)
        res = model.fit(start=theta, maxeval=1, optimizer="bobyqa")
    np.testing.assert_array_equal(res.theta, theta)
    return res


def relative_covariances(model, theta) -> list[np.ndarray]:
    """T_k T_k' per term: identifiable even where theta is not (with a zero diagonal
    element of T, only T T' is determined by the likelihood)."""
    out, off = [], 0
    for t in model.terms:
        nt = t.k * (t.k + 1) // 2
        T = _tri_factor(np.asarray(theta)[off: off + nt], t.k)
        out.append(T @ T.T)
        off += nt
    return out


def _param_tol(res) -> float:
    """How closely two independent fits of one problem agree on the parameters: the 1e-3
    we ask of agreement with lme4 (BOBYQA stops within ~1e-4 of a regular optimum in flat
    directions); at a singular fit (a diagonal of T at or near 0) the criterion is nearly
    flat along the boundary and the answer is looser."""
    return 1e-3 if np.all(res.theta[res.model.lower == 0] > 0.05) else 5e-3


def _assert_same_optimum(r1, r2, a=1.0, c=0.0, shift=0.0):
    """r2 is the fit of a*y + c (a=1, c=0: the same problem); r1 that of y.  Two runs of a
    derivative-free optimizer agree on the criterion to ~1e-6 relative (lme4's standard)."""
    assert r2.objective == pytest.approx(r1.objective + shift, rel=1e-6, abs=1e-8)
    tol = max(_param_tol(r1), _param_tol(r2))
    for S1, S2 in zip(relative_covariances(r1.model, r1.theta), relative_covariances(r2.model, r2.theta)):
        np.testing.assert_allclose(S2, S1, atol=tol * max(1.0, float(np.abs(S1).max())))
    if np.all(r1.theta[r1.model.lower == 0] > 0.05) and np.all(r2.theta[r2.model.lower == 0] > 0.05):
        np.testing.assert_allclose(r2.theta, r1.theta, atol=tol * max(1.0, float(np.abs(r1.theta).max())))
    assert r2.sigma == pytest.approx(abs(a) * r1.sigma, rel=tol)
    expected = a * r1.fixef.copy()
    expected["(Intercept)"] += c
    scale = max(abs(c), abs(a) * max(1.0, float(np.abs(r1.fixef).max())))
    np.testing.assert_allclose(r2.fixef.to_numpy(), expected.to_numpy(), rtol=tol, atol=tol * scale)


def _assert_same_estimates_at(m1, m2, theta, a=1.0, c=0.0, shift=0.0):
    """Exact (1e-9) agreement of criterion and profiled estimates at a fixed theta."""
    e1, e2 = estimates_at(m1, theta), estimates_at(m2, theta)
    assert e2.objective == pytest.approx(e1.objective + shift, rel=1e-10, abs=1e-9)
    assert e2.sigma == pytest.approx(abs(a) * e1.sigma, rel=1e-9)
    expected = a * e1.fixef.copy()
    expected["(Intercept)"] += c
    scale = max(abs(c), abs(a) * max(1.0, float(np.abs(e1.fixef).max())))
    np.testing.assert_allclose(e2.fixef.to_numpy(), expected.to_numpy(), rtol=1e-9, atol=1e-9 * scale)
    np.testing.assert_allclose(e2.vcov.to_numpy(), a * a * e1.vcov.to_numpy(), rtol=1e-8,
                               atol=1e-10 * a * a * float(np.abs(e1.vcov.to_numpy()).max()))
    return e1, e2


def _random_labels(rng, n: int) -> list[str]:
    letters = np.array(list(string.ascii_letters + string.digits))
    out = set()
    while len(out) < n:
        out.add("".join(rng.choice(letters, rng.integers(1, 9))))
    return list(out)


INVARIANCE_MODELS = ["crossed", "nested", "slope", "factor_valued", "several_on_one"]


@pytest.mark.parametrize("name", INVARIANCE_MODELS)
@settings(max_examples=12, **SETTINGS)
@given(df=unbalanced_frames(min_rows=18), seed=st.integers(0, 2**32 - 1), reml=st.booleans())
def test_fit_invariant_to_row_order_and_level_labels(name, df, seed, reml):
    formula, _ = MODELS[name]
    try:
        model = _build(formula, df, REML=reml)
    except sm.DataError:
        assume(False)
    if name == "nested":
        # with (almost) one sub-group per group, (1|a) and (1|h:a) are aliased and only the
        # sum of their variances is identified; ask for a design where both are
        n_sub = df.groupby("a")["h"].nunique()
        assume(int((n_sub >= 2).sum()) >= 2)
    # a term with as many covariance parameters as levels has no well-defined optimum
    # (IdentifiabilityWarning): two row orders may then stop at different local optima
    assume(all(t.cov.ntheta < t.nlevels for t in model.terms))
    rng = np.random.default_rng(seed)
    base = _fit(formula, df, reml)

    perm = df.iloc[rng.permutation(len(df))]
    relab = df.copy()
    maps = {}
    for col in ("g", "h", "b"):
        levels = sorted(relab[col].unique())
        mapping = dict(zip(levels, _random_labels(rng, len(levels))))
        relab[col] = relab[col].map(mapping)
        maps[col] = {str(k): v for k, v in mapping.items()}     # by the package's label text
    relab["a"] = relab["g"]                      # keep a == g for the nested models
    maps["a"] = maps["g"]
    relab = relab.iloc[rng.permutation(len(relab))]

    probe = np.where(model.lower == 0, 0.37, -0.21)
    for other, relabelled in ((perm, False), (relab, True)):
        m2 = _build(formula, other, REML=reml)
        # the criterion is the same function of theta, and so are the profiled estimates ...
        for th in (model.theta0, base.theta, probe):
            assert m2.objective(th) == pytest.approx(model.objective(th), rel=1e-10, abs=1e-10)
        e1, e2 = _assert_same_estimates_at(model, m2, probe)
        # ... and so are the conditional modes, matched by (translated) level label
        for t in model.terms:
            re1, re2 = e1.ranef[t.group.name], e2.ranef[t.group.name]
            if relabelled:
                trans = [":".join(maps[f][part] for f, part in zip(t.group.factors, lab.split(":")))
                         for lab in re1.index]
            else:
                trans = list(re1.index)
            np.testing.assert_allclose(re2.loc[trans].to_numpy(), re1.to_numpy(), rtol=1e-8,
                                       atol=1e-9 * max(1.0, float(np.abs(re1.to_numpy()).max())))
        # ... so the optimum is the same
        _assert_same_optimum(base, _fit(formula, other, reml))


# ---------------------------------------------------------------------------------------
# y -> a y + c
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["crossed", "slope", "several_on_one", "uncorrelated"])
@settings(max_examples=12, **SETTINGS)
@given(df=unbalanced_frames(min_rows=18),
       a=st.one_of(st.floats(0.01, 100.0), st.floats(-100.0, -0.01)),
       c=st.floats(-1e3, 1e3), reml=st.booleans())
def test_affine_response_equivariance(name, df, a, c, reml):
    formula, _ = MODELS[name]
    try:
        model = _build(formula, df, REML=reml)
    except sm.DataError:
        assume(False)
    df2 = df.copy()
    df2["y"] = a * df["y"] + c
    model2 = _build(formula, df2, REML=reml)
    n, p = len(df), model.p
    shift = 2.0 * (n - p if reml else n) * math.log(abs(a))
    # exact at any theta: the criterion shifts, the estimates transform
    for th in (model.theta0, np.where(model.lower == 0, 0.05, 0.4), np.where(model.lower == 0, 2.5, -1.0)):
        assert model2.objective(th) == pytest.approx(model.objective(th) + shift, rel=1e-9, abs=1e-8)
        e1, e2 = _assert_same_estimates_at(model, model2, th, a=a, c=c, shift=shift)
        for g, re1 in e1.ranef.items():
            np.testing.assert_allclose(e2.ranef[g].to_numpy(), a * re1.to_numpy(), rtol=1e-7,
                                       atol=1e-9 * abs(a) * max(1.0, float(np.abs(re1.to_numpy()).max())))
    # theta unchanged at the optimum
    _assert_same_optimum(_fit(formula, df, reml), _fit(formula, df2, reml), a=a, c=c, shift=shift)


# ---------------------------------------------------------------------------------------
# the default fit stops at a (local) minimum
# ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["crossed", "nested", "slope", "uncorrelated", "several_on_one"])
@settings(max_examples=15, **SETTINGS)
@given(df=unbalanced_frames(min_rows=18), reml=st.booleans())
def test_default_fit_is_a_local_minimum(name, df, reml):
    """No feasible coordinate step of size 1e-2 from the returned theta lowers the criterion
    by more than 1e-6 relative (the agreement we ask of lme4's optima; derivative-free
    optimizers stop within about that in flat directions).

    (theta_k = 0 is a stationary point of the criterion along a scalar term's theta_k, as
    the criterion is even in it; a fit that stops there because the projected gradient is
    zero, while the optimum is interior, fails this.)
    """
    formula, _ = MODELS[name]
    try:
        model = _build(formula, df, REML=reml)
    except sm.DataError:
        assume(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.ConvergenceWarning)
        res = model.fit()
    f0 = model.objective(res.theta)
    assert res.objective == pytest.approx(f0, rel=1e-12)
    delta = 1e-2
    for k in range(res.theta.size):
        for step in (delta, -delta):
            th = res.theta.copy()
            th[k] = th[k] + step
            if model.lower[k] == 0 and th[k] < 0:
                th[k] = 0.0
                if res.theta[k] == 0.0:
                    continue
            f = model.objective(th)
            assert f >= f0 - 1e-6 * abs(f0), (
                f"moving theta[{k}] from {res.theta[k]:.6g} to {th[k]:.6g} lowers the criterion "
                f"from {f0:.10g} to {f:.10g} (optimizer {res.optsummary.method}: "
                f"{res.optsummary.returnvalue})")


@pytest.mark.parametrize("name", ["crossed", "slope", "nested"])
@settings(max_examples=10, **SETTINGS)
@given(df=unbalanced_frames(min_rows=18))
def test_ml_and_reml_relationships(name, df):
    """Relationships that hold whatever the data: at any theta the ML and REML profiled
    estimates share beta and r2, so sigma2_ML = r2/n < sigma2_REML = r2/(n - p); and, for
    scalar terms, each criterion at its own optimum is no higher than at the other's
    optimum (1e-6 relative: the optimizers' tolerance).  These criteria can have two local
    minima (hypothesis found the cases in tests/reference/two_modes/): the fit policy's face
    probe and second start (FitControl) must find the lower one."""
    formula, _ = MODELS[name]
    try:
        model = _build(formula, df, REML=True)
    except sm.DataError:
        assume(False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rr = model.fit(REML=True)
        rm = model.fit(REML=False)
    n, p = model.nobs, model.p
    for th in (rr.theta, rm.theta):
        st_ = model.pls(th)
        s2_ml, s2_reml = st_.r2 / n, st_.r2 / (n - p)
        assert s2_ml < s2_reml
    assert rm.sigma ** 2 == pytest.approx(model.pls(rm.theta).r2 / n, rel=1e-10)
    if name == "slope":
        # with a correlated term the criteria can be multimodal (hypothesis found a REML fit
        # from theta0 in a local optimum 0.25 above the REML criterion at the ML optimum):
        # a local optimizer promises no more than a local optimum
        return
    tol = 1e-6
    assert model.objective(rr.theta, REML=True) <= model.objective(rm.theta, REML=True) + tol * abs(rr.objective)
    assert model.objective(rm.theta, REML=False) <= model.objective(rr.theta, REML=False) + tol * abs(rm.objective)
    assert rm.loglik >= -0.5 * model.objective(rr.theta, REML=False) - tol * abs(rm.objective)


@pytest.mark.parametrize("name", ["crossed", "nested", "uncorrelated", "several_on_one"])
@settings(max_examples=15, **SETTINGS)
@given(df=unbalanced_frames(), data=st.data(), reml=st.booleans(), weighted=st.booleans())
def test_diagonal_trace_gradient(name, df, data, reml, weighted):
    """Scalar terms on the blocked factor: d log|M| from diag(M^-1) alone
    (gradient.dlogdet_M's identity) equals the selected-inverse form, diag(M^-1) equals a
    dense inverse of M, and the gradient matches central differences."""
    from sparsemixed import gradient as grad_mod

    formula, _ = MODELS[name]
    try:
        model = _build(formula, df, REML=reml, ordering="blocked", **({"weights": "w"} if weighted else {}))
    except sm.DataError:
        assume(False)
    assert model.relcov.diagonal_Lambda
    theta = np.array(data.draw(st.lists(st.floats(1e-3, 3.0), min_size=model.theta0.size,
                                        max_size=model.theta0.size), label="theta"))
    try:
        state = model.pls(theta)
    except sm.NumericalError:
        assume(False)
    M = model.relcov.M(theta).toarray()
    M = M + np.tril(M, -1).T
    diag = model.factor.inverse_diagonal()
    if diag is None:    # terms amalgamated on the first factor (k1 > 1): the selected inverse's diagonal
        assert model.factor.k1 > 1
        diag = model.factor.selected_inverse(model.relcov.M_indptr, model.relcov.M_indices)[model.relcov.diag_pos]
    np.testing.assert_allclose(diag, np.diag(np.linalg.inv(M)), rtol=1e-9)
    fast = grad_mod.dlogdet_M(theta, model.relcov, model.factor)
    general = grad_mod.dlogdet_M(theta, model.relcov, _SelectedInverseOnly(model.factor))
    np.testing.assert_allclose(fast, general, rtol=1e-7, atol=1e-9 * max(1.0, np.abs(general).max()))
    g = model.gradient(theta)
    fd = _central_differences(model, theta)
    np.testing.assert_allclose(g, fd, rtol=1e-4, atol=1e-5 * max(1.0, float(np.abs(fd).max())))


class _SelectedInverseOnly:
    """A factor seen through its selected inverse only (inverse_diagonal None): forces
    gradient.dlogdet_M onto the general path."""

    def __init__(self, factor):
        self.selected_inverse = factor.selected_inverse

    def inverse_diagonal(self):
        return None


@pytest.mark.parametrize("name", ["crossed", "nested", "uncorrelated", "several_on_one"])
@settings(max_examples=10, **SETTINGS)
@given(df=unbalanced_frames(), data=st.data(), weighted=st.booleans())
def test_diagonal_lambda_fast_structures(name, df, data, weighted):
    """RelCov's O(nnz) path for a diagonal Lambda gives the general path's pattern of M and
    the same values of M at any theta."""
    from sparsemixed.relcov import RelCov

    formula, _ = MODELS[name]
    try:
        model = _build(formula, df, **({"weights": "w"} if weighted else {}))
    except sm.DataError:
        assume(False)
    fast = model.relcov
    assert fast.diagonal_Lambda
    general = _general_relcov(model)
    for k in ("M_indptr", "M_indices", "diag_pos"):
        np.testing.assert_array_equal(getattr(fast, k), getattr(general, k))
    theta = data.draw(_theta_strategy(model), label="theta")
    np.testing.assert_allclose(fast.M_values(theta), general.M_values(theta), rtol=1e-14, atol=0)


def _general_relcov(model):
    from sparsemixed.relcov import RelCov

    class General(RelCov):
        @classmethod
        def _build_diagonal(cls, *args):
            return None

    return General.build(model.terms, model.crossprod.ZtZ)


@pytest.mark.parametrize("name", ["slope", "slope_and_crossed", "factor_valued"])    # the general path
@settings(max_examples=10, **SETTINGS)
@given(df=unbalanced_frames(), data=st.data())
def test_lower_pattern_dense_and_sparse_products_agree(name, df, data):
    """RelCov's pattern of M from the dense symbolic product (small q) and from scipy's sparse
    one are the same, and so are the contributions' targets; M(theta) equals the dense
    Lambda'Z'Z Lambda + I."""
    from sparsemixed import relcov as rc

    formula, _ = MODELS[name]
    try:
        model = _build(formula, df)
    except sm.DataError:
        assume(False)
    A = model.crossprod.ZtZ.copy()
    if data.draw(st.booleans(), label="stored zeros"):      # Z'WZ can store exact zeros (x = 0 rows)
        A.data[::3] = 0.0
    dense = rc.RelCov.build(model.terms, A)
    saved = rc.DENSE_PATTERN_Q
    try:
        rc.DENSE_PATTERN_Q = -1
        sparse = rc.RelCov.build(model.terms, A)
    finally:
        rc.DENSE_PATTERN_Q = saved
    for k in ("M_indptr", "M_indices", "src", "t1", "t2", "target", "diag_pos"):
        np.testing.assert_array_equal(getattr(dense, k), getattr(sparse, k))
    theta = data.draw(_theta_strategy(model), label="theta")
    Lam = dense.Lambda(theta).toarray()
    M = Lam.T @ A.toarray() @ Lam + np.eye(model.q)
    got = dense.M(theta).toarray()
    np.testing.assert_allclose(got, np.tril(M), rtol=1e-12, atol=1e-12 * np.abs(M).max())


@pytest.mark.parametrize("name", ["slope", "slope_and_crossed", "factor_valued", "crossed"])
@settings(max_examples=10, **SETTINGS)
@given(df=unbalanced_frames(), data=st.data())
def test_lambda_times_equals_the_sparse_lambda(name, df, data):
    """pls.lambda_times (a compiled pass over Lambda's nonzeros, or a row scaling) against
    relcov.Lambda(theta) as a scipy matrix: Lambda B and Lambda' B, vectors and matrices."""
    from sparsemixed.linalg.pls import lambda_times

    formula, _ = MODELS[name]
    try:
        model = _build(formula, df)
    except sm.DataError:
        assume(False)
    theta = data.draw(_theta_strategy(model), label="theta")
    Lam = model.relcov.Lambda(theta).toarray()
    rng = np.random.default_rng(0)
    for B in (rng.normal(size=model.q), rng.normal(size=(model.q, 3))):
        np.testing.assert_allclose(lambda_times(model.relcov, theta, B), Lam @ B, rtol=1e-13, atol=1e-13)
        np.testing.assert_allclose(lambda_times(model.relcov, theta, B, transpose=True), Lam.T @ B,
                                   rtol=1e-13, atol=1e-13)
