"""Probes: attach instruments to a target function, and detach them for good."""

from __future__ import annotations

import types
from collections.abc import Iterable, Mapping
from typing import Any, cast

from diagnose._swap.hotspots import CallTime
from diagnose._swap.patch import Patch, check_line, deferred_refresh, patch_for
from diagnose._swap.patch import lock as _lock
from diagnose._swap.targets import resolve

__all__ = (
    "CallTime",
    "FunctionProbe",
    "active_probes",
    "attach_to",
    "check_line",
    "deferred_refresh",
    "release",
    "start_all",
)

# Every FunctionProbe by target. One target has at most one probe: add instruments to
# it (attach_to) rather than making a second one.
active_probes: dict[str, FunctionProbe] = {}


def attach_to(target: str) -> FunctionProbe:
    """Return the probe attached to the given target, or a new one if needed."""
    with _lock:
        probe = active_probes.get(target)
        if probe is None:
            probe = FunctionProbe(target)
        return probe


def release(probe: FunctionProbe) -> None:
    """Stop and forget a probe that has no instruments left."""
    with _lock:
        if not probe.instruments:
            probe.stop()
            if active_probes.get(probe.target) is probe:
                del active_probes[probe.target]


def start_all() -> None:
    """Start every registered probe."""
    for probe in list(active_probes.values()):
        probe.start()


class InstrumentDict(dict):  # type: ignore[type-arg]
    """A probe's instruments by id; any change re-plans the probe at once."""

    def __init__(self, probe: FunctionProbe, items: Mapping[str, Any] | Iterable[Any] = ()) -> None:
        super().__init__(items)
        self._probe = probe

    def _changed(self) -> None:
        self._probe._instruments_changed()

    def __setitem__(self, key: str, value: Any) -> None:
        super().__setitem__(key, value)
        self._changed()

    def __delitem__(self, key: str) -> None:
        super().__delitem__(key)
        self._changed()

    def pop(self, *args: Any) -> Any:
        value = super().pop(*args)
        self._changed()
        return value

    def popitem(self) -> Any:
        item = super().popitem()
        self._changed()
        return item

    def clear(self) -> None:
        super().clear()
        self._changed()

    def update(self, *args: Any, **kwargs: Any) -> None:
        super().update(*args, **kwargs)
        self._changed()

    def setdefault(self, key: str, default: Any = None) -> Any:
        value = super().setdefault(key, default)
        self._changed()
        return value

    # dict's __ior__ takes any mapping or pairs, its __or__ only a dict: mypy's check that
    # they agree fails for dict itself (typeshed silences it the same way).
    def __ior__(self, other: Any) -> InstrumentDict:  # type: ignore[misc]
        super().__ior__(other)
        self._changed()
        return self


class FunctionProbe:
    """A probe on one target function; ``instruments`` maps an id to an Instrument.

    start() attaches it: the target function's code is swapped for code that fires the
    instruments around (or, for ``end``, inside) the original. stop() puts the original
    code back. The function object stays the same, so every reference sees the probe.
    """

    def __init__(self, target: str, instruments: Mapping[str, Any] | None = None) -> None:
        with _lock:
            if target in active_probes:
                raise RuntimeError(
                    f"Cannot apply two probes to the same target {target!r}. "
                    "Try calling attach_to(target) instead of FunctionProbe(target)."
                )
            self.target = target
            self._patch: Patch | None = None
            self._func: types.FunctionType | None = None
            self.instruments = InstrumentDict(self, instruments or {})
            active_probes[target] = self

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(target={self.target!r}, instruments={dict(self.instruments)!r})"
        )

    __str__ = __repr__

    @property
    def func(self) -> types.FunctionType:
        """The Python function this probe's target names (resolved on first use)."""
        if self._func is None:
            self._func = resolve(self.target)
        return self._func

    def _bind(self, func: types.FunctionType) -> None:
        """Use func as the target function, without resolving the dotted path."""
        self._func = func

    def start(self) -> None:
        """Attach to the target; a no-op when already started. Raises ProbeError if missing."""
        with _lock:
            if self._patch is not None:
                return  # already started: every change to instruments re-plans at once
            # mypy applies FunctionType.__get__ to the property's value (MethodType).
            patch = patch_for(cast(types.FunctionType, self.func))
            patch.probes.append(self)
            self._patch = patch
            try:
                patch.refresh()
            except BaseException:
                self.stop()
                raise

    def stop(self) -> None:
        """Detach from the target: its original code is back, at no cost per call."""
        with _lock:
            patch, self._patch = self._patch, None
            if patch is not None:
                patch.detach(self)

    def revise(self, instrument: Any, expires: Any, settings: dict[str, Any] | None = None) -> None:
        """Change one of this probe's instruments in place: its expiry and, with settings
        (what Instrument.update takes), what it is; then re-plan as little as that needs:
        while the plan keeps its shape the installed wrapper keeps its code, with another
        deadline (see Patch.retune)."""
        with _lock:
            if settings is None:
                instrument._set_expires(expires)
            elif getattr(type(instrument).update, "_diagnose_base", False):
                instrument._revise({**settings, "expires": expires})
            else:  # an update() of a subclass's own: as it has it, and a refresh
                instrument.update(**settings, expires=expires)
                return
            patch = self._patch
            if patch is not None:
                patch.retune(instrument)

    def _instruments_changed(self) -> None:
        patch = self._patch
        if patch is not None:
            patch.refresh()

    @property
    def started(self) -> bool:
        """True between start() and stop()."""
        return self._patch is not None

    @property
    def attached(self) -> bool:
        """True while the target runs the probe's code (some instrument is live)."""
        patch = self._patch
        return patch is not None and patch.installed is not None

    def __enter__(self) -> FunctionProbe:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
        active_probes.pop(self.target, None)
