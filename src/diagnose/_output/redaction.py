"""Redaction: a value whose name looks like a secret is shown as ``<redacted>``.

Names match case-insensitively, ignoring ``_`` and ``-``, against DEFAULT_IDENTIFIERS,
names ending in SECRET_SUFFIXES, and ``DIAGNOSE_REDACT`` (read at import; ``reload()``).
Expressions never read a secret (``diagnose._safety.redacted_reads``); ``render`` and
``scrub_mapping`` redact what they output.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

__all__ = (
    "DEFAULT_IDENTIFIERS",
    "REDACTED",
    "SECRET_SUFFIXES",
    "is_secret",
    "names",
    "normalise",
    "reload",
    "scrub_mapping",
    "words",
)


# Normalised (lower case, no "_" or "-"). The same identifiers as Datadog's dynamic
# instrumentation redacts by default.
def words(text: str) -> frozenset[str]:
    return frozenset(text.split())


DEFAULT_IDENTIFIERS = words(
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


def names() -> frozenset[str]:
    """Return the names in force (a new object after each reload())."""
    return _names


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


def scrub_mapping(mapping: Mapping[Any, Any]) -> dict[Any, Any]:
    """Return a dict copy of mapping with the value of every secret-named key REDACTED."""
    return {key: REDACTED if is_secret(key) else value for key, value in mapping.items()}
