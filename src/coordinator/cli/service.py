"""The service and the helpers around the commands: serve, demo, completion."""

from __future__ import annotations

import click
from click.shell_completion import get_completion_class

from coordinator._click import (
    connection_options,
    seconds_option,
    settings_of,
)
from coordinator._errors import BadInput
from coordinator.cli.group import cli


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
