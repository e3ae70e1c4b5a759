"""What the live processes declare about signing: the key ids they hold, and the instrument
types their two-person rule covers (``keys`` and ``approval`` in ``_process``).

`coordinator publish` reads it before publishing: a spec of a type any live process holds
to the rule is stored pending approval rather than published, and a key no live process
holds is worth a warning. Read by heartbeat alone (no CLIENT LIST): one ZRANGEBYSCORE and
one HMGET per process, batched.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coordinator._errors import BadInput
from coordinator.view.results import plural
from diagnose_redis.protocol import PROCESS_FIELD, ApprovalPolicy
from diagnose_redis.publisher import read_fields

__all__ = ("FleetTrust", "key_warning", "own_policy", "read_trust")


@dataclass(frozen=True)
class FleetTrust:
    """The live processes' signing keys and approval policies, as they declare them."""

    processes: int = 0
    policy: ApprovalPolicy = field(default_factory=ApprovalPolicy)
    #: key id -> how many live processes hold it
    holders: Counter[str] = field(default_factory=Counter)
    #: live processes that declare no key id (unsigned, a bare secret, or an older version)
    silent: int = 0


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def read_trust(store: Any, max_age: float) -> FleetTrust:
    """Read what the processes that heartbeat within max_age seconds declare."""
    rows: Any = store.client.zrangebyscore(store.keys.processes, time.time() - max_age, "+inf")
    ids = [_text(pid) for pid in rows]
    if not ids:
        return FleetTrust()
    infos = read_fields(store.client, [store.keys.status(p) for p in ids], [PROCESS_FIELD])
    policy = ApprovalPolicy()
    holders: Counter[str] = Counter()
    silent = 0
    for (raw,) in infos:
        info = _info(raw)
        keys = info.get("keys")
        if isinstance(keys, list) and keys:
            holders.update(k for k in keys if isinstance(k, str))
        else:
            silent += 1
        declared = info.get("approval")
        if isinstance(declared, list):
            try:
                policy = policy | ApprovalPolicy.parse([str(n) for n in declared])
            except ValueError:
                policy = ApprovalPolicy(everything=True)  # unreadable: hold everything
    return FleetTrust(len(ids), policy, holders, silent)


def _info(raw: Any) -> Mapping[str, Any]:
    if not raw:
        return {}
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return {}
    return info if isinstance(info, dict) else {}


def own_policy() -> ApprovalPolicy:
    """Read the coordinator's own DIAGNOSE_REQUIRE_APPROVAL (exit 2 if it cannot be read)."""
    try:
        return ApprovalPolicy.parse(os.environ.get("DIAGNOSE_REQUIRE_APPROVAL"))
    except ValueError as exc:
        raise BadInput(f"DIAGNOSE_REQUIRE_APPROVAL: {exc}") from None


def key_warning(trust: FleetTrust, key_id: str | None) -> str | None:
    """Say how many live processes do not hold key_id (they refuse what it signs), or None
    when all do."""
    held = trust.holders.get(key_id, 0) if key_id is not None else 0
    if key_id is None or not trust.processes or held >= trust.processes:
        return None
    lacking = trust.processes - held
    if not held:
        holders = ", ".join(sorted(trust.holders)) or "no named key"
        return (
            f"warning: no live process holds key {key_id!r}, which signs this (the "
            f"{plural(trust.processes, 'live process holds', 'live processes hold')} "
            f"{holders}): they refuse what it signs"
        )
    return (
        f"warning: {lacking} of {trust.processes} live processes do not hold key {key_id!r}, "
        "which signs this: they refuse what it signs (coordinator processes --json shows "
        "each one's keys)"
    )
