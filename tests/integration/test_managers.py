"""The process's ProbeManager across fork(): the child's lock, id and background thread."""

from __future__ import annotations

from support.waiting import wait_for


def test_forked_child_gets_its_own_id_lock_and_background_thread() -> None:
    """After fork() the child's manager has a free lock, its own default id, and a new
    apply_in_background thread, even if a parent thread held the lock at the fork."""
    import os
    import warnings

    from diagnose.managers import ProbeManager, default_process_id

    mine = ProbeManager()
    assert mine.process_id == default_process_id()
    mine.apply_in_background(period=60)
    mine.lock.acquire()
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork() with threads, 3.12+
        pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        ok = mine.lock.acquire(timeout=2) and mine.process_id == default_process_id()
        # The thread starts again once fork() has returned (see diagnose.fork).
        ok = ok and wait_for(lambda: mine.apply_thread is not None and mine.apply_thread.is_alive())
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    mine.lock.release()
    os.close(write)
    try:
        assert os.read(read, 1) == b"1"
    finally:
        os.close(read)
        os.waitpid(pid, 0)
        mine.stop_background()
