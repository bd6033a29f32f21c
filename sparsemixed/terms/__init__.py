"""Random-effects terms: grouping factors, per-term model matrices and their covariance factors."""
from .covariance import CovarianceFactor
from .grouping import GroupingFactor
from .random_term import RandomTerm, TermRows

__all__ = ["CovarianceFactor", "GroupingFactor", "RandomTerm", "TermRows"]
