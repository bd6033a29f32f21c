"""Catalogue of bad input and its documented handling, one test per case.

The rule (issue "Reliability"): bad input gets the exact error type of
sparsemixed.errors with a message naming the column / level / term at fault and saying
what to do, or the documented warning; never a raw traceback from numpy, pandas,
formulaic or CHOLMOD, never a silently wrong answer, and the user's DataFrame is never
modified (every test compares it afterwards with a deep copy taken before, dtypes
included).

Documented behaviour of text columns used as covariates (fixed effects or the
expression of a random-effects term), sparsemixed.formula.design._text_covariates:
  * an object column holding only numbers is a numeric covariate (not a factor);
  * numbers mixed with strings, or strings that mostly read as numbers plus a few that
    do not ("3.1", "n/a", "x"), are a DataError naming the column and the values;
  * strings that are all numbers ("1", "2": R's character columns) or mostly not numbers
    are a factor; ``C(col)`` always asks for a factor.
"""
import contextlib
import copy
import warnings

import numpy as np
import pandas as pd
import pytest

import sparsemixed as sm
from sparsemixed import DataError, FormulaError, MemoryLimitError, SparseMixedError
from sparsemixed.cli import main as cli_main

F = "Reaction ~ Days + (Days | Subject)"


@pytest.fixture(scope="module")
def sleep():
    return sm.datasets.load("sleepstudy")


@pytest.fixture
def d(sleep):
    """A fresh deep copy of sleepstudy for the test to spoil."""
    return sleep.copy(deep=True)


@pytest.fixture(scope="module")
def sleep_fit(sleep):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.SparseMixedWarning)
        return sm.lmer(F, sleep).fit()


def assert_same_frame(after: pd.DataFrame, before: pd.DataFrame) -> None:
    assert list(after.columns) == list(before.columns)
    assert after.dtypes.equals(before.dtypes), (after.dtypes, before.dtypes)
    pd.testing.assert_frame_equal(after, before, check_exact=True, check_categorical=True)
    assert after.index.equals(before.index)
    for j in range(after.shape[1]):
        a, b = after.iloc[:, j], before.iloc[:, j]
        if isinstance(a.dtype, pd.CategoricalDtype):
            assert list(a.cat.categories) == list(b.cat.categories)


@contextlib.contextmanager
def unchanged(*frames):
    """The frames are the same (values, dtypes, categories, index) after the block."""
    before = [copy.deepcopy(f) for f in frames]
    yield
    for f, b in zip(frames, before):
        assert_same_frame(f, b)


