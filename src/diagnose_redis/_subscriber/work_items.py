"""What the subscriber's threads hand each other: typed work items, and the order they keep.

The listener reads Redis and turns what it read into work: a Snapshot (the full set of specs,
read at a resync) or an Event (one put or delete from the channel). A spec this process
refuses (signed with a key it does not hold, or awaiting approval) travels as Refused. It
applies the work itself when it can, or queues it for the applier; Signals wake or stop the
applier. The Backlog tells the listener whether applying itself could overtake queued work.
"""

from __future__ import annotations

import enum
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

__all__ = ("Backlog", "Event", "Refused", "Signal", "Snapshot", "Work")


@dataclass(frozen=True, slots=True)
class Refused:
    """A spec this process will not apply, and why: its status field says so.

    ``spec`` is what it claims to be (its select and lastmodified are reported). ``sound``
    is True when it is what Redis holds (a stored spec, or a verified event's): it then
    replaces a version applied before; an unverified claim never changes what is applied.
    """

    spec: dict[str, Any]
    error: str
    sound: bool = True


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Every stored spec (decoded) at a version: what the process should hold."""

    version: int
    specs: dict[str, dict[str, Any] | Refused]


class Event(NamedTuple):
    """One put (with its decoded spec) or delete of a spec, at a version (a tuple: one is
    made for every message, and a tuple is the cheapest immutable record to make)."""

    op: str
    spec_id: str
    version: int
    spec: dict[str, Any] | Refused | None = None

    @classmethod
    def from_decoded(cls, event: dict[str, Any]) -> Event:
        """Build from what ``protocol.decode_event`` returns for a put or delete."""
        return cls(event["op"], event["id"], event["version"], event.get("spec"))


class Signal(enum.Enum):
    """A message for the applier that is not work: nothing to count, nothing to order."""

    REFRESH = "refresh"  # an instrument's runtime error changed what to report
    WAKE = "wake"  # an expiry may now come sooner than the applier's timer
    STOP = "stop"


Work = Snapshot | Event


class Backlog:
    """Count the work items queued for the applier and those it has finished.

    The order contract: work is applied in the order the listener read it. The listener
    may apply work itself, skipping the queue, only while the backlog is empty, i.e. when
    everything it ever queued has been applied; otherwise it queues behind the rest.
    ``queued`` is written and read by the listener only (queue() before it puts the items
    in the inbox, empty()); ``done`` is written by the applier only (finish()), under
    ``apply_lock``, which the listener holds while it checks empty() and applies: so the
    applier can neither finish nor start work in between.
    """

    def __init__(self) -> None:
        self.queued = 0
        self.done = 0
        self.apply_lock = threading.Lock()

    def queue(self, count: int) -> None:
        """Record that the listener queued count work items (listener only)."""
        self.queued += count

    def finish(self, count: int) -> None:
        """Record that the applier applied count work items (applier only)."""
        self.done += count

    def empty(self) -> bool:
        """Tell whether all queued work was applied (call with apply_lock held)."""
        return self.queued == self.done
