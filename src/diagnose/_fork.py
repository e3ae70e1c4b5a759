"""Every at-fork handler of the project, run in one order in the child.

Threads do not survive ``fork()``: a lock one of them held stays held for ever in the
child, and a background thread has to be started again. Each module registers what it
must reset here, with a stage, instead of calling ``os.register_at_fork`` itself, so the
order is fixed and readable in one place:

1. ``LOCKS``: fresh locks (probes, statsd, the managers);
2. ``STATE``: state that reads those locks (the managers' process ids and threads);
3. ``SERVICES``: services built on top (the Redis subscriber restarts in the child).
"""

from __future__ import annotations

import os
from collections.abc import Callable

__all__ = ("LOCKS", "SERVICES", "STATE", "after_fork_in_child")

LOCKS, STATE, SERVICES = 0, 1, 2
_handlers: list[tuple[int, int, Callable[[], None]]] = []


def after_fork_in_child(stage: int) -> Callable[[Callable[[], None]], Callable[[], None]]:
    """Decorator: run the function in every child after fork(), in stage order (then in
    the order registered within a stage)."""

    def register(func: Callable[[], None]) -> Callable[[], None]:
        _handlers.append((stage, len(_handlers), func))
        _handlers.sort(key=lambda h: (h[0], h[1]))
        return func

    return register


def _run_in_child() -> None:
    for _stage, _order, func in list(_handlers):
        try:
            func()
        except Exception:  # a handler's failure must not stop the others, nor the child
            pass


os.register_at_fork(after_in_child=_run_in_child)
