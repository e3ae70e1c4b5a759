"""Apply a manager's specs in a daemon thread: every period, and within 1 s of each expiry.

A mixin of ProbeManager (which sets the attributes declared here in its __init__, and
restarts the thread in a forked child): the thread only calls apply(), under its lock.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from diagnose.clock import expires_at

__all__ = ("BackgroundApply",)


class BackgroundApply:
    """apply_in_background() and its thread, for a manager with specs, lock and apply()."""

    specs: dict[str, dict[str, Any]]
    lock: Any
    period: float
    apply_thread: threading.Thread | None
    _wake: threading.Event
    _stop_background: threading.Event

    def apply(self) -> None:  # pragma: no cover - ProbeManager's
        raise NotImplementedError

    def handle_error(self, probe: Any = None, instrument: Any = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def next_expiry(self, after: float | None = None) -> float | None:
        """Return the unix time of the earliest expiry among the specs later than after
        (default: now), or None."""
        now = time.time() if after is None else after
        soonest = None
        with self.lock:
            for spec in self.specs.values():
                try:
                    when = expires_at(spec)
                except (KeyError, TypeError, AttributeError, OverflowError):
                    continue
                if when is not None:
                    at = when.timestamp()
                    if at > now and (soonest is None or at < soonest):
                        soonest = at
        return soonest

    # --- running in the background -------------------------------------------------

    def apply_in_background(self, period: float = 60) -> None:
        """Apply every period seconds in a daemon thread, and within 1 s of each expiry."""
        self.period = period
        self._wake.set()
        if self.apply_thread is None or not self.apply_thread.is_alive():
            self._stop_background.clear()
            self.apply_thread = threading.Thread(
                target=self._cycle, name="diagnose.manager.apply_in_background", daemon=True
            )
            self.apply_thread.start()

    def stop_background(self, timeout: float | None = 5) -> None:
        """Stop the apply_in_background thread."""
        self._stop_background.set()
        self._wake.set()
        thread, self.apply_thread = self.apply_thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _cycle(self) -> None:
        last = 0.0
        while not self._stop_background.is_set():
            now = time.time()
            # The first expiry since the last apply: it may be just past, and due now.
            expiry = self.next_expiry(after=last)
            due = last + self.period
            if expiry is not None:
                due = min(due, expiry + 0.05)
            if now >= due:
                try:
                    self.apply()
                except Exception:
                    self.handle_error()
                last = time.time()
                continue
            self._wake.wait(min(due - now, 0.5))
            self._wake.clear()
