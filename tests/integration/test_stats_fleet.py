"""Fleet statistics end to end: three real worker processes on a real Redis, specs published
and read with the command line; counts, extremes and quantiles against the true ones,
groups, labels, distinct counts, removal and expiry."""

from __future__ import annotations

import json
import math
import operator
import os
import subprocess
import sys
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from coordinator.cli import cli
from coordinator.view.stats import BLOCKS
from diagnose.sketch import ALPHA
from diagnose_redis import SpecStore
from support import stats_values
from support.fleet import Worker
from support.waiting import wait_for

WORKER = Path(__file__).parent.parent / "support" / "stats_worker.py"
TARGET = "stats_worker.measure"
PER_WORKER = 20_000
#: process id -> (seed of its values, its version label)
WORKERS = {"w1": (1, "1"), "w2": (2, "1"), "w3": (3, "2")}


class StatsWorker(Worker):
    """A stats_worker.py subprocess; its stdout lines collected."""

    def __init__(self, url: str, prefix: str, process_id: str, labels: str) -> None:
        args = ("--process-id", process_id, "--labels", labels)
        super().__init__(url, prefix, *args, script=WORKER, startup=15)

    def ask(self, command: str, answer: str, timeout: float = 30.0) -> None:
        """Send a command and wait for the line that answers it."""
        mark = len(self.lines)
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()
        assert wait_for(lambda: answer in self.lines[mark:], timeout), self.lines[mark:]


class Fleet:
    """Three workers under a prefix, and the command line pointed at them."""

    def __init__(self, url: str, prefix: str) -> None:
        self.url = url
        self.prefix = prefix
        self.client = redis.Redis.from_url(url)
        self.store = SpecStore(self.client, prefix)
        self.workers = {
            pid: StatsWorker(url, prefix, pid, f"version={version}")
            for pid, (_, version) in WORKERS.items()
        }
        assert wait_for(lambda: set(WORKERS) <= set(self.store.processes()), 15)

    def run(self, *args: str) -> tuple[int, str, str]:
        """Run the command line in-process; return its exit code, stdout and stderr."""
        result = CliRunner().invoke(
            cli, ["--redis-url", self.url, "--prefix", self.prefix, *args], env={"COLUMNS": "200"}
        )
        return result.exit_code, result.stdout, result.stderr

    def publish(self, spec_id: str, *flags: str) -> None:
        """Publish a spec on the workers' target and wait until all applied it."""
        code, out, err = self.run("publish", spec_id, "-t", TARGET, *flags, "--wait")
        assert code == 0, err
        assert out.strip() == spec_id

    def stats(self, spec_id: str, *flags: str) -> dict[str, Any]:
        """Return `coordinator stats ID --json` as data."""
        code, out, err = self.run("stats", spec_id, "--json", *flags)
        assert code == 0, err
        return dict(json.loads(out))

    def feed(self) -> None:
        """Have every worker pass its 20,000 known values, and 6 that are not numbers."""
        for pid, worker in self.workers.items():
            worker.proc.stdin.write(f"feed {WORKERS[pid][0]} {PER_WORKER}\nodd\n")  # type: ignore[union-attr]
            worker.proc.stdin.flush()  # type: ignore[union-attr]
        for worker in self.workers.values():
            assert wait_for(partial(operator.contains, worker.lines, "odd 6"), 60)

    def aggregate_keys(self) -> list[bytes]:
        """Return every key of fleet statistics under the prefix."""
        return [
            key
            for kind in ("agg", "stats", "distinct")
            for key in self.client.scan_iter(match=f"{self.prefix}:{kind}:*")
        ]

    def close(self) -> None:
        errors = {pid: worker.close() for pid, worker in self.workers.items()}
        self.client.close()
        for pid, err in errors.items():
            assert "Traceback" not in err, (pid, err)


@pytest.fixture(scope="module")
def fleet(redis_server: Any) -> Iterator[Fleet]:
    """Three workers (versions 1, 1 and 2) that have passed their known values to four
    specs: stats of the value, stats by tier, distinct users, distinct tiers."""
    fleet = Fleet(redis_server.url, f"stats{os.getpid()}")
    try:
        fleet.publish("lat", "--type", "stats", "--value", "value")
        fleet.publish("lat-tier", "--type", "stats", "--value", "value", "--by", "tier")
        fleet.publish("users", "--type", "distinct", "--value", "user")
        fleet.publish("tiers", "--type", "distinct", "--value", "tier")
        fleet.feed()
        yield fleet
    finally:
        fleet.close()


