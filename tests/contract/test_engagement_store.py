"""Engagement contract: read and acknowledged as one state per (person, notification), the
funnel a notification's entries add up to, and recalled notifications leaving the inbox.

Entries are written the way the router writes them (`DeliveryQueue.add_page`).
"""

from __future__ import annotations

import asyncio
import hashlib
import time

from notifications.event import StoredEvent
from tests.contract.conftest import Backend


async def _post(backend: Backend, nid: str, users: list[str], title: str | None = None) -> None:
    title = title or f"title of {nid}"
    event = StoredEvent.from_document(
        {"id": nid, "type": "policy.new", "title": title, "recipients": {"all": True}}
    )
    content_hash = hashlib.sha256(f"{nid}/{title}".encode()).hexdigest()
    _, record = await backend.notifications.put(nid, content_hash, event, "policy.new", 0)
    await backend.queue.add_page(nid, record.version, [], users, None)


async def test_the_first_read_keeps_its_time_and_surface(backend: Backend) -> None:
    inbox = backend.inbox
    await _post(backend, "n1", ["u1"])

    first = await inbox.mark_read("u1", "n1", via="teams-receipt")
    assert first is not None
    again = await inbox.mark_read("u1", "n1", via="inbox")
    assert again == first
    entry = await inbox.entry("u1", "n1")
    assert entry is not None
    assert (entry.read_at, entry.read_via) == (first, "teams-receipt")
    assert entry.acknowledged_at is None
    assert await inbox.mark_read("u1", "missing", via="inbox") is None
    assert await inbox.entry("u2", "n1") is None


async def test_mark_all_read_records_its_surface(backend: Backend) -> None:
    await _post(backend, "n1", ["u1"])
    await _post(backend, "n2", ["u1"])
    await backend.inbox.mark_read("u1", "n1", via="webpush")
    assert await backend.inbox.mark_all_read("u1", via="chat") == 1
    one, two = await backend.inbox.entry("u1", "n1"), await backend.inbox.entry("u1", "n2")
    assert one is not None and two is not None
    assert (one.read_via, two.read_via) == ("webpush", "chat")


async def test_mark_read_many_returns_only_what_was_unread(backend: Backend) -> None:
    for nid in ("n1", "n2", "n3"):
        await _post(backend, nid, ["u1", "u2"])
    await backend.inbox.mark_read("u1", "n2", via="inbox")

    marked = await backend.inbox.mark_read_many("u1", ["n1", "n2", "n3", "nope"], "teams-receipt")

    assert sorted(marked) == ["n1", "n3"]
    assert await backend.inbox.mark_read_many("u1", ["n1", "n3"], "teams-receipt") == []
    # Another person's entries are theirs.
    assert await backend.inbox.unread_counts(["u1", "u2"]) == {"u2": 3}


async def test_acknowledging_twice_keeps_one_record(backend: Backend) -> None:
    inbox = backend.inbox
    await _post(backend, "n1", ["u1", "u2"])

    first = await inbox.acknowledge("u1", "n1", "chat")
    assert first is not None and first.first and first.via == "chat"
    second = await inbox.acknowledge("u1", "n1", "inbox")
    assert second is not None and not second.first
    assert (second.acknowledged_at, second.via) == (first.acknowledged_at, "chat")
    # Acknowledging reads it, on the same surface.
    entry = await inbox.entry("u1", "n1")
    assert entry is not None
    assert (entry.acknowledged_at, entry.acknowledged_via) == (first.acknowledged_at, "chat")
    assert (entry.read_at, entry.read_via) == (first.acknowledged_at, "chat")
    assert await inbox.acknowledge("u1", "nope", "chat") is None


async def test_concurrent_acknowledgements_record_one(backend: Backend) -> None:
    await _post(backend, "n1", ["u1"])
    results = await asyncio.gather(
        *(backend.inbox.acknowledge("u1", "n1", via) for via in ("chat", "inbox", "webpush") * 3)
    )
    assert all(r is not None for r in results)
    assert sum(1 for r in results if r is not None and r.first) == 1
    assert len({(r.acknowledged_at, r.via) for r in results if r is not None}) == 1


async def test_an_acknowledgement_keeps_an_earlier_read(backend: Backend) -> None:
    await _post(backend, "n1", ["u1"])
    read_at = await backend.inbox.mark_read("u1", "n1", via="teams-receipt")
    await asyncio.sleep(0.01)
    ack = await backend.inbox.acknowledge("u1", "n1", "mobile")
    entry = await backend.inbox.entry("u1", "n1")
    assert ack is not None and entry is not None
    assert (entry.read_at, entry.read_via) == (read_at, "teams-receipt")
    assert entry.acknowledged_via == "mobile"


