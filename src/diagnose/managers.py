"""The ProbeManager: apply a set of specs to this process's probes."""

from __future__ import annotations

import datetime
import inspect
import logging
import math
import os
import socket
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

from diagnose import instruments, probes
from diagnose._background import BackgroundApply
from diagnose._gate.budget import BUDGET_SECONDS
from diagnose._safety.expressions import POLICIES, Policy, compile_trusted, policy_from_env

# For a background apply (the fleet subscriber's): targets whose module the host is
# importing are left for later, never imported by the applying thread.
from diagnose._swap.targets import NOT_IMPORTED, still_booting
from diagnose.clock import expires_at, to_utc
from diagnose.exceptions import ExpressionRefused, SpecError, one_line
from diagnose.fork import SERVICES, STATE, after_fork_in_child
from diagnose.instruments._manager import ManagerHooks
from diagnose.outbox import OUTBOX, Origin
from diagnose.spec import ValidatedSpecs, content_key

__all__ = (
    "NOT_IMPORTED",
    "InstrumentManager",
    "ProbeManager",
    "default_process_id",
    "mag",
    "still_booting",
)

log = logging.getLogger("diagnose")


def default_process_id() -> str:
    """Return this process's default id: HOSTNAME:PID."""
    return f"{socket.gethostname()}:{os.getpid()}"


def mag(obj: Any, base: float = 10) -> int:
    """Return the magnitude of a number (or of a thing's length); -1 when it is 0."""
    try:
        size = len(obj)
    except TypeError:
        size = obj
    try:
        return int(math.log10(size) if base == 10 else math.log(size, base))
    except (TypeError, ValueError, OverflowError):
        return -1


class _Owned(NamedTuple):
    """An instrument a manager put on a probe, and the spec fields it was made from."""

    probe: probes.FunctionProbe
    key: Any
    expires: datetime.datetime | None


