"""ProbeTestInstrument: keep what a probe saw, for tests."""

from __future__ import annotations

from typing import Any

from diagnose.instruments.base import Instrument

__all__ = ("ProbeTestInstrument",)


class ProbeTestInstrument(Instrument):
    """Keep every ``(tags, value)`` in ``log``; ``results`` lists the values;
    ``finish_called`` turns True after the first call of the probed function ends."""

    finish_called = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.log: list[tuple[dict[str, Any], Any]] = []

    @property
    def results(self) -> list[Any]:
        return [value for _tags, value in self.log]

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        v = self.evaluate(self.value, _globals, _locals)
        tags = self.merge_tags(_globals, _locals)
        self.log.append((tags, v))

    def finish(self) -> None:
        self.finish_called = True
