"""Several keys over a real Redis: workers holding two keys apply what either signs and
refuse a third, naming it; the rotation of docs/security/keys.md, followed step by step with
workers restarted one at a time, never leaves a probe unapplied."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from support.cli import COORDINATOR
from support.fleet import Worker
from support.waiting import wait_for

TARGET = "fleet_worker.work"
OLD, NEW = "k1:old-secret", "k2:new-secret"


def run(url: str, prefix: str, secret: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the coordinator signing with secret."""
    env = {**os.environ, "DIAGNOSE_REDIS_URL": url, "DIAGNOSE_PREFIX": prefix}
    env.pop("DIAGNOSE_REQUIRE_APPROVAL", None)
    env.update(DIAGNOSE_SECRET=secret, DIAGNOSE_USER="ops")
    return subprocess.run([COORDINATOR, *args], env=env, capture_output=True, text=True, timeout=60)


def publish(url: str, prefix: str, secret: str, spec_id: str) -> subprocess.CompletedProcess[str]:
    """Publish a log probe spec_id (value: its name) and wait for the fleet."""
    return run(url, prefix, secret, "publish", spec_id, "-t", TARGET, "--value", f"{spec_id!r}",
               "--wait", "--timeout", "15")  # fmt: skip


def fired(worker: Worker) -> set[str]:
    """Call the target in worker; return the names of the probes that fired."""
    return {line.split("(", 1)[1].split(")", 1)[0] for line in worker.call(1)}


def test_two_keys_apply_what_either_signs_and_a_third_is_refused_by_name(
    redis_url: str, prefix: str
) -> None:
    """A worker holding k1 and k2 applies specs signed with either; one signed with k3 is
    not applied, its status error names k3, publish warns and --wait exits 1 with it."""
    worker = Worker(redis_url, prefix, "--secret", f"{OLD},{NEW}", "--process-id", "w-1")
    try:
        assert publish(redis_url, prefix, OLD, "by_k1").returncode == 0
        assert publish(redis_url, prefix, NEW, "by_k2").returncode == 0
        third = publish(redis_url, prefix, "k3:other-secret", "by_k3")
        assert third.returncode == 1
        assert "no live process holds key 'k3'" in third.stderr
        assert "signed with key 'k3', which this process does not hold" in third.stderr
        assert fired(worker) == {"by_k1", "by_k2"}
        status = json.loads(run(redis_url, prefix, NEW, "status", "by_k3", "--json").stdout)
        err = status["processes"]["w-1"]["specs"]["by_k3"]["err"]
        assert err == "signed with key 'k3', which this process does not hold"
        assert "other-secret" not in third.stderr + third.stdout
    finally:
        stderr = worker.close()
    assert "secret" not in stderr


def keys_of(url: str, prefix: str) -> dict[str, list[str]]:
    """Return the key ids each live process declares (coordinator processes --json)."""
    listed = json.loads(run(url, prefix, "", "processes", "--json").stdout)
    return {pid: entry.get("keys", []) for pid, entry in listed["processes"].items()}


def restart(workers: list[Worker], index: int, url: str, prefix: str, secret: str) -> None:
    """Replace workers[index] by a new worker with secret: the new one starts first."""
    name = f"w-{index}-{secret.count(',')}-{secret[:2]}"
    fresh = Worker(url, prefix, "--secret", secret, "--process-id", name)
    workers[index].close()
    workers[index] = fresh


@pytest.mark.timeout(240)
def test_the_documented_rotation_never_stops_a_probe(redis_url: str, prefix: str) -> None:
    """Rotating k1 -> k2 as docs/security/keys.md says, one worker restart at a time, every
    probe published so far fires in every live worker after every step."""
    workers = [Worker(redis_url, prefix, "--secret", OLD, "--process-id", f"w-{i}") for i in (0, 1)]
    live: set[str] = set()

    def everywhere() -> None:
        for worker in workers:

            def all_fire(worker: Worker = worker) -> bool:
                return fired(worker) == live

            assert wait_for(all_fire, 10, 0.1), (live, fired(worker))

    try:
        assert publish(redis_url, prefix, OLD, "p0").returncode == 0
        live.add("p0")
        everywhere()
        # 1. The workers get the new key after the old one, one restart at a time.
        for index in (0, 1):
            restart(workers, index, redis_url, prefix, f"{OLD},{NEW}")
            everywhere()
        assert all(keys == ["k1", "k2"] for keys in keys_of(redis_url, prefix).values())
        # 2. The coordinator signs with the new key, still reading the old.
        result = publish(redis_url, prefix, f"{NEW},{OLD}", "p1")
        assert result.returncode == 0 and "warning" not in result.stderr, result.stderr
        live.add("p1")
        everywhere()
        # 3. With the new key alone, list names what the old one signed: publish it again.
        listed = run(redis_url, prefix, NEW, "list")
        assert "p0 is signed with key 'k1'" in listed.stdout and "p1 is signed" not in listed.stdout
        assert publish(redis_url, prefix, NEW, "p0").returncode == 0
        everywhere()
        assert "signed with key" not in run(redis_url, prefix, NEW, "list").stdout
        # 4. The workers lose the old key, one restart at a time.
        for index in (0, 1):
            restart(workers, index, redis_url, prefix, NEW)
            everywhere()
        assert all(keys == ["k2"] for keys in keys_of(redis_url, prefix).values())
        assert publish(redis_url, prefix, NEW, "p2").returncode == 0
        live.add("p2")
        everywhere()
    finally:
        for worker in workers:
            worker.close()
