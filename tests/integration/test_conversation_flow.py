"""End to end over real sockets: Emulator-style activities in, Bot Connector stand-in out."""

from __future__ import annotations

import asyncio
import csv
import io
from typing import Any

from tests.conftest import ON_EVERY_BACKEND, HeraldFactory
from tests.harness import API_KEY, Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn, Member

CARD = "application/vnd.microsoft.card.adaptive"


def event(recipients: Any, **fields: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": "case.assigned",
        "title": "Case 4711 was assigned to you",
        "text": "Customer: Contoso. Priority: high.",
        "severity": "warning",
        "url": "https://crm.example.com/cases/4711",
        "recipients": recipients,
    }
    body.update(fields)
    return body


def card_of(activity: dict[str, Any]) -> dict[str, Any]:
    attachments = activity["attachments"]
    assert attachments[0]["contentType"] == CARD
    content: dict[str, Any] = attachments[0]["content"]
    return content


def card_text(activity: dict[str, Any]) -> str:
    """All TextBlock texts of a card, joined, to assert on what a person reads."""
    found: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if node.get("type") == "TextBlock":
                found.append(str(node.get("text", "")))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(card_of(activity))
    return "\n".join(found)


@ON_EVERY_BACKEND
async def test_install_welcomes_and_help_replies(
    emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user("Ada")
    assert await emulator.join(user) in (200, 201)
    welcome = await connector.wait_for(1)
    assert "Herald" in welcome[0].body["text"]
    assert welcome[0].conversation_id == user.conversation_id
    assert welcome[0].body["recipient"]["id"] == user.id

    assert await emulator.say(user, "help") in (200, 201)
    sent = await connector.wait_for(2)
    assert "status" in sent[1].body["text"]
    assert sent[1].reply_to_id is not None  # a reply to the user's message


@ON_EVERY_BACKEND
async def test_posted_event_arrives_as_card_in_the_chat(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user("Ada")
    await emulator.join(user)
    await connector.wait_for(1)

    code, body = await herald.post_event(event({"users": [user.key]}, id="case-4711"))
    assert code == 202, body
    assert body == {
        "id": "case-4711",
        "status": "accepted",
        "recipients": 1,
        "version": 1,
        "outcome": "created",
    }

    sent = await connector.wait_for(2)
    card = sent[1].body
    assert card["type"] == "message"
    assert card["conversation"]["id"] == user.conversation_id
    assert "Case 4711 was assigned to you" in card_text(card)
    assert "Contoso" in card_text(card)
    actions = card_of(card)["actions"]
    assert actions == [
        {"type": "Action.OpenUrl", "title": "Open", "url": "https://crm.example.com/cases/4711"},
        {
            "type": "Action.Submit",
            "title": "Mark read",
            "data": {"action": "markRead", "notificationId": "case-4711"},
        },
    ]

    status = await herald.wait_status("case-4711")
    assert status["counters"]["delivered"] == 1
    assert status["channels"]["conversation"]["delivered"] == 1

    code, history = await herald.request("GET", f"/api/users/{user.key}/notifications?unread=true")
    assert code == 200
    assert [i["id"] for i in history["items"]] == ["case-4711"]
    code, marked = await herald.request("POST", f"/api/users/{user.key}/notifications/read-all")
    assert (code, marked["updated"]) == (200, 1)
    code, history = await herald.request("GET", f"/api/users/{user.key}/notifications?unread=true")
    assert history["items"] == []


async def test_own_card_replaces_the_default(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    await emulator.join(user)
    await connector.wait_for(1)
    own = {
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": [{"type": "TextBlock", "text": "Custom body"}],
    }
    code, _ = await herald.post_event(event({"users": [user.key]}, id="own", card=own))
    assert code == 202
    sent = await connector.wait_for(2)
    assert card_of(sent[1].body) == own


@ON_EVERY_BACKEND
async def test_same_id_twice_sends_once_and_changed_content_edits_in_place(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    await emulator.join(user)
    await connector.wait_for(1)

    first = event({"users": [user.key]}, id="build-17", title="Build 17: 10%")
    assert (await herald.post_event(first))[0] == 202
    await herald.wait_status("build-17")
    code, again = await herald.post_event(first)
    assert (code, again["outcome"], again["version"]) == (202, "unchanged", 1)
    await asyncio.sleep(0.3)
    assert len(connector.sent(user.conversation_id)) == 2  # welcome + one card

    sent_id = connector.sent(user.conversation_id)[1].activity_id
    code, updated = await herald.post_event({**first, "title": "Build 17: 100%"})
    assert (code, updated["outcome"], updated["version"]) == (202, "updated", 2)
    await connector.wait_for(lambda c: len(c.updates(user.conversation_id)) == 1)
    edit = connector.updates(user.conversation_id)[0]
    assert edit.activity_id == sent_id
    assert "Build 17: 100%" in card_text(edit.body)
    await asyncio.sleep(0.2)
    assert len(connector.sent(user.conversation_id)) == 2  # no second message
    status = await herald.wait_status("build-17")
    assert status["version"] == 2 and status["counters"]["delivered"] == 1

    code, history = await herald.request("GET", f"/api/users/{user.key}/notifications")
    assert [i["title"] for i in history["items"]] == ["Build 17: 100%"]


async def test_unknown_users_are_counted_skipped(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    await emulator.join(user)
    code, body = await herald.post_event(
        event({"users": [user.key, "nobody@example.com", "ghost"]}, id="mixed")
    )
    assert (code, body["recipients"]) == (202, 3)
    status = await herald.wait_status("mixed")
    assert status["counters"]["delivered"] == 1
    assert status["counters"]["skipped"] == 2
    assert status["reasons"] == {"skipped:unknown-user": 2}


@ON_EVERY_BACKEND
async def test_throttled_then_delivered_once_after_retry_after(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    await emulator.join(user)
    await connector.wait_for(1)
    connector.fail(user.conversation_id, 429, retry_after=1, times=1)

    code, _ = await herald.post_event(event({"users": [user.key]}, id="throttled"))
    assert code == 202
    await herald.wait_status("throttled", lambda s: s["counters"]["retrying"] == 1, timeout=5)
    rejected_at = connector.rejected(user.conversation_id)[0].at
    await herald.wait_status("throttled", timeout=10)
    cards = connector.sent(user.conversation_id)[1:]
    assert len(cards) == 1
    assert cards[0].at - rejected_at >= 0.95  # honoured Retry-After: 1


@ON_EVERY_BACKEND
async def test_forbidden_marks_the_conversation_dead(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    await emulator.join(user)
    await connector.wait_for(1)
    connector.fail(user.conversation_id, 403, code="ConversationBlockedByUser", times=None)

    await herald.post_event(event({"users": [user.key]}, id="blocked-1"))
    status = await herald.wait_status("blocked-1")
    assert status["counters"]["deadTargets"] == 1
    assert status["counters"]["retrying"] == 0
    attempts = len(connector.rejected(user.conversation_id))
    assert attempts == 1  # never retried

    # The dead conversation is not tried again for the next notification.
    await herald.post_event(event({"users": [user.key]}, id="blocked-2"))
    status = await herald.wait_status("blocked-2")
    assert status["counters"]["skipped"] == 1
    assert status["reasons"] == {"skipped:no-target": 1}
    assert len(connector.rejected(user.conversation_id)) == attempts

    # Talking to the bot again revives the conversation.
    connector.clear_failures()
    await emulator.say(user, "help")
    await herald.post_event(event({"users": [user.key]}, id="blocked-3"))
    status = await herald.wait_status("blocked-3")
    assert status["counters"]["delivered"] == 1


@ON_EVERY_BACKEND
async def test_restart_between_greeting_and_event_still_delivers(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    await emulator.join(user)
    await connector.wait_for(1)
    await herald.restart()
    code, _ = await herald.post_event(event({"users": [user.key]}, id="after-restart"))
    assert code == 202
    sent = await connector.wait_for(2)
    assert sent[1].conversation_id == user.conversation_id


@ON_EVERY_BACKEND
async def test_audience_all_reaches_everybody(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    users = [emulator.user(f"user{i}") for i in range(7)]
    for user in users:
        await emulator.join(user)
    await connector.wait_for(7)
    code, body = await herald.post_event(event({"all": True}, id="everyone"))
    assert (code, body["recipients"]) == (202, 7)
    await connector.wait_for(14)
    status = await herald.wait_status("everyone")
    assert status["counters"]["delivered"] == 7
    conversations = {r.conversation_id for r in connector.sent()[7:]}
    assert conversations == {u.conversation_id for u in users}


async def test_teams_user_addressed_by_email_from_the_roster(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.teams_user("Grace")
    connector.set_roster(
        user.conversation_id,
        [
            Member(
                id=user.id,
                name=user.name,
                aad_object_id=user.aad_object_id,
                email="grace@contoso.com",
                user_principal_name="grace.h@contoso.com",
                tenant_id=user.tenant_id,
            )
        ],
    )
    await emulator.say(user, "help")
    await connector.wait_for(1)

    async def alias_known() -> bool:
        code, _ = await herald.request("GET", "/api/users/GRACE@contoso.com/notifications")
        return code == 200

    for _ in range(100):
        if await alias_known():
            break
        await asyncio.sleep(0.05)
    code, _body = await herald.post_event(event({"users": ["grace.h@contoso.com"]}, id="by-upn"))
    assert code == 202
    sent = await connector.wait_for(2)
    assert sent[1].conversation_id == user.conversation_id
    assert sent[1].tenant_id == "tenant-1"


async def test_broadcast_event_posted_to_messages_is_rendered(
    emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    value = {"type": "hr.benefits", "title": "Benefits enrollment opened", "severity": "info"}
    assert await emulator.post(
        emulator.activity(user, "event", name="BroadcastEvent", value=value)
    ) in (200, 201)
    sent = await connector.wait_for(1)
    assert "Benefits enrollment opened" in card_text(sent[0].body)

    assert await emulator.post(
        emulator.activity(user, "event", name="BroadcastEvent", value={"title": "no type"})
    ) in (200, 201)
    sent = await connector.wait_for(2)
    assert "could not show" in sent[1].body["text"]


async def test_gives_up_after_max_attempts(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    herald = await herald_factory(HERALD_MAX_ATTEMPTS="3", HERALD_RETRY_BASE_SECONDS="0.01")
    emulator = Emulator(herald, connector.url)
    user = emulator.user()
    await emulator.join(user)
    await connector.wait_for(1)
    connector.fail(user.conversation_id, 503, times=None)
    await herald.post_event(event({"users": [user.key]}, id="doomed"))
    status = await herald.wait_status("doomed")
    assert status["counters"]["failed"] == 1
    assert status["reasons"] == {"failed:retries-exhausted": 1}
    assert len(connector.rejected(user.conversation_id)) == 3


async def test_expired_events_are_not_delivered(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    await emulator.join(user)
    await connector.wait_for(1)
    await herald.post_event(
        event({"users": [user.key]}, id="stale", expiresAt="2020-01-01T00:00:00Z")
    )
    status = await herald.wait_status("stale")
    assert status["counters"]["skipped"] == 1
    assert status["reasons"] == {"skipped:expired": 1}
    assert len(connector.sent(user.conversation_id)) == 1  # the welcome only


async def test_status_tells_the_user_their_id(
    emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    await emulator.say(user, "status")
    sent = await connector.wait_for(1)
    assert user.key in sent[0].body["text"]


@ON_EVERY_BACKEND
async def test_report_lists_every_recipient_and_channel(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    ok, blocked = emulator.user("ok"), emulator.user("blocked")
    for user in (ok, blocked):
        await emulator.join(user)
    await connector.wait_for(2)
    connector.fail(blocked.conversation_id, 403, times=None)
    await herald.post_event(
        event({"users": [ok.key, blocked.key, "=cmd|' /C calc'!A0"]}, id="report-1")
    )
    await herald.wait_status("report-1")
    assert herald.http is not None
    async with herald.http.get(
        f"{herald.url}/api/notifications/report-1/report.csv",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as response:
        assert response.status == 200
        assert response.content_type == "text/csv"
        text = await response.text()
    rows = list(csv.DictReader(io.StringIO(text)))
    by_user = {row["userId"]: row for row in rows}
    assert by_user[ok.key]["status"] == "delivered"
    assert by_user[ok.key]["channel"] == "conversation"
    assert by_user[ok.key]["attempts"] == "1"
    assert by_user[blocked.key]["status"] == "deadTargets"
    assert by_user[blocked.key]["lastError"].startswith("403")
    unknown = by_user["'=cmd|' /C calc'!A0"]  # defused: no formula runs in a spreadsheet
    assert (unknown["status"], unknown["reason"], unknown["channel"]) == (
        "skipped", "unknown-user", ""
    )
    code, _ = await herald.request("GET", "/api/notifications/nope/report.csv")
    assert code == 404
