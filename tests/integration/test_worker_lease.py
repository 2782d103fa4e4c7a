"""A lease runs from when it was granted, not from when the worker got round to the job.

Loading a leased batch (its notifications and targets) can take seconds on a loaded machine
or a slow store. If the worker measured a job's remaining lease from the end of that loading,
it could start a send whose lease had already run out, while another instance leases and sends
the same job: a second card (seen as duplicates in the two-instance test under load). The job
must be given back instead, and sent once by whoever leases it next.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from delivery.channel import ChannelRegistry, DeliveryResult, Pace, Target
from delivery.ledger_sqlite import SqliteDeliveryLedger
from delivery.outbox import DeliveryJob, NewDelivery
from delivery.outbox_sqlite import SqliteDeliveryQueue
from delivery.worker import DeliveryWorker
from notifications.event import StoredEvent
from storage.records import NotificationRecord
from storage.sqlite import SqliteDatabase
from storage.sqlite_notifications import SqliteNotificationStore

LEASE = 1.0
USERS = 4


@dataclass
class SlowFirstLoad:
    """A channel whose first `load` takes most of a lease (a store answering slowly once)."""

    delay: float
    name: str = "slow"
    loads: int = 0
    sends: list[tuple[str, int]] = field(default_factory=list)
    """(user, how many loads had happened when it was sent)."""

    async def targets(self, user_ids: Sequence[str]) -> dict[str, list[Target]]:
        return {user: [Target(user)] for user in user_ids}

    async def load(self, jobs: Sequence[DeliveryJob]) -> dict[int, Any]:
        self.loads += 1
        if self.loads == 1:
            await asyncio.sleep(self.delay)
        return {job.id: job.target for job in jobs}

    def pace(self, target: Any) -> Pace | None:
        return None

    async def send(
        self, job: DeliveryJob, target: Any, notification: NotificationRecord
    ) -> DeliveryResult:
        self.sends.append((job.user_id, self.loads))
        return DeliveryResult.delivered()

    async def retire(self, job: DeliveryJob, reason: str) -> None:
        return None

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def stores(
    tmp_path: Path,
) -> AsyncIterator[tuple[SqliteDeliveryQueue, SqliteDeliveryLedger, SqliteNotificationStore]]:
    db = SqliteDatabase(tmp_path / "herald.db")
    await db.open()
    notifications = SqliteNotificationStore(db)
    event = StoredEvent.from_document(
        {"id": "n", "type": "t", "title": "Lease", "recipients": {"all": True}}
    )
    await notifications.put("n", hashlib.sha256(b"n").hexdigest(), event, "t", USERS)
    yield SqliteDeliveryQueue(db), SqliteDeliveryLedger(db), notifications
    await db.close()


async def test_a_job_whose_lease_ran_out_while_loading_is_given_back_not_sent(
    stores: tuple[SqliteDeliveryQueue, SqliteDeliveryLedger, SqliteNotificationStore],
) -> None:
    queue, ledger, notifications = stores
    rows = [
        NewDelivery(f"u{i}", "slow", f"u{i}", "queued", time.time() - 1) for i in range(USERS)
    ]
    await queue.add_page("n", 1, rows, [], None)
    channel = SlowFirstLoad(delay=0.9 * LEASE)  # past the 75 % margin, within the lease
    worker = DeliveryWorker(
        queue, notifications, ChannelRegistry([channel]),
        concurrency=4, lease_seconds=LEASE, idle_poll_seconds=0.1,
    )
    await worker.start()
    try:
        deadline = time.monotonic() + 20
        while (await ledger.counters("n")).totals["delivered"] < USERS:
            assert time.monotonic() < deadline, channel.sends
            await asyncio.sleep(0.05)
    finally:
        await worker.stop()

    assert sorted(user for user, _ in channel.sends) == [f"u{i}" for i in range(USERS)]
    # None was sent from the batch whose lease had mostly gone while it loaded.
    assert all(loads >= 2 for _, loads in channel.sends), channel.sends
