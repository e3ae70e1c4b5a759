"""Read many status hashes at once: what `status` and `processes` need over 10,000 processes.

A pipeline of one HGETALL per key costs the client a parse and a callback per command;
a short Lua script per batch of keys returns them all as one reply, parsed in one go
(hiredis), while the server does the same reads. Where the server refuses scripts (an
ACL without EVAL, a proxy), the pipeline is used instead. The keys are passed as KEYS, so
in cluster mode a batch works as long as they share a slot (the prefix's hash tag).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis

__all__ = ("BATCH", "read_fields", "read_hashes")

BATCH = 1000
_HGETALL = (
    "local out = {} for i, k in ipairs(KEYS) do out[i] = redis.call('HGETALL', k) end return out"
)
_HMGET = (
    "local out = {} for i, k in ipairs(KEYS) do out[i] = redis.call('HMGET', k, unpack(ARGV)) end "
    "return out"
)
_refused: set[int] = set()


def _scripted(client: redis.Redis, source: str, keys: list[Any], args: Sequence[Any]) -> Any:
    """Run source over keys in batches; None if this server refuses scripts."""
    if id(client) in _refused:
        return None
    script = client.register_script(source)
    out: list[Any] = []
    try:
        for start in range(0, len(keys), BATCH):
            out += script(keys=keys[start : start + BATCH], args=list(args))
    except redis.ResponseError as exc:
        text = str(exc).lower()
        if "noperm" in text or "unknown command" in text or "no permissions" in text:
            _refused.add(id(client))
            return None
        raise
    return out


def read_hashes(client: redis.Redis, keys: Sequence[str | bytes]) -> list[dict[bytes, bytes]]:
    """Return HGETALL of every key, in order (an empty dict for a missing key)."""
    keys = list(keys)
    if not keys:
        return []
    flat = _scripted(client, _HGETALL, keys, ())
    if flat is None:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hgetall(key)
        return [_bytes_keys(h) for h in pipe.execute()]
    return [{pairs[i]: pairs[i + 1] for i in range(0, len(pairs), 2)} for pairs in flat]


def read_fields(
    client: redis.Redis, keys: Sequence[str | bytes], fields: Sequence[str]
) -> list[list[bytes | None]]:
    """Return HMGET of fields from every key, in order (None for what is missing)."""
    keys = list(keys)
    if not keys:
        return []
    rows = _scripted(client, _HMGET, keys, fields)
    if rows is None:
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.hmget(key, list(fields))
        rows = pipe.execute()
    # Lua turns a missing field (nil) into false, which redis-py reads as None.
    return [[value if value else None for value in row] for row in rows]


def _bytes_keys(mapping: dict[Any, Any]) -> dict[bytes, bytes]:
    return {(k.encode() if isinstance(k, str) else k): v for k, v in mapping.items()}
