"""Read what the fleet counted and captured for an exception spec (``coordinator
exceptions``): one summary per fingerprint, and the captures of one."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any

import redis

from diagnose_redis.protocol import Keys
from diagnose_redis.protocol.exceptions import capture_field, from_ms, split_field

__all__ = ("ExceptionSummary", "find_fingerprint", "read_captures", "read_exceptions")


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _int(value: Any) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class ExceptionSummary:
    """One fingerprint of a spec across the fleet: what it is, how often, where, when."""

    fingerprint: str
    type: str
    message: str
    count: int
    processes: int
    first_at: str | None
    last_at: str | None
    #: captures claimed so far
    claimed: int = 0
    #: raises per process (read for one fingerprint only)
    by_process: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """Return the summary as ``coordinator exceptions --json`` prints it."""
        return {
            "fingerprint": self.fingerprint,
            "type": self.type,
            "message": self.message,
            "count": self.count,
            "processes": self.processes,
            "first_at": self.first_at,
            "last_at": self.last_at,
        }


def read_exceptions(client: redis.Redis, keys: Keys, spec_id: str) -> list[ExceptionSummary]:
    """Return every fingerprint of an exception spec, most frequent first."""
    k = keys.exceptions(spec_id)
    pipe = client.pipeline(transaction=False)
    pipe.zrevrange(k.counts, 0, -1, withscores=True)
    pipe.hgetall(k.about)
    ranked, about = pipe.execute()
    known: dict[str, dict[str, str]] = {}
    for raw, value in (about or {}).items():
        fingerprint, name = split_field(raw)
        known.setdefault(fingerprint, {})[name] = _text(value)
    summaries = [
        _summary(_text(fp), int(score), known.get(_text(fp), {})) for fp, score in ranked or ()
    ]
    summaries.sort(key=lambda s: (-s.count, s.fingerprint))
    return summaries


def _summary(fingerprint: str, count: int, about: dict[str, str]) -> ExceptionSummary:
    return ExceptionSummary(
        fingerprint=fingerprint,
        type=about.get("type", ""),
        message=about.get("message", ""),
        count=count,
        processes=_int(about.get("processes")),
        first_at=from_ms(about.get("first")),
        last_at=from_ms(about.get("last")),
        claimed=_int(about.get("claimed")),
    )


def find_fingerprint(summaries: list[ExceptionSummary], text: str) -> ExceptionSummary | None:
    """Return the summary whose fingerprint is text, or the only one it begins."""
    exact = [s for s in summaries if s.fingerprint == text]
    if exact:
        return exact[0]
    begun = [s for s in summaries if text and s.fingerprint.startswith(text)]
    return begun[0] if len(begun) == 1 else None


def read_captures(
    client: redis.Redis, keys: Keys, spec_id: str, summary: ExceptionSummary
) -> tuple[ExceptionSummary, list[dict[str, Any]]]:
    """Return a fingerprint's summary with its raises per process, and its captures in
    the order claimed (each ``{"process", "at", "frames", ...}`` as captured)."""
    k = keys.exceptions(spec_id)
    fingerprint = summary.fingerprint
    by_process = {}
    for raw, value in client.hscan_iter(k.seen, match=f"{fingerprint}:*", count=1000):
        fp, process = split_field(raw)
        if fp == fingerprint:
            by_process[process] = _int(value)
    fields = [capture_field(fingerprint, n) for n in range(1, summary.claimed + 1)]
    raws: list[Any] = list(client.hmget(k.captures, fields)) if fields else []
    captures = []
    for raw in raws:
        if raw is None:
            continue
        try:
            capture = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            continue
        if isinstance(capture, dict):
            captures.append(capture)
    return dataclasses.replace(summary, by_process=dict(sorted(by_process.items()))), captures
