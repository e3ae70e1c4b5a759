"""One live process per id: claim the process id in Redis before reporting under it.

``SET P:claim:ID TOKEN NX PX TTL`` is atomic and heartbeats refresh it, so no two live
processes report under one id; a claim whose holder was a process of this host that no
longer runs is taken over at once (a restart gets its id back); any other process takes
``ID:PID`` (or ``ID:PID:TOKEN``).
"""

from __future__ import annotations

import os
import secrets
import socket
from typing import Any

import redis

from diagnose_redis.protocol import STATUS_TTL_SECONDS, Keys

__all__ = ("ClaimLost", "IdClaim")

CLAIM_TTL_MS = int(STATUS_TTL_SECONDS * 1000)
# This run of this process (a container restarted has the pid of the one before: 1, say).
_RUN = secrets.token_hex(4)


class ClaimLost(Exception):
    """Another process took this process's id while its heartbeats stalled."""


class IdClaim:
    """The claim of one subscriber on its process id."""

    def __init__(self, keys: Keys, wanted: str, ttl_ms: int = CLAIM_TTL_MS) -> None:
        self.keys = keys
        self.wanted = wanted
        self.ttl_ms = ttl_ms
        # HOST:PID:RUN.HEX: its last 8 characters tell apart the claims of one process.
        self.token = f"{socket.gethostname()}:{os.getpid()}:{_RUN}.{secrets.token_hex(4)}"
        self.held: str | None = None
        self.lost = False

    def candidates(self) -> list[str]:
        """Return the ids to try, in order."""
        pid = os.getpid()
        return [self.wanted, f"{self.wanted}:{pid}", f"{self.wanted}:{pid}:{self.token[-8:]}"]

    def acquire(self, client: redis.Redis) -> str:
        """Return the id this process holds, claiming the first free candidate.

        The id held already is kept while the claim is still ours, whatever else is free.
        """
        if self.held is not None and self._ours(client, self.held):
            self.lost = False
            return self.held
        candidates = self.candidates()
        for process_id in candidates:
            if self._ours(client, process_id) or process_id == candidates[-1]:
                self.held = process_id
                self.lost = False
                return process_id
        raise AssertionError("unreachable")  # the loop returns at the last candidate

    def _ours(self, client: redis.Redis, process_id: str) -> bool:
        """Take the id if it is free; tell whether it is ours now."""
        key = self.keys.claim(process_id)
        pipe = client.pipeline(transaction=True)
        pipe.set(key, self.token, nx=True, px=self.ttl_ms)
        pipe.get(key)
        _, holder = pipe.execute()
        holder = _text(holder)
        if holder != self.token and not (
            holder and self._gone(holder) and self._take(client, key, holder)
        ):
            return False
        client.pexpire(key, self.ttl_ms)
        return True

    def _gone(self, holder: str) -> bool:
        """Tell whether a claim's holder was a process of this host that runs no more."""
        head, _, tail = holder.rpartition(":")
        host, _, rest = head.rpartition(":")
        try:
            pid = int(rest)
        except ValueError:
            return False
        if host != self.token.split(":", 1)[0] or pid <= 0:
            return False
        if pid == os.getpid():
            # Another subscriber of this process holds it, or the process that ran before
            # this one under the same pid did (then it is gone).
            return "." in tail and tail.split(".", 1)[0] != _RUN
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except OSError:
            return False
        return False

    def _take(self, client: redis.Redis, key: str, holder: str) -> bool:
        """Replace holder's claim with ours, if it is still holder's; tell whether it is."""

        def take(pipe: Any) -> None:
            current = _text(pipe.get(key))
            pipe.multi()
            if current == holder:
                pipe.set(key, self.token, px=self.ttl_ms)

        try:
            client.transaction(take, key)
        except redis.WatchError:
            return False
        return _text(client.get(key)) == self.token

    def refresh_commands(self) -> list[list[Any]]:
        """Return the commands that refresh the claim (none while no id is held); check()
        reads their replies."""
        if self.held is None:
            return []
        key = self.keys.claim(self.held)
        # SET NX takes the claim back after Redis restarted empty; PEXPIRE extends it (or,
        # harmlessly, another holder's, which check() then notices).
        return [
            ["SET", key, self.token, "NX", "PX", self.ttl_ms],
            ["PEXPIRE", key, self.ttl_ms],
            ["GET", key],
        ]

    def check(self, results: list[Any]) -> bool:
        """Read the replies of refresh_commands(): True while the claim is ours (else mark
        it lost)."""
        if self.held is None or not results:
            return True
        if _text(results[-1]) != self.token:
            self.lost = True
        return not self.lost

    def release(self, client: redis.Redis) -> None:
        """Give the id up, if it is still ours."""
        if self.held is None:
            return
        key = self.keys.claim(self.held)

        def release(pipe: Any) -> None:
            holder = pipe.get(key)
            pipe.multi()
            if _text(holder) == self.token:
                pipe.delete(key)

        client.transaction(release, key)


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value if isinstance(value, str) else None
