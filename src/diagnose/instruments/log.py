"""LogInstrument: write ``Probe (NAME) = VALUE`` lines."""

from __future__ import annotations

import logging
import sys
from typing import Any

from diagnose._output.render import render
from diagnose.instruments.base import Instrument
from diagnose.outbox import OUTBOX, stream_tags

__all__ = ("LogInstrument",)


class _CurrentStdout:
    """Writes to whatever sys.stdout is at the time of each write, so pytest's capture and
    redirect_stdout keep working for lines written by long-lived instruments."""

    def write(self, text: str) -> int:
        out = sys.stdout
        return out.write(text) if out is not None else 0

    def flush(self) -> None:
        out = sys.stdout
        if out is not None:
            out.flush()

    def __repr__(self) -> str:
        return "<the current sys.stdout>"


def cut(text: str, limit: int) -> str:
    """Return text cut to limit characters, ending in "..." when cut."""
    return text if len(text) <= limit else text[: limit - 3] + "..."


class LogInstrument(Instrument):
    """Write ``Probe (NAME) = VALUE`` (``Probe (NAME)[tags=TAGS] = VALUE`` with tags).

    Lines go to ``LogInstrument.out`` (by default the current sys.stdout at each write;
    set it to any stream, as the original library's users do in their tests), or, when
    ``LogInstrument.logger`` (or one instrument's ``logger``) is a logging.Logger,
    through stdlib logging at INFO instead. The instrument of a spec also adds the value
    to the fleet's output stream (see ``diagnose.outbox``; DIAGNOSE_OUTPUT chooses).
    """

    MAX_CHARS = 2000
    out: Any = _CurrentStdout()
    logger: logging.Logger | None = None

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        value = self.evaluate(self.value, _globals, _locals)
        if value is None:
            return  # as in the original: nothing to say
        # str() of the value and of the tags dict, with the values of secret-named keys
        # shown as <redacted> at any depth (see diagnose._output.redaction).
        v = render(value, self.MAX_CHARS)
        tags = self.merge_tags(_globals, _locals)
        origin = self.origin
        if origin is not None:
            OUTBOX.put(origin, self.name, v, stream_tags(tags))
            if not OUTBOX.to_stdout():
                return
        self.emit(self.name, v, render(tags, self.MAX_CHARS) if tags else "")

    def emit(self, name: str, value: str, tags: str) -> None:
        line = f"Probe ({name})[tags={tags}] = {value}" if tags else f"Probe ({name}) = {value}"
        write_line(line, self.logger, self.out)


def write_line(line: str, logger: logging.Logger | None, out: Any) -> None:
    """Write one probe line to logger at INFO when there is one, else to out (flushed)."""
    if logger is not None:
        logger.info(line)
        return
    if out is not None:
        out.write(line + "\n")
        flush = getattr(out, "flush", None)
        if flush is not None:
            flush()
