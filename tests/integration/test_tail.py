"""`coordinator tail` in-process on a real Redis: filters, -n, --since, --json, exit codes;
and publish's --line, --rate and --type snapshot flags. (What needs no Redis:
tests/unit/test_tail.py.)"""

# redis-py types xrange() as Optional and its fields as bytes | str | None, whatever the
# connection decodes: the stub, not these tests, is what these codes silence.
# mypy: disable-error-code="index, union-attr, arg-type"

from __future__ import annotations

import json
import time

import redis

from coordinator.commands.tail import Follower, OutputFilter, read_last
from diagnose_redis import SpecStore
from diagnose_redis.protocol import encode_output
from support.cli import run


def add(
    client: redis.Redis,
    prefix: str,
    process: str,
    spec: str,
    value: str,
    *,
    itype: str = "log",
    tags: dict | None = None,
    entry_id: str = "*",
) -> None:
    fields = encode_output(process, spec, spec, itype, value, tags or {}, time.time())
    client.xadd(f"{prefix}:output", fields, id=entry_id)  # type: ignore[arg-type]


def tail(redis_url: str, prefix: str, *args: str, columns: str = "200") -> list[str]:
    code, out, err = run(
        "--redis-url", redis_url, "--prefix", prefix, "tail", *args, env={"COLUMNS": columns}
    )
    assert code == 0, err
    assert err == ""
    return out.splitlines()


def test_the_last_20_entries_oldest_first_one_line_each(
    client: redis.Redis, redis_url: str, prefix: str
) -> None:
    """By default the last 20 entries, oldest first: TIME PROCESS SPEC VALUE, aligned."""
    for i in range(25):
        add(client, prefix, f"web-{i % 2}", "cart-total", str(i))
    lines = tail(redis_url, prefix)
    assert len(lines) == 20
    assert lines[0].endswith("  web-1  cart-total  5")
    assert lines[-1].endswith("  web-0  cart-total  24")
    stamp = lines[0].split()[0]
    assert len(stamp) == 24 and stamp.endswith("Z") and stamp[10] == "T"
    assert len({line.index("cart-total") for line in lines}) == 1
    assert tail(redis_url, prefix, "-n", "3")[0].endswith("cart-total  22")
    assert tail(redis_url, prefix, "-n", "0") == []


def test_ids_and_a_process_glob_choose_whose_output(
    client: redis.Redis, redis_url: str, prefix: str
) -> None:
    """IDs keep those specs' entries, --process the processes matching a glob; -n counts
    what matches."""
    for i in range(30):
        add(client, prefix, f"web-{i % 3}", ("a", "b", "c")[i % 2], str(i))
    add(client, prefix, "worker-9", "a", "last")
    only_a = tail(redis_url, prefix, "a", "-n", "100")
    assert len(only_a) == 16 and all("  a  " in line for line in only_a)
    web1 = tail(redis_url, prefix, "--process", "web-1", "-n", "3")
    assert [line.rsplit(" ", 1)[1] for line in web1] == ["22", "25", "28"]
    both = tail(redis_url, prefix, "a", "b", "--process", "web-*", "-n", "4")
    assert [line.rsplit(" ", 1)[1] for line in both] == ["26", "27", "28", "29"]
    assert tail(redis_url, prefix, "c") == []


def test_since_keeps_the_recent_entries_every_one_unless_n_says(
    client: redis.Redis, redis_url: str, prefix: str
) -> None:
    """--since DURATION: entries added within it (by Redis's clock), all of them by default."""
    now_ms = int(client.time()[0] * 1000)
    for i in range(3):
        add(client, prefix, "web-1", "s", f"old{i}", entry_id=f"{now_ms - 3_600_000 + i}-0")
    for i in range(30):
        add(client, prefix, "web-1", "s", f"new{i}")
    recent = tail(redis_url, prefix, "--since", "10m")
    assert len(recent) == 30 and recent[0].endswith("new0")
    assert len(tail(redis_url, prefix, "--since", "2h")) == 33
    assert tail(redis_url, prefix, "--since", "1h30m", "-n", "2")[0].endswith("new28")


