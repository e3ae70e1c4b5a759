"""The status reporter: write a process's status hash and heartbeat, in a thread of its own."""

from __future__ import annotations

import inspect
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import redis
from redis.backoff import ExponentialWithJitterBackoff

from diagnose_redis._status.claim import IdClaim
from diagnose_redis.connection.deferred import DeferredReply
from diagnose_redis.protocol import (
    HEARTBEAT_SECONDS,
    PROCESS_FIELD,
    STATUS_TTL_SECONDS,
    Keys,
    StatusField,
    with_counts,
)

__all__ = ("StatusReporter",)

log = logging.getLogger("diagnose_redis")


class _Sent(NamedTuple):
    """A write whose replies are unread: the fields it carried, and how many of its last
    replies are the claim's refresh."""

    fields: frozenset[str]
    refresh: int


class StatusReporter:
    """Mirror a dict of status fields into ``P:status:PROCESS_ID``, and heartbeat.

    Writes only the fields that changed, plus ``_process``; rewrites the whole hash after a
    connection failure or when asked (the server may have restarted empty). Whoever updates
    the fields either wakes the reporter's thread to write them, or writes them itself with
    flush() (the listener does, being awake anyway); a failed write is retried by the thread.
    A write of changed fields, or a heartbeat, does not wait for its replies, which are read
    before the next command (see connection.deferred): a failure is found by the next heartbeat at
    the latest; a whole rewrite is a transaction, waited for.
    Heartbeats also refresh the claim on the process id, if given; on_error hears of every
    failed write. Change process_id only while holding ``io_lock`` (no write in flight).

    ``counts``, if given, returns each spec's counters (fired, dropped, errors) in this
    process (given spec ids, if it takes them, those specs' at least): every write puts the
    current ones into the fields it writes, and every heartbeat rewrites the fields whose
    counters moved since they were last written.
    ``_process`` is written by heartbeats, whole rewrites and poke(), never by a spec's
    write alone: a publish costs each process one field.
    """

    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        process_id: str,
        process_info: Callable[[], str],
        heartbeat: float = HEARTBEAT_SECONDS,
        coalesce: float = 0.05,
        claim: IdClaim | None = None,
        on_error: Callable[[Exception], None] | None = None,
        counts: Callable[..., dict[str, dict[str, int]]] | None = None,
        on_claim_lost: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.keys = keys
        self.process_id = process_id
        self.process_info = process_info
        self.heartbeat = heartbeat
        self.coalesce = coalesce
        self.claim = claim
        self.on_error = on_error
        self.counts = counts
        # Whether counts takes the spec ids it is asked for (ProbeManager.counters does).
        self._counts_by_id = counts is not None and _takes_an_argument(counts)
        #: called when a heartbeat finds the id's claim taken (whoever re-settles it)
        self.on_claim_lost = on_claim_lost
        self._written_counts: dict[str, dict[str, int]] = {}
        self.writes = 0
        self.failures = 0
        self._lock = threading.Lock()
        # Held while writing to Redis, by the thread or by flush(): one writer at a time.
        self.io_lock = self._io = threading.Lock()
        # JSON text (a StatusField's counts go in when it is written)
        self._fields: dict[str, str] = {}
        # The last write or heartbeat, whose replies are read before the next command.
        self._deferred = DeferredReply(client)
        self._dirty: set[str] = set()
        self._full = True
        self._info_due = False
        self._last_beat = 0.0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._backoff = ExponentialWithJitterBackoff(cap=2.0, base=0.05)
        self._thread = threading.Thread(
            target=self._run, name="diagnose_redis.reporter", daemon=True
        )

    def start(self) -> None:
        """Start the reporter thread (once; not after stop())."""
        with self._lock:
            if self._thread.ident is None and not self._stopping.is_set():
                self._thread.start()

    @property
    def idle(self) -> bool:
        """True if the thread never started (so nothing was written, nothing to remove)."""
        return self._thread.ident is None

    def update(self, changes: Mapping[str, str | None], wake: bool = True) -> None:
        """Set (JSON text, or a StatusField) or delete (None) status fields; wake the
        reporter unless told not to (the caller then calls flush())."""
        with self._lock:
            for field, value in changes.items():
                if value is None:
                    self._fields.pop(field, None)
                else:
                    self._fields[field] = value
                self._dirty.add(field)
        if wake:
            self._wake.set()

    def flush(self) -> None:
        """Write the changes now, in this thread; leave them to the reporter's thread if it
        is writing, or if the write fails (it retries with backoff)."""
        if not self._io.acquire(blocking=False):
            self._wake.set()
            return
        try:
            if not self._stopping.is_set():
                self._write()
        except Exception as exc:
            self._leave_to_thread(exc)
        finally:
            self._io.release()

    def poke(self, full: bool = False) -> None:
        """Write ``_process`` soon; with full, rewrite the whole hash."""
        with self._lock:
            self._info_due = True
            if full:
                self._full = True
        self._wake.set()

    def collect(self) -> None:
        """Read the reply of the last write, if it is unread, before a command of the caller's
        (so that its connection is free); a failed write is retried by the thread."""
        if self._deferred.unread is None:
            return
        with self._io:
            try:
                self._collect()
            except Exception as exc:
                self._leave_to_thread(exc)
            self._deferred.release()

    def stop(self, timeout: float = 2.0) -> None:
        """Stop the thread and delete this process's status and heartbeat."""
        self._stopping.set()
        self._wake.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def _run(self) -> None:
        failures = 0
        retry_at = 0.0
        while not self._stopping.is_set():
            now = time.monotonic()
            # The next heartbeat counts from the last one, whoever wrote it (see flush()).
            due = retry_at if failures else self._last_beat + self.heartbeat
            if now < due and self._wake.wait(due - now):
                # Let a burst of changes settle, and let the fleet's other processes apply
                # first: every worker writes at once after a publish otherwise.
                self._stopping.wait(self.coalesce)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                with self._io:
                    self._write()
            except Exception as exc:
                failures += 1
                self.failures += 1
                log.debug("status write failed (%s), retrying", exc)
                self._failed(exc)
                retry_at = time.monotonic() + self._backoff.compute(failures)
                continue
            failures = 0
        self._remove()

    def _current_counts(self, fields: set[str] | None = None) -> dict[str, dict[str, int]]:
        """Return the counts of every spec, or of these fields' at least (when the counts
        callable takes the spec ids it is asked for, as ProbeManager.counters does)."""
        if self.counts is None:
            return {}
        try:
            if fields is not None and self._counts_by_id:
                return self.counts(fields)
            return self.counts()
        except Exception as exc:  # never let a counter stop the status
            log.debug("counters unavailable: %s", exc)
            return {}

    def _counted(self, field: str, value: str, counts: dict[str, dict[str, int]]) -> str:
        count = counts.get(field)
        if count is None or field == PROCESS_FIELD:
            return value
        if type(value) is StatusField:
            self._written_counts[field] = count
            return value.text(count)
        try:
            value = with_counts(value, count)
        except ValueError:
            return value
        self._written_counts[field] = count
        return value

    def _leave_to_thread(self, exc: Exception) -> None:
        """A write failed outside the thread: count it, tell on_error, and wake the thread,
        which retries."""
        self.failures += 1
        log.debug("status write failed (%s); the reporter retries", exc)
        self._failed(exc)
        self._wake.set()

    def _failed(self, exc: Exception) -> None:
        if self.on_error is not None:
            try:
                self.on_error(exc)
            except Exception:
                pass

    def _collect(self) -> None:
        """Read the replies of the last write sent without waiting; if it failed, mark what
        it carried to be written again, whole, and raise its error."""
        sent: _Sent | None = self._deferred.unread
        if sent is None:
            return
        try:
            _, replies = self._deferred.collect()
        except BaseException:
            self._rewrite_later(sent.fields)
            raise
        if sent.refresh:
            self._check_claim(replies[-sent.refresh :])

    def _rewrite_later(self, fields: set[str] | frozenset[str]) -> None:
        """A write of fields failed: the next write is whole (the hash may be anything)."""
        with self._lock:
            self._dirty |= fields
            self._full = True
            self._info_due = True

    def _write(self) -> None:
        self._collect()
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            full, self._full = self._full, False
            info, self._info_due = self._info_due, False
            fields = dict(self._fields)
        beat = full or time.monotonic() - self._last_beat >= self.heartbeat
        if not (dirty or beat or info):
            self._deferred.release()  # nothing to send on it: the pool's again
            return
        # A write of changed fields carries their counts; a heartbeat, every field's.
        counts = self._current_counts(None if beat else dirty)
        if beat:
            # Counters move on every call of a probed function: a heartbeat writes them.
            dirty |= {
                f for f, c in counts.items() if f in fields and c != self._written_counts.get(f)
            }
        for gone in self._written_counts.keys() - fields.keys():
            del self._written_counts[gone]
        key = self.keys.status(self.process_id)
        try:
            if full:
                self._write_whole(key, {f: self._counted(f, v, counts) for f, v in fields.items()})
            else:
                self._send(key, dirty, fields, counts, beat, info)
        except BaseException:
            self._rewrite_later(dirty)
            raise
        self.writes += 1

    def _send(
        self,
        key: str,
        dirty: set[str],
        fields: dict[str, str],
        counts: dict[str, dict[str, int]],
        beat: bool,
        info: bool,
    ) -> None:
        """Send what changed (and, for a heartbeat, every field with the TTL, the score and
        the claim's refresh) without waiting for the replies: _collect() reads them."""
        commands: list[list[Any]] = []
        removed = list(dirty - fields.keys())
        if removed:
            commands.append(["HDEL", key, *removed])
        # A heartbeat writes every field: if the key expired meanwhile (the process was
        # starved past the TTL), the hash comes back whole, not just what changed.
        written = fields.keys() if beat else dirty - set(removed)
        hset: list[Any] = ["HSET", key]
        for field in written:
            hset += (field, self._counted(field, fields[field], counts))
        # _process (the version seen, the counts) rides on heartbeats and on what poke()
        # asks for, not on each spec's write: a publish writes one field.
        if beat or info:
            hset += (PROCESS_FIELD, self.process_info())
        if len(hset) > 2:
            commands.append(hset)
        if not commands:
            self._deferred.release()
            return
        refresh: list[list[Any]] = []
        if beat:
            # HSET keeps a key's TTL, so only heartbeats need to refresh it.
            commands.append(["EXPIRE", key, int(STATUS_TTL_SECONDS)])
            commands.append(["ZADD", self.keys.processes, time.time(), self.process_id])
            if self.claim is not None:
                refresh = self.claim.refresh_commands()
                commands += refresh
        self._deferred.send(commands, _Sent(frozenset(dirty), len(refresh)))
        if beat:
            self._last_beat = time.monotonic()

    def _write_whole(self, key: str, fields: dict[str, str]) -> None:
        """Replace the hash with fields, and heartbeat, in a transaction waited for."""
        self._deferred.release()  # the pipeline takes it from the pool
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(key)
        # hset(mapping=): redis-py types it Mapping[FieldT, EncodableT], whose key type is
        # invariant, so it refuses a dict[str, str] it accepts at run time.
        mapping: dict[Any, Any] = {**fields, PROCESS_FIELD: self.process_info()}
        pipe.hset(key, mapping=mapping)
        pipe.expire(key, int(STATUS_TTL_SECONDS))
        pipe.zadd(self.keys.processes, {self.process_id: time.time()})
        refresh = 0
        if self.claim is not None:
            for command in self.claim.refresh_commands():
                pipe.execute_command(*command)
                refresh += 1
        results = pipe.execute()
        self._last_beat = time.monotonic()
        self._check_claim(results[len(results) - refresh :])

    def _check_claim(self, refreshed: list[Any]) -> None:
        """Read the claim's refresh replies; say so if another process took the id."""
        if (
            refreshed
            and self.claim is not None
            and not self.claim.check(refreshed)
            and self.on_claim_lost is not None
        ):
            self.on_claim_lost()

    def _remove(self) -> None:
        try:
            # Under the I/O lock: a flush() running now cannot write the status back after.
            with self._io:
                try:
                    self._deferred.collect()  # executed before the DEL, whatever its reply
                except Exception:
                    pass
                self._deferred.release()
                pipe = self.client.pipeline(transaction=True)
                pipe.delete(self.keys.status(self.process_id))
                pipe.zrem(self.keys.processes, self.process_id)
                pipe.execute()
                if self.claim is not None:
                    self.claim.release(self.client)
        except Exception as exc:
            log.debug("could not remove status on stop: %s", exc)


def _takes_an_argument(func: Callable[..., Any]) -> bool:
    """Tell whether func can be called with one positional argument."""
    try:
        inspect.signature(func).bind(None)
    except (TypeError, ValueError):
        return False
    return True
