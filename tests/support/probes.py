"""Probes a test makes that clean up after themselves, a manager that keeps its errors, and
the spec the memory tests churn."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from typing import Any

import diagnose
from diagnose import ProbeManager, ProbeTestInstrument
from diagnose.probes import active_probes


def churn_spec(event: str, value: str) -> dict[str, Any]:
    """Return the test instrument spec on shop.price that the memory tests apply and remove."""
    return {
        "target": "probe_targets.shop.price",
        "instrument": {"type": "test", "name": "churn", "value": value, "event": event},
        "lifespan": None,
        "lastmodified": dt.datetime(2026, 1, 1),
        "applied": {},
    }


class CapturingManager(ProbeManager):
    """A ProbeManager that keeps every handle_error call instead of logging it."""

    def __init__(self, process_id: str | None = "test-process") -> None:
        super().__init__(process_id=process_id)
        self.instrument_classes["test"] = ProbeTestInstrument
        self.errors: list[tuple[Any, Any, BaseException | None]] = []

    def handle_error(self, probe: Any = None, instrument: Any = None) -> None:
        self.errors.append((probe, instrument, sys.exc_info()[1]))
        super().handle_error(probe, instrument)


class ProbeSet:
    """Probes made by one test; close() stops them all and forgets them."""

    def __init__(self) -> None:
        self.mgr = CapturingManager()
        self._before = dict(active_probes)

    def attach(
        self,
        target: str,
        value: str | None = "result",
        event: str = "return",
        cls: Callable[..., diagnose.Instrument] = ProbeTestInstrument,
        name: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Attach a new instrument of cls to target, start its probe, return the instrument.

        value is what cls takes: a str, or None for an instrument whose value is optional
        (``SnapshotInstrument``)."""
        name = name or f"i{len(active_probes)}-{value}"
        kwargs.setdefault("mgr", self.mgr)
        instrument = cls(name, value, event, **kwargs)
        probe = diagnose.probes.attach_to(target)
        probe.instruments[name] = instrument
        probe.start()
        return instrument

    def close(self) -> None:
        for target, probe in list(active_probes.items()):
            if self._before.get(target) is not probe:
                probe.stop()
                active_probes.pop(target, None)

    def __enter__(self) -> ProbeSet:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def decoded_spec(
    target: str, value: str = "result", minutes_ago: float = 0, lifespan: float | None = 10
) -> dict[str, Any]:
    """Return a test instrument spec on target as a subscriber decodes it: with a
    lastmodified minutes_ago and an empty applied."""
    lm = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=minutes_ago)
    return {
        "target": target,
        "instrument": {"type": "test", "name": "t", "value": value},
        "lifespan": lifespan,
        "lastmodified": lm,
        "applied": {},
    }
