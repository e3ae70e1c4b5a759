"""An exception as data: its fingerprint, its redacted message, and the frames of its
traceback with their locals, captured under the snapshot limits.

Invariants:

- Nothing here keeps a traceback, a frame or a local once it returns: a frame kept alive
  keeps every local of its call alive with it. The fingerprint cache keeps code objects and
  exception types only, and is bounded.
- A fingerprint is the same in every process for one exception type raised along one code
  path: it hashes the type's qualified name and the (file, function, line) of each frame,
  never the message or a value. Files are named relative to the ``sys.path`` entry that
  holds them (``shop/pricing.py``, not ``/srv/venv-3/lib/.../shop/pricing.py``), so hosts
  and virtualenvs with other paths agree.
- Capturing runs no user code (the snapshot walk reads fields without properties or
  ``__repr__``); the message is the exception's ``str()``, the one thing every error
  report shows, with secrets taken out (see ``message``).
"""

from __future__ import annotations

import itertools
import os
import re
import sys
from collections.abc import Iterable
from types import CodeType, TracebackType
from typing import Any

from diagnose._output import snapshot
from diagnose._output.redaction import REDACTED, is_secret
from diagnose._output.render import render
from diagnose._swap.codegen import is_generated

__all__ = (
    "MAX_MESSAGE",
    "Fingerprints",
    "capture_frames",
    "display_path",
    "message",
    "past_wrappers",
    "redact_named_values",
    "scrub",
    "secret_texts",
    "type_name",
)

#: Characters of an exception's message kept, at most.
MAX_MESSAGE = 255
#: Frames whose locals are searched for secrets to take out of a message, at most.
SECRET_FRAMES = 50
#: The shortest secret value taken out of a message verbatim ("1" or "ok" would eat the text).
SHORTEST_SECRET = 4
_REDACTED = "<redacted>"
# `password=hunter2`, `token: abc`, `"api_key": "abc"`: a name and a separator; when the
# name is a secret's, its value runs to the next quote, comma, semicolon, ampersand or
# line end.
_NAME_THEN_SEPARATOR = re.compile(r"""([\w-]+)(['"]?\s*[:=]\s*['"]?)""")
_VALUE_END = re.compile(r"""['",;&\n]""")
_CACHE_SIZE = 1024


def type_name(cls: type) -> str:
    """Return an exception type's qualified name as a traceback shows it: ``KeyError``,
    ``shop.pricing.Declined`` (no module for builtins and ``__main__``)."""
    module = getattr(cls, "__module__", None)
    qualname = getattr(cls, "__qualname__", None) or getattr(cls, "__name__", "?")
    if not isinstance(module, str) or module in ("builtins", "__main__"):
        return str(qualname)
    return f"{module}.{qualname}"


_paths: dict[str, str] = {}


def display_path(filename: str) -> str:
    """Return a source file's name as the fleet agrees on it: relative to the longest
    ``sys.path`` entry that holds it, else its base name; pseudo-files (``<string>``) as
    they are. Cached per file name."""
    known = _paths.get(filename)
    if known is not None:
        return known
    shown = _relative(filename)
    if len(_paths) >= _CACHE_SIZE:
        _paths.clear()
    _paths[filename] = shown
    return shown


def _relative(filename: str) -> str:
    if not filename or filename.startswith("<"):
        return filename
    path = os.path.abspath(filename)
    best = ""
    for entry in sys.path:
        if not isinstance(entry, str):
            continue
        root = os.path.abspath(entry or os.curdir)
        if len(root) > len(best) and path.startswith(root.rstrip(os.sep) + os.sep):
            best = root.rstrip(os.sep)
    shown = path[len(best) + 1 :] if best else os.path.basename(path)
    return shown.replace(os.sep, "/")


def past_wrappers(tb: TracebackType | None) -> TracebackType | None:
    """Return the traceback from the target's own frame inward: without the leading
    frames of the probe's wrapper (and of breakpoint layers)."""
    while tb is not None and is_generated(tb.tb_frame.f_code):
        tb = tb.tb_next
    return tb


def _line(tb: TracebackType) -> int:
    line = tb.tb_lineno
    return line if isinstance(line, int) else 0


