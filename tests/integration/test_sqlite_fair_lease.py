"""What only the embedded delivery queue can do: skip a backlogged lane when leasing, so the
worker never has to hold a tenant's whole backlog to reach the one job of another tenant behind
it; and tell a restarted process where each lane's fair clock stands."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from delivery.outbox import NewDelivery
from delivery.outbox_sqlite import SqliteDeliveryQueue
from notifications.event import StoredEvent
from storage.sqlite import SqliteDatabase
from storage.sqlite_notifications import SqliteNotificationStore

HOUR = 3600.0


@pytest.fixture
async def queue(tmp_path: Path) -> AsyncIterator[SqliteDeliveryQueue]:
    db = SqliteDatabase(tmp_path / "herald.db")
    await db.open()
    notifications = SqliteNotificationStore(db)
    for nid in ("big", "single"):
        event = StoredEvent.from_document(
            {"id": nid, "type": "t", "title": nid, "recipients": {"all": True}}
        )
        await notifications.put(nid, hashlib.sha256(nid.encode()).hexdigest(), event, "t", 0)
    yield SqliteDeliveryQueue(db)
    await db.close()


def _job(user: str, lane: str, tag: float, *, due: float | None = None) -> NewDelivery:
    return NewDelivery(
        user, "conversation", f"msteams|{user}", "queued",
        time.time() - 1 if due is None else due, lane=lane, tag=tag,
    )


async def test_a_backlogged_lane_is_skipped_and_the_job_behind_it_is_leased(
    queue: SqliteDeliveryQueue,
) -> None:
    await queue.add_page("big", 1, [_job(f"a{i}", "A", i) for i in range(5_000)], [], None)
    await queue.add_page("single", 1, [_job("b0", "B", 10_000.0)], [], None)
    first = await queue.lease(100, HOUR)
    assert {job.lane for job in first} == {"A"}  # A's tags are lower
    started = time.perf_counter()
    skipped = await queue.lease(100, HOUR, exclude_lanes=["A"])
    elapsed = time.perf_counter() - started
    assert [job.user_id for job in skipped] == ["b0"]
    assert elapsed < 1.0  # index-only skip over 4,900 rows (generous bound for a busy machine)
    assert await queue.lease(100, HOUR, exclude_lanes=["A"]) == []
    assert len(await queue.lease(100, HOUR)) == 100  # A's backlog is still there


async def test_next_due_ignores_excluded_lanes(queue: SqliteDeliveryQueue) -> None:
    later = time.time() + 600
    await queue.add_page("big", 1, [_job("a0", "A", 0.0)], [], None)
    await queue.add_page("single", 1, [_job("b0", "B", 0.0, due=later)], [], None)
    assert (await queue.next_due() or 0) <= time.time()
    assert await queue.next_due(exclude_lanes=["A"]) == pytest.approx(later)
    assert await queue.next_due(exclude_lanes=["A", "B"]) is None


async def test_lane_tags_are_the_lowest_outstanding_tag_per_lane(
    queue: SqliteDeliveryQueue,
) -> None:
    await queue.add_page(
        "big", 1, [_job("a0", "A", 7.0), _job("a1", "A", 8.0), _job("b0", "B", 3.0)], [], None
    )
    assert await queue.lane_tags() == {"A": 7.0, "B": 3.0}
