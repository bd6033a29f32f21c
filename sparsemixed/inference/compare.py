"""(placeholder: methods of LmerResult are added here)"""
from __future__ import annotations


class CompareMixin:
    """Methods mixed into LmerResult."""
