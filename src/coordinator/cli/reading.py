"""The commands that read what the fleet holds and reports: list, status, processes,
tail, exceptions, stats, audit."""

from __future__ import annotations

import click

from coordinator._click import (
    Option,
    global_options,
    settings_of,
    wide_option,
)
from coordinator.cli.group import cli
from coordinator.commands import inspect as inspecting
from coordinator.commands.tail import DEFAULT_LINES, parse_duration
from coordinator.commands.tail import tail as run_tail
from coordinator.fleet.census import SUMMARY_ABOVE
from coordinator.fleet.specs import (
    check_spec_id,
)
from coordinator.fleet.state import LIVE_SECONDS


@cli.command("list")
@wide_option
@global_options
@click.pass_context
def list_(ctx: click.Context, wide: bool) -> None:
    """List the specs with their target, instrument and remaining lifespan."""
    settings = settings_of(ctx)
    inspecting.list_specs(settings, as_json=settings.json, wide=wide)


@cli.command()
@click.argument("spec_id", required=False, metavar="[ID]")
@click.option(
    "--summary/--no-summary",
    default=None,
    help="One row per spec with the count of processes in each state and the most "
    f"frequent errors [default: --summary above {SUMMARY_ABOVE} processes].",
)
@wide_option
@global_options
@click.pass_context
def status(ctx: click.Context, spec_id: str | None, summary: bool | None, wide: bool) -> None:
    """Show, per process and spec, its state, whether the process is live, and any error.

    Each spec counts only the processes its select chooses.
    """
    settings = settings_of(ctx)
    inspecting.status(settings, spec_id, as_json=settings.json, wide=wide, summary=summary)


@cli.command()
@click.option(
    "--max-age",
    type=click.FloatRange(min=0, min_open=True),
    default=LIVE_SECONDS,
    show_default=True,
    metavar="S",
    help="Count a process live if it heartbeat within S seconds.",
)
@click.option("--by", metavar="LABEL", help="Count the live processes per value of a label.")
@global_options
@click.pass_context
def processes(ctx: click.Context, max_age: float, by: str | None) -> None:
    """List the live processes with their last heartbeat and labels."""
    settings = settings_of(ctx)
    if by is not None:
        inspecting.processes_by(settings, by, max_age=max_age, as_json=settings.json)
        return
    inspecting.processes(settings, max_age=max_age, as_json=settings.json)


@cli.command()
@click.argument("spec_ids", nargs=-1, metavar="[ID]...")
@click.option(
    "--process",
    "process_glob",
    metavar="GLOB",
    help="Only the output of processes whose id matches GLOB (web-*, *:4242).",
)
@click.option(
    "-n",
    "--lines",
    "count",
    cls=Option,
    type=click.IntRange(min=0),
    show_default=f"{DEFAULT_LINES}; every entry of --since",
    metavar="N",
    help="Print the last N entries.",
)
@click.option(
    "--since",
    metavar="DURATION",
    help="Only entries of the last DURATION: 30s, 5m, 1h30m, 2d.",
)
@click.option(
    "-f", "--follow", is_flag=True, help="Print new entries as they arrive, until Ctrl-C."
)
@wide_option
@global_options
@click.pass_context
def tail(
    ctx: click.Context,
    spec_ids: tuple[str, ...],
    process_glob: str | None,
    count: int | None,
    since: str | None,
    follow: bool,
    wide: bool,
) -> None:
    """Print the probes' output from the fleet's output stream, oldest first.

    One line per entry: TIME PROCESS SPEC VALUE (--json: one JSON object per line). IDs
    and --process choose whose output; -f follows it until Ctrl-C, which exits 0.
    """
    settings = settings_of(ctx)
    for spec_id in spec_ids:
        check_spec_id(spec_id)
    seconds = parse_duration(since) if since is not None else None
    if count is None:
        count = None if seconds is not None else DEFAULT_LINES
    run_tail(
        settings,
        spec_ids,
        process_glob=process_glob,
        count=count,
        since=seconds,
        follow=follow,
        as_json=settings.json,
        wide=wide,
    )


@cli.command()
@click.argument("spec_id", metavar="ID")
@click.argument("fingerprint", required=False, metavar="[FINGERPRINT]")
@wide_option
@global_options
@click.pass_context
def exceptions(ctx: click.Context, spec_id: str, fingerprint: str | None, wide: bool) -> None:
    """Show what an exception probe counted across the fleet, most frequent first.

    One row per fingerprint: FINGERPRINT TYPE COUNT PROCESSES LAST-SEEN MESSAGE. With
    FINGERPRINT (or the start of one): its captures, each a traceback with the locals of
    its frames.
    """
    from coordinator.commands.exceptions import exceptions as show_exceptions

    settings = settings_of(ctx)
    show_exceptions(settings, spec_id, fingerprint, as_json=settings.json, wide=wide)


@cli.command()
@click.argument("spec_id", metavar="ID")
@click.option(
    "--by-process", is_flag=True, help="A row per process for each group, beside the others."
)
@click.option(
    "--by-label",
    metavar="LABEL",
    help="A row per value of a process label (version, ...) for each group, to compare them.",
)
@click.option("-f", "--follow", is_flag=True, help="Show them again every second, until Ctrl-C.")
@wide_option
@global_options
@click.pass_context
def stats(
    ctx: click.Context,
    spec_id: str,
    by_process: bool,
    by_label: str | None,
    follow: bool,
    wide: bool,
) -> None:
    """Show the fleet's statistics of a stats or distinct probe.

    One row per group (`all` without --by): GROUP COUNT MIN P50 P90 P99 MAX MEAN, with the
    distribution beside them in a terminal; DISTINCT for a distinct probe. Quantiles are
    within 1 % of the fleet's true ones. Exits 1 when the spec does not exist or is of
    another type.
    """
    from coordinator.commands.stats import show_stats

    if by_process and by_label is not None:
        raise click.UsageError("give --by-process or --by-label, not both")
    settings = settings_of(ctx)
    show_stats(
        settings,
        spec_id,
        by_process=by_process,
        by_label=by_label,
        follow=follow,
        as_json=settings.json,
        wide=wide,
    )


@cli.command()
@click.option(
    "-n", "--lines", "count", type=click.IntRange(min=0), default=20, show_default=True,
    metavar="N", help="Print the last N entries.",
)  # fmt: skip
@click.option("--spec", "spec_id", metavar="ID", help="Only the entries of spec ID.")
@wide_option
@global_options
@click.pass_context
def audit(ctx: click.Context, count: int, spec_id: str | None, wide: bool) -> None:
    """Print who published, removed, approved or rolled out which spec, oldest first.

    One row per change: TIME WHO ACTION SPEC DETAIL (--json: a list of objects)."""
    from coordinator.commands.audit import audit as run_audit

    settings = settings_of(ctx)
    run_audit(settings, count=count, spec_id=spec_id, as_json=settings.json, wide=wide)
