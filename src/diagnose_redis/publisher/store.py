"""The publishing API: put and remove specs, read status, as ops tools and the coordinator do."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import redis

from diagnose.clock import expires_at, to_utc, utcnow
from diagnose_redis.connection.urls import is_cluster
from diagnose_redis.exceptions import SpecIdError, WireError
from diagnose_redis.protocol import (
    PROCESS_FIELD,
    STATUS_TTL_SECONDS,
    Keyring,
    Keys,
    SealedSpec,
    check_spec_id,
    decode_spec,
    decode_status_field,
    encode_event,
    encode_put,
    keyring,
    seal_spec,
)
from diagnose_redis.publisher.aggregates import drop_aggregates, keep_ttl
from diagnose_redis.publisher.audit import actor, add_entry, describe_spec
from diagnose_redis.publisher.census import read_fields, read_hashes

__all__ = ("ProcessEntry", "SpecStore", "read_specs", "store_put")


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


def read_specs(
    client: redis.Redis, keys: Keys, ids: Iterable[str | bytes], secret: Keyring | bytes | None
) -> tuple[dict[str, dict[str, Any]], list[tuple[str, WireError]]]:
    """Read and decode the stored specs of ids, in one MGET.

    Return the sound ones by id, and (id, error) for each that fails to decode or verify;
    ids whose key has expired are in neither.
    """
    names = sorted(_text(i) for i in ids)
    values = client.mget([keys.spec(spec_id) for spec_id in names]) if names else []
    found: dict[str, dict[str, Any]] = {}
    unsound: list[tuple[str, WireError]] = []
    for spec_id, raw in zip(names, values, strict=True):
        if raw is None:
            continue
        try:
            found[spec_id] = decode_spec(spec_id, raw, secret)
        except WireError as exc:
            unsound.append((spec_id, exc))
    return found, unsound


@dataclass(frozen=True)
class ProcessEntry:
    """A live process of the fleet: its last heartbeat and its ``_process`` information."""

    heartbeat: float
    info: dict[str, Any] = dataclasses.field(default_factory=dict)

    @property
    def role(self) -> str:
        """``parent`` for a pre-fork parent (it serves nothing), else ``process``."""
        return str(self.info.get("role") or "process")

    @property
    def parent(self) -> bool:
        """True for a pre-fork parent, which counts and --wait leave out."""
        return self.role == "parent"

    @property
    def children(self) -> int | None:
        """How many live children a parent has."""
        children = self.info.get("children")
        return children if isinstance(children, int) else None


class SpecStore:
    """Publish specs to a fleet through Redis and read what every process reports.

    secret is a bare secret or ``KEYID:SECRET,...`` (a Keyring): the first key signs, any
    verifies. Every change is written to the audit stream, in its own transaction, as the
    work of who (by default ``publisher.audit.actor()``, found at the first change).
    """

    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "diagnose",
        secret: str | bytes | Keyring | None = None,
        *,
        who: str | None = None,
    ) -> None:
        self.client = client
        self.keys = Keys(prefix, cluster=is_cluster(client))
        #: the keyring (None: unsigned); decode functions take it as their secret
        self.secret = keyring(secret)
        self._who = who
        # False once the server refused CLIENT LIST (ACL): liveness is the heartbeat alone.
        self._can_list_clients = True
        self._can_ask_server = not self.keys.sharded

    @property
    def who(self) -> str:
        """Who the audit entries of this store's changes name."""
        if self._who is None:
            self._who = actor(self.client)
        return self._who

    @property
    def key_id(self) -> str | None:
        """The id of the key this store signs with (None: unsigned or a bare secret)."""
        ring = self.secret
        return ring.signer.key_id if ring is not None and ring.named else None

    def _key_ids(self) -> list[str]:
        key_id = self.key_id
        return [key_id] if key_id else []

    def _validate(
        self, spec_id: str, spec: Mapping[str, Any], *, pending: bool = False
    ) -> tuple[dict[str, Any], int | None]:
        from diagnose import SpecError, validate_spec

        try:
            check_spec_id(spec_id)
        except SpecIdError as exc:
            raise SpecError(str(exc)) from None
        clean = validate_spec(spec, require_lastmodified=False)
        clean["lastmodified"] = to_utc(clean["lastmodified"])
        clean.pop("applied", None)
        expiry = expires_at(clean)
        if expiry is None or pending:  # a pending spec's lifespan runs from its approval
            return clean, None
        remaining = (expiry - utcnow()).total_seconds() * 1000
        if remaining <= 0:
            raise SpecError(f"spec {spec_id!r} has already expired (lastmodified + lifespan)")
        return clean, max(1, math.ceil(remaining))

    def put(
        self, spec_id: str, spec: Mapping[str, Any], *, action: str = "publish", note: str = ""
    ) -> int:
        """Validate, store (with its lifespan as TTL) and publish one spec; return the version."""
        return self.put_many({spec_id: spec}, action=action, note=note)

    def seal(
        self, spec_id: str, spec: Mapping[str, Any], *, pending: bool = False
    ) -> tuple[dict[str, Any], SealedSpec, int | None]:
        """Validate a spec and sign it for storing: return its clean map, its bytes, and the
        milliseconds it has left (None: no lifespan, or pending: it runs from the approval)."""
        from diagnose import SpecError

        clean, ttl_ms = self._validate(spec_id, spec, pending=pending)
        try:
            return clean, seal_spec(spec_id, clean, self.secret), ttl_ms
        except (WireError, TypeError, ValueError) as exc:
            raise SpecError(f"spec {spec_id!r} cannot be encoded: {exc}") from None

    def put_many(
        self, specs: Mapping[str, Mapping[str, Any]], *, action: str = "publish", note: str = ""
    ) -> int:
        """Validate, store and publish several specs atomically, with their audit entries
        (action, and note after each one's description); return the last version."""
        prepared = []
        for spec_id, spec in specs.items():
            clean, sealed, ttl_ms = self.seal(spec_id, spec)
            detail = describe_spec(clean, self._key_ids()) + (f"; {note}" if note else "")
            prepared.append((sealed, ttl_ms, detail))
        if not prepared:
            return self.version()
        keys = self.keys
        who = self.who

        def publish(pipe: Any) -> int:
            version = int(pipe.get(keys.version) or 0)
            pipe.multi()
            for sealed, ttl_ms, detail in prepared:
                version += 1
                store_put(pipe, keys, sealed, ttl_ms, version, self.secret)
                add_entry(pipe, keys, who, action, sealed.spec_id, detail)
            pipe.set(keys.version, version)
            return version

        # redis-py types transaction()'s callable as returning None, but with
        # value_from_callable=True transaction() returns what the callable returns.
        result = self.client.transaction(publish, keys.version, value_from_callable=True)  # type: ignore[arg-type]
        # Statistics of a spec published again live as long as it, idle processes' too.
        keep_ttl(self.client, keys, {sealed.spec_id: ttl for sealed, ttl, _ in prepared})
        return cast(int, result)

    def remove(self, *spec_ids: str) -> list[str]:
        """Delete specs and publish their removal; return the ids that existed."""
        return self._delete(spec_ids, only_expired=False)

    def remove_as(self, spec_ids: Iterable[str], action: str, note: str = "") -> list[str]:
        """Delete specs as remove() does, naming the action in their audit entries."""
        return self._delete(spec_ids, only_expired=False, action=action, note=note)

    def sweep_expired(self) -> list[str]:
        """Publish removals for indexed specs whose key has expired; return their ids."""
        ids = [_text(i) for i in self.client.smembers(self.keys.ids)]
        if not ids:
            return []
        exists = self.client.pipeline(transaction=False)
        for spec_id in ids:
            exists.exists(self.keys.spec(spec_id))
        gone = [spec_id for spec_id, n in zip(ids, exists.execute(), strict=True) if not n]
        if not gone:
            return []
        return self._delete(gone, only_expired=True)

    def _delete(
        self, spec_ids: Iterable[str], *, only_expired: bool, action: str = "", note: str = ""
    ) -> list[str]:
        ids = list(dict.fromkeys(spec_ids))
        if not ids:
            return []
        keys = self.keys
        spec_keys = [keys.spec(spec_id) for spec_id in ids]
        who = self.who
        action = action or ("expire" if only_expired else "remove")
        signed = ", ".join(self._key_ids())
        detail = "; ".join(
            part for part in (f"signed with key {signed}" if signed else "", note) if part
        )

        def delete(pipe: Any) -> list[str]:
            version = int(pipe.get(keys.version) or 0)
            present = [bool(pipe.exists(key)) for key in spec_keys]
            indexed = [bool(n) for n in pipe.smismember(keys.ids, ids)]
            if only_expired:
                chosen = [i for i, p, x in zip(ids, present, indexed, strict=True) if x and not p]
            else:
                chosen = [i for i, p in zip(ids, present, strict=True) if p]
            pipe.multi()
            if not only_expired:
                pipe.delete(*spec_keys)
            # The aggregates of the specs (exception counts and captures) go with them.
            for spec_id in chosen if only_expired else ids:
                pipe.delete(*keys.exceptions(spec_id))
            unindex = chosen if only_expired else ids
            if unindex:
                pipe.srem(keys.ids, *unindex)
            for spec_id in chosen:
                version += 1
                event = encode_event("delete", spec_id, version, None, self.secret)
                _publish(pipe, keys, event)
                add_entry(pipe, keys, who, action, spec_id, detail)
            if chosen:
                pipe.set(keys.version, version)
            return chosen

        watched = [keys.version, *spec_keys] if only_expired else [keys.version]
        # value_from_callable=True: see put_many.
        result = self.client.transaction(delete, *watched, value_from_callable=True)  # type: ignore[arg-type]
        # Their statistics go with them: once a spec is gone no process writes them again.
        drop_aggregates(self.client, keys, cast(list[str], result) if only_expired else ids)
        return cast(list[str], result)

    def publish_version(self) -> int:
        """Re-announce the current version as a no-op event so lagging subscribers resync."""
        keys = self.keys

        def announce(pipe: Any) -> int:
            version = int(pipe.get(keys.version) or 0)
            pipe.multi()
            _publish(pipe, keys, encode_event("version", "", version, None, self.secret))
            return version

        # value_from_callable=True: see put_many.
        result = self.client.transaction(announce, keys.version, value_from_callable=True)  # type: ignore[arg-type]
        return cast(int, result)

    def version(self) -> int:
        """Return the current version: how many puts and deletes were ever published."""
        return int(self.client.get(self.keys.version) or 0)

    def get(self, spec_id: str) -> dict[str, Any] | None:
        """Return one stored spec (with an empty ``applied``), or None if absent."""
        raw = self.client.get(self.keys.spec(spec_id))
        return None if raw is None else decode_spec(spec_id, raw, self.secret)

    def specs(self) -> dict[str, dict[str, Any]]:
        """Return every live stored spec by id, skipping values that fail to decode or verify."""
        ids = self.client.smembers(self.keys.ids)
        found, _unsound = read_specs(self.client, self.keys, ids, self.secret)
        return found

    def pttl(self, spec_id: str) -> int | None:
        """Return the milliseconds a spec has left: None if it never expires, 0 if it is gone."""
        ms = int(self.client.pttl(self.keys.spec(spec_id)))
        if ms == -1:
            return None
        return max(ms, 0)

    def status_keys(self, count: int = 500) -> list[str]:
        """Return the key of every status hash (SCAN, count keys a call)."""
        match = _glob_escape(self.keys.status_prefix) + "*"
        return [_text(k) for k in self.client.scan_iter(match=match, count=count)]

    def heartbeats(self) -> dict[str, float]:
        """Return every process id the processes set holds, with its last heartbeat."""
        rows = cast(
            list[tuple[bytes | str, float]],
            self.client.zrange(self.keys.processes, 0, -1, withscores=True),
        )
        return {_text(pid): float(score) for pid, score in rows}

    def status(self, spec_id: str | None = None) -> dict[str, dict[str, Any]]:
        """Return per process id what it reports: spec id -> its decoded status field (lm, err,
        at and the counts), and ``_process``."""
        status_keys = sorted(self.status_keys())
        values: list[Any] = (
            list(read_hashes(self.client, status_keys))
            if spec_id is None
            else list(read_fields(self.client, status_keys, [PROCESS_FIELD, spec_id]))
        )
        report: dict[str, dict[str, Any]] = {}
        for key, value in zip(status_keys, values, strict=True):
            if spec_id is None:
                fields = {_text(k): v for k, v in value.items()}
            else:
                fields = {f: v for f, v in zip((PROCESS_FIELD, spec_id), value, strict=True) if v}
            if not fields:
                continue
            entry: dict[str, Any] = {}
            for field, raw in fields.items():
                if field == PROCESS_FIELD:
                    entry[field] = _process_info(raw)
                else:
                    entry[field] = decode_status_field(raw)
            report[key[len(self.keys.status_prefix) :]] = entry
        return report

    def fleet(
        self,
        max_age: float = STATUS_TTL_SECONDS,
        infos: Mapping[str, dict[str, Any]] | None = None,
    ) -> dict[str, ProcessEntry]:
        """Return the live processes: heartbeat at most max_age old and, for those that
        name their connection, a subscriber connected now (where CLIENT LIST is allowed).

        infos, if given, holds the ``_process`` of each process as just read (by status()),
        so that it is not read again."""
        since = time.time() - max_age
        # withscores=True: (member, score) pairs; redis-py's return type ignores withscores.
        rows = cast(
            list[tuple[bytes | str, float]],
            self.client.zrangebyscore(self.keys.processes, since, "+inf", withscores=True),
        )
        if not rows:
            return {}
        ids = [_text(pid) for pid, _ in rows]
        if infos is None:
            raws = read_fields(self.client, [self.keys.status(p) for p in ids], [PROCESS_FIELD])
            found = [_process_info(row[0]) if row[0] else {} for row in raws]
        else:
            found = [infos.get(process_id) or {} for process_id in ids]
        connected = self._connection_names()
        server = self._server_run() if connected is not None else None
        fleet: dict[str, ProcessEntry] = {}
        for process_id, (_, score), info in zip(ids, rows, found, strict=True):
            name = info.get("connection")
            if connected is not None and isinstance(name, str) and name not in connected:
                # Its heartbeat has not aged out yet, its connection is gone: killed, if it
                # was connected to this very server; else reconnecting to it (the server
                # restarted, or a failover made a replica the primary).
                was_on = info.get("server")
                if not (server and isinstance(was_on, str) and was_on != server):
                    continue
                info = {**info, "reconnecting": True}
            fleet[process_id] = ProcessEntry(float(score), info)
        return fleet

    def _server_run(self) -> str | None:
        """Return the run_id of the server, or None if it will not say (ACL, a cluster)."""
        if not self._can_ask_server:
            return None
        try:
            run = self.client.info("server").get("run_id")
        except redis.ResponseError:
            self._can_ask_server = False
            return None
        return str(run) if run else None

    def processes(
        self, max_age: float = STATUS_TTL_SECONDS, *, parents: bool = True
    ) -> dict[str, float]:
        """Return live process ids with their last heartbeat (unix seconds); without the
        pre-fork parents when parents is False."""
        return {
            process_id: entry.heartbeat
            for process_id, entry in self.fleet(max_age).items()
            if parents or not entry.parent
        }

    def _connection_names(self) -> set[str] | None:
        """Return the names of the pub/sub connections, or None if the server will not say."""
        if not self._can_list_clients:
            return None
        try:
            clients = self.client.client_list(_type="pubsub")
        except redis.ResponseError:
            self._can_list_clients = False
            return None
        return {_text(c.get("name") or "") for c in clients}

    def prune_processes(self, max_age: float = STATUS_TTL_SECONDS) -> list[str]:
        """Forget processes silent for longer than max_age seconds; return their ids."""
        until = time.time() - max_age
        # Without withscores, members only; redis-py's return type ignores withscores.
        members = cast(
            list[bytes | str], self.client.zrangebyscore(self.keys.processes, "-inf", until)
        )
        dead = [_text(p) for p in members]
        if dead:
            pipe = self.client.pipeline(transaction=True)
            pipe.zrem(self.keys.processes, *dead)
            pipe.delete(*(self.keys.status(pid) for pid in dead))
            pipe.execute()
        return dead

    def __repr__(self) -> str:
        return f"SpecStore({self.client!r}, prefix={self.keys.prefix!r})"


