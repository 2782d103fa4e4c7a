"""Read and acknowledged, one state per (person, notification), set from every surface.

Each surface is played over real sockets: the chat (a card's *Mark read* and acknowledge
buttons, sent the way Teams sends an Action.Submit with `replyToId` = the card, answered by
updating the card in place on the Bot Connector stand-in), a Teams read receipt (the event
activity Teams sends the bot), the mobile app (its `devices` link token), a backend (API key),
the browser's service worker (its subscription's endpoint and auth secret), and the inbox page.
Read anywhere shows everywhere: the live inbox stream reports it, and the unread count in the
inbox, in pushes' badges and in the answers follows.
"""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from dialogs.engagement_flow import READ_RECEIPT
from tests.conftest import ON_EVERY_BACKEND
from tests.harness import API_KEY, EmulatedUser, Emulator, RunningHerald
from tests.integration.chat import (
    Chat,
    button,
    card_texts,
    cards,
    chat,
    everything,
    teams_chat,
)
from tests.integration.test_inbox_api import bearer, inbox_token, stream
from tests.peers.connector import ConnectorStandIn
from tests.peers.webpush import WebPushTesting

POLICY = "I have read the policy"


def policy(user: EmulatedUser, nid: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": nid,
        "type": "hr.policy",
        "title": "The new travel policy",
        "text": "Please read it before your next trip.",
        "recipients": {"users": [user.key]},
        **fields,
    }


