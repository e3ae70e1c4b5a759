"""The commands that change what the fleet runs: publish, approve, remove."""

from __future__ import annotations

from pathlib import Path

import click

from coordinator._click import (
    Option,
    global_options,
    settings_of,
    wide_option,
)
from coordinator.cli.group import cli
from coordinator.commands import publish as publishing
from coordinator.commands.canary import CANARY_SECONDS
from coordinator.fleet.specs import (
    DEFAULT_LIFESPAN,
    parse_custom,
    parse_lifespan,
    parse_select,
    spec_from_flags,
    specs_from_file,
    with_select,
)
from diagnose.spec import CONDITION_TYPES, MAX_FIRST, MAX_FRAMES
from diagnose_redis.protocol import AGGREGATE_KINDS


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
@click.argument("spec_ids", nargs=-1, required=True, metavar="ID...")
@click.option("--force", is_flag=True, help="Remove specs signed with another secret too.")
@global_options
@click.pass_context
def remove(ctx: click.Context, spec_ids: tuple[str, ...], force: bool) -> None:
    """Delete specs and publish their removal; print the IDs removed."""
    settings = settings_of(ctx)
    publishing.remove(settings, list(spec_ids), as_json=settings.json, force=force)
