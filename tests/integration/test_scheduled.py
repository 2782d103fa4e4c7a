"""Scheduled sends: an event's `sendAt` (RFC 3339). Nothing is expanded or sent before it, a
restart in between changes nothing, it can be recalled until then, and a time already past
is sent now (the answer says so)."""

from __future__ import annotations

import asyncio
import math
import time
from datetime import UTC, datetime
from typing import Any

from tests.harness import EmulatedUser, Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn


def rfc3339(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def event(nid: str, user: EmulatedUser, send_at: Any, **fields: Any) -> dict[str, Any]:
    return {
        "id": nid,
        "type": "hr.reminder",
        "title": "Timesheets are due",
        "sendAt": send_at,
        "recipients": {"users": [user.key]},
        **fields,
    }


async def person(herald: RunningHerald, connector: ConnectorStandIn) -> EmulatedUser:
    user = Emulator(herald, connector.url).user("Ada")
    assert await Emulator(herald, connector.url).join(user) in (200, 201)
    connector.clear()
    return user


async def test_nothing_goes_before_send_at_even_across_a_restart(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    ada = await person(herald, connector)
    due = math.ceil(time.time()) + 3
    code, body = await herald.post_event(event("monday-9", ada, rfc3339(due)))
    assert code == 202, body
    assert body["status"] == "scheduled" and body["sendAt"] == rfc3339(due)
    status = await herald.status("monday-9")
    assert status["status"] == "scheduled" and status["sendAt"] == rfc3339(due)
    assert sum(status["counters"].values()) == 0  # not even expanded

    await herald.restart()
    await asyncio.sleep(0.5)
    assert (await herald.status("monday-9"))["status"] == "scheduled"
    assert connector.sent() == []

    [card] = await connector.wait_for(1, timeout=10.0)
    assert time.time() >= due
    assert card.conversation_id == ada.conversation_id
    status = await herald.wait_status("monday-9")
    assert status["counters"]["delivered"] == 1


async def test_a_scheduled_send_can_be_recalled_before_it_goes(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    ada = await person(herald, connector)
    due = math.ceil(time.time()) + 2
    code, body = await herald.post_event(event("later-1", ada, rfc3339(due)))
    assert code == 202 and body["status"] == "scheduled", body
    code, body = await herald.request("DELETE", "/api/notifications/later-1")
    assert code == 200, body
    assert (body["cancelled"], body["deleting"], body["withdrawn"]) == (0, 0, 0)
    await asyncio.sleep(max(0.0, due - time.time()) + 1.0)
    assert connector.sent() == []
    status = await herald.status("later-1")
    assert status["status"] == "recalled" and sum(status["counters"].values()) == 0


async def test_a_send_at_in_the_past_is_sent_now_and_the_answer_says_so(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    ada = await person(herald, connector)
    code, body = await herald.post_event(event("past-1", ada, "2020-01-06T09:00:00+01:00"))
    assert code == 202, body
    assert body["status"] == "accepted" and "past" in body["note"]
    await connector.wait_for(1, timeout=10.0)
    assert (await herald.wait_status("past-1"))["counters"]["delivered"] == 1

    for bad in ("next monday", "2030-01-06 09:00", "2030-01-06T09:00:00", 1767690000):
        code, body = await herald.post_event(event("bad-1", ada, bad))
        assert code == 400, (bad, body)
        assert body["error"]["field"] == "sendAt"
