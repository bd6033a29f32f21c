import json
import pathlib

import os

import pytest
from hypothesis import settings

# CI runs a fixed, derandomized set of examples (reproducible); locally hypothesis explores.
settings.register_profile("ci", derandomize=True, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

import sparsemixed as sm

REF = pathlib.Path(__file__).parent / "reference"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "expect_warnings((categories,)): warnings of these categories are expected in this test "
        "(data-dependent ones, e.g. singular fits of random data); any other warning fails it")


@pytest.fixture(autouse=True)
def _every_warning_is_expected(request):
    """Each warning a test raises is asserted (pytest.warns, or a recording context in the
    test) or declared with ``@pytest.mark.expect_warnings((Category,))``; any other fails the
    test, so the suite's output has no unexplained warnings (issue 19)."""
    import warnings

    # expect_warnings((A, B)): a tuple (a lone class would be taken for the decorated function)
    allowed = tuple(c for m in request.node.iter_markers("expect_warnings") for a in m.args
                    for c in (a if isinstance(a, tuple) else (a,)))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        yield
    stray = [w for w in seen if not (allowed and issubclass(w.category, allowed))]
    if stray:
        shown = "\n".join(f"  {w.category.__name__} ({w.filename}:{w.lineno}): {str(w.message)[:200]}"
                          for w in stray[:5])
        pytest.fail(f"{len(stray)} unexpected warning(s); assert them (pytest.warns) or declare them "
                    f"(@pytest.mark.expect_warnings((Category,))):\n{shown}", pytrace=False)


@pytest.fixture(scope="session")
def lme4_ref():
    return json.loads((REF / "lme4_results.json").read_text())


_FITS = {}
_FIT_WARNINGS = {}


def fit_reference(name, ref):
    """Fit each reference model once per session (as MixedModels.jl's tests do).  The fit's
    singular-fit warning is kept (``fit_warnings``) rather than raised into whichever test
    fits the model first; any other warning is raised there."""
    import warnings

    from sparsemixed.errors import SingularFitWarning

    if name not in _FITS:
        r = ref[name]
        model = sm.lmer(r["formula"], sm.datasets.load(r["data"]), REML=r["reml"])
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            _FITS[name] = model.fit()
        _FIT_WARNINGS[name] = [w.category for w in seen]
        for w in seen:
            if not issubclass(w.category, SingularFitWarning):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return _FITS[name]


def fit_warnings(name) -> list:
    """The warning categories of fit_reference(name)'s fit."""
    return _FIT_WARNINGS[name]
