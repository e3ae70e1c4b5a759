"""The table of `coordinator processes`: live processes, their heartbeat, role and labels."""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping
from typing import Any

import click

from coordinator.view.output import Column, ago, format_time, print_table
from coordinator.view.results import join_names, plural
from diagnose_redis.protocol import labels_in

__all__ = ("print_processes", "process_document")


def print_processes(
    live: Mapping[str, Any], late: Mapping[str, Any], *, count: int, parents: int, max_age: float
) -> None:
    """Print the live processes as a table, the count online, and a warning naming the late."""
    columns = [Column("process"), Column("heartbeat"), Column("age")]
    if parents:
        columns.append(Column("role"))
    columns.append(Column("labels", cut=True))
    # Heartbeats fall within a few seconds of each other: format each second once.
    times: dict[int, tuple[str, str]] = {}

    def when(beat: float) -> tuple[str, str]:
        second = int(beat)
        if second not in times:
            times[second] = (format_time(second), ago(second))
        return times[second]

    rows = [
        (pid, *when(e.heartbeat)) + ((_role(e),) if parents else ()) + (_labels_text(pid, e),)
        for pid, e in sorted(live.items())
    ]
    if rows:
        print_table(columns, rows)
    tail = f", and {plural(parents, 'pre-fork parent', 'pre-fork parents')}" if parents else ""
    click.echo(f"{plural(count, 'process', 'processes')} online{tail}.")
    if late:
        click.echo(
            f"warning: {plural(len(late), 'process is', 'processes are')} late (no heartbeat "
            f"for over {max_age:g}s) and not counted: "
            + join_names(
                [f"{pid} (last heartbeat {ago(e.heartbeat)})" for pid, e in sorted(late.items())]
            ),
            err=True,
        )


def _labels_text(process: str, entry: Any) -> str:
    """Show a process's labels but its id (the first column), host last."""
    labels = labels_in(process, entry.info)
    labels.pop("process", None)
    host = labels.pop("host", None)
    pairs = [f"{k}={v}" for k, v in sorted(labels.items())]
    return ",".join(pairs + ([f"host={host}"] if host else []))


def process_document(entry: Any, process: str = "") -> dict[str, Any]:
    """Return what `processes --json` shows of one process."""
    shown: dict[str, Any] = {
        "heartbeat": _utc(entry.heartbeat),
        "role": entry.role,
        "labels": labels_in(process, entry.info),
    }
    if entry.parent:
        shown["children"] = entry.children
    # The signing key ids it holds and the types its two-person rule covers, if declared.
    for name in ("keys", "approval"):
        if isinstance(entry.info.get(name), list):
            shown[name] = entry.info[name]
    return shown


def _role(entry: Any) -> str:
    if not entry.parent:
        return "-"
    children = entry.children
    return "parent" if children is None else f"parent of {children}"


def _utc(unix_time: float) -> _dt.datetime:
    return _dt.datetime.fromtimestamp(float(unix_time), _dt.UTC)
