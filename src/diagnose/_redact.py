"""Redaction: values whose name looks like a secret are shown as ``<redacted>``.

A probe prints what an engineer asks for, and a value called ``password`` must not end up
in a log line, a tag or a status field. Two layers, because neither alone is enough:

- **In the expression** (``redact_tree``): a read of a name, an attribute, a subscript
  with a constant string key, or a dict display entry with a constant string key, whose
  name is a secret name, is replaced by the ``REDACTED`` sentinel *before compiling*, so
  the secret is never even read (``password``, ``self.api_key``, ``kwargs['token']``,
  ``{'user': u, 'password': p}``, ``headers.get('Authorization')``).
- **In the output** (``render``): a value is turned into the text a log line shows, with
  the value of every dict entry whose key is a secret name replaced by ``<redacted>``, at
  any depth of builtin containers (``result`` being a dict with a ``token`` key).

Names match case-insensitively, ignoring ``_`` and ``-`` (``X-Api-Key``, ``x_api_key``
and ``XAPIKEY`` are all ``xapikey``), against a list that follows the identifiers Datadog's
dynamic instrumentation redacts by default, plus the names ending in one of a few words
that are never anything but a secret (``db_password``, ``github_token``, ``aws_secret``).
``DIAGNOSE_REDACT="a,b"`` adds names (read at import; ``reload()`` reads it again).

This is a guard against showing a secret by accident, not against someone set on
extracting one: a computed key (``kwargs['pass' + 'word']``) or a walk over ``.values()``
reads it. The expression policy (``_policy``) keeps such a person from doing anything
else, and who may publish probes is decided by who may write to Redis.
"""

from __future__ import annotations

import ast
import functools
import os
import secrets
import types
import warnings
from collections.abc import Callable, Mapping
from typing import Any

__all__ = (
    "DEFAULT_IDENTIFIERS",
    "REDACTED",
    "bind_placeholders",
    "compile_redacted",
    "is_secret",
    "normalise",
    "redact_tree",
    "reload",
    "render",
    "scrub_mapping",
)


# Normalised (lower case, no "_" or "-"). The same identifiers as Datadog's dynamic
# instrumentation redacts by default.
def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


DEFAULT_IDENTIFIERS = _words(
    """
    2fa accesstoken aiohttpsession apikey apisecret apisignature appkey applicationkey
    auth authorization authtoken ccnumber certificatepin cipher clientid clientsecret
    connectionstring connectsid cookie credentials creditcard csrf csrftoken cvv
    databaseurl dburl encryptionkey encryptionkeyid geolocation gpgkey ipaddress jti jwt
    licensekey masterkey mysqlpwd nonce oauth oauthtoken otp passhash passwd password
    passwordb pemfile pgpkey phpsessid pin pincode pkcs8 privatekey publickey pwd
    recaptchakey refreshtoken routingnumber salt secret secretkey secrettoken
    securityanswer securitycode securityquestion serviceaccountcredentials session
    sessionid sessionkey setcookie signature signaturekey sshkey ssn symfony token
    transactionid twiliotoken usersession voterid xapikey xauthtoken xcsrftoken
    xforwardedfor xrealip xsrf xsrftoken
    """
)
# A normalised name ending in one of these is a secret too: "dbpassword", "githubtoken".
# Only words that name nothing but a secret: "key" or "session" alone would catch far
# too much ("cachekey", "dbsession").
SECRET_SUFFIXES = ("password", "passwd", "secret", "token", "apikey", "privatekey")

_ENV = "DIAGNOSE_REDACT"


class _Redacted:
    """The value shown where a secret would be: its str, repr and format are <redacted>."""

    __slots__ = ()
    _instance: _Redacted | None = None

    def __new__(cls) -> _Redacted:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<redacted>"

    __str__ = __repr__

    def __format__(self, spec: str) -> str:
        try:
            return format("<redacted>", spec)
        except (TypeError, ValueError):  # a numeric spec such as ".2f"
            return "<redacted>"

    def __reduce__(self) -> str:
        return "REDACTED"  # pickles as a reference to this module's REDACTED

    def __copy__(self) -> _Redacted:
        return self

    def __deepcopy__(self, memo: Any) -> _Redacted:
        return self


REDACTED = _Redacted()

_names: frozenset[str] = DEFAULT_IDENTIFIERS


def normalise(name: str) -> str:
    """Return name as the list holds it: lower case, without "_" and "-"."""
    return name.lower().replace("_", "").replace("-", "")


