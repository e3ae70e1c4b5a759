"""Who changes the fleet, and the audit stream where each change is written with them.

An entry goes into the same MULTI/EXEC as the change it records: a change never lands
without its entry, and an entry never tells of a change that did not land.
"""

from __future__ import annotations

import getpass
import os
import socket
from collections.abc import Mapping
from typing import Any

import redis

from diagnose_redis.protocol import (
    AUDIT_MAXLEN,
    Keys,
    decode_audit,
    encode_audit,
    instrument_type,
)

__all__ = ("acl_user", "actor", "add_entry", "describe_spec", "read_audit")

_SCAN_BATCH = 1000


def acl_user(client: redis.Redis) -> str | None:
    """Return the Redis ACL user the client is logged in as (ACL WHOAMI, else the URL's)."""
    try:
        name = client.execute_command("ACL", "WHOAMI")
    except redis.ResponseError:
        # Refused by the ACL, or a server without ACLs: the URL says whom we logged in as.
        pool = getattr(client, "connection_pool", None)
        name = getattr(pool, "connection_kwargs", {}).get("username")
    if isinstance(name, bytes):
        name = name.decode("utf-8", "replace")
    return name or None


def actor(client: redis.Redis | None = None) -> str:
    """Say who is acting: DIAGNOSE_USER, else the OS user @ host; with `` as ACLUSER`` when
    the Redis ACL user is not ``default``."""
    who = os.environ.get("DIAGNOSE_USER", "").strip()
    if not who:
        try:
            user = getpass.getuser()
        except Exception:  # no name for this uid (a container): say so
            user = f"uid{os.getuid()}" if hasattr(os, "getuid") else "unknown"
        who = f"{user}@{socket.gethostname()}"
    if client is not None:
        acl = acl_user(client)
        if acl and acl != "default":
            who = f"{who} as {acl}"
    return " ".join(who.split())[:200]


def add_entry(pipe: Any, keys: Keys, who: str, action: str, spec: str, detail: str = "") -> None:
    """Queue one audit entry on pipe (inside the change's MULTI)."""
    fields: dict[Any, Any] = encode_audit(who, action, spec, detail)
    pipe.xadd(keys.audit, fields, maxlen=AUDIT_MAXLEN, approximate=True)


def describe_spec(spec: Mapping[str, Any], key_ids: list[str] | None = None) -> str:
    """Say in a few words what a spec is, for an audit entry's detail."""
    lifespan = spec.get("lifespan")
    life = "no lifespan" if lifespan is None else f"lifespan {lifespan:g} min"
    text = f"{instrument_type(spec) or '?'} on {spec.get('target')}, {life}"
    select = spec.get("select")
    if select:
        text += ", select " + " ".join(f"{k}={v}" for k, v in sorted(select.items()))
    if key_ids:
        text += f", signed with key {', '.join(key_ids)}"
    return text


def read_audit(
    client: redis.Redis, keys: Keys, count: int, spec_id: str | None = None
) -> list[dict[str, str]]:
    """Return the last count entries (of spec_id's only, if given), oldest first."""
    found: list[dict[str, str]] = []
    upper = "+"
    while len(found) < count:
        batch: Any = client.xrevrange(keys.audit, upper, "-", count=_SCAN_BATCH)
        if not batch:
            break
        for entry_id, fields in batch:
            entry = decode_audit(entry_id, fields)
            if spec_id is None or entry["spec"] == spec_id:
                found.append(entry)
                if len(found) >= count:
                    break
        if len(batch) < _SCAN_BATCH:
            break
        upper = "(" + decode_audit(batch[-1][0], {})["id"]
    found.reverse()
    return found
