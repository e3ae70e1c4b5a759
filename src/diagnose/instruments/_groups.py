"""Group queues: where the hot path of a ``stats`` or ``distinct`` instrument leaves each
value, in the queue of its group (``--by``), for the flusher's thread to fold.

Invariants:

- The target's thread only appends to its group's deque (atomic, no lock, no I/O). Finding
  the queue of a group seen before is one dict lookup for str and int group values (and a
  call more for bool, float, None and Enum ones); a new group, or a value of another type,
  takes the slow path (its text, under a lock that only that path and the fold take).
- At most MAX_GROUPS named groups per instrument and process; values of any further group go
  to OTHER. A group is named by its value's text (``str``, as a log line shows it, secrets
  redacted), cut to GROUP_CHARS characters.
- A queue holds about SPILL values at most: the flusher's thread folds them every
  FOLD_INTERVAL (``diagnose_redis``); when it falls behind (a burst, a busy process, no
  flusher at all), the hot path that finds its queue over SPILL folds it itself, once, if
  no fold is under way (``_tallies``). No value is dropped, and memory stays bounded.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from typing import Any

from diagnose._output.render import render

__all__ = (
    "ALL",
    "GROUP_CHARS",
    "MAX_GROUPS",
    "OTHER",
    "SPILL",
    "GroupQueues",
    "group_text",
)

#: The one group of an instrument without ``--by``.
ALL = "all"
#: Where the values of groups beyond MAX_GROUPS go.
OTHER = "other"
MAX_GROUPS = 100
GROUP_CHARS = 64
SPILL = 4_096
# Raw group values (str and int) the hot path finds its queue by, at most: beyond, a
# group's queue is found by its text (the slow path), so that this map stays bounded too.
_MAX_KEYS = 4 * MAX_GROUPS


def group_text(value: Any) -> str:
    """Return the name of the group of value: its text, as a log line shows it (secrets
    redacted), on one line, at most GROUP_CHARS characters. Never raises."""
    kind = type(value)
    try:
        if kind is str:
            text = value
        elif isinstance(value, enum.Enum):
            text = str(value._name_)
        elif value is None or kind in (int, float, bool):
            text = str(value)
        else:
            text = render(value, GROUP_CHARS + 3)
    except Exception:
        text = f"<{kind.__name__}>"
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else " " for ch in text[: GROUP_CHARS * 2])
    return text[:GROUP_CHARS]


class GroupQueues:
    """The queues of one instrument's groups, by group text; ``keys`` finds them by value."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: group text -> its queue
        self.queues: dict[str, deque[Any]] = {}
        #: str or int group value -> its group's queue (read by the hot path, no lock)
        self.keys: dict[Any, deque[Any]] = {}

    def queue(self, value: Any) -> deque[Any]:
        """Return the queue of value's group, making the group if there is room (else
        OTHER's); the slow path of the hot one (``keys.get(value)``).

        Values of a few more types whose equality runs no code of the application (bool,
        float, None, Enum members) are found again without the lock, by (type, value): a
        flag is not the int 1, nor 1.0.
        """
        kind = type(value)
        key: Any = None
        if kind is bool or kind is float or value is None or isinstance(value, enum.Enum):
            key = (kind, value)
            found = self.keys.get(key)
            if found is not None:
                return found
        text = group_text(value)
        with self.lock:
            found = self.queues.get(text)
            if found is None:
                if len(self.queues) >= MAX_GROUPS:
                    text = OTHER
                    found = self.queues.get(text)
                if found is None:
                    found = self.queues[text] = deque()
            if len(self.keys) < _MAX_KEYS:
                if kind is str or kind is int:
                    self.keys[value] = found
                elif key is not None:
                    self.keys[key] = found
        return found

    def drain(self) -> list[tuple[str, list[Any]]]:
        """Take what every queue holds now: (group text, values) of the non-empty ones.

        Values appended meanwhile stay for the next drain: nothing is taken twice or lost.
        """
        with self.lock:
            queues = list(self.queues.items())
        taken = []
        for text, queue in queues:
            size = len(queue)
            if not size:
                continue
            pop = queue.popleft
            taken.append((text, [pop() for _ in range(size)]))
        return taken

    def clear(self) -> None:
        """Drop every queued value, without waiting on the lock (a forked child: a thread
        of the parent may have held it)."""
        self.lock = threading.Lock()
        for queue in list(self.queues.values()):
            queue.clear()