class Fingerprints:
    """Fingerprint raises, caching the fingerprint of each code path seen (bounded).

    The cache key is what is cheapest to read from a traceback: the type, and each frame's
    code object by id with the offset of its last instruction (the line is computed on a
    miss only). Each entry keeps its code objects, so that their ids stay theirs.
    """

    __slots__ = ("_known", "size")

    def __init__(self, size: int = _CACHE_SIZE) -> None:
        self.size = size
        # (type, id(code), lasti, ...) -> (fingerprint, the codes, the type)
        self._known: dict[tuple[Any, ...], tuple[str, tuple[CodeType, ...], type]] = {}

    def of(self, cls: type, tb: TracebackType | None) -> str:
        """Return the fingerprint of an exception of type cls with traceback tb, from the
        target's frame inward (the probe's frames, first, are passed over): 16 hex
        characters."""
        tb = past_wrappers(tb)
        path: list[Any] = [id(cls)]
        entry = tb
        while entry is not None:
            path += (id(entry.tb_frame.f_code), entry.tb_lasti)
            entry = entry.tb_next
        key = tuple(path)
        found = self._known.get(key)
        if found is None:
            codes, lines = [], []
            while tb is not None:
                codes.append(tb.tb_frame.f_code)
                lines.append(_line(tb))
                tb = tb.tb_next
            found = (fingerprint(cls, zip(codes, lines, strict=True)), tuple(codes), cls)
            if len(self._known) >= self.size:
                self._known.clear()
            self._known[key] = found
        return found[0]


def fingerprint(cls: type, frames: Iterable[tuple[CodeType, int]]) -> str:
    """Return the fingerprint of an exception type raised along frames (code, line),
    outermost first."""
    import hashlib

    parts = [type_name(cls)]
    for code, line in frames:
        parts.append(f"{display_path(code.co_filename)}\0{code.co_qualname}\0{line}")
    text = "\n".join(parts).encode("utf-8", "replace")
    return hashlib.blake2b(text, digest_size=8).hexdigest()


# --- the message ---------------------------------------------------------------------


def message(exc: BaseException, tb: TracebackType | None = None) -> str:
    """Return an exception's message, redacted, of MAX_MESSAGE characters at most.

    It is ``str(exc)`` (with secret-named keys of dicts among its arguments redacted), in
    which the value after a secret name (``password=...``, ``token: ...``) and the text of
    each secret-named local, item or field of tb's frames are ``<redacted>``.
    """
    try:
        text = _text(exc)
    except Exception as error:
        text = f"<str() of the exception failed: {type(error).__name__}>"
    if tb is not None:
        for secret in sorted(secret_texts(tb), key=len, reverse=True):
            text = text.replace(secret, _REDACTED)
    text = redact_named_values(text)
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 1] + "…"
    return text


def _text(exc: BaseException) -> str:
    if type(exc).__str__ is not BaseException.__str__:
        return str(exc)
    args = exc.args
    if not args:
        return ""
    # As BaseException.__str__, through render(), which redacts inside dicts and lists.
    return render(args[0] if len(args) == 1 else args, 4 * MAX_MESSAGE)


def redact_named_values(text: str) -> str:
    """Return text with the value after each secret name and separator ``<redacted>``:
    ``login failed: password=hunter2`` -> ``login failed: password=<redacted>``."""
    parts: list[str] = []
    pos = 0
    for match in _NAME_THEN_SEPARATOR.finditer(text):
        if match.start() < pos or not is_secret(match.group(1)):
            continue
        end = _VALUE_END.search(text, match.end())
        parts += [text[pos : match.end()], _REDACTED]
        pos = end.start() if end is not None else len(text)
    if not parts:
        return text
    parts.append(text[pos:])
    return "".join(parts)


def secret_texts(tb: TracebackType | None) -> set[str]:
    """Return the texts of the secret-named locals of tb's frames, and of the secret-named
    items of their dicts and fields of their objects (one level down), that are long
    enough to take out of a message: str, bytes and numbers only (no user code runs)."""
    found: set[str] = set()
    tbs = []
    while tb is not None:
        tbs.append(tb)
        tb = tb.tb_next
    for tb in tbs[-SECRET_FRAMES:]:
        try:
            names = tb.tb_frame.f_locals
            for name, value in itertools.islice(names.items(), snapshot.MAX_ITEMS):
                if is_secret(name):
                    _add_text(found, value)
                else:
                    for _key, item in _secret_members(value):
                        _add_text(found, item)
        except Exception:
            continue
    return found


