"""The flusher's writers of ``stats`` and ``distinct`` takes: one server-side script each,
queued on the flush's transaction (see ``protocol.aggregates`` for the layout).

Why a script: it writes nothing once the spec is gone (a process flushing just after
``coordinator remove`` must not bring the keys back), and it gives every key the spec's
TTL as it is now, in the same step. Its writes are HSET and SET of totals, never
increments: min and max are the incarnation's own, which it alone writes, and the fleet's
are taken at read time. It is sent with EVAL (not EVALSHA): a script cache emptied by a
restarted server would fail it inside the transaction, and a failed transaction is
written again whole, which the increments of other writers must never see.

``distinct`` values leave the process only as keyed hashes: BLAKE2b of the value's
canonical form, keyed by the fleet's secret (``DIAGNOSE_SECRET``) and the spec id -- in a
HyperLogLog's registers the process builds itself and writes whole when they grow
(``protocol.hll``: far less work for Redis than a PFADD of every value), and the first 100
of each group one by one, for an exact count below that. Without a secret the key is known
to whoever reads Redis, who can then test guesses of a value (a dictionary attack); with
one, the hashes tell nothing.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import weakref
from collections.abc import Callable, Mapping
from typing import Any

import redis

from diagnose.aggregates import Aggregate
from diagnose_redis._subscriber.flusher import writer
from diagnose_redis.protocol import Keys
from diagnose_redis.protocol.aggregates import (
    META_AT,
    META_LABELS,
    META_PROCESS,
    group_field,
    hll_key,
)
from diagnose_redis.protocol.hll import DenseHLL

__all__ = ("element_hasher", "use")

log = logging.getLogger("diagnose_redis")

# Lua 5.1 in Redis takes at most 8000 values on its stack: unpack() in chunks below that.
_CHUNK = 7000

# KEYS: index, hash; ARGV: the spec's key (read only: a worker's ACL may let it read specs
# and nothing more, and Redis takes a script's KEYS as written), then field/value pairs.
_STATS_SCRIPT = """
local ttl = redis.call('PTTL', ARGV[1])
if ttl == -2 then return 0 end
local h = KEYS[2]
for i = 2, #ARGV, CHUNK do
  redis.pcall('HSET', h, unpack(ARGV, i, math.min(i + CHUNK - 1, #ARGV)))
end
redis.pcall('SADD', KEYS[1], h)
for _, key in ipairs({h, KEYS[1]}) do
  if ttl > 0 then redis.pcall('PEXPIRE', key, ttl) else redis.pcall('PERSIST', key) end
end
return 1
""".replace("CHUNK", str(_CHUNK))

# KEYS: index, hash, then the groups' HyperLogLogs; ARGV: the spec's key (read only, as
# for stats), groups, meta pairs, meta..., then per group: name, count, invalid, over ("1"
# or "0"), its HyperLogLog (or "" when unchanged), m, and m elements new to its exact record.
_DISTINCT_SCRIPT = """
local ttl = redis.call('PTTL', ARGV[1])
if ttl == -2 then return 0 end
local h = KEYS[2]
local meta = tonumber(ARGV[3])
redis.pcall('HSET', h, unpack(ARGV, 4, 3 + 2 * meta))
local i = 4 + 2 * meta
for g = 1, tonumber(ARGV[2]) do
  local name, m = ARGV[i], tonumber(ARGV[i + 5])
  redis.pcall('HSET', h, name .. '|n', ARGV[i + 1], name .. '|inv', ARGV[i + 2])
  if ARGV[i + 3] == '1' then redis.pcall('HSET', h, name .. '|over', '1') end
  if ARGV[i + 4] ~= '' then redis.pcall('SET', KEYS[2 + g], ARGV[i + 4]) end
  for j = i + 6, i + 5 + m do redis.pcall('HSET', h, name .. '|h:' .. ARGV[j], '1') end
  i = i + 6 + m
end
redis.pcall('SADD', KEYS[1], h)
for g = 1, #KEYS do
  if ttl > 0 then redis.pcall('PEXPIRE', KEYS[g], ttl) else redis.pcall('PERSIST', KEYS[g]) end
end
return 1
"""

_secret: bytes | None = None
_labels: Callable[[], Mapping[str, Any]] = dict


def use(*, secret: bytes | None, labels: Callable[[], Mapping[str, Any]]) -> None:
    """Set what the writers of this process use: the fleet's secret (it keys the hashes of
    distinct values) and the process's labels (written with each take, for --by-label)."""
    global _secret, _labels
    _secret = secret
    _labels = labels


def element_hasher(secret: bytes | None, spec_id: str) -> Callable[[bytes], int]:
    """Return the function that turns a canonical form into its element, a 64-bit hash:
    the same in every process of the fleet for one spec, different for another spec."""
    key = hashlib.blake2b(
        spec_id.encode(), key=(secret or b"")[:64], digest_size=32, person=b"diagnose-hll-key"
    ).digest()

    def element(form: bytes) -> int:
        return int.from_bytes(hashlib.blake2b(form, key=key, digest_size=8).digest(), "little")

    return element


class _Registers:
    """What the distinct writer keeps for one aggregate: each group's HyperLogLog (per
    incarnation), the take last written, and the groups whose registers grew with it."""

    def __init__(self) -> None:
        self.logs: dict[tuple[str, str], DenseHLL] = {}
        self.take: Any = None
        self.grown: set[str] = set()


# Held by the aggregate's life: gone with it once retired and taken the last time.
_REGISTERS: weakref.WeakKeyDictionary[Aggregate, _Registers] = weakref.WeakKeyDictionary()


#: Seconds before asking again whether this Redis user may run scripts, once refused.
ASK_AGAIN = 60.0
_scripts_allowed = False
_scripts_refused_at: float | None = None


def _may_run_scripts(pipe: Any) -> bool:
    """Tell whether this Redis user may run EVAL (asked once, again every ASK_AGAIN s while
    refused). A refused EVAL in the flush's transaction would fail all of it, the other
    writers' merges with it: without scripts, statistics are not written at all."""
    global _scripts_allowed, _scripts_refused_at
    if _scripts_allowed:
        return True
    now = time.monotonic()
    if _scripts_refused_at is not None and now - _scripts_refused_at < ASK_AGAIN:
        return False
    try:
        redis.Redis(connection_pool=pipe.connection_pool).eval("return 1", 0)
    except redis.exceptions.NoPermissionError as exc:
        if _scripts_refused_at is None:
            log.warning(
                "diagnose_redis: this Redis user may not run EVAL (%s); stats and distinct "
                "probes are not written (add +eval to its ACL)",
                exc,
            )
        _scripts_refused_at = now
        return False
    _scripts_allowed = True
    return True


def _meta(process: str) -> list[str]:
    try:
        labels = json.dumps(dict(_labels()), sort_keys=True, default=str)
    except Exception:
        labels = "{}"
    return [META_PROCESS, process, META_LABELS, labels, META_AT, f"{time.time():.3f}"]


@writer("stats")
def write_stats(pipe: Any, keys: Keys, process: str, aggregate: Aggregate, take: Any) -> int:
    """Queue the script that stores a stats take (its changed fields, as they are now)."""
    if not _may_run_scripts(pipe):
        return 0
    spec_id = aggregate.origin.spec
    key = keys.aggregate("stats", spec_id, process, take.incarnation)
    args = _meta(process)
    for group, fields in take.groups.items():
        for field, value in fields.items():
            args += (group_field(group, field), value)
    pipe.eval(_STATS_SCRIPT, 2, keys.aggregates(spec_id), key, keys.spec(spec_id), *args)
    return 1


@writer("distinct")
def write_distinct(pipe: Any, keys: Keys, process: str, aggregate: Aggregate, take: Any) -> int:
    """Queue the script that stores a distinct take: its counts, the exact records new to
    it, and the HyperLogLog of each group whose registers grew (``protocol.hll``)."""
    if not _may_run_scripts(pipe):
        return 0
    spec_id = aggregate.origin.spec
    key = keys.aggregate("distinct", spec_id, process, take.incarnation)
    element = element_hasher(_secret, spec_id)
    state = _REGISTERS.get(aggregate)
    if state is None:
        state = _REGISTERS[aggregate] = _Registers()
    if state.take is not take:
        # A new take: the last one was written (the flusher retries a take until it is).
        # The same take again is a retry: what grew with it is sent again.
        state.take, state.grown = take, set()
    meta = _meta(process)
    args: list[Any] = [len(take.groups), len(meta) // 2, *meta]
    hlls = []
    for group, part in take.groups.items():
        hlls.append(hll_key(key, group))
        registers = state.logs.get((take.incarnation, group))
        if registers is None:
            registers = state.logs[take.incarnation, group] = DenseHLL()
        for form in part.elements:
            if registers.add(element(form)):
                state.grown.add(group)
        exact = [f"{element(form):016x}" for form in part.exact]
        payload = registers.dump() if group in state.grown else b""
        args += (group, part.counted, part.invalid, int(part.over), payload, len(exact), *exact)
    script_keys = [keys.aggregates(spec_id), key, *hlls]
    pipe.eval(_DISTINCT_SCRIPT, len(script_keys), *script_keys, keys.spec(spec_id), *args)
    return 1
