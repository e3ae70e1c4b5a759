"""Exceptions of diagnose, in one module to avoid import loops."""

from __future__ import annotations

__all__ = ("ExpressionRefused", "ProbeError", "SpecError")


class SpecError(ValueError):
    """A spec is malformed: a field is missing, of the wrong type, or out of range."""


class ExpressionRefused(SpecError):
    """An instrument's expression does not compile, or the expression policy refuses it."""


class ProbeError(RuntimeError):
    """A probe cannot attach to its target (not found, or not a Python function)."""
