"""The publisher against a real Redis refuses what the wire would refuse."""

from __future__ import annotations

from typing import Any

import pytest
import redis

from diagnose import SpecError
from diagnose_redis import SpecStore
from support.wire_fuzz import nested


def test_a_spec_too_deep_for_its_event_is_refused_by_the_publisher(redis_url: str) -> None:
    """SpecStore.put refuses (SpecError, nothing stored) a spec whose put event would nest past
    MAX_NESTING, so that no publish succeeds that every subscriber would drop."""

    store = SpecStore(redis.Redis.from_url(redis_url), "deep")
    instrument: dict[str, Any] = {"type": "log", "name": "n", "value": "1"}
    spec: dict[str, Any] = {"target": "a.b", "instrument": instrument}
    store.put("fits", {**spec, "instrument": {**instrument, "custom": {"x": nested(12)}}})
    deep = {**spec, "instrument": {**instrument, "custom": {"x": nested(13)}}}
    with pytest.raises(SpecError, match="at most 15 deep"):
        store.put("deep", deep)
    assert store.get("deep") is None and store.get("fits") is not None
    store.client.close()