@contextlib.contextmanager
def fails(exc, pattern):
    """Raises exactly ``exc`` (not a subclass, not a parent) with a message matching ``pattern``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.SparseMixedWarning)
        with pytest.raises(BaseException, match=pattern) as info:
            yield info
    assert type(info.value) is exc, f"expected {exc.__name__}, got {type(info.value).__name__}: {info.value}"


def quiet(fn, *args, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", sm.SparseMixedWarning)
        return fn(*args, **kw)


# ---------------------------------------------------------------------------------------
# non-finite and missing values
# ---------------------------------------------------------------------------------------

def test_inf_in_the_response(d):
    d.loc[7, "Reaction"] = np.inf
    with unchanged(d), fails(DataError, r"column 'Reaction' has 1 infinite value.*row label 7.*remove or recode"):
        sm.lmer(F, d)


def test_inf_in_a_fixed_effect_column(d):
    d["Days"] = d["Days"].astype(float)
    d.loc[4, "Days"] = -np.inf
    with unchanged(d), fails(DataError, r"column 'Days' has 1 infinite value.*row label 4.*remove or recode"):
        sm.lmer("Reaction ~ Days + (1 | Subject)", d)


def test_na_in_the_response_is_dropped_with_a_warning(d):
    d.loc[[3, 50], "Reaction"] = np.nan
    with unchanged(d), pytest.warns(sm.MissingDataWarning, match=r"2 of 180 rows .*'Reaction'.*dropped"):
        m = sm.lmer(F, d)
    assert m.nobs == 178 and m.n_dropped == 2


def test_na_in_the_response_with_na_action_fail(d):
    d.loc[3, "Reaction"] = np.nan
    with unchanged(d), fails(DataError, r"1 of 180 rows .*'Reaction'.*na_action='omit'"):
        sm.lmer(F, d, na_action="fail")


def test_na_in_a_covariate_is_dropped_with_a_warning(d):
    d["Days"] = d["Days"].where(d.index % 60 != 0)        # 3 missing, Int -> float
    with unchanged(d), pytest.warns(sm.MissingDataWarning, match=r"3 of 180 rows .*'Days'.*dropped"):
        m = sm.lmer(F, d)
    assert m.nobs == 177


def test_na_in_a_covariate_with_na_action_fail(d):
    d["Days"] = d["Days"].where(d.index % 60 != 0)
    with unchanged(d), fails(DataError, r"3 of 180 rows .*'Days'.*drop them or use na_action='omit'"):
        sm.lmer(F, d, na_action="fail")


def test_na_in_the_grouping_column_is_dropped_with_a_warning(d):
    d["Subject"] = d["Subject"].where(d.index % 45 != 0)
    with unchanged(d), pytest.warns(sm.MissingDataWarning, match=r"4 of 180 rows .*'Subject'.*dropped"):
        m = sm.lmer(F, d)
    assert m.nobs == 176 and m.terms[0].nlevels == 18


def test_na_in_the_grouping_column_with_na_action_fail(d):
    d["Subject"] = d["Subject"].where(d.index % 45 != 0)
    with unchanged(d), fails(DataError, r"4 of 180 rows .*'Subject'.*na_action='omit'"):
        sm.lmer(F, d, na_action="fail")


def test_unknown_na_action(d):
    # refused even when nothing is missing (it used to be accepted silently then)
    with unchanged(d), fails(DataError, r"na_action must be 'omit', 'exclude' .* or 'fail', got 'drop'"):
        sm.lmer(F, d, na_action="drop")


# ---------------------------------------------------------------------------------------
# grouping factors and random-effects terms
# ---------------------------------------------------------------------------------------

def test_grouping_factor_with_one_level_is_refused(d):
    d["site"] = "only"
    with unchanged(d), fails(DataError, r"grouping factor 'site'.*only 1 level.*at least 2.*Drop the term"):
        sm.lmer("Reaction ~ Days + (1 | site)", d)


def test_mixedlm_single_group_with_variance_components_is_legal(d):
    # statsmodels' idiom for crossed variance components: one group for all rows
    d["one"] = 1
    with unchanged(d):
        res = quiet(sm.mixedlm("Reaction ~ Days", d, groups="one", vc_formula={"Subject": "0 + C(Subject)"}).fit)
    ref = quiet(sm.lmer("Reaction ~ Days + (1 | Subject)", d).fit)
    assert res.fe_params.to_numpy() == pytest.approx(ref.beta, rel=1e-5)
    assert res.scale == pytest.approx(ref.sigma ** 2, rel=1e-5)


def test_grouping_factor_with_as_many_levels_as_rows(d):
    d["id"] = np.arange(len(d))
    with unchanged(d), fails(DataError, r"grouping factor 'id' has 180 levels for 180 observations.*"
                                        r"Drop the term or use a coarser grouping"):
        sm.lmer("Reaction ~ Days + (1 | id)", d)


def test_term_with_more_parameters_than_groups_warns(d):
    d["half"] = np.where(d.index % 2 == 0, "even", "odd")
    with unchanged(d), pytest.warns(sm.IdentifiabilityWarning,
                                    match=r"term \(Days \| half\) has 3 variance-covariance parameters.*"
                                          r"'half' has only 2 levels.*'\|\|'"):
        m = sm.lmer("Reaction ~ Days + (Days | half)", d)
    assert m.theta0.size == 3


def test_term_with_as_many_random_effects_as_observations(d):
    small = d.iloc[:20].copy()
    small["g"] = np.repeat(np.arange(10), 2).astype(str)
    small["x"] = np.linspace(0, 1, 20)
    with unchanged(small), fails(DataError, r"term \(1 \+ Days \+ x \| g\) has 30 random effects for 20 "
                                            r"observations.*Simplify the term"):
        sm.lmer("Reaction ~ 1 + (1 + Days + x | g)", small)


def test_grouping_column_with_a_number_and_its_text(d):
    # mixed types are levels by their text (as R's as.character), but 1 and "1" would merge
    g = d["Subject"].astype(str).to_numpy(dtype=object).copy()
    g[:10] = 1
    g[10:20] = "1"
    d["g"] = pd.Series(g, index=d.index, dtype=object)
    with unchanged(d), fails(DataError, r"grouping column 'g' has distinct values with the same text label; "
                                        r"convert it to strings first"):
        sm.lmer("Reaction ~ Days + (1 | g)", d)


# ---------------------------------------------------------------------------------------
# rank deficiency
# ---------------------------------------------------------------------------------------

def test_constant_fixed_effect_column_is_dropped(d):
    d["c"] = 2.5
    with unchanged(d), pytest.warns(sm.RankDeficiencyWarning, match=r"dropping 1 column\(s\): c$"):
        res = sm.lmer("Reaction ~ Days + c + (Days | Subject)", d).fit()
    assert list(res.fixef.index) == ["(Intercept)", "Days"]
    ref = quiet(sm.lmer(F, d).fit)
    assert res.beta == pytest.approx(ref.beta, rel=1e-6)


def test_perfectly_collinear_columns_drop_the_later_one(d):
    d["weeks"] = d["Days"] / 7.0
    d["both"] = d["Days"] + 3.0
    with unchanged(d), pytest.warns(sm.RankDeficiencyWarning, match=r"dropping 2 column\(s\): weeks, both"):
        res = sm.lmer("Reaction ~ Days + weeks + both + (1 | Subject)", d).fit()
    assert list(res.fixef.index) == ["(Intercept)", "Days"]
    assert np.isfinite(res.objective)


# ---------------------------------------------------------------------------------------
# column types
# ---------------------------------------------------------------------------------------

def test_strings_mixed_into_a_numeric_covariate(d):
    days = d["Days"].astype(object).to_numpy().copy()
    days[[3, 5, 7]] = ["3.1", "n/a", "x"]               # e.g. a hand-edited column
    d["Days"] = pd.Series(days, index=d.index, dtype=object)
    with unchanged(d), fails(DataError, r"column 'Days' is used as a covariate but mixes numbers with other "
                                        r"values: 3 of 180 values are not numbers \('3\.1', 'n/a', 'x'; first at "
                                        r"row label 3\).*pd\.to_numeric.*astype\(str\)\.astype\('category'\)"):
        sm.lmer("Reaction ~ Days + (1 | Subject)", d)


def _stray_text_days(d):
    """What read_csv gives for a numeric column with stray entries: strings throughout."""
    days = d["Days"].astype(str).to_numpy(dtype=object).copy()
    days[[5, 7]] = ["n/a", "x"]
    d["Days"] = pd.Series(days, index=d.index, dtype="str")
    return d


def test_text_column_of_numbers_with_a_few_strings_in_a_slope(d):
    d = _stray_text_days(d)
    with unchanged(d), fails(DataError, r"column 'Days' is used as a covariate but holds text that mostly reads "
                                        r"as numbers.*2 of 180 values are not numbers \('n/a', 'x'; first at row "
                                        r"label 5\).*meant as a factor"):
        sm.lmer("Reaction ~ 1 + (Days | Subject)", d)


def test_object_column_of_numbers_is_a_numeric_covariate(d, sleep_fit):
    # used to be encoded by formulaic as a 10-level factor: a silently different model
    d["Days"] = d["Days"].astype(object)
    with unchanged(d):
        res = quiet(sm.lmer(F, d).fit)
    assert list(res.fixef.index) == ["(Intercept)", "Days"]
    assert res.beta == pytest.approx(sleep_fit.beta, rel=1e-6)


def test_mixedlm_text_column_of_numbers_with_a_few_strings(d):
    d = _stray_text_days(d)
    with unchanged(d), fails(DataError, r"column 'Days' is used as a covariate"):
        sm.mixedlm("Reaction ~ Days", d, groups="Subject")


def test_streamed_text_column_of_numbers_with_a_few_strings(d):
    d = _stray_text_days(d)
    with unchanged(d), fails(DataError, r"column 'Days' is used as a covariate"):
        sm.lmer("Reaction ~ Days + (1 | Subject)", [d.iloc[:90], d.iloc[90:]])


def test_text_column_of_numbers_only_is_a_factor(d):
    # R's character columns: labels, even when they look like numbers
    d["Days"] = d["Days"].astype(str)
    with unchanged(d):
        m = quiet(sm.lmer, "Reaction ~ Days + (1 | Subject)", d)
    assert m.fixef_names == ["(Intercept)"] + [f"Days{k}" for k in range(1, 10)]


def test_text_covariate_wrapped_in_C_is_a_factor(d):
    d = _stray_text_days(d)
    with unchanged(d):
        m = quiet(sm.lmer, "Reaction ~ C(Days) + (1 | Subject)", d)
    assert len(m.fixef_names) == 12                     # 10 days + 'n/a' + 'x', one level is the intercept


def test_datetime_covariate(d):
    d["when"] = pd.Timestamp("2024-03-01") + pd.to_timedelta(d["Days"], unit="D")
    with unchanged(d), fails(DataError, r"column 'when' has dtype datetime64.*must be numeric.*\.dt\.days"):
        sm.lmer("Reaction ~ when + (1 | Subject)", d)


def test_complex_covariate(d):
    # formulaic would drop the imaginary part with only a ComplexWarning
    d["cx"] = d["Days"] + 1j
    with unchanged(d), fails(DataError, r"column 'cx' is complex.*\.real"):
        sm.lmer("Reaction ~ cx + (1 | Subject)", d)


@pytest.mark.parametrize("dtype", ["bool", "boolean"])
def test_boolean_response(d, dtype):
    """numpy bool and pandas' nullable boolean (with a missing value) alike: not fitted as 0/1."""
    d["slow"] = (d["Reaction"] > 300).astype(dtype)
    if dtype == "boolean":
        d.loc[3, "slow"] = pd.NA
    with unchanged(d), fails(DataError, rf"the response 'slow' is logical \(dtype {dtype}\).*"
                                        r"glmer\(\.\.\., family='binomial'\).*astype\(float\)"):
        sm.lmer("slow ~ Days + (1 | Subject)", d)


