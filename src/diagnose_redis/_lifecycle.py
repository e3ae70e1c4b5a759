"""One subscriber per process: start() and stop(), its settings, what happens at fork and exit.

At fork the child starts a subscriber of its own on the manager it inherited: its probes
are attached already, so it reports them as applied under its own id as soon as it is
connected, without applying anything again. The parent notes that it forked (see
``_status.family``).

Where the server around the process says to wait (``_servers``: a process gevent is about
to patch, a uWSGI master), start() hands back a waiting subscriber, which starts the real
one when the time comes (the patch done, uWSGI's fork). redis-py (which imports ssl) is
imported only then: a gevent patch that comes after it warns that ssl was imported first.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from diagnose import gevent_patch
from diagnose.exceptions import one_line
from diagnose.fork import SERVICES, STATE, after_fork_in_child, run_child_handlers_once
from diagnose.managers import default_process_id
from diagnose_redis import _servers
from diagnose_redis._status.family import forked
from diagnose_redis.exceptions import KeyringError
from diagnose_redis.protocol import ApprovalPolicy, keyring
from diagnose_redis.protocol.labels import parse_labels

if TYPE_CHECKING:
    from diagnose_redis._subscriber.listener import Subscriber

__all__ = ("start", "stop")

log = logging.getLogger("diagnose_redis")

_lock = threading.Lock()
_current: Any = None
_orphans: list[Any] = []
# In a forked child, until its own subscriber starts: the parent's.
_parent: Any = None


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
    settings = {
        "url": url,
        "process_id": process_id,
        "prefix": prefix,
        "secret": secret,
        "manager": manager,
        "labels": labels,
        "require_approval": require_approval,
    }
    with _lock:
        if _current is not None and _current.running and _current.pid == os.getpid():
            return _current  # type: ignore[no-any-return]
        reason = _servers.wait_reason()
        if reason is not None:
            waiting = _Waiting(settings, reason)
            _current = waiting
            waiting.arm()
            return waiting  # type: ignore[return-value]
        _current = _start_now(settings)
        return _current  # type: ignore[no-any-return]


def _start_now(settings: Mapping[str, Any]) -> Subscriber:
    """Start a subscriber with start()'s settings (hold _lock)."""
    from diagnose_redis._status.alerts import Alerts
    from diagnose_redis._subscriber.listener import Subscriber

    env = os.environ
    given = settings["process_id"] or env.get("DIAGNOSE_PROCESS_ID") or None
    url = settings["url"] or env.get("DIAGNOSE_REDIS_URL") or "redis://localhost:6379/0"
    labels = settings["labels"]
    if labels is None:
        try:
            labels = parse_labels(env.get("DIAGNOSE_LABELS"))
        except ValueError as exc:
            # Never raise into the host: without its labels, the process is chosen
            # only by specs that select no label of its own.
            labels = {}
            Alerts(url, given or default_process_id()).say(f"DIAGNOSE_LABELS ignored: {exc}")
    policy = _approval_policy(settings["require_approval"], url, given)
    secret = settings["secret"]
    try:
        ring = keyring(secret if secret is not None else env.get("DIAGNOSE_SECRET") or None)
    except KeyringError as exc:
        # Never raise into the host, and never run unsigned when signing was asked for.
        failed = _failed(url, given or default_process_id(), exc)
        Alerts(url, failed.process_id).say(
            f"DIAGNOSE_SECRET cannot be read ({exc}); fleet probes do not apply in this "
            "process; fix it and restart"
        )
        return failed
    try:
        subscriber = Subscriber(
            url,
            process_id=given or default_process_id(),
            prefix=settings["prefix"] or env.get("DIAGNOSE_PREFIX") or "diagnose",
            secret=ring,
            manager=settings["manager"],
            explicit_id=given is not None,
            labels=labels,
            require_approval=policy,
        )
        _greenlet_safe_lock(subscriber.manager)
        subscriber.start()
    except Exception as exc:
        # Never raise into the host: hand back a stopped subscriber that says why, and
        # tell a person (the host runs on without fleet probes).
        subscriber = _failed(url, given or default_process_id(), exc)
        Alerts(url, subscriber.process_id).failed(exc)
    _on_exit()
    return subscriber


def _approval_policy(
    given: str | ApprovalPolicy | None, url: str, process_id: str | None
) -> ApprovalPolicy:
    """Read the two-person rule's setting; one that cannot be read holds every type."""
    from diagnose_redis._status.alerts import Alerts

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


