"""The fleet subscriber: keep this process's probes identical to the specs published in Redis.

Three daemon threads, so that no Redis trouble ever reaches the host or delays an expiry:

- the listener owns the pub/sub connection: it subscribes, then reads the full set of specs
  (a resync), then reads events into the applier's inbox as fast as they come, so the
  server's output buffer for pub/sub clients never fills. It resyncs again on every
  reconnect, when an event's version is not the last plus one, on a ``version`` event ahead
  of what it has, on an ``expired`` keyspace event for a spec, and every RESYNC_SECONDS.
- the applier (no I/O) merges what the inbox holds, applies it through the manager, detaches
  expired specs on a local timer, and hands the outcome to the reporter.
- the reporter (``_reporter.py``) writes the status hash and heartbeats.
"""

from __future__ import annotations

import atexit
import datetime as _dt
import json
import logging
import os
import queue
import socket
import threading
import time
from collections import Counter
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from ._reporter import StatusReporter
from ._wire import (
    Keys,
    WireError,
    decode_event,
    decode_spec,
    encode_status_field,
    secret_bytes,
)

__all__ = ("Subscriber", "start")

log = logging.getLogger("diagnose_redis")
log.addHandler(logging.NullHandler())

RESYNC_SECONDS = 30.0
HEALTH_SECONDS = 2.0
READ_TIMEOUT = 0.25

_SNAPSHOT = "snapshot"
_EVENT = "event"
_REFRESH = "refresh"
_STOP = "stop"


def _quiet_connect_options() -> dict[str, Any]:
    # Leave out the handshake commands newer redis-py clients send on every connection
    # (CLIENT SETINFO, CLIENT MAINT_NOTIFICATIONS), spelled as this redis-py version wants.
    options: dict[str, Any] = {}
    try:
        import redis.driver_info  # noqa: F401

        options["driver_info"] = None
    except ImportError:
        options["lib_name"] = None
        options["lib_version"] = None
    try:
        from redis.maint_notifications import MaintNotificationsConfig

        options["maint_notifications_config"] = MaintNotificationsConfig(enabled=False)
    except ImportError:
        pass
    return options


_QUIET_CONNECT = _quiet_connect_options()


def _library_version() -> str:
    try:
        from importlib.metadata import version

        return version("diagnose-fleet")
    except Exception:
        return "unknown"


def _expiry(spec: dict[str, Any]) -> float | None:
    lifespan = spec.get("lifespan")
    lastmodified = spec.get("lastmodified")
    if lifespan is None or not isinstance(lastmodified, _dt.datetime):
        return None
    if lastmodified.tzinfo is None:
        lastmodified = lastmodified.replace(tzinfo=_dt.UTC)
    try:
        return lastmodified.timestamp() + float(lifespan) * 60
    except (TypeError, ValueError, OverflowError):
        return None


