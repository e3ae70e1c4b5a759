"""The fleet subscriber: keep this process's probes identical to the specs published in Redis.

The listener thread owns the pub/sub connection, resyncs on every gap, applies what it read
and writes the status itself; the applier, the reporter and the outflow run in threads of
their own. Invariant: nothing raised here reaches the host, and a slow apply never stops the
reading. Design: docs/architecture.md.
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from diagnose.clock import utcnow
from diagnose_redis._status.alerts import UNREACHABLE, Alerts, classify
from diagnose_redis._status.claim import ClaimLost
from diagnose_redis._status.identity import Identity, refused_channel, refused_name
from diagnose_redis._status.reporter import StatusReporter
from diagnose_redis._subscriber import stats_writer
from diagnose_redis._subscriber.applier import Applier
from diagnose_redis._subscriber.flusher import Flusher
from diagnose_redis._subscriber.mirror import Mirror, rekey_applied
from diagnose_redis._subscriber.outflow import Outflow
from diagnose_redis._subscriber.reader import MessageReader
from diagnose_redis._subscriber.verify import Verifier
from diagnose_redis._subscriber.work_items import Event, Snapshot, Work
from diagnose_redis.connection import urls
from diagnose_redis.exceptions import WireError
from diagnose_redis.protocol import ApprovalPolicy, Keyring, Keys, expired_channel

__all__ = ("Subscriber",)

log = logging.getLogger("diagnose_redis")
log.addHandler(logging.NullHandler())

RESYNC_SECONDS = 30.0
# A connection silent this long is pinged; one silent three times as long is given up.
HEALTH_SECONDS = 5.0
# The listener sleeps until the next thing due (a ping, a resync), at most
# this long: a thousand idle subscribers on one host must not wake many times a second.
READ_TIMEOUT = 5.0
DRAIN_LIMIT = 1000
_SUBSCRIBED = ("subscribe", "ssubscribe")


class Subscriber:
    """Apply the specs published under a prefix to this process, and report what happened."""

    def __init__(
        self,
        url: str,
        *,
        process_id: str,
        prefix: str = "diagnose",
        secret: str | bytes | Keyring | None = None,
        manager: Any = None,
        explicit_id: bool = False,
        labels: Mapping[str, Any] | None = None,
        require_approval: ApprovalPolicy | str | None = None,
    ) -> None:
        if manager is None:
            import diagnose

            manager = diagnose.manager
        self.url = url
        self.process_id = process_id
        self.prefix = prefix
        # Signatures and the two-person rule are checked here, before any work is made.
        self.verifier = Verifier(secret, require_approval)
        self.secret = self.verifier.ring
        self.manager = manager
        self.explicit_id = explicit_id
        self.pid = os.getpid()
        self.started = utcnow()
        self.received = 0
        self.resyncs = 0
        self.reconnects = 0
        self.dropped: Counter[str] = Counter()
        self.connected = threading.Event()
        self.stopped = threading.Event()
        self.labels = dict(labels or {})
        self._seen: int | None = None
        # The run_id of the Redis server connected to (None: unknown, or the ACL refuses
        # INFO): the coordinator tells a process reconnecting to a new server (a restart, a
        # failover) from one killed, whose connection is gone from the server it was on.
        self.server: str | None = None
        self._may_ask_server = True
        self._resync_due = False
        # An apply of the listener's whose status it has not written yet.
        self._unwritten = False
        self._threads: dict[str, threading.Thread] = {}
        self._pubsub: redis.client.PubSub | None = None
        self.alerts = Alerts(url, process_id)
        # Named (CLIENT SETNAME) once the id is claimed, unless the ACL refuses.
        self.client = urls.connect(
            url,
            socket_connect_timeout=2,
            socket_timeout=5,
            socket_keepalive=True,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
            prefix=prefix,
        )
        self.keys = Keys(prefix, cluster=urls.is_cluster(self.client))
        # None once the ACL refused it: expiry is then the local timer's and the resyncs'.
        self._expired_channel: str | None = expired_channel(urls.database(self.client))
        # The id configured (or the default): process_id becomes the one claimed for it.
        self.identity = Identity(
            self.keys,
            process_id,
            started=self.started,
            signed=self.secret is not None,
            labels=self.labels,
        )
        self.mirror = Mirror(manager, process_id, self.identity.labels)
        self.claim = self.identity.claim
        self.reporter = StatusReporter(
            self.client,
            self.keys,
            process_id,
            self._process_text,
            claim=self.claim,
            on_error=self._write_failed,
            counts=getattr(self.manager, "counters", None),
            on_claim_lost=self._claim_lost,
        )
        self.applier = Applier(manager, self.mirror, self.reporter, self.stopped)
        self._backoff = ExponentialWithJitterBackoff(cap=1.0, base=0.05)
        self.outflow = Outflow(
            self.client,
            self.keys,
            lambda: self.process_id,
            on_error=self._output_failed,
            before_send=self.reporter.collect,
        )
        self.flusher = Flusher(
            self.client,
            self.keys,
            lambda: self.process_id,
            on_error=self._write_failed,
            before_send=self.reporter.collect,
        )
        # distinct hashes its values keyed by a secret every process of the fleet holds: the
        # bare one, or the named key of the smallest id (during a rotation that drops it, the
        # processes restarted without it count in another family of hashes until all are).
        ring = self.secret
        hash_key = None
        if ring is not None:
            hash_key = ring.bare_secret or min(ring.keys, key=lambda k: k.key_id).secret
        stats_writer.use(secret=hash_key, labels=lambda: self.identity.labels)

    # --- life cycle ----------------------------------------------------------------

    def start(self) -> Subscriber:
        """Start the listener, applier, reporter, outflow and flusher threads."""
        self.manager.process_id = self.process_id
        if hasattr(self.manager, "add_listener"):
            self.manager.add_listener(self.applier.on_applied_change)
        self._threads = {
            "listener": threading.Thread(
                target=self._listen, name="diagnose_redis.listener", daemon=True
            ),
        }
        for thread in self._threads.values():
            thread.start()
        self.applier.start()
        self.outflow.start()
        self.flusher.start()
        return self

    @property
    def owned(self) -> set[str]:
        """The ids of the specs this subscriber applied to the manager."""
        return self.mirror.owned

    @property
    def version(self) -> int:
        """The spec version last applied."""
        return self.mirror.version

    @property
    def errors(self) -> int:
        """How many times applying failed by a fault of ours (not of a spec)."""
        return self.applier.errors

    @property
    def error(self) -> str | None:
        """The last such failure, in one line."""
        return self.applier.error

    @property
    def running(self) -> bool:
        """Return True until stop() is called."""
        return not self.stopped.is_set()

    def stop(self, timeout: float = 3.0) -> None:
        """Stop the threads, remove this process's status, and detach the specs it applied."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        deadline = time.monotonic() + timeout
        self.applier.stop(max(0.0, deadline - time.monotonic()))
        # What the probes emitted until now is sent before the connections close.
        self.outflow.stop(max(0.1, min(1.0, deadline - time.monotonic())))
        self.flusher.stop(max(0.1, min(1.0, deadline - time.monotonic())))
        # Taking the process off the fleet (status, heartbeat, claim) matters most: it gets a
        # second whatever the others took (on a loaded host they can take the rest of it).
        self.reporter.stop(max(1.0, deadline - time.monotonic()))
        try:
            if hasattr(self.manager, "remove_listener"):
                self.manager.remove_listener(self.applier.on_applied_change)
            # _apply() does nothing once stopped is set, so nothing comes back.
            self.mirror.release()
        except Exception as exc:
            log.debug("detaching on stop failed: %s", exc)
        try:
            # Closing the pool's connections also wakes the listener from its read.
            self.client.close()
        except Exception:
            pass
        listener = self._threads.get("listener")
        if listener is not None and listener is not threading.current_thread():
            listener.join(max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Subscriber:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "connected" if self.connected.is_set() else "disconnected"
        if self.stopped.is_set():
            state = "stopped"
        return f"<Subscriber {self.process_id!r} {self.prefix!r} {state} version={self.version}>"

    def process_info(self) -> dict[str, Any]:
        """Return what the ``_process`` status field says about this process."""
        return {**self.identity.info(), **self._state()}

    def _state(self) -> dict[str, Any]:
        """Return the fields of ``_process`` that change as the subscriber works."""
        return {
            "version": self.version,
            "connected": self.connected.is_set(),
            **({"server": self.server} if self.server else {}),
            "received": self.received,
            "applies": self.mirror.applies,
            "resyncs": self.resyncs,
            "reconnects": self.reconnects,
            "dropped": dict(self.dropped),
            **self.verifier.info(),
            **self.alerts.info(),
        }

    def _process_text(self) -> str:
        """Return process_info() as JSON text, as json.dumps() writes it: every heartbeat
        carries it, and who the process is (the most of it) is serialised again only when
        it changed (see Identity.info_text)."""
        who = self.identity.info_text()
        state = json.dumps(self._state())
        return f"{who}, {state[1:]}" if len(who) > 1 else who + state[1:]

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
                self._settle_id()
                pubsub = self._pubsub = urls.pubsub(self.client)
                self._session(pubsub)
                failures = 0
            except ClaimLost:
                failures = 0
            except Exception as exc:
                failures += 1
                if self.stopped.is_set():
                    pass
                elif self.claim.lost:
                    failures = 0  # cut short by _claim_lost(): settle the id again
                elif self.identity.connection_name and refused_name(exc):
                    # The ACL may refuse CLIENT SETNAME: go on without a name.
                    log.debug("naming the connection failed (%s); going on without", exc)
                    self.identity.give_up_naming(self.client)
                    failures = 0
                elif self._expired_channel and refused_channel(exc):
                    # The ACL may refuse the expired-key events: go on without them.
                    log.debug("cannot subscribe to %s (%s)", self._expired_channel, exc)
                    self._expired_channel = None
                    failures = 0
                else:
                    self.alerts.failed(exc)
                    if self.connected.is_set():
                        log.info("diagnose_redis lost Redis (%s); reconnecting", exc)
                    else:
                        log.debug("diagnose_redis cannot reach Redis: %s", exc)
            finally:
                self.connected.clear()
                if self._unwritten:
                    self._unwritten = False
                    self.reporter.poke()
                if pubsub is not None:
                    try:
                        pubsub.reset()
                    except Exception:
                        pass
            if not self.stopped.is_set() and failures:
                self.stopped.wait(self._backoff.compute(failures))
        if self.reporter.idle:
            # Claimed but never reported: the reporter's stop() did not release the claim.
            try:
                self.claim.release(self.client)
            except Exception:
                pass

    def _claim_lost(self) -> None:
        """The reporter's heartbeat found the id taken: wake the listener, which settles it
        again, by closing its subscription's connection (as stop() does); it sleeps up to
        READ_TIMEOUT otherwise."""
        pubsub = self._pubsub
        if pubsub is None or threading.current_thread() is self._threads.get("listener"):
            return  # the listener checks the claim itself after its own writes
        try:
            if pubsub.connection is not None:
                pubsub.connection.disconnect()
        except Exception as exc:
            log.debug("could not wake the listener: %s", exc)

    def _settle_id(self) -> None:
        """Claim this process's id (keeping the one held), and name the connections."""
        held = self.identity.settle(self.client)
        if held is not None:
            if held != self.identity.wanted:
                self.alerts.say(
                    f"process id {self.identity.wanted!r} is held by another live process; "
                    f"reporting as {held!r}"
                )
            self._adopt(held)

    def _adopt(self, process_id: str) -> None:
        """Report under process_id from now on: status key, manager, applied entries."""
        with self.reporter.io_lock:
            old = self.process_id
            self.process_id = self.mirror.process_id = self.reporter.process_id = process_id
            self.alerts.process_id = process_id
        with self.manager.lock:
            rekey_applied(self.manager, old, process_id)
            self.mirror.forget_reported()
        self.reporter.poke(full=True)

    def _write_failed(self, exc: Exception) -> None:
        # The listener tells of lost connections; a refused write (ACL, OOM) only shows here.
        if classify(exc) != UNREACHABLE:
            self.alerts.failed(exc, where="status")

    def _output_failed(self, exc: Exception) -> None:
        if classify(exc) != UNREACHABLE:
            self.alerts.failed(exc, where="output")

    def _session(self, pubsub: redis.client.PubSub) -> None:
        events = self.keys.events.encode()
        expired = self._expired_channel.encode() if self._expired_channel else b""
        channels = {events, expired} - {b""}
        if self.keys.sharded:
            # In a cluster the events are sharded (SSUBSCRIBE, on the slot's owner); the
            # expired-key events are that node's own.
            pubsub.ssubscribe(events)
            if expired:
                pubsub.subscribe(expired)
        else:
            pubsub.subscribe(*channels)
        confirmed: set[bytes] = set()
        deadline = time.monotonic() + 5
        while confirmed != channels:
            if time.monotonic() > deadline:
                raise TimeoutError("no subscribe confirmation")
            message = pubsub.get_message(timeout=0.25)
            if message and message["type"] in _SUBSCRIBED:
                confirmed.add(message["channel"])
        self._deliver([self._resync()])
        self._learn_server()
        self.reconnects += 1
        self.connected.set()
        self.alerts.recovered()
        self._unwritten = False  # the whole hash is written by the reporter
        self.reporter.poke(full=True)
        self.reporter.start()
        last_rx = last_resync = time.monotonic()
        pinged = 0.0
        # Spread over 0.75 to 1.25 times RESYNC_SECONDS: a fleet started at once (a deploy)
        # must not resync at once every period.
        period = RESYNC_SECONDS * random.uniform(0.75, 1.25)
        resync_after = 0.0
        reader = MessageReader(pubsub)
        while not self.stopped.is_set():
            due = min(
                last_resync + period,
                max(last_rx, pinged) + HEALTH_SECONDS,
                last_rx + 3 * HEALTH_SECONDS,
            )
            timeout = max(0.0, min(READ_TIMEOUT, due - time.monotonic()))
            message = reader.wait(timeout)
            now = time.monotonic()
            if message is not None:
                last_rx = now
                # Take whatever else has arrived too: a burst is applied once.
                work: list[Work] = []
                for _ in range(DRAIN_LIMIT):
                    self._on_message(message, events, expired, work)
                    message = reader.next()
                    if message is None:
                        break
                if work:
                    self._deliver(work)
            elif now - last_rx >= 3 * HEALTH_SECONDS:
                raise ConnectionError("no answer to health checks")
            elif now - last_rx >= HEALTH_SECONDS and now - pinged >= HEALTH_SECONDS:
                pubsub.ping()
                pinged = now
            if self.claim.lost:
                raise ClaimLost()
            if (self._resync_due and now >= resync_after) or now - last_resync >= period:
                try:
                    # The periodic check is one GET while the version is the one seen (and
                    # expired spec keys announce themselves); all is read when needed.
                    if self._resync_due or self._expired_channel is None or self._version_moved():
                        self._deliver([self._resync()])
                except redis.TimeoutError as exc:
                    # Redis is slow, not gone: the subscription stands. Try again shortly,
                    # without the reconnection (subscribe, claim, whole status) that would
                    # add to its load; a fleet doing that at once never recovers.
                    log.debug("resync timed out (%s); retrying", exc)
                    self._resync_due = True
                    resync_after = time.monotonic() + HEALTH_SECONDS
                last_resync = time.monotonic()
            if self._unwritten:
                # A burst read at once was applied once, and is written once.
                self._unwritten = False
                self.reporter.flush()

    def _learn_server(self) -> None:
        """Note which Redis server this (new) connection is on, where INFO is allowed."""
        if not self._may_ask_server or self.keys.sharded:
            self.server = None
            return
        try:
            run = self.client.info("server").get("run_id")
        except redis.ResponseError:
            self._may_ask_server = False  # the ACL refuses INFO
            run = None
        self.server = str(run) if run else None

    def _on_message(
        self, message: dict[str, Any], events: bytes, expired: bytes, work: list[Work]
    ) -> None:
        kind = message["type"]
        if (kind != "message" and kind != "smessage") or message["channel"] != events:
            self._on_other(message, kind, expired)
            return
        self.received += 1
        try:
            event = self.verifier.event(message["data"])
        except WireError as exc:
            self._drop(exc.reason, exc)
            work.extend(self.verifier.refusals(exc))  # an unknown key's, told in the status
            return
        except Exception as exc:
            self._drop("malformed", exc)
            return
        version = event["version"]
        seen = self._seen if self._seen is not None else 0
        if event["op"] == "version":
            if version > seen:
                self._resync_due = True
            elif version < seen:
                self._check_reset(seen)
        elif version == seen + 1:
            self._seen = version
            work.append(Event.from_decoded(event))
        elif version > seen + 1:
            self._resync_due = True
        else:
            self._check_reset(seen)

    def _on_other(self, message: dict[str, Any], kind: str, expired: bytes) -> None:
        """Take a message that is not an event (a subscription's, an expired key's)."""
        if kind in _SUBSCRIBED:
            # Subscribed again without our asking: the connection was re-made under us.
            self._resync_due = True
        elif kind == "sunsubscribe":
            # The node let go of the slot (migrated, or it is a replica now): find the owner.
            raise redis.ConnectionError("the events' slot moved to another node")
        elif (
            kind in ("message", "smessage")
            and message["channel"] == expired
            and self.keys.spec_id(message["data"]) is not None
        ):
            self._resync_due = True

    def _check_reset(self, seen: int) -> None:
        # An event at or below the version we hold is normally one published between our
        # SUBSCRIBE and our resync; but if the server's counter went back (a restart without
        # persistence, FLUSHALL), the state was replaced and we must read it again.
        self.reporter.collect()  # the pool's connection may wait on a status write's reply
        current = int(self.client.get(self.keys.version) or 0)
        if current < seen:
            self._resync_due = True

    def _version_moved(self) -> bool:
        """Tell whether the store's version is not the one this subscriber last saw."""
        self.reporter.collect()
        return int(self.client.get(self.keys.version) or 0) != self._seen

    def _resync(self) -> Snapshot:
        self._resync_due = False
        self.reporter.collect()
        pipe = self.client.pipeline(transaction=True)
        pipe.get(self.keys.version)
        pipe.smembers(self.keys.ids)
        raw_version, raw_ids = pipe.execute()
        specs, unsound = self.verifier.read(self.client, self.keys, raw_ids)
        for spec_id, exc in unsound:
            self._drop(exc.reason, f"stored spec {spec_id}: {exc}")
        version = int(raw_version or 0)
        self._seen = version
        self.resyncs += 1
        return Snapshot(version, specs)

    def _deliver(self, work: list[Work]) -> None:
        """Apply work (see Applier.deliver); what this thread applied, it writes itself."""
        if self.applier.deliver(work):
            self._unwritten = True  # written by this thread (see _session)
