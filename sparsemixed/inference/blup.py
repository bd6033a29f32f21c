"""(placeholder: methods of LmerResult are added here)"""
from __future__ import annotations


class BlupMixin:
    """Methods mixed into LmerResult."""
