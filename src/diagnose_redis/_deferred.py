"""Send a write now and read its reply later, on a connection held until then.

After a publish every process of a fleet writes its status at once. Waiting for the reply
costs each one a second wake-up in that burst (the first is the message), and on a host with
many processes per core those wake-ups delay the applies of the processes still waiting
(the fleet bench: about a sixth of their CPU per publish). The status reporter instead sends
its one-command writes on a connection taken from the client's pool, and reads the reply
before its next command of any kind: the next apply's write (on the same connection), or the
heartbeat, at most HEARTBEAT_SECONDS later. The connection goes back to the pool before any
other command of the client (the heartbeat's, the listener's own), so that the pool need
not open a second one meanwhile. A failed write is found then, and retried, instead of at
once; it is never lost.

Reading the reply before the next command also keeps the writes in order: Redis executes
the held connection's write before anything sent after it on another connection.
"""

from __future__ import annotations

import os
from typing import Any

import redis

__all__ = ("DeferredReply",)


class DeferredReply:
    """Send a command on a connection of a client's pool, and read its reply later.

    Not thread-safe: the caller serialises send() and collect() (the reporter's I/O lock).
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._connection: Any = None
        self._pid = os.getpid()
        #: what the caller gave with the command whose reply is unread (None: nothing unread)
        self.unread: Any = None

    def send(self, args: list[Any], about: Any) -> None:
        """Send a command; remember about (not None) until collect() reads its reply.

        The connection is the one held since the last send, if not released, else one from
        the pool. Raise what redis-py raises if it cannot be sent (the connection is then
        closed and given back).
        """
        self._forked()
        if self.unread is not None:
            raise RuntimeError("collect() the unread reply first")
        if self._connection is None:
            self._connection = self._pool.get_connection()
        try:
            self._connection.send_command(*args)
        except BaseException:
            self.release()
            raise
        self.unread = about

    def collect(self) -> Any:
        """Read the unread reply, if any, and return its about (None if nothing was unread).
        The connection stays held for the next send(), until release().

        Raise the command's error (ResponseError) or the connection's (the connection is
        then given back); about is forgotten all the same: the caller has it from ``unread``.
        """
        self._forked()
        about, self.unread = self.unread, None
        if about is not None:
            try:
                self._connection.read_response()
            except redis.ResponseError:
                raise
            except BaseException:
                self.release()
                raise
        return about

    def release(self) -> None:
        """Give the connection back to the pool, for others to use: after collect(), before
        any command of the same client (one connection serves both)."""
        self._forked()
        if self.unread is not None:
            raise RuntimeError("collect() the unread reply first")
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool.release(connection)

    def _forked(self) -> None:
        # A child process after fork() must not read the reply its parent is owed, nor write
        # on its parent's socket (redis-py gives the child a pool of its own).
        if self._pid != os.getpid():
            self._pid = os.getpid()
            self._connection = None
            self.unread = None