def reload(env: Mapping[str, str] | None = None) -> frozenset[str]:
    """Read DIAGNOSE_REDACT (from env, default os.environ) again; return the names in force."""
    global _names
    value = (os.environ if env is None else env).get(_ENV, "")
    extra = {normalise(part.strip()) for part in value.split(",")}
    extra.discard("")
    _names = DEFAULT_IDENTIFIERS | extra
    _is_secret_str.cache_clear()
    return _names


@functools.lru_cache(maxsize=4096)
def _is_secret_str(name: str) -> bool:
    norm = normalise(name)
    return norm in _names or norm.endswith(SECRET_SUFFIXES)


def is_secret(name: object) -> bool:
    """Return True when name is a str that names a secret (see the module's docstring)."""
    return isinstance(name, str) and _is_secret_str(str(name))


reload()


# --- in the expression ------------------------------------------------------------------

# Where redact_tree puts a secret, it puts a call of this string constant (a call, so that
# the compiler cannot fold it into a neighbouring constant); bind_placeholders() swaps it
# for a function returning REDACTED in the compiled code. The policy's guards use the
# same prefix. It holds a random part, so that no expression can spell a placeholder (not
# even by letting the compiler fold 'a' + 'b' into one), and the policy refuses any
# string constant holding the prefix's fixed part.
PLACEHOLDER_MARK = "\x00diagnose:"
PLACEHOLDER_PREFIX = f"{PLACEHOLDER_MARK}{secrets.token_hex(8)}:"
PLACEHOLDER = PLACEHOLDER_PREFIX + "redacted"


def _redacted() -> _Redacted:
    return REDACTED


def _secret_read(node: ast.AST) -> ast.expr:
    return ast.copy_location(ast.Call(func=ast.Constant(PLACEHOLDER), args=[], keywords=[]), node)