def test_json_prints_one_object_per_entry_with_tags_and_snapshots_as_data(
    client: redis.Redis, redis_url: str, prefix: str
) -> None:
    """--json: JSON Lines with every field, tags and a snapshot's value decoded."""
    add(client, prefix, "web-1", "t", "42", tags={"user": "ada"})
    add(client, prefix, "web-1", "snap", '{"cart":{"items":3}}', itype="snapshot")
    lines = tail(redis_url, prefix, "--json")
    docs = [json.loads(line) for line in lines]
    assert set(docs[0]) == {"id", "process", "spec", "name", "type", "value", "tags", "at"}
    assert docs[0]["value"] == "42" and docs[0]["tags"] == {"user": "ada"}
    assert docs[1]["value"] == {"cart": {"items": 3}} and docs[1]["type"] == "snapshot"
    human = tail(redis_url, prefix)
    assert human[0].endswith('42  tags={"user":"ada"}')
    assert human[1].endswith('snapshot: {"cart":{"items":3}}')


def test_lines_are_cut_to_the_width_but_never_the_ids(
    client: redis.Redis, redis_url: str, prefix: str
) -> None:
    """A long value is cut with an ellipsis to fit the width; --wide shows it whole."""
    add(client, prefix, "a-rather-long-process-name", "cart-total", "x" * 500)
    (line,) = tail(redis_url, prefix, columns="80")
    assert len(line) == 80 and line.endswith("…")
    assert "a-rather-long-process-name  cart-total  xxx" in line
    (wide,) = tail(redis_url, prefix, "--wide", columns="80")
    assert wide.endswith("x" * 500)


def test_follow_hands_over_new_matching_entries(
    client: redis.Redis, redis_url: str, prefix: str
) -> None:
    """The follower reads entries added after its start, filtered."""
    key = f"{prefix}:output"
    add(client, prefix, "web-1", "s", "before")
    newest = client.xrevrange(key, count=1)[0][0].decode()
    follower = Follower(client, key, newest, OutputFilter(frozenset({"s"})), block=0.1)
    add(client, prefix, "web-1", "s", "one")
    add(client, prefix, "web-1", "other", "no")
    add(client, prefix, "web-2", "s", "two")
    assert [e["value"] for e in follower.poll()] == ["one", "two"]
    assert follower.poll() == []


def test_following_from_none_starts_after_the_newest_entry(
    client: redis.Redis, prefix: str
) -> None:
    """-n 0 (or nothing since --since) reads nothing, and following starts after the newest
    entry, so that nothing old is printed as new."""
    key = f"{prefix}:output"
    assert read_last(client, key, 0, OutputFilter()) == ([], "0-0")
    add(client, prefix, "web-1", "s", "old")
    newest = client.xrevrange(key, count=1)[0][0].decode()
    assert read_last(client, key, 0, OutputFilter()) == ([], newest)
    future_ms = int(client.time()[0] * 1000) + 60_000
    assert read_last(client, key, None, OutputFilter(), since_ms=future_ms) == ([], newest)


def test_publish_line_rate_and_snapshot_flags(redis_url: str, prefix: str) -> None:
    """--line N implies event line; --rate sets custom.rate; a snapshot needs no --value."""
    base = ["--redis-url", redis_url, "--prefix", prefix, "publish"]
    code, out, err = run(*base, "l1", "-t", "a.b", "--value", "x", "--line", "12", "--rate", "5")
    assert code == 0, err
    code, out, err = run(*base, "s1", "-t", "a.b", "--type", "snapshot", "--event", "call")
    assert code == 0, err
    client = redis.Redis.from_url(redis_url)
    store = SpecStore(client, prefix)
    stored_line, stored_snap = store.get("l1"), store.get("s1")
    assert stored_line is not None and stored_snap is not None
    line = stored_line["instrument"]
    assert (line["event"], line["line"], line["custom"]) == ("line", 12, {"rate": 5})
    snap = stored_snap["instrument"]
    assert snap["type"] == "snapshot" and snap["event"] == "call"
    code, out, _ = run("--redis-url", redis_url, "--prefix", prefix, "list", env={"COLUMNS": "200"})
    assert "line 12" in out
    client.close()
