"""Generalized linear mixed models (binomial, Poisson) on the linear model's engine.

    glmm.response   the response as glmer reads it: cbind(), factors, weights, offsets; y | u
    glmm.weighted   Z'WZ on the analysed pattern for new weights: one compiled pass
    glmm.weighted_sparse   the same with a sparse X: Z'WX, X'WX on their structural patterns
    glmm.pirls      PIRLS to the conditional mode; the Laplace deviance
    glmm.agq        adaptive Gauss-Hermite quadrature (one scalar random-effects term)
    glmm.model      GeneralizedLinearMixedModel: objective(theta) / objective([theta, beta])
    glmm.fit        glmer's two stages (nAGQ = 0, then theta and beta jointly)
    glmm.hessian    finite-difference Hessian of the deviance (glmer's default vcov)
    glmm.result     GlmerResult: fixef, vcov, varcorr, ranef, loglik, residuals, summary
    glmm.display    glmer's summary layout
    glmm.predict    predict(newdata, type, re_form, allow_new_levels)
    glmm.simulate   simulate, the parametric bootstrap (refits on a copy with a new response), confint
    glmm.compare    anova: likelihood-ratio tests between glmer fits
    glmm.export     to_dict, to_frame, the HTML summary
"""
from __future__ import annotations

from .model import GeneralizedLinearMixedModel


def glmer(formula: str, data, family="binomial", nAGQ: int = 1, weights=None, offset=None,
          na_action: str = "omit", ordering: str = "auto", memory_limit=None,
          sparse_X="auto") -> GeneralizedLinearMixedModel:
    """Build (not fit) a generalized linear mixed model from an lme4 formula; ``.fit()`` it.

    Parameters
    ----------
    formula : lme4 syntax: ``"acc ~ cond + (1 | subj) + (1 | item)"``; a binomial response
        may be 0/1, logical, a two-level factor (the first level a failure),
        ``cbind(successes, failures)``, or a proportion with ``weights=`` the trials;
        ``offset(log(t))`` terms are allowed.
    data : a pandas DataFrame (never modified); a Dask DataFrame (the rows stay on the
        workers: glmm/dask.py); or a CSV or Parquet file or directory (``sparsemixed.io``
        sources too), whose columns the formula names are read into memory once
        (:func:`~sparsemixed.glmm.model.read_source`).
    family : ``"binomial"`` (logit link), ``"poisson"`` (log link), an R-style string such as
        ``"binomial(link = 'probit')"``, or a family object
        (``sparsemixed.families.Binomial(link="cloglog")``).  Families with a dispersion
        parameter (Gamma, inverse Gaussian, negative binomial) are refused; Gaussian: use
        :func:`sparsemixed.lmer`.
    nAGQ : 1 (default) Laplace over theta and beta (glmm/fit.py); 0 glmer's first stage,
        beta inside PIRLS (faster, beta slightly different); > 1 adaptive Gauss-Hermite
        quadrature with that many nodes, for a single scalar term.
    weights : prior weights (binomial: the numbers of trials), a column name or an array.
    offset : an offset on the linear-predictor scale (column name or array), added to any
        ``offset()`` terms of the formula.
    sparse_X : ``"auto"`` (default), True or False, as for :func:`sparsemixed.lmer` (the
        "auto" rule: :mod:`sparsemixed.sparse_x`; for nAGQ >= 1 also only when the dense X
        would take more than 1 GiB, since the dense path's gradient search is much faster
        while it fits): keep X sparse (CSR) and put the fixed
        effects into the sparse factor of the augmented system, for fixed-effect factors with
        hundreds or thousands of levels (glmm/weighted_sparse.py).  In-memory data only
        (True is refused for a Dask DataFrame).  A sparse-X fit has no analytic gradient:
        it takes glmer's derivative-free two stages (BOBYQA over theta, then over theta and
        beta for nAGQ >= 1, whose cost grows quickly with p: prefer nAGQ=0 for thousands of
        fixed effects), and ``vcov()`` defaults to (R_X'R_X)^-1 at the mode
        (``use_hessian=True``: the finite-difference Hessian, O((ntheta + p)^2) deviance
        evaluations).
    """
    return GeneralizedLinearMixedModel(formula, data, family=family, weights=weights, offset=offset, nAGQ=nAGQ,
                                       na_action=na_action, ordering=ordering, memory_limit=memory_limit,
                                       sparse_X=sparse_X)


__all__ = ["glmer", "GeneralizedLinearMixedModel"]
