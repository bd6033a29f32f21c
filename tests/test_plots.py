"""Plots render to PNG (matplotlib is in the test extra: a missing extra fails, not skips)."""
import matplotlib

matplotlib.use("Agg")
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import sparsemixed as sm  # noqa: E402
from sparsemixed import plots  # noqa: E402


@pytest.fixture(scope="module")
def sleep():
    return sm.lmer("Reaction ~ Days + (Days | Subject)", sm.datasets.load("sleepstudy")).fit()


def _png(fig, path):
    fig.savefig(path)
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    matplotlib.pyplot.close(fig)


def test_caterpillar(sleep, tmp_path):
    fig = plots.caterpillar(sleep)
    ax = fig.axes[0]
    assert len(fig.axes) == 2 and ax.get_title() == "(Intercept)"
    ys = [t.get_text() for t in ax.get_yticklabels()]
    assert len(ys) == 18
    modes = sleep.ranef["Subject"]["(Intercept)"]
    assert ys[0] == str(modes.idxmin()) and ys[-1] == str(modes.idxmax())     # sorted by mode
    _png(fig, tmp_path / "cat.png")
    with pytest.raises(ValueError, match="no grouping factor"):
        plots.caterpillar(sleep, group="nope")


def test_group_panels_show_group_and_population_lines(sleep, tmp_path):
    fig = plots.group_panels(sleep, "Days")
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 18
    ax = visible[0]
    lvl = ax.get_title()
    group_line = ax.get_lines()[1].get_ydata()
    c = sleep.coef()["Subject"].loc[lvl]
    np.testing.assert_allclose(group_line[0], c["(Intercept)"])
    _png(fig, tmp_path / "panels.png")


def _factor_design(seed=1, n_subj=20):
    rng = np.random.default_rng(seed)
    rows = []
    for s in range(n_subj):
        u = rng.normal(0, 30)
        for cond, eff in (("congruent", 0), ("incongruent", 40), ("neutral", 15)):
            for _ in range(rng.integers(3, 8)):                    # unbalanced cells
                rows.append((f"s{s:02d}", cond, 600 + u + eff + rng.normal(0, 50)))
    return pd.DataFrame(rows, columns=["subj", "cond", "rt"])


def test_group_panels_with_a_factor_on_the_x_axis(tmp_path):
    d = _factor_design()
    res = sm.lmer("rt ~ cond + (1 | subj)", d).fit()
    fig = plots.group_panels(res, "cond", max_groups=8, ncols=4)
    visible = [a for a in fig.axes if a.get_visible()]
    assert len(visible) == 8
    ax = visible[5]                                                    # bottom row: the tick labels
    assert [t.get_text() for t in ax.get_xticklabels()] == ["congruent", "incongruent", "neutral"]
    lvl = ax.get_title()
    fit_line, pop_line = ax.get_lines()[1].get_ydata(), ax.get_lines()[2].get_ydata()
    fe, b = res.fixef, res.ranef["subj"].loc[lvl, "(Intercept)"]
    pop = [fe["(Intercept)"], fe["(Intercept)"] + fe["condincongruent"], fe["(Intercept)"] + fe["condneutral"]]
    np.testing.assert_allclose(pop_line, pop)
    np.testing.assert_allclose(fit_line, np.array(pop) + b)
    assert "the first 8 of 20 levels" in fig._suptitle.get_text()
    _png(fig, tmp_path / "factor.png")


def test_group_panels_says_when_all_groups_are_shown_and_uses_integer_ticks(sleep):
    fig = plots.group_panels(sleep, "Days")
    assert "all 18 levels" in fig._suptitle.get_text()
    ticks = fig.axes[0].get_xticks()
    assert np.all(np.mod(ticks, 1) == 0)                               # Days are whole numbers


def test_caterpillar_says_when_it_shows_a_subset():
    d = _factor_design(n_subj=30)
    res = sm.lmer("rt ~ cond + (1 | subj)", d).fit()
    fig = plots.caterpillar(res, max_levels=10)
    assert "10 of 30 levels" in fig._suptitle.get_text()
    assert len(fig.axes[0].get_yticklabels()) == 10


