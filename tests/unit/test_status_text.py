"""What a status write sends, formatted without JSON round trips: the spec fields with their
counts, ``_process``, and the commands as RESP bytes, each equal to what the slower way
gives."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
import redis

from diagnose import ProbeManager
from diagnose_redis._subscriber.listener import Subscriber
from diagnose_redis.connection.deferred import _pack
from diagnose_redis.protocol import StatusField, encode_status_field, with_counts
from support.cli import CLOSED_URL

LM = dt.datetime(2026, 3, 1, 12, 30, tzinfo=dt.UTC)
AT = LM + dt.timedelta(seconds=2)


@pytest.mark.parametrize(
    "error", [None, "boom", 'x", "fired": 1, "dropped": 2, "errors": 3}', 'é\n\t"quoted"']
)
def test_a_status_field_takes_its_counts_as_json_would(error: str | None) -> None:
    """StatusField's text, and with_counts() on it, are what json.dumps writes; an error
    text that spells the counts does not fool the fast with_counts()."""
    field = StatusField.of(LM, error, AT)
    assert field == encode_status_field(LM, error, AT)
    counts = {"fired": 7, "dropped": 1, "errors": 2}
    expected = json.dumps({"lm": LM.isoformat(), "err": error, "at": AT.isoformat(), **counts})
    assert field.text(counts) == with_counts(field, counts) == expected
    assert with_counts(str(field), counts) == expected
    assert json.loads(with_counts('{"lm": null, "fired": 3}', counts))["fired"] == 7


def test_the_process_field_is_process_info_as_json() -> None:
    """_process, formatted from its parts, is json.dumps(process_info()), and follows the
    counters."""
    sub = Subscriber(CLOSED_URL, process_id="text:1", prefix="p", manager=ProbeManager("t"))
    assert sub._process_text() == json.dumps(sub.process_info())
    sub.dropped["malformed"] += 2
    sub.received = 12
    sub.identity.static["labels"]["team"] = "é"
    assert sub._process_text() == json.dumps(sub.process_info())


@pytest.mark.parametrize(
    "commands",
    [
        [["HSET", "p:status:é", "s", '{"lm": null}', "_process", "{" * 300]],
        [["EXPIRE", "k", 15], ["ZADD", "p:processes", 1712345678.25, "id"]],
        [["SET", b"\x00bin", 7, "NX", "PX", 15000], ["GET", "k"]],
    ],
)
def test_commands_are_packed_as_redis_py_packs_them(commands: list[list[Any]]) -> None:
    """The status write's own packing gives redis-py's bytes."""
    connection: Any = redis.Redis().connection_pool.make_connection()
    assert _pack(commands, connection.encoder) == b"".join(connection.pack_commands(commands))


def test_packing_refuses_what_redis_py_refuses() -> None:
    """A value redis-py will not send (a bool) is refused the same way."""
    connection: Any = redis.Redis().connection_pool.make_connection()
    with pytest.raises(redis.DataError):
        _pack([["SET", "k", True]], connection.encoder)