def test_categorical_response(d):
    d["speed"] = pd.Categorical(np.where(d["Reaction"] > 300, "slow", "fast"))
    with unchanged(d), fails(DataError, r"the response 'speed' has dtype category.*glmer"):
        sm.lmer("speed ~ Days + (1 | Subject)", d)


def test_string_response(d):
    d["Reaction"] = d["Reaction"].round(1).astype(str)
    with unchanged(d), fails(DataError, r"the response 'Reaction' has dtype (str|object).*astype\(float\)"):
        sm.lmer(F, d)


# ---------------------------------------------------------------------------------------
# frames and names
# ---------------------------------------------------------------------------------------

def test_empty_data_frame(d):
    empty = d.iloc[:0].copy()
    with unchanged(empty), fails(DataError, r"the data have no rows"):
        sm.lmer(F, empty)


def test_unknown_column_in_the_fixed_part(d):
    with unchanged(d), fails(DataError, r"column\(s\) 'Dayz' \(did you mean 'Days'\?\) not found.*"
                                        r"available columns: Reaction, Days, Subject"):
        sm.lmer("Reaction ~ Dayz + (Days | Subject)", d)


def test_unknown_grouping_column(d):
    with unchanged(d), fails(DataError, r"column\(s\) 'Subjects' \(did you mean 'Subject'\?\) not found"):
        sm.lmer("Reaction ~ Days + (Days | Subjects)", d)


