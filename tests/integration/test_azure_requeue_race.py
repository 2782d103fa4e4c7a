"""Two instances on one Azure queue: a job re-queued by one is never lost to the other.

Re-queueing a job (a retry, a deferral, an edit) sends its new message first and then writes
the new token to the row. Another instance can receive that message in between; it then sees
the old token. It used to drop the message as stale, and the job stayed `queued` with no
message at all (CI saw 3 of 1,000 deliveries stuck with two instances). Here the second
instance receives the message at exactly that moment, every time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import pytest

from delivery.ledger_cosmos import CosmosDeliveryLedger
from delivery.outbox import DeliveryJob, NewDelivery, Settlement
from delivery.outbox_azure import AzureStorageDeliveryQueue
from delivery.queue_azure import AzureDeliveryQueue
from notifications.event import StoredEvent
from storage.cosmos import CosmosConfig, CosmosDatabase
from storage.cosmos_notifications import CosmosNotificationStore
from tests.peers.azure import COSMOS_KEY, AzuriteQueues, CosmosServer

HOUR = 3600.0


class _HookedQueue(AzureDeliveryQueue):
    """The queue of instance A: after each send, runs what the test asks for."""

    def __init__(self, connection_string: str, queue_name: str) -> None:
        super().__init__(connection_string, queue_name)
        self.after_send: Callable[[], Awaitable[None]] | None = None

    async def send(self, content: str, delay: float = 0.0) -> None:
        await super().send(content, delay)
        hook, self.after_send = self.after_send, None
        if hook is not None:
            await hook()


@dataclass
class _Pair:
    a: AzureStorageDeliveryQueue
    b: AzureStorageDeliveryQueue
    a_queue: _HookedQueue
    notifications: CosmosNotificationStore
    b_ledger: CosmosDeliveryLedger


@pytest.fixture
async def pair(request: pytest.FixtureRequest) -> AsyncIterator[_Pair]:
    server: CosmosServer = request.getfixturevalue("cosmos_server")
    queues: AzuriteQueues = request.getfixturevalue("azurite")
    name = f"t{uuid.uuid4().hex[:20]}"
    config = CosmosConfig(endpoint=server.endpoint, key=COSMOS_KEY, database=name, verify_tls=False)
    db_a, db_b = CosmosDatabase(config), CosmosDatabase(config)
    await db_a.open()
    await db_b.open()
    a_queue = _HookedQueue(queues.connection_string, name)
    notifications = CosmosNotificationStore(db_a)
    a = AzureStorageDeliveryQueue(db_a, a_queue, notifications, history_seconds=HOUR)
    b = AzureStorageDeliveryQueue(
        db_b,
        AzureDeliveryQueue(queues.connection_string, name),
        CosmosNotificationStore(db_b),
        history_seconds=HOUR,
    )
    await a.open()
    await b.open()
    try:
        yield _Pair(a, b, a_queue, notifications, CosmosDeliveryLedger(db_b))
    finally:
        await a.close()
        await b.close()
        await db_a.drop()
        await db_a.close()
        await db_b.close()


async def _one_leased_job(pair: _Pair) -> DeliveryJob:
    event = StoredEvent.from_document(
        {"id": "n1", "type": "t", "title": "x", "recipients": {"all": True}}
    )
    await pair.notifications.put("n1", "h" * 64, event, "t", 0)
    due = time.time() - 1.0
    delivery = NewDelivery("u1", "conversation", "msteams|a:u1", "queued", due)
    await pair.a.add_page("n1", 1, [delivery], [], None)
    jobs = await pair.a.lease(10, HOUR)
    assert [j.user_id for j in jobs] == ["u1"]
    return jobs[0]


async def _lease_within(queue: AzureStorageDeliveryQueue, seconds: float) -> list[DeliveryJob]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        jobs = await queue.lease(10, HOUR)
        if jobs:
            return jobs
        await asyncio.sleep(0.2)
    return []


@pytest.mark.parametrize(
    "settlement",
    [
        pytest.param(
            lambda job_id: Settlement(job_id, "retrying", time.time(), error="503"), id="retry"
        ),
        pytest.param(
            lambda job_id: Settlement(job_id, "queued", time.time(), count_attempt=False),
            id="deferral",
        ),
    ],
)
async def test_a_job_requeued_while_the_other_instance_receives_it_is_not_lost(
    pair: _Pair, settlement: Callable[[int], Settlement]
) -> None:
    job = await _one_leased_job(pair)
    seen_by_b: list[DeliveryJob] = []

    async def b_receives_now() -> None:
        # The new message is visible (due now) but the row still holds the old token.
        seen_by_b.extend(await pair.b.lease(10, HOUR))

    pair.a_queue.after_send = b_receives_now
    await pair.a.settle([settlement(job.id)])

    assert seen_by_b == []  # not yet its turn: the row had not been written
    jobs = await _lease_within(pair.b, 10.0)
    assert [j.id for j in jobs] == [job.id]
    counters = await pair.b_ledger.counters("n1")
    assert counters.totals["delivered"] == 0