def store_put(
    pipe: Any,
    keys: Keys,
    sealed: SealedSpec,
    ttl_ms: int | None,
    version: int,
    secret: Keyring | None,
) -> None:
    """Queue on pipe (in a MULTI) what publishes a sealed spec at version: its key, its id
    in the index, its put event. The caller sets the version key."""
    pipe.set(keys.spec(sealed.spec_id), sealed.blob, px=ttl_ms)
    pipe.sadd(keys.ids, sealed.spec_id)
    # What its instruments add up (exception counts and captures) lives as long as it.
    _live_as_long(pipe, keys.exceptions(sealed.spec_id), ttl_ms)
    _publish(pipe, keys, encode_put(version, sealed, secret))


def _publish(pipe: Any, keys: Keys, message: bytes) -> None:
    # In a cluster, a classic PUBLISH is broadcast to every node; SPUBLISH stays on the slot's.
    if keys.sharded:
        pipe.spublish(keys.events, message)
    else:
        pipe.publish(keys.events, message)


def _live_as_long(pipe: Any, aggregate_keys: Iterable[str], ttl_ms: int | None) -> None:
    """Give a spec's aggregate keys the spec's TTL (none when it never expires)."""
    for key in aggregate_keys:
        if ttl_ms is None:
            pipe.persist(key)
        else:
            pipe.pexpire(key, ttl_ms)


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)


def _process_info(raw: str | bytes) -> dict[str, Any]:
    try:
        info = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        info = None
    return info if isinstance(info, dict) else {"error": f"unreadable: {raw!r:.200}"}
