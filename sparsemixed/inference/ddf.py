"""(placeholder: methods of LmerResult are added here)"""
from __future__ import annotations


class DdfMixin:
    """Methods mixed into LmerResult."""
