"""Taking over an expansion another instance left half-done (it died mid-audience).

Only a restart resumed expansions before; with instances sharing one store, the survivors must
notice a notification whose expansion stopped making progress and finish it themselves.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator

import pytest

from delivery.channel import ChannelRegistry
from delivery.router import Router
from notifications.event import StoredEvent
from preferences.rules import DeliveryPolicy
from storage.records import NotificationRecord
from tests.contract.conftest import Backend


@pytest.fixture
async def router(backend: Backend) -> AsyncIterator[Router]:
    """A running router whose periodic sweep is left to the test (called by hand)."""
    running = Router(
        backend.users,
        backend.notifications,
        backend.queue,
        ChannelRegistry(),
        DeliveryPolicy(),
        resume_seconds=3600,
    )
    await running.start()
    yield running
    await running.stop()


async def put_elsewhere(backend: Backend, nid: str) -> NotificationRecord:
    """A notification another instance accepted (and never expanded: it died)."""
    event = StoredEvent.from_document(
        {"id": nid, "type": "t", "title": nid, "recipients": {"users": ["a", "b", "c"]}}
    )
    digest = hashlib.sha256(nid.encode()).hexdigest()
    _, record = await backend.notifications.put(nid, digest, event, "t", 3)
    assert record.expansion_pending
    return record


async def test_an_expansion_without_progress_for_a_whole_interval_is_taken_over(
    backend: Backend, router: Router
) -> None:
    await put_elsewhere(backend, "orphan")
    assert await router.sweep() == []  # first seen: it may be on its way elsewhere
    assert await router.sweep() == ["orphan"]  # no progress since: taken over
    await router.drained()

    record = await backend.notifications.get("orphan")
    assert record is not None and not record.expansion_pending
    counters = await backend.ledger.counters("orphan")
    assert counters.totals["skipped"] == 3  # every recipient accounted for (unknown users here)
    assert await router.sweep() == []  # nothing left pending


async def test_an_expansion_that_moves_on_is_left_to_its_instance(
    backend: Backend, router: Router
) -> None:
    record = await put_elsewhere(backend, "busy")
    assert await router.sweep() == []
    # The other instance writes a page (and its cursor) between the sweeps.
    await backend.queue.add_page("busy", record.version, [], [], "1")
    assert await router.sweep() == []
    # Then it stops moving.
    assert await router.sweep() == ["busy"]
    await router.drained()
    latest = await backend.notifications.get("busy")
    assert latest is not None and not latest.expansion_pending
    assert (await backend.ledger.counters("busy")).totals["skipped"] == 2  # resumed from its cursor