def _secret_members(value: Any) -> Iterable[tuple[str, Any]]:
    """Yield the secret-named items of a dict and fields of an object (no user code)."""
    if type(value) is dict:
        items = value.items()
    else:
        try:
            held = object.__getattribute__(value, "__dict__")
        except Exception:
            return
        if type(held) is not dict:
            return
        items = held.items()
    for key, item in itertools.islice(items, snapshot.MAX_ITEMS):
        if is_secret(key):
            yield key, item


def _add_text(found: set[str], value: Any) -> None:
    kind = type(value)
    if kind is str:
        text = value
    elif kind in (bytes, bytearray):
        text = bytes(value).decode("utf-8", "replace")
    elif kind in (int, float) and value is not REDACTED:
        text = str(value)
    else:
        return
    if len(text) >= SHORTEST_SECRET:
        found.add(text)


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """Return JSON-ready data with every secret text in its strings ``<redacted>`` (a
    secret-named local's value copied into another: ``url = f"...{password}@host"``)."""
    ordered = sorted(secrets, key=len, reverse=True)
    if not ordered:
        return value
    return _scrub(value, ordered)


def _scrub(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, _REDACTED)
        return value
    if isinstance(value, dict):
        return {key: _scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets) for item in value]
    return value


# --- the frames ----------------------------------------------------------------------


def capture_frames(
    tb: TracebackType | None, count: int, max_bytes: int = snapshot.MAX_BYTES
) -> tuple[list[dict[str, Any]], int]:
    """Return the innermost count frames of tb (innermost last), each ``{"function",
    "file", "line", "locals"}``, and how many of them could not be captured whole. The
    file is the code's own file name, as a traceback shows it (the fingerprint uses the
    name the fleet agrees on). The text of a secret-named local (see secret_texts) is
    ``<redacted>`` wherever else it appears among the locals.

    The locals are snapshots (see ``_output.snapshot``) sharing max_bytes, the innermost
    frame served first. A frame whose locals cannot be walked (a local whose fields raise)
    has each local walked alone, those that fail shown as ``<capture failed: TYPE>``.
    """
    target = tb
    tbs: list[TracebackType] = []
    while tb is not None:
        tbs.append(tb)
        tb = tb.tb_next
    chosen = tbs[-count:] if count > 0 else []
    del tbs
    frames: list[dict[str, Any]] = []
    failures = 0
    room = max_bytes
    for entry in reversed(chosen):
        code = entry.tb_frame.f_code
        names, failed = _locals(entry, room)
        failures += failed
        room = max(0, room - len(snapshot.to_json(names)))
        frames.append(
            {
                "function": code.co_qualname,
                "file": code.co_filename,
                "line": _line(entry),
                "locals": names,
            }
        )
    frames.reverse()
    try:
        frames = scrub(frames, secret_texts(target))
    except Exception:
        failures += 1
    return frames, failures


def _locals(tb: TracebackType, room: int) -> tuple[dict[str, Any], int]:
    """Return the snapshot of a traceback frame's locals in room bytes, and 1 if it had to
    be taken a local at a time (or not at all), else 0."""
    if room <= 0:
        return {"@truncated": True}, 0
    try:
        names = dict(tb.tb_frame.f_locals)
    except Exception as exc:
        return {"@error": f"locals unreadable: {type(exc).__name__}"}, 1
    try:
        return snapshot.capture(names, max_bytes=room), 0
    except Exception:
        pass
    out: dict[str, Any] = {}
    for name, value in names.items():
        try:
            part = snapshot.capture({name: value}, max_bytes=room)
        except Exception as exc:
            part = {str(name): f"<capture failed: {type(exc).__name__}>"}
        room -= len(snapshot.to_json(part))
        out.update(part)
        if room <= 0:
            out["@truncated"] = True
            break
    return out, 1
