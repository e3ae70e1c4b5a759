"""What a subscriber applied: its specs in the ProbeManager, kept equal to what Redis holds.

No threads and no I/O here: the subscriber hands over snapshots (the full set of specs, read
at a resync) and events (one put or delete), and gets back the status fields that changed.
A spec whose select does not choose this process's labels is treated as absent. A Refused
spec (the verify step's) is absent from the manager, and its status field says why.
"""

from __future__ import annotations

import datetime as _dt
import math
import threading
import time
from collections.abc import Iterable
from typing import Any, cast

from diagnose.clock import expiry_timestamp, utcnow
from diagnose.managers import NOT_IMPORTED, ProbeManager, still_booting
from diagnose.spec import spec_changed
from diagnose_redis._subscriber.work_items import Event, Refused, Snapshot
from diagnose_redis.protocol import StatusField
from diagnose_redis.protocol.labels import selects

__all__ = ("MAX_REFUSED", "Mirror", "rekey_applied")

# _merge_edit()'s answer for an event it leaves to the general merge.
_GENERAL = object()

#: At most this many refused specs are reported at once: what an unknown key's messages
#: claim must not grow the status hash without bound.
MAX_REFUSED = 1000


def rekey_applied(manager: Any, old: str, new: str) -> None:
    """Move every spec's ``applied`` entry from process id old to new (hold manager.lock).

    A forked child inherits its parent's probes, attached, and their entries under the
    parent's id; a process whose id changed keeps what it applied. Neither re-applies.
    """
    for spec in manager.specs.values():
        applied = spec.get("applied") if isinstance(spec, dict) else None
        if isinstance(applied, dict) and old in applied and old != new:
            applied[new] = applied.pop(old)
    manager.process_id = new


# How long after a subscriber starts it leaves the import of a target's module to the
# host (see diagnose.managers.still_booting): a server imports its application then.
BOOT_SECONDS = 5.0
# How often a spec whose module is not imported yet is tried again.
RETRY_SECONDS = 0.2


