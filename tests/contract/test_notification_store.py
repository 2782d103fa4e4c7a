"""NotificationStore contract: idempotent puts, versions, pending expansion."""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

from notifications.event import StoredEvent
from storage.records import NotificationRecord
from tests.contract.conftest import Backend


def _event(title: str = "Training due", **fields: Any) -> StoredEvent:
    return StoredEvent.from_document(
        {
            "id": "n1",
            "type": "training.due",
            "title": title,
            "recipients": {"users": ["u1", "ann@contoso.com"]},
            **fields,
        }
    )


def _hash(event: StoredEvent) -> str:
    return hashlib.sha256(json.dumps(event.document(), sort_keys=True).encode()).hexdigest()


async def test_put_creates_version_one_with_expansion_pending(backend: Backend) -> None:
    event = _event(text='Ünïcode ✓ and "quotes"', data={"nested": [1, {"a": None}]})
    outcome, record = await backend.notifications.put("n1", _hash(event), event, "training.due", 2)

    assert outcome == "created"
    assert record.id == "n1"
    assert record.version == 1
    assert record.content_hash == _hash(event)
    assert record.event == event
    assert record.type == "training.due"
    assert record.recipients == 2
    assert record.expanded_version == 0
    assert record.expand_cursor is None
    assert record.expansion_pending
    assert record.created_at <= record.updated_at
    assert await backend.notifications.get("n1") == record


async def test_put_same_content_is_unchanged(backend: Backend) -> None:
    event = _event()
    _, created = await backend.notifications.put("n1", _hash(event), event, "training.due", 2)
    outcome, again = await backend.notifications.put("n1", _hash(event), event, "training.due", 2)
    assert outcome == "unchanged"
    assert again == created
    assert again.version == 1


async def test_put_changed_content_updates_and_increments_version(backend: Backend) -> None:
    store = backend.notifications
    first = _event("Training due: 0 % done")
    _, created = await store.put("n1", _hash(first), first, "training.due", 2)

    second = _event("Training due: 50 % done", recipients={"users": ["u1"]})
    outcome, updated = await store.put("n1", _hash(second), second, "training.progress", 1)

    assert outcome == "updated"
    assert updated.version == 2
    assert updated.event == second
    assert updated.content_hash == _hash(second)
    assert updated.type == "training.progress"
    assert updated.recipients == 1
    assert updated.created_at == created.created_at
    assert updated.updated_at >= created.updated_at
    assert updated.expansion_pending

    outcome, unchanged = await store.put("n1", _hash(second), second, "training.progress", 1)
    assert (outcome, unchanged.version) == ("unchanged", 2)

    third = _event("Training due: done")
    outcome, latest = await store.put("n1", _hash(third), third, "training.due", 2)
    assert (outcome, latest.version) == ("updated", 3)
    assert await store.get("n1") == latest


async def test_update_restarts_expansion(backend: Backend) -> None:
    store, queue = backend.notifications, backend.queue
    first = _event()
    await store.put("n1", _hash(first), first, "training.due", 2)
    await queue.add_page("n1", 1, [], ["u1"], "500")
    await queue.finish_expansion("n1", 1)
    expanded = await store.get("n1")
    assert expanded is not None
    assert (expanded.expanded_version, expanded.expansion_pending) == (1, False)
    assert await store.pending_expansion() == []

    second = _event("changed")
    await store.put("n1", _hash(second), second, "training.due", 2)
    await queue.add_page("n1", 2, [], ["u1"], "500")
    third = _event("changed again")
    _, record = await store.put("n1", _hash(third), third, "training.due", 2)

    assert record.version == 3
    assert record.expanded_version == 1
    assert record.expand_cursor is None
    assert record.expansion_pending
    assert await store.pending_expansion() == ["n1"]


async def test_pending_expansion_lists_created_and_updated(backend: Backend) -> None:
    store, queue = backend.notifications, backend.queue
    for nid in ("a", "b", "c", "d"):
        event = _event(id=nid)
        await store.put(nid, _hash(event), event, "training.due", 1)
    await queue.finish_expansion("a", 1)
    await queue.finish_expansion("b", 1)
    changed = _event("new title", id="b")
    await store.put("b", _hash(changed), changed, "training.due", 1)

    assert sorted(await store.pending_expansion()) == ["b", "c", "d"]

    await queue.finish_expansion("c", 1)
    await queue.finish_expansion("b", 1)  # an old version does not finish the new one
    assert sorted(await store.pending_expansion()) == ["b", "d"]
    await queue.finish_expansion("b", 2)
    await queue.finish_expansion("d", 1)
    assert await store.pending_expansion() == []


async def test_get_unknown_is_none(backend: Backend) -> None:
    assert await backend.notifications.get("nope") is None


async def test_get_many(backend: Backend) -> None:
    store = backend.notifications
    records: dict[str, NotificationRecord] = {}
    for i in range(120):
        event = _event(f"title {i}", id=f"n{i}")
        _, records[f"n{i}"] = await store.put(f"n{i}", _hash(event), event, "training.due", 1)

    wanted = [f"n{i}" for i in range(0, 120, 2)] + ["n0", "n2", "ghost"]
    found = await store.get_many(wanted)

    assert found == {f"n{i}": records[f"n{i}"] for i in range(0, 120, 2)}
    assert await store.get_many([]) == {}


async def test_get_many_with_more_ids_than_one_query_takes(backend: Backend) -> None:
    store = backend.notifications
    event = _event()
    _, record = await store.put("n1", _hash(event), event, "training.due", 1)
    wanted = [f"ghost-{i}" for i in range(40_000)] + ["n1"]
    assert await store.get_many(wanted) == {"n1": record}


async def test_concurrent_puts_of_one_new_id_create_it_once(backend: Backend) -> None:
    store = backend.notifications
    event = _event()
    results = await asyncio.gather(
        *(store.put("n1", _hash(event), event, "training.due", 2) for _ in range(8))
    )
    outcomes = sorted(outcome for outcome, _ in results)
    assert outcomes == ["created"] + ["unchanged"] * 7
    assert {record.version for _, record in results} == {1}


async def test_concurrent_changed_puts_each_get_a_version(backend: Backend) -> None:
    store = backend.notifications
    events = [_event(f"progress {i}") for i in range(6)]
    results = await asyncio.gather(
        *(store.put("n1", _hash(e), e, "training.due", 2) for e in events)
    )
    assert sorted(outcome for outcome, _ in results) == ["created"] + ["updated"] * 5
    assert sorted(record.version for _, record in results) == [1, 2, 3, 4, 5, 6]
    latest = await store.get("n1")
    assert latest is not None
    assert latest.version == 6
    (last,) = [record for _, record in results if record.version == 6]
    assert latest.event == last.event
