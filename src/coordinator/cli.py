"""The `coordinator` command line: publish, remove, list, status, processes, serve, demo."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import redis

from diagnose import SpecError

from . import _commands
from ._context import DEFAULT_PREFIX, Settings, redact
from ._errors import BadInput, OperationFailed, RedisUnreachable
from ._specs import (
    DEFAULT_LIFESPAN,
    parse_custom,
    parse_lifespan,
    spec_from_flags,
    specs_from_file,
)

__all__ = ("cli", "main")


class CoordinatorGroup(click.Group):
    """A click group that turns every failure into one line and its exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line, printing any error as one line on stderr."""
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {_one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"Error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, mapping exceptions to CoordinatorError exit codes."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except SpecError as exc:
            raise BadInput(f"invalid spec: {exc}")
        except redis.AuthenticationError as exc:
            raise OperationFailed(f"Redis refused the credentials: {exc}")
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            url = redact(_settings(ctx).url) if ctx.obj else "?"
            raise RedisUnreachable(f"Redis unreachable at {url}: {exc}")
        except redis.RedisError as exc:
            raise OperationFailed(f"Redis refused the command: {exc}")
        except KeyboardInterrupt:
            raise click.Abort()
        except Exception as exc:
            raise OperationFailed(f"{type(exc).__name__}: {exc}")


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _settings(ctx: click.Context) -> Settings:
    return ctx.find_object(Settings) or Settings()


def json_option(func: Any) -> Any:
    """Add --json to a command (the global --json works too)."""
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")(
        func
    )


def _use_json(ctx: click.Context, as_json: bool) -> bool:
    return as_json or _settings(ctx).json


@click.group(cls=CoordinatorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--redis-url",
    envvar="DIAGNOSE_REDIS_URL",
    metavar="URL",
    help="Redis URL (redis://, rediss://, unix://) [env DIAGNOSE_REDIS_URL; "
    "default redis://localhost:6379/0].",
)
@click.option(
    "--prefix",
    envvar="DIAGNOSE_PREFIX",
    default=DEFAULT_PREFIX,
    show_default=True,
    help="Key prefix of the fleet [env DIAGNOSE_PREFIX].",
)
@click.option(
    "--secret",
    envvar="DIAGNOSE_SECRET",
    metavar="TEXT",
    help="Shared secret that signs specs and messages [env DIAGNOSE_SECRET].",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.version_option(package_name="diagnose-fleet", prog_name="coordinator")
@click.pass_context
def cli(
    ctx: click.Context, redis_url: str | None, prefix: str, secret: str | None, as_json: bool
) -> None:
    """Add probes to live Python processes across a fleet, through Redis."""
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
@click.option("--value", "-v", metavar="EXPR", help="Python expression the probe records.")
@click.option("--name", "-n", help="Instrument name  [default: the ID].")
@click.option(
    "--event",
    type=click.Choice(["call", "return", "end"]),
    default="return",
    show_default=True,
    help="When the expression is evaluated.",
)
@click.option(
    "--lifespan",
    default=str(DEFAULT_LIFESPAN).rstrip("0").rstrip("."),
    show_default=True,
    metavar="MIN",
    help="Minutes until the probe expires (fractions allowed), or 'none' for never.",
)
@click.option("--custom", metavar="JSON", help="Instrument's custom settings, a JSON object.")
@click.option(
    "--file",
    "-f",
    "spec_file",
    type=click.Path(path_type=Path, dir_okay=False),
    help="JSON or YAML file holding a map of ID to spec; replaces the flags above.",
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
@json_option
@click.pass_context
def publish(
    ctx: click.Context,
    spec_id: str | None,
    target: str | None,
    itype: str,
    value: str | None,
    name: str | None,
    event: str,
    lifespan: str,
    custom: str | None,
    spec_file: Path | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Validate specs, store them with their lifespan as TTL, and publish them; print the IDs."""
    settings = _settings(ctx)
    if spec_file is not None:
        if spec_id is not None or target is not None or value is not None:
            raise click.UsageError("give either --file or ID with --target and --value, not both")
        specs = specs_from_file(spec_file)
    else:
        if spec_id is None:
            raise click.UsageError("missing ID (or --file FILE)")
        missing = [flag for flag, given in (("--target", target), ("--value", value)) if not given]
        if missing:
            raise click.UsageError(f"missing option {' and '.join(missing)}")
        specs = {
            spec_id: spec_from_flags(
                spec_id,
                target=target or "",
                itype=itype,
                value=value or "",
                name=name,
                event=event,
                lifespan=parse_lifespan(lifespan),
                custom=parse_custom(custom),
            )
        }
    _commands.publish(settings, specs, wait=wait, timeout=timeout, as_json=_use_json(ctx, as_json))


