"""Exception replay across a fleet on a real Redis: counts merged from real worker processes,
the first K captures claimed fleet-wide, the aggregates living and going with their spec,
and `coordinator exceptions` reading them."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from coordinator.cli import cli
from diagnose.instruments.exception import ExceptionAggregate
from diagnose.outbox import Origin
from diagnose_redis import SpecStore, connect
from diagnose_redis._subscriber.flusher import Flusher
from diagnose_redis.protocol import Keys
from diagnose_redis.publisher import read_captures, read_exceptions
from support.acl import readme_acl_rules
from support.fleet import Worker
from support.waiting import wait_for

WORKER = Path(__file__).resolve().parents[1] / "support" / "exception_worker.py"
TARGET = "exception_worker.checkout"
SECRETS = ("sk_live_SECRETa1b2c3d4", "pw-SECRET-5678", "tok-SECRET-9012")


class ExceptionWorker(Worker):
    """An exception_worker.py subprocess, its stdout collected line by line."""

    def __init__(self, url: str, prefix: str, process_id: str) -> None:
        super().__init__(url, prefix, "--process-id", process_id, script=WORKER, startup=20)

    def reply(self, start: str, after: int, timeout: float = 20.0) -> Any:
        """Return the JSON of the first line from index after that starts with start."""
        line = wait_for(
            lambda: next((x for x in self.lines[after:] if x.startswith(start + " ")), None),
            timeout,
        )
        assert line, f"no {start!r} from the worker; stderr: {self.stderr()}"
        return json.loads(line.split(" ", 1)[1])

    def ask(self, command: str, answer: str) -> Any:
        """Send a command and return the JSON of its answer."""
        mark = len(self.lines)
        self.send(command)
        return self.reply(answer, mark)

    def stderr(self) -> str:
        """Return what the worker wrote to stderr, once it has exited."""
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read() if self.proc.stderr else ""

    def quit(self) -> dict[str, int]:
        """Stop the worker cleanly; return the raises it counted."""
        counts = self.ask("quit", "stopped")
        self.proc.wait(10)
        return counts

    def kill(self) -> None:
        """Kill the worker if it still runs, and close its pipes."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._reader.join(5)
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass


def exception_spec(**custom: Any) -> dict[str, Any]:
    return {
        "target": TARGET,
        "instrument": {"type": "exception", "name": "checkout-errors", "custom": custom},
        "lifespan": 10,
    }


def applied_by(store: SpecStore, spec_id: str, pids: list[str]) -> bool:
    spec = store.get(spec_id)
    report = store.status(spec_id)
    return spec is not None and all(
        (report.get(pid, {}).get(spec_id) or {}).get("lm") == spec["lastmodified"] for pid in pids
    )


