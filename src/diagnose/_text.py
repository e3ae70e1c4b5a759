"""The one-line error text every layer shows for an exception (status fields, logs, CLI)."""

from __future__ import annotations

__all__ = ("ERROR_CHARS", "one_line")

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