@cli.command()
@click.argument("spec_ids", nargs=-1, required=True, metavar="ID...")
@json_option
@click.pass_context
def remove(ctx: click.Context, spec_ids: tuple[str, ...], as_json: bool) -> None:
    """Delete specs and publish their removal; print the IDs removed."""
    _commands.remove(_settings(ctx), list(spec_ids), as_json=_use_json(ctx, as_json))


@cli.command("list")
@json_option
@click.pass_context
def list_(ctx: click.Context, as_json: bool) -> None:
    """List the specs with their target, instrument and remaining lifespan."""
    _commands.list_specs(_settings(ctx), as_json=_use_json(ctx, as_json))


@cli.command()
@click.argument("spec_id", required=False, metavar="[ID]")
@json_option
@click.pass_context
def status(ctx: click.Context, spec_id: str | None, as_json: bool) -> None:
    """Show, per process and spec, the lastmodified applied, any error, and when."""
    _commands.status(_settings(ctx), spec_id, as_json=_use_json(ctx, as_json))


@cli.command()
@json_option
@click.option(
    "--max-age",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    metavar="S",
    help="Count a process live if it heartbeat within S seconds  [default: the store's].",
)
@click.pass_context
def processes(ctx: click.Context, as_json: bool, max_age: float | None) -> None:
    """List the live processes with their last heartbeat."""
    _commands.processes(_settings(ctx), max_age=max_age, as_json=_use_json(ctx, as_json))


def _seconds_option(flag: str, default: float, help: str) -> Any:
    """Return a click option taking a number of seconds (at least 0.05)."""
    return click.option(
        flag,
        type=click.FloatRange(min=0.05),
        default=default,
        show_default=True,
        metavar="S",
        help=help,
    )


@cli.command()
@_seconds_option("--sweep-interval", 1.0, "Seconds between sweeps of expired specs.")
@_seconds_option("--prune-interval", 5.0, "Seconds between prunes of dead processes.")
@_seconds_option("--version-interval", 10.0, "Seconds between re-publishing the version.")
@_seconds_option("--max-age", 30.0, "Prune processes silent for longer than S seconds.")
@click.option("-v", "--verbose", is_flag=True, help="Log every sweep and prune.")
@click.pass_context
def serve(
    ctx: click.Context,
    sweep_interval: float,
    prune_interval: float,
    version_interval: float,
    max_age: float,
    verbose: bool,
) -> None:
    """Run the service: turn expired specs into removals, prune dead processes."""
    from ._serve import ServeOptions, run_service

    options = ServeOptions(
        sweep_interval=sweep_interval,
        prune_interval=prune_interval,
        version_interval=version_interval,
        max_age=max_age,
        verbose=verbose,
    )
    run_service(_settings(ctx), options)


@cli.command()
@click.option(
    "--workers",
    type=click.IntRange(1, 10),
    default=3,
    show_default=True,
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
@click.pass_context
def demo(ctx: click.Context, workers: int, lifespan: float) -> None:
    """Tour the project on a private Redis: workers, a probe, its output, its expiry."""
    from ._demo import run_demo

    run_demo(_settings(ctx), workers=workers, lifespan=lifespan)


def main(argv: list[str] | None = None) -> None:
    """Run the command line."""
    cli.main(args=argv, prog_name="coordinator")


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
