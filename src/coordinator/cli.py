"""The `coordinator` command line: its commands, options, help texts and exit codes."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from types import FrameType

import click
from click.shell_completion import get_completion_class

from coordinator._click import (
    CoordinatorGroup,
    Option,
    connection_options,
    global_options,
    seconds_option,
    settings_of,
    wide_option,
)
from coordinator._context import DEFAULT_PREFIX, DEFAULT_URL, REDIS_DEADLINE, Settings
from coordinator._errors import BadInput, Terminated
from coordinator.commands import inspect as inspecting
from coordinator.commands import publish as publishing
from coordinator.commands.canary import CANARY_SECONDS
from coordinator.commands.tail import DEFAULT_LINES, parse_duration
from coordinator.commands.tail import tail as run_tail
from coordinator.fleet.census import SUMMARY_ABOVE
from coordinator.fleet.specs import (
    DEFAULT_LIFESPAN,
    check_spec_id,
    parse_custom,
    parse_lifespan,
    parse_select,
    spec_from_flags,
    specs_from_file,
    with_select,
)
from coordinator.fleet.state import LIVE_SECONDS
from diagnose.spec import CONDITION_TYPES, MAX_FIRST, MAX_FRAMES
from diagnose_redis.protocol import AGGREGATE_KINDS

__all__ = ("cli", "main")


EPILOG = f"""\b
Exit codes:
  0    success
  1    an operation failed: a process reported an error, Redis refused a
       command, specs are hidden (signed with another secret), no such spec
  2    bad usage or an invalid spec
  3    --wait timed out, or no process was online to wait for
  4    Redis unreachable (no answer within {REDIS_DEADLINE:g}s)
  130  interrupted by Ctrl-C; 143 by SIGTERM

\b
Examples:
  coordinator publish cart-total -t shop.pricing.total --value result --wait
  coordinator --redis-url redis://redis:6379/0 status cart-total
