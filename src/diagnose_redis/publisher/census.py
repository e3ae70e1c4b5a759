"""Read many status hashes at once: what `status` and `processes` need over 10,000 processes.

A pipeline of one HGETALL per key costs the client a parse and a callback per command;
a short Lua script per batch of keys returns them all as one reply, parsed in one go
(hiredis), while the server does the same reads. Where the server refuses scripts (an
ACL without EVAL, a proxy), the pipeline is used instead. The keys are passed as KEYS, so
in cluster mode a batch works as long as they share a slot (the prefix's hash tag).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import redis

__all__ = ("BATCH", "CensusRow", "census_rows", "read_fields", "read_hashes")

BATCH = 1000
_HGETALL = (
    "local out = {} for i, k in ipairs(KEYS) do out[i] = redis.call('HGETALL', k) end return out"
)
_HMGET = (
    "local out = {} for i, k in ipairs(KEYS) do out[i] = redis.call('HMGET', k, unpack(ARGV)) end "
    "return out"
)
# One row per status hash, for a summary: a code per spec ('a' its field holds the spec's
# mark, '-' no field, 'x' another value, which follows the row's first three entries in
# order), the ``_process`` field (every one, or only a pre-fork parent's), and the number of
# fields that are neither ``_process`` nor a listed spec (-1: not counted).
_CENSUS = """
local n = tonumber(ARGV[1])
local fields = {'_process'}
for i = 1, n do fields[i + 1] = ARGV[1 + i] end
local want_info = ARGV[2 * n + 2] == '1'
local want_extra = ARGV[2 * n + 3] == '1'
local out = {}
for k, key in ipairs(KEYS) do
  local vals = redis.call('HMGET', key, unpack(fields))
  local row = {'', false, -1}
  local codes = {}
  local present = 0
  for i = 1, n do
    local v = vals[i + 1]
    if v then
      present = present + 1
      local mark = ARGV[1 + n + i]
      if mark ~= '' and string.find(v, mark, 1, true) then
        codes[i] = 'a'
      else
        codes[i] = 'x'
        row[#row + 1] = v
      end
    else
      codes[i] = '-'
    end
  end
  local info = vals[1]
  if info then
    present = present + 1
    if want_info or string.find(info, '"parent"', 1, true) then row[2] = info end
  end
  row[1] = table.concat(codes)
  if want_extra then row[3] = redis.call('HLEN', key) - present end
  out[k] = row
end
return out
"""
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


class CensusRow(NamedTuple):
    """What census_rows() tells of one status hash."""

    #: per spec asked: b"a" its field holds the spec's mark, b"-" it has none, b"x" another
    codes: bytes
    #: the ``_process`` field, when asked for every one, else only a pre-fork parent's
    info: bytes | None
    #: how many other fields the hash has (specs no longer listed), -1 when not counted
    extra: int
    #: the fields coded b"x", in order
    others: list[bytes]


def census_rows(
    client: redis.Redis,
    keys: Sequence[str | bytes],
    spec_ids: Sequence[str],
    marks: Sequence[bytes],
    *,
    every_info: bool,
    count_extra: bool,
) -> list[CensusRow]:
    """Tell, for every status key, which of spec_ids its fields report with their mark (the
    text of the current version applied without error: the common case), read server-side
    so that 10,000 hashes cost a short reply; the other fields come whole."""
    keys = list(keys)
    if not keys:
        return []
    n = len(spec_ids)
    args = [n, *spec_ids, *marks, "1" if every_info else "0", "1" if count_extra else "0"]
    replies = _scripted(client, _CENSUS, keys, args)
    if replies is not None:
        return [CensusRow(r[0], r[1] or None, int(r[2]), list(r[3:])) for r in replies]
    # Without scripts: the same rows from the whole fields.
    fields = ["_process", *spec_ids]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hmget(key, fields)
        if count_extra:
            pipe.hlen(key)
    results = pipe.execute()
    step = 2 if count_extra else 1
    rows = []
    for at in range(0, len(results), step):
        info, *values = results[at]
        codes, others = bytearray(), []
        for value, mark in zip(values, marks, strict=True):
            if value is None:
                codes += b"-"
            elif mark and mark in value:
                codes += b"a"
            else:
                codes += b"x"
                others.append(value)
        present = sum(v is not None for v in results[at])
        keep = info is not None and (every_info or b'"parent"' in info)
        extra = int(results[at + 1]) - present if count_extra else -1
        rows.append(CensusRow(bytes(codes), info if keep else None, extra, others))
    return rows
