"""Exceptions of diagnose, and the one-line text every layer shows for one (in one module
to avoid import loops)."""

from __future__ import annotations

__all__ = (
    "ERROR_CHARS",
    "ExpressionRefused",
    "NotAFunction",
    "ProbeError",
    "SpecError",
    "TargetImportError",
    "TargetNotFound",
    "TargetNotImported",
    "one_line",
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


# The longest error text kept: a status field is read by a person with redis-cli, and one
# broken spec on a thousand processes must not write a megabyte into Redis.
ERROR_CHARS = 1000


def one_line(exc: BaseException | str, limit: int = ERROR_CHARS, *, bare: bool = False) -> str:
    """Return ``Type: message`` (or the message alone with bare=True, or for a str) on one
    line, whitespace collapsed, cut to limit characters with an ellipsis."""
    if isinstance(exc, str):
        text = exc
    elif bare:
        text = str(exc)
    else:
        text = f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split())
    if len(text) > limit:
        text = text[: max(limit - 1, 0)] + "…"
    return text