def test_unknown_column_in_a_random_effects_expression(d):
    with unchanged(d), fails(DataError, r"column\(s\) 'days' \(did you mean 'Days'\?\) not found"):
        sm.lmer("Reaction ~ Days + (days | Subject)", d)


def test_duplicated_column_names(d):
    dup = pd.concat([d, d[["Days"]]], axis=1)
    with unchanged(dup), fails(DataError, r"duplicated column names \['Days'\]; rename them"):
        sm.lmer(F, dup)


# ---------------------------------------------------------------------------------------
# formula typos
# ---------------------------------------------------------------------------------------

def test_unclosed_parenthesis(d):
    with unchanged(d), fails(FormulaError, r"unbalanced parentheses.*1 '\(' not closed"):
        sm.lmer("Reaction ~ Days + (Days | Subject", d)


def test_unopened_parenthesis(d):
    with unchanged(d), fails(FormulaError, r"unbalanced parentheses.*a '\)' has no matching '\('"):
        sm.lmer("Reaction ~ Days + (Days | Subject))", d)


def test_bar_outside_parentheses(d):
    with unchanged(d), fails(FormulaError, r"'\|' outside parentheses in 'Days \| Subject'.*e\.g\. '\(1 \| g\)'"):
        sm.lmer("Reaction ~ Days + Days | Subject", d)


