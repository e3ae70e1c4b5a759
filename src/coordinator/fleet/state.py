"""What the fleet reports, read once: specs, hidden specs, every known process, each result.

One reading feeds `status`, `publish --wait` and their one JSON shape (the fleet document:
``ids``, ``version``, ``specs``, ``unverified``, ``processes``).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from diagnose.clock import to_utc
from diagnose_redis.exceptions import UnknownKey
from diagnose_redis.protocol import (
    PROCESS_FIELD,
    STATUS_TTL_SECONDS,
    labels_in,
    selects,
    unverified_spec,
)
from diagnose_redis.publisher import read_specs

__all__ = (
    "LIVE_SECONDS",
    "FleetState",
    "ProcessResult",
    "fleet_document",
    "read_fleet",
    "read_spec_set",
    "report_state",
    "result_of",
    "results_for",
    "same_time",
    "unverified_message",
)

LIVE_SECONDS = STATUS_TTL_SECONDS
DONE_STATES = ("applied", "error")


@dataclass(frozen=True)
class ProcessResult:
    """What one process reported for one spec."""

    process: str
    spec: str
    state: str
    lm: _dt.datetime | None
    err: str | None
    at: _dt.datetime | None
    #: what the spec's instrument did in the process: fires, events over its rate (or a
    #: full output buffer), errors
    fired: int = 0
    dropped: int = 0
    errors: int = 0

    @property
    def done(self) -> bool:
        """Tell whether the process answered for this version: applied or error."""
        return self.state in DONE_STATES

    def as_dict(self) -> dict[str, Any]:
        """Return the result as a JSON-friendly map."""
        return {
            "state": self.state,
            "lm": self.lm,
            "err": self.err,
            "at": self.at,
            "fired": self.fired,
            "dropped": self.dropped,
            "errors": self.errors,
        }


_utc = to_utc  # naive values are UTC; aware ones are converted


def same_time(a: _dt.datetime | None, b: _dt.datetime | None) -> bool:
    """Tell whether two lastmodified values are the same instant (to the millisecond)."""
    if a is None or b is None:
        return False
    return abs((_utc(a) - _utc(b)).total_seconds()) < 0.001


def report_state(report: Any, lastmodified: _dt.datetime | None) -> str:
    """Classify a process's report on a spec: applied, error, stale or pending."""
    if not isinstance(report, dict):
        return "pending"
    lm = report.get("lm")
    behind = lm is not None and lastmodified is not None and _utc(lm) < _utc(lastmodified)
    if behind and not same_time(lm, lastmodified):
        return "stale"
    if report.get("err"):
        return "error"
    if lm is None and lastmodified is not None:
        return "pending"
    return "applied"


def result_of(
    process: str, spec_id: str, report: Any, lastmodified: _dt.datetime | None
) -> ProcessResult:
    """Classify one process's report on one spec (lastmodified None: the spec is gone)."""
    state = report_state(report, lastmodified) if lastmodified is not None else "removed"
    if not isinstance(report, dict):
        return ProcessResult(process, spec_id, state, None, None, None)
    return ProcessResult(
        process,
        spec_id,
        state,
        report.get("lm"),
        report.get("err"),
        report.get("at"),
        report.get("fired") or 0,
        report.get("dropped") or 0,
        report.get("errors") or 0,
    )


@dataclass
class FleetState:
    """The fleet as read at one moment."""

    version: int
    specs: dict[str, dict[str, Any]]
    unverified: list[str]
    heartbeats: dict[str, float]
    reports: dict[str, dict[str, Any]]
    #: pre-fork parents: they forked the workers and serve nothing, so they are not counted
    parents: frozenset[str] = frozenset()
    live_seconds: float = LIVE_SECONDS
    read_at: float = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).timestamp())

    def is_live(self, process: str) -> bool:
        """Tell whether a process heartbeat recently enough to count as live."""
        beat = self.heartbeats.get(process)
        return beat is not None and self.read_at - beat <= self.live_seconds

    @property
    def processes(self) -> list[str]:
        """Return every process known: heartbeating, late, or still holding a status hash."""
        return sorted((set(self.heartbeats) | set(self.reports)) - self.parents)

    @property
    def live(self) -> list[str]:
        """Return the live processes."""
        return [p for p in self.processes if self.is_live(p)]

    @property
    def late(self) -> list[str]:
        """Return the known processes whose heartbeat is late."""
        return [p for p in self.processes if not self.is_live(p)]

    def labels(self, process: str) -> dict[str, str]:
        """Return the labels a process declares in its ``_process`` field."""
        return labels_in(process, (self.reports.get(process) or {}).get(PROCESS_FIELD))

    def chosen(self, spec_id: str, processes: Iterable[str]) -> list[str]:
        """Return those of processes that spec_id's select chooses (all, without a select)."""
        select = (self.specs.get(spec_id) or {}).get("select")
        return [p for p in processes if selects(select, self.labels(p))]

    def late_for(self, process: str) -> float | None:
        """Return how many seconds ago a process last heartbeat (None if never seen)."""
        beat = self.heartbeats.get(process)
        return None if beat is None else self.read_at - beat