"""


@click.group(
    cls=CoordinatorGroup,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=EPILOG,
)
@click.option(
    "--redis-url",
    cls=Option,
    envvar="DIAGNOSE_REDIS_URL",
    show_envvar=True,
    show_default=DEFAULT_URL,
    metavar="URL",
    help="Redis URL: redis://, rediss://, unix://.",
)
@click.option(
    "--prefix",
    envvar="DIAGNOSE_PREFIX",
    show_envvar=True,
    default=DEFAULT_PREFIX,
    show_default=True,
    help="Key prefix of the fleet.",
)
@click.option(
    "--secret",
    cls=Option,
    envvar="DIAGNOSE_SECRET",
    show_envvar=True,
    show_default="none (unsigned)",
    metavar="TEXT",
    help="Shared secret that signs specs and messages.",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.version_option(package_name="diagnose-fleet", prog_name="coordinator")
@click.pass_context
def cli(
    ctx: click.Context, redis_url: str | None, prefix: str, secret: str | None, as_json: bool
) -> None:
    """Add probes to live Python processes across a fleet, through Redis.

    Global options go before or after the command.
    """
    if not prefix:
        raise BadInput("--prefix must not be empty")
    settings = Settings(
        redis_url=redis_url or None, prefix=prefix, secret=secret or None, json=as_json
    )
    ctx.obj = settings
    ctx.call_on_close(settings.close)


@cli.command()
@click.argument("spec_id", required=False, metavar="[ID]")
@click.option("--target", "-t", metavar="DOTTED.PATH", help="Function to probe: pkg.module.func.")
@click.option("--type", "itype", default="log", show_default=True, help="Instrument type.")
@click.option(
    "--value",
    metavar="EXPR",
    help="Python expression the probe records (for a snapshot: an optional condition).",
)
@click.option("--name", "-n", cls=Option, show_default="the ID", help="Instrument name.")
@click.option(
    "--event",
    cls=Option,
    type=click.Choice(["call", "return", "end", "line"]),
    show_default="return; line with --line",
    help="When the expression is evaluated.",
)
@click.option(
    "--line",
    type=click.IntRange(min=1),
    metavar="N",
    help="Fire each time line N of the target's source file is about to run (event line).",
)
@click.option(
    "--rate",
    type=click.FloatRange(min=0, min_open=True),
    metavar="N",
    help="Fire at most N times per second per process (custom.rate; for exception: "
    "captures, every raise is counted) "
    "[default: 100 for log, 1 for snapshot and exception, unlimited for hist and incr; "
    "none applies to stats and distinct].",
)
@click.option(
    "--frames",
    type=click.IntRange(1, MAX_FRAMES),
    metavar="N",
    help="For --type exception: frames captured per exception, innermost last [default: 5].",
)
@click.option(
    "--first",
    type=click.IntRange(1, MAX_FIRST),
    metavar="K",
    help="For --type exception: exceptions captured per fingerprint across the fleet "
    "(all are counted) [default: 3].",
)
@click.option(
    "--lifespan",
    default=str(DEFAULT_LIFESPAN).rstrip("0").rstrip("."),
    show_default=True,
    metavar="MIN",
    help="Minutes until the probe expires (fractions allowed), or 'none' for never.",
)
@click.option(
    "--custom",
    cls=Option,
    metavar="JSON",
    show_default="{}",
    help="Instrument's custom settings, a JSON object.",
)
@click.option(
    "--file",
    "-f",
    "spec_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSON or YAML file holding a map of ID to spec; replaces the flags above.",
)
@click.option(
    "--by",
    metavar="EXPR",
    help="stats and distinct: group the values by this expression's value (its text, "
    "at most 64 characters; at most 100 groups per process, the rest under 'other').",
)
@click.option(
    "--select",
    "select",
    multiple=True,
    metavar="LABEL=GLOB",
    help="Only processes whose label matches the glob (repeatable: all must match; "
    "a label given twice matches either glob).",
)
@click.option("--wait", is_flag=True, help="Wait until every live process has applied it.")
@click.option(
    "--timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="S",
    help="Seconds --wait waits.",
)
@click.option(
    "--canary",
    type=click.IntRange(min=1),
    metavar="N",
    help="Publish to N matching processes first; widen to all only if they report no "
    "error for --canary-for seconds (implies --wait).",
)
@click.option(
    "--canary-for",
    type=click.FloatRange(min=0),
    default=CANARY_SECONDS,
    show_default=True,
    metavar="S",
    help="Seconds the canary processes must run the probe without trouble.",
)
@click.option(
    "--needs-approval",
    is_flag=True,
    help="Hold it pending until another key approves it (coordinator approve), whatever "
    "its type; types the fleet's DIAGNOSE_REQUIRE_APPROVAL covers are always held.",
)
@wide_option
@global_options
@click.pass_context
def publish(
    ctx: click.Context,
    spec_id: str | None,
    target: str | None,
    itype: str,
    value: str | None,
    name: str | None,
    event: str | None,
    line: int | None,
    rate: float | None,
    frames: int | None,
    first: int | None,
    lifespan: str,
    custom: str | None,
    spec_file: Path | None,
    by: str | None,
    select: tuple[str, ...],
    wait: bool,
    timeout: float,
    canary: int | None,
    canary_for: float,
    needs_approval: bool,
    wide: bool,
) -> None:
    """Validate specs, store them with their lifespan as TTL, and publish them; print the IDs.

    The IDs are printed as soon as the specs are published; --wait then shows each
    process's result on stderr. Specs under the two-person rule are stored pending instead,
    until another key approves them (coordinator approve ID).
    """
    settings = settings_of(ctx)
    if spec_file is not None:
        if spec_id is not None or target is not None or value is not None:
            raise click.UsageError("give either --file or ID with --target and --value, not both")
        if any(flag is not None for flag in (line, rate, frames, first, by)):
            raise click.UsageError(
                "--line, --rate, --frames, --first and --by go with ID and --target, not --file"
            )
        specs = specs_from_file(spec_file)
    else:
        if spec_id is None:
            raise click.UsageError("missing ID (or --file FILE)")
        needed = [("--target", target)]
        if itype not in CONDITION_TYPES:  # their value is an optional condition
            needed.append(("--value", value))
        if itype != "exception" and (frames is not None or first is not None):
            raise click.UsageError("--frames and --first go with --type exception")
        missing = [flag for flag, given in needed if not given]
        if missing:
            raise click.UsageError(f"missing option {' and '.join(missing)}")
        if line is not None and event not in (None, "line"):
            raise click.UsageError(f"--line fires at a line: it takes no --event {event}")
        if event == "line" and line is None:
            raise click.UsageError("--event line needs --line N")
        if by is not None and itype not in AGGREGATE_KINDS:
            raise click.UsageError(f"--by groups stats and distinct probes, not {itype}")
        if rate is not None and itype in AGGREGATE_KINDS:
            raise click.UsageError(f"--rate does not apply to {itype}: it emits nothing per call")
        specs = {
            spec_id: spec_from_flags(
                spec_id,
                target=target or "",
                itype=itype,
                value=value,
                name=name,
                event="line" if line is not None else event or "return",
                line=line,
                rate=rate,
                frames=frames,
                first=first,
                lifespan=parse_lifespan(lifespan),
                custom=parse_custom(custom),
                by=by,
            )
        }
    chosen = parse_select(select)
    specs = {spec_id: with_select(spec_id, spec, chosen) for spec_id, spec in specs.items()}
    if canary is not None:
        from coordinator.commands.canary import Canary, publish_canary

        if needs_approval:
            raise click.UsageError("--canary rolls out at once: approve first, then publish")
        plan = Canary(count=canary, seconds=canary_for, timeout=timeout)
        publish_canary(settings, specs, plan, as_json=settings.json, wide=wide)
        return
    publishing.publish(
        settings,
        specs,
        wait=wait,
        timeout=timeout,
        as_json=settings.json,
        wide=wide,
        needs_approval=needs_approval,
    )


@cli.command()
@click.argument("spec_id", metavar="ID")
@click.option("--wait", is_flag=True, help="Wait until every live process has applied it.")
@click.option(
    "--timeout", type=click.FloatRange(min=0), default=10.0, show_default=True, metavar="S",
    help="Seconds --wait waits.",
)  # fmt: skip
@wide_option
@global_options
@click.pass_context
def approve(ctx: click.Context, spec_id: str, wait: bool, timeout: float, wide: bool) -> None:
    """Approve a spec pending under the two-person rule: sign it with your key (not the
    publisher's) and publish it; its lifespan runs from now. Print the ID."""
    from coordinator.commands.approve import approve as run_approve

    settings = settings_of(ctx)
    run_approve(settings, spec_id, wait=wait, timeout=timeout, as_json=settings.json, wide=wide)


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


@cli.command()
@click.argument("spec_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--force", is_flag=True, help="Remove specs signed with another secret too.")
@global_options
@click.pass_context
def remove(ctx: click.Context, spec_ids: tuple[str, ...], force: bool) -> None:
    """Delete specs and publish their removal; print the IDs removed."""
    settings = settings_of(ctx)
    publishing.remove(settings, list(spec_ids), as_json=settings.json, force=force)


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
@seconds_option("--sweep-interval", 1.0, "Seconds between sweeps of expired specs.")
@seconds_option("--prune-interval", 5.0, "Seconds between prunes of dead processes.")
@seconds_option("--version-interval", 10.0, "Seconds between re-publishing the version.")
@seconds_option("--max-age", 30.0, "Prune processes silent for longer than S seconds.")
@click.option("-v", "--verbose", is_flag=True, help="Log every sweep and prune.")
@connection_options
@click.pass_context
def serve(
    ctx: click.Context,
    sweep_interval: float,
    prune_interval: float,
    version_interval: float,
    max_age: float,
    verbose: bool,
) -> None:
    """Run the service: turn expired specs into removals, prune dead processes.

    It logs to stderr, times in UTC, and exits 0 on SIGTERM or Ctrl-C.
    """
    from coordinator.commands.serve import ServeOptions, run_service

    options = ServeOptions(
        sweep_interval=sweep_interval,
        prune_interval=prune_interval,
        version_interval=version_interval,
        max_age=max_age,
        verbose=verbose,
    )
    run_service(settings_of(ctx), options)


@cli.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 10),
    default=3,
    show_default=True,
    metavar="N",
    help="Worker processes to start.",
)
@click.option(
    "--lifespan",
    type=click.FloatRange(min=0.05, max=1.0),
    default=0.25,
    show_default=True,
    metavar="MIN",
    help="Lifespan of the demo probe, in minutes.",
)
@connection_options
@click.pass_context
def demo(ctx: click.Context, workers: int, lifespan: float) -> None:
    """Tour the project on a private Redis: workers, a probe, its output, its expiry."""
    from coordinator.commands.demo import run_demo

    run_demo(settings_of(ctx), workers=workers, lifespan=lifespan)


@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the shell completion script for SHELL.

    \b
    bash:  eval "$(coordinator completion bash)"   (in ~/.bashrc)
    zsh:   eval "$(coordinator completion zsh)"    (in ~/.zshrc)
    fish:  coordinator completion fish > ~/.config/fish/completions/coordinator.fish
    """
    complete_class = get_completion_class(shell)
    if complete_class is None:  # pragma: no cover - click ships all three
        raise BadInput(f"no completion for {shell}")
    script = complete_class(cli, {}, "coordinator", "_COORDINATOR_COMPLETE").source()
    click.echo(script)


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated()


def main(argv: list[str] | None = None) -> None:
    """Run the command line; SIGTERM interrupts it the way Ctrl-C does (exit 143)."""
    signal.signal(signal.SIGTERM, _raise_terminated)
    cli.main(args=argv, prog_name="coordinator")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