def test_empty_bar_term_expression(d):
    with unchanged(d), fails(FormulaError, r"empty side in random-effects term '\( \| Subject\)'.*'\(1 \| subject\)'"):
        sm.lmer("Reaction ~ Days + ( | Subject)", d)


def test_empty_bar_term_grouping(d):
    with unchanged(d), fails(FormulaError, r"empty side in random-effects term '\(Days \| \)'.*'\(expr \| group\)'"):
        sm.lmer("Reaction ~ Days + (Days | )", d)


def test_missing_tilde(d):
    with unchanged(d), fails(FormulaError, r"must have the form 'response ~ terms'"):
        sm.lmer("Reaction + Days + (Days | Subject)", d)


def test_two_tildes(d):
    with unchanged(d), fails(FormulaError, r"with one '~' outside parentheses"):
        sm.lmer("Reaction ~ Days ~ (Days | Subject)", d)


def test_two_bars_in_one_term(d):
    # '(a | b || c)' reached formulaic as a two-part formula: AttributeError before the fix
    with unchanged(d), fails(FormulaError, r"'\(Days \| Subject \|\| Days\)'.*exactly one '\|' or '\|\|'"):
        sm.lmer("Reaction ~ Days + (Days | Subject || Days)", d)


def test_tilde_inside_a_bar_term(d):
    with unchanged(d), fails(FormulaError, r"'~' inside the random-effects term '\(Reaction ~ Days \| Subject\)'"):
        sm.lmer("Reaction ~ Days + (Reaction ~ Days | Subject)", d)


def test_formula_not_a_string(d):
    with unchanged(d), fails(FormulaError, r"the formula must be a string such as 'y ~ x \+ \(1 \| g\)'"):
        sm.lmer(None, d)


def test_formula_without_random_effects(d):
    with unchanged(d), fails(SparseMixedError, r"no random-effects term such as '\(1 \| g\)'"):
        sm.lmer("Reaction ~ Days", d)


# ---------------------------------------------------------------------------------------
# weights and offset
# ---------------------------------------------------------------------------------------

