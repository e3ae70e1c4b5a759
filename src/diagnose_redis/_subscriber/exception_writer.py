"""The flusher's writer of exception counts and captures: one script per take, run in the
flush's transaction, that merges the counts and claims the captures atomically.

The claim is what makes "the first K captures across the fleet" hold with any number of
processes raising at once: each capture of a fingerprint asks the script for one of the K
slots (``FP:claimed`` in ``K.about``); a Redis script runs alone, so the K-th slot goes to
exactly one process, and every later capture is refused. A capture that wins is stored in
``K.captures`` and added to the output stream in the same script: claimed, stored and shown
are one step. The script writes nothing once the spec key is gone (removed or expired), so
a late flush cannot bring a removed spec's aggregates back; otherwise it gives them the
spec key's TTL. Its reply: ``[1 or 0 (written), fingerprints of this take now full,
indexes (from 1) of the captures that won]``. Layout: ``protocol.exceptions``.
"""

from __future__ import annotations

import json
import os
from typing import Any

from diagnose.outbox import OUTBOX
from diagnose_redis._subscriber.flusher import writer
from diagnose_redis.protocol import Keys, output_maxlen
from diagnose_redis.protocol.exceptions import MAX_FLEET_FINGERPRINTS, OVERFLOW

__all__ = ("MERGE_SCRIPT", "write_exceptions")

# KEYS: counts, about, seen, captures, output
# ARGV: the spec's key (read only: a worker's ACL may let it read specs and nothing more,
#       and Redis takes a script's KEYS as written), process, first (K), max
#       fingerprints, stream maxlen (0: no stream), spec id,
#       instrument name, overflow fingerprint, number of fingerprints N, then N times
#       (fingerprint, count, type, message, first ms, last ms), then the number of
#       captures M, then M times (fingerprint, at text, capture JSON).
MERGE_SCRIPT = """
local ttl = redis.call('PTTL', ARGV[1])
if ttl == -2 then return {0, {}, {}} end
local process, K = ARGV[2], tonumber(ARGV[3])
local most, maxlen = tonumber(ARGV[4]), tonumber(ARGV[5])
local spec, name, overflow = ARGV[6], ARGV[7], ARGV[8]
local counts, about, seen, captures = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local touched = {}
local i = 10
for _ = 1, tonumber(ARGV[9]) do
  local fp, n = ARGV[i], tonumber(ARGV[i + 1])
  local kind, message = ARGV[i + 2], ARGV[i + 3]
  local first, last = tonumber(ARGV[i + 4]), tonumber(ARGV[i + 5])
  i = i + 6
  if not redis.call('ZSCORE', counts, fp) and redis.call('ZCARD', counts) >= most then
    fp, kind = overflow, '(overflow)'
    message = 'exceptions of fingerprints past the first ' .. most .. ' of the fleet'
  end
  redis.call('ZINCRBY', counts, n, fp)
  local known = redis.call('HMGET', about, fp .. ':first', fp .. ':last')
  if not known[1] or tonumber(known[1]) > first then
    redis.call('HSET', about, fp .. ':first', first)
  end
  if not known[2] or tonumber(known[2]) <= last then
    redis.call('HSET', about, fp .. ':last', last, fp .. ':type', kind)
    if message ~= '' then redis.call('HSET', about, fp .. ':message', message) end
  end
  if redis.call('HINCRBY', seen, fp .. ':' .. process, n) == n then
    redis.call('HINCRBY', about, fp .. ':processes', 1)
  end
  touched[fp] = true
end
local won = {}
local m = tonumber(ARGV[i])
i = i + 1
for c = 1, m do
  local fp, at, capture = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  i = i + 3
  -- a fingerprint the fleet counts under overflow has no captures
  local counted = redis.call('ZSCORE', counts, fp)
  local claimed = tonumber(redis.call('HGET', about, fp .. ':claimed') or '0')
  if counted and claimed < K then
    claimed = claimed + 1
    redis.call('HSET', about, fp .. ':claimed', claimed)
    redis.call('HSET', captures, fp .. ':' .. claimed, capture)
    if maxlen > 0 then
      redis.call('XADD', KEYS[5], 'MAXLEN', '~', maxlen, '*', 'process', process,
        'spec', spec, 'name', name, 'type', 'exception', 'value', capture,
        'tags', '{}', 'at', at)
    end
    won[#won + 1] = c
  end
  if counted then touched[fp] = true end
end
local full = {}
for fp in pairs(touched) do
  if tonumber(redis.call('HGET', about, fp .. ':claimed') or '0') >= K then
    full[#full + 1] = fp
  end
end
for k = 1, 4 do
  if ttl > 0 then redis.call('PEXPIRE', KEYS[k], ttl) else redis.call('PERSIST', KEYS[k]) end
end
return {1, full, won}
"""


def _stream_maxlen() -> int:
    """Return the output stream's cap, or 0 when DIAGNOSE_OUTPUT leaves the stream out."""
    if not OUTBOX.stream:
        return 0
    try:
        return output_maxlen(os.environ.get("DIAGNOSE_OUTPUT_MAXLEN"))
    except ValueError:
        return output_maxlen(None)


@writer("exception")
def write_exceptions(pipe: Any, keys: Keys, process: str, aggregate: Any, take: Any) -> int:
    """Queue the script that merges one take of an ExceptionAggregate (one reply)."""
    spec = aggregate.origin.spec
    k = keys.exceptions(spec)
    args: list[Any] = [
        process,
        take.first,
        MAX_FLEET_FINGERPRINTS,
        _stream_maxlen(),
        spec,
        take.name,
        OVERFLOW,
        len(take.counts),
    ]
    for fingerprint, (count, first, last, kind, message) in take.counts.items():
        args += [fingerprint, count, kind, message, int(first * 1000), int(last * 1000)]
    args.append(len(take.captures))
    for capture in take.captures:
        stored = {**capture, "process": process}
        text = json.dumps(stored, ensure_ascii=False, separators=(",", ":"), default=str)
        args += [capture["fingerprint"], capture["at"], text]
    script_keys = [k.counts, k.about, k.seen, k.captures, keys.output]
    pipe.eval(MERGE_SCRIPT, len(script_keys), *script_keys, keys.spec(spec), *args)
    return 1