def _secret_key(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and is_secret(node.value)


class _Redactor(ast.NodeTransformer):
    def visit_Name(self, node: ast.Name) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and is_secret(node.id):
            return _secret_read(node)
        return node

    def visit_Attribute(self, node: ast.Attribute) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and is_secret(node.attr):
            return _secret_read(node)
        return self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> ast.AST:
        if isinstance(node.ctx, ast.Load) and _secret_key(node.slice):
            return _secret_read(node)
        return self.generic_visit(node)

    def visit_Dict(self, node: ast.Dict) -> ast.AST:
        self.generic_visit(node)
        node.values = [
            _secret_read(value) if _secret_key(key) else value
            for key, value in zip(node.keys, node.values, strict=True)
        ]
        return node

    def visit_Call(self, node: ast.Call) -> ast.AST:
        # x.get('password'), x.get('password', default): a mapping read by its key.
        func = node.func
        if (
            isinstance(func, ast.Attribute)
            and func.attr == "get"
            and node.args
            and _secret_key(node.args[0])
        ):
            return _secret_read(node)
        self.generic_visit(node)
        # dict(password=p): the keyword names the entry.
        for keyword in node.keywords:
            if keyword.arg is not None and is_secret(keyword.arg):
                keyword.value = _secret_read(keyword.value)
        return node


def redact_tree(tree: ast.AST) -> ast.AST:
    """Replace, in place, every read of a secret-named value by a placeholder; return tree.

    Compile the result with ``compile_redacted`` (or compile it and pass the code to
    ``bind_placeholders``) so that the placeholders become REDACTED.
    """
    result = _Redactor().visit(tree)
    ast.fix_missing_locations(result)
    return result


def bind_placeholders(code: types.CodeType, values: Mapping[str, Any]) -> types.CodeType:
    """Return code with every string constant that is a key of values replaced by its value,
    in nested code objects (comprehensions) and constant tuples and frozensets too."""

    def swap(const: Any) -> Any:
        if type(const) is str:
            return values.get(const, const)
        if isinstance(const, types.CodeType):
            return bind_placeholders(const, values)
        if type(const) is tuple:
            return tuple(swap(c) for c in const)
        if type(const) is frozenset:
            return frozenset(swap(c) for c in const)
        return const

    consts = tuple(swap(c) for c in code.co_consts)
    if all(a is b for a, b in zip(consts, code.co_consts, strict=True)):
        return code
    return code.replace(co_consts=consts)


def compile_quietly(tree: ast.Expression, filename: str) -> types.CodeType:
    """compile() without the SyntaxWarning a call of a string constant (a placeholder) gives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        return compile(tree, filename, "eval")


REDACTION_CONSTANTS: dict[str, Callable[[], Any]] = {PLACEHOLDER: _redacted}


def compile_redacted(expr: str | ast.Expression, filename: str = "<redacted>") -> types.CodeType:
    """Compile an expression for eval() with its secret reads replaced by REDACTED.

    This applies no other policy: the expression policy's compile does this and more.
    """
    tree = ast.parse(expr.strip(), mode="eval") if isinstance(expr, str) else expr
    redacted = redact_tree(tree)
    assert isinstance(redacted, ast.Expression)
    return bind_placeholders(compile_quietly(redacted, filename), REDACTION_CONSTANTS)


# --- in the output ----------------------------------------------------------------------


class _Full(Exception):
    """The rendered text has reached its limit: stop walking."""


_CYCLE: dict[type, str] = {
    dict: "{...}",
    list: "[...]",
    tuple: "(...)",
    set: "set(...)",
    frozenset: "frozenset(...)",
}
_BRACKETS: dict[type, tuple[str, str]] = {
    list: ("[", "]"),
    tuple: ("(", ")"),
    set: ("{", "}"),
    frozenset: ("frozenset({", "})"),
}
_PLAIN_REPR: dict[type, Any] = {
    dict: dict.__repr__,
    list: list.__repr__,
    tuple: tuple.__repr__,
    set: set.__repr__,
    frozenset: frozenset.__repr__,
}


# Exact types whose str() holds nothing to redact (the common values of a log line).
_SCALARS = frozenset({int, float, bool, type(None), complex})


def _container_kind(value: Any) -> type | None:
    """Return the builtin container type whose repr value uses, or None."""
    for base, rep in _PLAIN_REPR.items():
        if isinstance(value, base) and type(value).__repr__ is rep:
            return base
    return None


class _Writer:
    __slots__ = ("active", "limit", "parts", "size")

    def __init__(self, limit: int) -> None:
        self.parts: list[str] = []
        self.size = 0
        self.limit = limit
        self.active: set[int] = set()  # ids of the containers being written (cycles)

    def add(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > self.limit:
            raise _Full

    def room(self) -> int:
        return self.limit - self.size + 1

    def scalar(self, value: Any) -> None:
        if value is REDACTED:
            self.add("<redacted>")
        elif type(value) in (str, bytes) and len(value) > self.room():
            # Never repr a huge string to keep its first characters.
            self.add(repr(value[: self.room()]))
        else:
            self.add(repr(value))

    def value(self, value: Any) -> None:
        kind = _container_kind(value)
        if kind is None:
            self.scalar(value)
            return
        if id(value) in self.active:
            self.add(_CYCLE[kind])
            return
        self.active.add(id(value))
        try:
            self.container(kind, value)
        finally:
            self.active.discard(id(value))

    def container(self, kind: type, value: Any) -> None:
        if kind is dict:
            self.add("{")
            for i, (key, item) in enumerate(value.items()):
                if i:
                    self.add(", ")
                self.value(key)
                self.add(": ")
                if is_secret(key):
                    self.add("<redacted>")
                else:
                    self.value(item)
            self.add("}")
            return
        if kind in (set, frozenset) and not value:
            self.add(f"{kind.__name__}()")
            return
        opening, closing = _BRACKETS[kind]
        self.add(opening)
        for i, item in enumerate(value):
            if i:
                self.add(", ")
            self.value(item)
        if kind is tuple and len(value) == 1:
            self.add(",")
        self.add(closing)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 3, 0)] + "..."


def render(value: Any, limit: int = 2000) -> str:
    """Return the text a log line shows for value, at most limit characters.

    It is ``str(value)`` (cut to limit, ending in "..." when cut), except that inside
    builtin containers (dict, list, tuple, set, frozenset, and subclasses that keep their
    repr), at any depth, a dict entry whose key is a secret name shows ``<redacted>`` as
    its value, and REDACTED shows ``<redacted>``. The walk stops once limit characters are
    written, so a huge value costs no more than its first limit characters; a container
    holding itself shows ``[...]`` as str() does.
    """
    kind = type(value)
    if kind is str:
        return _cut(value, limit)
    if kind in _SCALARS:
        return _cut(str(value), limit)
    if kind is bytes:  # never the text of huge bytes, to keep its first characters
        return _cut(str(value[: limit + 1]), limit)
    if value is REDACTED:
        return _cut("<redacted>", limit)
    if _container_kind(value) is None:
        return _cut(str(value), limit)
    writer = _Writer(limit)
    try:
        writer.value(value)
    except _Full:
        pass
    return _cut("".join(writer.parts), limit)


def scrub_mapping(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """Return a dict copy of mapping with the value of every secret-named key REDACTED."""
    return {key: REDACTED if is_secret(key) else value for key, value in mapping.items()}
