"""The command line end to end: a real `coordinator` process, real Redis, real shop workers."""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from diagnose_redis import Keys
from support.cli import CLOSED_URL, assert_clean_error, coordinator
from support.fleet import Fleet
from support.waiting import wait_until

# The tests that run on the session's three-primary cluster as well.
BOTH = pytest.mark.parametrize("fleet", ["standalone", "cluster"], indirect=True)


@pytest.fixture
def fleet(request: pytest.FixtureRequest, prefix: str, tmp_path: Path) -> Iterator[Fleet]:
    """Run two shop workers subscribed to the test's prefix (on the cluster when the test
    is parametrized so)."""
    on_cluster = getattr(request, "param", "standalone") == "cluster"
    url = request.getfixturevalue("redis_cluster").url if on_cluster else None
    fleet = Fleet(url or request.getfixturevalue("redis_url"), prefix, tmp_path)
    try:
        fleet.start(2)
        yield fleet
    finally:
        fleet.stop()


@BOTH
def test_publish_wait_applies_on_every_worker_and_they_log(fleet: Fleet) -> None:
    """publish --wait exits 0 once every worker applied the spec, and their probes print."""
    result = coordinator(
        fleet.redis_url,
        fleet.prefix,
        "publish",
        "totals",
        "--target",
        "shop.pricing.total",
        "--value",
        "result",
        "--wait",
        "--timeout",
        "20",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "totals\n"
    lines = result.stderr.splitlines()
    assert "" not in lines
    assert lines[0].split() == ["PROCESS", "SPEC", "STATE", "LIVE", "AT", "FIRED", "DROP", "ERROR"]
    for process_id in fleet.procs:
        assert any(line.split()[:4] == [process_id, "totals", "applied", "yes"] for line in lines)

        def probed(pid: str = process_id) -> bool:
            return "Probe (totals) = " in fleet.output(pid)

        wait_until(probed, 10, "output")


def test_publish_wait_json_reports_each_process(fleet: Fleet) -> None:
    """publish --wait --json prints one JSON document with every process's result."""
    result = coordinator(
        fleet.redis_url,
        fleet.prefix,
        "--json",
        "publish",
        "j1",
        "-t",
        "shop.pricing.unit_price",
        "--value",
        "item",
        "--event",
        "call",
        "--wait",
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["ids"] == ["j1"]
    assert set(document["processes"]) == set(fleet.procs)
    assert {p["specs"]["j1"]["state"] for p in document["processes"].values()} == {"applied"}
    assert document["specs"]["j1"]["lastmodified"]


def test_publish_wait_exits_1_when_processes_report_an_error(fleet: Fleet) -> None:
    """A spec that cannot apply (unknown target) makes publish --wait exit 1, naming why."""
    result = coordinator(
        fleet.redis_url,
        fleet.prefix,
        "publish",
        "bad",
        "--target",
        "shop.pricing.nothing",
        "--value",
        "result",
        "--wait",
        "--timeout",
        "20",
    )
    assert_clean_error(result, 1, "bad: 2 of 2 processes reported an error", "w-1, w-2")
    assert result.stdout == "bad\n"
    assert "error" in result.stderr


def test_publish_wait_names_late_processes_instead_of_dropping_them(fleet: Fleet) -> None:
    """A process whose heartbeat is late is named on stderr and shown LIVE no, not dropped."""
    fleet.store.client.zadd(Keys(fleet.prefix).processes, {"stalled-9": time.time() - 40})
    result = coordinator(
        fleet.redis_url,
        fleet.prefix,
        "publish",
        "late",
        "-t",
        "shop.pricing.total",
        "--value",
        "result",
        "--wait",
        "--timeout",
        "20",
    )
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines[0].startswith(
        "warning: 1 process is late (no heartbeat for over 15s) and not waited for: "
        "stalled-9 (last heartbeat 4"
    )
    assert ["stalled-9", "late", "pending", "no"] in [line.split()[:4] for line in lines]
    document = json.loads(
        coordinator(fleet.redis_url, fleet.prefix, "status", "late", "--json").stdout
    )
    assert document["processes"]["stalled-9"]["live"] is False
    assert document["processes"]["w-1"]["live"] is True


def test_error_counts_count_processes_per_spec_and_name_it(fleet: Fleet, tmp_path: Path) -> None:
    """Two broken specs on two processes: each spec counts its own 2 of 2, by name."""
    path = tmp_path / "broken.yaml"
    path.write_text(
        "bad1:\n  target: shop.pricing.nope1\n  instrument: {type: log, value: result}\n"
        "bad2:\n  target: shop.pricing.nope2\n  instrument: {type: log, value: result}\n"
    )
    result = coordinator(
        fleet.redis_url, fleet.prefix, "publish", "--file", str(path), "--wait", "--timeout", "20"
    )
    assert_clean_error(
        result, 1, "bad1: 2 of 2 processes reported an error", "bad2: 2 of 2 processes", "nope2"
    )
    assert "4 of 2" not in result.stderr
    assert result.stdout == "bad1\nbad2\n"


@BOTH
def test_status_processes_list_and_remove_follow_the_fleet(fleet: Fleet) -> None:
    """status, processes, list and remove show and change what the workers run."""
    url, prefix = fleet.redis_url, fleet.prefix
    published = coordinator(
        url, prefix, "publish", "s1", "-t", "shop.pricing.total", "--value", "result", "--wait"
    )
    assert published.returncode == 0, published.stderr
    status = json.loads(coordinator(url, prefix, "status", "s1", "--json").stdout)
    for process_id in fleet.procs:
        assert status["processes"][process_id]["specs"]["s1"]["state"] == "applied"
    processes = coordinator(url, prefix, "processes")
    assert processes.stdout.strip().splitlines()[-1] == "2 processes online."
    listed = coordinator(url, prefix, "list").stdout
    assert "s1" in listed and "shop.pricing.total" in listed
    removed = coordinator(url, prefix, "remove", "s1")
    assert (removed.returncode, removed.stdout) == (0, "s1\n")
    assert coordinator(url, prefix, "list").stdout.strip() == "No specs."
    wait_until(lambda: all("probe detached" in fleet.output(p) for p in fleet.procs), 10, "detach")


def test_publish_wait_exits_3_when_a_process_never_answers(redis_url: str, prefix: str) -> None:
    """A live process that never applies the spec makes publish --wait exit 3 at its timeout."""
    client = redis.Redis.from_url(redis_url)
    client.zadd(Keys(prefix).processes, {"silent-1": time.time()})
    client.close()
    started = time.monotonic()
    result = coordinator(
        redis_url, prefix, "publish", "p", "-t", "a.b", "--value", "1", "--wait", "--timeout", "1"
    )
    assert time.monotonic() - started < 10
    assert_clean_error(result, 3, "timed out", "p: 1 of 1 process have not applied it", "silent-1")


def test_publish_wait_exits_3_when_no_process_is_online(redis_url: str, prefix: str) -> None:
    """publish --wait with nobody online publishes, then exits 3 at once, like Celery."""
    result = coordinator(redis_url, prefix, "publish", "p", "-t", "a.b", "--value", "1", "--wait")
    assert_clean_error(result, 3, "no processes are online")
    assert result.stdout == "p\n"


def test_status_marks_processes_behind_the_current_version_stale(
    redis_url: str, prefix: str
) -> None:
    """A process behind the spec's lastmodified is stale; one that never reported is pending."""
    assert (
        coordinator(redis_url, prefix, "publish", "p", "-t", "a.b", "--value", "1").returncode == 0
    )
    old = (_dt.datetime.now(_dt.UTC) - _dt.timedelta(minutes=5)).isoformat()
    field = json.dumps({"lm": old, "err": None, "at": old})
    client = redis.Redis.from_url(redis_url)
    client.hset(Keys(prefix).status("old-1"), "p", field)
    client.zadd(Keys(prefix).processes, {"old-1": time.time(), "new-1": time.time()})
    client.close()
    result = coordinator(redis_url, prefix, "status")
    assert result.returncode == 0
    rows = [line.split()[:4] for line in result.stdout.splitlines()]
    assert ["old-1", "p", "stale", "yes"] in rows
    assert ["new-1", "p", "pending", "yes"] in rows


def test_publish_file_validates_everything_before_writing(
    redis_url: str, prefix: str, tmp_path: Path
) -> None:
    """One invalid spec in a file means none is written; a valid file publishes them all."""
    path = tmp_path / "specs.yaml"
    good = "a:\n  target: shop.pricing.total\n  instrument: {type: log, value: result}\n"
    path.write_text(good + "b:\n  target: nodots\n  instrument: {type: log, value: '1'}\n")
    assert_clean_error(coordinator(redis_url, prefix, "publish", "--file", str(path)), 2, "'b'")
    assert coordinator(redis_url, prefix, "list", "--json").stdout.count('"target"') == 0
    path.write_text(
        good + "b:\n  target: shop.pricing.unit_price\n  lifespan: null\n"
        "  instrument: {type: log, value: item, event: call}\n"
    )
    result = coordinator(redis_url, prefix, "publish", "--file", str(path))
    assert (result.returncode, result.stdout) == (0, "a\nb\n")
    specs = json.loads(coordinator(redis_url, prefix, "list", "--json").stdout)["specs"]
    assert specs["a"]["lifespan"] == 10.0 and specs["b"]["lifespan"] is None
    assert specs["b"]["remaining_seconds"] is None


def test_secret_signs_specs_for_readers_with_the_same_secret(redis_url: str, prefix: str) -> None:
    """A spec published with DIAGNOSE_SECRET is hidden from another secret, which says so."""
    signed = {"DIAGNOSE_SECRET": "s3cret"}
    result = coordinator(redis_url, prefix, "publish", "p", "-t", "a.b", "--value", "1", env=signed)
    assert result.returncode == 0
    assert "a.b" in coordinator(redis_url, prefix, "list", env=signed).stdout
    other = coordinator(redis_url, prefix, "--secret", "other", "list")
    assert "a.b" not in other.stdout
    assert_clean_error(other, 1, "1 spec is not signed with this secret", ": p ")


@pytest.mark.parametrize(
    ("args", "code"),
    [
        (["publish", "ok", "-t", "a.b", "--value", "1"], 0),
        (["list"], 0),
        (["publish", "bad", "-t", "a.b", "--value", "1 +"], 2),
        (["publish", "bad", "-t", "a.b"], 2),
        (["nope"], 2),
        (["--redis-url", CLOSED_URL, "list"], 4),
        (["--redis-url", CLOSED_URL, "publish", "p", "-t", "a.b", "--value", "1"], 4),
        (["list", "--redis-url", CLOSED_URL], 4),
        (["status", "nope"], 1),
        (["status", "bad id"], 2),
        (["demo", "--redis-url", CLOSED_URL], 4),
    ],
)
def test_exit_codes_of_the_real_program(
    redis_url: str, prefix: str, args: list[str], code: int
) -> None:
    """The installed program exits with the contract's codes and never prints a traceback."""
    result = coordinator(redis_url, prefix, *args)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    if code:
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stderr.startswith("Error: ")


def test_the_real_program_prints_help_bare_and_completion_scripts(
    redis_url: str, prefix: str
) -> None:
    """Bare `coordinator` prints its help on stderr (exit 2); `completion bash` prints a script."""
    bare = coordinator(redis_url, prefix)
    assert bare.returncode == 2
    assert bare.stdout == ""
    assert bare.stderr.startswith("Usage: coordinator [OPTIONS] COMMAND [ARGS]...\n")
    assert "Exit codes:" in bare.stderr and "Examples:" in bare.stderr
    completion = coordinator(redis_url, prefix, "completion", "bash")
    assert completion.returncode == 0, completion.stderr
    assert "_COORDINATOR_COMPLETE=bash_complete" in completion.stdout