def known(seeds: list[int]) -> list[tuple[float | int, str, int]]:
    """Return the values the workers of these seeds passed."""
    return [row for seed in seeds for row in stats_values.values(seed, PER_WORKER)]


def settled(fleet: Fleet, spec_id: str, count: int, *flags: str) -> dict[str, Any]:
    """Return the spec's statistics once the counts of all its groups add up to count."""

    def total() -> dict[str, Any] | None:
        document = fleet.stats(spec_id, *flags)
        groups = document["groups"].values()
        return document if sum(g["count"] for g in groups) >= count else None

    document = wait_for(total, 20, interval=0.2)
    assert document, fleet.stats(spec_id, *flags)
    return dict(document)


def test_fleet_statistics_match_the_true_ones(fleet: Fleet) -> None:
    """Count, min and max are exact, the sum within 1e-6, and p50, p90 and p99 within 1 %
    of the true quantiles of the 60,000 values the three workers passed."""
    values = [value for value, _, _ in known([1, 2, 3])]
    document = settled(fleet, "lat", len(values))
    assert document["type"] == "stats" and set(document) == {"spec", "type", "groups"}
    stats = document["groups"]["all"]
    assert stats["count"] == len(values) == 3 * PER_WORKER
    assert stats["invalid"] == 3 * 6
    assert (stats["min"], stats["max"]) == (min(values), max(values))
    assert math.isclose(stats["sum"], math.fsum(values), rel_tol=1e-6)
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.99):
        expected = ordered[int(q * (len(ordered) - 1))]
        assert abs(stats[f"p{round(q * 100)}"] - expected) <= ALPHA * abs(expected), q


def test_grouped_counts_are_exact(fleet: Fleet) -> None:
    """Each tier's count, min and max are exact; values that are not numbers count as
    invalid in their group."""
    rows = known([1, 2, 3])
    document = settled(fleet, "lat-tier", len(rows))
    groups = document["groups"]
    assert sorted(groups) == sorted([*stats_values.TIERS, "odd"])
    for tier in stats_values.TIERS:
        mine = [value for value, t, _ in rows if t == tier]
        assert groups[tier]["count"] == len(mine)
        assert (groups[tier]["min"], groups[tier]["max"]) == (min(mine), max(mine))
    assert (groups["odd"]["count"], groups["odd"]["invalid"]) == (0, 18)


def test_counts_by_label_and_by_process_add_up(fleet: Fleet) -> None:
    """--by-label version splits the counts between the versions' workers exactly;
    --by-process between the workers."""
    settled(fleet, "lat", 3 * PER_WORKER)
    by_label = fleet.stats("lat", "--by-label", "version")
    assert by_label["by_label"] == "version"
    labels = by_label["labels"]
    assert labels["1"]["all"]["count"] == 2 * PER_WORKER
    assert labels["2"]["all"]["count"] == PER_WORKER
    seed3 = [value for value, _, _ in known([3])]
    assert labels["2"]["all"]["max"] == max(seed3)
    by_process = fleet.stats("lat", "--by-process")["processes"]
    assert {pid: groups["all"]["count"] for pid, groups in by_process.items()} == {
        pid: PER_WORKER for pid in WORKERS
    }


def test_distinct_counts_within_two_percent_and_exact_when_small(fleet: Fleet) -> None:
    """Distinct users across the fleet are within 2 % of the true count; the four tier
    names (three and the odd values' one) are counted exactly."""
    rows = known([1, 2, 3])
    users = len({user for _, _, user in rows})
    settled(fleet, "users", len(rows))
    document = fleet.stats("users")
    assert document["type"] == "distinct"
    found = document["groups"]["all"]
    assert abs(found["distinct"] - users) <= 0.02 * users
    assert found["invalid"] == 3  # of stats_worker.ODD, only the list cannot be counted
    tiers = settled(fleet, "tiers", len(rows) + 18)["groups"]["all"]
    assert (tiers["distinct"], tiers["exact"]) == (4, True)


