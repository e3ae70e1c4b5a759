"""Diagnose: add probes to live Python functions, and take them away again.

``diagnose.manager`` is the process's ProbeManager. Refer to it as
``diagnose.manager`` rather than importing the name, in case a framework replaces it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from diagnose import instruments, managers, probes
from diagnose._output.statsd import configure as configure_statsd
from diagnose.exceptions import (
    ExpressionRefused,
    NotAFunction,
    ProbeError,
    SpecError,
    TargetImportError,
    TargetNotFound,
)
from diagnose.instruments import (
    HistogramInstrument,
    IncrementInstrument,
    Instrument,
    LogInstrument,
    ProbeTestInstrument,
)
from diagnose.managers import InstrumentManager, ProbeManager
from diagnose.probes import FunctionProbe, attach_to
from diagnose.spec import validate_spec

__all__ = (
    "ExpressionRefused",
    "FunctionProbe",
    "HistogramInstrument",
    "IncrementInstrument",
    "Instrument",
    "InstrumentManager",
    "LogInstrument",
    "NotAFunction",
    "ProbeError",
    "ProbeManager",
    "ProbeTestInstrument",
    "SpecError",
    "TargetImportError",
    "TargetNotFound",
    "attach_to",
    "configure_statsd",
    "instruments",
    "manager",
    "managers",
    "probes",
    "sensor",
    "validate_spec",
)

manager = ProbeManager()
# As in the original: the process's manager uses the class's own registries, so a type or a
# name added to ProbeManager.instrument_classes / global_namespace (a plug-in at its import
# time) reaches it. Other managers start with copies of their own.
manager.instrument_classes = ProbeManager.instrument_classes
manager.global_namespace = ProbeManager.global_namespace


@contextmanager
def sensor(
    target: str,
    value: str = "result",
    name: str = "test_instrument",
    event: str = "return",
    mgr: Any = None,
) -> Iterator[ProbeTestInstrument]:
    """Attach a probe to target for the with-block, yielding its ProbeTestInstrument."""
    probe = probes.attach_to(target)
    instrument = ProbeTestInstrument(name, value, event, expires=None, mgr=mgr)
    probe.instruments[name] = instrument
    try:
        probe.start()
        yield instrument
    finally:
        probe.instruments.pop(name, None)
        probes.release(probe)


def __getattr__(name: str) -> Any:
    if name == "breakpoints":
        import importlib

        return importlib.import_module(".breakpoints", __name__)
    raise AttributeError(f"module 'diagnose' has no attribute {name!r}")
