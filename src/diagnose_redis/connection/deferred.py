"""Send writes now and read their replies later, on a connection held until then.

Invariant: the replies are read before the client's next command of any kind, so writes
stay in order and a failed one is found (and written again) at the latest one heartbeat
later; the connection goes back to the pool before any other command.
"""

from __future__ import annotations

import os
from typing import Any

import redis

__all__ = ("DeferredReply",)


class DeferredReply:
    """Send commands on a connection of a client's pool, and read their replies later.

    Not thread-safe: the caller serialises send() and collect() (the reporter's I/O lock).
    """

    def __init__(self, client: redis.Redis) -> None:
        self._pool = client.connection_pool
        self._connection: Any = None
        self._pid = os.getpid()
        #: what the caller gave with the commands whose replies are unread (None: none are)
        self.unread: Any = None
        self._count = 0

    def send(self, commands: list[list[Any]], about: Any) -> None:
        """Send commands, pipelined; remember about (not None) until collect() reads their
        replies.

        The connection is the one held since the last send, if not released, else one from
        the pool. Raise what redis-py raises if it cannot be sent (the connection is then
        closed and given back).
        """
        self._forked()
        if self.unread is not None:
            raise RuntimeError("collect() the unread reply first")
        if self._connection is None:
            self._connection = self._pool.get_connection()
        connection = self._connection
        try:
            connection.send_packed_command([_pack(commands, connection.encoder)])
        except BaseException:
            self.release()
            raise
        self.unread, self._count = about, len(commands)

    def collect(self) -> tuple[Any, list[Any]]:
        """Read the unread replies, if any; return the about given with them and the
        replies ((None, []) if nothing was unread). The connection stays held for the next
        send(), until release().

        Raise the first refused command's error (ResponseError, once every reply is read)
        or the connection's (the connection is then given back); about is forgotten all the same:
        the caller has it from ``unread``.
        """
        self._forked()
        about, self.unread = self.unread, None
        replies: list[Any] = []
        if about is None:
            return None, replies
        refused: redis.ResponseError | None = None
        try:
            for _ in range(self._count):
                try:
                    replies.append(self._connection.read_response())
                except redis.ResponseError as exc:
                    refused = refused or exc
                    replies.append(exc)
        except BaseException:
            self.release()
            raise
        if refused is not None:
            raise refused
        return about, replies

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


def _pack(commands: list[list[Any]], encoder: Any) -> bytes:
    """Return commands in the protocol's encoding (RESP), one buffer: what redis-py's
    pack_commands() sends, for arguments of str, bytes, int or float, at less cost."""
    encoding, errors = encoder.encoding, encoder.encoding_errors
    parts: list[bytes] = []
    for command in commands:
        parts.append(b"*%d\r\n" % len(command))
        for arg in command:
            data = arg.encode(encoding, errors) if type(arg) is str else _encoded(arg, encoder)
            parts.append(b"$%d\r\n%b\r\n" % (len(data), data))
    return b"".join(parts)


def _encoded(arg: Any, encoder: Any) -> bytes:
    kind = type(arg)
    if kind is bytes:
        return arg
    if kind is int or kind is float:
        return repr(arg).encode()
    return bytes(encoder.encode(arg))  # anything else as redis-py has it (or refuses it)
