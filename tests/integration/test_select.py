"""Labels and selection end to end: real workers with labels, the real `coordinator`.

Also the views of a big fleet that read labels: `status --summary` and `processes --by`.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator

import pytest

from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore
from diagnose_redis.protocol import PROCESS_FIELD
from support.cli import Cli, coordinator
from support.fleet import Worker, labelled_workers, log_spec, spec_fields
from support.waiting import wait_for

LABELS = {
    "web-1": "service=shop,env=prod",
    "web-2": "service=shop,env=dev",
    "cron-1": "service=billing",
}


@pytest.fixture(scope="module")
def fleet(redis_server: RedisServer) -> Iterator[tuple[SpecStore, dict[str, Worker], str]]:
    """Two shop workers and a billing one, by process id, on a prefix of their own."""
    prefix = f"select{os.getpid()}"
    with labelled_workers(redis_server.url, prefix, LABELS) as (store, workers, errors):
        yield store, workers, prefix
    assert errors == {pid: "" for pid in LABELS}


def cli(redis_server: RedisServer, prefix: str, *args: str) -> tuple[int, str, str]:
    """Run `coordinator ARGS` in-process at 80 columns."""
    return Cli(redis_server.url, prefix)(*args)


def cli_process(redis_server: RedisServer, prefix: str, *args: str) -> tuple[int, str, str]:
    """Run the installed `coordinator ARGS` as a process of its own, at 80 columns."""
    done = coordinator(redis_server.url, prefix, *args, env={"COLUMNS": "80"})
    return done.returncode, done.stdout, done.stderr


def test_labels_show_in_process_status_and_processes(fleet, redis_server) -> None:
    """Each process declares its labels plus process and host; `processes` shows them."""
    store, _, prefix = fleet
    info = store.status()["web-1"][PROCESS_FIELD]
    assert info["labels"]["service"] == "shop" and info["labels"]["env"] == "prod"
    assert info["labels"]["process"] == "web-1" and info["labels"]["host"]
    code, out, _ = cli(redis_server, prefix, "processes", "--json")
    assert code == 0
    listed = json.loads(out)["processes"]
    assert listed["cron-1"]["labels"]["service"] == "billing"
    code, out, _ = cli(redis_server, prefix, "processes")
    assert code == 0 and "LABELS" in out
    assert any(
        line.startswith("web-2") and "env=dev,service=shop" in line for line in out.splitlines()
    )


def test_a_spec_applies_only_where_its_select_matches(fleet, redis_server) -> None:
    """Only the matching worker applies it; the other has no probe and no status field."""
    store, workers, prefix = fleet
    code, out, err = cli_process(
        redis_server, prefix, "publish", "sel", "-t", "fleet_worker.work", "--value", "result",
        "--select", "service=shop", "--select", "env=pr*", "--wait",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "sel" and "web-1" in err and "cron-1" not in err and "web-2" not in err
    assert workers["web-1"].call(2) == ["Probe (sel) = 4"]
    assert workers["web-2"].call(2) == [] and workers["cron-1"].call(2) == []
    assert "sel" in spec_fields(store, "web-1")
    assert "sel" not in spec_fields(store, "web-2") and "sel" not in spec_fields(store, "cron-1")
    code, out, _ = cli(redis_server, prefix, "status", "sel", "--json")
    assert code == 0 and set(json.loads(out)["processes"]) == {"web-1"}
    code, out, _ = cli(redis_server, prefix, "status", "--json")
    document = json.loads(out)
    assert "sel" in document["processes"]["web-1"]["specs"]
    assert "sel" not in document["processes"]["cron-1"]["specs"]
    store.remove("sel")


def test_a_select_change_removes_the_spec_where_it_stops_matching(fleet, redis_server) -> None:
    """Republished with another select, a spec leaves the processes it no longer chooses."""
    store, workers, prefix = fleet
    base = ("publish", "moving", "-t", "fleet_worker.work", "--value", "x")
    code, _, err = cli(redis_server, prefix, *base, "--select", "process=web-*", "--wait")
    assert code == 0, err
    assert workers["web-2"].call(3) == ["Probe (moving) = 3"]
    code, _, err = cli(redis_server, prefix, *base, "--select", "service=billing", "--wait")
    assert code == 0, err
    assert "cron-1" in err and "web-" not in err
    assert wait_for(
        lambda: "moving" not in spec_fields(store, "web-1") | spec_fields(store, "web-2")
    )
    assert workers["web-1"].call(3) == [] and workers["web-2"].call(3) == []
    assert workers["cron-1"].call(3) == ["Probe (moving) = 3"]
    store.remove("moving")


def test_wait_counts_matching_processes_only(fleet, redis_server) -> None:
    """--wait waits for the chosen processes only, and says so when none matches."""
    store, _, prefix = fleet
    base = ("publish", "counted", "-t", "fleet_worker.work", "--value", "x")
    code, _, err = cli(redis_server, prefix, *base, "--select", "service=shop", "--wait", "--json")
    assert code == 0, err
    code, out, err = cli(
        redis_server, prefix, *base, "--select", "service=nobody", "--wait", "--timeout", "1"
    )
    assert code == 3 and "no live process matches its select" in err
    store.remove("counted")


def test_select_from_a_file_and_flag(fleet, redis_server, tmp_path) -> None:
    """A spec file may carry select; --select adds to it, and a contradiction is refused."""
    store, workers, prefix = fleet
    path = tmp_path / "specs.yaml"
    path.write_text(
        "filed:\n  target: fleet_worker.work\n  instrument: {type: log, value: result}\n"
        "  select: {service: shop}\n"
    )
    code, _, err = cli(
        redis_server, prefix, "publish", "--file", str(path), "--select", "env=dev", "--wait"
    )
    assert code == 0, err
    assert workers["web-2"].call(1) == ["Probe (filed) = 2"] and workers["web-1"].call(1) == []
    code, _, err = cli(redis_server, prefix, "publish", "-f", str(path), "--select", "service=x")
    assert code == 2 and "contradicts" in err
    code, _, err = cli(redis_server, prefix, "publish", "-f", str(path), "--select", "service")
    assert code == 2 and "LABEL=GLOB" in err
    store.remove("filed")


def test_summary_counts_states_at_80_columns_and_in_json(fleet, redis_server) -> None:
    """status --summary: one row per spec, counts per state over chosen processes, top error."""
    store, _, prefix = fleet
    store.put("sum-ok", log_spec("n", select={"service": "shop"}))
    store.put("sum-bad", log_spec("n", target="fleet_worker.missing_function_with_a_long_name"))

    def settled() -> bool:
        report = store.status()
        return all(report.get(p, {}).get("sum-bad") for p in LABELS) and all(
            report.get(p, {}).get("sum-ok") for p in ("web-1", "web-2")
        )

    assert wait_for(settled, 10)
    code, out, err = cli(redis_server, prefix, "status", "--summary", "--json")
    assert code == 0, err
    summary = json.loads(out)["specs"]
    assert summary["sum-ok"]["processes"] == 2 and summary["sum-ok"]["states"]["applied"] == 2
    bad = summary["sum-bad"]
    assert bad["processes"] == 3 and bad["states"]["error"] == 3
    assert bad["errors"][0]["count"] == 3 and "missing_function" in bad["errors"][0]["err"]
    code, out, err = cli(redis_server, prefix, "status", "--summary")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == [
        "SPEC", "PROCESSES", "APPLIED", "ERROR", "PENDING", "STALE", "TOP", "ERROR",
    ]  # fmt: skip
    assert all(len(line) <= 80 for line in lines[: lines.index("")])
    row = next(line for line in lines if line.startswith("sum-bad "))
    assert row.split()[1:6] == ["3", "0", "3", "0", "0"] and "3×" in row
    assert "Most frequent errors:" in out and "missing_function_with_a_long_name" in out
    store.remove("sum-ok", "sum-bad")


def test_summary_is_the_default_above_50_processes(fleet, redis_server) -> None:
    """With over 50 processes reporting, plain `status` prints the summary."""
    store, _, prefix = fleet
    pipe = store.client.pipeline()
    now = time.time()
    info = json.dumps({"host": "h", "labels": {"service": "batch"}})
    for n in range(51):
        pipe.zadd(store.keys.processes, {f"fake-{n}": now})
        pipe.hset(store.keys.status(f"fake-{n}"), PROCESS_FIELD, info)
        pipe.expire(store.keys.status(f"fake-{n}"), 15)
    pipe.execute()
    try:
        store.put("many", log_spec("n", select={"service": "batch"}))
        code, out, err = cli(redis_server, prefix, "status")
        assert code == 0, err
        row = next(line for line in out.splitlines() if line.startswith("many "))
        assert row.split()[1:6] == ["51", "0", "0", "51", "0"]
        code, out, _ = cli(redis_server, prefix, "status", "--no-summary")
        assert sum(line.startswith("fake-") for line in out.splitlines()) == 51
        code, out, err = cli(redis_server, prefix, "processes", "--by", "service")
        assert code == 0, err
        lines = out.splitlines()
        assert lines[0].split() == ["SERVICE", "PROCESSES"]
        assert lines[1].split() == ["batch", "51"] and lines[2].split() == ["shop", "2"]
        assert all(len(line) <= 80 for line in lines)
        code, out, _ = cli(redis_server, prefix, "processes", "--by", "env", "--json")
        assert json.loads(out) == {
            "by": "env", "count": 54, "groups": {"-": 52, "dev": 1, "prod": 1},
        }  # fmt: skip
    finally:
        store.remove("many")
        store.client.zrem(store.keys.processes, *(f"fake-{n}" for n in range(51)))
        store.client.delete(*(store.keys.status(f"fake-{n}") for n in range(51)))
