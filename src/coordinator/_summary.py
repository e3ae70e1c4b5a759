"""Read a big fleet at a glance: status per spec in counts, processes grouped by a label."""

from __future__ import annotations

import datetime as _dt
import json
import math
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import click

from diagnose._time import to_utc
from diagnose_redis._bulk import CensusRow, census_rows
from diagnose_redis._labels import labels_in, selects
from diagnose_redis._store import _glob_escape, _text
from diagnose_redis._wire import PROCESS_FIELD, applied_mark, decode_status_field

from ._context import Settings
from ._fleet import LIVE_SECONDS, read_spec_set, report_state
from ._output import Column, emit_json, print_table

__all__ = ("SUMMARY_ABOVE", "STATES", "census", "print_summary", "processes_by")

# status prints the summary by default when more processes than this are concerned.
SUMMARY_ABOVE = 50
STATES = ("applied", "error", "pending", "stale")
# Headers when a long spec ID leaves no room for the long ones at 80 columns.
SHORT_STATES = {"pending": "pend"}
TOP_ERRORS = 3


def census(store: Any, spec_id: str | None = None) -> dict[str, Any]:
    """Count, per spec, the processes in each state, and its most frequent errors.

    Read for thousands of processes: a short script run by Redis over the status hashes,
    in batches (``_bulk.census_rows``), tells which fields hold the spec's current version
    applied without error (the common case), so that only the other fields come back; they
    are classified field by field as `status` does. A process counts for a
    spec when it reports it or when the spec's select chooses it (then it is pending);
    pre-fork parents are left out; ``late`` counts those whose heartbeat is late.
    """
    specs, unverified = read_spec_set(store)
    ids = [spec_id] if spec_id is not None else sorted(specs)
    keys = store.keys
    status_keys = [
        _text(k)
        for k in store.client.scan_iter(match=_glob_escape(keys.status_prefix) + "*", count=1000)
    ]
    beats = {
        _text(pid): float(score)
        for pid, score in store.client.zrange(keys.processes, 0, -1, withscores=True)
    }
    current = {sid: _iso(specs[sid].get("lastmodified")) for sid in ids if sid in specs}
    # How a field of this version applied without error begins: told server-side.
    marks = [applied_mark(specs[sid]["lastmodified"]) if current.get(sid) else b"" for sid in ids]
    every_info = any((specs.get(sid) or {}).get("select") for sid in ids)
    rows = {
        key[len(keys.status_prefix) :]: row
        for key, row in zip(
            status_keys,
            census_rows(
                store.client,
                status_keys,
                ids,
                marks,
                every_info=every_info,
                count_extra=spec_id is None,
            ),
            strict=True,
        )
    }
    now = time.time()
    states = {sid: Counter({state: 0 for state in STATES}) for sid in ids}
    errors: dict[str, dict[str, list[str]]] = {sid: {} for sid in ids}
    late = Counter[str]()
    stray: list[str] = []
    absent = CensusRow(b"-" * len(ids), None, 0, [])
    for process in sorted(set(beats) | set(rows)):
        row = rows.get(process, absent)
        # Its JSON is read only when needed: a pre-fork parent's (the script returns it),
        # and, when a spec's select may choose it, every one.
        info: dict[str, Any] | None = None
        if row.info is not None and b'"parent"' in row.info:
            info = _json(row.info) or {}
            if info.get("role") == "parent":
                continue
        labels: dict[str, str] | None = None
        is_late = now - beats.get(process, -math.inf) > LIVE_SECONDS
        if row.extra > 0:
            stray.append(process)
        others = iter(row.others)
        for sid, code in zip(ids, row.codes, strict=True):
            spec = specs.get(sid)
            if code == _ABSENT:
                if spec is None:
                    continue
                if spec.get("select"):
                    if labels is None:
                        if info is None:
                            info = _json(row.info) or {}
                        labels = labels_in(process, info)
                    if not selects(spec["select"], labels):
                        continue
                state, err = "pending", None
            elif code == _APPLIED:
                # The common case, told without parsing: this version, applied, no error.
                state, err = "applied", None
            else:
                raw = next(others)
                field = _json(raw) or {}
                err = field.get("err")
                if spec is None:
                    state = "removed"
                elif field.get("lm") == current[sid] and current[sid] is not None:
                    state = "error" if err else "applied"
                else:
                    decoded = decode_status_field(raw)
                    state, err = report_state(decoded, spec.get("lastmodified")), decoded["err"]
            states[sid][state] += 1
            late[sid] += is_late
            if err:
                errors[sid].setdefault(str(err), []).append(process)
    removed = _removed(store, stray, set(specs))
    summary: dict[str, Any] = {}
    for sid in ids:
        ranked = sorted(errors[sid].items(), key=lambda item: (-len(item[1]), item[0]))
        summary[sid] = {
            "processes": sum(states[sid].values()),
            "late": late[sid],
            "states": dict(states[sid]),
            "errors": [
                {"err": text, "count": len(names), "processes": sorted(names)[:5]}
                for text, names in ranked[:TOP_ERRORS]
            ],
        }
    return {
        "version": store.version(),
        "specs": summary,
        "removed": sorted(removed),
        "unverified": unverified,
    }


