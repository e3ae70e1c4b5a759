"""How the fleet's answers to specs are told: one line per process, the errors in full, and
the one-line summaries of what failed or is still pending (``publish --wait``, ``status``,
the canary)."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import click

from coordinator.fleet.state import ProcessResult
from coordinator.view.output import Column, ago, format_time, print_table

__all__ = (
    "NOT_SEEN",
    "Results",
    "failures",
    "join_names",
    "pending",
    "plural",
    "print_full_errors",
    "print_results",
)

Results = Mapping[str, Mapping[str, ProcessResult]]


def plural(count: int, one: str, many: str) -> str:
    return f"{count} {one if count == 1 else many}"


def join_names(names: list[str], most: int = 5) -> str:
    """Join names, the first few only: `a, b, c, d, e and 95 more`."""
    more = f" and {len(names) - most} more" if len(names) > most else ""
    return ", ".join(names[:most]) + more


def print_results(
    results: Results,
    is_live: Callable[[str], bool],
    *,
    wide: bool = False,
    err: bool = False,
    empty: str | None = None,
    no_probes_rows: bool = False,
) -> None:
    """Print each process's result for each spec: the table of status and publish --wait."""
    # APPLIED LM (the lastmodified each process applied) is in --wide only: STATE already says
    # whether it is the spec's current one (applied, error) or an older one (stale), and 20
    # more columns would leave no room at 80 columns next to a pod-sized process id.
    rows: list[tuple[object, ...]] = []
    for process, entries in sorted(results.items()):
        live = "yes" if is_live(process) else "no"
        for spec_id, r in sorted(entries.items()):
            if wide:
                rows.append(
                    (process, spec_id, r.state, live, format_time(r.lm), format_time(r.at))
                    + (r.fired, r.dropped, r.errors, r.err)
                )
            else:
                rows.append((process, spec_id, r.state, live, ago(r.at), r.fired, r.dropped, r.err))
        if not entries and no_probes_rows:
            rows.append((process, None, "no probes", live, *((None,) * (7 if wide else 4))))
    # FIRED says whether the probe is hit at all, DROP what its rate limit (or a full output
    # buffer) dropped; ERRORS (an instrument stops at its first, and STATE and ERROR say so)
    # is in --wide and JSON, to keep 80 columns.
    if wide:
        middle = [Column("applied lm"), Column("at"), Column("fired"), Column("dropped")]
        middle.append(Column("errors"))
    else:
        middle = [Column("at"), Column("fired"), Column("drop")]
    columns = [
        Column("process"),
        Column("spec"),
        Column("state"),
        Column("live"),
        *middle,
        Column("error", cut=True),
    ]
    # A long spec ID next to a long process id leaves no room at 80 columns: the rows are
    # then grouped under their spec.
    print_table(columns, rows, empty=empty, wide=wide, err=err, group=1)


def print_full_errors(results: Results) -> None:
    """Print each distinct error under the table, in full, with the processes reporting it."""
    by_error: dict[tuple[str, str], list[str]] = {}
    for process, entries in sorted(results.items()):
        for spec_id, r in sorted(entries.items()):
            if r.err:
                by_error.setdefault((spec_id, r.err), []).append(process)
    if not by_error:
        return
    click.echo("\nErrors in full:")
    for (spec_id, text), names in sorted(by_error.items()):
        click.echo(f"  {spec_id} on {join_names(names)}: {text}")


def failures(results: Results, spec_ids: list[str], waited: Mapping[str, list[str]]) -> str:
    """Say, per spec, how many of the waited processes reported an error, and which."""
    parts = []
    for spec_id in spec_ids:
        by_error: dict[str, list[str]] = {}
        for process in waited[spec_id]:
            r = results.get(process, {}).get(spec_id)
            if r is not None and r.state == "error" and r.err:
                by_error.setdefault(r.err, []).append(process)
        count = sum(len(ps) for ps in by_error.values())
        if count:
            detail = "; ".join(f"{join_names(ps)}: {text}" for text, ps in by_error.items())
            parts.append(
                f"{spec_id}: {count} of {plural(len(waited[spec_id]), 'process', 'processes')} "
                f"reported an error ({detail})"
            )
    return "; ".join(parts)


def pending(results: Results, spec_ids: list[str], waited: Mapping[str, list[str]]) -> str:
    parts = []
    for spec_id in spec_ids:
        chosen = waited[spec_id]
        pending = [p for p in chosen if not results.get(p, {}).get(spec_id, NOT_SEEN).done]
        if pending:
            parts.append(
                f"{spec_id}: {len(pending)} of {plural(len(chosen), 'process', 'processes')} "
                f"have not applied it ({join_names(pending)})"
            )
    return "; ".join(parts)


NOT_SEEN = ProcessResult("", "", "pending", None, None, None)
