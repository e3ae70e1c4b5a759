"""SnapshotInstrument: capture the state of a call (arguments, result, locals) as JSON."""

from __future__ import annotations

from typing import Any

from diagnose._output import snapshot as snapshots
from diagnose._swap.plan import PARAMETERS
from diagnose.instruments.base import Instrument
from diagnose.instruments.log import LogInstrument, write_line
from diagnose.outbox import NO_TAGS, OUTBOX

__all__ = ("SnapshotInstrument",)

# Names of the wrapper's namespace that are not the call's own state.
_NOT_STATE = frozenset({"args", "kwargs", "start", "now", "frame", "end", "hotspots"})


class SnapshotInstrument(Instrument):
    """Capture what the event offers as bounded, redacted JSON (see ``_output.snapshot``):
    for ``call`` the arguments; for ``return`` the arguments, ``result`` and ``elapsed``;
    for ``end`` and ``line`` the locals. ``value``, when given, is a condition: capture
    only when it is true. Written as ``Snapshot (NAME) = JSON`` where log lines go
    (``LogInstrument.out`` or ``LogInstrument.logger``); ``last`` keeps the latest. The
    instrument of a spec also adds the JSON to the fleet's output stream.
    """

    # Every parameter of the target by name (defaults applied), and the return's own names;
    # in end and line events, the frame's locals.
    extra_names = frozenset({PARAMETERS, "result", "elapsed"})

    def __init__(self, name: str, value: str | None = None, *args: Any, **kwargs: Any) -> None:
        super().__init__(name, value or "True", *args, **kwargs)
        self.last: dict[str, Any] | None = None

    def state(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> dict[str, Any]:
        """Return the names of the event that are the call's own state."""
        shared = self.mgr.global_namespace
        return {
            name: value
            for name, value in _locals.items()
            if name not in _NOT_STATE
            and not (name in shared and shared[name] is value)
            and not name.startswith("__")
        }

    def fire(self, _globals: dict[str, Any], _locals: dict[str, Any]) -> None:
        if self.value != "True" and not self.evaluate(self.value, _globals, _locals):
            return
        snapshot = snapshots.capture(self.state(_globals, _locals))
        self.last = snapshot
        origin = self.origin
        if origin is not None:
            OUTBOX.put(origin, self.name, snapshots.to_json(snapshot), NO_TAGS)
            if not OUTBOX.to_stdout():
                return
        self.emit(self.name, snapshot)

    def emit(self, name: str, snapshot: dict[str, Any]) -> None:
        # Where log lines go: LogInstrument.logger or .out, as the class has them now.
        line = f"Snapshot ({name}) = {snapshots.to_json(snapshot)}"
        write_line(line, LogInstrument.logger, LogInstrument.out)
