"""Every at-fork handler of the project, run in one order in the child.

Stages: ``LOCKS`` (fresh locks), ``STATE`` (what reads them), both inside ``fork()``; then
``SERVICES`` (threads started again), once ``fork()`` has returned in the child, after the
at-fork handlers of modules imported later (logging's) have run. Under gevent (about to
monkey-patch) no thread is started: SERVICES run once the patch is done (``gevent_patch``).
"""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from collections.abc import Callable, Iterable

from diagnose import gevent_patch

__all__ = (
    "FORK_RETURN_TIMEOUT",
    "LOCKS",
    "SERVICES",
    "STATE",
    "after_fork_in_child",
    "run_child_handlers_once",
)

LOCKS, STATE, SERVICES = 0, 1, 2
#: How long the SERVICES stage waits for fork() to return in the child, at most.
FORK_RETURN_TIMEOUT = 2.0
_handlers: list[tuple[int, int, Callable[[], None]]] = []
# The process whose state the handlers last made right: this one, or the child they ran in.
_handled_pid = os.getpid()


def after_fork_in_child(stage: int) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Decorator: run the function in every child after fork(), in stage order (then in
    the order registered within a stage)."""

    def register(func: Callable[[], None]) -> Callable[[], None]:
        _handlers.append((stage, len(_handlers), func))
        _handlers.sort(key=lambda h: (h[0], h[1]))
        return func

    return register


def _run(handlers: Iterable[Callable[[], None]]) -> None:
    for func in handlers:
        try:
            func()
        except Exception:  # a handler's failure must not stop the others, nor the child
            pass


def _services_once_forked(caller: types.FrameType | None, at: int) -> None:
    """Wait until the frame that called fork() has moved on, then run SERVICES."""
    deadline = time.monotonic() + FORK_RETURN_TIMEOUT
    while caller is not None and caller.f_lasti == at and time.monotonic() < deadline:
        time.sleep(0.001)
    del caller
    _run_services()


def _run_services() -> None:
    _run([func for stage, _order, func in list(_handlers) if stage == SERVICES])


def run_child_handlers_once() -> None:
    """Run the LOCKS and STATE stages in a child forked without os.fork() (uWSGI forks
    from C, and Python's at-fork handlers do not run there); nothing if they ran."""
    global _handled_pid
    if os.getpid() == _handled_pid:
        return
    _handled_pid = os.getpid()
    gevent_patch.forget_in_child()
    _run([func for stage, _order, func in list(_handlers) if stage != SERVICES])


def _run_in_child() -> None:
    global _handled_pid
    _handled_pid = os.getpid()
    gevent_patch.forget_in_child()
    handlers = list(_handlers)
    _run([func for stage, _order, func in handlers if stage != SERVICES])
    if not any(stage == SERVICES for stage, _order, _func in handlers):
        return
    if gevent_patch.about_to_patch():
        # A real thread started now would run on, across the patch, beside greenlets.
        gevent_patch.when_patched(_run_services)
        return
    try:
        # The handler is called from C inside os.fork(): the frame before its own is
        # the one that called fork(), stopped on that call until it returns.
        caller: types.FrameType | None = sys._getframe(1)
    except ValueError:
        caller = None
    at = caller.f_lasti if caller is not None else -1
    threading.Thread(
        target=_services_once_forked, args=(caller, at), name="diagnose-after-fork", daemon=True
    ).start()


os.register_at_fork(after_in_child=_run_in_child)