class Mirror:
    """The specs one subscriber put in a manager (``owned``), and what it last reported."""

    def __init__(self, manager: Any, process_id: str, labels: dict[str, str] | None = None) -> None:
        self.manager = manager
        self.process_id = process_id
        # The process's labels but ``process``, which is always the id held now.
        self.labels = dict(labels or {})
        self.owned: set[str] = set()
        #: specs refused (never applied): their lastmodified and why, for the status
        self.refused: dict[str, tuple[Any, str]] = {}
        self.version = 0
        self.applies = 0
        self._reported: dict[str, tuple[Any, Any]] = {}
        self._reported_version = -1
        self._local = threading.local()
        #: owned specs whose target's module the host has not imported yet (tried again)
        self.deferred: set[str] = set()
        #: the soonest expiry (unix seconds) of the specs the last merge() set, or math.inf
        self.set_expiry = math.inf
        # Until then, a module the host has not imported is left to the host (its boot).
        self.imports_after = time.monotonic() + BOOT_SECONDS

    @property
    def applying(self) -> bool:
        """True in the thread running merge()'s manager.apply(), while it does."""
        return getattr(self._local, "applying", False)

    def merge(self, items: Iterable[object]) -> dict[str, str | None] | None:
        """Apply Snapshot and Event items (others are ignored), and remove what has expired
        (hold manager.lock).

        Return the status fields that changed (JSON text, or None for a field to delete),
        or None when there is nothing to report, not even a new version.
        """
        if type(items) is list and len(items) == 1 and type(items[0]) is Event:
            edited = self._merge_edit(items[0])
            if edited is not _GENERAL:
                return cast("dict[str, str | None] | None", edited)
        changes: dict[str, dict[str, Any] | Refused | None] = {}
        version = self.version
        # Only events: the specs they name are all that may change (see _collect).
        events_only = True
        for item in items:
            if isinstance(item, Snapshot):
                events_only = False
                version = item.version
                changes = {spec_id: None for spec_id in (*self.owned, *self.refused)}
                changes.update(item.specs)
            elif isinstance(item, Event):
                version = max(version, item.version)
                spec = item.spec if item.op == "put" else None
                # An unverified claim only tells of a spec this process lacks.
                if (
                    isinstance(spec, Refused)
                    and not spec.sound
                    and (item.spec_id in self.owned or isinstance(changes.get(item.spec_id), dict))
                ):
                    continue
                changes[item.spec_id] = spec
        # A spec whose select does not choose this process is, here, no spec at all: one
        # whose select stopped choosing it is removed like a deleted one.
        labels = None
        for spec_id, spec in changes.items():
            body = spec.spec if isinstance(spec, Refused) else spec
            if body is not None and body.get("select"):
                if labels is None:
                    labels = {**self.labels, "process": self.process_id}
                if not selects(body["select"], labels):
                    changes[spec_id] = None
        now = time.time()
        manager = self.manager
        removed: list[str] = []
        for spec_id in list(self.owned):
            if spec_id not in changes:
                when = expiry_timestamp(manager.specs.get(spec_id) or {})
                if when is not None and when <= now:
                    changes[spec_id] = None
        touched: list[str] = []
        soonest = math.inf
        for spec_id, spec in changes.items():
            if isinstance(spec, Refused):
                self._refuse(spec_id, spec, now, removed)
                spec = None
            elif spec_id in self.refused:
                del self.refused[spec_id]
                removed.append(spec_id)
            if spec is not None:
                when = expiry_timestamp(spec)
                if when is not None:
                    if when <= now:
                        spec = None
                    elif when < soonest:
                        soonest = when
            current = manager.specs.get(spec_id) if spec_id in self.owned else None
            if not spec_changed(current, spec):
                continue
            touched.append(spec_id)
            if spec is None:
                manager.specs.pop(spec_id, None)
                self.owned.discard(spec_id)
                removed.append(spec_id)  # twice at most: _collect reports it once
            else:
                manager.specs[spec_id] = spec
                self.owned.add(spec_id)
        # Only events, and nothing pending: the specs they changed are all that may have
        # another outcome (a wake after an instrument's runtime error looks at every one).
        only = touched if events_only and touched and not self.deferred else None
        if (touched or self.deferred) and not self._apply(only):
            only = None
        self.set_expiry = soonest
        return self._report(self._collect(removed, only), version)

    def _report(self, report: dict[str, str | None], version: int) -> dict[str, str | None] | None:
        """Take version as applied; return report, or None when it holds nothing and the
        version is the one reported already."""
        self.version = version
        if not report and version == self._reported_version:
            return None
        self._reported_version = version
        return report

    def _merge_edit(self, event: Event) -> dict[str, str | None] | None | object:
        """merge([event]) for the common event, a new version of an owned spec that is not
        due to expire, chooses every process and is not pending (an edit or a re-publish):
        apply it alone. Return _GENERAL for any other event, which merge() then takes."""
        spec_id, spec = event.spec_id, event.spec
        manager = self.manager
        current = manager.specs.get(spec_id)
        if (
            event.op != "put"
            or type(spec) is not dict
            or spec_id not in self.owned
            or spec_id in self.refused
            or self.deferred
            or "select" in spec
            or type(manager).apply is not ProbeManager.apply
            or not spec_changed(current, spec)
        ):
            return _GENERAL
        when = expiry_timestamp(spec)
        if when is not None and when <= time.time():
            return _GENERAL
        manager.specs[spec_id] = spec
        self._apply([spec_id])
        self.set_expiry = math.inf if when is None else when
        return self._report(self._collect((), (spec_id,)), max(self.version, event.version))

    def _apply(self, only: list[str] | None) -> bool:
        """Apply the manager's specs (only these, if given, when the manager can); return
        True when only these were applied."""
        manager = self.manager
        manager.process_id = self.process_id
        partial = only is not None and type(manager).apply is ProbeManager.apply
        self._local.applying = True
        try:
            with still_booting(self.imports_after):
                if partial:
                    manager.apply_specs(only)  # the others are unchanged
                else:
                    manager.apply()
        finally:
            self._local.applying = False
        self.applies += 1
        return partial

    def _refuse(self, spec_id: str, refused: Refused, now: float, removed: list[str]) -> None:
        """Record a refusal to report (none for an expired spec, nor past MAX_REFUSED)."""
        when = expiry_timestamp(refused.spec)
        if (when is not None and when <= now) or (
            spec_id not in self.refused and len(self.refused) >= MAX_REFUSED
        ):
            if self.refused.pop(spec_id, None) is not None:
                removed.append(spec_id)
            return
        self.refused[spec_id] = (refused.spec.get("lastmodified"), refused.error)

    def forget_reported(self) -> None:
        """Report every owned spec again at the next merge (the status key changed)."""
        self._reported.clear()
        self._reported_version = -1

    def soonest_expiry(self) -> float:
        """Return when the first owned spec expires (unix seconds), or math.inf."""
        soonest = math.inf
        specs = self.manager.specs
        for spec_id in list(self.owned):
            spec = specs.get(spec_id)
            when = expiry_timestamp(spec) if spec is not None else None
            if when is not None and when < soonest:
                soonest = when
        return soonest

    def release(self) -> None:
        """Take every owned spec out of the manager, detaching its probes."""
        with self.manager.lock:
            for spec_id in self.owned:
                self.manager.specs.pop(spec_id, None)
            self.owned.clear()
            self.refused.clear()
            self.manager.apply()

    def _collect(
        self, removed: Iterable[str], ids: Iterable[str] | None = None
    ) -> dict[str, str | None]:
        """Return the status fields of the owned specs (of ids only, if given) whose
        outcome is not the one reported, and of the removed ones."""
        at = utcnow()
        report: dict[str, str | None] = {}
        self.deferred.clear()
        for spec_id in removed:
            if spec_id in self.owned or spec_id in self.refused:
                continue  # reported below, as what it is now
            if self._reported.pop(spec_id, None) is not None:
                report[spec_id] = None
        for spec_id in self.owned if ids is None else ids:
            if spec_id not in self.owned:
                continue
            spec = self.manager.specs.get(spec_id) or {}
            applied = spec.get("applied") or {}
            entry = applied.get(self.process_id)
            if isinstance(entry, dict):
                outcome = (entry.get("lm"), entry.get("err"))
                if isinstance(outcome[1], str) and outcome[1].startswith(NOT_IMPORTED):
                    # Pending, not failed: it applies once the host has imported the module.
                    self.deferred.add(spec_id)
                    outcome = (None, None)
            else:
                outcome = (spec.get("lastmodified"), "not applied")
            if self._reported.get(spec_id) != outcome:
                self._reported[spec_id] = outcome
                lm, err = outcome
                lm = lm if isinstance(lm, _dt.datetime) else None
                report[spec_id] = StatusField.of(lm, None if err is None else str(err), at)
        for spec_id, outcome in self.refused.items():
            if self._reported.get(spec_id) != outcome:
                self._reported[spec_id] = outcome
                lm, err = outcome
                lm = lm if isinstance(lm, _dt.datetime) else None
                report[spec_id] = StatusField.of(lm, err, at)
        return report
