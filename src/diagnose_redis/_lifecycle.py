"""One subscriber per process: start() and stop(), its settings, what happens at fork and exit.

At fork the child starts a subscriber of its own on the manager it inherited: its probes
are attached already, so it reports them as applied under its own id as soon as it is
connected, without applying anything again. The parent notes that it forked (see
``_status.family``).
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping
from typing import Any

from diagnose.exceptions import one_line
from diagnose.fork import SERVICES, STATE, after_fork_in_child
from diagnose.managers import default_process_id
from diagnose_redis._status.alerts import Alerts
from diagnose_redis._status.family import forked
from diagnose_redis._subscriber.listener import Subscriber
from diagnose_redis._subscriber.mirror import Mirror, rekey_applied
from diagnose_redis.exceptions import KeyringError
from diagnose_redis.protocol import ApprovalPolicy, keyring
from diagnose_redis.protocol.labels import parse_labels

__all__ = ("start", "stop")

log = logging.getLogger("diagnose_redis")

_lock = threading.Lock()
_current: Subscriber | None = None
_orphans: list[Subscriber] = []
# In a forked child, until its own subscriber starts: the parent's.
_parent: Subscriber | None = None


def start(
    url: str | None = None,
    *,
    process_id: str | None = None,
    prefix: str | None = None,
    secret: str | bytes | None = None,
    manager: Any = None,
    labels: Mapping[str, Any] | None = None,
    require_approval: str | ApprovalPolicy | None = None,
) -> Subscriber:
    """Start this process's subscriber (once: a second call returns the running one).

    labels (default: DIAGNOSE_LABELS, ``"name=value,..."``) are what a spec's select
    chooses processes by, with ``process`` and ``host``, which every process has.
    secret (default: DIAGNOSE_SECRET) is a bare secret or ``KEYID:SECRET,...``;
    require_approval (default: DIAGNOSE_REQUIRE_APPROVAL) the instrument types, or
    ``all``, that apply only when signed by two different keys.
    """
    global _current
    with _lock:
        if _current is not None and _current.running and _current.pid == os.getpid():
            return _current
        env = os.environ
        given = process_id or env.get("DIAGNOSE_PROCESS_ID") or None
        url = url or env.get("DIAGNOSE_REDIS_URL") or "redis://localhost:6379/0"
        if labels is None:
            try:
                labels = parse_labels(env.get("DIAGNOSE_LABELS"))
            except ValueError as exc:
                # Never raise into the host: without its labels, the process is chosen
                # only by specs that select no label of its own.
                labels = {}
                Alerts(url, given or default_process_id()).say(f"DIAGNOSE_LABELS ignored: {exc}")
        policy = _approval_policy(require_approval, url, given)
        try:
            ring = keyring(secret if secret is not None else env.get("DIAGNOSE_SECRET") or None)
        except KeyringError as exc:
            # Never raise into the host, and never run unsigned when signing was asked for.
            failed = _Failed(url, process_id=given or default_process_id(), error=exc)
            Alerts(url, failed.process_id).say(
                f"DIAGNOSE_SECRET cannot be read ({exc}); fleet probes do not apply in this "
                "process; fix it and restart"
            )
            _current = failed
            return failed
        subscriber: Subscriber
        try:
            subscriber = Subscriber(
                url,
                process_id=given or default_process_id(),
                prefix=prefix or env.get("DIAGNOSE_PREFIX") or "diagnose",
                secret=ring,
                manager=manager,
                explicit_id=given is not None,
                labels=labels,
                require_approval=policy,
            )
            subscriber.start()
        except Exception as exc:
            # Never raise into the host: hand back a stopped subscriber that says why, and
            # tell a person (the host runs on without fleet probes).
            subscriber = _Failed(url, process_id=given or default_process_id(), error=exc)
            Alerts(url, subscriber.process_id).failed(exc)
        _current = subscriber
        return subscriber


def _approval_policy(
    given: str | ApprovalPolicy | None, url: str, process_id: str | None
) -> ApprovalPolicy:
    """Read the two-person rule's setting; one that cannot be read holds every type."""
    if isinstance(given, ApprovalPolicy):
        return given
    text = given if given is not None else os.environ.get("DIAGNOSE_REQUIRE_APPROVAL")
    try:
        return ApprovalPolicy.parse(text)
    except ValueError as exc:
        Alerts(url, process_id or default_process_id()).say(
            f"DIAGNOSE_REQUIRE_APPROVAL ignored ({exc}); every spec needs two keys' signatures"
        )
        return ApprovalPolicy(everything=True)


