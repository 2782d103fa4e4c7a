"""Resend: POST /api/notifications/{id}/resend creates a linked notification for just the people
a filter picks (failed, dead targets with a new conversation since, unread after N hours), and a
retry of the same request sends nothing twice."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from tests.harness import EmulatedUser, Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn


async def people(
    emulator: Emulator, connector: ConnectorStandIn, *names: str
) -> list[EmulatedUser]:
    """People who talked to the bot (their welcome messages forgotten)."""
    users = [emulator.user(name) for name in names]
    for user in users:
        assert await emulator.join(user) in (200, 201)
    connector.clear()
    return users


def event(nid: str, users: list[EmulatedUser]) -> dict[str, Any]:
    return {
        "id": nid,
        "type": "hr.policy",
        "title": "The new travel policy",
        "acknowledge": {"text": "I have read it"},
        "recipients": {"users": [u.key for u in users]},
    }


async def resend(herald: RunningHerald, nid: str, **body: Any) -> tuple[int, Any]:
    return await herald.request("POST", f"/api/notifications/{nid}/resend", json=body)


def sent_to(connector: ConnectorStandIn, user: EmulatedUser) -> int:
    return len([r for r in connector.sent(user.conversation_id) if r.body.get("attachments")])


async def test_a_reminder_goes_to_those_who_have_not_read_it(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    ada, grace, lin = await people(emulator, connector, "Ada", "Grace", "Lin")
    code, _ = await herald.post_event(event("policy-1", [ada, grace, lin]))
    assert code == 202
    await herald.wait_status("policy-1")
    code, _ = await herald.request(
        "POST", "/api/notifications/policy-1/read", json={"userId": grace.key}
    )
    assert code == 200

    # Not read for 5 hours: nobody yet (the entries are minutes old).
    code, body = await resend(herald, "policy-1", filter="unread", hours=5)
    assert (code, body["outcome"], body["id"]) == (200, "nobody", None)

    code, body = await resend(herald, "policy-1", filter="unread", hours=0)
    assert code == 202, body
    assert body["resendOf"] == "policy-1" and body["recipients"] == 2
    assert body["outcome"] == "created"
    reminder = body["id"]
    status = await herald.wait_status(reminder)
    assert status["resendOf"] == "policy-1" and status["recipients"] == 2
    assert status["counters"]["delivered"] == 2
    assert (sent_to(connector, ada), sent_to(connector, grace), sent_to(connector, lin)) == (
        2, 1, 2,
    )
    # The card is the same notification's, acknowledge button included; no link shows.
    card = connector.sent(ada.conversation_id)[-1].body
    assert "resendOf" not in str(card) and "I have read it" in str(card)

    # A retry of the same request (nothing changed): the same notification, nothing resent.
    code, again = await resend(herald, "policy-1", filter="unread", hours=0)
    assert code == 202 and again["id"] == reminder and again["outcome"] == "unchanged"
    await herald.wait_status(reminder)
    assert sent_to(connector, ada) == 2


async def test_failed_and_dead_targets_with_a_new_conversation(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    ada, grace, lin = await people(emulator, connector, "Ada", "Grace", "Lin")
    connector.fail(ada.conversation_id, 400, code="BadArgument", times=1)
    connector.fail(grace.conversation_id, 403, code="ConversationBlockedByUser", times=None)
    code, _ = await herald.post_event(event("outage-1", [ada, grace, lin]))
    assert code == 202
    status = await herald.wait_status("outage-1")
    assert (status["counters"]["failed"], status["counters"]["deadTargets"]) == (1, 1)

    code, body = await resend(herald, "outage-1", filter="failed")
    assert code == 202 and body["recipients"] == 1, body
    await herald.wait_status(body["id"])
    assert sent_to(connector, ada) == 1

    # Grace's chat is gone and she has no other yet: nobody to resend to.
    code, body = await resend(herald, "outage-1", filter="dead")
    assert (code, body["outcome"]) == (200, "nobody")
    # She talks to the bot again, in a new conversation: now she is picked.
    grace_again = replace(grace, conversation_id=f"{grace.conversation_id}-new")
    assert await emulator.join(grace_again) in (200, 201)
    connector.clear()
    code, body = await resend(herald, "outage-1", filter="dead")
    assert code == 202 and body["recipients"] == 1, body
    await herald.wait_status(body["id"])
    assert sent_to(connector, grace_again) == 1


async def test_bad_resend_requests(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    [ada] = await people(emulator, connector, "Ada")
    code, _ = await herald.post_event(event("p-1", [ada]))
    assert code == 202
    await herald.wait_status("p-1")
    for body, field in (
        ({"filter": "unread"}, "hours"),
        ({"filter": "failed", "hours": 2}, "hours"),
        ({"filter": "everyone"}, "filter"),
        ({"filter": "unread", "hours": -1}, "hours"),
        ({"filter": "failed", "extra": 1}, "extra"),
    ):
        code, answer = await resend(herald, "p-1", **body)
        assert code == 400, (body, answer)
        assert answer["error"]["field"] == field, answer
    code, answer = await resend(herald, "nope", filter="failed")
    assert (code, answer["error"]["code"]) == (404, "not_found")
    code, _ = await herald.request("DELETE", "/api/notifications/p-1")
    assert code == 200
    code, answer = await resend(herald, "p-1", filter="unread", hours=0)
    assert (code, answer["error"]["code"]) == (409, "recalled")
