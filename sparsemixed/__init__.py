"""sparsemixed: linear mixed models with crossed and nested random effects at scale.

Every module, in pipeline order (docs/architecture.md draws the pipeline):

Entry points
    api                        lmer(formula, data, ...) -> LinearMixedModel
    cli, __main__              the command line: sparsemixed fit / datasets (python -m sparsemixed)
    demo                       python -m sparsemixed.demo: fit sleepstudy and InstEval
    datasets                   the bundled lme4 data sets: names, load, describe
    errors                     error and warning types
    progress                   progress bars on stderr, only when asked (verbose=True)

Data -> terms
    formula                    lme4 formulas: bar terms apart from the fixed part
    formula.bars               (expr | g), (expr || g), g1:g2, g1/g2 -> random-effects terms
    formula.design             data -> y, X (formulaic), per-term model matrices and codes; NA policy
    formula.fast               the same without formulaic for the common shapes (identical results)
    formula.names              column names read as R reads them (dots, backticks, Q(), function names)
    terms                      random-effects terms, grouping factors, covariance factors
    terms.grouping             a grouping factor: row -> level codes
    terms.random_term          one term (expr | g) and its block of Z
    terms.covariance           a term's relative covariance factor T (Sigma_k = sigma^2 T T')
    io                         the same from files, chunks, pyarrow or Dask, in bounded memory
    io.sources                 row sources read in chunks (CSV, Parquet, frames, callables)
    io.levels                  pass 1: the levels every chunk must agree on
    io.encode                  pass 2: one chunk -> its rows of y, X and Z
    io.partial                 partial cross-products, summed chunk by chunk or in a tree
    io.dask_runner             both passes as tree reductions over dask partitions
    io.streaming               lmer on a streamed source: the two passes
    io.streamed_model          the model from summed cross-products (no rows kept)

Terms -> cross-products -> model
    crossprod                  one pass: Z'WZ, Z'WX, Z'Wy, X'WX, X'Wy, y'Wy
    assemble                   constructor inputs: Source, FixedEffects (OLS shift), ModelParts
    degenerate                 responses with nothing to fit or out of range, refused from the cross-products
    design                     the cached row-level Design (y, X, Z, offset, weights); StreamedDataError
    relcov                     theta -> Lambda, M = Lambda'Z'WZ Lambda + I (scatter-add)
    start                      starting theta: lme4's or moment estimates, EM steps; theta's scale
    model                      LinearMixedModel: objective(theta) = engine.criterion(pls(theta))
    sparse_x                   when X is sparse enough for the sparse-X engine

Factor
    linalg                     linear algebra of the profiled criterion
    linalg.factor              the Factor protocol; FactorPool and Lease (a workspace per state)
    linalg.symbolic            a factor's size before it exists (memory guard)
    linalg.select              blocked factor or CHOLMOD ordering, chosen once, deterministically
    linalg.cholesky            SparseCholesky: CHOLMOD, analysed once
    linalg.blocked             BlockedCholesky: first term eliminated, dense Schur complement
    linalg.dense               tiled dense Cholesky of the Schur block on Python threads
    linalg.dense_cholesky      DenseCholesky: a dense factor of M (small q) behind the protocol
    linalg.threads             BLAS thread limits counted process-wide; serial kernel twins
    linalg.jit                 njit with a kernel cache any user of any installation can read
    precompile                 python -m sparsemixed.precompile: the kernels compiled at install
    linalg.rank                fixed-effects rank check for a sparse X (R's rule)

Objective (the Engine protocol)
    engine                     the Engine protocol and make_engine
    engine.dense               DenseEngine: R_ZX and R_X formed
    engine.small               SmallEngine: one dense factor of the augmented system (small q)
    engine.sparse_x            SparseXEngine: [u; beta] from one sparse factor of Maug
    engine.reweight            new weights or response on the analysed pattern (values only)
    linalg.pls                 penalized least squares at theta (dense X)
    linalg.augmented           the sparse-X system Maug, its solve, criterion and gradient
    objective                  profiled ML deviance / REML criterion
    gradient                   its analytic gradient (selected inverse)
    information                its average-information Hessian (solves only): the scoring steps

Optimizer
    fitting                    the fit policy: FitControl, choose_optimizer, fit, restarts
    optimize                   BOBYQA, NEWUOA, Nelder-Mead, L-BFGS-B and scoring adapters; OptSummary
    diagnostics                convergence check, singular fits, predictor scales
    recentre                   slopes on covariates far from 0: fitted centred, mapped back exactly
    numdiff                    finite-difference Hessians from analytic gradients

Result
    results                    fitted-model results
    results.lmer_result        LmerResult: fixef, vcov, varcorr, ranef, summary, getME
    results.sparse_x_result    SparseXLmerResult: the same on the sparse-X engine
    results.varcorr            variance components (VarCorr)
    results.display            lme4-style text summary
    results.export             to_dict (JSON-ready), to_frame (tidy), HTML, publication tables (table)

Inference
    inference                  inference after the fit
    inference.blup             conditional modes and their variances (ranef_frame)
    inference.condvar          conditional variances from a selected inverse of M
    inference.varpar           sampling covariance of (sigma, theta): vcov_varpar
    inference.predict          predict(newdata), lme4's predict.merMod
    inference.simulate         simulate, parametric bootstrap, bootstrap intervals
    inference.ddf              t and F tests of the fixed effects (lmerTest)
    inference.satterthwaite    Satterthwaite's denominator degrees of freedom
    inference.kenward_roger    Kenward-Roger covariance and degrees of freedom
    inference.compare          anova(m0, m1, ...) likelihood-ratio tests, Nakagawa's R^2
    inference.vartests         variance-component tests (boundary LRT, one-way ANOVA)
    inference.ranova           ranova (LRT per random term) and drop1 (lmerTest, lme4)
    inference.update           update(formula): R's formula algebra and refits
    inference.emmeans          estimated marginal means and contrasts (R's emmeans); emm_* its parts
    inference.profile          profile likelihood and confint(method="profile")
    inference.profile.core     lme4's profile(): the zeta traces
    inference.profile.points   one profiled point: ML deviance minimised over the others
    inference.profile.argmin   bounded minimisation of one profiled point
    inference.profile.scale    lme4's profile scale for the variance parameters

The statsmodels interface and output
    mixedlm                    MixedLM, MixedLMParams, mixedlm on the same engine
    mixedlm.formula            MixedLM.from_formula (formulaic)
    mixedlm.model              MixedLM: statsmodels' packing, loglike, score, Hessian
    mixedlm.params             MixedLMParams and its packings
    mixedlm.results            MixedLMResults
    mixedlm.summary            statsmodels-style text summary
    plots                      figures (the optional matplotlib extra)
"""
import os as _os

