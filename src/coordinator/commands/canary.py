"""Canary rollout: a spec goes to a few matching processes, and to the rest only if they cope.

``publish --canary N`` narrows the select to N live processes, waits for them to apply it,
watches them ``--canary-for`` seconds (no error, no errors or drops counted), then publishes
to every matching process; a failing canary removes the spec.
"""

from __future__ import annotations

import dataclasses
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import click

from coordinator._context import Settings
from coordinator._errors import BadInput, Interrupted, OperationFailed, WaitTimedOut
from coordinator.commands.publish import wait_and_report
from coordinator.fleet.state import FleetState, ProcessResult, read_fleet
from coordinator.fleet.wait import wait_for_spec
from coordinator.view.output import emit_json
from coordinator.view.results import print_results
from diagnose_redis.protocol import escape_glob

__all__ = ("CANARY_SECONDS", "Canary", "CanaryFailed", "publish_canary")

# Long enough for the counters each heartbeat (5 s) refreshes to be written several times.
CANARY_SECONDS = 30.0
WATCH_INTERVAL = 0.25


@dataclass(frozen=True)
class Canary:
    """How to roll out: on how many processes first, for how long, and how long to wait."""

    count: int
    seconds: float = CANARY_SECONDS
    timeout: float = 10.0


class CanaryFailed(Exception):
    """The canary processes showed trouble; the message says which and what."""


def _say(text: str, as_json: bool) -> None:
    if not as_json:
        click.echo(f"canary: {text}", err=True)


def _narrowed(spec: dict[str, Any], group: list[str]) -> dict[str, Any]:
    """Return the spec with its select narrowed to the processes of group, exactly."""
    select = dict(spec.get("select") or {})
    select["process"] = [escape_glob(process) for process in group]
    return {**spec, "select": select}


def publish_canary(
    settings: Settings,
    specs: dict[str, dict[str, Any]],
    plan: Canary,
    *,
    as_json: bool,
    wide: bool = False,
) -> None:
    """Publish specs to a canary group, watch it, then widen them or remove them."""
    from coordinator.commands.approve import covered

    store = settings.store()
    held = covered(store, specs)
    if held:
        raise BadInput(
            f"{', '.join(held)} need approval by a second key (the two-person rule): publish "
            "without --canary, then coordinator approve, which publishes to every process"
        )
    fleet = read_fleet(store)
    fleet = dataclasses.replace(fleet, specs={**fleet.specs, **specs})
    groups = {spec_id: fleet.chosen(spec_id, fleet.live)[: plan.count] for spec_id in specs}
    empty = [spec_id for spec_id, group in groups.items() if not group]
    if empty:
        raise WaitTimedOut(
            f"no live process matches the select of {', '.join(empty)}; nothing was published"
        )
    ids = list(specs)
    seen: dict[str, list[ProcessResult]] = {}
    store.put_many(
        {spec_id: _narrowed(spec, groups[spec_id]) for spec_id, spec in specs.items()},
        action="canary",
    )
    try:
        # From here on a Ctrl-C says what it leaves: the canary applies within milliseconds.
        if not as_json:
            for spec_id in ids:
                click.echo(spec_id)
        for spec_id, group in groups.items():
            _say(f"{spec_id} published to {', '.join(group)}", as_json)
        try:
            _await_canary(store, fleet, groups, plan.timeout, seen)
            _say(f"applied; watching for {plan.seconds:g}s", as_json)
            _watch(store, groups, plan.seconds)
        except CanaryFailed as exc:
            store.remove_as(ids, "canary-abort", note=str(exc))
            _report(fleet, ids, seen, as_json=as_json, wide=wide, failed=str(exc))
            removed = "it was" if len(ids) == 1 else "they were"
            raise OperationFailed(f"canary failed, so {removed} removed: {exc}")
    except KeyboardInterrupt as exc:
        where = "; ".join(f"{s} on {', '.join(g)}" for s, g in groups.items())
        raise Interrupted.by(
            exc,
            f"left on the canary processes only ({where}), not widened; remove with "
            f"coordinator remove {' '.join(ids)}",
        )
    _say("no trouble; widening to every matching process", as_json)
    version = store.put_many(specs, action="canary-widen")
    stored = {spec_id: store.get(spec_id) or spec for spec_id, spec in specs.items()}
    wide_fleet = dataclasses.replace(read_fleet(store), version=version, specs=stored)
    wait_and_report(store, wide_fleet, ids, plan.timeout, as_json=as_json, wide=wide)


