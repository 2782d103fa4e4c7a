"""Recall: DELETE /api/notifications/{id} cancels what is not sent, deletes the sent Teams
messages on the Bot Connector stand-in (DELETE activity), takes the notification out of the
inboxes, and nothing is sent after it returns, even racing a broadcast in progress."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from tests.conftest import ON_EVERY_BACKEND, HeraldFactory
from tests.harness import EmulatedUser, Emulator, RunningHerald
from tests.integration.chat import chat, teams_chat
from tests.integration.test_inbox_api import bearer, inbox_token
from tests.peers.connector import ConnectorStandIn


def outage(nid: str, users: list[EmulatedUser], **fields: Any) -> dict[str, Any]:
    return {
        "id": nid,
        "type": "it.outage",
        "title": "Mail is down",
        "recipients": {"users": [u.key for u in users]},
        **fields,
    }


def settled(status: dict[str, Any]) -> bool:
    counters = status["counters"]
    return status["status"] == "recalled" and not counters["queued"] and not counters["retrying"]


async def recall(herald: RunningHerald, nid: str) -> tuple[int, Any]:
    return await herald.request("DELETE", f"/api/notifications/{nid}")


@ON_EVERY_BACKEND
async def test_a_recall_deletes_the_sent_messages_and_empties_the_inboxes(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    ada, grace = chat(herald, emulator, connector), teams_chat(herald, emulator, connector)
    await ada.join()
    await grace.install()
    code, body = await herald.post_event(outage("out-1", [ada.user, grace.user]))
    assert code == 202, body
    await herald.wait_status("out-1")
    sent = {r.conversation_id: r.activity_id for r in connector.sent() if r.body.get("attachments")}
    assert set(sent) == {ada.user.conversation_id, grace.user.conversation_id}

    code, body = await recall(herald, "out-1")
    assert code == 200, body
    assert body["status"] == "recalled" and body["recalledAt"].endswith("Z")
    assert (body["cancelled"], body["deleting"], body["withdrawn"]) == (0, 2, 2)
    await connector.wait_for(lambda c: len(c.deletes()) == 2, timeout=10.0)
    assert {(r.conversation_id, r.activity_id) for r in connector.deletes()} == set(sent.items())

    status = await herald.wait_status("out-1", settled)
    assert status["status"] == "recalled" and status["recalledAt"] == body["recalledAt"]
    assert status["reasons"].get("skipped:deleted") == 2
    for person in (ada, grace):
        code, inbox = await herald.request(
            "GET", "/api/inbox", headers=bearer(inbox_token(herald, person.user)), auth=False
        )
        assert code == 200 and inbox["items"] == [] and inbox["unread"] == 0
    # Reading or acknowledging what was recalled finds nothing.
    code, _ = await herald.request(
        "POST", "/api/notifications/out-1/read", json={"userId": ada.user.key}
    )
    assert code == 404

    # Idempotent: the first time stays, nothing is deleted twice.
    code, again = await recall(herald, "out-1")
    assert code == 200 and again["recalledAt"] == body["recalledAt"]
    assert (again["deleting"], again["withdrawn"]) == (0, 2)
    await asyncio.sleep(0.3)
    assert len(connector.deletes()) == 2
    # The id stays taken: an update cannot bring it back.
    code, body = await herald.post_event(outage("out-1", [ada.user]))
    assert (code, body["error"]["code"]) == (409, "recalled")
    code, body = await recall(herald, "never-sent")
    assert (code, body["error"]["code"]) == (404, "not_found")


async def test_nothing_is_sent_after_a_recall_that_races_a_broadcast(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    # 8 sends in flight at most, each held 0.15 s: the broadcast takes seconds, and jobs are
    # leased (in the worker's scheduler) ahead of their send when the recall comes.
    herald = await herald_factory(HERALD_WORKERS="8")
    emulator = Emulator(herald, connector.url)
    people = [emulator.user(f"P{i}") for i in range(120)]
    for person in people:
        assert await emulator.join(person) in (200, 201)
    connector.clear()
    # Every send takes a while: many are in flight when the recall comes.
    connector.slow(None, 0.15)
    code, body = await herald.post_event(outage("race-1", people))
    assert code == 202, body
    await connector.wait_for(lambda c: len(c.sent()) >= 5, timeout=10.0)

    code, body = await recall(herald, "race-1")
    returned = time.monotonic()
    assert code == 200, body
    assert body["cancelled"] > 0
    connector.slow(None, 0)
    await asyncio.sleep(1.0)

    # Sends and replies (a delivery turn replies to its BroadcastEvent), refused ones too.
    sends = [r for r in connector.recorded if r.kind in ("send", "reply")]
    assert sends and all(r.at <= returned for r in sends), "a send arrived after the recall"
    assert len(sends) < len(people)
    # Whatever got through is taken back.
    delivered = {(r.conversation_id, r.activity_id) for r in sends if r.ok}
    await connector.wait_for(lambda c: len(c.deletes()) >= len(delivered), timeout=10.0)
    assert {(r.conversation_id, r.activity_id) for r in connector.deletes()} == delivered
    status = await herald.wait_status("race-1", settled)
    assert status["status"] == "recalled"
    assert status["counters"]["delivered"] == 0
    reasons = status["reasons"]
    assert reasons.get("skipped:recalled", 0) + reasons.get("skipped:deleted", 0) == len(people)
