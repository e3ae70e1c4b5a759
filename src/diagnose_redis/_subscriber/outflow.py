"""The outflow: send what the instruments of specs emitted to the fleet's output stream.

A thread takes the outbox's entries in batches and adds them with one pipelined round trip
(``XADD MAXLEN ~``); idle, it sleeps until an entry wakes it. With Redis down a batch is
retried with backoff; an entry Redis refuses is dropped and counted, never duplicated.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff

from diagnose.outbox import OUTBOX, Entry, Outbox
from diagnose_redis.protocol import Keys, encode_output, output_maxlen

__all__ = ("BATCH", "IDLE", "INTERVAL", "Outflow")

log = logging.getLogger("diagnose_redis")

#: Seconds between sends, at most, and entries that trigger a send at once.
INTERVAL = 0.1
BATCH = 100
#: Seconds an idle outflow sleeps at most (the outbox's first entry wakes it sooner).
IDLE = 30.0
#: Entries sent in one round trip at most.
MAX_BATCH = 1000


class Outflow:
    """Send the outbox's entries to ``P:output``, in a daemon thread of its own."""

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        process_id: Callable[[], str],
        *,
        outbox: Outbox = OUTBOX,
        maxlen: int | None = None,
        interval: float = INTERVAL,
        on_error: Callable[[Exception], None] | None = None,
        before_send: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        #: called before each round trip: the status reporter reads the reply it is owed
        #: on the pool's connection, which this one then takes (see connection.deferred)
        self.before_send = before_send
        self.keys = keys
        self.process_id = process_id
        self.outbox = outbox
        if maxlen is None:
            try:
                maxlen = output_maxlen(os.environ.get("DIAGNOSE_OUTPUT_MAXLEN"))
            except ValueError as exc:
                log.warning("%s; keeping the default", exc)
                maxlen = output_maxlen(None)
        self.maxlen = maxlen
        self.interval = interval
        self.on_error = on_error
        #: entries written to the stream, round trips that failed, entries Redis refused
        self.sent = 0
        self.failures = 0
        self.refused = 0
        self._pending: list[Entry] = []
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._backoff = ExponentialWithJitterBackoff(cap=2.0, base=0.1)
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the thread runs."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> bool:
        """Open the outbox and start sending; False when DIAGNOSE_OUTPUT leaves Redis out."""
        if self._thread is not None or not self.outbox.open(self._wake.set):
            return False
        self._thread = threading.Thread(
            target=self._run, name="diagnose_redis.outflow", daemon=True
        )
        self._thread.start()
        return True

    def stop(self, timeout: float = 1.0) -> None:
        """Close the outbox, send what it holds (within timeout), and stop the thread."""
        if self._thread is None:
            return
        self.outbox.close()
        self._stopping.set()
        self._wake.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        while True:
            stopping = self._stopping.is_set()
            if failures and not stopping:
                self._stopping.wait(self._backoff.compute(failures))
            elif not stopping:
                if not self._pending and not len(self.outbox):
                    self._wake.wait(IDLE)  # until the first entry (or stop)
                    self._wake.clear()
                # Gather for up to interval; a full batch (or stop) sends at once.
                if not self._stopping.is_set():
                    self._wake.wait(self.interval)
                    self._wake.clear()
            try:
                self.flush()
                failures = 0
            except Exception as exc:
                failures += 1
                self.failures += 1
                log.debug("sending probe output failed (%s); retrying", exc)
                if self.on_error is not None:
                    try:
                        self.on_error(exc)
                    except Exception:
                        pass
                if stopping:
                    return
            if stopping:
                return

    def flush(self) -> None:
        """Send what the outbox holds now, a batch per round trip (raise if Redis fails;
        the batch in flight is kept for the next try)."""
        while True:
            if not self._pending:
                self._pending = self.outbox.take(MAX_BATCH)
                if not self._pending:
                    return
            self._send(self._pending)
            self._pending = []
            if len(self.outbox) < BATCH:
                return

    def _send(self, entries: list[Entry]) -> None:
        if self.before_send is not None:
            self.before_send()
        process = self.process_id()
        pipe = self.client.pipeline(transaction=False)
        key = self.keys.output
        for e in entries:
            fields: Any = encode_output(process, e.spec, e.name, e.type, e.value, e.tags, e.at)
            pipe.xadd(key, fields, maxlen=self.maxlen, approximate=True)
        results = pipe.execute(raise_on_error=False)
        refused = None
        for entry, result in zip(entries, results, strict=False):
            if isinstance(result, Exception):
                refused = result
                self.refused += 1
                dropped = self.outbox.dropped
                dropped[entry.spec] = dropped.get(entry.spec, 0) + 1
            else:
                self.sent += 1
        if refused is not None and self.on_error is not None:
            self.on_error(refused)
