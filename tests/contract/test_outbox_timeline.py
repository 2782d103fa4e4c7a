"""DeliveryLedger.timeline contract: final outcomes of one notification counted per time bucket.

The operator page draws its delivery-rate chart from this. Settlement times are the backend's
own clock, so the tests bound them by the wall time around the calls rather than fixing them.
"""

from __future__ import annotations

import hashlib
import math
import time

from delivery.outbox import NewDelivery, Settlement, TimelineBucket
from notifications.event import StoredEvent
from tests.contract.conftest import Backend

HOUR = 3600.0


async def _notify(backend: Backend, nid: str) -> None:
    event = StoredEvent.from_document(
        {"id": nid, "type": "t", "title": nid, "recipients": {"all": True}}
    )
    digest = hashlib.sha256(nid.encode()).hexdigest()
    await backend.notifications.put(nid, digest, event, "t", 0)


def _queued(user_id: str) -> NewDelivery:
    return NewDelivery(user_id, "conversation", f"msteams|{user_id}", "queued", time.time() - 1)


def _totals(buckets: list[TimelineBucket]) -> dict[str, int]:
    return {
        "delivered": sum(b.delivered for b in buckets),
        "skipped": sum(b.skipped for b in buckets),
        "failed": sum(b.failed for b in buckets),
        "dead": sum(b.dead for b in buckets),
    }


async def test_final_outcomes_are_counted_per_bucket(backend: Backend) -> None:
    queue, ledger = backend.queue, backend.ledger
    await _notify(backend, "n1")
    await _notify(backend, "n2")
    before = time.time()
    users = [f"u{i}" for i in range(7)]
    skipped = NewDelivery("s1", "", "", "skipped", time.time(), "unknown-user")
    await queue.add_page("n1", 1, [*(_queued(u) for u in users), skipped], [], None)
    await queue.add_page("n2", 1, [_queued("other")], [], None)
    jobs = {job.user_id: job for job in await queue.lease(100, HOUR)}
    now = time.time()
    await queue.settle(
        [
            *(Settlement(jobs[u].id, "delivered", now, sent_version=1) for u in users[:4]),
            Settlement(jobs["u4"].id, "failed", now, reason="bad-payload"),
            Settlement(jobs["u5"].id, "dead", now, reason="bot-uninstalled"),
            # Outstanding: not an outcome yet, so not on the timeline.
            Settlement(jobs["u6"].id, "retrying", now + HOUR, reason="throttled"),
            Settlement(jobs["other"].id, "delivered", now, sent_version=1),
        ]
    )
    after = time.time()

    coarse = await ledger.timeline("n1", bucket_seconds=1e9)
    assert len(coarse) == 1
    assert _totals(coarse) == {"delivered": 4, "skipped": 1, "failed": 1, "dead": 1}

    fine = await ledger.timeline("n1", bucket_seconds=1.0)
    assert _totals(fine) == _totals(coarse)
    starts = [b.start for b in fine]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for bucket in fine:
        assert bucket.start == math.floor(bucket.start)
        assert math.floor(before) <= bucket.start <= after

    assert _totals(await ledger.timeline("n2", bucket_seconds=60.0))["delivered"] == 1


async def test_a_notification_without_outcomes_has_an_empty_timeline(backend: Backend) -> None:
    await _notify(backend, "n1")
    await backend.queue.add_page("n1", 1, [_queued("u1")], [], None)
    assert await backend.ledger.timeline("n1", bucket_seconds=1.0) == []
    assert await backend.ledger.timeline("nothing", bucket_seconds=1.0) == []