def test_qq_titles_and_labels(sleep):
    ax = plots.qq(sleep, "ranef").axes[0]
    assert ax.get_title() == "Normal QQ plot of the conditional modes\nSubject: (Intercept)"
    assert ax.get_ylabel() == "conditional mode of (Intercept)"
    ax = plots.qq(sleep).axes[0]
    assert ax.get_title() == "Normal QQ plot of the scaled residuals" and ax.get_ylabel() == "scaled residual"


def test_residual_and_qq_plots(sleep, tmp_path):
    _png(plots.residuals_vs_fitted(sleep), tmp_path / "rvf.png")
    fig = plots.qq(sleep)
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 180
    _png(fig, tmp_path / "qq.png")
    fig = plots.qq(sleep, "ranef")
    assert len(fig.axes[0].get_lines()[0].get_xdata()) == 18
    _png(fig, tmp_path / "qqre.png")


def test_profile_zeta_plot(tmp_path):
    prof = pd.DataFrame({".zeta": np.r_[-2, 0, 2, -2, 0, 2.0], ".par": ["a"] * 3 + ["b"] * 3,
                         "a": [0.5, 1, 1.5, 1, 1, 1.0], "b": [2, 2, 2, 1, 2, 3.0]})
    fig = plots.profile_zeta(prof)
    assert [a.get_title() for a in fig.axes if a.get_visible()] == ["a", "b"]
    _png(fig, tmp_path / "zeta.png")


def test_profile_zeta_plot_of_a_real_profile(tmp_path):
    from sparsemixed.inference.profile import profile

    r = sm.lmer("Yield ~ 1 + (1|Batch)", sm.datasets.load("Dyestuff")).fit()
    fig = plots.profile_zeta(profile(r))
    assert [a.get_title() for a in fig.axes if a.get_visible()] == [".sig01", ".sigma", "(Intercept)"]
    _png(fig, tmp_path / "zeta_real.png")


@pytest.fixture(scope="module")
def cbpp():
    from pathlib import Path

    d = pd.read_csv(Path(__file__).parent / "reference" / "glmm" / "data" / "cbpp.csv")
    d["herd"], d["period"] = d["herd"].astype(str), d["period"].astype(str)
    return sm.glmer("cbind(incidence, size - incidence) ~ period + (1 | herd)", d, family="binomial").fit()


def test_glmm_plots(cbpp, tmp_path):
    """The plots take a glmer fit: caterpillar (link scale), Pearson residuals (dispersion
    1), QQ, and the binned residuals whose points are each bin's mean of y - mu-hat."""
    fig = plots.caterpillar(cbpp)
    assert fig.axes[0].get_xlabel() == "conditional mode (link scale)"
    _png(fig, tmp_path / "cat.png")
    fig = plots.residuals_vs_fitted(cbpp)
    np.testing.assert_allclose(fig.axes[0].collections[0].get_offsets()[:, 1], cbpp.residuals("pearson"))
    _png(fig, tmp_path / "rvf.png")
    _png(plots.qq(cbpp), tmp_path / "qq.png")
    fig = plots.binned_residuals(cbpp, bins=7)
    pts = fig.axes[0].get_lines()[0]
    mu, r = cbpp.fitted(), cbpp.residuals("response")
    first = np.argsort(mu, kind="stable")[: len(mu) // 7 + (len(mu) % 7 > 0)]
    assert len(pts.get_xdata()) == 7
    assert pts.get_ydata()[0] == pytest.approx(r[first].mean()) and pts.get_xdata()[0] == pytest.approx(mu[first].mean())
    _png(fig, tmp_path / "binned.png")
    with pytest.raises(ValueError, match="glmer fits"):
        plots.binned_residuals(sm.lmer("Reaction ~ Days + (1 | Subject)", sm.datasets.load("sleepstudy")).fit())
