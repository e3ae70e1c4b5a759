"""Diagnose: add probes to live Python functions, and take them away again."""

from __future__ import annotations

from ._spec import validate_spec
from .exceptions import ExpressionRefused, ProbeError, SpecError

__all__ = ("ExpressionRefused", "ProbeError", "SpecError", "validate_spec")
