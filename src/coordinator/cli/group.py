"""The `coordinator` group: its global options, help and exit codes."""

from __future__ import annotations

import click

from coordinator._click import (
    CoordinatorGroup,
    Option,
)
from coordinator._context import DEFAULT_PREFIX, DEFAULT_URL, REDIS_DEADLINE, Settings
from coordinator._errors import BadInput

__all__ = ("cli",)

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
    help="Secret that signs specs and messages: a bare secret, or named keys "
    "KEYID:SECRET,... (the first signs, any verifies).",
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