# shorter GNU OpenMP spin: idle numba threads leave the core to the dense Cholesky (user's value kept)
# measured: benchmarks/results/2026-12-05-vm-b.md -> vm-d.md (benchmarks/README.md); linalg/threads.py
_os.environ.setdefault("GOMP_SPINCOUNT", "50000")

from . import datasets
from .api import lmer
from .inference.compare import anova
from .inference.emmeans import contrast, emmeans
from .inference.vartests import lrt_variance, oneway_anova
from .errors import (ArgumentError, ConvergenceWarning, CostWarning, ScaleWarning, SingularFitWarning, DataError, FormulaError, MemoryLimitError,
                     IdentifiabilityWarning, MissingDataWarning, NumericalError, RankDeficiencyWarning,
                     SparseMixedError,
                     SparseMixedWarning)
from .mixedlm import MixedLM, MixedLMParams, MixedLMResults, mixedlm
from .model import LinearMixedModel
from .fitting import FitControl
from .glmm import GeneralizedLinearMixedModel, glmer
from . import families
from .optimize import BoundaryRules, OptSummary, ScoringRules
from .results import LmerResult
from .results.export import table

__version__ = "0.1.0"

__all__ = [
    "lmer", "glmer", "GeneralizedLinearMixedModel", "families", "anova", "emmeans", "contrast", "table", "lrt_variance", "oneway_anova", "LinearMixedModel", "LmerResult", "OptSummary", "FitControl",
    "BoundaryRules", "ScoringRules", "datasets",
    "MixedLM", "MixedLMParams", "MixedLMResults", "mixedlm",
    "SparseMixedError", "ArgumentError", "FormulaError", "DataError", "NumericalError", "MemoryLimitError",
    "SparseMixedWarning", "ConvergenceWarning", "MissingDataWarning", "RankDeficiencyWarning",
    "IdentifiabilityWarning", "SingularFitWarning", "ScaleWarning", "CostWarning",
]
