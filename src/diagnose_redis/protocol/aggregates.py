"""The Redis layout of fleet statistics (instrument types ``stats`` and ``distinct``), which
the processes write and ``coordinator stats`` reads.

With ``P`` the prefix and ``ID`` the spec id; ``PROCESS#INC`` is a process id and a random
incarnation id (one per instrument per process start, so that a restarted process never
writes over what it wrote before):

- ``P:agg:ID`` (set): the names of every ``P:stats:...`` or ``P:distinct:...`` hash of
  spec ID.
- ``P:stats:ID@PROCESS#INC`` (hash): ``_process``, ``_labels`` (JSON), ``_at`` (unix time
  of the last write); per group ``GROUP|F``, F a field of ``diagnose.sketch``'s flat form:
  ``n``, ``sum``, ``min``, ``max``, ``inv``, ``z``, and ``+``/``-``, the positive and the
  negative bucket counts as ``K:N`` pairs (a few fields: Redis keeps such a hash compact).
- ``P:distinct:ID@PROCESS#INC`` (hash): ``_process``, ``_labels``, ``_at``; per group
  ``GROUP|n`` (values counted) and ``GROUP|inv``, and the group's first 100 distinct
  elements one by one, ``GROUP|h:HEX`` each (``diagnose.instruments.stats``), or
  ``GROUP|over`` once it has more.
- ``P:distinct:ID@PROCESS#INC|GROUP`` (HyperLogLog, dense): the group's elements, built by
  the process and written whole (``protocol.hll``).

Every value is the incarnation's total so far, written as it is (HSET, SET): writing it
again changes nothing, and one incarnation's hash has one writer, so no count is ever lost
or added twice however many processes flush at once. An element is a 16-hex-digit keyed
hash of a value's canonical form, never the value. The keys take the spec's TTL at every
write and go with the spec (``coordinator remove``, or ``serve`` at its expiry); a write
after the spec is gone writes nothing.
"""

from __future__ import annotations

import re

__all__ = (
    "AGGREGATE_KINDS",
    "META_AT",
    "META_LABELS",
    "META_PROCESS",
    "group_field",
    "hll_key",
    "split_field",
)

#: The instrument types whose statistics live in Redis, and the key family of each.
AGGREGATE_KINDS = ("stats", "distinct")
META_PROCESS = "_process"
META_LABELS = "_labels"
META_AT = "_at"
_SEP = "|"
# An exact element's field: a group may hold "|", an element is 16 hex digits.
_ELEMENT = re.compile(r"\|h:([0-9a-f]{16})$")


def group_field(group: str, field: str) -> str:
    """Return the hash field of one field of one group."""
    return f"{group}{_SEP}{field}"


def split_field(name: str | bytes) -> tuple[str, str] | None:
    """Return (group, field) of a group's hash field, or None for another field."""
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    element = _ELEMENT.search(name)
    if element is not None:
        return name[: element.start()], "h:" + element.group(1)
    if _SEP not in name:
        return None
    group, _, field = name.rpartition(_SEP)
    return group, field


def hll_key(hash_key: str, group: str) -> str:
    """Return the key of the HyperLogLog of one group of a distinct incarnation's hash."""
    return f"{hash_key}{_SEP}{group}"
