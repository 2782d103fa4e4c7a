"""The rules the router applies, end to end: preferences set through the API or the chat, an
event posted, and what the status endpoint, the outbox and the chat then show."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from delivery.channel import ChannelRegistry
from delivery.conversation import ConversationChannel
from delivery.outbox_sqlite import SqliteDeliveryQueue
from delivery.router import Router
from notifications.event import StoredEvent
from preferences.rules import DeliveryPolicy
from storage.records import StoredReference, UserRecord
from storage.sqlite import SqliteDatabase
from storage.sqlite_conversations import SqliteConversationStore
from storage.sqlite_notifications import SqliteNotificationStore
from storage.sqlite_users import SqliteUserStore
from tests.conftest import HeraldFactory
from tests.harness import Emulator, RunningHerald
from tests.integration.chat import Chat, call, chat
from tests.peers.connector import ConnectorStandIn


def event(c: Chat, notification_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": notification_id,
        "type": "training.due",
        "title": "Security training due",
        "recipients": {"users": [c.user.key]},
        **fields,
    }


async def person(herald: RunningHerald, connector: ConnectorStandIn, **kwargs: Any) -> Chat:
    c = chat(herald, Emulator(herald, connector.url), connector, **kwargs)
    await c.join()
    await c.say("yes")
    return c


async def set_prefs(c: Chat, **changes: Any) -> None:
    body, etag = await c.preferences()
    code, saved, _ = await call(
        c.herald,
        "PUT",
        f"/api/users/{c.user.key}/preferences",
        json={**body, **changes},
        headers={"If-Match": etag},
    )
    assert code == 200, saved


async def outcome(c: Chat, notification_id: str, **fields: Any) -> dict[str, Any]:
    """Post the event and wait until every delivery is settled."""
    code, body = await c.herald.post_event(event(c, notification_id, **fields))
    assert code == 202, body
    return await c.herald.wait_status(notification_id)


async def deferred(c: Chat, notification_id: str, **fields: Any) -> dict[str, Any]:
    """Post the event and wait until it is expanded (a deferred delivery stays queued)."""
    code, body = await c.herald.post_event(event(c, notification_id, **fields))
    assert code == 202, body
    return await c.herald.wait_status(notification_id, lambda s: s["status"] != "accepted")


async def test_a_channel_switched_off_is_skipped_as_preference(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    c = await person(herald, connector)
    await c.say("teams off")
    status = await outcome(c, "off-1", urgency="high")
    assert status["reasons"] == {"skipped:preference": 1}
    assert status["channels"]["conversation"]["skipped"] == 1
    assert await c.quiet() == []
    await c.say("teams on")
    status = await outcome(c, "off-2")
    assert status["counters"]["delivered"] == 1


async def test_muted_types_are_skipped_unless_urgent_and_critical(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    herald = await herald_factory(HERALD_CRITICAL_TYPES="Security.Alert, it.outage")
    c = await person(herald, connector)
    await set_prefs(c, mutedTypes=["training.due", "security.alert"])

    status = await outcome(c, "muted-1", urgency="high")
    assert status["reasons"] == {"skipped:muted": 1}  # high, but not a critical type
    status = await outcome(c, "muted-2", type="security.alert", urgency="normal")
    assert status["reasons"] == {"skipped:muted": 1}  # critical, but routine
    assert await c.quiet() == []

    status = await outcome(c, "muted-3", type="Security.Alert", urgency="high")
    assert status["counters"]["delivered"] == 1  # nobody can mute an urgent critical event
    [card] = await c.wait_new(1)
    assert card["attachments"]

    status = await outcome(c, "not-muted", type="case.assigned")
    assert status["counters"]["delivered"] == 1


async def test_quiet_hours_defer_to_the_end_of_the_window_and_urgent_goes_through(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    zone = ZoneInfo("Asia/Kolkata")  # UTC+05:30 all year: the window is read in the user's zone
    c = await person(herald, connector)
    now = datetime.now(zone)
    start = (now - timedelta(hours=1)).strftime("%H:%M")
    end_local = (now + timedelta(hours=1)).replace(second=0, microsecond=0)
    await c.say(f"quiet {start}-{end_local:%H:%M}")
    await c.say("timezone Asia/Kolkata")

    status = await deferred(c, "quiet-1")
    assert status["status"] == "delivering"
    assert status["counters"]["queued"] == 1 and status["counters"]["delivered"] == 0
    # Queued with a due time: the end of the window, in UTC, shown like createdAt.
    window_end = end_local.astimezone(UTC)
    assert status["nextDueAt"] == window_end.isoformat().replace("+00:00", "Z")
    assert datetime.fromisoformat(status["nextDueAt"]) == window_end
    row = await herald.herald.db.fetchone(
        "SELECT status, reason, due_at FROM deliveries WHERE notification_id = ?", ("quiet-1",)
    )
    assert row is not None
    assert (row["status"], row["reason"]) == ("queued", "quiet-hours")
    assert row["due_at"] == end_local.astimezone(UTC).timestamp()  # not dropped: deferred

    status = await outcome(c, "quiet-urgent", urgency="high")
    assert status["counters"]["delivered"] == 1
    assert status["nextDueAt"] is None  # nothing left to send
    [urgent] = await c.wait_new(1)
    assert "Security training due" in str(urgent["attachments"])

    status = await outcome(
        c, "quiet-expiring", expiresAt=(datetime.now(UTC) + timedelta(minutes=5)).isoformat()
    )
    assert status["reasons"] == {"skipped:expired": 1}  # it would expire before the window ends

    # The window ends: the rules are asked again at send time, so the clock reaching the end
    # is played here by the quiet hours ending (`quiet off`) and the due time moving to now.
    await c.say("quiet off")
    await herald.herald.db.write(
        "UPDATE deliveries SET due_at = ? WHERE notification_id = ?", (time.time(), "quiet-1")
    )
    herald.herald.worker.wake()
    status = await herald.wait_status("quiet-1")
    assert status["counters"]["delivered"] == 1
    assert status["nextDueAt"] is None
    [late] = await c.wait_new(1)
    assert late["attachments"]


async def test_expired_events_are_skipped_as_expired(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    c = await person(herald, connector)
    status = await outcome(c, "gone", expiresAt="2021-01-01T00:00:00Z")
    assert status["reasons"] == {"skipped:expired": 1}


# --- quiet hours across daylight-saving changes, through the router and the outbox ----------


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[SqliteDatabase]:
    database = SqliteDatabase(tmp_path / "herald.db", synchronous="NORMAL")
    await database.open()
    yield database
    await database.close()


def _utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("zone", "start", "end", "now", "due"),
    [
        # Berlin springs forward at 01:00 UTC (02:00 CET → 03:00 CEST): 02:30 never happens.
        ("Europe/Berlin", "01:30", "02:30", _utc(2026, 3, 29, 0, 45), _utc(2026, 3, 29, 1, 0)),
        # Overnight window over the spring-forward night: 07:00 CEST is 05:00 UTC.
        ("Europe/Berlin", "22:00", "07:00", _utc(2026, 3, 28, 22, 0), _utc(2026, 3, 29, 5, 0)),
        # Berlin falls back at 01:00 UTC (03:00 CEST → 02:00 CET): the first 02:30 ends it.
        ("Europe/Berlin", "01:30", "02:30", _utc(2026, 10, 25, 0, 10), _utc(2026, 10, 25, 0, 30)),
        # New York falls back at 06:00 UTC: 02:00 EDT becomes 01:00 EST, 02:00 EST is 07:00 UTC.
        ("America/New_York", "01:00", "02:00", _utc(2026, 11, 1, 5, 30), _utc(2026, 11, 1, 7, 0)),
    ],
)
async def test_router_defers_to_the_real_end_of_the_window_across_dst(
    db: SqliteDatabase, zone: str, start: str, end: str, now: datetime, due: datetime
) -> None:
    users = SqliteUserStore(db)
    conversations = SqliteConversationStore(db)
    notifications = SqliteNotificationStore(db)
    queue = SqliteDeliveryQueue(db)
    await users.upsert_user(UserRecord(user_id="u1", channel_id="emulator"))
    await users.put_preferences(
        "u1",
        {"optedIn": True, "quietHours": {"start": start, "end": end}, "timeZone": zone},
        None,
    )
    await conversations.upsert(
        StoredReference("u1", "emulator", "conv-1", "http://127.0.0.1:1", {"conversation": {}})
    )
    # Only `targets` (the conversation store) is used while routing.
    channel = ConversationChannel(conversations, None, None)  # type: ignore[arg-type]
    router = Router(
        users,
        notifications,
        queue,
        ChannelRegistry([channel]),
        DeliveryPolicy(),
        clock=now.timestamp,
    )
    document = StoredEvent.from_document(
        {"id": "n1", "type": "a", "title": "t", "recipients": {"users": ["u1"]}}
    )
    await notifications.put("n1", "hash", document, "a", 1)
    await router.expand("n1")
    row = await db.fetchone("SELECT status, reason, due_at FROM deliveries")
    assert row is not None
    assert (row["status"], row["reason"]) == ("queued", "quiet-hours")
    assert datetime.fromtimestamp(row["due_at"], UTC) == due
