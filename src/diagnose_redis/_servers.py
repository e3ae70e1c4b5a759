"""What the server around this process does with it, so that ``start()`` can do the right thing.

- **gevent** (``diagnose.gevent_patch``): in a process that gevent is about to monkey-patch
  (gunicorn's gevent worker patches after ``post_fork``), the subscriber starts once the
  patch is done, as greenlets, never as real threads beside them.
- **uWSGI** forks its workers from C: ``os.register_at_fork`` handlers never run there, and
  in its default mode the master imports the application. The master serves nothing, so it
  runs no subscriber: each worker starts its own from uWSGI's post-fork hook. With
  ``--lazy-apps`` each worker imports the application itself, after the fork, and starts
  at once. ``uwsgi.atexit`` stops it when the worker leaves.
- **SIGTERM**: a process whose SIGTERM has the default action dies without running
  ``atexit``. A handler chained before the one in place stops the subscriber (its id,
  status and heartbeat go at once), then hands the signal on unchanged. Servers replace
  handlers (gunicorn's workers reset them after ``post_fork``), and uvicorn, after its
  graceful shutdown, restores the handler it found (the default, in a gunicorn worker) and
  raises SIGTERM again with ``signal.raise_signal``: that call stops the subscriber first.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Callable
from typing import Any

from diagnose import gevent_patch

__all__ = (
    "chain_sigterm",
    "on_raise_sigterm",
    "on_uwsgi_exit",
    "on_uwsgi_fork",
    "uwsgi_master",
    "wait_reason",
)


def _uwsgi() -> Any:
    """Return the ``uwsgi`` module when running inside uWSGI, else None."""
    return sys.modules.get("uwsgi")


def uwsgi_master() -> bool:
    """Tell whether this is a uWSGI master (worker id 0), which serves nothing."""
    uwsgi = _uwsgi()
    try:
        return uwsgi is not None and int(uwsgi.worker_id()) == 0
    except Exception:
        return False


def wait_reason() -> str | None:
    """Return why the subscriber must not start in this process now, or None."""
    if gevent_patch.about_to_patch():
        return "gevent"
    if uwsgi_master():
        return "uwsgi master"
    return None


def on_uwsgi_fork(hook: Callable[[], None]) -> bool:
    """Run hook in every uWSGI worker right after uWSGI forks it; True if registered.

    Through ``uwsgidecorators``' post-fork chain when it is importable (so that a later
    ``@postfork`` of the application keeps ours), else by chaining ``uwsgi.post_fork_hook``.
    """
    uwsgi = _uwsgi()
    if uwsgi is None:
        return False
    try:
        fresh = "uwsgidecorators" not in sys.modules
        spooler = getattr(uwsgi, "spooler", None)
        own_hook = getattr(uwsgi, "post_fork_hook", None)
        import uwsgidecorators

        if fresh:
            # Importing it replaced what the application had set itself: keep both.
            if spooler is not None:
                uwsgi.spooler = spooler
            if own_hook is not None and own_hook is not uwsgidecorators.postfork_chain_hook:
                uwsgidecorators.postfork_chain.append(own_hook)
        uwsgidecorators.postfork_chain.append(hook)
        return True
    except Exception:
        pass
    previous = getattr(uwsgi, "post_fork_hook", None)

    def post_fork() -> None:
        if previous is not None:
            previous()
        hook()

    try:
        uwsgi.post_fork_hook = post_fork
    except Exception:
        return False
    return True


def on_uwsgi_exit(hook: Callable[[], None]) -> None:
    """Chain hook before ``uwsgi.atexit`` (what uWSGI calls when a worker leaves)."""
    uwsgi = _uwsgi()
    if uwsgi is None:
        return
    previous = getattr(uwsgi, "atexit", None)
    if getattr(previous, "_diagnose_redis", False):
        return

    def at_exit() -> None:
        try:
            hook()
        finally:
            if previous is not None:
                previous()

    at_exit._diagnose_redis = True  # type: ignore[attr-defined]
    try:
        uwsgi.atexit = at_exit
    except Exception:
        pass


def chain_sigterm(hook: Callable[[], None]) -> bool:
    """Run hook on SIGTERM, then what SIGTERM did before (its handler, or dying of it).

    Only from the main thread, and only over the default action or a Python handler: an
    ignored SIGTERM stays ignored. Return True if installed.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        previous = signal.getsignal(signal.SIGTERM)
    except (ValueError, OSError):
        return False
    if (
        previous is signal.SIG_IGN
        or previous is None
        or getattr(previous, "_diagnose_redis", False)
    ):
        return False

    def on_sigterm(signum: int, frame: Any) -> None:
        try:
            hook()
        except Exception:
            pass
        if callable(previous):
            previous(signum, frame)
            return
        # The default action: die of the signal, as the process would have.
        try:
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
        except (ValueError, OSError):
            pass
        signal.raise_signal(signal.SIGTERM)

    on_sigterm._diagnose_redis = True  # type: ignore[attr-defined]
    try:
        signal.signal(signal.SIGTERM, on_sigterm)
    except (ValueError, OSError):
        return False
    return True


def on_raise_sigterm(hook: Callable[[], None]) -> None:
    """Run hook when the process raises SIGTERM on itself to die of it (its handler is the
    default action), as uvicorn does at the end of a graceful shutdown; once per process."""
    original = signal.raise_signal
    if getattr(original, "_diagnose_redis", False):
        return

    def raise_signal(signalnum: int) -> None:
        if signalnum == signal.SIGTERM:
            try:
                if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
                    hook()
            except Exception:
                pass
        original(signalnum)

    raise_signal._diagnose_redis = True  # type: ignore[attr-defined]
    raise_signal.__wrapped__ = original  # type: ignore[attr-defined]
    signal.raise_signal = raise_signal
