"""Who a process is to the fleet: the id it holds, its connection's name, its ``_process``.

The id is claimed in Redis (``claim``) before anything is reported under it. The
subscriber's connections are named after it (CLIENT SETNAME), so that the coordinator can
tell at once when a process's pub/sub connection is gone; where the ACL refuses CLIENT
SETNAME the connections stay unnamed and ``_process`` declares no connection, so liveness
falls back to the heartbeat.
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import os
import socket
from collections.abc import Mapping
from typing import Any

import redis

from diagnose_redis._status.claim import IdClaim
from diagnose_redis._status.family import forked
from diagnose_redis.protocol import Keys
from diagnose_redis.protocol.labels import labels_of

__all__ = ("Identity", "refused_channel", "refused_name")


def library_version() -> str:
    """Return the installed diagnose-fleet version, or ``unknown``."""
    try:
        from importlib.metadata import version

        return version("diagnose-fleet")
    except Exception:
        return "unknown"


def refused_name(exc: Exception) -> bool:
    """Tell whether a failure is the server refusing CLIENT SETNAME (an ACL without it)."""
    # Redis 6 says "the 'client' command or its subcommand", 7 "'client|setname'"; an old
    # redis-py "Error setting client name".
    text = str(exc).lower()
    return "'client" in text or "setname" in text or "client name" in text


def refused_channel(exc: Exception) -> bool:
    """Tell whether a failure is the ACL refusing a channel (the expired-key events)."""
    return isinstance(exc, redis.exceptions.NoPermissionError) and "channel" in str(exc)


class Identity:
    """The id a subscriber wants, the id it holds, and the name of its connections."""

    def __init__(
        self,
        keys: Keys,
        wanted: str,
        *,
        started: _dt.datetime,
        signed: bool,
        labels: Mapping[str, Any] | None = None,
    ) -> None:
        self.keys = keys
        self.wanted = wanted
        self.process_id = wanted
        self.claim = IdClaim(keys, wanted)
        self.connection_name: str | None = None
        self.may_name = True
        host = socket.gethostname()
        self.labels = labels_of(labels, wanted, host)
        # info() as _process last serialised it, and that JSON text without its "}"
        self._said: dict[str, Any] | None = None
        self._said_text = ""
        self.static: dict[str, Any] = {
            "host": host,
            "pid": os.getpid(),
            "process_id": wanted,
            "started": started.isoformat(),
            "library": library_version(),
            "signed": signed,
            "labels": self.labels,
        }

    def settle(self, client: redis.Redis) -> str | None:
        """Claim the id (keeping the one held) and name the connections; return the id now
        held if it changed, else None."""
        held = self.claim.acquire(client)
        changed = held if held != self.process_id else None
        if changed is not None:
            self.process_id = held
            self.static["process_id"] = held
            self.labels["process"] = held
        if self.may_name:
            self.name_connections(client, self.keys.connection_name(held))
        return changed

    def name_connections(self, client: redis.Redis, name: str | None) -> None:
        """Give the client's connections a name (None: none) from now on."""
        if name == self.connection_name:
            return
        pool = client.connection_pool
        pool.connection_kwargs["client_name"] = name
        # New connections take the new name; the open ones are dropped and forgotten.
        pool.disconnect()
        pool.reset()
        self.connection_name = name

    def give_up_naming(self, client: redis.Redis) -> None:
        """Stop naming connections (the ACL refuses CLIENT SETNAME)."""
        self.may_name = False
        self.name_connections(client, None)

    def info(self) -> dict[str, Any]:
        """Return the fields of ``_process`` that say who and what this process is."""
        info = {**self.static, **forked.role_info()}
        if self.connection_name:
            info["connection"] = self.connection_name
        return info

    def info_text(self) -> str:
        """Return info() as JSON text without its closing brace (``{...``, to be continued
        by more fields); serialised again only when info() changed (every heartbeat
        carries ``_process``)."""
        who = self.info()
        if who != self._said:
            # A copy of its own: info() shares the labels, which settle() changes in place.
            self._said = copy.deepcopy(who)
            self._said_text = json.dumps(who)[:-1]
        return self._said_text
