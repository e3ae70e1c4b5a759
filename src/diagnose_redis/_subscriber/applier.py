"""The subscriber's applier: what the listener read goes into the manager, in order.

Its thread (no I/O) applies what the listener queued when the manager was busy, detaches
expired specs on a local timer, and passes on runtime errors of instruments.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from typing import Any

from diagnose.exceptions import one_line
from diagnose_redis._status.reporter import StatusReporter
from diagnose_redis._subscriber.mirror import RETRY_SECONDS, Mirror
from diagnose_redis._subscriber.work_items import Backlog, Signal, Work

__all__ = ("Applier",)

log = logging.getLogger("diagnose_redis")


class Applier:
    """Apply work to a manager through a mirror, at once or in a thread of its own."""

    def __init__(
        self, manager: Any, mirror: Mirror, reporter: StatusReporter, stopped: threading.Event
    ) -> None:
        self.manager = manager
        self.mirror = mirror
        self.reporter = reporter
        self.stopped = stopped
        #: our own failures (bugs, not specs': the manager reports those), and the last one
        self.errors = 0
        self.error: str | None = None
        self._inbox: queue.SimpleQueue[Work | Signal] = queue.SimpleQueue()
        # Work is applied in the order read: see Backlog.
        self._backlog = Backlog()
        self._wake_at = math.inf
        self.thread = threading.Thread(target=self._run, name="diagnose_redis.applier", daemon=True)

    def start(self) -> None:
        """Start the applier's thread."""
        self.thread.start()

    def stop(self, timeout: float) -> None:
        """Stop the thread (after the work queued before) and wait for it up to timeout."""
        self._inbox.put(Signal.STOP)
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def deliver(self, work: list[Work]) -> bool:
        """Apply work in this thread when that cannot wait or reorder, else queue it; True
        when it was applied here and there is a status to write."""
        backlog = self._backlog
        if backlog.apply_lock.acquire(blocking=False):
            try:
                lock = self.manager.lock
                if backlog.empty() and lock.acquire(blocking=False):
                    try:
                        reported = self._apply(work)
                    except Exception as exc:
                        self.failed(exc)
                        return False
                    finally:
                        lock.release()
                    # The thread sleeps until the soonest expiry it knew of: wake it if a
                    # spec set now expires sooner (or a target is to be tried again).
                    if self.mirror.deferred or self.mirror.set_expiry < self._wake_at:
                        self._inbox.put(Signal.WAKE)
                    return reported
            finally:
                backlog.apply_lock.release()
        backlog.queue(len(work))
        for item in work:
            self._inbox.put(item)
        return False

    def on_applied_change(self, spec_id: str) -> None:
        """The manager's listener: an owned spec's outcome changed outside our own apply."""
        # During our own apply the report follows anyway; otherwise an instrument failed
        # in some thread of the host, and its error goes to the status.
        if self.mirror.applying:
            return
        if spec_id in self.mirror.owned and not self.stopped.is_set():
            self._inbox.put(Signal.REFRESH)

    def failed(self, exc: Exception) -> None:
        """Count a failure of ours, and go on."""
        self.errors += 1
        self.error = one_line(exc)
        log.debug("diagnose_redis could not apply", exc_info=True)

    def _run(self) -> None:
        backlog = self._backlog
        while True:
            try:
                with backlog.apply_lock:
                    self._wake_at = self.mirror.soonest_expiry()
                timeout = None
                if self._wake_at != math.inf:
                    timeout = min(max(0.0, self._wake_at - time.time()), 3600.0)
                if self.mirror.deferred:
                    # A target whose module the host has not imported yet: try it again.
                    timeout = min(timeout if timeout is not None else RETRY_SECONDS, RETRY_SECONDS)
                items: list[Work | Signal] = []
                try:
                    items.append(self._inbox.get(timeout=timeout))
                except queue.Empty:
                    pass
                with backlog.apply_lock:
                    while True:
                        try:
                            items.append(self._inbox.get_nowait())
                        except queue.Empty:
                            break
                    if Signal.STOP in items:
                        return
                    work = [item for item in items if not isinstance(item, Signal)]
                    try:
                        with self.manager.lock:
                            reported = self._apply(work)
                    finally:
                        backlog.finish(len(work))
                if reported:
                    self.reporter.poke()
            except Exception as exc:
                self.failed(exc)
                if self.stopped.wait(0.05):
                    return

    def _apply(self, items: list[Work]) -> bool:
        """Apply work items and any expiry (hold manager.lock); True if there is a report."""
        if self.stopped.is_set():
            return False
        report = self.mirror.merge(items)
        if report is None:
            return False
        self.reporter.update(report, wake=False)
        return True
