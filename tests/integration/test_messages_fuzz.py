"""Property-based fuzzing of POST /api/messages, in Emulator mode and in Bot Framework (JWT)
mode: whatever arrives - activities of every type with fields missing, null, of the wrong
type, in any Unicode (lone surrogates included), nested deep; bodies that are no activity or
no JSON; odd content types, request ids and Authorization headers; tokens of every shape, and
valid ones - the answer is never a 5xx (an invoke nobody handles may get the SDK's 501), no
line is logged at ERROR and no traceback is logged at all, and a refused request stores
nothing.

Herald runs on 127.0.0.1 with the Bot Connector stand-in as the serviceUrl of most activities.
Nothing can be sent off the machine: in Emulator mode Herald sends to loopback only (and the
activities that name other hosts ask for their replies in the HTTP answer); in JWT mode every
activity with a valid token asks for its replies in the answer and is on a channel other than
Teams (whose roster lookup would need an outbound token from Entra ID), and the signing keys
come from the Bot Framework token stand-in.

Generation is deterministic (derandomized, no example database) and bounded so the file runs
in well under a minute.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Final

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import HeraldFactory
from tests.harness import RunningHerald
from tests.peers.botframework import (
    CHANNEL_ISSUER,
    EMULATOR_ISSUER,
    BotFrameworkTokens,
)
from tests.peers.connector import ConnectorStandIn

pytestmark = pytest.mark.slow

APP_ID: Final = "00000000-0000-0000-0000-0000000000f0"
EXAMPLES: Final = int(os.environ.get("FUZZ_EXAMPLES", "300"))
"""Per mode. `FUZZ_EXAMPLES=5000 pytest ...` searches longer, with fresh random examples."""
FUZZ = settings(
    max_examples=EXAMPLES,
    derandomize="FUZZ_EXAMPLES" not in os.environ,
    database=None,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)

# --- strategies ------------------------------------------------------------------------------



def usually(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], odds: int = 8
            ) -> st.SearchStrategy[Any]:
    """`common`, and once in `odds + 1` draws `rare`: a malformed part now and then, so most
    activities get past the door and exercise the turn."""
    middle = odds // 2  # not a bound: Hypothesis draws bounds (0 above all) far more often
    return st.integers(0, odds).flatmap(lambda n: rare if n == middle else common)


def chance(draw: st.DrawFn, one_in: int) -> bool:
    """True about once in `one_in` draws (see `usually`)."""
    return bool(draw(st.integers(0, one_in - 1)) == one_in // 2)


_text = st.text(max_size=24)
_unicode = st.text(max_size=24)  # any Unicode but lone surrogates: controls, NUL, emoji...
_surrogate = st.characters(categories=["Cs"])  # sent as a \\udXXX escape (see requests())
_json_leaf = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(
    allow_nan=False, allow_infinity=False
) | _unicode
_json = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_text, inner, max_size=4),
    max_leaves=12,
)
_ids = usually(
    st.uuids().map(str),
    st.sampled_from(["grace", "29:1abc", "a:1xyz", "", " "]) | _unicode
    | st.text(min_size=1000, max_size=1100),
    odds=4,
)

TYPES = [
    "message", "conversationUpdate", "event", "invoke", "messageReaction",
    "installationUpdate", "typing", "endOfConversation", "deleteUserData", "messageUpdate",
    "messageDelete", "trace", "handoff", "command", "suggestion", "contactRelationUpdate",
]
INVOKES = [
    "signin/tokenExchange", "signin/verifyState", "adaptiveCard/action", "task/fetch",
    "task/submit", "composeExtension/query", "actionableMessage/executeAction",
    "fileConsent/invoke", "config/fetch", "application/search", "healthCheck",
]
TEXTS = [
    "help", "status", "settings", "preferences", "history", "inbox", "opt in", "stop",
    "cancel", "yes", "no", "quiet hours 22-7", "quiet hours off", "calendar", "mute x",
]
CHANNELS = ["emulator", "webchat", "directline", "msteams", "test", "slack", "emulator:x", ""]
ACTIONS = [
    "optIn", "optOut", "keepNotifications", "savePreferences", "showPreferences",
    "promptAnswer", "markAllRead", "calendarAllow", "calendarDeny", "showCalendar", "nope",
]


def _account(ids: st.SearchStrategy[Any] = _ids) -> st.SearchStrategy[Any]:
    return st.fixed_dictionaries(
        {"id": ids},
        optional={
            "name": _unicode,
            "role": st.sampled_from(["user", "bot", "skill", None]),
            "aadObjectId": st.uuids().map(str) | _unicode,
        },
    )


def _value() -> st.SearchStrategy[Any]:
    notice = st.fixed_dictionaries(
        {"type": st.sampled_from(["t", "training.due"]), "title": _unicode},
        optional={
            "id": st.sampled_from(["n-1", "n-2"]) | _unicode,
            "text": _unicode,
            "recipients": _json,
            "prompt": st.fixed_dictionaries(
                {"text": _unicode, "choices": st.lists(_unicode, max_size=3)}
            ) | _json,
            "severity": st.sampled_from(["info", "warning", "error", "fatal"]),
            "url": st.sampled_from(["https://example.com/x", "javascript:alert(1)"]),
            "card": _json,
        },
    )
    submit = st.fixed_dictionaries(
        {"action": st.sampled_from(ACTIONS)},
        optional={
            "notificationId": _unicode, "choice": _unicode, "etag": _unicode,
            "channels": _json, "quietHours": _json, "timeZone": _unicode,
        },
    )
    return st.one_of(notice, submit, _json)


@dataclass
class Request:
    """One generated POST: raw body, headers, and what the activity was (if any)."""

    body: bytes
    headers: dict[str, str]
    activity: dict[str, Any] | None = None
    valid_token: bool = False
    notes: list[str] = field(default_factory=list)


@st.composite
def activities(draw: st.DrawFn, service_url: str) -> dict[str, Any]:
    """An activity like the Emulator's, then bent out of shape."""
    kind = draw(usually(st.sampled_from(TYPES), _text))
    channel = draw(usually(st.sampled_from(CHANNELS[:5]), st.sampled_from(CHANNELS), odds=4))
    user = draw(_ids)
    activity: dict[str, Any] = {
        "type": kind,
        "id": draw(_ids),
        "channelId": channel,
        "serviceUrl": service_url,
        "timestamp": "2026-12-03T10:00:00Z",
        "from": {"id": user, "name": draw(_unicode), "role": "user"},
        "recipient": {"id": "herald-bot", "name": "Herald", "role": "bot"},
        "conversation": {"id": draw(_ids)},
        "locale": draw(usually(st.sampled_from(["en-US", "de-DE"]), _unicode)),
    }
    if draw(st.booleans()):
        activity["from"]["aadObjectId"] = draw(st.uuids().map(str))
    if channel == "msteams":
        tenant = draw(st.sampled_from(["tenant-1", "tenant-2"]) | _unicode)
        activity["conversation"].update({"conversationType": "personal", "tenantId": tenant})
        activity["channelData"] = draw(
            st.sampled_from([{"tenant": {"id": tenant}}, {"tenant": tenant}, None]) | _json
        )
    if kind == "message":
        activity["text"] = draw(usually(st.sampled_from(TEXTS), _unicode, odds=3))
        if draw(st.booleans()):
            activity["value"] = draw(_value())
    elif kind == "conversationUpdate":
        members = st.lists(_account() | _json, max_size=3)
        activity["membersAdded"] = draw(members)
        if draw(st.booleans()):
            activity["membersRemoved"] = draw(members)
    elif kind in ("event", "invoke"):
        names = INVOKES if kind == "invoke" else ["BroadcastEvent"]
        activity["name"] = draw(st.sampled_from(names) | _text)
        activity["value"] = draw(_value())
    elif kind == "messageReaction":
        activity["reactionsAdded"] = draw(st.lists(st.just({"type": "like"}) | _json, max_size=2))
    elif kind == "installationUpdate":
        activity["action"] = draw(st.sampled_from(["add", "remove", "add-upgrade"]) | _json)
    if draw(st.booleans()):
        activity["localTimezone"] = draw(st.sampled_from(["Europe/Berlin", "Not/AZone"]) | _text)
    # Bend it, one time in three: drop fields, null them, or give them values of any type.
    fields = [*sorted(activity), "entities", "attachments", "replyToId", "deliveryMode"]
    bent = st.lists(st.sampled_from(fields), min_size=1, max_size=3, unique=True)
    for key in draw(usually(st.just([]), bent, odds=2)):
        how = draw(st.sampled_from(["drop", "null", "value"]))
        if how == "drop":
            activity.pop(key, None)
        elif how == "null":
            activity[key] = None
        else:
            activity[key] = draw(_json)
    if chance(draw, 10):
        activity["deliveryMode"] = "expectReplies"
    return activity


