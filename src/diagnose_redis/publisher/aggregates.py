"""Read the statistics the fleet's processes wrote for a spec (``stats``, ``distinct``),
keep their TTL the spec's, and remove them with it (layout: ``protocol.aggregates``).

Every incarnation's hash is read as it is; merging them (the fleet, one process, one label
value) is the reader's: sketches add up exactly, distinct counts are the union of their
elements (exact while each incarnation recorded all of its own) or of their HyperLogLogs.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import redis

from diagnose.sketch import Sketch
from diagnose_redis.protocol import Keys
from diagnose_redis.protocol.aggregates import (
    META_AT,
    META_LABELS,
    META_PROCESS,
    hll_key,
    split_field,
)

__all__ = (
    "DistinctPart",
    "Incarnation",
    "count_distinct",
    "drop_aggregates",
    "keep_ttl",
    "read_incarnations",
)

_BATCH = 500


@dataclass
class DistinctPart:
    """One incarnation's share of one distinct group."""

    hll: str
    count: int = 0
    invalid: int = 0
    over: bool = False
    elements: set[str] = field(default_factory=set)


@dataclass
class Incarnation:
    """What one process wrote for a spec since it started (or its instrument did):
    ``groups`` maps a group to a Sketch (stats) or a DistinctPart (distinct)."""

    key: str
    process: str
    labels: dict[str, str]
    at: float | None
    groups: dict[str, Any]


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def _members(client: redis.Redis, keys: Keys, spec_ids: Sequence[str]) -> list[list[str]]:
    pipe = client.pipeline(transaction=False)
    for spec_id in spec_ids:
        pipe.smembers(keys.aggregates(spec_id))
    return [sorted(_text(m) for m in found) for found in pipe.execute()]


def read_incarnations(
    client: redis.Redis, keys: Keys, spec_id: str, kind: str
) -> list[Incarnation]:
    """Return every incarnation of spec_id's aggregates of this kind (stats, distinct)."""
    family = f"{keys.prefix}:{kind}:{spec_id}@"
    names = [name for name in _members(client, keys, [spec_id])[0] if name.startswith(family)]
    found = []
    for start in range(0, len(names), _BATCH):
        batch = names[start : start + _BATCH]
        pipe = client.pipeline(transaction=False)
        for name in batch:
            pipe.hgetall(name)
        for name, raw in zip(batch, pipe.execute(), strict=True):
            if raw:
                found.append(_incarnation(name, raw, kind))
    return found


def _incarnation(name: str, raw: Mapping[Any, Any], kind: str) -> Incarnation:
    meta: dict[str, str] = {}
    fields: dict[str, dict[str, str]] = {}
    for key, value in raw.items():
        split = split_field(key)
        if split is None:
            meta[_text(key)] = _text(value)
        else:
            fields.setdefault(split[0], {})[split[1]] = _text(value)
    try:
        labels = json.loads(meta.get(META_LABELS, "{}"))
    except ValueError:
        labels = {}
    try:
        at: float | None = float(meta[META_AT])
    except (KeyError, ValueError):
        at = None
    process = meta.get(META_PROCESS) or name.rpartition("@")[2].rpartition("#")[0]
    labels = {str(k): str(v) for k, v in labels.items()} if isinstance(labels, dict) else {}
    labels.setdefault("process", process)
    groups: dict[str, Any] = {}
    for group, values in fields.items():
        if kind == "distinct":
            groups[group] = _distinct_part(hll_key(name, group), values)
        else:
            groups[group] = Sketch.from_fields(values)
    return Incarnation(name, process, labels, at, groups)


def _int(text: str | None) -> int:
    try:
        return int(text or 0)
    except ValueError:
        return 0


def _distinct_part(hll: str, values: Mapping[str, str]) -> DistinctPart:
    part = DistinctPart(hll, _int(values.get("n")), _int(values.get("inv")))
    part.over = values.get("over") == "1"
    part.elements = {name[2:] for name in values if name.startswith("h:")}
    return part


def count_distinct(client: redis.Redis, parts: Iterable[DistinctPart]) -> tuple[int, bool]:
    """Return the distinct count of the union of parts, and whether it is exact (every
    part recorded all its elements) rather than the HyperLogLogs' estimate."""
    parts = list(parts)
    if not parts:
        return 0, True
    if not any(part.over for part in parts):
        union: set[str] = set()
        for part in parts:
            union |= part.elements
        return len(union), True
    return int(client.pfcount(*(part.hll for part in parts))), False


def _all_keys(client: redis.Redis, keys: Keys, spec_ids: Sequence[str]) -> dict[str, list[str]]:
    """Return, per spec id, its index and every aggregate key it lists (HyperLogLogs too)."""
    listed = _members(client, keys, spec_ids)
    distinct = [
        name
        for spec_id, names in zip(spec_ids, listed, strict=True)
        for name in names
        if name.startswith(f"{keys.prefix}:distinct:{spec_id}@")
    ]
    groups: dict[str, list[str]] = {}
    if distinct:
        pipe = client.pipeline(transaction=False)
        for name in distinct:
            pipe.hkeys(name)
        for name, fields in zip(distinct, pipe.execute(), strict=True):
            found = {split[0] for f in fields if (split := split_field(f)) and split[1] == "n"}
            groups[name] = [hll_key(name, group) for group in sorted(found)]
    return {
        spec_id: [
            keys.aggregates(spec_id),
            *(k for name in names for k in (name, *groups.get(name, ()))),
        ]
        for spec_id, names in zip(spec_ids, listed, strict=True)
    }


def drop_aggregates(client: redis.Redis, keys: Keys, spec_ids: Iterable[str]) -> int:
    """Delete the aggregates of specs (once the specs are gone: no process writes them
    any more); return how many keys were deleted."""
    ids = list(dict.fromkeys(spec_ids))
    if not ids:
        return 0
    names = [name for found in _all_keys(client, keys, ids).values() for name in found]
    deleted = 0
    for start in range(0, len(names), _BATCH):
        deleted += int(client.delete(*names[start : start + _BATCH]))
    return deleted


def keep_ttl(client: redis.Redis, keys: Keys, ttls: Mapping[str, int | None]) -> None:
    """Give the aggregates of specs just published again their new TTL (milliseconds, None:
    none), so that those of idle processes live as long as the spec too."""
    ids = list(ttls)
    if not ids:
        return
    found = _all_keys(client, keys, ids)
    pipe = client.pipeline(transaction=False)
    queued = 0
    for spec_id, names in found.items():
        if len(names) < 2:
            continue  # the index alone: nothing was written for it
        ttl = ttls[spec_id]
        for name in names:
            if ttl is None:
                pipe.persist(name)
            else:
                pipe.pexpire(name, ttl)
            queued += 1
    if queued:
        pipe.execute()