async def receive(c: Chat, event: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Post the event; the card the person got and its activity id."""
    code, body = await c.herald.post_event(event)
    assert code == 202, body
    [card] = await c.wait_new(1)
    await c.herald.wait_status(event["id"])
    record = c.records()[-1]
    assert record.activity_id is not None
    return card, record.activity_id


async def entry(herald: RunningHerald, user: EmulatedUser, nid: str) -> dict[str, Any]:
    code, inbox = await herald.request(
        "GET", "/api/inbox", headers=bearer(inbox_token(herald, user)), auth=False
    )
    assert code == 200, inbox
    [item] = [i for i in inbox["items"] if i["id"] == nid]
    item["_unread"] = inbox["unread"]
    return dict(item)


async def joined(herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn) -> Chat:
    c = chat(herald, emulator, connector)
    await c.join()
    return c


@ON_EVERY_BACKEND
async def test_the_acknowledge_button_records_once_and_updates_the_card_in_place(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    card, card_id = await receive(c, policy(c.user, "policy-1", acknowledge={"text": POLICY}))
    data = button(card, POLICY)
    assert data == {"action": "acknowledge", "notificationId": "policy-1"}

    answer = await c.click_on(card_id, data)
    assert answer == [], [a.get("text") for a in answer]  # the card itself changes
    [update] = connector.updates(c.user.conversation_id)
    assert update.activity_id == card_id
    assert "Acknowledged" in card_texts(update.body)
    assert not [a for c_ in cards(update.body) for a in c_.get("actions", [])
                if a.get("type") == "Action.Submit"]
    first = await entry(herald, c.user, "policy-1")
    assert first["acknowledged"] is True and first["read"] is True
    assert first["readVia"] == "chat" and first["_unread"] == 0

    # A retry (Teams resends on a timeout), or a second click from an old copy: one record.
    await c.click_on(card_id, data)
    again = await entry(herald, c.user, "policy-1")
    assert again["acknowledgedAt"] == first["acknowledgedAt"]
    code, body = await herald.request(
        "POST", "/api/notifications/policy-1/acknowledge", json={"userId": c.user.key}
    )
    assert code == 200 and body["first"] is False and body["acknowledgedVia"] == "chat"


async def test_mark_read_on_the_card_and_in_chat(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    card, card_id = await receive(c, policy(c.user, "n-1"))
    await receive(c, policy(c.user, "n-2"))
    await receive(c, policy(c.user, "n-3"))
    assert (await entry(herald, c.user, "n-1"))["_unread"] == 3

    await c.click_on(card_id, button(card, "Mark read"))
    [update] = connector.updates(c.user.conversation_id)
    assert update.activity_id == card_id and "Read" in card_texts(update.body)
    read = await entry(herald, c.user, "n-1")
    assert read["read"] is True and read["readVia"] == "chat" and read["_unread"] == 2

    # Read on the card counts in `status` and `history` too.
    assert "Unread notifications: 2." in everything((await c.say("status"))[0])
    assert "(2 unread)" in everything((await c.say("history"))[0])
    answers = await c.say("mark all read")
    assert "2" in answers[0].get("text", ""), answers
    assert "Unread notifications: 0." in everything((await c.say("status"))[0])
    assert (await entry(herald, c.user, "n-3"))["_unread"] == 0
    assert (await entry(herald, c.user, "n-1"))["readVia"] == "chat"


@ON_EVERY_BACKEND
async def test_a_teams_read_receipt_marks_what_was_sent_up_to_that_message(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = teams_chat(herald, emulator, connector)
    await c.install()
    _, first_id = await receive(c, policy(c.user, "t-1"))
    _, second_id = await receive(c, policy(c.user, "t-2"))
    await receive(c, policy(c.user, "t-3"))

    receipt = emulator.activity(
        c.user, "event", name=READ_RECEIPT, value={"lastReadMessageId": second_id}
    )
    assert await emulator.post(receipt) in (200, 201)
    assert (await entry(herald, c.user, "t-1"))["readVia"] == "teams-receipt"
    assert (await entry(herald, c.user, "t-2"))["readVia"] == "teams-receipt"
    third = await entry(herald, c.user, "t-3")
    assert third["read"] is False and third["_unread"] == 1

    # Receipts for unknown messages, or without a value, change nothing and fail nothing.
    for value in ({"lastReadMessageId": "nope"}, {}, None):
        odd = emulator.activity(c.user, "event", name=READ_RECEIPT, value=value)
        assert await emulator.post(odd) in (200, 201)
    assert (await entry(herald, c.user, "t-3"))["read"] is False
    assert first_id != second_id


async def test_the_mobile_app_and_backends_report_reads_and_acknowledgements(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    other = await joined(herald, emulator, connector)
    await receive(c, policy(c.user, "m-1", acknowledge={"text": POLICY}))
    await receive(c, policy(c.user, "m-2"))
    app = bearer(herald.herald.links.issue(c.user.key, "devices"))

    code, body = await herald.request(
        "POST", "/api/notifications/m-2/read", headers=app, auth=False
    )
    assert code == 200, body
    assert body["userId"] == c.user.key and body["read"] is True and body["unread"] == 1
    assert (await entry(herald, c.user, "m-2"))["readVia"] == "mobile"

    code, body = await herald.request(
        "POST", "/api/notifications/m-1/acknowledge", headers=app, auth=False
    )
    assert code == 200 and body["first"] is True and body["acknowledgedVia"] == "mobile"
    assert body["unread"] == 0

    # The app's token is its person's only: naming another is refused, as is no token.
    code, body = await herald.request(
        "POST", "/api/notifications/m-2/read", json={"userId": other.user.key},
        headers=app, auth=False,
    )
    assert (code, body["error"]["code"]) == (403, "forbidden")
    code, _ = await herald.request("POST", "/api/notifications/m-2/read", auth=False)
    assert code == 401
    # A backend names the person; the notification must be theirs.
    code, body = await herald.request(
        "POST", "/api/notifications/m-2/read", json={"userId": other.user.key}
    )
    assert (code, body["error"]["code"]) == (404, "not_found")
    code, body = await herald.request("POST", "/api/notifications/m-2/read", json={})
    assert (code, body["error"]["field"]) == (400, "userId")
    # Acknowledging what asks for no acknowledgement is a conflict, not a record.
    code, body = await herald.request(
        "POST", "/api/notifications/m-2/acknowledge", json={"userId": c.user.key}
    )
    assert (code, body["error"]["code"]) == (409, "not_acknowledgeable")


async def test_a_click_on_the_browser_notification_reads_it_everywhere(
    herald: RunningHerald,
    emulator: Emulator,
    connector: ConnectorStandIn,
    push_service: WebPushTesting,
) -> None:
    c = await joined(herald, emulator, connector)
    code, key = await herald.request("GET", "/api/push/vapid-public-key", auth=False)
    assert code == 200
    sub = await push_service.subscribe(key["publicKey"])
    token = herald.herald.links.issue(c.user.key, "webpush")
    code, body = await herald.request(
        "POST", "/api/push/subscriptions",
        json={"subscription": sub.to_json(), "token": token}, auth=False,
    )
    assert code == 201, body
    await receive(c, policy(c.user, "w-1", acknowledge={"text": POLICY}))
    await receive(c, policy(c.user, "w-2"))
    pushes = [json.loads(m) for m in await push_service.wait_notifications(sub, 2)]
    # The badge is the unread count when each was sent; the acknowledge action travels along.
    assert [p["unread"] for p in pushes] == [1, 2]
    assert pushes[0]["acknowledge"] == POLICY and "acknowledge" not in pushes[1]

    async with stream(herald, inbox_token(herald, c.user)) as events:
        assert (await events.next()).event == "snapshot"
        proof = {"endpoint": sub.endpoint, "auth": sub.auth}
        code, body = await herald.request(
            "POST", "/api/push/read", json={**proof, "id": "w-2"}, auth=False
        )
        assert code == 200 and body["unread"] == 1, body
        live = await events.until(lambda e: e.event == "notification" and e.data["read"])
        assert live.data["id"] == "w-2" and live.data["readVia"] == "webpush"

        code, body = await herald.request(
            "POST", "/api/push/acknowledge", json={**proof, "id": "w-1"}, auth=False
        )
        assert code == 200 and body["acknowledgedVia"] == "webpush"
        acked = await events.until(
            lambda e: e.event == "notification" and e.data.get("acknowledged") is True
        )
        assert acked.data["id"] == "w-1"

    # A wrong secret proves nothing.
    code, body = await herald.request(
        "POST", "/api/push/read",
        json={"endpoint": sub.endpoint, "auth": "A" * 22, "id": "w-2"}, auth=False,
    )
    assert (code, body["error"]["code"]) == (401, "invalid_proof")
    # The next push's badge counts what is still unread: nothing.
    await receive(c, policy(c.user, "w-3"))
    latest = json.loads((await push_service.wait_notifications(sub, 3))[-1])
    assert latest["unread"] == 1


async def test_the_inbox_page_acknowledges_once(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    await receive(c, policy(c.user, "i-1", acknowledge={"text": POLICY}))
    await receive(c, policy(c.user, "i-2"))
    page = bearer(inbox_token(herald, c.user))
    item = await entry(herald, c.user, "i-1")
    assert item["acknowledge"] == {"text": POLICY} and item["acknowledged"] is False

    code, first = await herald.request(
        "POST", "/api/inbox/i-1/acknowledge", headers=page, auth=False
    )
    assert code == 200 and first["first"] is True and first["acknowledgedVia"] == "inbox"
    code, again = await herald.request(
        "POST", "/api/inbox/i-1/acknowledge", headers=page, auth=False
    )
    assert code == 200 and again["first"] is False
    assert again["acknowledgedAt"] == first["acknowledgedAt"]
    code, body = await herald.request(
        "POST", "/api/inbox/i-2/acknowledge", headers=page, auth=False
    )
    assert (code, body["error"]["code"]) == (409, "not_acknowledgeable")
    code, body = await herald.request(
        "POST", "/api/inbox/zz/acknowledge", headers=page, auth=False
    )
    assert code == 404


@ON_EVERY_BACKEND
async def test_the_funnel_in_the_status_and_the_report(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    people = [await joined(herald, emulator, connector) for _ in range(3)]
    ada, grace, lin = people
    code, body = await herald.post_event(
        {
            "id": "funnel-1",
            "type": "hr.policy",
            "title": "The new travel policy",
            "acknowledge": {"text": POLICY},
            "recipients": {"users": [p.user.key for p in people]},
        }
    )
    assert code == 202, body
    status = await herald.wait_status("funnel-1")
    assert status["engagement"] == {
        "recipients": 3, "read": 0, "acknowledged": 0, "readVia": {}, "acknowledgedVia": {},
    }
    cards_ = {p.user.key: (await p.wait_new(1))[0] for p in people}
    ada_card_id = ada.records()[-1].activity_id
    assert ada_card_id is not None
    await ada.click_on(ada_card_id, button(cards_[ada.user.key], POLICY))
    code, _ = await herald.request(
        "POST", "/api/notifications/funnel-1/read", json={"userId": grace.user.key}
    )
    assert code == 200

    status = await herald.status("funnel-1")
    assert status["engagement"] == {
        "recipients": 3,
        "read": 2,
        "acknowledged": 1,
        "readVia": {"api": 1, "chat": 1},
        "acknowledgedVia": {"chat": 1},
    }
    assert status["counters"]["delivered"] == 3  # delivery counters unchanged

    assert herald.http is not None
    async with herald.http.get(
        f"{herald.url}/api/notifications/funnel-1/report.csv",
        headers={"Authorization": f"Bearer {API_KEY}"},
    ) as response:
        assert response.status == 200
        rows = {r["userId"]: r for r in csv.DictReader(io.StringIO(await response.text()))}
    assert rows[ada.user.key]["readVia"] == "chat"
    assert rows[ada.user.key]["acknowledgedVia"] == "chat"
    assert rows[ada.user.key]["acknowledgedAt"].endswith("Z")
    assert rows[ada.user.key]["readAt"] == rows[ada.user.key]["acknowledgedAt"]
    assert (rows[grace.user.key]["readVia"], rows[grace.user.key]["acknowledgedAt"]) == ("api", "")
    assert [rows[lin.user.key][k] for k in ("readAt", "readVia", "acknowledgedAt")] == [""] * 3

    # Without an acknowledge request the funnel says so (null, not 0).
    await receive(ada, policy(ada.user, "plain-1"))
    assert (await herald.status("plain-1"))["engagement"]["acknowledged"] is None


async def test_a_question_card_keeps_the_acknowledge_button_apart_from_the_answers(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    card, _ = await receive(
        c,
        policy(c.user, "q-1", acknowledge={"text": POLICY},
               prompt={"text": "Travelling soon?", "choices": ["Yes", "No"]}),
    )
    [content] = cards(card)
    assert [a["title"] for a in content["actions"]] == ["Yes", "No"]  # answers only
    [apart] = [n for n in content["body"] if n.get("type") == "ActionSet"]
    assert [a["title"] for a in apart["actions"]] == [POLICY]
    assert button(card, POLICY) == {"action": "acknowledge", "notificationId": "q-1"}