async def test_funnel_counts_and_per_recipient_state(backend: Backend) -> None:
    users = [f"u{i}" for i in range(10)]
    await _post(backend, "n1", users)
    await _post(backend, "other", users)
    for user in users[:6]:
        await backend.inbox.mark_read(user, "n1", via="inbox" if user < "u3" else "webpush")
    for user in users[:2]:
        await backend.inbox.acknowledge(user, "n1", "chat")
    await backend.inbox.acknowledge("u8", "n1", "mobile")

    counts = await backend.inbox.engagement_counts("n1")

    assert (counts.recipients, counts.read, counts.acknowledged) == (10, 7, 3)
    assert counts.read_via == {"inbox": 3, "webpush": 3, "mobile": 1}
    assert counts.acknowledged_via == {"chat": 2, "mobile": 1}
    assert (await backend.inbox.engagement_counts("other")).read == 0
    assert (await backend.inbox.engagement_counts("nothing")).recipients == 0

    state = await backend.inbox.engagement_of("n1", ["u0", "u5", "u9", "stranger"])
    assert set(state) == {"u0", "u5", "u9"}
    assert state["u0"].acknowledged_via == "chat" and state["u0"].read_via == "inbox"
    assert state["u5"].read_via == "webpush" and state["u5"].acknowledged_at is None
    assert state["u9"].read_at is None


async def test_engagement_timeline_counts_first_reads_per_bucket(backend: Backend) -> None:
    await _post(backend, "n1", ["a", "b", "c"])
    await backend.inbox.mark_read("a", "n1", via="inbox")
    await backend.inbox.acknowledge("b", "n1", "chat")

    buckets = await backend.inbox.engagement_timeline("n1", bucket_seconds=3600)

    assert sum(b.read for b in buckets) == 2
    assert sum(b.acknowledged for b in buckets) == 1
    assert all(b.start % 3600 == 0 and b.start <= time.time() for b in buckets)


async def test_unread_recipients_written_before_a_time(backend: Backend) -> None:
    await _post(backend, "n1", ["a", "b", "c", "d"])
    await backend.inbox.mark_read("b", "n1", via="inbox")
    later = time.time() + 1
    assert await backend.inbox.unread_recipients("n1", created_before=later, limit=10) == [
        "a", "c", "d",
    ]
    assert await backend.inbox.unread_recipients("n1", created_before=later, limit=2) == ["a", "c"]
    assert await backend.inbox.unread_recipients("n1", created_before=time.time() - 3600,
                                                 limit=10) == []


async def test_a_recalled_notification_leaves_the_inbox(backend: Backend) -> None:
    await _post(backend, "keep", ["u1", "u2"])
    await _post(backend, "gone", ["u1", "u2"])
    before = time.time()

    record = await backend.notifications.recall("gone", before)
    assert record is not None and record.recalled_at == before and not record.expansion_pending
    assert await backend.inbox.withdraw("gone") == 2

    listed = await backend.inbox.list("u1", unread_only=False, limit=10)
    assert [e.notification_id for e in listed] == ["keep"]
    assert await backend.inbox.unread_counts(["u1", "u2"]) == {"u1": 1, "u2": 1}
    assert await backend.inbox.mark_all_read("u2") == 1
    # The live feed reports it (once more), so an open page removes it.
    changes = await backend.inbox.changes("u1", before - 1, 10)
    recalled = [c.entry for c in changes if c.entry.notification_id == "gone"]
    assert len(recalled) == 1 and recalled[0].recalled
    # A second recall keeps the first time.
    again = await backend.notifications.recall("gone", before + 60)
    assert again is not None and again.recalled_at == before
    assert await backend.notifications.recall("never-posted", before) is None
    assert "gone" not in await backend.notifications.pending_expansion()


async def test_mark_read_each_answers_in_order_and_keeps_the_first_read(backend: Backend) -> None:
    await _post(backend, "n1", ["u1", "u2"])
    await _post(backend, "n2", ["u1"])
    first = await backend.inbox.mark_read("u2", "n1", via="teams-receipt")

    results = await backend.inbox.mark_read_each(
        [("u1", "n1", "api"), ("u2", "n1", "mobile"), ("u1", "missing", "api"),
         ("u1", "n2", "webpush"), ("u3", "n1", "api"), ("u1", "n1", "api")]
    )

    assert results[1] == first  # the first read stays, with its surface
    assert results[2] is None and results[4] is None
    assert results[0] is not None and results[5] == results[0] and results[3] is not None
    pairs = (("u1", "n1"), ("u2", "n1"), ("u1", "n2"))
    entries = {(u, n): await backend.inbox.entry(u, n) for u, n in pairs}
    assert {k: e.read_via for k, e in entries.items() if e is not None} == {
        ("u1", "n1"): "api", ("u2", "n1"): "teams-receipt", ("u1", "n2"): "webpush",
    }
    assert await backend.inbox.unread_counts(["u1", "u2"]) == {}


async def test_mark_all_read_each_counts_per_person(backend: Backend) -> None:
    for nid in ("n1", "n2", "n3"):
        await _post(backend, nid, ["u1", "u2"])
    await _post(backend, "n4", ["u3"])
    await backend.inbox.mark_read("u2", "n1", via="inbox")

    counts = await backend.inbox.mark_all_read_each(["u1", "u2", "u4", "u1"], "api")

    assert counts == {"u1": 3, "u2": 2}
    assert await backend.inbox.unread_counts(["u1", "u2", "u3"]) == {"u3": 1}
    entry = await backend.inbox.entry("u2", "n1")
    assert entry is not None and entry.read_via == "inbox"  # the first read stays
    assert await backend.inbox.mark_all_read_each(["u1"], "api") == {}