_DECODER = json.JSONDecoder()
_ABSENT, _APPLIED = ord("-"), ord("a")


def _removed(store: Any, processes: list[str], current: set[str]) -> set[str]:
    """Name the specs, not current, that these processes' status hashes still report."""
    if not processes:
        return set()
    pipe = store.client.pipeline(transaction=False)
    for process in processes:
        pipe.hkeys(store.keys.status(process))
    names = {_text(name) for fields in pipe.execute() for name in fields}
    return names - current - {PROCESS_FIELD}


def _json(raw: Any) -> Any:
    if raw is None:
        return None
    try:
        value = _DECODER.decode(raw.decode() if isinstance(raw, bytes) else raw)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _iso(value: Any) -> str | None:
    return to_utc(value).isoformat() if isinstance(value, _dt.datetime) else None


def print_summary(summary: Mapping[str, Any], *, wide: bool = False) -> None:
    """Print one row per spec: the count in each state and its most frequent error."""
    rows = []
    for spec_id, entry in summary["specs"].items():
        states = entry["states"]
        top = entry["errors"][0] if entry["errors"] else None
        rows.append(
            (
                spec_id,
                entry["processes"],
                *(states.get(state, 0) for state in STATES),
                f"{top['count']}× {top['err']}" if top else None,
            )
        )
    columns = [
        Column("spec"),
        Column("processes", short="procs"),
        *(Column(state, short=SHORT_STATES.get(state)) for state in STATES),
        Column("top error", cut=True),
    ]
    print_table(columns, rows, empty="No specs.", wide=wide)
    errors = [(spec_id, e) for spec_id, entry in summary["specs"].items() for e in entry["errors"]]
    if errors:
        click.echo("\nMost frequent errors:")
        for spec_id, error in errors:
            more = error["count"] - len(error["processes"])
            names = ", ".join(error["processes"]) + (f" and {more} more" if more > 0 else "")
            click.echo(f"  {spec_id}: {error['count']}× on {names}: {error['err']}")
    if summary["removed"]:
        click.echo(
            f"\nStill reported by some processes, though removed: {', '.join(summary['removed'])}"
        )


def processes_by(settings: Settings, label: str, *, max_age: float, as_json: bool) -> None:
    """Count the live processes per value of one label (``-``: processes without it)."""
    store = settings.store()
    now = time.time()
    known = store.fleet(max_age=math.inf)
    live = {pid: e for pid, e in known.items() if now - e.heartbeat <= max_age and not e.parent}
    groups = Counter(labels_in(pid, e.info).get(label, "-") for pid, e in live.items())
    ranked = sorted(groups.items(), key=lambda item: (-item[1], item[0]))
    if as_json:
        emit_json({"by": label, "count": len(live), "groups": dict(ranked)})
        return
    print_table([Column(label), Column("processes")], ranked, empty="No processes online.")
    if ranked:
        word = "process" if len(live) == 1 else "processes"
        click.echo(f"{len(live)} {word} online, {len(groups)} values of {label}.")
