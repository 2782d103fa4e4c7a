"""Preferences changed while a delivery waits (quiet hours, retries) win at send time."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from tests.harness import Emulator, RunningHerald
from tests.integration.chat import chat
from tests.peers.connector import ConnectorStandIn


async def test_opting_out_during_a_quiet_hours_deferral_cancels_it(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    c = chat(herald, Emulator(herald, connector.url), connector)
    await c.join()
    await c.say("yes")
    zone = ZoneInfo("Asia/Kolkata")
    now = datetime.now(zone)
    await c.say("timezone Asia/Kolkata")
    await c.say(f"quiet {now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}")
    code, _ = await herald.post_event(
        {
            "id": "deferred-then-opted-out",
            "type": "training.due",
            "title": "Training due",
            "recipients": {"users": [c.user.key]},
        }
    )
    assert code == 202
    status = await herald.wait_status(
        "deferred-then-opted-out", lambda s: s["counters"]["queued"] == 1
    )
    sent_before = len(connector.sent(c.user.conversation_id))

    await c.say("stop")
    await c.say("yes")  # confirm: everything off
    await herald.herald.db.write(
        "UPDATE deliveries SET due_at = ? WHERE notification_id = ?",
        (time.time(), "deferred-then-opted-out"),
    )
    herald.herald.worker.wake()
    status = await herald.wait_status("deferred-then-opted-out")
    assert status["counters"]["skipped"] == 1
    assert status["reasons"] == {"skipped:opted-out": 1}
    cards = [
        r
        for r in connector.sent(c.user.conversation_id)[sent_before:]
        if r.body.get("attachments") and "Training due" in str(r.body["attachments"])
    ]
    assert cards == []


async def test_a_deferral_still_inside_quiet_hours_waits_again(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    c = chat(herald, Emulator(herald, connector.url), connector)
    await c.join()
    await c.say("yes")
    await c.say("timezone Asia/Kolkata")
    now = datetime.now(ZoneInfo("Asia/Kolkata"))
    await c.say(f"quiet {now - timedelta(hours=1):%H:%M}-{now + timedelta(hours=1):%H:%M}")
    await herald.post_event(
        {
            "id": "still-quiet",
            "type": "training.due",
            "title": "Training due",
            "recipients": {"users": [c.user.key]},
        }
    )
    await herald.wait_status("still-quiet", lambda s: s["counters"]["queued"] == 1)
    await herald.herald.db.write(
        "UPDATE deliveries SET due_at = ? WHERE notification_id = ?", (time.time(), "still-quiet")
    )
    herald.herald.worker.wake()
    deadline = time.time() + 5
    while time.time() < deadline:
        row = await herald.herald.db.fetchone(
            "SELECT status, due_at FROM deliveries WHERE notification_id = ?", ("still-quiet",)
        )
        assert row is not None
        if row["due_at"] > time.time() + 60:
            break
        await asyncio.sleep(0.02)
    assert row["status"] == "queued" and row["due_at"] > time.time() + 60
