"""Exceptions of diagnose, in one module to avoid import loops."""

from __future__ import annotations

__all__ = (
    "ExpressionRefused",
    "NotAFunction",
    "ProbeError",
    "SpecError",
    "TargetImportError",
    "TargetNotFound",
    "TargetNotImported",
)


class SpecError(ValueError):
    """A spec is malformed: a field is missing, of the wrong type, or out of range."""


class ExpressionRefused(SpecError):
    """An instrument's expression does not compile, or the expression policy refuses it."""


class ProbeError(Exception):
    """A probe cannot attach to its target (not found, or not a Python function)."""


class TargetImportError(ProbeError, ImportError):
    """The module of a probe's target cannot be imported."""


class TargetNotImported(ProbeError):
    """A background apply found the target's module not imported yet, or being imported:
    it does not import it (that could deadlock the server's own import), and tries again."""


class TargetNotFound(ProbeError, AttributeError):
    """A probe's target names an attribute that does not exist."""


class NotAFunction(ProbeError, TypeError):
    """A probe's target is not a Python function (a class, a builtin, a constant...)."""
