"""InboxStore contract, continued: whether a user received a notification, and the types they
received (what the preferences card offers to mute)."""

from __future__ import annotations

import hashlib

from notifications.event import StoredEvent
from tests.contract.conftest import Backend


async def _post(backend: Backend, nid: str, type_: str, users: list[str]) -> None:
    event = StoredEvent.from_document(
        {"id": nid, "type": type_, "title": nid, "recipients": {"all": True}}
    )
    digest = hashlib.sha256(nid.encode()).hexdigest()
    _, record = await backend.notifications.put(nid, digest, event, type_, 0)
    await backend.queue.add_page(nid, record.version, [], users, None)


async def test_contains_is_true_only_for_recipients(backend: Backend) -> None:
    await _post(backend, "n1", "case.assigned", ["u1", "u2"])
    assert await backend.inbox.contains("u1", "n1") is True
    assert await backend.inbox.contains("u3", "n1") is False
    assert await backend.inbox.contains("u1", "n2") is False


async def test_types_are_distinct_and_sorted_per_user(backend: Backend) -> None:
    await _post(backend, "n1", "training.due", ["u1"])
    await _post(backend, "n2", "case.assigned", ["u1", "u2"])
    await _post(backend, "n3", "training.due", ["u1"])
    assert await backend.inbox.types("u1") == ["case.assigned", "training.due"]
    assert await backend.inbox.types("u2") == ["case.assigned"]
    assert await backend.inbox.types("nobody") == []


async def test_expired_entries_count_for_neither(backend: Backend) -> None:
    await _post(backend, "n1", "training.due", ["u1"])
    expired = backend.inbox_with_retention(0.0)
    assert await expired.contains("u1", "n1") is False
    assert await expired.types("u1") == []
