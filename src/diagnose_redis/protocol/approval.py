"""The two-person rule: which instrument types need two keys' signatures to apply.

``DIAGNOSE_REQUIRE_APPROVAL=snapshot,exception`` (instrument type names, any the fleet
knows, or ``all``) on a worker makes it apply a spec of those types only when signatures by
two different key ids sign its bytes. The worker enforces it; the coordinator reads the
same setting (its own, and the one each process declares) to hold such specs pending.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ("ALL", "APPROVAL_WINDOW_SECONDS", "ApprovalPolicy", "instrument_type")

ALL = "all"
#: A pending spec waits this long for its approval, and an approval counts this long after
#: the spec was published: a second key cannot revive an old spec later on its own.
APPROVAL_WINDOW_SECONDS = 24 * 3600
_TYPE_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")
_MAX_TYPES = 64
#: Signatures of this many different keys make an approved spec.
KEYS_NEEDED = 2


def instrument_type(spec: Mapping[str, Any]) -> str:
    """Return a spec's instrument type, or ``""`` if it has none."""
    instrument = spec.get("instrument")
    kind = instrument.get("type") if isinstance(instrument, Mapping) else None
    return kind if isinstance(kind, str) else ""


class ApprovalPolicy:
    """The instrument types held to the two-person rule (every type with ``all``)."""

    def __init__(self, types: Iterable[str] = (), *, everything: bool = False) -> None:
        self.types = frozenset(types)
        self.everything = everything

    @classmethod
    def parse(cls, text: str | Iterable[str] | None) -> ApprovalPolicy:
        """Read ``snapshot,exception`` or ``all`` (or a list of names); empty means none.

        Raise ValueError naming what is wrong with a name.
        """
        if text is None:
            return cls()
        names = text.split(",") if isinstance(text, str) else list(text)
        names = [name.strip() for name in names if name.strip()]
        if len(names) > _MAX_TYPES:
            raise ValueError(f"{len(names)} instrument types listed; at most {_MAX_TYPES}")
        for name in names:
            if not _TYPE_NAME.match(name):
                raise ValueError(f"{name[:40]!r} is not an instrument type name (or 'all')")
        if ALL in (name.lower() for name in names):
            return cls(everything=True)
        return cls(names)

    def __bool__(self) -> bool:
        return self.everything or bool(self.types)

    def __or__(self, other: ApprovalPolicy) -> ApprovalPolicy:
        if self.everything or other.everything:
            return ApprovalPolicy(everything=True)
        return ApprovalPolicy(self.types | other.types)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ApprovalPolicy)
            and self.everything == other.everything
            and self.types == other.types
        )

    def __hash__(self) -> int:
        return hash((self.everything, self.types))

    def names(self) -> list[str]:
        """Return the policy as a process declares it: ``["all"]``, the types, or []."""
        return [ALL] if self.everything else sorted(self.types)

    def __str__(self) -> str:
        return ",".join(self.names())

    def __repr__(self) -> str:
        return f"ApprovalPolicy({str(self)!r})"

    def covers(self, spec: Mapping[str, Any]) -> bool:
        """Tell whether spec needs two keys' signatures under this policy."""
        return self.everything or instrument_type(spec) in self.types

    def refusal(self, spec: Mapping[str, Any], signers: Iterable[str]) -> str | None:
        """Say why spec may not apply with these verified signers, or None if it may."""
        if not self.covers(spec):
            return None
        keys = sorted(k for k in set(signers) if k)
        if len(keys) >= KEYS_NEEDED:
            return None
        kind = instrument_type(spec) or "?"
        rule = "every type" if self.everything else f"type {kind!r}"
        if keys:
            have = f"it is signed by key {keys[0]!r} only"
        else:
            have = "it is signed by no named key this process holds"
        return (
            f"awaiting approval: DIAGNOSE_REQUIRE_APPROVAL holds {rule} to signatures by "
            f"two different keys, and {have} (coordinator approve, with another key)"
        )
