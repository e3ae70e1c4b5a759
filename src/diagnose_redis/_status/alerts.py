"""Tell a person when the subscriber cannot work: one line, not a flood, never an exception.

Each kind of problem gets at most one line a minute, and one line says when it works again;
through ``logging`` when the application configured it, else stderr. A command the Redis
user's ACL refuses is named in its line and in ``_process`` (``refused``), with what it
costs: a refused output write leaves the probes running, a refused read stops them.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
import time
from collections.abc import Callable

import redis

from diagnose.exceptions import one_line
from diagnose_redis.connection.urls import redact_url
from diagnose_redis.exceptions import BadURL

__all__ = (
    "AUTH",
    "ERROR",
    "UNREACHABLE",
    "URL",
    "Alerts",
    "classify",
    "refused_command",
)

log = logging.getLogger("diagnose_redis")

URL = "url"
AUTH = "auth"
UNREACHABLE = "unreachable"
ERROR = "error"

REPEAT_SECONDS = 60.0
# A lost connection that comes back within this time (a Redis restart, a failover) is
# not worth a line.
UNREACHABLE_GRACE = 5.0

_REFUSALS = ("NOAUTH", "WRONGPASS", "NOPERM", "INVALIDPASSWORD")
_COMMAND_REFUSED = re.compile(r"run the '([^']+)' command")
_PIPELINE_COMMAND = re.compile(r"^Command # \d+ \((\S+)(?: (\S+))?")
#: How many refused commands ``_process`` lists.
MAX_REFUSED_COMMANDS = 10
# Where a failure hit: what was being run there (for an ACL refusal whose text names no
# command), and what it costs this process.
_WHERE = {
    "listener": (
        "reading the specs or subscribing (GET, SMEMBERS, MGET, SUBSCRIBE; SET its claim)",
        "fleet probes do not apply in this process",
    ),
    "status": ("a status write", "its status is not written (coordinator status cannot see it)"),
    "output": ("XADD on the output stream", "probes apply, but their output does not reach Redis"),
}


def refused_command(exc: BaseException, doing: str | None = None) -> str | None:
    """Name the command an ACL refusal (NOPERM) was about, or None if exc is not one:
    from the server's text, else redis-py's pipeline note, else what the caller was doing."""
    if not (
        isinstance(exc, redis.exceptions.NoPermissionError)
        or (isinstance(exc, redis.ResponseError) and str(exc).startswith("NOPERM"))
    ):
        return None
    text = str(exc)
    found = _COMMAND_REFUSED.search(text)
    if found:
        return found.group(1).upper()
    found = _PIPELINE_COMMAND.search(text)
    if found:
        command, key = found.groups()
        what = "a key" if "key" in text else "a channel" if "channel" in text else ""
        return f"{command.upper()} {key}" if key and what else command.upper()
    return doing or "a command"


def classify(exc: BaseException) -> str:
    """Return the kind of a failure to talk to Redis: url, auth, unreachable or error."""
    if isinstance(exc, BadURL):
        return URL
    if isinstance(exc, redis.AuthenticationError | redis.exceptions.NoPermissionError):
        return AUTH
    if isinstance(exc, redis.ResponseError) and str(exc).split(" ", 1)[0] in _REFUSALS:
        return AUTH
    if isinstance(exc, redis.ConnectionError | redis.TimeoutError | OSError | TimeoutError):
        return UNREACHABLE
    return ERROR


def logging_configured() -> bool:
    """Tell whether a record of the diagnose_redis logger would reach a real handler."""
    logger: logging.Logger | None = log
    while logger is not None:
        if any(not isinstance(h, logging.NullHandler) for h in logger.handlers):
            return True
        if not logger.propagate:
            return False
        logger = logger.parent
    return False


def emit(text: str) -> None:
    """Show one warning line to a person; never raise."""
    try:
        if logging_configured():
            log.warning(text)
        else:
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
    except Exception:
        pass


class Alerts:
    """Rate-limit the lines one subscriber shows about its problems."""

    def __init__(
        self,
        url: str,
        process_id: str,
        *,
        repeat: float = REPEAT_SECONDS,
        grace: float = UNREACHABLE_GRACE,
        clock: Callable[[], float] = time.monotonic,
        write: Callable[[str], None] = emit,
    ) -> None:
        self.url = redact_url(url)
        self.process_id = process_id
        self.repeat = repeat
        self.grace = grace
        self.clock = clock
        self.write = write
        self.lines = 0
        self._lock = threading.Lock()
        self._last: dict[str, float] = {}
        self._down_since: float | None = None
        self._told = False
        #: commands the ACL refused (the newest MAX_REFUSED_COMMANDS), with the server's text
        self.refused: dict[str, str] = {}

    def info(self) -> dict[str, dict[str, str]]:
        """Return what ``_process`` says of refused commands (nothing when none were)."""
        return {"refused": dict(self.refused)} if self.refused else {}

    def failed(self, exc: BaseException, *, where: str = "listener") -> None:
        """Note a failure; show a line for it unless its kind was shown within a minute.

        where (listener, status or output) says what it costs, and what was being run
        there, for an ACL refusal whose text names no command."""
        doing, costs = _WHERE.get(where, _WHERE["listener"])
        command = refused_command(exc, doing)
        if command is not None:
            self._refused(command, exc, costs)
            return
        kind = classify(exc)
        now = self.clock()
        with self._lock:
            if self._down_since is None:
                self._down_since = now
            if kind == UNREACHABLE and now - self._down_since < self.grace:
                return
            last = self._last.get(kind)
            if last is not None and now - last < self.repeat:
                return
            self._last[kind] = now
            self._told = True
        what, hint = {
            URL: (f"invalid Redis URL {self.url!r}", "fix DIAGNOSE_REDIS_URL"),
            AUTH: (
                f"Redis at {self.url} refused the login or a command",
                "check the password and the Redis user's ACL; retrying",
            ),
            UNREACHABLE: (f"cannot reach Redis at {self.url}", "retrying"),
            ERROR: (f"cannot use Redis at {self.url}", "retrying"),
        }[kind]
        detail = redact_url(one_line(exc, 300))
        self.say(f"{what} ({detail}); {costs}; {hint}")

    def _refused(self, command: str, exc: BaseException, costs: str) -> None:
        detail = redact_url(one_line(exc, 300))
        now = self.clock()
        with self._lock:
            self.refused.pop(command, None)
            self.refused[command] = detail
            while len(self.refused) > MAX_REFUSED_COMMANDS:
                del self.refused[next(iter(self.refused))]
            kind = f"{AUTH}:{command}"
            last = self._last.get(kind)
            if last is not None and now - last < self.repeat:
                return
            self._last[kind] = now
            self._told = True
        self.say(
            f"Redis at {self.url} refuses this user {command} ({detail}); {costs}; grant it "
            "in the Redis user's ACL (see the docs' Redis ACL page); retrying"
        )

    def recovered(self) -> None:
        """Note that Redis works again; say so once if a problem was shown."""
        with self._lock:
            self._down_since = None
            told, self._told = self._told, False
        if told:
            self.say(f"connected to Redis at {self.url} again; fleet probes apply")

    def say(self, text: str) -> None:
        """Show one line about this process's subscriber."""
        self.lines += 1
        self.write(f"diagnose_redis ({self.process_id}): {text}")
