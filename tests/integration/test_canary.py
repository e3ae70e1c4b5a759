"""publish --canary: real labelled workers; the spec widens only after the canary copes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
from collections.abc import Iterator

import pytest

from coordinator.embedded import RedisServer
from diagnose_redis import SpecStore
from support.cli import COORDINATOR, Cli
from support.fleet import Worker, labelled_workers, spec_fields
from support.waiting import wait_for

IDS = ("web-1", "web-2", "web-3")


@pytest.fixture(scope="module")
def fleet(redis_server: RedisServer) -> Iterator[tuple[SpecStore, dict[str, Worker], Cli]]:
    """Three shop workers and one billing worker, on a prefix of their own."""
    prefix = f"canary{os.getpid()}"
    labels = {**{pid: "service=shop" for pid in IDS}, "cron-1": "service=billing"}
    with labelled_workers(redis_server.url, prefix, labels) as (store, workers, errors):
        yield store, workers, Cli(redis_server.url, prefix)
    # The canary of the runtime-error test logs its instrument's failure, and nothing else.
    boom = errors.pop("web-1")
    assert not boom or boom.startswith("probe instrument c-boom on fleet_worker.work failed")
    assert errors == {pid: "" for pid in labels if pid != "web-1"}


def applies(worker: Worker) -> int:
    """Return how many times the worker's subscriber changed what its manager holds."""
    mark = len(worker.lines)
    worker.send("status")
    line = worker.wait_line("status ", after=mark)
    assert line
    return int(json.loads(line.split(" ", 1)[1])["applies"])


def remove(store: SpecStore, spec_id: str) -> None:
    """Remove a spec and wait until no worker reports it."""
    store.remove(spec_id)
    assert wait_for(lambda: not any(spec_id in spec_fields(store, pid) for pid in (*IDS, "cron-1")))


def test_a_healthy_canary_widens_to_every_matching_process(fleet) -> None:
    """The canary process applies first; after --canary-for the chosen fleet has it."""
    store, workers, cli = fleet
    code, out, err = cli(
        "publish", "c-ok", "-t", "fleet_worker.work", "--value", "result",
        "--select", "service=shop", "--canary", "1", "--canary-for", "0.5", "--wait",
    )  # fmt: skip
    assert code == 0, err
    assert out.strip() == "c-ok"
    assert "canary: c-ok published to web-1" in err and "widening" in err
    assert all(pid in err for pid in IDS) and "cron-1" not in err
    for pid in IDS:
        assert workers[pid].call(1) == ["Probe (c-ok) = 2"]
    assert workers["cron-1"].call(1) == [] and "c-ok" not in spec_fields(store, "cron-1")
    assert "select" in (spec := store.get("c-ok") or {}) and spec["select"] == {"service": "shop"}
    remove(store, "c-ok")


def test_a_canary_that_cannot_apply_is_removed_and_goes_nowhere_else(fleet) -> None:
    """An apply error on the canary: exit 1, the spec removed, no other process touched."""
    store, workers, cli = fleet
    before = {pid: applies(worker) for pid, worker in workers.items()}
    code, _, err = cli(
        "publish", "c-bad", "-t", "fleet_worker.no_such_function", "--value", "result",
        "--canary", "1", "--canary-for", "0.5",
    )  # fmt: skip
    assert code == 1
    assert "canary failed, so it was removed" in err and "no_such_function" in err
    assert store.get("c-bad") is None
    canary = err.split("canary: c-bad published to ", 1)[1].split()[0]
    others = {pid: n for pid, n in before.items() if pid != canary}
    assert len(others) == 3 and {pid: applies(workers[pid]) for pid in others} == others
    assert wait_for(lambda: "c-bad" not in spec_fields(store, canary))


def test_a_runtime_error_on_the_canary_stops_the_rollout(fleet, redis_server) -> None:
    """A probe that fails when the canary runs it is removed; exit 1; nobody else had it."""
    store, workers, _ = fleet
    before = {pid: applies(workers[pid]) for pid in ("web-2", "web-3")}
    env = {
        **os.environ,
        "DIAGNOSE_REDIS_URL": redis_server.url,
        "DIAGNOSE_PREFIX": store.keys.prefix,
    }
    proc = subprocess.Popen(
        [COORDINATOR, "publish", "c-boom", "-t", "fleet_worker.work", "--value", "x // (x - x)",
         "--select", "service=shop", "--canary", "1", "--canary-for", "30", "--wait"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert wait_for(lambda: "c-boom" in spec_fields(store, "web-1"), 10)
        workers["web-1"].call(4)
        _, err = proc.communicate(timeout=15)
    finally:
        proc.kill()
    assert proc.returncode == 1, err
    assert "canary failed" in err and "web-1" in err and "ZeroDivisionError" in err
    assert store.get("c-boom") is None
    assert {pid: applies(workers[pid]) for pid in before} == before


def test_no_matching_process_publishes_nothing(fleet) -> None:
    """A canary with no live process to run on publishes nothing and exits 3."""
    store, _, cli = fleet
    code, _, err = cli(
        "publish", "c-none", "-t", "fleet_worker.work", "--value", "result",
        "--select", "service=nobody", "--canary", "2",
    )  # fmt: skip
    assert code == 3 and "nothing was published" in err and store.get("c-none") is None


def test_ctrl_c_during_the_canary_says_what_is_left(fleet, redis_server) -> None:
    """Ctrl-C while watching: exit 130, the spec left on the canary process only, said so."""
    store, _, _ = fleet
    env = {
        **os.environ,
        "DIAGNOSE_REDIS_URL": redis_server.url,
        "DIAGNOSE_PREFIX": store.keys.prefix,
    }
    proc = subprocess.Popen(
        [COORDINATOR, "publish", "c-int", "-t", "fleet_worker.work", "--value", "result",
         "--select", "service=shop", "--canary", "1", "--canary-for", "30"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    lines: list[str] = []
    assert proc.stderr is not None
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr or ()), daemon=True)
    reader.start()
    try:
        # Watching: the canary applied it, and the command says so.
        assert wait_for(lambda: any("watching for" in line for line in lines), 15), lines
        assert "c-int" in spec_fields(store, "web-1")
        proc.send_signal(signal.SIGINT)
        proc.wait(10)
    finally:
        proc.kill()
        proc.wait()
        reader.join(10)
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
    err = "".join(lines)
    assert proc.returncode == 130, err
    assert "left on the canary processes only (c-int on web-1)" in err
    assert (store.get("c-int") or {}).get("select") == {"service": "shop", "process": ["web-1"]}
    remove(store, "c-int")
