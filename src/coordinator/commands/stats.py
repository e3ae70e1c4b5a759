"""`coordinator stats ID`: the fleet's statistics of a stats or distinct spec, read from
what every process wrote (``diagnose_redis.publisher.aggregates``) and merged here.

A row per group (``all`` without ``--by``); ``--by-process`` or ``--by-label LABEL`` splits
each group by process or by a label's value (section 8's labels, as each process wrote them
with its statistics, so that those of processes gone are still counted). ``-f`` shows them
again every second, in place on a terminal, until Ctrl-C (exit 0).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import click

from coordinator._context import Settings
from coordinator._errors import OperationFailed
from coordinator.fleet.specs import check_spec_id
from coordinator.view.output import emit_json, format_time, table_width, to_jsonable
from coordinator.view.stats import DistinctRow, render_stats, row_document
from diagnose.sketch import Sketch
from diagnose_redis.exceptions import WireError
from diagnose_redis.protocol import AGGREGATE_KINDS
from diagnose_redis.publisher import (
    DistinctPart,
    Incarnation,
    count_distinct,
    read_incarnations,
)

__all__ = ("REFRESH_SECONDS", "Report", "read_report", "show_stats")

REFRESH_SECONDS = 1.0
#: What --by-label shows for a process that has no such label.
NO_LABEL = "-"

Row = Sketch | DistinctRow


@dataclass
class Report:
    """The statistics of one spec: the fleet's per group, and per process or label value."""

    spec_id: str
    kind: str
    spec: dict[str, Any]
    fleet: dict[str, Row]
    split_by: str | None = None
    split: dict[str, dict[str, Row]] | None = None
    processes: int = 0
    at: float = field(default_factory=time.time)

    def document(self) -> dict[str, Any]:
        """Return the report as --json prints it."""
        document: dict[str, Any] = {
            "spec": self.spec_id,
            "type": self.kind,
            "groups": {g: row_document(row) for g, row in self.fleet.items()},
        }
        if self.split is not None:
            parts = {
                name: {g: row_document(row) for g, row in groups.items()}
                for name, groups in self.split.items()
            }
            if self.split_by is None:
                document["processes"] = parts
            else:
                document["by_label"] = self.split_by
                document["labels"] = parts
        return document


def _spec(store: Any, spec_id: str) -> dict[str, Any]:
    """Return the spec, or fail (exit 1) when there is none or it has no statistics."""
    try:
        spec = store.get(spec_id)
    except WireError as exc:
        raise OperationFailed(f"spec {spec_id} cannot be read: {exc}")
    if spec is None:
        raise OperationFailed(f"no such spec: {spec_id}")
    kind = spec.get("instrument", {}).get("type")
    if kind not in AGGREGATE_KINDS:
        raise OperationFailed(
            f"spec {spec_id} is a {kind} probe: statistics are kept for stats and distinct "
            "probes only"
        )
    return spec


def _merge(client: Any, kind: str, incarnations: Iterable[Incarnation]) -> dict[str, Row]:
    """Merge the groups of some incarnations into one row per group."""
    if kind == "stats":
        merged: dict[str, Sketch] = {}
        for incarnation in incarnations:
            for group, sketch in incarnation.groups.items():
                merged.setdefault(group, Sketch()).merge(sketch)
        return dict(merged)
    parts: dict[str, list[DistinctPart]] = {}
    for incarnation in incarnations:
        for group, part in incarnation.groups.items():
            parts.setdefault(group, []).append(part)
    rows: dict[str, Row] = {}
    for group, found in parts.items():
        distinct, exact = count_distinct(client, found)
        count = sum(part.count for part in found)
        rows[group] = DistinctRow(distinct, exact, count, sum(part.invalid for part in found))
    return rows


def read_report(
    settings: Settings, spec_id: str, *, by_process: bool = False, by_label: str | None = None
) -> Report:
    """Read the spec and its statistics, merged for the fleet and as split."""
    store = settings.store()
    spec = _spec(store, spec_id)
    kind = spec["instrument"]["type"]
    client = store.client
    incarnations = read_incarnations(client, store.keys, spec_id, kind)
    report = Report(spec_id, kind, spec, _merge(client, kind, incarnations))
    report.processes = len({i.process for i in incarnations})
    if by_process or by_label is not None:
        members: dict[str, list[Incarnation]] = {}
        for incarnation in incarnations:
            if by_label is None:
                name = incarnation.process
            else:
                name = incarnation.labels.get(by_label, NO_LABEL)
            members.setdefault(name, []).append(incarnation)
        report.split_by = by_label
        report.split = {name: _merge(client, kind, found) for name, found in members.items()}
    return report


def _heading(report: Report) -> str:
    instrument = report.spec.get("instrument", {})
    what = f"{report.kind} of {instrument.get('value')!s}"
    by = instrument.get("custom", {}).get("by")
    if by:
        what += f" by {by}"
    word = "process" if report.processes == 1 else "processes"
    return (
        f"{report.spec_id}: {what} at {report.spec.get('target')}, "
        f"{report.processes} {word}, {format_time(report.at)}"
    )


def _text(report: Report, *, wide: bool, histograms: bool) -> str:
    """Return the report as people read it."""
    lines = [_heading(report)]
    if not report.fleet:
        lines.append(f"No statistics yet for {report.spec_id}: no process has written any.")
        return "\n".join(lines)
    table = render_stats(
        report.fleet,
        report.split,
        report.split_by,
        width=table_width(wide),
        histograms=histograms,
    )
    lines.append(table)
    invalid = sum(row.invalid for row in report.fleet.values())
    if invalid:
        kind = "numbers" if report.kind == "stats" else "countable values"
        lines.append(f"{invalid} values were not {kind} (counted as invalid).")
    if report.kind == "distinct" and any(
        isinstance(row, DistinctRow) and not row.exact for row in report.fleet.values()
    ):
        lines.append("~: estimated (HyperLogLog, within 2 %); the other counts are exact.")
    return "\n".join(lines)


def _isatty() -> bool:
    try:
        return sys.stdout.isatty()
    except (AttributeError, ValueError):
        return False


def show_stats(
    settings: Settings,
    spec_id: str,
    *,
    by_process: bool = False,
    by_label: str | None = None,
    follow: bool = False,
    as_json: bool = False,
    wide: bool = False,
    histograms: bool | None = None,
) -> None:
    """Print the statistics of a spec, once or (follow) every second until Ctrl-C."""
    check_spec_id(spec_id)
    tty = _isatty()
    if histograms is None:
        histograms = tty
    if not follow:
        report = read_report(settings, spec_id, by_process=by_process, by_label=by_label)
        if as_json:
            emit_json(report.document())
        else:
            click.echo(_text(report, wide=wide, histograms=histograms))
        return
    shown = 0
    try:
        while True:
            report = read_report(settings, spec_id, by_process=by_process, by_label=by_label)
            if as_json:
                click.echo(json.dumps(to_jsonable(report.document()), sort_keys=True))
            else:
                text = _text(report, wide=wide, histograms=histograms)
                if tty and shown:
                    # Back to where the last report began, and clear from there down.
                    click.echo(f"\x1b[{shown}F\x1b[J", nl=False)
                elif shown:
                    click.echo()
                click.echo(text)
                shown = text.count("\n") + 1
            sys.stdout.flush()
            time.sleep(REFRESH_SECONDS)
    except KeyboardInterrupt:
        return  # Ctrl-C is how a person stops following: not an error
