"""Exit codes of the command line and the errors that carry them."""

from __future__ import annotations

import click

__all__ = (
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_UNREACHABLE",
    "BadInput",
    "CoordinatorError",
    "OperationFailed",
    "RedisUnreachable",
    "WaitTimedOut",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TIMEOUT = 3
EXIT_UNREACHABLE = 4


class CoordinatorError(click.ClickException):
    """An error reported as one line on stderr, with its own exit code."""

    exit_code = EXIT_FAILED


class OperationFailed(CoordinatorError):
    """An operation failed: a process reported an error, or Redis refused a command."""

    exit_code = EXIT_FAILED


class BadInput(CoordinatorError):
    """Bad usage or an invalid spec."""

    exit_code = EXIT_BAD_INPUT


class WaitTimedOut(CoordinatorError):
    """`--wait` ran out of time before every live process applied the spec."""

    exit_code = EXIT_TIMEOUT


class RedisUnreachable(CoordinatorError):
    """Redis could not be reached."""

    exit_code = EXIT_UNREACHABLE
