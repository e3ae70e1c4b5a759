"""`coordinator serve`: the long-running service that keeps the fleet's Redis state tidy."""

from __future__ import annotations

import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
import redis
import redis.asyncio as aioredis
from anyio.abc import TaskStatus

from coordinator._context import REDIS_DEADLINE, Settings, redact
from diagnose_redis import connect_async, database, expired_channel

__all__ = ("FleetService", "ServeOptions", "run_service")

log = logging.getLogger("coordinator.serve")

RECONNECT_BACKOFF = (0.5, 1.0, 2.0, 5.0)


@dataclass(frozen=True)
class ServeOptions:
    """How often the service sweeps, prunes and re-publishes, and when a process is dead."""

    sweep_interval: float = 1.0
    prune_interval: float = 5.0
    version_interval: float = 10.0
    max_age: float = 30.0
    verbose: bool = False


class FleetService:
    """Turn expired spec keys into removals, prune dead processes, re-publish the version."""

    def __init__(self, settings: Settings, options: ServeOptions) -> None:
        self.settings = settings
        self.options = options
        self.store: Any = settings.store()
        self.removed: list[str] = []
        self.pruned: list[str] = []
        self.expired_events = 0

    async def run(
        self,
        *,
        handle_signals: bool = True,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Run until cancelled, or until SIGTERM or SIGINT when handle_signals is set."""
        client = self.settings.client()
        await anyio.to_thread.run_sync(client.ping)
        log.info(
            "serving %s prefix %r: sweep every %gs, prune after %gs silence every %gs, "
            "version every %gs",
            redact(self.settings.url),
            self.settings.prefix,
            self.options.sweep_interval,
            self.options.max_age,
            self.options.prune_interval,
            self.options.version_interval,
        )
        async with anyio.create_task_group() as tg:
            if handle_signals:
                await tg.start(self._stop_on_signal, tg.cancel_scope)
            tg.start_soon(self._listen_expired)
            tg.start_soon(self._every, self.options.sweep_interval, self.sweep)
            tg.start_soon(self._every, self.options.prune_interval, self.prune)
            tg.start_soon(self._every, self.options.version_interval, self.publish_version)
            task_status.started()
        log.info("stopped")

    async def _stop_on_signal(
        self, scope: anyio.CancelScope, *, task_status: TaskStatus[None]
    ) -> None:
        with anyio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            task_status.started()
            async for signum in signals:
                log.info("received %s, stopping", signal.Signals(signum).name)
                scope.cancel()
                return

    async def _every(self, interval: float, action: Callable[[], Awaitable[object]]) -> None:
        while True:
            try:
                await action()
            except anyio.get_cancelled_exc_class():
                raise
            except redis.RedisError as exc:
                log.warning("%s failed: %s", action.__name__, exc)
            except Exception:
                log.exception("%s failed", action.__name__)
            await anyio.sleep(interval)

    async def sweep(self) -> list[str]:
        """Publish the removal of every spec whose key has expired."""
        removed = list(await anyio.to_thread.run_sync(self.store.sweep_expired))
        if removed:
            self.removed.extend(removed)
            log.info("expired: published removal of %s", ", ".join(removed))
        elif self.options.verbose:
            log.debug("sweep: nothing expired")
        return removed

    async def prune(self) -> list[str]:
        """Forget processes that stopped heartbeating."""
        pruned = list(
            await anyio.to_thread.run_sync(self.store.prune_processes, self.options.max_age)
        )
        if pruned:
            self.pruned.extend(pruned)
            log.info("pruned %d dead process(es): %s", len(pruned), ", ".join(pruned))
        elif self.options.verbose:
            log.debug("prune: every process is alive")
        return pruned

    async def publish_version(self) -> None:
        """Re-publish the current version so subscribers can notice a missed message."""
        await anyio.to_thread.run_sync(self.store.publish_version)
        if self.options.verbose:
            log.debug("re-published the version")

    async def _enable_expiry_events(self, client: aioredis.Redis) -> None:
        try:
            current = (await client.config_get("notify-keyspace-events")).get(
                "notify-keyspace-events", ""
            )
        except redis.exceptions.NoPermissionError as exc:
            # The README's ACL line: the server may well send them (notify-keyspace-events Ex
            # in its configuration); this user cannot tell, and the sweep covers the rest.
            log.info(
                "cannot read notify-keyspace-events (%s); expired specs are removed on "
                "expired-key events if the server sends them, else by the sweep",
                exc,
            )
            return
        try:
            flags = set(str(current))
            if not {"E", "x"} <= flags and not {"E", "A"} <= flags:
                await client.config_set(
                    "notify-keyspace-events", "".join(sorted(flags | {"E", "x"}))
                )
                log.info("enabled expired-key events (notify-keyspace-events)")
        except redis.ResponseError as exc:
            log.warning("cannot enable expired-key events (%s); relying on the sweep", exc)

    async def _listen_expired(self) -> None:
        channel = expired_channel(database(self.settings.client()))
        attempt = 0
        while True:
            client = connect_async(
                self.settings.url, socket_connect_timeout=2, prefix=self.settings.prefix
            )
            try:
                # The same deadline as every other Redis operation of the command line; only
                # the wait for the next notification has none.
                with anyio.fail_after(REDIS_DEADLINE):
                    await self._enable_expiry_events(client)
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    with anyio.fail_after(REDIS_DEADLINE):
                        await pubsub.subscribe(channel)
                    attempt = 0
                    async for message in pubsub.listen():
                        key = message.get("data")
                        if isinstance(key, str | bytes) and self.store.keys.spec_id(key):
                            self.expired_events += 1
                            await self.sweep()
            except anyio.get_cancelled_exc_class():
                raise
            except (redis.RedisError, OSError) as exc:
                delay = RECONNECT_BACKOFF[min(attempt, len(RECONNECT_BACKOFF) - 1)]
                attempt += 1
                log.warning("expired-key listener lost Redis (%s); retrying in %gs", exc, delay)
                await anyio.sleep(delay)
            finally:
                with anyio.CancelScope(shield=True):
                    await client.aclose()


class UTCFormatter(logging.Formatter):
    """Format log times as ISO-8601 UTC with a Z, like every other time the project prints."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        """Return the record's time as 2026-11-24T19:36:20.646Z."""
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def run_service(settings: Settings, options: ServeOptions) -> None:
    """Run the service until SIGTERM or SIGINT, logging to stderr; a requested stop exits 0."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(UTCFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if options.verbose else logging.INFO)
    try:
        service = FleetService(settings, options)
        anyio.run(service.run, backend="asyncio")
    except KeyboardInterrupt:
        # A signal that came before the service's own handlers were in place.
        log.info("stopped")
    finally:
        root.removeHandler(handler)