class _Failed(Subscriber):
    """A subscriber that could not start (a bad URL, say): stopped, with the error."""

    def __init__(self, url: str, *, process_id: str, error: BaseException) -> None:
        self.url = url
        self.process_id = process_id
        self.pid = os.getpid()
        self._failure = one_line(error)
        self.stopped = threading.Event()
        self.stopped.set()
        self.connected = threading.Event()
        self.prefix = ""
        self.mirror = Mirror(None, process_id)

    @property
    def error(self) -> str | None:
        """Why it could not start."""
        return self._failure

    @property
    def errors(self) -> int:
        """None while applying: it never applied."""
        return 0

    def stop(self, timeout: float = 3.0) -> None:
        """Do nothing: it never started."""


@after_fork_in_child(STATE)
def _forget_parent_in_child() -> None:
    """In fork(): the parent's subscriber is not the child's (its threads are gone)."""
    global _current, _lock, _parent
    _lock = threading.Lock()
    parent, _current, _parent = _current, None, None
    if parent is None or not parent.running:
        return
    # Keep the parent's objects alive, untouched: closing their sockets here could shut
    # down the parent's connections.
    _orphans.append(parent)
    _parent = parent
    try:
        lock = parent.manager.lock
        if lock.acquire(blocking=False):
            lock.release()
        else:
            parent.manager.lock = threading.RLock()
    except Exception as exc:
        log.debug("diagnose_redis could not check its manager's lock after fork: %s", exc)


@after_fork_in_child(SERVICES)
def _restart_in_child() -> None:
    """Once fork() has returned: start the child's own subscriber, under its own id, on
    the parent's manager (unless the child started one of its own meanwhile)."""
    global _current, _parent
    with _lock:
        parent, _parent = _parent, None
        if parent is None or _current is not None:
            return
        try:
            # A configured id is the child's too: its claim finds the parent holding it.
            process_id = parent.identity.wanted if parent.explicit_id else default_process_id()
            child = Subscriber(
                parent.url,
                process_id=process_id,
                prefix=parent.prefix,
                secret=parent.secret,
                manager=parent.manager,
                explicit_id=parent.explicit_id,
                labels=parent.labels,
                require_approval=parent.verifier.policy,
            )
            with parent.manager.lock:
                rekey_applied(parent.manager, parent.process_id, process_id)
                child.mirror.owned = set(parent.owned)
            _current = child.start()
        except Exception as exc:
            log.debug("diagnose_redis could not restart after fork: %s", exc)


def _forked_in_parent() -> None:
    forked.after_in_parent()
    subscriber = _current
    if subscriber is not None and subscriber.running and subscriber.pid == os.getpid():
        subscriber.reporter.poke()


def stop(timeout: float = 1.0) -> None:
    """Stop this process's subscriber, if one runs, removing its status at once.

    For the shutdown hooks of servers that end their workers without running exit handlers
    (Celery ``worker_process_shutdown``, gunicorn ``worker_exit``); never raises.
    """
    subscriber = _current
    try:
        if subscriber is not None and subscriber.running and subscriber.pid == os.getpid():
            subscriber.stop(timeout=timeout)
    except Exception as exc:
        log.debug("diagnose_redis could not stop: %s", exc)


# Not in diagnose.fork, which resets state in children only: this runs in the parent.
os.register_at_fork(before=forked.before, after_in_parent=_forked_in_parent)
atexit.register(stop)