def test_the_table_shows_a_row_per_group(fleet: Fleet) -> None:
    """Without --json, a table with GROUP COUNT MIN P50 P90 P99 MAX MEAN and a row per group
    (no histogram when stdout is not a terminal)."""
    settled(fleet, "lat-tier", 3 * PER_WORKER)
    code, out, err = fleet.run("stats", "lat-tier")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("lat-tier: stats of value by tier at stats_worker.measure")
    assert lines[1].split() == ["GROUP", "COUNT", "MIN", "P50", "P90", "P99", "MAX", "MEAN"]
    assert [line.split()[0] for line in lines[2:6]] == ["gold", "silver", "bronze", "odd"]
    assert "18 values were not numbers" in out
    assert not set(BLOCKS) & set(out)


def test_stats_of_a_spec_of_another_type_or_none_exits_1(fleet: Fleet) -> None:
    """stats names the problem and exits 1 for a log spec and for a spec that does not
    exist (a real subprocess, for the exit code)."""
    fleet.publish("plain-log", "--type", "log", "--value", "value")
    code, _, err = fleet.run("stats", "plain-log")
    assert code == 1 and "is a log probe" in err
    done = subprocess.run(
        [sys.executable, "-m", "coordinator", "--redis-url", fleet.url]
        + ["--prefix", fleet.prefix, "stats", "no-such-spec"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert done.stderr.strip() == "Error: no such spec: no-such-spec"


@pytest.mark.parametrize(
    ("flags", "problem"),
    [
        (["--type", "stats", "--value", "value", "--by", "open('x')"], "custom.by"),
        (["--type", "stats", "--value", "value", "--by", "tier ="], "custom.by"),
        (["--type", "log", "--value", "value", "--by", "tier"], "--by groups stats"),
        (["--type", "stats", "--value", "value", "--rate", "5"], "--rate does not apply"),
    ],
)
def test_publish_refuses_a_bad_by_with_exit_2(fleet: Fleet, flags: list[str], problem: str) -> None:
    """A --by that does not compile or that the policy refuses, --by on another type, and
    --rate on stats are refused locally with exit 2; nothing is published."""
    code, _, err = fleet.run("publish", "refused", "-t", TARGET, *flags)
    assert code == 2 and problem in err, err
    assert fleet.store.get("refused") is None


def test_after_remove_no_key_is_left_and_stats_exits_1(fleet: Fleet) -> None:
    """Removing a spec removes its statistics; the workers, flushing after, bring none
    back; stats then exits 1."""
    fleet.publish("gone", "--type", "distinct", "--value", "user", "--by", "tier")
    fleet.publish("gone-too", "--type", "stats", "--value", "value")
    for worker in fleet.workers.values():
        worker.ask("feed 9 500", "fed 500")
    settled(fleet, "gone-too", 3 * 500)
    before = fleet.aggregate_keys()
    assert any(b":gone@" in key for key in before) and any(b":gone-too@" in key for key in before)
    code, out, err = fleet.run("remove", "gone", "gone-too")
    assert code == 0, err
    for worker in fleet.workers.values():
        worker.ask("feed 10 100", "fed 100")  # probes still attached a moment: no matter

    def left() -> list[bytes]:
        return [k for k in fleet.aggregate_keys() if b":gone@" in k or b":gone-too@" in k]

    assert left() == []
    # A flush interval and more later, nothing came back.
    assert not wait_for(left, 2.5)
    for spec_id in ("gone", "gone-too"):
        code, _, err = fleet.run("stats", spec_id)
        assert code == 1 and f"no such spec: {spec_id}" in err


def test_an_expired_spec_takes_its_statistics_along(fleet: Fleet) -> None:
    """When a spec's lifespan runs out, serve's sweep removes it and its statistics."""
    fleet.publish("brief", "--type", "stats", "--value", "value", "--lifespan", "0.05")
    for worker in fleet.workers.values():
        worker.ask("feed 11 100", "fed 100")
    settled(fleet, "brief", 300)
    assert wait_for(lambda: fleet.store.sweep_expired() == ["brief"], 10)
    assert [k for k in fleet.aggregate_keys() if b":brief@" in k] == []
