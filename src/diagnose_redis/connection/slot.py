"""Connections to the primary that owns one hash slot of a Redis Cluster.

A fleet's keys and channel share one slot, so these connections ask the cluster which
primary owns it each time they connect, and drop the connection on MOVED, ASK or TRYAGAIN
so that the next attempt finds the new owner.
"""

from __future__ import annotations

import threading
from typing import Any

import redis
import redis.asyncio
from redis.crc import key_slot
from redis.exceptions import AskError, ConnectionError, MovedError, TimeoutError, TryAgainError

__all__ = (
    "AsyncSlotConnection",
    "AsyncSlotSSLConnection",
    "SlotConnection",
    "SlotLocator",
    "SlotSSLConnection",
    "slot_of",
)

_REDIRECTS = (MovedError, AskError, TryAgainError)
# What a node-discovery client may take from the data connections' options.
_SEED_OPTIONS = (
    "username",
    "password",
    "socket_timeout",
    "socket_connect_timeout",
    "ssl_ca_certs",
    "ssl_cert_reqs",
    "ssl_certfile",
    "ssl_keyfile",
    "ssl_check_hostname",
)


def slot_of(tag: str) -> int:
    """Return the hash slot of a key holding the hash tag ``{tag}``."""
    return int(key_slot(tag.encode()))


def _owner(rows: Any, slot: int) -> tuple[tuple[str, int] | None, list[tuple[str, int]]]:
    """Return the primary serving slot in a CLUSTER SLOTS answer, and every node named."""
    owner = None
    nodes: list[tuple[str, int]] = []
    for row in rows or ():
        start, end, *members = row
        for member in members:
            host = member[0].decode() if isinstance(member[0], bytes) else str(member[0])
            nodes.append((host, int(member[1])))
        if members and int(start) <= slot <= int(end):
            owner = nodes[-len(members)]
    return owner, nodes


class SlotLocator:
    """Find, and remember until told otherwise, the primary that owns one slot."""

    def __init__(self, seeds: list[tuple[str, int]], slot: int, options: dict[str, Any]) -> None:
        self.seeds = list(seeds)
        self.slot = slot
        self.known = list(seeds)
        self.options = {k: v for k, v in options.items() if k in _SEED_OPTIONS}
        self.ssl = bool(options.get("ssl"))
        self._owner: tuple[str, int] | None = None
        self._lock = threading.Lock()

    def _candidates(self) -> list[tuple[str, int]]:
        return list(dict.fromkeys([*self.known, *self.seeds]))

    def _learn(self, rows: Any) -> tuple[str, int] | None:
        owner, nodes = _owner(rows, self.slot)
        if nodes:
            self.known = list(dict.fromkeys(nodes))
        return owner

    def owner(self) -> tuple[str, int]:
        """Return (host, port) of the slot's primary, asking the cluster if not known."""
        with self._lock:
            if self._owner is not None:
                return self._owner
            errors = []
            for host, port in self._candidates():
                node = redis.Redis(host=host, port=port, ssl=self.ssl, **self.options)
                try:
                    owner = self._learn(node.execute_command("CLUSTER SLOTS"))
                except redis.RedisError as exc:
                    errors.append(f"{host}:{port}: {exc}")
                    continue
                finally:
                    node.close()
                if owner is not None:
                    self._owner = owner
                    return owner
                errors.append(f"{host}:{port}: no primary serves slot {self.slot}")
            raise ConnectionError("no cluster node answered: " + "; ".join(errors))

    async def owner_async(self) -> tuple[str, int]:
        """Return the slot's primary as owner() does, without blocking the event loop."""
        if self._owner is not None:
            return self._owner
        errors = []
        for host, port in self._candidates():
            node = redis.asyncio.Redis(host=host, port=port, ssl=self.ssl, **self.options)
            try:
                owner = self._learn(await node.execute_command("CLUSTER SLOTS"))
            except redis.RedisError as exc:
                errors.append(f"{host}:{port}: {exc}")
                continue
            finally:
                await node.aclose()
            if owner is not None:
                self._owner = owner
                return owner
            errors.append(f"{host}:{port}: no primary serves slot {self.slot}")
        raise ConnectionError("no cluster node answered: " + "; ".join(errors))

    def forget(self) -> None:
        """Ask the cluster again on the next connection."""
        self._owner = None

    def __repr__(self) -> str:
        return f"SlotLocator(slot={self.slot}, owner={self._owner})"


def _moved(connection: Any, exc: Exception) -> ConnectionError:
    connection.locator.forget()
    return ConnectionError(f"slot {connection.locator.slot} is moving or moved: {exc}")


class SlotConnection(redis.Connection):
    """A connection to whichever primary owns the locator's slot when it connects."""

    def __init__(self, *, locator: SlotLocator, **kwargs: Any) -> None:
        self.locator = locator
        super().__init__(**kwargs)

    def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if self._sock:
            return
        self.host, self.port = self.locator.owner()
        try:
            super().connect_check_health(*args, **kwargs)
        except (ConnectionError, TimeoutError, OSError):
            self.locator.forget()
            raise

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return super().read_response(*args, **kwargs)
        except _REDIRECTS as exc:
            self.disconnect()
            raise _moved(self, exc) from None


class SlotSSLConnection(SlotConnection, redis.SSLConnection):
    """A TLS SlotConnection."""


class AsyncSlotConnection(redis.asyncio.Connection):
    """The asyncio SlotConnection."""

    def __init__(self, *, locator: SlotLocator, **kwargs: Any) -> None:
        self.locator = locator
        super().__init__(**kwargs)

    async def connect_check_health(self, *args: Any, **kwargs: Any) -> None:
        if self.is_connected:
            return
        self.host, self.port = await self.locator.owner_async()
        try:
            await super().connect_check_health(*args, **kwargs)
        except (ConnectionError, TimeoutError, OSError):
            self.locator.forget()
            raise

    async def read_response(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super().read_response(*args, **kwargs)
        except _REDIRECTS as exc:
            await self.disconnect()
            raise _moved(self, exc) from None


class AsyncSlotSSLConnection(AsyncSlotConnection, redis.asyncio.SSLConnection):
    """A TLS AsyncSlotConnection."""