def stream_captures(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    """Return the exception entries of the output stream, values decoded."""
    entries: Any = client.xrange(f"{prefix}:output")
    return [
        {k.decode(): v.decode() for k, v in fields.items()}
        for _id, fields in entries
        if fields.get(b"type") == b"exception"
    ]


@pytest.mark.timeout(120)
def test_three_workers_two_code_paths(redis_url: str, client: redis.Redis) -> None:
    """Three workers raising along two code paths give two fingerprints, each counted as
    often as the workers raised it, seen by 3 processes, with at most K captures each in
    the stream, frames as asked (innermost last, with locals), no secret anywhere, and the
    callers' tracebacks as without the probe."""
    prefix = "exc3"
    store = SpecStore(client, prefix)
    pids = ["w1", "w2", "w3"]
    workers = [ExceptionWorker(redis_url, prefix, pid) for pid in pids]
    try:
        before = workers[0].ask("raise 2", "raised")
        assert before == {"KeyError": 1, "QuantityError": 1}
        shapes_before = workers[0].ask("shapes", "shapes")
        store.put("errors", exception_spec(first=2, frames=3, rate=1000))
        assert wait_for(lambda: applied_by(store, "errors", pids), 20)
        marks = [len(w.lines) for w in workers]
        for worker in workers:
            worker.send("raise 300")
        raised = [w.reply("raised", mark) for w, mark in zip(workers, marks, strict=True)]
        shapes_after = workers[0].ask("shapes", "shapes")
    finally:
        stopped = []
        for worker in workers:
            try:
                stopped.append(worker.quit())
            finally:
                worker.kill()
    assert raised[0]["KeyError"] == 151 and raised[1]["KeyError"] == 150
    # The worker raised 2 before the probe: only what it raised since counts.
    expected = {
        name: sum(counts[name] for counts in stopped) - before[name]
        for name in ("KeyError", "QuantityError")
    }
    rows = read_exceptions(client, store.keys, "errors")
    assert sorted(r.type for r in rows) == ["KeyError", "exception_worker.QuantityError"]
    by_type = {r.type.rpartition(".")[2]: r for r in rows}
    for name, count in expected.items():
        assert abs(by_type[name].count - count) <= len(pids)
        assert by_type[name].processes == 3
    # The caller saw the same tracebacks (no frame of the probe's) and the same objects.
    assert shapes_after["shapes"] == shapes_before["shapes"]
    assert shapes_after["same"] is True

    captures = stream_captures(client, prefix)
    per_fingerprint: dict[str, int] = {}
    for entry in captures:
        value = json.loads(entry["value"])
        per_fingerprint[value["fingerprint"]] = per_fingerprint.get(value["fingerprint"], 0) + 1
        assert entry["spec"] == "errors" and entry["process"] in pids
    assert set(per_fingerprint) == {r.fingerprint for r in rows}
    assert all(n <= 2 for n in per_fingerprint.values())

    quantity = by_type["QuantityError"]
    detailed, stored = read_captures(client, store.keys, "errors", quantity)
    assert sum(detailed.by_process.values()) == quantity.count
    assert 1 <= len(stored) <= 2
    frames = stored[0]["frames"]
    assert [f["function"] for f in frames] == ["_price", "_validate", "_check_quantity"]
    assert all(Path(f["file"]).name == "exception_worker.py" for f in frames)
    assert frames[-1]["locals"]["quantity"] % 22 == 0  # n * len(api_key), n odd
    assert frames[0]["locals"]["basket"]["password"] == "<redacted>"
    assert frames[0]["locals"]["basket"]["items"] == [0, 1, 2, 3, 4]
    assert stored[0]["message"].startswith("invalid quantity ")
    assert stored[0]["process"] in pids and stored[0]["at"].endswith("Z")

    everything = json.dumps(captures) + json.dumps(stored)
    about: Any = client.hgetall(store.keys.exceptions("errors").about)
    everything += json.dumps({k.decode(): v.decode() for k, v in about.items()})
    for secret in SECRETS:
        assert secret not in everything


def test_coordinator_exceptions_reads_what_the_fleet_merged(
    redis_url: str, client: redis.Redis
) -> None:
    """`coordinator exceptions ID` lists the fingerprints most frequent first (a table, or
    JSON with the contract's keys); with a fingerprint, its captures; a missing spec or
    one of another type exits 1 saying so."""
    prefix = "excli"
    store = SpecStore(client, prefix)
    store.put("errors", exception_spec(first=1))
    store.put("logs", {"target": TARGET, "instrument": {"type": "log", "name": "l", "value": "1"}})
    aggregate = ExceptionAggregate(Origin("errors", "exception"), "checkout-errors", 1)
    aggregate.fleet = True
    frames = [{"function": "f", "file": "m.py", "line": 3, "locals": {"x": 1}}]
    for fingerprint, count in (("aaaaaaaaaaaaaaaa", 2), ("bbbbbbbbbbbbbbbb", 5)):
        for _ in range(count):
            aggregate.add(fingerprint, ValueError, 1_800_000_000.0)
        aggregate.describe(fingerprint, f"bad {fingerprint[0]}")
    aggregate.hold(
        {
            "fingerprint": "bbbbbbbbbbbbbbbb",
            "type": "ValueError",
            "message": "bad b",
            "at": "2027-01-15T08:00:00.000Z",
            "frames": frames,
        }
    )
    registry = _registry(aggregate)
    Flusher(client, Keys(prefix), lambda: "w9", aggregates=registry).flush()

    runner = CliRunner()
    base = ["--redis-url", redis_url, "--prefix", prefix]
    table = runner.invoke(cli, [*base, "exceptions", "errors"])
    assert table.exit_code == 0, table.output
    lines = table.output.splitlines()
    assert lines[0].split() == ["FINGERPRINT", "TYPE", "COUNT", "PROCESSES", "LAST-SEEN", "MESSAGE"]
    assert lines[1].split()[:4] == ["bbbbbbbbbbbbbbbb", "ValueError", "5", "1"]
    assert lines[2].split()[:4] == ["aaaaaaaaaaaaaaaa", "ValueError", "2", "1"]

    listed = json.loads(runner.invoke(cli, [*base, "exceptions", "errors", "--json"]).output)
    assert [row["fingerprint"] for row in listed] == ["bbbbbbbbbbbbbbbb", "aaaaaaaaaaaaaaaa"]
    assert set(listed[0]) == {
        "fingerprint",
        "type",
        "message",
        "count",
        "processes",
        "first_at",
        "last_at",
    }
    assert listed[0]["first_at"] == "2027-01-15T08:00:00.000Z"

    detail = runner.invoke(cli, [*base, "exceptions", "errors", "bbbb", "--json"])
    document = json.loads(detail.output)
    assert document["count"] == 5 and document["message"] == "bad b"
    assert document["captures"][0]["process"] == "w9"
    assert document["captures"][0]["at"] == "2027-01-15T08:00:00.000Z"
    assert document["captures"][0]["frames"] == frames
    shown = runner.invoke(cli, [*base, "exceptions", "errors", "bbbbbbbbbbbbbbbb"]).output
    assert 'File "m.py", line 3, in f' in shown and "x = 1" in shown

    missing = runner.invoke(cli, [*base, "exceptions", "nope"])
    assert missing.exit_code == 1 and "no such spec: nope" in missing.output
    other = runner.invoke(cli, [*base, "exceptions", "logs"])
    assert other.exit_code == 1 and "not an exception probe" in other.output
    unknown = runner.invoke(cli, [*base, "exceptions", "errors", "cccc"])
    assert unknown.exit_code == 1 and "no fingerprint cccc" in unknown.output


def _registry(*aggregates: ExceptionAggregate) -> Any:
    from diagnose.aggregates import Aggregates

    registry = Aggregates()
    for aggregate in aggregates:
        registry.add(aggregate)
    return registry


def _capture(fingerprint: str, n: int) -> dict[str, Any]:
    return {
        "fingerprint": fingerprint,
        "type": "ValueError",
        "message": f"m{n}",
        "at": "2027-01-15T08:00:00.000Z",
        "frames": [],
    }


def test_many_processes_claiming_at_once_capture_k_in_all(
    redis_url: str, client: redis.Redis
) -> None:
    """Forty processes' flushes racing, each with captures of one fingerprint, store and
    stream exactly K of them; every raise is counted, and each process learns that the
    fingerprint is full (at the latest from its next flush)."""
    prefix = "claim"
    store = SpecStore(client, prefix)
    store.put("errors", exception_spec(first=3))
    aggregates = []
    for n in range(40):
        aggregate = ExceptionAggregate(Origin("errors", "exception"), "e", 3)
        aggregate.fleet = True
        aggregate.add("cccccccccccccccc", ValueError, 1_800_000_000.0 + n)
        aggregate.hold(_capture("cccccccccccccccc", n))
        aggregate.hold(_capture("cccccccccccccccc", 100 + n))
        aggregates.append(aggregate)
    start = threading.Barrier(len(aggregates))
    claimed = threading.Barrier(len(aggregates))

    def flush(n: int, aggregate: ExceptionAggregate) -> None:
        own = redis.Redis.from_url(redis_url)
        flusher = Flusher(own, Keys(prefix), lambda: f"p{n}", aggregates=_registry(aggregate))
        start.wait(30)
        flusher.flush()
        # Once every process flushed once (the K-th claim is made), the next flush tells
        # even those that flushed before it.
        claimed.wait(30)
        aggregate.add("cccccccccccccccc", ValueError, 1_800_000_100.0 + n)
        flusher.flush()
        own.close()

    threads = [threading.Thread(target=flush, args=(n, a)) for n, a in enumerate(aggregates)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(stream_captures(client, prefix)) == 3
    keys = store.keys.exceptions("errors")
    assert client.hlen(keys.captures) == 3
    assert sum(a.won for a in aggregates) == 3
    assert all("cccccccccccccccc" in a.full for a in aggregates)
    (row,) = read_exceptions(client, store.keys, "errors")
    assert row.count == 80 and row.processes == 40
    assert row.first_at == "2027-01-15T08:00:00.000Z"


def test_aggregates_live_and_go_with_their_spec(client: redis.Redis) -> None:
    """The aggregate keys take the spec's TTL, go with its removal, and a flush after the
    removal (a process that has not heard of it yet) writes nothing back."""
    prefix = "life"
    store = SpecStore(client, prefix)
    store.put("errors", exception_spec())
    aggregate = ExceptionAggregate(Origin("errors", "exception"), "e", 3)
    aggregate.fleet = True
    flusher = Flusher(client, Keys(prefix), lambda: "p1", aggregates=_registry(aggregate))
    aggregate.add("dddddddddddddddd", ValueError, 1_800_000_000.0)
    aggregate.hold(_capture("dddddddddddddddd", 1))
    flusher.flush()
    keys = store.keys.exceptions("errors")
    spec_ttl = client.pttl(store.keys.spec("errors"))
    for key in keys:
        assert 0 < client.pttl(key) <= spec_ttl
    store.put("errors", {**exception_spec(), "lifespan": None})
    assert all(client.pttl(key) == -1 for key in keys)
    assert store.remove("errors") == ["errors"]
    assert not any(client.exists(key) for key in keys)
    aggregate.add("dddddddddddddddd", ValueError, 1_800_000_001.0)
    aggregate.hold(_capture("dddddddddddddddd", 2))
    flusher.flush()
    assert not any(client.exists(key) for key in keys)
    assert aggregate.won == 1


def test_an_expired_spec_is_swept_with_its_aggregates(client: redis.Redis) -> None:
    """When the spec key expires, the sweep that turns expiry into removal (coordinator
    serve) deletes the aggregates too."""
    prefix = "sweep"
    store = SpecStore(client, prefix)
    store.put("errors", exception_spec())
    aggregate = ExceptionAggregate(Origin("errors", "exception"), "e", 3)
    aggregate.fleet = True
    aggregate.add("eeeeeeeeeeeeeeee", ValueError, 1_800_000_000.0)
    Flusher(client, Keys(prefix), lambda: "p1", aggregates=_registry(aggregate)).flush()
    keys = store.keys.exceptions("errors")
    client.persist(keys.counts)  # as if set by a flush racing the expiry
    client.delete(store.keys.spec("errors"))
    assert store.sweep_expired() == ["errors"]
    assert not client.exists(keys.counts)


def test_a_take_kept_from_a_failed_flush_is_merged_once(
    client: redis.Redis, silent_server: Any
) -> None:
    """A flush that fails (Redis unreachable) keeps its take; the next one merges it with
    what was counted meanwhile, each raise once."""
    prefix = "retry"
    store = SpecStore(client, prefix)
    store.put("errors", exception_spec())
    aggregate = ExceptionAggregate(Origin("errors", "exception"), "e", 3)
    aggregate.fleet = True
    unreachable = redis.Redis.from_url(silent_server.url, socket_timeout=0.2)
    flusher = Flusher(unreachable, Keys(prefix), lambda: "p1", aggregates=_registry(aggregate))
    for _ in range(4):
        aggregate.add("ffffffffffffffff", ValueError, 1_800_000_000.0)
    with pytest.raises(redis.RedisError):
        flusher.flush()
    aggregate.add("ffffffffffffffff", ValueError, 1_800_000_001.0)
    flusher.client = client
    flusher.flush()
    flusher.flush()
    unreachable.close()
    (row,) = read_exceptions(client, store.keys, "errors")
    assert row.count == 5


def test_the_readme_acl_lets_exception_counts_merge(private_redis: Any) -> None:
    """Under the README's ACL line the flusher's script runs: without its +eval, Redis
    refuses it."""
    admin = redis.Redis.from_url(private_redis.url)
    rules = readme_acl_rules()
    assert "+eval" in rules
    admin.execute_command("ACL", "SETUSER", "diagnose", "on", ">pw", *rules)
    without = [rule for rule in rules if rule != "+eval"]
    admin.execute_command("ACL", "SETUSER", "noscript", "on", ">pw", *without)
    url = private_redis.url.replace("redis://", "redis://{}:pw@")
    for user, merged in (("noscript", False), ("diagnose", True)):
        client = redis.Redis.from_url(url.format(user))
        store = SpecStore(client, "diagnose")
        store.put("errors", exception_spec())
        aggregate = ExceptionAggregate(Origin("errors", "exception"), "e", 3)
        aggregate.fleet = True
        aggregate.add("abababababababab", ValueError, 1_800_000_000.0)
        flusher = Flusher(client, Keys("diagnose"), lambda: "p1", aggregates=_registry(aggregate))
        if merged:
            flusher.flush()
            assert admin.zscore(store.keys.exceptions("errors").counts, "abababababababab") == 1
        else:
            with pytest.raises(redis.exceptions.NoPermissionError):
                flusher.flush()
        client.close()
    admin.close()


def test_the_merge_and_the_claim_run_on_a_cluster(redis_cluster: Any) -> None:
    """On a Redis Cluster the script's keys share the prefix's slot: counts merge and the
    claim stores and streams the captures there too."""
    prefix = "clusterexc"
    client = connect(redis_cluster.url, prefix=prefix)
    try:
        store = SpecStore(client, prefix)
        store.put("errors", exception_spec(first=1))
        aggregate = ExceptionAggregate(Origin("errors", "exception"), "e", 1)
        aggregate.fleet = True
        aggregate.add("a1a1a1a1a1a1a1a1", ValueError, 1_800_000_000.0)
        aggregate.hold(_capture("a1a1a1a1a1a1a1a1", 1))
        aggregate.hold(_capture("a1a1a1a1a1a1a1a1", 2))
        Flusher(client, store.keys, lambda: "p1", aggregates=_registry(aggregate)).flush()
        (row,) = read_exceptions(client, store.keys, "errors")
        assert (row.count, row.processes, row.claimed) == (1, 1, 1)
        _, stored = read_captures(client, store.keys, "errors", row)
        assert [c["message"] for c in stored] == ["m1"]
        assert client.xlen(store.keys.output) == 1
        assert store.remove("errors") == ["errors"]
        assert not any(client.exists(key) for key in store.keys.exceptions("errors"))
    finally:
        client.close()


def test_fingerprints_agree_across_hosts_with_other_paths(tmp_path: Path) -> None:
    """Two processes importing the same module from different directories (two hosts, two
    virtualenvs) compute the same fingerprint for the same raise."""
    source = textwrap.dedent(
        """
        def inner():
            raise ValueError("x")

        def outer():
            inner()
        """
    )
    script = textwrap.dedent(
        """
        import sys
        from diagnose._output.frames import Fingerprints
        import shopmod
        try:
            shopmod.outer()
        except ValueError as exc:
            print(Fingerprints().of(type(exc), exc.__traceback__.tb_next))
        """
    )
    found = []
    for root in (tmp_path / "host-a" / "site-packages", tmp_path / "b" / "venv" / "lib"):
        root.mkdir(parents=True)
        (root / "shopmod.py").write_text(source)
        run = subprocess.run(
            [sys.executable, "-c", script],
            env={"PYTHONPATH": str(root), "PATH": ""},
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        found.append(run.stdout.strip())
    assert found[0] == found[1] and len(found[0]) == 16