def _service_urls(connector: str) -> st.SearchStrategy[tuple[str, bool]]:
    """(serviceUrl, whether it is the stand-in or another loopback URL Herald may call)."""
    port = connector.rsplit(":", 1)[1]
    loopback = st.sampled_from(
        [connector, connector + "/", f"http://localhost:{port}", "http://127.0.0.1:9"]
    ).map(lambda url: (url, True))
    other = st.sampled_from(
        [
            f"gopher://127.0.0.1:{port}", f"ftp://127.0.0.1:{port}", f"http://2130706433:{port}",
            f"http://0x7f.1:{port}", f"http://127.0.0.1:{port}/a b", "http://10.1.2.3:8080",
            "http://169.254.169.254/", "https://user:pw@127.0.0.1/", "http://", "", "/v3",
            f"http://127.0.0.1:{port}/\u00e9", "http://[::1", "http://127.0.0.1:99999",
        ]
    ) | _unicode
    return usually(loopback, other.map(lambda url: (url, False)), odds=5)


RAW_BODIES = [
    b"[" * 5000, b'{"a":' * 5000, b"[" * 70 + b"]" * 70, b"", b"null", b"[]", b'"x"', b"1e999",
    b"NaN", b"\xff\xfe{}", b"\xef\xbb\xbf{}", b'{"type": "message"}', b'{"type": null}',
    b'{"type": "message", "text": "\\ud800"}', b"{" * 10 + b"}", b'{"a": 1, "a": 2}',
]
CONTENT_TYPES = [
    "application/json; charset=utf-8", "text/plain", "", "application/x-www-form-urlencoded",
    "application/json; charset=latin-1", "application/problem+json",
]
_header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


