"""(placeholder: methods of LmerResult are added here)"""
from __future__ import annotations


class PredictMixin:
    """Methods mixed into LmerResult."""