def _greenlet_safe_lock(manager: Any) -> None:
    """Under gevent, give the manager a lock of gevent's: a real RLock made before the patch
    lets every greenlet in at once (one thread), and blocks the hub when it must wait."""
    if not gevent_patch.patched():
        return
    lock = manager.lock
    if lock.acquire(blocking=False):
        lock.release()
        manager.lock = threading.RLock()


_exit_hooks = False


def _on_exit() -> None:
    """Stop the subscriber however the process leaves: atexit (registered at import), a
    default-action SIGTERM, uWSGI's worker exit."""
    global _exit_hooks
    if _exit_hooks:
        return
    _exit_hooks = True
    _servers.chain_sigterm(stop)
    _servers.on_raise_sigterm(stop)
    _servers.on_uwsgi_exit(stop)


class _Waiting:
    """start()'s answer where the server says to wait: starts the real subscriber later."""

    def __init__(self, settings: Mapping[str, Any], reason: str) -> None:
        self.settings = dict(settings)
        self.reason = reason
        self.pid = os.getpid()
        self.process_id = settings["process_id"] or os.environ.get("DIAGNOSE_PROCESS_ID") or ""
        self.url = settings["url"] or os.environ.get("DIAGNOSE_REDIS_URL") or ""
        self.prefix = settings["prefix"] or os.environ.get("DIAGNOSE_PREFIX") or "diagnose"
        self.stopped = threading.Event()
        self.connected = threading.Event()
        self.error: str | None = None
        self.errors = 0

    @property
    def running(self) -> bool:
        """True until stop() (it will start)."""
        return not self.stopped.is_set()

    def arm(self) -> None:
        """Register what starts the real subscriber."""
        if self.reason == "gevent":
            gevent_patch.when_patched(self.go, fallback=self._unpatched_may_start)
        elif self.reason == "uwsgi master":
            _servers.on_uwsgi_fork(self.go)

    def _unpatched_may_start(self) -> bool:
        # No patch came: start as usual, unless this is a pre-fork parent by now (a
        # gunicorn master of gevent workers: they start their own once patched).
        return os.getpid() == self.pid and not forked.count()

    def go(self) -> None:
        """Start the real subscriber now, in this process (a forked child too), unless
        stopped or another runs."""
        global _current
        # uWSGI forks from C: the at-fork handlers (fresh locks) have not run in its workers.
        run_child_handlers_once()
        with _lock:
            if self.stopped.is_set() or _current is not self:
                return
            _current = _start_now(self.settings)

    def stop(self, timeout: float = 3.0) -> None:
        """Never start."""
        self.stopped.set()

    def __repr__(self) -> str:
        return f"<Subscriber waiting ({self.reason}) {self.process_id!r}>"


def _failed(url: str, process_id: str, error: BaseException) -> Subscriber:
    """Return a subscriber that could not start (a bad URL, say): stopped, with the error."""
    from diagnose_redis._subscriber.listener import Subscriber
    from diagnose_redis._subscriber.mirror import Mirror

    class _Failed(Subscriber):
        def __init__(self) -> None:
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

    return _Failed()


@after_fork_in_child(STATE)
def _forget_parent_in_child() -> None:
    """In fork(): the parent's subscriber is not the child's (its threads are gone)."""
    global _current, _lock, _parent
    _lock = threading.Lock()
    parent, _current, _parent = _current, None, None
    if isinstance(parent, _Waiting):
        _current = parent  # it still waits, for the child's own patch or fork hook
        return
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
    waiting = _current if isinstance(_current, _Waiting) else None
    if waiting is not None and waiting.reason == "gevent" and not gevent_patch.about_to_patch():
        waiting.go()  # SERVICES run once the patch is done (or none came)
        return
    with _lock:
        parent, _parent = _parent, None
        if parent is None or _current is not None:
            return
        try:
            # A configured id is the child's too: its claim finds the parent holding it.
            from diagnose_redis._subscriber.listener import Subscriber

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
            from diagnose_redis._subscriber.mirror import rekey_applied

            with parent.manager.lock:
                rekey_applied(parent.manager, parent.process_id, process_id)
                child.mirror.owned = set(parent.owned)
            _greenlet_safe_lock(parent.manager)
            _current = child.start()
        except Exception as exc:
            log.debug("diagnose_redis could not restart after fork: %s", exc)


def _forked_in_parent() -> None:
    forked.after_in_parent()
    subscriber = _current
    if (
        subscriber is not None
        and not isinstance(subscriber, _Waiting)
        and subscriber.running
        and subscriber.pid == os.getpid()
    ):
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
