"""The outflow thread on a real Redis: batches, the stream's cap, refusals, stop."""

# redis-py types xrange() as Optional and its fields as bytes | str | None, whatever the
# connection decodes: the stub, not these tests, is what these codes silence.
# mypy: disable-error-code="index, union-attr, arg-type"

from __future__ import annotations

import redis

from diagnose.outbox import Origin, Outbox
from diagnose_redis._subscriber.outflow import Outflow
from diagnose_redis.protocol import Keys, decode_output
from support.waiting import wait_for


def test_entries_reach_the_stream_in_order_with_every_field(client: redis.Redis) -> None:
    """What the outbox holds is added to P:output, oldest first, with the contract's fields."""
    box = Outbox()
    flow = Outflow(client, Keys("o"), lambda: "web-1", outbox=box, maxlen=50)
    assert flow.start()
    try:
        for i in range(250):
            box.put(Origin("s", "log"), "name", str(i), {"k": i} if i == 0 else {})
        assert wait_for(lambda: flow.sent == 250, 5)
    finally:
        flow.stop()
    raw = client.xrange("o:output")
    first = decode_output(*raw[0])
    assert set(first) == {"id", "process", "spec", "name", "type", "value", "tags", "at"}
    assert (first["process"], first["spec"], first["name"], first["type"]) == (
        "web-1",
        "s",
        "name",
        "log",
    )
    values = [int(decode_output(i, f)["value"]) for i, f in raw]
    assert values == sorted(values) and values[-1] == 249
    # MAXLEN ~ trims whole blocks: near the cap, never the whole history.
    assert 50 <= len(raw) < 250


def test_an_entry_redis_refuses_is_dropped_and_counted_not_retried(client: redis.Redis) -> None:
    """A key of another type refuses XADD: the entries are counted as dropped, once."""
    client.set("r:output", "not a stream")
    box = Outbox()
    errors: list[Exception] = []
    flow = Outflow(client, Keys("r"), lambda: "p", outbox=box, on_error=errors.append)
    flow.start()
    try:
        for i in range(3):
            box.put(Origin("s", "log"), "s", str(i), {})
        assert wait_for(lambda: flow.refused == 3, 5)
    finally:
        flow.stop()
    assert box.dropped == {"s": 3} and flow.sent == 0
    assert errors and "WRONGTYPE" in str(errors[0])


def test_stop_sends_what_is_left_and_closes_the_outbox(client: redis.Redis) -> None:
    """stop() sends the entries still held, then the outbox keeps nothing more."""
    box = Outbox()
    flow = Outflow(client, Keys("x"), lambda: "p", outbox=box, interval=60)
    flow.start()
    box.put(Origin("s", "log"), "s", "last words", {})
    flow.stop()
    assert not flow.running and not box.enabled
    assert [decode_output(i, f)["value"] for i, f in client.xrange("x:output")] == ["last words"]


def test_without_redis_in_diagnose_output_nothing_starts(client: redis.Redis) -> None:
    """DIAGNOSE_OUTPUT=stdout: no thread, and the outbox stays closed."""
    box = Outbox()
    box.stream = False
    flow = Outflow(client, Keys("n"), lambda: "p", outbox=box)
    assert not flow.start() and not flow.running and not box.enabled