def _forged(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A JWT of any shape with a made-up signature."""
    import base64

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header or {'alg': 'RS256', 'kid': 'k'})}.{part(claims)}.c2ln"


_claims = st.fixed_dictionaries(
    {},
    optional={
        "iss": st.sampled_from([CHANNEL_ISSUER, EMULATOR_ISSUER, "https://evil.example"]) | _json,
        "aud": st.sampled_from([APP_ID, "other"]) | _json,
        "ver": st.sampled_from(["1.0", "2.0", "3.0"]) | _json,
        "appid": st.sampled_from([APP_ID, "other"]) | _json,
        "azp": st.sampled_from([APP_ID, "other"]) | _json,
        "serviceurl": _json,
        "exp": st.integers(0, 2**40) | _json,
        "nbf": st.integers(0, 2**40) | _json,
    },
)


@st.composite
def requests(draw: st.DrawFn, connector: str, tokens: BotFrameworkTokens | None) -> Request:
    content_type = draw(usually(st.just("application/json"), st.sampled_from(CONTENT_TYPES)))
    headers = {"Content-Type": content_type} if content_type else {}
    if draw(st.booleans()):
        headers["X-Request-Id"] = draw(_header_text)
    if chance(draw, 12):
        return Request(draw(st.sampled_from(RAW_BODIES) | st.binary(max_size=64)), headers)
    service_url, callable_url = draw(_service_urls(connector))
    activity = draw(activities(service_url))
    request = Request(b"", headers, activity)
    if not callable_url:
        activity["deliveryMode"] = "expectReplies"
    auth = draw(st.integers(0, 9))
    if tokens is None:
        if auth == 0:
            headers["Authorization"] = "Bearer " + draw(_header_text)
    elif auth <= 3:  # a valid token: the activity is handled, replies come in the answer
        request.valid_token = True
        activity["deliveryMode"] = "expectReplies"
        if activity.get("channelId") == "msteams":
            activity["channelId"] = "webchat"
        url = activity.get("serviceUrl")
        token = (
            tokens.emulator_token(APP_ID)
            if auth == 3
            else tokens.channel_token(APP_ID, url if isinstance(url, str) else "x")
        )
        headers["Authorization"] = f"Bearer {token}"
    elif auth <= 5:
        headers["Authorization"] = "Bearer " + _forged(
            draw(_claims), draw(st.none() | st.dictionaries(_text, _json, max_size=3))
        )
    elif auth == 6:  # signed with a published key, but for another bot: never valid
        claims = {
            k: v for k, v in draw(_claims).items()
            if (isinstance(v, int) and k in ("exp", "nbf")) or isinstance(v, str)
        }
        claims.update(aud="another-bot", appid="another-bot", azp="another-bot")
        headers["Authorization"] = "Bearer " + tokens.sign(
            claims,
            kid=draw(st.sampled_from([tokens.channel_kid, tokens.emulator_kid, "unknown"])),
        )
    elif auth == 7:
        headers["Authorization"] = draw(
            st.sampled_from(["Bearer", "Basic dXNlcjpwYXNz", "Bearer a.b.c", "Bearer e30.e30."])
            | _header_text
        )
    if chance(draw, 16):
        activity.update(draw(st.dictionaries(_text, _json, max_size=3)))
    if chance(draw, 16) and isinstance(activity.get("from"), dict):
        activity["from"]["name"] = "Ada " + draw(_surrogate)  # JSON allows it, Unicode does not
    request.body = json.dumps(activity, ensure_ascii=True).encode()
    return request


# --- the properties ----------------------------------------------------------------------------


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def logged() -> Iterator[_Records]:
    handler = _Records()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield handler
    finally:
        root.removeHandler(handler)


async def _stored(herald: RunningHerald) -> tuple[int, int]:
    assert herald.herald.db is not None
    users = await herald.herald.db.fetchall("SELECT COUNT(*) AS n FROM users")
    conversations = await herald.herald.db.fetchall("SELECT COUNT(*) AS n FROM conversations")
    return int(users[0]["n"]), int(conversations[0]["n"])


async def _check(herald: RunningHerald, request: Request, logged: _Records) -> int:
    logged.records.clear()
    before = await _stored(herald)
    status, body = await herald.request(
        "POST", "/api/messages", data=request.body, headers=request.headers, auth=False
    )
    invoke = request.activity is not None and request.activity.get("type") == "invoke"
    assert status < 500 or (status == 501 and invoke), (status, body, request)
    bad = [
        r for r in logged.records
        if r.levelno >= logging.ERROR or r.exc_info or "Traceback" in r.getMessage()
    ]
    assert bad == [], [(r.levelname, r.name, r.getMessage()[:300]) for r in bad]
    if status in (400, 401, 413, 415) and not invoke:  # an invoke's answer is the bot's own
        assert isinstance(body, dict) and set(body["error"]) >= {"code", "message"}, body
        assert await _stored(herald) == before, (status, body)
    return status


@pytest.fixture
async def tokens() -> Any:
    async with BotFrameworkTokens() as standin:
        yield standin


@pytest.fixture
async def jwt_herald(herald_factory: HeraldFactory, tokens: BotFrameworkTokens) -> RunningHerald:
    return await herald_factory(MicrosoftAppId=APP_ID, MicrosoftAppPassword="x", **tokens.env())


@FUZZ
@given(data=st.data())
async def test_emulator_mode(
    data: st.DataObject, herald: RunningHerald, connector: ConnectorStandIn, logged: _Records
) -> None:
    request = data.draw(requests(connector.url, None))
    await _check(herald, request, logged)
    # Only loopback was ever called: the stand-in, or nothing.
    assert all(r.path.startswith("/v3/") for r in connector.recorded)


@FUZZ
@given(data=st.data())
async def test_bot_framework_mode(
    data: st.DataObject,
    jwt_herald: RunningHerald,
    connector: ConnectorStandIn,
    tokens: BotFrameworkTokens,
    logged: _Records,
) -> None:
    request = data.draw(requests(connector.url, tokens))
    status = await _check(jwt_herald, request, logged)
    if not request.valid_token:
        assert status == 401, status  # authentication comes before everything else
    assert connector.recorded == []  # every accepted activity asked for its replies inline

