"""The process's outbox across fork(): a child starts with none of its parent's entries."""

from __future__ import annotations

import os

from diagnose.outbox import OUTBOX, Origin, Outbox


def test_a_forked_child_starts_with_an_empty_closed_outbox(outbox: Outbox) -> None:
    """The parent's entries are the parent's to send: the child holds none until its own
    subscriber opens the outbox."""
    outbox.put(Origin("a", "log"), "a", "parent's", {})
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        os.write(write, f"{len(OUTBOX)} {OUTBOX.enabled}".encode())
        os._exit(0)
    os.close(write)
    answer = os.read(read, 100).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert answer == "0 False"
    assert len(outbox) == 1
