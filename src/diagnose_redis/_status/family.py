"""Parent or not: what a process that forked children says about itself.

A pre-forking server's master (gunicorn ``--preload``, Celery's main process) that runs a
subscriber applies every probe but serves nothing: the fleet's counts and ``--wait`` must
not wait for it. Once a process has forked children (with ``os.fork()``, not subprocesses),
it reports ``"role": "parent"`` with how many of them live, for as long as any does.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from diagnose.fork import LOCKS, after_fork_in_child

__all__ = ("PARENT", "PROCESS", "ForkedChildren", "forked", "live_children")

PARENT = "parent"
PROCESS = "process"


def live_children(pid: int | None = None) -> set[int] | None:
    """Return the pids of the children of pid (default: this process), or None if unknown.

    Reads ``/proc/PID/task/*/children`` (Linux); never waits for a child, so it cannot take
    an exit status from the server that owns its children.
    """
    pid = os.getpid() if pid is None else pid
    try:
        children: set[int] = set()
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                children.update(int(p) for p in (task / "children").read_text().split())
            except FileNotFoundError:
                pass  # a thread that ended while we read
    except OSError:
        return None
    return children


class ForkedChildren:
    """The children this process made with fork(): the ones that appeared across a fork.

    ``before()`` and ``after_in_parent()`` run around every fork (os.register_at_fork);
    a subprocess started by other means is never counted.
    """

    def __init__(self) -> None:
        self.owner = os.getpid()
        self.forks = 0
        self.pids: set[int] = set()
        self._before: set[int] | None = None
        self._lock = threading.Lock()

    def before(self) -> None:
        """Note the children that exist before a fork."""
        self._before = live_children()

    def after_in_parent(self) -> None:
        """Record the child (or children) the fork made."""
        after = live_children()
        with self._lock:
            self._reset_if_forked()
            self.forks += 1
            if after is not None and self._before is not None:
                self.pids |= after - self._before
        self._before = None

    def count(self) -> int:
        """Return how many forked children live (forks made, where /proc is missing)."""
        with self._lock:
            self._reset_if_forked()
            if not self.forks:
                return 0
            current = live_children()
            if current is None:
                return self.forks
            self.pids &= current
            return len(self.pids)

    def role_info(self) -> dict[str, object]:
        """Return the ``_process`` fields for this process's role."""
        children = self.count()
        if not children:
            return {"role": PROCESS}
        return {"role": PARENT, "children": children}

    def _reset_if_forked(self) -> None:
        # In a child, the parent's children are not ours.
        if self.owner != os.getpid():
            self.reset_in_child()

    def reset_in_child(self) -> None:
        """Forget the parent's children, and its lock (a thread may have held it at fork)."""
        self._lock = threading.Lock()
        self.owner = os.getpid()
        self.forks = 0
        self.pids = set()
        self._before = None


forked = ForkedChildren()
after_fork_in_child(LOCKS)(forked.reset_in_child)
