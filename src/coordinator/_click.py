"""The click machinery every `coordinator` command shares: one-line errors and their exit
codes, the global options also accepted after a command, and the option help's defaults."""

from __future__ import annotations

import sys
from typing import Any

import click
import redis

from coordinator._context import REDIS_DEADLINE, Settings, redact
from coordinator._errors import (
    EXIT_BAD_INPUT,
    BadInput,
    Interrupted,
    OperationFailed,
    explain_redis_error,
)
from diagnose import SpecError

__all__ = (
    "CoordinatorGroup",
    "Option",
    "connection_options",
    "global_options",
    "seconds_option",
    "settings_of",
    "wide_option",
)


class CoordinatorGroup(click.Group):
    """A click group that turns every failure into one line and its exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:
        """Run the command line, printing any error as one line on stderr."""
        kwargs["standalone_mode"] = False
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:
            click.echo(exc.ctx.get_help(), err=True)
            sys.exit(EXIT_BAD_INPUT)
        except click.UsageError as exc:
            hint = f" (see '{exc.ctx.command_path} --help')" if exc.ctx is not None else ""
            click.echo(f"Error: {_one_line(exc.format_message())}{hint}", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            # On a terminal the Error line replaces the echoed ^C (or a progress bar's line);
            # a pipe gets only the line itself.
            lead = "\r\x1b[K" if isinstance(exc, Interrupted) and _isatty(sys.stderr) else ""
            click.echo(f"{lead}Error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort as exc:
            interrupt = exc.__cause__ or exc.__context__ or KeyboardInterrupt()
            error = Interrupted.by(interrupt)
            click.echo(f"Error: {error.format_message()}", err=True)
            sys.exit(error.exit_code)
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command, mapping exceptions to CoordinatorError exit codes."""
        try:
            return super().invoke(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except SpecError as exc:
            raise BadInput(f"invalid spec: {exc}")
        except redis.RedisError as exc:
            url = redact(settings_of(ctx).url) if ctx.obj else "?"
            raise explain_redis_error(exc, url, REDIS_DEADLINE)
        except KeyboardInterrupt as exc:
            raise Interrupted.by(exc)
        except Exception as exc:
            raise OperationFailed(f"{type(exc).__name__}: {exc}")


class Option(click.Option):
    """An option whose described default reads like the others: `[default: the ID]`."""

    def get_help_extra(self, ctx: click.Context) -> Any:
        """Return click's help extras, without the parentheses around a described default."""
        extra = super().get_help_extra(ctx)
        if isinstance(self.show_default, str) and "default" in extra:
            extra["default"] = self.show_default
        return extra


def _isatty(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _one_line(text: str) -> str:
    return " ".join(text.split())


def settings_of(ctx: click.Context) -> Settings:
    """Return the command's Settings (the defaults outside the group)."""
    return ctx.find_object(Settings) or Settings()


def _set_global(attribute: str) -> Any:
    """Return a callback that stores a global option given after the command in Settings."""

    def store(ctx: click.Context, param: click.Parameter, value: Any) -> None:
        if value is None or value is False or ctx.resilient_parsing:
            return
        if attribute == "prefix" and not value:
            raise BadInput("--prefix must not be empty")
        settings = ctx.find_object(Settings)
        if settings is not None:
            setattr(settings, attribute, value if attribute != "secret" else value or None)

    return store


def global_options(func: Any) -> Any:
    """Accept the global options after the command too: `coordinator list --json`."""
    return _global_options(func, with_json=True)


def connection_options(func: Any) -> Any:
    """Accept --redis-url, --prefix and --secret after a command that prints no data."""
    return _global_options(func, with_json=False)


def _global_options(func: Any, *, with_json: bool) -> Any:
    options = [
        click.option(
            "--redis-url",
            metavar="URL",
            expose_value=False,
            callback=_set_global("redis_url"),
            help="Redis URL, as the global option.",
        ),
        click.option(
            "--prefix",
            expose_value=False,
            callback=_set_global("prefix"),
            help="Key prefix, as the global option.",
        ),
        click.option(
            "--secret",
            metavar="TEXT",
            expose_value=False,
            callback=_set_global("secret"),
            help="Shared secret, as the global option.",
        ),
        click.option(
            "--json",
            is_flag=True,
            expose_value=False,
            callback=_set_global("json"),
            help="Print machine-readable JSON.",
        ),
    ]
    if not with_json:
        options.pop()
    for option in reversed(options):
        func = option(func)
    return func


def seconds_option(flag: str, default: float, help: str) -> Any:
    """Return a click option taking a number of seconds (at least 0.05)."""
    return click.option(
        flag,
        type=click.FloatRange(min=0.05),
        default=default,
        show_default=True,
        metavar="S",
        help=help,
    )


def wide_option(func: Any) -> Any:
    """Add --wide: every column, every cell in full."""
    return click.option(
        "--wide", "-w", is_flag=True, help="Show more columns and every value in full."
    )(func)
