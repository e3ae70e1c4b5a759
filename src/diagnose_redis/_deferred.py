"""Send a write now and read its reply later, on a connection held for it.

After a publish every process of a fleet writes its status at once. Waiting for the reply
costs each one a second wake-up in that burst (the first is the message), and on a host with
many processes per core those wake-ups delay the applies of the processes still waiting
(the fleet bench: about a sixth of their CPU per publish). The status reporter instead sends
its one-command writes on a connection of its own and reads the reply before its next
command of any kind: the next apply's write, or the heartbeat, at most HEARTBEAT_SECONDS
later. A failed write is found then, and retried, instead of at once; it is never lost.

Reading the reply before every other command also keeps the writes in order: Redis executes
the held connection's write before anything sent after it on another connection.
"""

from __future__ import annotations

import os
from typing import Any

import redis

__all__ = ("DeferredReply",)


class DeferredReply:
    """One connection of a client's pool, held to send commands whose replies are read later.

    Not thread-safe: the caller serialises send() and collect() (the reporter's I/O lock).
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._connection: Any = None
        self._pid = 0
        #: what the caller gave with the command whose reply is unread (None: nothing unread)
        self.unread: Any = None

    def send(self, args: list[Any], about: Any) -> None:
        """Send a command; remember about (not None) until collect() reads its reply.

        Raise what redis-py raises if it cannot be sent (the connection is then closed).
        """
        self._forked()
        if self.unread is not None:
            raise RuntimeError("collect() the unread reply first")
        if self._connection is None:
            self._connection = self._pool.get_connection()
        self._connection.send_command(*args)
        self.unread = about

    def collect(self) -> Any:
        """Read the unread reply, if any, and return its about (None if nothing was unread).

        Raise the command's error (ResponseError) or the connection's; about is then
        forgotten all the same: the caller still has it from ``unread``.
        """
        self._forked()
        about, self.unread = self.unread, None
        if about is not None:
            self._connection.read_response()
        return about

    def close(self) -> None:
        """Give the connection back to the pool (whatever is unread is dropped with it)."""
        self._forked()
        connection, self._connection = self._connection, None
        self.unread = None
        if connection is not None:
            connection.disconnect()
            self._pool.release(connection)

    def _forked(self) -> None:
        # A child process after fork() has a connection of its own: it must neither write
        # on its parent's socket nor read the reply the parent is owed.
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._connection = None
            self.unread = None
