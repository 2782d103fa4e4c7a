"""Bad input gets a clear 4xx and writes nothing; /api/messages never answers 500."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.conftest import HeraldFactory
from tests.harness import Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn

GOOD: dict[str, Any] = {
    "type": "training.due",
    "title": "Security training due Friday",
    "recipients": {"users": ["someone"]},
}


GROUP = "3f2504e0-4f89-11d3-9a0c-0305e82c3301"


def bad(**changes: Any) -> dict[str, Any]:
    event = {**GOOD, "id": "bad-1"}
    for key, value in changes.items():
        if value is ...:
            event.pop(key, None)
        else:
            event[key] = value
    return event


async def nothing_written(herald: RunningHerald) -> None:
    rows = await herald.herald.db.fetchall("SELECT COUNT(*) AS n FROM notifications")
    assert rows[0]["n"] == 0
    rows = await herald.herald.db.fetchall("SELECT COUNT(*) AS n FROM deliveries")
    assert rows[0]["n"] == 0


@pytest.mark.parametrize(
    ("event", "field", "code"),
    [
        (bad(type=...), "type", "missing_field"),
        (bad(title=...), "title", "missing_field"),
        (bad(recipients=...), "recipients", "missing_field"),
        (bad(title="x" * 201), "title", "invalid_field"),
        (bad(text="x" * 4001), "text", "invalid_field"),
        (bad(title=42), "title", "invalid_field"),
        (bad(severity="fatal"), "severity", "invalid_field"),
        (bad(url="http://insecure.example.com"), "url", "invalid_field"),
        (bad(icon="javascript:alert(1)"), "icon", "invalid_field"),
        (bad(urgency="asap"), "urgency", "invalid_field"),
        (bad(expiresAt="2030-01-01T00:00:00"), "expiresAt", "invalid_field"),
        (bad(expiresAt="tomorrow"), "expiresAt", "invalid_field"),
        (bad(id="has space"), "id", "invalid_field"),
        (bad(id="x" * 201), "id", "invalid_field"),
        (bad(recipients={"users": []}), "recipients.users", "invalid_field"),
        (bad(recipients={"users": None, "all": None}), "recipients", "invalid_field"),
        (bad(recipients={"groups": ["sales"]}), "recipients.groups.0", "invalid_field"),
        (bad(recipients={"groups": []}), "recipients.groups", "invalid_field"),
        (bad(recipients={"groups": [GROUP] * 101}), "recipients.groups", "invalid_field"),
        (bad(recipients={"teams": ["19:x@thread.tacv2/../a"]}), "recipients.teams.0",
         "invalid_field"),
        (bad(recipients={"channels": [{"teamId": "19:a@thread.tacv2"}]}),
         "recipients.channels.0.channelId", "missing_field"),
        (bad(recipients={"channels": [{"teamId": GROUP, "channelId": "19:c@thread.tacv2"}]}),
         "recipients.channels.0.teamId", "invalid_field"),
        (bad(recipients={"channels": [{"teamId": "19:a@thread.tacv2", "channelId": "19:c@"
                                       "thread.tacv2", "name": "x"}]}),
         "recipients.channels.0.name", "unknown_field"),
        (bad(recipients={"all": False}), "recipients.all", "invalid_field"),
        (bad(recipients={"users": ["u"] * 10_001}), "recipients.users", "invalid_field"),
        (bad(recipients={"users": [" padded "]}), "recipients.users.0", "invalid_field"),
        (bad(card={"type": "HeroCard"}), "card", "invalid_field"),
        (bad(prompt={"text": "More?", "choices": []}), "prompt.choices", "invalid_field"),
        (bad(colour="red"), "colour", "unknown_field"),
    ],
)
async def test_invalid_events_are_400_with_the_field(
    herald: RunningHerald, event: dict[str, Any], field: str, code: str
) -> None:
    status, body = await herald.post_event(event)
    assert status == 400, body
    assert body["error"]["code"] == code
    assert body["error"]["field"] == field
    assert body["error"]["message"]
    await nothing_written(herald)


@pytest.mark.parametrize(
    ("data", "content_type", "status", "code"),
    [
        (b"{not json", "application/json", 400, "invalid_json"),
        (b"[1, 2]", "application/json", 400, "invalid_field"),
        (b"\xff\xfe", "application/json", 400, "invalid_json"),
        (b'{"type": "x"}', "text/plain", 415, "unsupported_media_type"),
    ],
)
async def test_unreadable_bodies(
    herald: RunningHerald, data: bytes, content_type: str, status: int, code: str
) -> None:
    got, body = await herald.request(
        "POST", "/api/notifications", data=data, headers={"Content-Type": content_type}
    )
    assert (got, body["error"]["code"]) == (status, code)
    await nothing_written(herald)


async def test_body_over_256_kb_is_413(herald: RunningHerald) -> None:
    event = bad(text=None, data={"blob": "x" * (256 * 1024)})
    status, body = await herald.post_event(event)
    assert status == 413, body
    assert body["error"]["code"] == "body_too_large"
    await nothing_written(herald)


@pytest.mark.parametrize(
    "header",
    [None, "Bearer wrong-key", "Basic dGVzdDp0ZXN0", "Bearer", "test-key-0123456789"],
)
async def test_without_a_valid_key_is_401(herald: RunningHerald, header: str | None) -> None:
    headers = {"Authorization": header} if header is not None else {}
    for method, path in [
        ("POST", "/api/notifications"),
        ("GET", "/api/notifications/x"),
        ("GET", "/api/users/x/notifications"),
        ("POST", "/api/users/x/notifications/read-all"),
    ]:
        status, body = await herald.request(method, path, json=GOOD, headers=headers, auth=False)
        assert status == 401, (method, path, body)
        assert body["error"]["code"] == "unauthorized"
    await nothing_written(herald)


async def test_unknown_ids_are_404(herald: RunningHerald) -> None:
    status, body = await herald.request("GET", "/api/notifications/nope")
    assert (status, body["error"]["code"]) == (404, "not_found")
    status, body = await herald.request("GET", "/api/users/nobody/notifications")
    assert status == 404
    status, body = await herald.request("GET", "/api/users/nobody/notifications?unread=maybe")
    assert (status, body["error"]["field"]) == (400, "unread")


async def test_health_and_spec_need_no_key(herald: RunningHerald) -> None:
    assert (await herald.request("GET", "/healthz", auth=False))[0] == 200
    status, body = await herald.request("GET", "/readyz", auth=False)
    assert status == 200 and body["status"] == "ready"
    status, body = await herald.request("GET", "/openapi.json", auth=False)
    assert status == 200 and body["openapi"].startswith("3.")
    assert "/api/notifications" in body["paths"]


class TestMessagesEndpoint:
    """What the SDK would turn into 500s is answered with a 4xx (PEERS.md)."""

    async def test_non_jwt_authorization_header_is_401(self, emulator: Emulator) -> None:
        user = emulator.user()
        status = await emulator.post(
            emulator.activity(user, "message", text="hi"),
            headers={"Authorization": "Bearer not-a-jwt"},
        )
        assert status == 401

    async def test_malformed_bodies(self, herald: RunningHerald) -> None:
        for data, content_type, expected in [
            (b"{", "application/json", 400),
            (b"[]", "application/json", 400),
            (b'{"text": "no type"}', "application/json", 400),
            (b'{"type": "message"}', "text/plain", 415),
        ]:
            status, _ = await herald.request(
                "POST",
                "/api/messages",
                data=data,
                auth=False,
                headers={"Content-Type": content_type},
            )
            assert status == expected, data

    async def test_with_an_app_id_unauthenticated_activities_are_401(
        self, herald_factory: HeraldFactory
    ) -> None:
        secured = await herald_factory(
            MicrosoftAppId="00000000-0000-0000-0000-000000000001",
            MicrosoftAppPassword="secret",
        )
        emulator = Emulator(secured, "http://127.0.0.1:9")
        user = emulator.user()
        assert await emulator.post(emulator.activity(user, "message", text="hi")) == 401
        assert (
            await emulator.post(
                emulator.activity(user, "message", text="hi"),
                headers={"Authorization": "Bearer not-a-jwt"},
            )
            == 401
        )


TEAMS_CARD_LIMIT = 24 * 1024
"""What api/schemas.py allows a card, as the attachment the bot sends (Teams refuses a whole
message over about 28 KB)."""


def attachment_size(card: dict[str, Any]) -> int:
    """The card as the bot sends it: an attachment, compact UTF-8 JSON."""
    document = {"contentType": "application/vnd.microsoft.card.adaptive", "content": card}
    return len(json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode())


def card_of_size(size: int, filler: str = "x") -> dict[str, Any]:
    """An Adaptive Card whose attachment is `size` bytes (or the next size `filler` allows)."""

    def card(n: int) -> dict[str, Any]:
        return {
            "type": "AdaptiveCard",
            "version": "1.5",
            "body": [{"type": "TextBlock", "text": filler * n, "wrap": True}],
        }

    base = attachment_size(card(0))
    per = attachment_size(card(1)) - base
    return card(-(-(size - base) // per))


async def test_a_card_too_large_for_teams_is_400_at_post(herald: RunningHerald) -> None:
    # Issue 11 (8): a 100 KB card was accepted (202) and failed only at send time, for every
    # recipient, since Teams caps a message at about 28 KB.
    for card in (card_of_size(100 * 1024), card_of_size(TEAMS_CARD_LIMIT + 1),
                 card_of_size(TEAMS_CARD_LIMIT + 2, "ü")):
        status, body = await herald.post_event(bad(card=card))
        assert status == 400, body
        assert body["error"]["code"] == "card_too_large"
        assert body["error"]["field"] == "card"
        assert f"{attachment_size(card):,}" in body["error"]["message"]
        assert f"{TEAMS_CARD_LIMIT:,}" in body["error"]["message"]
    await nothing_written(herald)


async def test_a_card_at_the_limit_is_delivered_to_teams(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    ada = emulator.user("Ada")
    assert await emulator.join(ada) in (200, 201)
    await connector.wait_for(1)  # the welcome
    card = card_of_size(TEAMS_CARD_LIMIT)
    assert attachment_size(card) == TEAMS_CARD_LIMIT
    status, body = await herald.post_event(
        {**GOOD, "id": "big-card", "card": card, "recipients": {"users": [ada.key]}}
    )
    assert status == 202, body
    await herald.wait_status("big-card")
    sent = connector.sent(ada.conversation_id)[-1].body
    assert sent["attachments"][0]["content"] == card
    assert (await herald.status("big-card"))["channels"]["conversation"]["delivered"] == 1
