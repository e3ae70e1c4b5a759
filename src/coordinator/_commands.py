"""What each data command does against the store, and how it prints its answer."""

from __future__ import annotations

import datetime as _dt
import time
from typing import Any

import click

from ._context import Settings
from ._errors import OperationFailed, WaitTimedOut
from ._output import ago, emit_json, format_duration, format_time, print_table
from ._wait import ProcessResult, report_state, wait_for_spec

__all__ = (
    "list_specs",
    "print_results",
    "processes",
    "publish",
    "remove",
    "status",
)


def _for_store(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if k != "applied"}


def publish(
    settings: Settings,
    specs: dict[str, dict[str, Any]],
    *,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Store and publish validated specs; with wait, follow the fleet applying them."""
    store = settings.store()
    if len(specs) == 1:
        [(spec_id, spec)] = specs.items()
        version = store.put(spec_id, _for_store(spec))
    else:
        version = store.put_many({k: _for_store(v) for k, v in specs.items()})
    stored = {spec_id: store.get(spec_id) or spec for spec_id, spec in specs.items()}
    if not wait:
        if as_json:
            emit_json(
                {
                    "ids": list(specs),
                    "version": version,
                    "lastmodified": {k: v["lastmodified"] for k, v in stored.items()},
                }
            )
        else:
            for spec_id in specs:
                click.echo(spec_id)
        return
    _publish_and_wait(store, stored, version, timeout, as_json)


def _publish_and_wait(
    store: Any,
    stored: dict[str, dict[str, Any]],
    version: int,
    timeout: float,
    as_json: bool,
) -> None:
    # Pre-fork parents serve nothing: nobody waits for them.
    live = sorted(store.processes(parents=False))
    if not live:
        if as_json:
            emit_json({"ids": list(stored), "version": version, "processes": {}})
        else:
            for spec_id in stored:
                click.echo(spec_id)
        raise WaitTimedOut("published, but no processes are online to wait for")
    deadline = time.monotonic() + timeout
    all_results: dict[str, list[ProcessResult]] = {}
    complete = True
    for spec_id, spec in stored.items():
        remaining = max(0.0, deadline - time.monotonic())
        results, in_time = wait_for_spec(
            store,
            spec_id,
            spec["lastmodified"],
            live,
            remaining,
            show_progress=True,
            alive=lambda: set(store.processes(parents=False)),
        )
        all_results[spec_id] = results
        complete = complete and in_time
    if as_json:
        emit_json(
            {
                "ids": list(stored),
                "version": version,
                "processes": {
                    spec_id: {r.process: r.as_dict() for r in results}
                    for spec_id, results in all_results.items()
                },
            }
        )
    else:
        for spec_id in stored:
            click.echo(spec_id)
        print_results(all_results)
    failed = [r for results in all_results.values() for r in results if r.state == "error"]
    if not complete:
        pending = sorted(
            {
                r.process
                for rs in all_results.values()
                for r in rs
                if r.state not in ("applied", "error")
            }
        )
        raise WaitTimedOut(
            f"timed out after {timeout:g}s: {len(pending)} of {len(live)} processes "
            f"have not applied it ({', '.join(pending)})"
        )
    if failed:
        raise OperationFailed(
            f"{len(failed)} of {len(live)} processes reported an error: "
            + "; ".join(f"{r.process}: {r.err}" for r in failed)
        )


def print_results(all_results: dict[str, list[ProcessResult]]) -> None:
    """Print each process's result for each spec as a table."""
    rows = [
        (r.process, spec_id, r.state, format_time(r.lm), r.err, format_time(r.at))
        for spec_id, results in all_results.items()
        for r in results
    ]
    print_table(("process", "spec", "state", "applied lm", "error", "at"), rows)


def remove(settings: Settings, spec_ids: list[str], *, as_json: bool) -> None:
    """Delete specs and publish their removal."""
    removed = list(settings.store().remove(*spec_ids))
    missing = [spec_id for spec_id in spec_ids if spec_id not in removed]
    if as_json:
        emit_json({"removed": removed, "missing": missing})
    else:
        for spec_id in removed:
            click.echo(spec_id)
        for spec_id in missing:
            click.echo(f"{spec_id}: no such spec", err=True)


def _remaining(store: Any, spec_id: str) -> float | None:
    pttl = store.pttl(spec_id)
    return None if pttl is None else pttl / 1000.0


def list_specs(settings: Settings, *, as_json: bool) -> None:
    """List the specs with target, instrument and remaining lifespan."""
    store = settings.store()
    specs = store.specs()
    version = store.version()
    entries = {
        spec_id: {**spec, "remaining_seconds": _remaining(store, spec_id)}
        for spec_id, spec in sorted(specs.items())
    }
    if as_json:
        emit_json({"version": version, "specs": entries})
        return
    rows = []
    for spec_id, spec in entries.items():
        instrument = spec.get("instrument", {})
        rows.append(
            (
                spec_id,
                spec.get("target"),
                instrument.get("type"),
                instrument.get("name"),
                instrument.get("event"),
                instrument.get("value"),
                format_duration(spec["remaining_seconds"]),
                format_time(spec.get("lastmodified")),
            )
        )
    print_table(
        ("id", "target", "type", "name", "event", "value", "remaining", "lastmodified"),
        rows,
        empty="No specs.",
    )


def _process_info(report: dict[str, Any]) -> Any:
    return report.get("_process")


def status(settings: Settings, spec_id: str | None, *, as_json: bool) -> None:
    """Show per process and spec what was applied, marking processes that lag behind."""
    store = settings.store()
    specs = store.specs()
    specs_shown: dict[str, Any] = specs
    if spec_id is not None:
        specs_shown = {spec_id: specs[spec_id]} if spec_id in specs else {}
    reports = store.status(spec_id) if spec_id is not None else store.status()
    live = store.processes()
    rows_json: dict[str, dict[str, Any]] = {}
    rows: list[tuple[object, ...]] = []
    for process in sorted(set(reports) | set(live)):
        report = reports.get(process) or {}
        entries: dict[str, Any] = {}
        ids = sorted((set(report) - {"_process"}) | set(specs_shown))
        if spec_id is not None:
            ids = [spec_id]
        for sid in ids:
            current = specs.get(sid)
            lastmodified = current.get("lastmodified") if current else None
            entry = report.get(sid)
            state = report_state(entry, lastmodified) if current else "removed"
            if current is None and entry is None:
                continue
            entry = entry if isinstance(entry, dict) else {}
            entries[sid] = {
                "state": state,
                "lm": entry.get("lm"),
                "err": entry.get("err"),
                "at": entry.get("at"),
                "current_lm": lastmodified,
            }
            rows.append(
                (
                    process,
                    sid,
                    state,
                    format_time(entry.get("lm")),
                    entry.get("err"),
                    ago(entry.get("at")) if entry.get("at") else None,
                )
            )
        if not entries and spec_id is None:
            rows.append((process, None, "no probes", None, None, None))
        rows_json[process] = {
            "live": process in live,
            "process": _process_info(report),
            "specs": entries,
        }
    if as_json:
        emit_json({"processes": rows_json})
        return
    print_table(
        ("process", "spec", "state", "applied lm", "error", "at"),
        rows,
        empty="No process reports." if spec_id is None else f"No reports for {spec_id}.",
    )


def processes(settings: Settings, *, max_age: float | None, as_json: bool) -> None:
    """List live processes and their last heartbeat, Celery style; pre-fork parents are
    shown as such and not counted."""
    store = settings.store()
    fleet = store.fleet() if max_age is None else store.fleet(max_age=max_age)
    count = sum(1 for entry in fleet.values() if not entry.parent)
    parents = len(fleet) - count
    if as_json:
        processes: dict[str, Any] = {}
        for pid, entry in sorted(fleet.items()):
            shown: dict[str, Any] = {
                "heartbeat": _dt.datetime.fromtimestamp(entry.heartbeat, _dt.UTC),
                "role": entry.role,
            }
            if entry.parent:
                shown["children"] = entry.children
            processes[pid] = shown
        emit_json({"count": count, "parents": parents, "processes": processes})
        return
    if parents:
        rows: list[tuple[object, ...]] = [
            (pid, format_time(e.heartbeat), ago(e.heartbeat), _role(e))
            for pid, e in sorted(fleet.items())
        ]
        print_table(("process", "heartbeat", "age", "role"), rows)
    elif fleet:
        rows = [
            (pid, format_time(e.heartbeat), ago(e.heartbeat)) for pid, e in sorted(fleet.items())
        ]
        print_table(("process", "heartbeat", "age"), rows)
    noun = "process" if count == 1 else "processes"
    tail = ""
    if parents:
        tail = f", and {parents} pre-fork parent{'' if parents == 1 else 's'}"
    click.echo(f"{count} {noun} online{tail}.")


def _role(entry: Any) -> str:
    if not entry.parent:
        return "-"
    children = entry.children
    return "parent" if children is None else f"parent of {children}"
