"""Formula handling: split lme4 bar terms from the fixed part, encode the fixed part."""
from .bars import BarTerm, ParsedFormula, parse_formula

__all__ = ["BarTerm", "ParsedFormula", "parse_formula"]
