"""sparsemixed: linear mixed models with crossed and nested random effects at scale.

Pipeline (one module per step):
    formula.bars      lme4 formula -> fixed part + random-effects terms
    formula.design    data -> y, X (formulaic), per-term model matrices and codes
    terms             grouping factors, random-effects terms, covariance factors
    crossprod         one pass: Z'Z, Z'X, Z'y, X'X, X'y, y'y
    relcov            theta -> Lambda, M = Lambda'Z'Z Lambda + I
    io                the same from files, chunks or Dask, in bounded memory
    linalg.symbolic   the factor's size before it exists (memory guard)
    linalg.select     blocked Schur factor or CHOLMOD ordering, chosen once
    linalg.cholesky   CHOLMOD sparse Cholesky, analysed once
    linalg.blocked    first term eliminated, dense Schur complement (LAPACK)
    linalg.pls        penalized least squares at theta
    linalg.augmented  sparse X: [u; beta] from one sparse factor of Maug (sparse_x: when)
    linalg.rank       fixed-effects rank check (R's rule) for a sparse X
    objective         profiled ML deviance / REML criterion
    gradient          its analytic gradient (selected inverse)
    optimize          optimizer and OptSummary
    model             LinearMixedModel: objective(theta), gradient(theta), fit()
    diagnostics       singular fits, scaled gradient, predictor scales
    results           LmerResult: fixef, vcov, varcorr, ranef, summary, vcov_varpar
    inference         BLUP variances, predict/simulate/bootstrap, confint, profile,
                      anova and LRTs, Satterthwaite / Kenward-Roger
    mixedlm           statsmodels' MixedLM interface (params packing, score, Hessian)
    plots, cli        figures (matplotlib extra) and the command line
"""
import os as _os

# shorter GNU OpenMP spin: idle numba threads leave the core to the dense Cholesky (user's value kept)
# measured: benchmarks/results/2026-12-05-vm-b.md -> vm-d.md (benchmarks/README.md); linalg/threads.py
_os.environ.setdefault("GOMP_SPINCOUNT", "50000")

from . import datasets
from .api import lmer
from .inference.compare import anova
from .inference.vartests import lrt_variance, oneway_anova
from .errors import (ArgumentError, ConvergenceWarning, CostWarning, ScaleWarning, SingularFitWarning, DataError, FormulaError, MemoryLimitError,
                     IdentifiabilityWarning, MissingDataWarning, NumericalError, RankDeficiencyWarning,
                     SparseMixedError,
                     SparseMixedWarning)
from .mixedlm import MixedLM, MixedLMParams, MixedLMResults, mixedlm
from .model import LinearMixedModel
from .optimize import OptSummary
from .results import LmerResult

__version__ = "0.1.0"

__all__ = [
    "lmer", "anova", "lrt_variance", "oneway_anova", "LinearMixedModel", "LmerResult", "OptSummary", "datasets",
    "MixedLM", "MixedLMParams", "MixedLMResults", "mixedlm",
    "SparseMixedError", "ArgumentError", "FormulaError", "DataError", "NumericalError", "MemoryLimitError",
    "SparseMixedWarning", "ConvergenceWarning", "MissingDataWarning", "RankDeficiencyWarning",
    "IdentifiabilityWarning", "SingularFitWarning", "ScaleWarning", "CostWarning",
]
