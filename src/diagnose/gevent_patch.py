"""gevent: tell whether this process is, or is about to be, monkey-patched, and wait for it.

A background thread must not be started in a process that gevent is about to patch:
gunicorn's gevent worker patches in ``init_process``, after ``post_fork`` and after the
at-fork handlers, and a real thread started before then shares locks, sockets and the
import system's module locks with greenlets. Once patched, those locks are gevent's; a
real thread that waits on one the main greenlet holds (or the reverse) waits for ever,
and Python's deadlock detection of imports cannot see it. So when ``gevent.monkey`` has
been imported but ``threading`` is not patched yet, services wait for gevent's
"did patch all" event and start then (as greenlets, ``threading`` being patched); if no
patch comes within PATCH_WAIT_SECONDS, they start as plain threads.

Nothing here imports gevent: a process that never imported it pays one dict lookup.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from typing import Any

__all__ = ("PATCH_WAIT_SECONDS", "about_to_patch", "patched", "when_patched")

#: How long services wait for a patch that ``gevent.monkey`` being imported announces.
PATCH_WAIT_SECONDS = 5.0

_lock = threading.Lock()
_waiting: list[Callable[[], None]] = []
_subscribed = False


def _monkey() -> Any:
    return sys.modules.get("gevent.monkey")


def patched() -> bool:
    """Tell whether gevent has patched ``threading`` in this process."""
    monkey = _monkey()
    try:
        return bool(monkey is not None and monkey.is_module_patched("threading"))
    except Exception:
        return False


def about_to_patch() -> bool:
    """Tell whether ``gevent.monkey`` is imported but ``threading`` is not patched yet."""
    return _monkey() is not None and not patched()


def when_patched(
    callback: Callable[[], None], *, fallback: Callable[[], bool] | None = None
) -> None:
    """Call callback once gevent has patched everything (from the patching greenlet, right
    after ``patch_all()``), or after PATCH_WAIT_SECONDS if no patch came and fallback(),
    if given, says to go on (called then, in a thread of no module's: a raw thread).

    Call it only when about_to_patch() is true. Never raises.
    """
    global _subscribed
    with _lock:
        _waiting.append(callback)
        if not _subscribed:
            try:
                from gevent import events

                events.subscribers.append(_on_event)
                _subscribed = True
            except Exception:
                pass
    _start_fallback(callback, fallback)


def _on_event(event: object) -> None:
    """gevent's event subscriber: on "did patch all", run what waited for it."""
    if type(event).__name__ != "GeventDidPatchAllEvent":
        return
    _run_waiting()


def _run_waiting() -> None:
    with _lock:
        waiting = list(_waiting)
        _waiting.clear()
    for callback in waiting:
        try:
            callback()
        except Exception:
            pass


def _start_fallback(callback: Callable[[], None], fallback: Callable[[], bool] | None) -> None:
    """Wait in a raw thread (``_thread``, not ``threading``: gevent's patch does not see it,
    and it leaves no entry in ``threading._active`` to trip on at its end) for a patch that
    does not come; then run callback if it still waits and fallback() agrees."""
    import _thread

    sleep = time.sleep  # the original, held before any patch replaces the module's

    def wait() -> None:
        sleep(PATCH_WAIT_SECONDS)
        if patched():
            return  # the event ran it (or runs it now)
        with _lock:
            if callback not in _waiting:
                return
            if fallback is not None:
                try:
                    if not fallback():
                        return
                except Exception:
                    return
            _waiting.remove(callback)
        try:
            callback()
        except Exception:
            pass

    try:
        _thread.start_new_thread(wait, ())
    except Exception:
        pass


def forget_in_child() -> None:
    """After fork: the raw fallback threads are gone; what waited keeps waiting for the
    child's own patch (the event subscriber is inherited)."""
    global _lock
    _lock = threading.Lock()