def read_fleet(store: Any, spec_id: str | None = None) -> FleetState:
    """Read the fleet's specs (telling apart those this secret cannot verify) and reports."""
    specs, unverified = read_spec_set(store, foreign={})
    reports = store.status(spec_id)
    infos = {
        pid: report[PROCESS_FIELD] for pid, report in reports.items() if PROCESS_FIELD in report
    }
    known = store.fleet(max_age=math.inf, infos=infos)
    return FleetState(
        version=store.version(),
        specs=specs,
        unverified=unverified,
        heartbeats={pid: entry.heartbeat for pid, entry in known.items()},
        reports=reports,
        parents=frozenset(pid for pid, entry in known.items() if entry.parent),
    )


def results_for(
    fleet: FleetState, processes: Iterable[str], spec_ids: Iterable[str] | None = None
) -> dict[str, dict[str, ProcessResult]]:
    """Classify, per process, each spec: spec_ids, or every current spec and every reported one.

    A spec that is gone is listed only where a process still reports it (state removed),
    one whose select does not choose a process only where that process still reports it.
    """
    wanted = None if spec_ids is None else list(spec_ids)
    out: dict[str, dict[str, ProcessResult]] = {}
    for process in processes:
        report = fleet.reports.get(process) or {}
        reported = set(report) - {PROCESS_FIELD}
        ids = sorted(reported | set(fleet.specs)) if wanted is None else wanted
        entries: dict[str, ProcessResult] = {}
        for sid in ids:
            spec = fleet.specs.get(sid)
            if report.get(sid) is None and (spec is None or not fleet.chosen(sid, [process])):
                continue
            lastmodified = spec.get("lastmodified") if spec else None
            entries[sid] = result_of(process, sid, report.get(sid), lastmodified)
        out[process] = entries
    return out


def fleet_document(
    fleet: FleetState,
    ids: Iterable[str],
    results: Mapping[str, Mapping[str, ProcessResult]],
) -> dict[str, Any]:
    """Build the one JSON shape of publish, publish --wait and status."""
    ids = list(ids)
    processes = {}
    for process, entries in sorted(results.items()):
        beat = fleet.heartbeats.get(process)
        report = fleet.reports.get(process) or {}
        processes[process] = {
            "live": fleet.is_live(process),
            "heartbeat": None if beat is None else _dt.datetime.fromtimestamp(beat, _dt.UTC),
            "process": report.get(PROCESS_FIELD),
            "specs": {sid: r.as_dict() for sid, r in sorted(entries.items())},
        }
    return {
        "ids": ids,
        "version": fleet.version,
        "specs": {
            sid: {k: v for k, v in fleet.specs[sid].items() if k != "applied"}
            for sid in ids
            if sid in fleet.specs
        },
        "unverified": fleet.unverified,
        "processes": processes,
    }


def read_spec_set(
    store: Any, foreign: dict[str, list[str]] | None = None
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Read every stored spec: the ones this secret verifies, and the ids of the others.

    With foreign (a dict to fill), specs signed only with named keys this coordinator does
    not hold (another person's, under the two-person rule) are read too, unverified, and
    foreign maps their ids to those key ids: the workers verify them, people see them."""
    ids = store.client.smembers(store.keys.ids)
    specs, unsound = read_specs(store.client, store.keys, ids, store.secret)
    unverified = []
    for spec_id, exc in unsound:
        spec = unverified_spec(exc.body) if isinstance(exc, UnknownKey) else None
        if foreign is not None and spec is not None and isinstance(exc, UnknownKey):
            specs[spec_id] = spec
            foreign[spec_id] = list(exc.key_ids)
        else:
            unverified.append(spec_id)
    return specs, sorted(unverified)


def unverified_message(ids: list[str]) -> str:
    """Say that specs are hidden because this secret does not verify them."""
    count = "1 spec is" if len(ids) == 1 else f"{len(ids)} specs are"
    return (
        f"{count} not signed with this secret and not shown: {', '.join(ids)} "
        "(check --secret or DIAGNOSE_SECRET)"
    )
