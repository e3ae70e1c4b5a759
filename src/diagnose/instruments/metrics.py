"""hist and incr: send a numeric value as a metric, to the user's statsd client or ours.

``diagnose.instruments.statsd`` is the plug-in point the original library had: None by
default (our DogStatsD client over UDP is used), or any object with
``histogram(name, value, tags=...)`` and ``increment(name, value, tags=...)``.
"""

from __future__ import annotations

import sys
from typing import Any

from diagnose._output import statsd
from diagnose._output.redaction import scrub_mapping
from diagnose._output.render import render
from diagnose.instruments.base import Instrument, tag_list
from diagnose.instruments.log import cut
from diagnose.outbox import OUTBOX, stream_tags

__all__ = ("HistogramInstrument", "IncrementInstrument", "StatsdInstrumentBase")


def _client() -> Any:
    user = getattr(sys.modules[__package__], "statsd", None)
    return user if user is not None else statsd.client()


class StatsdInstrumentBase(Instrument):
    """Send a numeric value as a statsd metric; tags go as ``["key:value", ...]``. The
    instrument of a spec also adds the value to the fleet's output stream."""

    MAX_CHARS = 2000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _client()  # make our client now, not on the target's first call

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        v = self.evaluate(self.value, _globals, _locals)
        if v is None:
            return
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise TypeError(f"Cannot send non-numeric metric: {cut(str(v), self.MAX_CHARS)}")
        merged = self.merge_tags(_globals, _locals)
        if self.origin is not None:
            OUTBOX.put(self.origin, self.name, repr(v), stream_tags(merged))
        tags = scrub_mapping(merged)
        self.emit(
            self.name,
            v,
            tag_list({k: None if t is None else render(t, 200) for k, t in tags.items()}),
        )

    def emit(self, name: str, value: float, tags: list[str]) -> None:
        raise NotImplementedError()


class HistogramInstrument(StatsdInstrumentBase):
    """Send the value as a histogram sample (``name:value|h``)."""

    def emit(self, name: str, value: float, tags: list[str]) -> None:
        _client().histogram(name, value, tags=tags)


class IncrementInstrument(StatsdInstrumentBase):
    """Add the value to a counter (``name:value|c``)."""

    def emit(self, name: str, value: float, tags: list[str]) -> None:
        _client().increment(name, value, tags=tags)