def test_negative_weights(d):
    w = np.ones(len(d))
    w[[2, 9]] = [-1.0, 0.0]
    with unchanged(d), fails(DataError, r"weights must be finite and positive; 2 are not \(-1\.0, 0\.0; first "
                                        r"at row label 2\)\. Drop rows with weight 0"):
        sm.lmer(F, d, weights=w)


def test_na_weights_drop_the_row_with_a_warning(d):
    d["w"] = 1.0
    d.loc[11, "w"] = np.nan
    with unchanged(d), pytest.warns(sm.MissingDataWarning, match=r"1 of 180 rows .*'weights'.*dropped"):
        m = sm.lmer(F, d, weights="w")
    assert m.nobs == 179


def test_weights_of_the_wrong_length(d):
    with unchanged(d), fails(DataError, r"weights has length 179 but the data have 180 rows"):
        sm.lmer(F, d, weights=np.ones(179))


def test_non_numeric_weights_column(d):
    d["w"] = "heavy"
    with unchanged(d), fails(DataError, r"weights must be numeric"):
        sm.lmer(F, d, weights="w")


def test_weights_series_is_aligned_by_label(d):
    w = pd.Series(np.linspace(0.5, 2.0, len(d)), index=d.index)
    shuffled = w.sample(frac=1.0, random_state=3)
    with unchanged(d):
        m1, m2 = sm.lmer(F, d, weights=w), sm.lmer(F, d, weights=shuffled)
    theta = np.array([0.9, 0.1, 0.2])
    assert m2.objective(theta) == pytest.approx(m1.objective(theta), rel=1e-12)


def test_weights_series_with_foreign_index(d):
    w = pd.Series(np.ones(len(d)), index=np.arange(len(d)) + 1000)
    with unchanged(d), fails(DataError, r"weights is a Series whose index does not match the data's row labels; "
                                        r"pass weights\.to_numpy\(\) .* weights\.reindex\(data\.index\)"):
        sm.lmer(F, d, weights=w)


def test_offset_of_the_wrong_length(d):
    with unchanged(d), fails(DataError, r"offset has length 181 but the data have 180 rows"):
        sm.lmer(F, d, offset=np.zeros(181))


def test_infinite_offset(d):
    d["off"] = 0.0
    d.loc[6, "off"] = np.inf
    with unchanged(d), fails(DataError, r"offset has 1 infinite value\(s\) \(first at row label 6\); remove"):
        sm.lmer(F, d, offset="off")


# ---------------------------------------------------------------------------------------
# predict(newdata)
# ---------------------------------------------------------------------------------------

def test_predict_newdata_missing_a_column(d, sleep_fit):
    nd = d.drop(columns="Days")
    with unchanged(nd), fails(DataError, r"newdata lacks column\(s\) 'Days' used by the fixed effects.*add them"):
        sleep_fit.predict(nd)


def test_predict_newdata_with_an_unseen_fixed_effect_level():
    s2 = sm.datasets.load("sleepstudy2")
    res = quiet(sm.lmer("Reaction ~ Days + phase + (1 | Subject)", s2).fit)
    nd = s2.head(6).copy()
    nd["phase"] = ["early", "late", "middle", "early", "late", "early"]
    with unchanged(nd), fails(DataError, r"column 'phase' of newdata has level\(s\) 'middle' not seen in the fit "
                                         r"\(levels: early, late\).*drop those rows or recode"):
        res.predict(nd)


def test_predict_newdata_with_a_numeric_column_as_text(d, sleep_fit):
    # the fit's numeric covariate given as text/objects: read as numbers (formulaic would
    # refuse with FactorEncodingError); stray text is a DataError naming it
    as_text = d.assign(Days=d["Days"].astype(str))
    with unchanged(as_text):
        p = sleep_fit.predict(as_text)
    np.testing.assert_array_equal(p.to_numpy(), sleep_fit.predict(d).to_numpy())
    bad = as_text.assign(Days=as_text["Days"].where(as_text.index != 4, "four"))
    with unchanged(bad), fails(DataError, r"column 'Days' of newdata has value\(s\) 'four' that are not numbers "
                                          r"\(first at row label 4\); the fit used 'Days' as a numeric covariate"):
        sleep_fit.predict(bad)


