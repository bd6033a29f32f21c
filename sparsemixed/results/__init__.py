"""Fitted-model results: LmerResult, the VarCorr table, display."""
from .lmer_result import LmerResult

__all__ = ["LmerResult"]
