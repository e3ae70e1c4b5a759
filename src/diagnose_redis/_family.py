"""Parent or not: what a process that forked children says about itself.

A pre-forking server's master (gunicorn ``--preload``, Celery's main process) that runs a
subscriber applies every probe but serves nothing: the fleet's counts and ``--wait`` must
not wait for it. Once a process with a subscriber has forked, it reports ``"role":
"parent"`` with the number of its live children, for as long as it has any.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ("PARENT", "PROCESS", "live_children", "role_info")

PARENT = "parent"
PROCESS = "process"


def live_children(pid: int | None = None) -> int | None:
    """Return how many child processes pid (default: this one) has, or None if unknown.

    Reads ``/proc/PID/task/*/children`` (Linux); never waits for a child, so it cannot take
    an exit status from the server that owns its children.
    """
    pid = os.getpid() if pid is None else pid
    tasks = Path(f"/proc/{pid}/task")
    try:
        children: set[str] = set()
        for task in tasks.iterdir():
            children.update((task / "children").read_text().split())
    except OSError:
        return None
    return len(children)


def role_info(forks: int) -> dict[str, object]:
    """Return the ``_process`` fields for the role of a process that forked forks times."""
    if not forks:
        return {"role": PROCESS}
    children = live_children()
    if children is None:
        children = forks
    if children == 0:
        return {"role": PROCESS}
    return {"role": PARENT, "children": children}
