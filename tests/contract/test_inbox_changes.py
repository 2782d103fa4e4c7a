"""InboxStore.mark_read and .changes contract: the live inbox page's actions and feed."""

from __future__ import annotations

import asyncio
import hashlib
import time

from notifications.event import StoredEvent
from tests.contract.conftest import Backend


async def _post(backend: Backend, nid: str, users: list[str], title: str | None = None) -> None:
    title = title or f"title of {nid}"
    event = StoredEvent.from_document(
        {"id": nid, "type": "case.assigned", "title": title, "recipients": {"all": True}}
    )
    digest = hashlib.sha256(f"{nid}/{title}".encode()).hexdigest()
    _, record = await backend.notifications.put(nid, digest, event, "case.assigned", 0)
    await backend.queue.add_page(nid, record.version, [], users, None)


async def _tick(backend: Backend) -> None:
    """Let the backend's clock move on, so that the next write is strictly later."""
    await asyncio.sleep(max(0.01, backend.time_unit / 10))


async def test_mark_read_marks_one_entry_once(backend: Backend) -> None:
    inbox = backend.inbox
    await _post(backend, "n1", ["u1", "u2"])
    await _post(backend, "n2", ["u1"])
    before = time.time()
    read_at = await inbox.mark_read("u1", "n1")
    assert read_at is not None and before - 1 <= read_at <= time.time() + 1
    entries = {e.notification_id: e for e in await inbox.list("u1", unread_only=False, limit=10)}
    assert entries["n1"].read_at == read_at
    assert entries["n2"].read_at is None
    # Another user's entry for the same notification is untouched.
    [other] = await inbox.list("u2", unread_only=False, limit=10)
    assert other.read_at is None
    # Again: already read, the first time stays.
    await _tick(backend)
    assert await inbox.mark_read("u1", "n1") == read_at


async def test_mark_read_of_nothing_is_none(backend: Backend) -> None:
    await _post(backend, "n1", ["u1"])
    assert await backend.inbox.mark_read("u1", "missing") is None
    assert await backend.inbox.mark_read("u2", "n1") is None  # not their entry


async def test_changes_are_writes_reads_and_updates_after_the_cursor(backend: Backend) -> None:
    inbox = backend.inbox
    start = time.time() - 1
    await _post(backend, "n1", ["u1"])
    await _tick(backend)
    await _post(backend, "n2", ["u1", "u2"])

    changes = await inbox.changes("u1", start, 100)
    assert [c.entry.notification_id for c in changes] == ["n1", "n2"]
    assert changes[0].changed_at <= changes[1].changed_at
    assert changes[1].entry.event["title"] == "title of n2"
    cursor = changes[-1].changed_at
    assert await inbox.changes("u1", cursor, 100) == []

    # A read is a change; so is a new version of the notification.
    await _tick(backend)
    await inbox.mark_read("u1", "n1")
    [read] = await inbox.changes("u1", cursor, 100)
    assert read.entry.notification_id == "n1" and read.entry.read_at is not None
    cursor = read.changed_at
    await _tick(backend)
    await _post(backend, "n2", ["u1", "u2"], title="n2, updated")
    [updated] = await inbox.changes("u1", cursor, 100)
    assert updated.entry.notification_id == "n2"
    assert (updated.entry.event["title"], updated.entry.version) == ("n2, updated", 2)
    assert updated.changed_at > cursor

    # Only the user's own entries, and at most `limit`, oldest change first.
    assert [c.entry.notification_id for c in await inbox.changes("u2", start, 100)] == ["n2"]
    everything = await inbox.changes("u1", start, 100)
    assert await inbox.changes("u1", start, 1) == everything[:1]


async def test_changes_leave_out_expired_entries(backend: Backend) -> None:
    await _post(backend, "n1", ["u1"])
    short = backend.inbox_with_retention(backend.time_unit)
    await asyncio.sleep(backend.time_unit * 3)
    assert await short.changes("u1", 0.0, 100) == []
    assert len(await backend.inbox.changes("u1", 0.0, 100)) == 1
    assert await short.mark_read("u1", "n1") is None
