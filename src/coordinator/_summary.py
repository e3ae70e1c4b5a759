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
from diagnose_redis._bulk import read_fields, read_hashes
from diagnose_redis._labels import labels_in, selects
from diagnose_redis._store import _glob_escape, _text
from diagnose_redis._wire import PROCESS_FIELD, decode_status_field

from ._context import Settings
from ._fleet import LIVE_SECONDS, read_spec_set, report_state
from ._output import Column, emit_json, print_table

__all__ = ("SUMMARY_ABOVE", "STATES", "census", "print_summary", "processes_by")

# status prints the summary by default when more processes than this are concerned.
SUMMARY_ABOVE = 50
STATES = ("applied", "error", "pending", "stale")
TOP_ERRORS = 3


def census(store: Any, spec_id: str | None = None) -> dict[str, Any]:
    """Count, per spec, the processes in each state, and its most frequent errors.

    Read for thousands of processes: every status hash in batches (``_bulk``), and each
    field's JSON alone when it reports the spec's current lastmodified (the common case);
    only the others are classified field by field as `status` does. A process counts for a
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
    # Field names stay bytes, as read: 10,000 hashes of a few fields each are not decoded.
    process_b = PROCESS_FIELD.encode()
    ids_b = {sid: sid.encode() for sid in ids}
    hashes: dict[str, dict[bytes, Any]] = {}
    if spec_id is None:
        for key, whole in zip(status_keys, read_hashes(store.client, status_keys), strict=True):
            hashes[key[len(keys.status_prefix) :]] = whole
    else:
        rows = read_fields(store.client, status_keys, [PROCESS_FIELD, spec_id])
        for key, (process_raw, spec_raw) in zip(status_keys, rows, strict=True):
            hashes[key[len(keys.status_prefix) :]] = {
                process_b: process_raw,
                ids_b[spec_id]: spec_raw,
            }
    known_b = {sid.encode() for sid in specs} | {process_b}
    current = {sid: _iso(specs[sid].get("lastmodified")) for sid in ids if sid in specs}
    # What encode_status_field writes for this version with no error.
    applied_marks = {
        sid: json.dumps({"lm": lm, "err": None})[:-1].encode() for sid, lm in current.items()
    }
    now = time.time()
    states = {sid: Counter({state: 0 for state in STATES}) for sid in ids}
    errors: dict[str, dict[str, list[str]]] = {sid: {} for sid in ids}
    late = Counter[str]()
    removed: set[str] = set()
    for process in sorted(set(beats) | set(hashes)):
        fields = hashes.get(process, {})
        # Its JSON is read only when needed: a pre-fork parent says so (the word is in the
        # text), and its labels matter only to a spec whose select may choose it.
        info_raw = fields.get(process_b)
        info: dict[str, Any] | None = None
        if info_raw is not None and _PARENT[isinstance(info_raw, bytes)] in info_raw:
            info = _json(info_raw) or {}
            if info.get("role") == "parent":
                continue
        labels: dict[str, str] | None = None
        is_late = now - beats.get(process, -math.inf) > LIVE_SECONDS
        if spec_id is None:
            removed.update(_text(f) for f, v in fields.items() if v and f not in known_b)
        for sid in ids:
            raw = fields.get(ids_b[sid])
            spec = specs.get(sid)
            if raw is None:
                if spec is None:
                    continue
                if spec.get("select"):
                    if labels is None:
                        if info is None:
                            info = _json(info_raw) or {}
                        labels = labels_in(process, info)
                    if not selects(spec["select"], labels):
                        continue
                state, err = "pending", None
            elif spec is not None and current[sid] and raw.find(applied_marks[sid]) >= 0:
                # The common case, told without parsing: this version, applied, no error.
                state, err = "applied", None
            else:
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
_PARENT = {True: b'"parent"', False: '"parent"'}


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
        Column("processes"),
        *(Column(state) for state in STATES),
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
