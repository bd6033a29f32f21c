"""Error and warning types raised by sparsemixed.

Every error a user can trigger with bad input derives from :class:`SparseMixedError`
(itself a ``ValueError``), so scripts can catch one type; the message names the
column, level or term at fault and says what to do.
"""


class SparseMixedError(ValueError):
    """Base class of all input errors raised by sparsemixed."""


class ArgumentError(SparseMixedError, TypeError):
    """A call is missing a required keyword argument or got one it does not take (also a
    ``TypeError``, as Python's own error for such a call)."""


class FormulaError(SparseMixedError):
    """The model formula cannot be parsed or refers to something that does not exist."""


class DataError(SparseMixedError):
    """The data do not fit the model: missing columns, wrong types, too few levels..."""


class NumericalError(SparseMixedError):
    """A numerical step failed (for example a factor that is not positive definite)."""


class MemoryLimitError(SparseMixedError, MemoryError):
    """The sparse factor of the model would not fit in the memory allowed."""


class SparseMixedWarning(UserWarning):
    """Base class of sparsemixed's warnings."""


class ConvergenceWarning(SparseMixedWarning):
    """The optimizer stopped without meeting its convergence criteria."""


class MissingDataWarning(SparseMixedWarning):
    """Rows with missing values were dropped."""


class RankDeficiencyWarning(SparseMixedWarning):
    """Aliased fixed-effect columns were dropped."""


class IdentifiabilityWarning(SparseMixedWarning):
    """A random-effects term has more variance-covariance parameters than its grouping
    factor has levels: not all of them can be estimated (expect a singular fit)."""


class SingularFitWarning(SparseMixedWarning):
    """A variance is estimated at 0 or a correlation at +-1 (lme4's singular fit)."""


class ScaleWarning(SparseMixedWarning):
    """Fixed-effect predictors on very different scales."""


class CostWarning(SparseMixedWarning):
    """The factorization chosen for the model is estimated to take very long per evaluation
    of the criterion (it fits in memory, but a fit would take hours)."""
