"""Redaction: secret-named values are shown as <redacted>, in expressions (never
even read) and in rendered output (at any depth of builtin containers)."""

from __future__ import annotations

import collections
import copy
import pickle
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from diagnose._output import redaction
from diagnose._output.redaction import DEFAULT_IDENTIFIERS, REDACTED, is_secret, scrub_mapping
from diagnose._output.render import render
from diagnose._safety.redacted_reads import compile_redacted, redact_tree


@pytest.fixture(autouse=True)
def default_list(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts and ends with the default list (no DIAGNOSE_REDACT)."""
    monkeypatch.delenv("DIAGNOSE_REDACT", raising=False)
    redaction.reload()
    yield
    monkeypatch.delenv("DIAGNOSE_REDACT", raising=False)
    redaction.reload()


# --- the list and the matching ------------------------------------------------------------------


def test_default_list_follows_the_usual_identifiers() -> None:
    """The default redaction list holds the usual secret identifiers, normalised."""
    assert 80 <= len(DEFAULT_IDENTIFIERS) <= 90
    usual = {"password", "passwd", "secret", "token", "apikey", "authorization", "cookie"}
    usual |= {"sessionid", "csrftoken", "privatekey", "accesstoken", "refreshtoken"}
    usual |= {"clientsecret", "xapikey", "setcookie", "jwt"}
    assert usual <= DEFAULT_IDENTIFIERS
    assert all(name == redaction.normalise(name) for name in DEFAULT_IDENTIFIERS)


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "PASSWORD",
        "Password",
        "pass_word",
        "Authorization",
        "AUTHORIZATION",
        "authorization",
        "api_key",
        "api-key",
        "ApiKey",
        "X_Api_Key",
        "x-api-key",
        "X-API-KEY",
        "csrf_token",
        "Set-Cookie",
        "session_id",
        "client_secret",
        # names ending in a word that is never anything but a secret
        "db_password",
        "github_token",
        "AWS_SECRET",
        "stripe_api_key",
        "ssh_private_key",
    ],
)
def test_secret_names_match_ignoring_case_and_separators(name: str) -> None:
    """A secret name matches whatever its case, underscores and dashes."""
    assert is_secret(name)


@pytest.mark.parametrize(
    "name",
    ["user", "discount", "key", "cache_key", "tokens", "max_tokens", "api_key_id", "x", ""],
)
def test_other_names_do_not_match(name: str) -> None:
    """Only whole names match (and the few suffixes): "api_key_id" is an id, not a key."""
    assert not is_secret(name)


def test_non_strings_are_never_secret() -> None:
    """Only strings can be secret names."""
    assert not is_secret(3)
    assert not is_secret(None)
    assert not is_secret(b"password")
    assert not is_secret(("password",))


def test_diagnose_redact_adds_names(monkeypatch: pytest.MonkeyPatch) -> None:
    """DIAGNOSE_REDACT="a,b" adds names, normalised the same way; reload() reads it again."""
    assert not is_secret("customerEmail")
    monkeypatch.setenv("DIAGNOSE_REDACT", "customer_email, Phone-Number,,")
    names = redaction.reload()
    assert "customeremail" in names and "phonenumber" in names
    assert is_secret("customerEmail") and is_secret("PHONE_NUMBER")
    assert is_secret("password")
    monkeypatch.delenv("DIAGNOSE_REDACT")
    redaction.reload()
    assert not is_secret("customerEmail")


def test_reload_takes_a_mapping() -> None:
    """reload() takes DIAGNOSE_REDACT from the mapping it is given."""
    redaction.reload({"DIAGNOSE_REDACT": "iban"})
    assert is_secret("IBAN")
    redaction.reload({})
    assert not is_secret("IBAN")


# --- the sentinel ---------------------------------------------------------------------------------


def test_redacted_shows_as_redacted_everywhere() -> None:
    """REDACTED shows as <redacted> in str, repr, formats and containers, and stays one object."""
    assert str(REDACTED) == repr(REDACTED) == "<redacted>"
    assert f"{REDACTED}" == "<redacted>"
    assert f"{REDACTED:>12}" == "  <redacted>"
    assert format(REDACTED, ".2f") == "<redacted>"
    assert str([REDACTED, {"a": REDACTED}]) == "[<redacted>, {'a': <redacted>}]"
    assert type(REDACTED)() is REDACTED
    assert copy.copy(REDACTED) is REDACTED and copy.deepcopy([REDACTED])[0] is REDACTED
    assert pickle.loads(pickle.dumps(REDACTED)) is REDACTED


# --- in the expression ----------------------------------------------------------------------------


class Recording(dict):
    """A locals mapping that records which names an evaluation looked up."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: list[str] = []

    def __getitem__(self, key: str) -> Any:
        self.read.append(key)
        return super().__getitem__(key)


class Account:
    def __init__(self) -> None:
        self.reads: list[str] = []
        self.user = "bob"

    @property
    def api_key(self) -> str:
        self.reads.append("api_key")
        return "k-123"


def evaluate(expr: str, **names: Any) -> tuple[Any, Recording]:
    ns = Recording(names)
    return eval(compile_redacted(expr, "<t>"), {}, ns), ns


def test_a_secret_variable_is_never_read() -> None:
    """An expression naming a secret variable gives <redacted> without reading it."""
    value, ns = evaluate("password", password="hunter2")
    assert value is REDACTED
    assert "password" not in ns.read
    value, ns = evaluate("(user, DB_Password)", user="bob", DB_Password="pw")
    assert value == ("bob", REDACTED)
    assert ns.read == ["user"]


def test_a_secret_attribute_is_never_read() -> None:
    """An expression reading a secret attribute gives <redacted> without reading it."""
    account = Account()
    value, _ = evaluate("(acct.user, acct.api_key)", acct=account)
    assert value == ("bob", REDACTED)
    assert account.reads == []


def test_secret_keys_in_subscripts_gets_and_displays() -> None:
    """Secret keys give <redacted> through subscripts, get(), dict displays and dict()."""
    kwargs = {"token": "t-1", "user": "bob", "Authorization": "Bearer x"}
    assert evaluate("kwargs['token']", kwargs=kwargs)[0] is REDACTED
    assert evaluate("kwargs.get('Authorization')", kwargs=kwargs)[0] is REDACTED
    assert evaluate("kwargs.get('authorization', 'none')", kwargs=kwargs)[0] is REDACTED
    assert evaluate("kwargs['user']", kwargs=kwargs)[0] == "bob"
    value, _ = evaluate("{'user': u, 'password': p}", u="bob", p="hunter2")
    assert str(value) == "{'user': 'bob', 'password': <redacted>}"
    value, _ = evaluate("dict(user=u, api_key=k)", u="bob", k="k-1")
    assert value == {"user": "bob", "api_key": REDACTED}


def test_redaction_inside_f_strings_and_comprehensions() -> None:
    """Secrets are redacted inside f-strings and comprehensions too."""
    value, _ = evaluate("f'{user}:{password}'", user="bob", password="pw")
    assert value == "bob:<redacted>"
    value, _ = evaluate("[r['token'] for r in rows]", rows=[{"token": 1}, {"token": 2}])
    assert value == [REDACTED, REDACTED]


def test_redact_tree_leaves_other_expressions_alone() -> None:
    """redact_tree leaves an expression without secrets as it was."""
    import ast

    tree = ast.parse("len(args) + kwargs['x'] + obj.attr", mode="eval")
    before = ast.dump(tree)
    assert ast.dump(redact_tree(tree)) == before


# --- in the output --------------------------------------------------------------------------------


class Headers(dict):
    """A dict subclass that keeps dict's repr: rendered like a dict, so redacted too."""


class Shown:
    def __str__(self) -> str:
        return "Shown(password=visible to its own __str__)"


ORDINARY = [
    3,
    2.5,
    None,
    True,
    "plain text, shown as is",
    b"bytes",
    [1, "a", None],
    (1,),
    (),
    {"a": 1, "b": [1, 2, {"c": (3,)}]},
    {1: "one", (1, 2): "pair"},
    set(),
    {1},
    frozenset(),
    frozenset({2}),
    [set(), frozenset({"x"}), {}],
    collections.OrderedDict(a=1),
    collections.defaultdict(list, a=[1]),
    Shown(),
]


@pytest.mark.parametrize("value", ORDINARY, ids=repr)
def test_render_is_str_for_ordinary_values(value: Any) -> None:
    """render() of an ordinary value is its str()."""
    assert render(value) == str(value)


def test_render_redacts_secret_keys_at_any_depth() -> None:
    """render() redacts secret keys at any depth of dicts, lists, tuples and mappings."""
    value = {
        "user": "bob",
        "Password": "hunter2",
        "requests": [
            {"headers": {"Authorization": "Bearer abc", "X-Api-Key": "k", "accept": "*/*"}},
            ({"api-key": "k2"},),
        ],
        "nested": Headers(token="t", ok=1),
    }
    text = render(value)
    for secret in ("hunter2", "Bearer abc", "'k'", "k2", "'t'"):
        assert secret not in text
    assert text == (
        "{'user': 'bob', 'Password': <redacted>, 'requests': [{'headers': "
        "{'Authorization': <redacted>, 'X-Api-Key': <redacted>, 'accept': '*/*'}}, "
        "({'api-key': <redacted>},)], 'nested': {'token': <redacted>, 'ok': 1}}"
    )
    assert render(REDACTED) == "<redacted>"
    assert render([REDACTED]) == "[<redacted>]"


def test_render_uses_diagnose_redact(monkeypatch: pytest.MonkeyPatch) -> None:
    """render() redacts the names DIAGNOSE_REDACT adds."""
    monkeypatch.setenv("DIAGNOSE_REDACT", "email")
    redaction.reload()
    assert render({"Email": "a@b.c", "name": "A"}) == "{'Email': <redacted>, 'name': 'A'}"


def test_render_is_safe_on_cycles() -> None:
    """render() shows cycles as str() does, and shared values in full."""
    items: list[Any] = [1]
    items.append(items)
    table: dict[str, Any] = {"a": 1}
    table["self"] = table
    assert render(items) == str(items) == "[1, [...]]"
    assert render(table) == str(table) == "{'a': 1, 'self': {...}}"
    shared = [1]
    assert render([shared, shared]) == "[[1], [1]]"  # shared, not a cycle


def test_render_cuts_at_the_limit() -> None:
    """render() cuts its text at the limit with ..., without building a huge string first."""
    assert render("x" * 50, limit=10) == "xxxxxxx..."
    text = render(list(range(1000)), limit=40)
    assert len(text) == 40 and text.endswith("...")
    assert text.startswith("[0, 1, 2, 3")
    assert render([1, 2], limit=40) == "[1, 2]"
    for scalar in (b"ab", 1.5, True, None, 3j, 10**30):
        assert render(scalar) == str(scalar)
    assert render(b"z" * 50_000_000, limit=10) == str(b"z" * 50)[:7] + "..."


class Counted:
    reprs = 0

    def __repr__(self) -> str:
        Counted.reprs += 1
        return "Counted()"


def test_render_stops_walking_at_the_limit() -> None:
    """A huge value costs no more than its first limit characters."""
    Counted.reprs = 0
    text = render([Counted() for _ in range(10_000)], limit=100)
    assert len(text) == 100
    assert Counted.reprs <= 10
    huge = "y" * 50_000_000
    text = render({"k": [huge]}, limit=30)
    assert text == "{'k': ['" + "y" * 19 + "..."


def test_scrub_mapping_copies_with_secret_values_replaced() -> None:
    """scrub_mapping returns a copy with secret values replaced, the original untouched."""
    tags = {"user": "bob", "Authorization": "Bearer x", "nested": {"token": 1}}
    scrubbed = scrub_mapping(tags)
    assert scrubbed == {"user": "bob", "Authorization": REDACTED, "nested": {"token": 1}}
    assert tags["Authorization"] == "Bearer x"
    assert scrubbed is not tags
    # nested dicts are left to render(), which redacts them when they are shown
    assert render(scrubbed["nested"]) == "{'token': <redacted>}"


_keys = st.text(max_size=8).filter(lambda k: not is_secret(k))
_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=10))
_values = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.lists(inner, max_size=4).map(tuple),
        st.dictionaries(_keys, inner, max_size=4),
        st.frozensets(st.integers(), max_size=4),
        st.sets(st.text(max_size=4), max_size=4),
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None, derandomize=True, database=None)
@given(_values)
def test_render_matches_str_without_secrets(value: Any) -> None:
    """Property: where no key is a secret, render() is str() (cut at its limit)."""
    expected = str(value)
    assert render(value, limit=10**6) == expected
    short = render(value, limit=20)
    if len(expected) <= 20:
        assert short == expected
    else:
        assert short == expected[:17] + "..."