def _same(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    if a is None or b is None:
        return a is b
    return {k: v for k, v in a.items() if k != "applied"} == {
        k: v for k, v in b.items() if k != "applied"
    }


class Subscriber:
    """Apply the specs published under a prefix to this process, and report what happened."""

    def __init__(
        self,
        url: str,
        *,
        process_id: str,
        prefix: str = "diagnose",
        secret: str | bytes | None = None,
        manager: Any = None,
        explicit_id: bool = False,
    ) -> None:
        if manager is None:
            import diagnose

            manager = diagnose.manager
        self.url = url
        self.process_id = process_id
        self.prefix = prefix
        self.keys = Keys(prefix)
        self.secret = secret_bytes(secret)
        self.manager = manager
        self.explicit_id = explicit_id
        self.pid = os.getpid()
        self.started = _dt.datetime.now(_dt.UTC)
        self.version = 0
        self.received = 0
        self.applies = 0
        self.resyncs = 0
        self.reconnects = 0
        self.errors = 0
        self.dropped: Counter[str] = Counter()
        self.error: str | None = None
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self.owned: set[str] = set()
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._reported: dict[str, tuple[Any, Any]] = {}
        self._seen: int | None = None
        self._resync_due = False
        self._threads: list[threading.Thread] = []
        self.client = redis.Redis.from_url(
            url,
            socket_connect_timeout=2,
            socket_timeout=5,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            client_name=f"diagnose:{process_id}".replace(" ", "_"),
            **_QUIET_CONNECT,
        )
        db = self.client.connection_pool.connection_kwargs.get("db", 0)
        self._expired_channel = f"__keyevent@{db}__:expired"
        self.reporter = StatusReporter(self.client, self.keys, process_id, self._process_info)
        self._backoff = ExponentialWithJitterBackoff(cap=1.0, base=0.05)
        self._library = _library_version()

    # --- life cycle ----------------------------------------------------------------

    def start(self) -> Subscriber:
        """Start the listener, applier and reporter threads."""
        self.manager.process_id = self.process_id
        if hasattr(self.manager, "add_listener"):
            self.manager.add_listener(self._on_applied_change)
        self._threads = [
            threading.Thread(target=self._listen, name="diagnose_redis.listener", daemon=True),
            threading.Thread(target=self._apply_loop, name="diagnose_redis.applier", daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        self.reporter.start()
        return self

    @property
    def running(self) -> bool:
        """Return True until stop() is called."""
        return not self.stopped.is_set()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the threads, remove this process's status, and detach the specs it applied."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        self._inbox.put((_STOP,))
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        self.reporter.stop(max(0.1, deadline - time.monotonic()))
        try:
            if hasattr(self.manager, "remove_listener"):
                self.manager.remove_listener(self._on_applied_change)
            with self.manager.lock:
                for spec_id in self.owned:
                    self.manager.specs.pop(spec_id, None)
                self.owned.clear()
                self.manager.apply()
        except Exception as exc:
            log.debug("detaching on stop failed: %s", exc)
        try:
            self.client.close()
        except Exception:
            pass

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "connected" if self.connected.is_set() else "disconnected"
        if self.stopped.is_set():
            state = "stopped"
        return f"<Subscriber {self.process_id!r} {self.prefix!r} {state} version={self.version}>"

    def _process_info(self) -> str:
        return json.dumps(
            {
                "host": socket.gethostname(),
                "pid": self.pid,
                "process_id": self.process_id,
                "started": self.started.isoformat(),
                "version": self.version,
                "library": self._library,
                "connected": self.connected.is_set(),
                "received": self.received,
                "applies": self.applies,
                "resyncs": self.resyncs,
                "reconnects": self.reconnects,
                "dropped": dict(self.dropped),
                "signed": self.secret is not None,
            }
        )

    def _drop(self, reason: str, detail: object) -> None:
        self.dropped[reason] += 1
        log.debug("dropped a message (%s): %s", reason, detail)
        self.reporter.poke()

    # --- the listener: pub/sub and resync -----------------------------------------

    def _listen(self) -> None:
        failures = 0
        while not self.stopped.is_set():
            pubsub = None
            try:
                pubsub = self.client.pubsub()
                self._session(pubsub)
                failures = 0
            except Exception as exc:
                failures += 1
                if self.connected.is_set():
                    log.info("diagnose_redis lost Redis (%s); reconnecting", exc)
                else:
                    log.debug("diagnose_redis cannot reach Redis: %s", exc)
            finally:
                self.connected.clear()
                if pubsub is not None:
                    try:
                        pubsub.reset()
                    except Exception:
                        pass
            if not self.stopped.is_set():
                self.stopped.wait(self._backoff.compute(max(failures, 1)))

    def _session(self, pubsub: redis.client.PubSub) -> None:
        events = self.keys.events.encode()
        expired = self._expired_channel.encode()
        pubsub.subscribe(events, expired)
        confirmed: set[bytes] = set()
        deadline = time.monotonic() + 5
        while confirmed != {events, expired}:
            if time.monotonic() > deadline:
                raise TimeoutError("no subscribe confirmation")
            message = pubsub.get_message(timeout=READ_TIMEOUT)
            if message and message["type"] == "subscribe":
                confirmed.add(message["channel"])
        self._resync()
        self.reconnects += 1
        self.connected.set()
        self.reporter.poke(full=True)
        last_rx = last_resync = time.monotonic()
        pinged = 0.0
        while not self.stopped.is_set():
            message = pubsub.get_message(timeout=READ_TIMEOUT)
            now = time.monotonic()
            if message is not None:
                last_rx = now
                self._on_message(message, events, expired)
            elif now - last_rx > 3 * HEALTH_SECONDS:
                raise ConnectionError("no answer to health checks")
            elif now - last_rx > HEALTH_SECONDS and now - pinged > HEALTH_SECONDS:
                pubsub.ping()
                pinged = now
            if self._resync_due or now - last_resync > RESYNC_SECONDS:
                self._resync()
                last_resync = time.monotonic()

    def _on_message(self, message: dict[str, Any], events: bytes, expired: bytes) -> None:
        kind = message["type"]
        if kind == "subscribe":
            # Subscribed again without our asking: the connection was re-made under us.
            self._resync_due = True
            return
        if kind != "message":
            return
        if message["channel"] == expired:
            if self.keys.spec_id(message["data"]) is not None:
                self._resync_due = True
            return
        if message["channel"] != events:
            return
        self.received += 1
        try:
            event = decode_event(message["data"], self.secret)
        except WireError as exc:
            self._drop(exc.reason, exc)
            return
        except Exception as exc:
            self._drop("malformed", exc)
            return
        self._on_event(event)

    def _on_event(self, event: dict[str, Any]) -> None:
        version = event["version"]
        seen = self._seen if self._seen is not None else 0
        if event["op"] == "version":
            if version > seen:
                self._resync_due = True
            elif version < seen:
                self._check_reset(seen)
            return
        if version == seen + 1:
            self._seen = version
            self._inbox.put((_EVENT, event))
        elif version > seen + 1:
            self._resync_due = True
        else:
            self._check_reset(seen)

    def _check_reset(self, seen: int) -> None:
        # An event at or below the version we hold is normally one published between our
        # SUBSCRIBE and our resync; but if the server's counter went back (a restart without
        # persistence, FLUSHALL), the state was replaced and we must read it again.
        current = int(self.client.get(self.keys.version) or 0)
        if current < seen:
            self._resync_due = True

    def _resync(self) -> None:
        self._resync_due = False
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.keys.version)
        pipe.smembers(self.keys.ids)
        raw_version, raw_ids = pipe.execute()
        ids = sorted(i.decode("utf-8", "replace") for i in raw_ids)
        values = self.client.mget([self.keys.spec(i) for i in ids]) if ids else []
        specs = {}
        for spec_id, raw in zip(ids, values, strict=True):
            if raw is None:
                continue
            try:
                specs[spec_id] = decode_spec(spec_id, raw, self.secret)
            except WireError as exc:
                self._drop(exc.reason, f"stored spec {spec_id}: {exc}")
        version = int(raw_version or 0)
        self._seen = version
        self.resyncs += 1
        self._inbox.put((_SNAPSHOT, version, specs))

    # --- the applier --------------------------------------------------------------

    def _on_applied_change(self, spec_id: str) -> None:
        if spec_id in self.owned and not self.stopped.is_set():
            self._inbox.put((_REFRESH,))

    def _next_expiry(self) -> float | None:
        soonest = None
        specs = self.manager.specs
        for spec_id in list(self.owned):
            spec = specs.get(spec_id)
            when = _expiry(spec) if spec is not None else None
            if when is not None and (soonest is None or when < soonest):
                soonest = when
        return soonest

    def _apply_loop(self) -> None:
        while True:
            try:
                expiry = self._next_expiry()
                timeout = None if expiry is None else max(0.0, expiry - time.time())
                try:
                    items = [self._inbox.get(timeout=timeout)]
                except queue.Empty:
                    items = []
                while True:
                    try:
                        items.append(self._inbox.get_nowait())
                    except queue.Empty:
                        break
                if any(item[0] == _STOP for item in items):
                    return
                self._apply(items)
            except Exception as exc:
                self.errors += 1
                self.error = f"{type(exc).__name__}: {exc}"
                log.debug("diagnose_redis applier error", exc_info=True)
                if self.stopped.wait(0.05):
                    return

    def _apply(self, items: list[tuple[Any, ...]]) -> None:
        changes: dict[str, dict[str, Any] | None] = {}
        version = self.version
        for item in items:
            if item[0] == _SNAPSHOT:
                _, version, specs = item
                changes = {spec_id: None for spec_id in self.owned}
                changes.update(specs)
            elif item[0] == _EVENT:
                event = item[1]
                version = max(version, event["version"])
                changes[event["id"]] = event["spec"] if event["op"] == "put" else None
        now = time.time()
        manager = self.manager
        removed: list[str] = []
        with manager.lock:
            for spec_id in list(self.owned):
                if spec_id not in changes:
                    expiry = _expiry(manager.specs.get(spec_id) or {})
                    if expiry is not None and expiry <= now:
                        changes[spec_id] = None
            effective = False
            for spec_id, spec in changes.items():
                if spec is not None:
                    expiry = _expiry(spec)
                    if expiry is not None and expiry <= now:
                        spec = None
                current = manager.specs.get(spec_id) if spec_id in self.owned else None
                if _same(current, spec):
                    continue
                effective = True
                if spec is None:
                    manager.specs.pop(spec_id, None)
                    self.owned.discard(spec_id)
                    removed.append(spec_id)
                else:
                    manager.specs[spec_id] = spec
                    self.owned.add(spec_id)
            if effective:
                manager.process_id = self.process_id
                manager.apply()
                self.applies += 1
            report = self._collect(removed)
        self.version = version
        if report or version != self._reported_version:
            self.reporter.update(report)
            self._reported_version = version

    _reported_version = -1

    def _collect(self, removed: list[str]) -> dict[str, str | None]:
        at = _dt.datetime.now(_dt.UTC)
        report: dict[str, str | None] = {}
        for spec_id in removed:
            if self._reported.pop(spec_id, None) is not None:
                report[spec_id] = None
        for spec_id in self.owned:
            spec = self.manager.specs.get(spec_id) or {}
            applied = spec.get("applied") or {}
            entry = applied.get(self.process_id)
            if isinstance(entry, dict):
                outcome = (entry.get("lm"), entry.get("err"))
            else:
                outcome = (spec.get("lastmodified"), "not applied")
            if self._reported.get(spec_id) != outcome:
                self._reported[spec_id] = outcome
                lm, err = outcome
                lm = lm if isinstance(lm, _dt.datetime) else None
                report[spec_id] = encode_status_field(lm, None if err is None else str(err), at)
        return report


# --- once per process ---------------------------------------------------------------

_lock = threading.Lock()
_current: Subscriber | None = None
_orphans: list[Subscriber] = []


def _default_process_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def start(
    url: str | None = None,
    *,
    process_id: str | None = None,
    prefix: str | None = None,
    secret: str | bytes | None = None,
    manager: Any = None,
) -> Subscriber:
    """Start this process's subscriber (once: a second call returns the running one)."""
    global _current
    with _lock:
        if _current is not None and _current.running and _current.pid == os.getpid():
            return _current
        env = os.environ
        given = process_id or env.get("DIAGNOSE_PROCESS_ID") or None
        url = url or env.get("DIAGNOSE_REDIS_URL") or "redis://localhost:6379/0"
        try:
            subscriber = Subscriber(
                url,
                process_id=given or _default_process_id(),
                prefix=prefix or env.get("DIAGNOSE_PREFIX") or "diagnose",
                secret=secret if secret is not None else env.get("DIAGNOSE_SECRET") or None,
                manager=manager,
                explicit_id=given is not None,
            )
            subscriber.start()
        except Exception as exc:
            # Never raise into the host: hand back a stopped subscriber that says why.
            log.warning("diagnose_redis could not start: %s", exc)
            subscriber = _Failed(url, process_id=given or _default_process_id(), error=exc)
        _current = subscriber
        return subscriber


class _Failed(Subscriber):
    """A subscriber that could not start (a bad URL, say): stopped, with the error."""

    def __init__(self, url: str, *, process_id: str, error: BaseException) -> None:
        self.url = url
        self.process_id = process_id
        self.pid = os.getpid()
        self.error = f"{type(error).__name__}: {error}"
        self.stopped = threading.Event()
        self.stopped.set()
        self.connected = threading.Event()
        self.prefix = ""
        self.version = 0

    def stop(self, timeout: float = 3.0) -> None:
        """Do nothing: it never started."""


def _after_fork_in_child() -> None:
    global _current, _lock
    _lock = threading.Lock()
    parent = _current
    if parent is None or not parent.running:
        _current = None
        return
    # Keep the parent's objects alive, untouched: closing their sockets here could shut
    # down the parent's connections.
    _orphans.append(parent)
    _current = None
    try:
        lock = parent.manager.lock
        if lock.acquire(blocking=False):
            lock.release()
        else:
            parent.manager.lock = threading.RLock()
        process_id = (
            f"{parent.process_id}:{os.getpid()}" if parent.explicit_id else _default_process_id()
        )
        child = Subscriber(
            parent.url,
            process_id=process_id,
            prefix=parent.prefix,
            secret=parent.secret,
            manager=parent.manager,
            explicit_id=parent.explicit_id,
        )
        child.owned = set(parent.owned)
        _current = child.start()
    except Exception as exc:
        log.debug("diagnose_redis could not restart after fork: %s", exc)


def _stop_at_exit() -> None:
    subscriber = _current
    if subscriber is not None and subscriber.running and subscriber.pid == os.getpid():
        subscriber.stop(timeout=1.0)


os.register_at_fork(after_in_child=_after_fork_in_child)
atexit.register(_stop_at_exit)
