"""The statsmodels-compatible interface: ``MixedLM``, ``MixedLMParams``, ``mixedlm``.

Code written for ``statsmodels.regression.mixed_linear_model.MixedLM`` (or
``statsmodels.formula.api.mixedlm``) runs on the sparse engine by changing the import.
"""
from .model import MixedLM, VCSpec
from .params import MixedLMParams
from .results import MixedLMResults


def mixedlm(formula, data, re_formula=None, vc_formula=None, subset=None, use_sparse=False,
            missing="none", *args, **kwargs):
    """``statsmodels.formula.api.mixedlm``: ``MixedLM.from_formula`` (``groups=`` required)."""
    return MixedLM.from_formula(formula, data, re_formula, vc_formula, subset, use_sparse, missing,
                                *args, **kwargs)


__all__ = ["MixedLM", "MixedLMParams", "MixedLMResults", "VCSpec", "mixedlm"]
