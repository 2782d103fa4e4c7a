"""Who /api/messages trusts, tried as an attacker would (issue 11, DESIGN: Security).

Emulator mode (no MicrosoftAppId) trusts the identity an activity claims, so it listens on
loopback only unless HERALD_EMULATOR_ALLOW_REMOTE says otherwise, and talks only to serviceUrls
on loopback. In every mode a serviceUrl is an http(s) URL with a host and nothing odd in it, at
the door and again when a stored reference is used. `aadObjectId` names a person on Teams
only. Bot Framework (JWT) mode authenticates the header before it reads the body, and anything
that goes wrong while checking a token is a 401, never a 500. A malformed activity gets a 4xx
and one warning line; it writes nothing and leaves no traceback in the logs.

Everything here talks to servers on 127.0.0.1; activities that name another host carry
`deliveryMode: expectReplies`, so even code that trusted them would send nothing anywhere.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from app import main
from config import Settings
from errors import SettingsError
from storage.records import StoredReference
from tests.conftest import HeraldFactory
from tests.harness import EmulatedUser, Emulator, RunningHerald
from tests.peers.botframework import EMULATOR_ISSUER, BotFrameworkTokens
from tests.peers.connector import ConnectorStandIn

APP_ID = "00000000-0000-0000-0000-0000000000b0"
JSON = {"Content-Type": "application/json"}


# --- helpers -------------------------------------------------------------------------------


async def rows(herald: RunningHerald, table: str) -> int:
    assert herald.herald.db is not None
    found = await herald.herald.db.fetchall(f"SELECT COUNT(*) AS n FROM {table}")
    return int(found[0]["n"])


async def nothing_stored(herald: RunningHerald) -> None:
    """No user, conversation reference or bot state was written."""
    for table in ("users", "conversations", "bot_state"):
        assert await rows(herald, table) == 0, table


def problems(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    """Log records that would page someone: ERROR and above, or any with a traceback."""
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def post_raw(
    herald: RunningHerald, body: bytes, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    return await herald.request(
        "POST", "/api/messages", data=body, auth=False, headers={**JSON, **(headers or {})}
    )


async def raw_http(herald: RunningHerald, head: bytes, body: bytes = b"{}") -> bytes:
    """One request written byte for byte (what aiohttp's client refuses to send); the status
    line of the answer."""
    host, port = herald.url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(
            b"POST /api/messages HTTP/1.1\r\nHost: herald\r\nContent-Type: application/json\r\n"
            + head
            + b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            + body
        )
        await writer.drain()
        return await asyncio.wait_for(reader.readline(), 10)
    finally:
        writer.close()


def expect_replies(emulator: Emulator, user: EmulatedUser, **fields: Any) -> dict[str, Any]:
    """A message whose replies come back in the HTTP answer (nothing is sent anywhere)."""
    return emulator.activity(user, "message", text="help", deliveryMode="expectReplies", **fields)


# --- 1. Emulator mode is for a developer's own machine --------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "herald.example.com", ""])
def test_emulator_mode_refuses_a_non_loopback_address(host: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"HOST": host}, env_file=None)
    message = str(err.value)
    assert "Emulator mode" in message
    assert "MicrosoftAppId" in message and "HERALD_EMULATOR_ALLOW_REMOTE" in message


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.53", "::1", "localhost", "LOCALHOST"])
def test_emulator_mode_listens_on_loopback(host: str) -> None:
    assert Settings.from_env({"HOST": host}, env_file=None).emulator_mode


def test_the_override_or_an_app_id_allows_any_address() -> None:
    assert Settings.from_env(
        {"HOST": "0.0.0.0", "HERALD_EMULATOR_ALLOW_REMOTE": "true"}, env_file=None
    ).emulator_allow_remote
    assert not Settings.from_env(
        {"HOST": "0.0.0.0", "MicrosoftAppId": APP_ID}, env_file=None
    ).emulator_mode


def test_python_app_py_exits_2_and_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # 192.0.2.1 (TEST-NET-1) is on no interface here: today's code fails to bind it, and
    # nothing is ever opened on a public address by this test.
    lines: list[str] = []
    code = main({"HOST": "192.0.2.1", "HERALD_DATA_DIR": str(tmp_path)}, out=lines.append)
    assert code == 2
    err = capsys.readouterr().err
    assert "HOST=192.0.2.1" in err and "HERALD_EMULATOR_ALLOW_REMOTE" in err
    assert lines == []


async def test_the_override_is_a_warning_at_every_start(
    herald_factory: HeraldFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    herald = await herald_factory(HOST="0.0.0.0", HERALD_EMULATOR_ALLOW_REMOTE="true")
    await herald.restart()
    warnings = [
        r for r in caplog.records
        if r.levelno == logging.WARNING and "HERALD_EMULATOR_ALLOW_REMOTE" in r.getMessage()
    ]
    assert len(warnings) == 2
    assert "0.0.0.0" in warnings[0].getMessage()


@pytest.mark.parametrize(
    "service_url",
    [
        "http://10.1.2.3:8080",  # an internal host
        "http://169.254.169.254/metadata",  # the cloud metadata service
        "http://[fd00::1]:80",
        "http://2130706433:{port}",  # 127.0.0.1 to getaddrinfo, no IP address to anyone else
        "http://0x7f.1:{port}",
        "http://127.1:{port}",
        "gopher://127.0.0.1:{port}",  # was spoken to as HTTP
        "ftp://127.0.0.1:{port}",
        "https://user:secret@127.0.0.1:{port}",
        "http://127.0.0.1:{port}/a b",  # reached the request line
        "http://127.0.0.1:{port}/\r\nX-Injected: 1",
        "http://127.0.0.1:{port}/\u00e9",
        "http://127.0.0.1:99999",
        "http://",
        "/v3/conversations",
        "",
        "localhost:{port}",
    ],
)
async def test_emulator_mode_accepts_only_loopback_service_urls(
    service_url: str, herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    emulator = Emulator(herald, connector.url)
    user = emulator.user()
    url = service_url.replace("{port}", connector.url.rsplit(":", 1)[1])
    status, body = await herald.request(
        "POST", "/api/messages", json=expect_replies(emulator, user, serviceUrl=url), auth=False
    )
    assert status == 400, body
    assert body["error"]["field"] == "serviceUrl"
    await nothing_stored(herald)
    assert connector.recorded == []


@pytest.mark.parametrize(
    "service_url", ["http://127.0.0.1:{port}", "http://localhost:{port}/", "http://[::1]:{port}"]
)
async def test_emulator_mode_accepts_loopback_service_urls(
    service_url: str, herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    emulator = Emulator(herald, connector.url)
    user = emulator.user()
    url = service_url.replace("{port}", connector.url.rsplit(":", 1)[1])
    status, body = await herald.request(
        "POST", "/api/messages", json=expect_replies(emulator, user, serviceUrl=url), auth=False
    )
    assert status == 200, body
    assert body["activities"]
    assert await rows(herald, "conversations") == 1


async def test_the_emulator_service_hosts_are_configurable(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    herald = await herald_factory(HERALD_EMULATOR_SERVICE_HOSTS="127.0.0.1")
    emulator = Emulator(herald, connector.url.replace("127.0.0.1", "localhost"))
    assert await emulator.post(expect_replies(emulator, emulator.user())) == 400
    emulator = Emulator(herald, connector.url)
    assert await emulator.post(expect_replies(emulator, emulator.user())) == 200


@pytest.mark.parametrize(
    "service_url",
    ["gopher://127.0.0.1:{port}", "http://127.0.0.1:{port}/a b", "http://2130706433:{port}",
     "http://10.1.2.3:{port}"],
)
async def test_a_stored_reference_with_a_bad_service_url_is_never_used(
    service_url: str, emulator: Emulator, herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    assert await emulator.say(user, "hello") == 201
    connector.clear()
    [stored] = (await herald.herald.conversations.for_users([user.key]))[user.key]
    url = service_url.replace("{port}", connector.url.rsplit(":", 1)[1])
    reference = {**stored.reference, "serviceUrl": url}
    await herald.herald.conversations.upsert(
        StoredReference(
            user_id=stored.user_id,
            channel_id=stored.channel_id,
            conversation_id=stored.conversation_id,
            service_url=url,
            reference=reference,
        )
    )
    status, body = await herald.post_event(
        {"id": "n-1", "type": "t", "title": "Hi", "recipients": {"users": [user.key]}}
    )
    assert status == 202, body
    done = await herald.wait_status("n-1")
    assert done["channels"]["conversation"]["failed"] == 1, done
    await asyncio.sleep(0.1)
    assert connector.recorded == []


# --- 2. aadObjectId is a user key on Teams only ---------------------------------------------


@pytest.mark.parametrize("channel", ["emulator", "webchat", "directline"])
async def test_aad_object_id_is_not_trusted_off_teams(
    channel: str, herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    emulator = Emulator(herald, connector.url)
    grace = "6b3c7f0e-aaaa-4c8e-9d52-000000000001"
    mallory = emulator.user("Mallory", channel_id=channel, aad_object_id=grace)
    status, _ = await herald.request(
        "POST", "/api/messages", json=expect_replies(emulator, mallory), auth=False
    )
    assert status == 200
    assert await herald.herald.users.get_user(grace) is None
    assert not (await herald.herald.conversations.for_users([grace])).get(grace)
    assert await herald.herald.users.get_user(f"{channel}:{mallory.id}") is not None


async def test_aad_object_id_is_the_user_key_on_teams(
    emulator: Emulator, herald: RunningHerald
) -> None:
    grace = emulator.teams_user()
    assert await emulator.say(grace, "hello") == 201
    assert grace.aad_object_id is not None
    assert await herald.herald.users.get_user(grace.aad_object_id) is not None


# --- 3. Bot Framework (JWT) mode: authenticate first, 401 for anything wrong with a token ----


@pytest.fixture
async def tokens() -> Any:
    async with BotFrameworkTokens() as standin:
        yield standin


@pytest.fixture
async def secured(herald_factory: HeraldFactory, tokens: BotFrameworkTokens) -> RunningHerald:
    return await herald_factory(
        MicrosoftAppId=APP_ID, MicrosoftAppPassword="not-used-here", **tokens.env()
    )


def unsigned(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    """A JWT of any shape (PyJWT would refuse some claims), with a made-up signature."""

    def part(value: Any) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    return f"{part(header or {'alg': 'HS256', 'typ': 'JWT'})}.{part(claims)}.c2lnbmF0dXJl"


async def test_a_token_without_iss_is_401(secured: RunningHerald) -> None:
    emulator = Emulator(secured, "http://127.0.0.1:9")
    token = unsigned({"aud": APP_ID, "serviceurl": "http://127.0.0.1:9"})
    status = await emulator.post(
        expect_replies(emulator, emulator.user()), headers={"Authorization": f"Bearer {token}"}
    )
    assert status == 401


@pytest.mark.parametrize(
    "header",
    [
        "Bearer " + "[" * 5000,
        "Bearer a.b.c",
        "Bearer e30.e30.",  # {} . {} with no signature
        "Basic dXNlcjpwYXNz",
        "Bearer",
        "Bearer  " + "x" * 8000,
        "Bearer " + unsigned({"iss": ["a", "b"], "aud": APP_ID}),
        "Bearer " + unsigned({"iss": 42}),
        "Bearer " + unsigned({"iss": None, "ver": "1.0"}),
    ],
)
async def test_any_failure_while_checking_a_token_is_401(
    header: str, secured: RunningHerald, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = Emulator(secured, "http://127.0.0.1:9")
    status = await emulator.post(
        expect_replies(emulator, emulator.user()), headers={"Authorization": header}
    )
    assert status == 401
    assert problems(caplog) == []


async def test_a_header_that_is_not_latin_1_text_is_401(
    secured: RunningHerald, caplog: pytest.LogCaptureFixture
) -> None:
    line = await raw_http(secured, b"Authorization: Bearer \xff\xfe.\x80\r\n")
    assert line.startswith(b"HTTP/1.1 401"), line
    assert problems(caplog) == []


async def test_tokens_signed_with_unknown_keys_are_401(
    secured: RunningHerald, tokens: BotFrameworkTokens, caplog: pytest.LogCaptureFixture
) -> None:
    emulator = Emulator(secured, "http://127.0.0.1:9")
    activity = expect_replies(emulator, emulator.user(channel_id="webchat"))
    for token in (
        tokens.sign({"iss": "https://api.botframework.com", "aud": APP_ID}, kid="nobody's"),
        tokens.sign({"iss": EMULATOR_ISSUER, "aud": APP_ID, "ver": "1.0"}, kid="nobody's"),
        tokens.sign({"iss": "https://api.botframework.com", "aud": APP_ID}, omit_kid=True),
        tokens.channel_token(APP_ID, activity["serviceUrl"], exp=1),  # expired
        tokens.channel_token("another-bot", activity["serviceUrl"]),
        tokens.emulator_token("another-bot"),
    ):
        status = await emulator.post(activity, headers={"Authorization": f"Bearer {token}"})
        assert status == 401
    assert problems(caplog) == []


async def test_nesting_without_a_token_is_401_before_the_body_is_read(
    secured: RunningHerald, caplog: pytest.LogCaptureFixture
) -> None:
    assert (await post_raw(secured, b"[" * 5000))[0] == 401
    assert (await post_raw(secured, b"[" * 5000, {"Authorization": "Bearer x.y.z"}))[0] == 401
    assert (await post_raw(secured, b"not json at all"))[0] == 401
    assert problems(caplog) == []


async def test_nesting_with_a_valid_token_is_400(
    secured: RunningHerald, tokens: BotFrameworkTokens
) -> None:
    token = tokens.channel_token(APP_ID, "http://127.0.0.1:9")
    status, body = await post_raw(secured, b"[" * 5000, {"Authorization": f"Bearer {token}"})
    assert (status, body["error"]["code"]) == (400, "invalid_json")


async def test_nesting_in_emulator_mode_is_400(
    herald: RunningHerald, caplog: pytest.LogCaptureFixture
) -> None:
    for body in (b"[" * 5000, b'{"a":' * 5000, b"[" * 65 + b"]" * 65):
        status, answer = await post_raw(herald, body)
        assert (status, answer["error"]["code"]) == (400, "invalid_json")
    assert problems(caplog) == []


async def test_a_valid_channel_token_is_accepted(
    secured: RunningHerald, tokens: BotFrameworkTokens, connector: ConnectorStandIn
) -> None:
    emulator = Emulator(secured, connector.url)
    user = emulator.user(channel_id="webchat")
    activity = expect_replies(emulator, user)
    token = tokens.channel_token(APP_ID, connector.url)
    status, body = await secured.request(
        "POST", "/api/messages", json=activity, auth=False,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 200, body
    assert body["activities"]
    assert await secured.herald.users.get_user(f"webchat:{user.id}") is not None


async def test_the_token_must_be_for_this_service_url_and_channel(
    secured: RunningHerald, tokens: BotFrameworkTokens, connector: ConnectorStandIn
) -> None:
    emulator = Emulator(secured, connector.url)
    token = tokens.channel_token(APP_ID, "http://127.0.0.1:9")  # another serviceUrl
    activity = expect_replies(emulator, emulator.user(channel_id="webchat"))
    assert await emulator.post(activity, headers={"Authorization": f"Bearer {token}"}) == 401
    token = tokens.channel_token(APP_ID, connector.url)
    unendorsed = expect_replies(emulator, emulator.user(channel_id="slack"))
    assert await emulator.post(unendorsed, headers={"Authorization": f"Bearer {token}"}) == 401
    await nothing_stored(secured)


async def test_unreachable_signing_keys_are_503(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    closed = "http://127.0.0.1:9/v1/.well-known/openidconfiguration"
    secured = await herald_factory(
        MicrosoftAppId=APP_ID, MicrosoftAppPassword="x",
        ToBotFromChannelOpenIdMetadataUrl=closed,
        ToBotFromEmulatorOpenIdMetadataUrl=closed.replace("/v1/", "/v2/"),
    )
    emulator = Emulator(secured, connector.url)
    token = unsigned({"iss": "https://api.botframework.com", "aud": APP_ID})
    status, body = await secured.request(
        "POST", "/api/messages", json=expect_replies(emulator, emulator.user()), auth=False,
        headers={"Authorization": f"Bearer {token}"},
    )
    assert status == 503, body
    assert body["error"]["code"] == "keys_unavailable"


async def test_emulator_mode_takes_no_tokens(
    herald: RunningHerald, tokens: BotFrameworkTokens, connector: ConnectorStandIn
) -> None:
    # Without an app id no token can be valid (its audience would have to be ""): refused
    # before anything is fetched to check it.
    emulator = Emulator(herald, connector.url)
    token = tokens.emulator_token("")
    activity = expect_replies(emulator, emulator.user())
    assert await emulator.post(activity, headers={"Authorization": f"Bearer {token}"}) == 401
    assert tokens.metadata_requests == 0
    await nothing_stored(herald)


# --- 7. A malformed activity is a 4xx and one warning line, never a traceback ---------------


def _without(activity: dict[str, Any], *path: str) -> dict[str, Any]:
    node = activity
    for key in path[:-1]:
        node = node[key]
    node.pop(path[-1])
    return activity


def malformed(emulator: Emulator, user: EmulatedUser) -> dict[str, tuple[dict[str, Any], str]]:
    """Name → (activity, the field the answer names)."""

    def message(**fields: Any) -> dict[str, Any]:
        return emulator.activity(user, "message", text="hi", **fields)

    return {
        "no conversation": (_without(message(), "conversation"), "conversation"),
        "no serviceUrl": (_without(message(), "serviceUrl"), "serviceUrl"),
        "no channelId": (_without(message(), "channelId"), "channelId"),
        "empty channelId": (message(channelId=""), "channelId"),
        "channelId with a colon": (message(channelId="emulator:x"), "channelId"),
        "conversation.id null": (message(conversation={"id": None}), "conversation.id"),
        "no conversation.id": (message(conversation={"name": "x"}), "conversation.id"),
        "membersAdded [null]": (
            emulator.activity(user, "conversationUpdate", membersAdded=[None]),
            "membersAdded.0",
        ),
        "membersRemoved [null]": (
            emulator.activity(user, "conversationUpdate", membersRemoved=[None]),
            "membersRemoved.0",
        ),
        "from null": (message(**{"from": None}), "from"),
        "from.id a number": (message(**{"from": {"id": 5}}), "from.id"),
        "reactionsAdded [null]": (
            emulator.activity(user, "messageReaction", reactionsAdded=[None]),
            "reactionsAdded.0",
        ),
        "conversation.id of 100,000 characters": (
            message(conversation={"id": "c" * 100_000}), "conversation.id"
        ),
    }


async def test_malformed_activities_are_400_and_write_nothing(
    emulator: Emulator, herald: RunningHerald, connector: ConnectorStandIn,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    for name, (activity, field) in malformed(emulator, emulator.user()).items():
        caplog.clear()
        status, body = await herald.request("POST", "/api/messages", json=activity, auth=False)
        assert status == 400, (name, body)
        assert body["error"]["field"] == field, (name, body)
        assert problems(caplog) == [], name
        warned = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warned) == 1 and "\n" not in warned[0].getMessage(), (name, warned)
    await nothing_stored(herald)
    assert connector.recorded == []


async def test_a_lone_surrogate_is_400(
    emulator: Emulator, herald: RunningHerald, caplog: pytest.LogCaptureFixture
) -> None:
    activity = emulator.activity(emulator.user(), "message", text="hi")
    body = json.dumps(activity).replace('"name": "Ada"', '"name": "\\ud800"').encode()
    status, answer = await post_raw(herald, body)
    assert (status, answer["error"]["code"]) == (400, "invalid_json")
    assert problems(caplog) == []
    await nothing_stored(herald)


async def test_unknown_invokes_get_the_sdks_answer(
    emulator: Emulator, herald: RunningHerald, caplog: pytest.LogCaptureFixture
) -> None:
    # 501 Not Implemented: what botbuilder answers an invoke no handler takes. Herald's cards
    # use Action.Submit, so Universal Actions (adaptiveCard/action) are among them.
    user = emulator.user()
    for name, value, expected in [
        ("signin/tokenExchange", {"id": "x", "token": "y"}, 501),
        ("signin/verifyState", {"state": "1"}, 501),
        ("task/fetch", None, 501),
        ("adaptiveCard/action", {"action": {"type": "Action.Execute", "verb": "x"}}, 501),
        ("adaptiveCard/action", {"action": None}, 501),
        ("adaptiveCard/action", {"action": "a string"}, 501),
        ("adaptiveCard/action", 5, 501),
    ]:
        for mode in (None, "expectReplies"):
            status, body = await herald.request(
                "POST", "/api/messages", auth=False,
                json=emulator.activity(user, "invoke", name=name, value=value,
                                       deliveryMode=mode),
            )
            assert status == (200 if mode else expected), (name, value, mode, body)
    assert problems(caplog) == []


@pytest.mark.parametrize(
    "header",
    [b"X-Anything: a\x00b\r\n", b"Authorization: Bearer a\x00b\r\n", b"X-Request-Id: \x00\r\n",
     b"X-Request-Id: a\rb\r\n", b"Content-Length: -1\r\n"],
)
async def test_a_nul_in_a_header_is_400_without_a_traceback(
    header: bytes, herald: RunningHerald, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    line = await raw_http(herald, header)
    assert line.split(b" ")[1] == b"400", line
    assert problems(caplog) == []
    assert any(r.levelno == logging.WARNING for r in caplog.records)


async def test_a_body_over_the_limit_is_413_or_401_without_a_token(
    herald_factory: HeraldFactory, tokens: BotFrameworkTokens, caplog: pytest.LogCaptureFixture
) -> None:
    big = json.dumps({"type": "message", "text": "x" * 300_000}).encode()
    herald = await herald_factory()
    status, body = await post_raw(herald, big)
    assert (status, body["error"]["code"]) == (413, "body_too_large")
    secured = await herald_factory(MicrosoftAppId=APP_ID, MicrosoftAppPassword="x", **tokens.env())
    assert (await post_raw(secured, big))[0] == 401
    assert problems(caplog) == []


@pytest.mark.parametrize("value", ["not a host!", "http://127.0.0.1/", "10.0.0.0/33"])
def test_bad_emulator_service_hosts_name_the_setting(value: str) -> None:
    with pytest.raises(SettingsError) as err:
        Settings.from_env({"HERALD_EMULATOR_SERVICE_HOSTS": value}, env_file=None)
    assert "HERALD_EMULATOR_SERVICE_HOSTS" in str(err.value)
