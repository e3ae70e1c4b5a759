"""The two-person rule on the publishing side: specs held pending, approved by a second key.

A pending spec is stored signed by its publisher in ``P:pending:ID`` (a hash: ``spec``, the
sealed bytes; ``who``; ``key``, the publisher's key id; ``at``), listed in the set
``P:pending``, and published to nobody. Approving it adds a signature of another key over
the same bytes, binding the approval time (the lifespan runs from it), and publishes it,
all in one transaction with its audit entry. The workers check both signatures.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

from diagnose.clock import to_utc, utcnow
from diagnose_redis.exceptions import ApprovalError, UnknownKey, WireError
from diagnose_redis.protocol import (
    APPROVAL_WINDOW_SECONDS,
    SealedSpec,
    countersign,
    open_spec,
    unsealed_spec,
)
from diagnose_redis.publisher.audit import add_entry, describe_spec
from diagnose_redis.publisher.store import SpecStore, store_put

__all__ = ("Approved", "PendingSpec", "approve", "discard", "hold", "read_pending")


@dataclass(frozen=True)
class PendingSpec:
    """A spec awaiting approval: what it is (as its publisher signed it), who published it."""

    spec_id: str
    spec: dict[str, Any]
    sealed: SealedSpec
    who: str
    key_id: str
    at: _dt.datetime | None


@dataclass(frozen=True)
class Approved:
    """What an approval published: the version, the spec as workers apply it (lastmodified
    at the approval), and who had published it with which key."""

    version: int
    spec: dict[str, Any]
    publisher: str
    publisher_keys: list[str]


def _text(value: Any) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value or "")


def _need_named_key(store: SpecStore, what: str) -> str:
    key_id = store.key_id
    if key_id is None:
        raise ApprovalError(
            f"{what} needs a named signing key: set DIAGNOSE_SECRET (or --secret) to "
            "KEYID:SECRET; the two-person rule counts key ids"
        )
    return key_id


def hold(store: SpecStore, specs: Mapping[str, Mapping[str, Any]], note: str = "") -> list[str]:
    """Validate and sign specs, and store them pending approval, published to nobody (their
    audit entries: action publish, detail ``pending approval, ...``); return their ids."""
    key_id = _need_named_key(store, "holding a spec for approval")
    prepared = []
    for spec_id, spec in specs.items():
        clean, sealed, _ = store.seal(spec_id, spec, pending=True)
        detail = "pending approval, published to no process" + (f" ({note})" if note else "")
        prepared.append((sealed, f"{detail}; {describe_spec(clean, [key_id])}"))
    keys = store.keys
    who = store.who
    at = utcnow().isoformat()
    pipe = store.client.pipeline(transaction=True)
    for sealed, detail in prepared:
        key = keys.pending_spec(sealed.spec_id)
        pipe.delete(key)
        fields: dict[Any, Any] = {"spec": sealed.blob, "who": who, "key": key_id, "at": at}
        pipe.hset(key, mapping=fields)
        pipe.expire(key, APPROVAL_WINDOW_SECONDS)
        pipe.sadd(keys.pending, sealed.spec_id)
        add_entry(pipe, keys, who, "publish", sealed.spec_id, detail)
    pipe.execute()
    return [sealed.spec_id for sealed, _ in prepared]


def read_pending(store: SpecStore) -> dict[str, PendingSpec]:
    """Return the specs awaiting approval by id (unverified: as their publisher stored them);
    entries whose time ran out, or that cannot be read, are left out."""
    ids = sorted(_text(i) for i in store.client.smembers(store.keys.pending))
    if not ids:
        return {}
    pipe = store.client.pipeline(transaction=False)
    for spec_id in ids:
        pipe.hgetall(store.keys.pending_spec(spec_id))
    found: dict[str, PendingSpec] = {}
    for spec_id, raw in zip(ids, pipe.execute(), strict=True):
        entry = _pending_entry(spec_id, raw)
        if entry is not None:
            found[spec_id] = entry
    return found


def _pending_entry(spec_id: str, raw: Mapping[Any, Any] | None) -> PendingSpec | None:
    fields = {_text(k): v for k, v in (raw or {}).items()}
    blob = fields.get("spec")
    if not isinstance(blob, bytes):
        return None
    try:
        spec, sealed = unsealed_spec(spec_id, blob)
    except WireError:
        return None
    try:
        at: _dt.datetime | None = to_utc(_dt.datetime.fromisoformat(_text(fields.get("at"))))
    except ValueError:
        at = None
    return PendingSpec(
        spec_id, spec, sealed, _text(fields.get("who")) or "?", _text(fields.get("key")), at
    )


def approve(store: SpecStore, spec_id: str) -> Approved:
    """Sign a pending spec (or a published one that lacks its approval) with this store's
    key, and publish it, its lifespan running from now; raise ApprovalError saying why not."""
    key_id = _need_named_key(store, "approving")
    keys = store.keys
    pending_key, spec_key = keys.pending_spec(spec_id), keys.spec(spec_id)
    who = store.who

    def sign_and_publish(pipe: Any) -> Approved:
        fields = {_text(k): v for k, v in (pipe.hgetall(pending_key) or {}).items()}
        blob = fields.get("spec")
        publisher = _text(fields.get("who")) if blob is not None else ""
        if blob is None:
            blob = pipe.get(spec_key)
        if blob is None:
            raise ApprovalError(f"no spec {spec_id!r} is pending approval (nor published)")
        try:
            spec, sealed = unsealed_spec(spec_id, blob)
        except WireError as exc:
            raise ApprovalError(f"{spec_id} cannot be read: {exc}") from None
        signers = list(dict.fromkeys(sealed.key_ids))
        _check_approvable(store, spec_id, spec, sealed, signers, key_id)
        now = utcnow()
        approved = countersign(sealed, store.secret, now)
        version = int(pipe.get(keys.version) or 0) + 1
        lifespan = spec.get("lifespan")
        ttl_ms = None if lifespan is None else max(1, math.ceil(lifespan * 60_000))
        pipe.multi()
        store_put(pipe, keys, approved, ttl_ms, version, store.secret)
        pipe.set(keys.version, version)
        pipe.delete(pending_key)
        pipe.srem(keys.pending, spec_id)
        by = f"published by {publisher} " if publisher else ""
        detail = f"signed with key {key_id}; {by}with key {', '.join(signers)}; " + describe_spec(
            spec
        )
        add_entry(pipe, keys, who, "approve", spec_id, detail)
        live = open_spec(spec_id, approved.blob, store.secret, holder="this coordinator").value
        return Approved(version, live, publisher, signers)

    # redis-py types transaction()'s callable as returning None, but with
    # value_from_callable=True transaction() returns what the callable returns.
    result = store.client.transaction(
        sign_and_publish,  # type: ignore[arg-type]
        pending_key,
        spec_key,
        keys.version,
        value_from_callable=True,
    )
    return cast(Approved, result)


def _check_approvable(
    store: SpecStore,
    spec_id: str,
    spec: dict[str, Any],
    sealed: SealedSpec,
    signers: list[str],
    key_id: str,
) -> None:
    """Raise ApprovalError unless this store's key may approve the sealed spec."""
    if not signers:
        raise ApprovalError(
            f"{spec_id} is not signed with a named key, so it cannot be approved: publish it "
            "with DIAGNOSE_SECRET=KEYID:SECRET"
        )
    if key_id in signers:
        raise ApprovalError(
            f"{spec_id} is signed with key {key_id!r}, the key you sign with: the two-person "
            "rule needs another person, with another key, to approve it"
        )
    if len(signers) >= 2:
        raise ApprovalError(f"{spec_id} is approved already (keys {', '.join(signers)})")
    try:
        open_spec(spec_id, sealed.blob, store.secret, holder="this coordinator")
    except UnknownKey:
        pass  # the publisher's key is not ours to check: the workers check it
    except WireError as exc:
        raise ApprovalError(f"{spec_id} is not sound, so it is not approved: {exc}") from None
    waited = (utcnow() - to_utc(spec["lastmodified"])).total_seconds()
    if waited > APPROVAL_WINDOW_SECONDS:
        raise ApprovalError(
            f"{spec_id} was published {waited / 3600:.0f}h ago; an approval counts within "
            f"{APPROVAL_WINDOW_SECONDS // 3600}h: publish it again"
        )


def discard(store: SpecStore, spec_ids: Iterable[str]) -> list[str]:
    """Drop specs pending approval, with an audit entry each; return the ids that were."""
    keys = store.keys
    ids = list(dict.fromkeys(spec_ids))
    if not ids:
        return []
    present = [bool(n) for n in store.client.smismember(keys.pending, ids)]
    chosen = [spec_id for spec_id, here in zip(ids, present, strict=True) if here]
    if not chosen:
        return []
    pipe = store.client.pipeline(transaction=True)
    for spec_id in chosen:
        pipe.delete(keys.pending_spec(spec_id))
        pipe.srem(keys.pending, spec_id)
        add_entry(pipe, keys, store.who, "remove", spec_id, "was pending approval; never published")
    pipe.execute()
    return chosen
