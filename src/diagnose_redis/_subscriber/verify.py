"""The subscriber's checkpoint: decode, verify signatures and apply the two-person rule,
before anything reaches the applier.

Every message and stored spec passes here. What is unsound raises WireError (dropped and
counted). A spec signed only with keys this process does not hold, or that the approval
policy holds back, comes out as Refused: never applied, and its status field says why.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis

from diagnose_redis._subscriber.work_items import Event, Refused
from diagnose_redis.exceptions import UnknownKey, WireError
from diagnose_redis.protocol import (
    ApprovalPolicy,
    Keyring,
    Keys,
    keyring,
    open_event,
    open_spec,
    unverified_put,
    unverified_spec,
)

__all__ = ("Verifier",)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


class Verifier:
    """Check what arrives with this process's keys and approval policy."""

    def __init__(
        self,
        secret: str | bytes | Keyring | None,
        policy: ApprovalPolicy | str | Iterable[str] | None = None,
    ) -> None:
        #: the keys held (None: unsigned); raises KeyringError if secret cannot be read
        self.ring = keyring(secret)
        if not isinstance(policy, ApprovalPolicy):
            policy = ApprovalPolicy.parse(policy)
        self.policy = policy
        # Asked of every put: whether any spec needs approval (a policy's truth is a call).
        self._approving = bool(policy)

    def info(self) -> dict[str, Any]:
        """Return what ``_process`` declares: the key ids held (never a secret), the policy."""
        info: dict[str, Any] = {}
        if self.ring is not None and self.ring.named:
            info["keys"] = self.ring.ids
        if self.policy:
            info["approval"] = self.policy.names()
        return info

    def event(self, raw: bytes) -> dict[str, Any]:
        """Decode and verify an event; a put's spec is Refused where this process refuses it.

        Raise WireError if the event is unsound (UnknownKey if no key held signed it)."""
        opened = open_event(raw, self.ring)
        event = opened.value
        if event["op"] == "put":
            event["spec"] = self._admit(event["spec"], opened.signers)
        return event

    def refusals(self, exc: WireError) -> list[Event]:
        """Return, for an event refused as signed only by keys not held, the refusal of the
        spec it claims to put (it changes nothing applied); nothing for any other error."""
        claim = unverified_put(exc.body) if isinstance(exc, UnknownKey) else None
        if claim is None:
            return []
        spec_id, spec = claim
        return [Event("put", spec_id, 0, Refused(spec, str(exc), sound=False))]

    def stored(self, spec_id: str, raw: bytes | str) -> dict[str, Any] | Refused:
        """Decode and verify a stored spec; raise WireError if it is unsound (UnknownKey
        if no key held signed it)."""
        opened = open_spec(spec_id, raw, self.ring)
        return self._admit(opened.value, opened.signers)

    def read(
        self, client: redis.Redis, keys: Keys, ids: Iterable[str | bytes]
    ) -> tuple[dict[str, dict[str, Any] | Refused], list[tuple[str, WireError]]]:
        """Read and check the stored specs of ids in one MGET: the specs (or refusals) by
        id, and (id, error) for each that is unsound or signed with no key held."""
        names = sorted(_text(i) for i in ids)
        values = client.mget([keys.spec(spec_id) for spec_id in names]) if names else []
        found: dict[str, dict[str, Any] | Refused] = {}
        unsound: list[tuple[str, WireError]] = []
        for spec_id, raw in zip(names, values, strict=True):
            if raw is None:
                continue
            try:
                found[spec_id] = self.stored(spec_id, raw)
            except UnknownKey as exc:
                # Counted as dropped, and refused in its status field: it is what Redis holds.
                spec = unverified_spec(exc.body)
                if spec is not None:
                    found[spec_id] = Refused(spec, str(exc))
                unsound.append((spec_id, exc))
            except WireError as exc:
                unsound.append((spec_id, exc))
        return found, unsound

    def _admit(self, spec: dict[str, Any], signers: frozenset[str]) -> dict[str, Any] | Refused:
        why = self.policy.refusal(spec, signers) if self._approving else None
        return spec if why is None else Refused(spec, why)
