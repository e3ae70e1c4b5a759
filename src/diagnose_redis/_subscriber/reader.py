"""Wait for pub/sub messages at the cost of one poll() each.

Where the subscription has one connection, the wait is one poll() on its socket and one
read, polled only when the parser's buffer is known to be empty; otherwise (Cluster), it is
redis-py's ``get_message``.
"""

from __future__ import annotations

import math
import select
from typing import Any

import redis
import redis.cluster

__all__ = ("MessageReader",)


class MessageReader:
    """The listener's wait for the next message of one subscription."""

    def __init__(self, pubsub: redis.client.PubSub) -> None:
        self.pubsub = pubsub
        self._direct = hasattr(select, "poll") and not isinstance(
            pubsub, redis.cluster.ClusterPubSub
        )
        self._sock: Any = None
        self._poller: Any = None
        # True while the parser may hold a reply already read from the socket.
        self._buffered = True

    def next(self) -> dict[str, Any] | None:
        """Return a message that has already arrived, or None (then nothing is buffered)."""
        connection = self.pubsub.connection
        sock = getattr(connection, "_sock", None) if self._direct else None
        # hiredis' reader tells whether it holds a whole reply; the socket whether more came.
        reader: Any = getattr(getattr(connection, "_parser", None), "_reader", None)
        if sock is None or sock is not self._sock or not hasattr(reader, "has_data"):
            message = self.pubsub.get_message(timeout=0)
            self._buffered = message is not None
            return message
        if not (reader.has_data() or _pending(sock) or self._poller.poll(0)):
            self._buffered = False
            return None
        return self._read(connection)

    def wait(self, timeout: float) -> dict[str, Any] | None:
        """Return the next message within timeout seconds, or None."""
        connection = self.pubsub.connection
        sock = getattr(connection, "_sock", None) if self._direct else None
        if sock is None or self._buffered:
            message = self.pubsub.get_message(timeout=timeout)
            self._buffered = message is not None
            return message
        if sock is not self._sock:
            self._poller = select.poll()
            self._poller.register(sock, select.POLLIN)
            self._sock = sock
            _quiet_pushes(connection)
        if not (_pending(sock) or self._poller.poll(math.ceil(timeout * 1000))):
            return None
        return self._read(connection)

    def _read(self, connection: Any) -> dict[str, Any] | None:
        self._buffered = True
        response = connection.read_response(disconnect_on_error=False, push_request=True)
        if response is None:
            return None
        # A published message (every event) is made into the dict handle_message() would
        # return, here: it keeps no state of the subscription's, and its bookkeeping is
        # most of the Python a message costs. Everything else is redis-py's to handle.
        if isinstance(response, list) and len(response) == 3 and response[0] == b"message":
            return {"type": "message", "pattern": None, "channel": response[1], "data": response[2]}
        message: dict[str, Any] | None = self.pubsub.handle_message(response)
        return message


def _as_is(response: Any) -> Any:
    return response


def _quiet_pushes(connection: Any) -> None:
    """Have the connection's parser hand RESP3 pushes (every message) over as they are:
    its own handler, which does the same, first looks up a logger and logs each at debug."""
    parser: Any = getattr(connection, "_parser", None)
    default = getattr(parser, "handle_pubsub_push_response", None)
    if default is not None and getattr(parser, "pubsub_push_handler_func", None) == default:
        parser.set_pubsub_push_handler(_as_is)


def _pending(sock: Any) -> bool:
    """Tell whether a TLS socket holds decrypted bytes, which poll() does not see."""
    pending = getattr(sock, "pending", None)
    return bool(pending is not None and pending())
