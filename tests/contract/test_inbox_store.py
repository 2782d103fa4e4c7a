"""InboxStore contract: each user's history, newest first, with read state and retention.

History entries are written by the outbox (with the page of deliveries they belong to), so the
tests create them the way the router does: `DeliveryQueue.add_page(..., inbox_user_ids, ...)`.
"""

from __future__ import annotations

import asyncio
import hashlib

from notifications.event import StoredEvent
from tests.contract.conftest import Backend


async def _post(backend: Backend, nid: str, users: list[str], title: str | None = None) -> None:
    title = title or f"title of {nid}"
    event = StoredEvent.from_document(
        {"id": nid, "type": "case.assigned", "title": title, "recipients": {"all": True}}
    )
    content_hash = hashlib.sha256(f"{nid}/{title}".encode()).hexdigest()
    _, record = await backend.notifications.put(nid, content_hash, event, "case.assigned", 0)
    await backend.queue.add_page(nid, record.version, [], users, None)


async def _ids(backend: Backend, user_id: str, *, unread_only: bool = False) -> list[str]:
    entries = await backend.inbox.list(user_id, unread_only=unread_only, limit=100)
    return [e.notification_id for e in entries]


async def test_list_is_newest_first_with_the_event(backend: Backend) -> None:
    for i in range(5):
        await _post(backend, f"n{i}", ["u1"])

    entries = await backend.inbox.list("u1", unread_only=False, limit=100)

    assert [e.notification_id for e in entries] == ["n4", "n3", "n2", "n1", "n0"]
    assert [e.created_at for e in entries] == sorted((e.created_at for e in entries), reverse=True)
    assert entries[0].event["title"] == "title of n4"
    assert all(e.read_at is None and e.version == 1 for e in entries)


async def test_list_shows_only_the_users_own_entries(backend: Backend) -> None:
    await _post(backend, "n1", ["u1", "u2"])
    await _post(backend, "n2", ["u2"])
    assert await _ids(backend, "u1") == ["n1"]
    assert await _ids(backend, "u2") == ["n2", "n1"]
    assert await _ids(backend, "nobody") == []


async def test_limit_keeps_the_newest(backend: Backend) -> None:
    for i in range(6):
        await _post(backend, f"n{i}", ["u1"])
    entries = await backend.inbox.list("u1", unread_only=False, limit=2)
    assert [e.notification_id for e in entries] == ["n5", "n4"]


async def test_mark_all_read_and_the_unread_filter(backend: Backend) -> None:
    inbox = backend.inbox
    await _post(backend, "n1", ["u1", "u2"])
    await _post(backend, "n2", ["u1"])

    assert await inbox.mark_all_read("u1") == 2
    assert await inbox.mark_all_read("u1") == 0
    await _post(backend, "n3", ["u1"])

    assert await _ids(backend, "u1", unread_only=True) == ["n3"]
    entries = await inbox.list("u1", unread_only=False, limit=100)
    assert [(e.notification_id, e.read_at is not None) for e in entries] == [
        ("n3", False),
        ("n2", True),
        ("n1", True),
    ]
    assert all(e.read_at is None or e.read_at >= e.created_at for e in entries)
    # Another user's read state is their own.
    assert await _ids(backend, "u2", unread_only=True) == ["n1"]
    assert await inbox.mark_all_read("u1") == 1
    assert await _ids(backend, "u1", unread_only=True) == []
    assert await inbox.mark_all_read("nobody") == 0


async def test_an_updated_notification_keeps_one_entry_with_the_new_content(
    backend: Backend,
) -> None:
    await _post(backend, "n1", ["u1"], title="0 % done")
    await _post(backend, "n2", ["u1"])
    await _post(backend, "n1", ["u1"], title="100 % done")

    entries = await backend.inbox.list("u1", unread_only=False, limit=100)

    assert [e.notification_id for e in entries] == ["n2", "n1"]
    assert (entries[1].event["title"], entries[1].version) == ("100 % done", 2)


async def test_entries_older_than_the_retention_are_gone(backend: Backend) -> None:
    retention = 3 * backend.time_unit
    inbox = backend.inbox_with_retention(retention)
    await _post(backend, "old", ["u1"])

    await asyncio.sleep(retention + 2 * backend.time_unit)
    await _post(backend, "new", ["u1"])

    listed = await inbox.list("u1", unread_only=False, limit=100)
    assert [e.notification_id for e in listed] == ["new"]
    unread = await inbox.list("u1", unread_only=True, limit=100)
    assert [e.notification_id for e in unread] == ["new"]
    # Gone means gone: marking read does not count what the user can no longer see.
    assert await inbox.mark_all_read("u1") == 1


async def test_purge_deletes_only_entries_past_retention(backend: Backend) -> None:
    retention = 3 * backend.time_unit
    inbox = backend.inbox_with_retention(retention)
    await _post(backend, "old", ["u1"])
    await asyncio.sleep(retention + 2 * backend.time_unit)
    await _post(backend, "new", ["u1"])
    assert await inbox.purge_expired() == 1
    assert await inbox.purge_expired() == 0
    assert await _ids(backend, "u1") == ["new"]


async def test_unread_counts_per_user_for_the_badge(backend: Backend) -> None:
    for i in range(3):
        await _post(backend, f"n{i}", ["u1", "u2"])
    await _post(backend, "n3", ["u1"])
    await backend.inbox.mark_read("u2", "n0")
    assert await backend.inbox.unread_counts(["u1", "u2", "u3"]) == {"u1": 4, "u2": 2}
    await backend.inbox.mark_all_read("u2")
    assert await backend.inbox.unread_counts(["u2", "u1", "u1"]) == {"u1": 4}
    assert await backend.inbox.unread_counts([]) == {}
