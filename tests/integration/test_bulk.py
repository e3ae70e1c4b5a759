"""Reading many status hashes at once: by script, or by pipeline where scripts are refused."""

from __future__ import annotations

import redis

from diagnose_redis.publisher.census import BATCH, read_fields, read_hashes


def _fill(client: redis.Redis, count: int) -> list[str]:
    keys = [f"bulk:status:p{n}" for n in range(count)]
    pipe = client.pipeline()
    for n, key in enumerate(keys):
        pipe.hset(key, mapping={"_process": f"info{n}", "a": f"a{n}"})
    pipe.execute()
    return keys


def test_scripted_and_pipelined_reads_agree(redis_url: str) -> None:
    """Across batches, with missing keys and fields, both paths return the same, in order."""
    admin = redis.Redis.from_url(redis_url)
    keys = _fill(admin, BATCH + 5) + ["bulk:status:missing"]
    admin.execute_command(
        "ACL", "SETUSER", "noscripts", "on", ">pw", "~*", "&*", "+@all", "-@scripting"
    )
    host, port = (
        admin.connection_pool.connection_kwargs["host"],
        admin.connection_pool.connection_kwargs["port"],
    )
    limited = redis.Redis(host=host, port=port, username="noscripts", password="pw")
    try:
        hashes = read_hashes(admin, keys)
        assert hashes == read_hashes(limited, keys)
        assert hashes[7] == {b"_process": b"info7", b"a": b"a7"} and hashes[-1] == {}
        fields = read_fields(admin, keys, ["a", "nope"])
        assert fields == read_fields(limited, keys, ["a", "nope"])
        assert fields[BATCH + 1] == [f"a{BATCH + 1}".encode(), None] and fields[-1] == [None, None]
        assert read_hashes(admin, []) == [] and read_fields(admin, [], ["a"]) == []
    finally:
        limited.close()
        admin.execute_command("ACL", "DELUSER", "noscripts")
        admin.close()
