"""Exit codes of the command line and the errors that carry them."""

from __future__ import annotations

import click
import redis
from redis.exceptions import NoPermissionError, ReadOnlyError

__all__ = (
    "EXIT_BAD_INPUT",
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_TERMINATED",
    "EXIT_TIMEOUT",
    "EXIT_UNREACHABLE",
    "BadInput",
    "CoordinatorError",
    "Interrupted",
    "InterruptedBySigterm",
    "OperationFailed",
    "RedisUnreachable",
    "Terminated",
    "WaitTimedOut",
    "explain_redis_error",
)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_TIMEOUT = 3
EXIT_UNREACHABLE = 4
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


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


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread the way Ctrl-C raises KeyboardInterrupt."""


class Interrupted(CoordinatorError):
    """Ctrl-C stopped a command (exit 130); the message says what state it left."""

    exit_code = EXIT_INTERRUPTED

    @staticmethod
    def by(interrupt: BaseException, what_is_left: str = "") -> Interrupted:
        """Say that interrupt (KeyboardInterrupt, or Terminated for SIGTERM) stopped the command."""
        text = "interrupted" + (f": {what_is_left}" if what_is_left else "")
        if isinstance(interrupt, Terminated):
            return InterruptedBySigterm(text)
        return Interrupted(text)


class InterruptedBySigterm(Interrupted):
    """SIGTERM stopped a command (exit 143)."""

    exit_code = EXIT_TERMINATED


def explain_redis_error(exc: Exception, where: str, deadline: float) -> CoordinatorError:
    """Turn a redis-py exception into the one-line error a person can act on.

    where is the Redis URL with its password hidden.
    """
    text = " ".join(str(exc).split())
    lowered = text.lower()
    if isinstance(exc, redis.AuthenticationError):
        if "hello must be called" in lowered or "authentication required" in lowered:
            return OperationFailed(
                f"Redis at {where} requires a password: give it in the URL, "
                "redis://[USER]:PASSWORD@HOST:PORT/DB"
            )
        if "invalid username-password" in lowered or "wrongpass" in lowered:
            return OperationFailed(
                f"Redis at {where} refused the user name and password of the URL "
                "(wrong password, or the user is disabled)"
            )
        return OperationFailed(f"Redis at {where} refused the credentials: {text}")
    if isinstance(exc, redis.TimeoutError):
        return RedisUnreachable(f"Redis unreachable at {where}: no answer within {deadline:g}s")
    if isinstance(exc, redis.ConnectionError):
        return RedisUnreachable(f"Redis unreachable at {where}: {text}")
    if isinstance(exc, NoPermissionError):
        return OperationFailed(
            f"Redis at {where} denies this user a command the coordinator needs ({text}); "
            "the README's Security section gives the ACL to set"
        )
    if isinstance(exc, ReadOnlyError):
        return OperationFailed(
            f"Redis at {where} is a read-only replica: point --redis-url at the primary"
        )
    return OperationFailed(f"Redis refused the command: {text}")