class ProbeManager(BackgroundApply, ManagerHooks):
    """Apply ``specs`` ({id: spec}) to the process's probes, and record the outcome.

    apply() attaches, updates and removes this manager's instruments so that they match
    ``specs``, and sets ``spec["applied"][process_id]`` to ``{"lm": lastmodified, "err":
    None or text}``. A bad spec gets its error text there and never stops the others.
    Its cost grows with the number of specs, not with the size of the heap.
    """

    instrument_classes: dict[str, type[instruments.Instrument]] = {
        "log": instruments.LogInstrument,
        "hist": instruments.HistogramInstrument,
        "incr": instruments.IncrementInstrument,
        "snapshot": instruments.SnapshotInstrument,
        "exception": instruments.ExceptionInstrument,
        "stats": instruments.StatsInstrument,
        "distinct": instruments.DistinctInstrument,
    }
    # Names every instrument evaluation can read; add modules or helpers here.
    global_namespace: dict[str, Any] = {
        "datetime": datetime,
        "math": math,
        "time": time,
        "mag": mag,
    }

    # Events per second an instrument of a spec fires at most in this process, unless its
    # custom["rate"] says otherwise; types not listed (hist, incr) are not limited, since
    # a metric must count every call. For exception, the rate limits captures (every
    # raise is counted).
    default_rates: dict[str, float] = {"log": 100, "snapshot": 1, "exception": 1}
    # The application's own callables safe expressions may call (see allow()).
    safe_helpers: tuple[Callable[..., Any], ...] = (mag,)
    # Seconds of evaluation an instrument of a spec may take within one second.
    budget: float | None = BUDGET_SECONDS

    def __init__(self, process_id: str | None = None) -> None:
        self.specs: dict[str, dict[str, Any]] = {}
        self.process_id = process_id or default_process_id()
        self.lock = threading.RLock()
        self.short_id = hex(id(self))[2:]
        self.period = 60.0
        self.apply_thread: threading.Thread | None = None
        self._restart_background = False  # in a forked child, until SERVICES restart it
        self._stop_background = threading.Event()
        self._wake = threading.Event()
        # full instrument id -> the probe holding it, and what it was made from
        self._owned: dict[str, _Owned] = {}
        self._listeners: list[Callable[[str], None]] = []
        # full instrument id -> the error its instrument raised while firing; it stays
        # in applied until the spec changes.
        self._runtime_errors: dict[str, str] = {}
        self._validated = ValidatedSpecs()
        self.instrument_classes = dict(type(self).instrument_classes)
        self.policy = Policy()
        for helper in self.safe_helpers:
            self.policy.allow(helper)
        try:
            self._expression_policy = policy_from_env()
        except ValueError as exc:
            log.warning("%s; the safe policy applies", exc)
            self._expression_policy = "safe"
        self.global_namespace = dict(type(self).global_namespace)
        _managers.add(self)

    # --- applying specs ---------------------------------------------------------------

    def apply(self) -> None:
        """Add, change and remove instruments to match self.specs."""
        with self.lock, probes.deferred_refresh():
            wanted: set[str] = set()
            now = time.time()
            for spec_id, spec in list(self.specs.items()):
                full_id = f"{self.short_id}:{spec_id}"
                if self._apply_spec(full_id, spec_id, spec, now):
                    wanted.add(full_id)
            for full_id in list(self._owned):
                if full_id not in wanted:
                    self._detach(full_id)

    def apply_specs(self, spec_ids: Iterable[str]) -> None:
        """Apply these specs as apply() would (attach, change, or detach: one no longer in
        self.specs, or expired), and only these: the caller knows the others unchanged."""
        with self.lock, probes.deferred_refresh():
            now = time.time()
            specs = self.specs
            for spec_id in spec_ids:
                full_id = f"{self.short_id}:{spec_id}"
                spec = specs.get(spec_id)
                if spec is None or not self._apply_spec(full_id, spec_id, spec, now):
                    self._detach(full_id)

    def _apply_spec(self, full_id: str, spec_id: str, spec: Any, now: float) -> bool:
        """Apply one spec and mark its outcome; return True when its instrument is wanted
        (the caller detaches it otherwise)."""
        try:
            content = content_key(spec)
            lastmodified = spec.get("lastmodified")
            if isinstance(lastmodified, datetime.datetime):
                lastmodified = to_utc(lastmodified)
            key = (self._expression_policy, content, lastmodified)
            owned = self._owned.get(full_id)
            # A spec unchanged since it was applied is neither validated (that parses
            # and compiles its expressions) nor attached again.
            current = (
                owned is not None
                and owned.key == key
                and owned.probe.started
                and full_id in owned.probe.instruments
            )
            if current:
                assert owned is not None
                expires = owned.expires
            elif owned is not None and owned.key[:2] == key[:2]:
                republished = self._republish(full_id, spec_id, spec, owned, key, now)
                if republished is not None:
                    return republished
            if not current:
                clean = self._validated.validate(
                    spec, content, known_types=self.instrument_classes, policy=self._static_policy()
                )
                expires = expires_at(clean)
            if expires is not None and expires.timestamp() <= now:
                self._mark(spec_id, spec, None)
                return False
            if not current:
                self._attach(full_id, clean, expires, key)
            self._mark(spec_id, spec, self._runtime_errors.get(full_id))
            return True
        except Exception as exc:
            self._detach(full_id)
            self._mark(spec_id, spec, _describe(exc))
            return False

    def _attach(self, full_id: str, spec: dict[str, Any], expires: Any, key: Any) -> None:
        owned = self._owned.get(full_id)
        if owned is not None and owned.probe.target != spec["target"]:
            self._detach(full_id)
            owned = None
        settings = dict(spec["instrument"])
        itype = settings.pop("type")
        cls = self.instrument_classes[itype]
        rate = settings["custom"].get("rate") or self.default_rates.get(itype)
        # What it emits goes to the output stream under its spec's ID and type.
        origin = Origin(full_id.split(":", 1)[1], itype)
        compiler = self._compiler()
        current = owned.probe.instruments.get(full_id) if owned is not None else None
        if current is not None and type(current) is cls and owned is not None:
            # As the original did: an edited spec updates its instrument in place, so the
            # instrument's own state (a test instrument's log) carries on. The probe's
            # plan keeps its shape when the edit keeps the event and the names read:
            # then its wrapper stays, with a new deadline (see diagnose._swap.patch).
            if settings.get("line") is not None:
                probes.check_line(owned.probe.func, settings["line"])
            if full_id not in self._runtime_errors and _same_instrument(
                current, settings, (rate, self.budget, compiler, origin)
            ):
                # Published again unchanged (a new lastmodified): only its expiry moves;
                # its counters, rate limit and budget carry on.
                owned.probe.revise(current, expires)
            else:
                self._runtime_errors.pop(full_id, None)
                if current.rate != rate:
                    current.rate = rate
                if current.budget != self.budget:
                    current.budget = self.budget
                current.use_compiler(compiler)
                current.origin = origin
                owned.probe.revise(current, expires, settings)
            self._owned[full_id] = _Owned(owned.probe, key, expires)
            return
        self._runtime_errors.pop(full_id, None)
        instrument = cls(mgr=self, expires=expires, **settings)
        instrument.rate = rate
        instrument.budget = self.budget
        instrument.use_compiler(compiler)
        instrument.origin = origin
        probe = probes.attach_to(spec["target"])
        if instrument.line is not None:
            probes.check_line(probe.func, instrument.line)
        # Replacing the instrument in place re-plans the probe once, with no moment
        # at which the target runs without it.
        try:
            probe.instruments[full_id] = instrument
            probe.start()
        except BaseException:
            self._owned.pop(full_id, None)
            probe.instruments.pop(full_id, None)
            probes.release(probe)
            _retire(instrument)
            raise
        if current is not None:
            _retire(current)  # replaced by an instrument of another type
        self._owned[full_id] = _Owned(probe, key, expires)

    def _republish(
        self, full_id: str, spec_id: str, spec: Any, owned: _Owned, key: Any, now: float
    ) -> bool | None:
        """Apply a spec whose content is its instrument's (published again, with a new
        lastmodified): move the instrument's expiry, nothing else. Return as _apply_spec,
        or None when the whole way is needed (the instrument failed, or is not there, or
        what the manager gives instruments changed)."""
        instrument = owned.probe.instruments.get(full_id)
        lastmodified, applied = spec.get("lastmodified"), spec.get("applied")
        if (
            instrument is None
            or not owned.probe.started
            or instrument.error is not None
            or full_id in self._runtime_errors
            or not isinstance(lastmodified, datetime.datetime)
            or not (applied is None or isinstance(applied, dict))
            or instrument.origin is None
            or type(instrument) is not self.instrument_classes.get(instrument.origin.type)
        ):
            return None
        itype = instrument.origin.type
        rate = instrument.custom.get("rate") or self.default_rates.get(itype)
        given = (instrument.rate, instrument.budget, instrument.compiler)
        if given != (rate, self.budget, self._compiler()):
            return None
        expires = expires_at(spec)
        if expires is not None and expires.timestamp() <= now:
            self._mark(spec_id, spec, None)
            return False
        owned.probe.revise(instrument, expires)
        self._owned[full_id] = _Owned(owned.probe, key, expires)
        self._mark(spec_id, spec, None)
        return True

    def _detach(self, full_id: str) -> None:
        self._runtime_errors.pop(full_id, None)
        owned = self._owned.pop(full_id, None)
        if owned is None:
            return
        _retire(owned.probe.instruments.pop(full_id, None))
        probes.release(owned.probe)

    # --- the expression policy ----------------------------------------------------------

    @property
    def expression_policy(self) -> str:
        """ "safe" (the default: an allowlist of what an expression may read and call, the
        security page of the docs lists it) or "trusted" (no policy); it governs every
        expression of every spec this manager applies. Instruments made in code are the
        programmer's own and are never restricted."""
        return self._expression_policy

    @expression_policy.setter
    def expression_policy(self, value: str) -> None:
        if value not in POLICIES:
            raise ValueError(f"expression_policy must be safe or trusted, not {value!r}")
        self._expression_policy = value

    def allow(self, function: Callable[..., Any]) -> None:
        """Let the safe expressions of this manager's specs call function (an application's
        own helper); it runs unguarded."""
        self.policy.allow(function)

    def _static_policy(self) -> Policy | None:
        return self.policy if self._expression_policy == "safe" else None

    def _compiler(self) -> Callable[[str, str], Any]:
        return self.policy.compile if self._expression_policy == "safe" else compile_trusted

    def counters(self, spec_ids: Iterable[str] | None = None) -> dict[str, dict[str, int]]:
        """Return each applied spec's counts in this process (of spec_ids only, if given):
        fired, dropped, errors."""
        counts = {}
        # Entries the output buffer had no room for are dropped too (see diagnose.outbox).
        overflow = OUTBOX.dropped
        # No lock: a reporter thread reads this while the host may hold the manager's lock.
        owned_by = self._owned
        chosen: list[tuple[str, _Owned | None]]
        if spec_ids is None:
            chosen = list(owned_by.items())
        else:
            full_ids = [f"{self.short_id}:{i}" for i in spec_ids]
            chosen = [(full_id, owned_by.get(full_id)) for full_id in full_ids]
        for full_id, owned in chosen:
            instrument = owned.probe.instruments.get(full_id) if owned is not None else None
            if instrument is not None:
                spec_id = full_id.split(":", 1)[1]
                counts[spec_id] = instrument.stats.as_dict()
                counts[spec_id]["dropped"] += overflow.get(spec_id, 0)
        return counts

    # A subclass written for the original library overrides mark(id, doc, exception=False),
    # where exception is a bool and the error is the one being handled.
    _mark_takes_exception = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        params = list(inspect.signature(cls.mark).parameters)
        cls._mark_takes_exception = len(params) >= 4 and params[3] == "exception"

    def _mark(self, spec_id: str, spec: dict[str, Any], error: str | None) -> None:
        if self._mark_takes_exception:
            self.mark(spec_id, spec, error is not None)  # type: ignore[arg-type]
        else:
            self.mark(spec_id, spec, error)

    def mark(self, spec_id: str, spec: dict[str, Any], error: str | None = None) -> None:
        """Record in spec["applied"] that this process applied it (or why not).

        ``error`` is the error text, or None; True (an override in the original's style
        passing its ``exception`` flag on) means the exception being handled.
        """
        if isinstance(error, bool):
            exc = sys.exc_info()[1]
            error = (_describe(exc) if exc is not None else "error") if error else None
        applied = spec.get("applied")
        if not isinstance(applied, dict):
            applied = spec["applied"] = {}
        entry = {"lm": spec.get("lastmodified"), "err": error}
        if applied.get(self.process_id) != entry:
            applied[self.process_id] = entry
            self._notify(spec_id)

    # --- hooks for subclasses -------------------------------------------------------

    def handle_error(self, probe: Any = None, instrument: Any = None) -> None:
        """Handle an error raised by an instrument: log it, and show it in its spec's status."""
        log.warning(
            "probe instrument %s on %s failed and stopped firing:\n%s",
            getattr(instrument, "name", "?"),
            getattr(probe, "target", "?"),
            traceback.format_exc(),
        )
        if instrument is None:
            return
        for full_id, owned in list(self._owned.items()):
            current = owned.probe.instruments.get(full_id)
            if current is instrument:
                error = f"runtime error: {current.error}"
                self._runtime_errors[full_id] = error
                spec_id = full_id.split(":", 1)[1]
                spec = self.specs.get(spec_id)
                if spec is not None:
                    self._mark(spec_id, spec, error)

    def add_listener(self, callback: Callable[[str], None]) -> None:
        """Call callback(spec_id) whenever a spec's applied entry for this process changes."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[str], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _notify(self, spec_id: str) -> None:
        for callback in list(self._listeners):
            try:
                callback(spec_id)
            except Exception:
                log.exception("diagnose manager listener failed")


InstrumentManager = ProbeManager

_managers: weakref.WeakSet[ProbeManager] = weakref.WeakSet()


@after_fork_in_child(STATE)
def _after_fork_in_child() -> None:
    # Threads do not survive fork(): a lock one of them held would never be released,
    # and apply_in_background's thread has to start again in the child (SERVICES, below).
    parent_id = f"{socket.gethostname()}:{os.getppid()}"
    for mgr in list(_managers):
        if mgr.process_id == parent_id:
            mgr.process_id = default_process_id()
        mgr.lock = threading.RLock()
        mgr._wake = threading.Event()
        mgr._stop_background = threading.Event()
        if mgr.apply_thread is not None:
            mgr.apply_thread = None
            mgr._restart_background = True


@after_fork_in_child(SERVICES)
def _restart_background_in_child() -> None:
    for mgr in list(_managers):
        if mgr._restart_background:
            mgr._restart_background = False
            if mgr.apply_thread is None:
                mgr.apply_in_background(mgr.period)


def _same_instrument(instrument: Any, settings: dict[str, Any], extra: tuple[Any, ...]) -> bool:
    """Tell whether an instrument (with no error) already is what settings (a validated
    spec's instrument, without type) and extra (rate, budget, compiler, origin) make."""
    return (
        instrument.error is None
        and instrument.name == settings["name"]
        and instrument.value == settings["value"]
        and instrument.event == settings["event"]
        and instrument.line == settings.get("line")
        and instrument.custom == settings["custom"]
        and (instrument.rate, instrument.budget, instrument.compiler, instrument.origin) == extra
    )


def _retire(instrument: Any) -> None:
    """Tell an instrument taken off its probe that it is gone (one whose totals the
    subscriber flushes, ``diagnose.aggregates``, has them flushed one last time)."""
    retire = getattr(instrument, "retire", None)
    if retire is not None:
        try:
            retire()
        except Exception:
            log.exception("diagnose instrument failed to retire")


def _describe(exc: BaseException) -> str:
    # A malformed spec says what is wrong in its own words; a refused expression says so
    # first ("ExpressionRefused: ..."), as the contract has the status show it.
    return one_line(exc, bare=isinstance(exc, SpecError) and not isinstance(exc, ExpressionRefused))


class MongoDBInstrumentManager(ProbeManager):
    """A manager whose specs are the documents of a MongoDB collection (as in the original).

    ``collection`` is duck-typed (``find()`` and ``update_one(query, update)``, as pymongo's
    collections have them); each document is a spec with its id in ``id_field``. What
    this process applied is also written back into the document's
    ``applied.<process id with "." as "_">``.
    """

    def __init__(self, process_id: str | None, collection: Any, id_field: str = "id") -> None:
        super().__init__(process_id)
        self.collection = collection
        self.id_field = id_field

    @property  # type: ignore[override]
    def specs(self) -> dict[str, dict[str, Any]]:
        """The collection's documents by id (read at each access)."""
        return {doc[self.id_field]: doc for doc in self.collection.find()}

    @specs.setter
    def specs(self, value: dict[str, dict[str, Any]]) -> None:
        pass  # ProbeManager.__init__ sets it; the collection is the source of specs

    def mark(self, spec_id: str, spec: dict[str, Any], error: str | None = None) -> None:
        applied = spec.get("applied")
        entry = {"lm": spec.get("lastmodified"), "err": error}
        if isinstance(applied, dict) and applied.get(self.process_id) == entry:
            return
        super().mark(spec_id, spec, error)
        key = "applied." + str(self.process_id).replace(".", "_")
        self.collection.update_one({self.id_field: spec_id}, {"$set": {key: entry}})