def _await_canary(
    store: Any,
    fleet: FleetState,
    groups: Mapping[str, list[str]],
    timeout: float,
    seen: dict[str, list[ProcessResult]],
) -> None:
    """Wait until every canary process applied its spec; raise CanaryFailed otherwise."""

    def alive() -> set[str]:
        return set(store.processes(parents=False))

    deadline = time.monotonic() + timeout
    for spec_id, group in groups.items():
        lm = fleet.specs[spec_id]["lastmodified"]
        remaining = max(0.0, deadline - time.monotonic())
        results, in_time = wait_for_spec(
            store, spec_id, lm, group, remaining, seen=seen, alive=alive
        )
        errors = [r for r in results if r.state == "error"]
        if errors:
            raise CanaryFailed(
                "; ".join(f"{r.process} reported an error on {spec_id}: {r.err}" for r in errors)
            )
        gone = sorted(set(group) - {r.process for r in results})
        if gone:
            raise CanaryFailed(f"{', '.join(gone)} went offline before applying {spec_id}")
        if not in_time:
            late = [r.process for r in results if not r.done]
            raise CanaryFailed(
                f"{', '.join(late)} did not apply {spec_id} within {timeout:g}s (--timeout)"
            )


def _watch(store: Any, groups: Mapping[str, list[str]], seconds: float) -> None:
    """Read the canary processes' status fields until seconds pass; raise at any trouble."""
    pause = threading.Event()
    deadline = time.monotonic() + seconds
    checked = 0.0
    while True:
        if time.monotonic() - checked >= 1.0:
            checked = time.monotonic()
            living = set(store.processes(parents=False))
            for spec_id, group in groups.items():
                gone = [p for p in group if p not in living]
                if gone:
                    raise CanaryFailed(f"{', '.join(gone)} went offline while running {spec_id}")
        pipe = store.client.pipeline(transaction=False)
        asked = [(spec_id, p) for spec_id, group in groups.items() for p in group]
        for spec_id, process in asked:
            pipe.hget(store.keys.status(process), spec_id)
        for (spec_id, process), raw in zip(asked, pipe.execute(), strict=True):
            trouble = field_trouble(raw)
            if trouble:
                raise CanaryFailed(f"{process} {trouble} on {spec_id}")
        left = deadline - time.monotonic()
        if left <= 0:
            return
        pause.wait(min(WATCH_INTERVAL, left))


def field_trouble(raw: bytes | str | None) -> str | None:
    """Say what is wrong in one status field of a canary process, or None if nothing is."""
    if raw is None:
        return "no longer reports its status"
    try:
        field = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return f"reports an unreadable status ({raw!r:.80})"
    if not isinstance(field, dict):
        return f"reports an unreadable status ({raw!r:.80})"
    if field.get("err"):
        return f"reported an error: {field['err']}"
    for counter, what in (
        ("errors", "runtime errors"),
        ("dropped", "events dropped over its rate"),
    ):
        count = field.get(counter)
        if isinstance(count, int) and not isinstance(count, bool) and count > 0:
            return f"reported {count} {what}"
    return None


def _report(
    fleet: FleetState,
    ids: list[str],
    seen: Mapping[str, list[ProcessResult]],
    *,
    as_json: bool,
    wide: bool,
    failed: str,
) -> None:
    results: dict[str, dict[str, ProcessResult]] = {}
    for spec_id, spec_results in seen.items():
        for r in spec_results:
            results.setdefault(r.process, {})[spec_id] = r
    if as_json:
        emit_json(
            {
                "ids": ids,
                "canary": {"failed": failed, "removed": ids},
                "processes": {
                    p: {"specs": {s: r.as_dict() for s, r in entries.items()}}
                    for p, entries in sorted(results.items())
                },
            }
        )
    elif results:
        print_results(results, fleet.is_live, wide=wide, err=True)