def test_predict_newdata_with_an_unseen_grouping_level(d, sleep_fit):
    nd = d.head(4).copy()
    nd["Subject"] = ["308", "999", "309", "998"]
    with unchanged(nd), fails(DataError, r"level\(s\) '999', '998' of grouping factor 'Subject' not seen in the "
                                         r"fit; pass allow_new_levels=True"):
        sleep_fit.predict(nd)
    with unchanged(nd):
        p = sleep_fit.predict(nd, allow_new_levels=True)
    population = sleep_fit.beta[0] + sleep_fit.beta[1] * nd["Days"].to_numpy()
    assert p.iloc[1] == pytest.approx(population[1]) and p.iloc[3] == pytest.approx(population[3])
    assert p.iloc[0] != pytest.approx(population[0])


# ---------------------------------------------------------------------------------------
# size, theta, optimizer
# ---------------------------------------------------------------------------------------

def test_factor_that_does_not_fit_in_memory():
    ie = sm.datasets.load("InstEval")
    with unchanged(ie), fails(MemoryLimitError, r"q = 4,128 random effects.*more than the memory limit of "
                                                r"1 MiB\. Options: raise memory_limit="):
        sm.lmer("y ~ service + (1 | s) + (1 | d) + (1 | dept:service)", ie, memory_limit="1MB")


def test_theta_of_the_wrong_length(sleep_fit):
    with fails(SparseMixedError, r"theta must have 3 elements, got 2"):
        sleep_fit.model.objective([1.0, 0.0])


def test_non_finite_theta(sleep_fit):
    with fails(SparseMixedError, r"theta must be finite"):
        sleep_fit.model.objective([1.0, np.nan, 1.0])
    with fails(SparseMixedError, r"theta must be finite"):
        sleep_fit.model.objective([1.0, 0.0, np.inf])


def test_non_numeric_theta(sleep_fit):
    with fails(SparseMixedError, r"theta"):
        sleep_fit.model.objective(["a", 0.0, 1.0])


def test_unknown_optimizer(sleep_fit):
    with fails(SparseMixedError, r"optimizer must be one of \('bobyqa', 'newuoa', 'nelder_mead', 'lbfgsb', 'scoring'\), "
                                 r"got 'bfgs'"):
        sleep_fit.model.fit(optimizer="bfgs")


def test_unreadable_memory_limit(d):
    with fails(SparseMixedError, r"memory_limit"):
        sm.lmer(F, d, memory_limit="lots")


def test_non_boolean_REML(d):
    with fails(SparseMixedError, r"REML"):
        sm.lmer(F, d, REML="no")


# ---------------------------------------------------------------------------------------
# statsmodels interface and command line
# ---------------------------------------------------------------------------------------

def test_mixedlm_without_groups(d):
    # a missing required argument: ArgumentError, a TypeError as Python gives (statsmodels: AttributeError)
    assert issubclass(sm.ArgumentError, TypeError)
    with unchanged(d), fails(sm.ArgumentError, r"'groups' is a required keyword argument in MixedLM\.from_formula"):
        sm.mixedlm("Reaction ~ Days", d)


def test_mixedlm_unknown_groups_column(d):
    with unchanged(d), fails(DataError, r"groups column 'Subjects' is not in the data"):
        sm.mixedlm("Reaction ~ Days", d, groups="Subjects")


def test_cli_missing_file(tmp_path, capsys):
    assert cli_main(["fit", str(tmp_path / "nothere.csv"), F]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sparsemixed: error: no such file or bundled data set") and "Traceback" not in err


def test_cli_malformed_file(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text('Reaction,Days,Subject\n1,2,3,4,5\n"unterminated\n')
    assert cli_main(["fit", str(bad), F]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sparsemixed: error: cannot read") and "Traceback" not in err
