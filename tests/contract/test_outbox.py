"""DeliveryQueue and DeliveryLedger contract: pages in, leases out, settlements recorded, edits
re-queued (the queue); counters, depth and report over what it wrote (the ledger).

Times are real epoch seconds (a queue backend keeps its own clock), so due jobs are put in the
past and future ones far ahead; only the lease-expiry test waits, for a few `time_unit`s.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence

import pytest

from delivery.outbox import COUNTER_NAMES, DeliveryJob, NewDelivery, Settlement
from notifications.event import StoredEvent
from storage.records import NotificationRecord
from tests.contract.conftest import Backend

CONVERSATION = "conversation"
WEBPUSH = "webpush"
HOUR = 3600.0


def _zero() -> dict[str, int]:
    return dict.fromkeys(COUNTER_NAMES.values(), 0)


async def _notify(backend: Backend, nid: str = "n1", title: str = "v1") -> NotificationRecord:
    event = StoredEvent.from_document(
        {"id": nid, "type": "case.assigned", "title": title, "recipients": {"all": True}}
    )
    content_hash = hashlib.sha256(f"{nid}/{title}".encode()).hexdigest()
    _, record = await backend.notifications.put(nid, content_hash, event, "case.assigned", 0)
    return record


def _queued(
    user_id: str, *, channel: str = CONVERSATION, target: str | None = None, due: float = 0.0
) -> NewDelivery:
    return NewDelivery(
        user_id=user_id,
        channel=channel,
        target=target if target is not None else f"msteams|a:{user_id}",
        status="queued",
        due_at=due or time.time() - 1.0,
    )


def _skipped(user_id: str, reason: str, *, channel: str = "") -> NewDelivery:
    return NewDelivery(user_id, channel, "", "skipped", time.time(), reason)


def _delivered(job: DeliveryJob, version: int, remote_id: str | None = None) -> Settlement:
    return Settlement(
        job.id, "delivered", time.time(), sent_version=version, remote_id=remote_id or f"m-{job.id}"
    )


async def _lease_all(backend: Backend, limit: int = 1_000) -> list[DeliveryJob]:
    return await backend.queue.lease(limit, HOUR)


def _users(jobs: Sequence[DeliveryJob]) -> list[str]:
    return [job.user_id for job in jobs]


# --- add_page --------------------------------------------------------------------------------


async def test_add_page_inserts_and_ignores_duplicates(backend: Backend) -> None:
    await _notify(backend)
    queue = backend.queue
    page = [_queued("u1"), _queued("u2"), _queued("u2", channel=WEBPUSH, target="sub-1")]

    assert await queue.add_page("n1", 1, page, [], "1") == 3
    assert await queue.add_page("n1", 1, page, [], "1") == 0
    more = [*page[:2], _queued("u3"), _queued("u2", target="msteams|a:other")]
    assert await queue.add_page("n1", 1, more, [], "2") == 2
    assert await queue.add_page("n1", 1, [], [], "2") == 0

    jobs = await _lease_all(backend)
    assert sorted((j.user_id, j.channel, j.target) for j in jobs) == [
        ("u1", CONVERSATION, "msteams|a:u1"),
        ("u2", CONVERSATION, "msteams|a:other"),
        ("u2", CONVERSATION, "msteams|a:u2"),
        ("u2", WEBPUSH, "sub-1"),
        ("u3", CONVERSATION, "msteams|a:u3"),
    ]
    assert all((j.notification_id, j.attempts, j.sent_version) == ("n1", 0, 0) for j in jobs)
    assert all(j.remote_id is None for j in jobs)
    assert len({j.id for j in jobs}) == 5


async def test_same_delivery_in_two_notifications_is_two_jobs(backend: Backend) -> None:
    await _notify(backend, "n1")
    await _notify(backend, "n2")
    assert await backend.queue.add_page("n1", 1, [_queued("u1")], [], None) == 1
    assert await backend.queue.add_page("n2", 1, [_queued("u1")], [], None) == 1
    assert sorted(j.notification_id for j in await _lease_all(backend)) == ["n1", "n2"]


async def test_add_page_writes_inbox_entries_once(backend: Backend) -> None:
    await _notify(backend)
    queue, inbox = backend.queue, backend.inbox
    await queue.add_page("n1", 1, [_queued("u1")], ["u1", "u2"], "1")
    await queue.add_page("n1", 1, [_queued("u1")], ["u1", "u2", "u1"], "1")
    await queue.add_page("n1", 1, [], ["u2"], "2")

    for user_id in ("u1", "u2"):
        entries = await inbox.list(user_id, unread_only=False, limit=10)
        assert [e.notification_id for e in entries] == ["n1"]
    assert await inbox.list("u3", unread_only=False, limit=10) == []


async def test_add_page_saves_the_cursor_only_for_the_current_version(backend: Backend) -> None:
    await _notify(backend, title="v1")
    queue, store = backend.queue, backend.notifications

    await queue.add_page("n1", 1, [], [], "500")
    record = await store.get("n1")
    assert record is not None
    assert record.expand_cursor == "500"

    await _notify(backend, title="v2")  # now version 2, cursor reset
    await queue.add_page("n1", 1, [], [], "1000")  # a late page of version 1
    record = await store.get("n1")
    assert record is not None
    assert (record.version, record.expand_cursor) == (2, None)

    await queue.add_page("n1", 2, [], [], "user-0042")
    record = await store.get("n1")
    assert record is not None
    assert record.expand_cursor == "user-0042"


async def test_marks_say_who_this_version_planned(backend: Backend) -> None:
    """A person in two parts of an audience (two groups) is planned once: the second page finds
    the mark the first one wrote with its rows, for this notification and version only."""
    await _notify(backend, "n1")
    await _notify(backend, "n2")
    queue = backend.queue
    assert await queue.planned("n1", 1, ["u1", "u2"]) == set()

    await queue.add_page("n1", 1, [_queued("u1"), _queued("u2")], ["u1", "u2"], "a",
                         marks=["u1", "u2", "u1"])
    assert await queue.planned("n1", 1, ["u2", "u3", "u1", "u2"]) == {"u1", "u2"}
    assert await queue.planned("n2", 1, ["u1", "u2"]) == set()  # another notification

    await _notify(backend, "n1", title="v2")  # a new version plans everybody again
    assert await queue.planned("n1", 2, ["u1", "u2"]) == set()
    await queue.add_page("n1", 2, [_queued("u1")], ["u1"], "b", marks=["u1"])
    assert await queue.planned("n1", 2, ["u1", "u2"]) == {"u1"}

    many = [f"user-{i:05d}" for i in range(1_203)]  # more than one chunk of a query
    await queue.add_page("n2", 1, [], many, "c", marks=many)
    assert await queue.planned("n2", 1, [*many, "nobody"]) == set(many)


async def test_the_cursor_outlives_the_expansion(backend: Backend) -> None:
    """The last page's state stays after finish_expansion (what each part found, for the
    status); a new version starts without one."""
    await _notify(backend)
    await backend.queue.add_page("n1", 1, [], [], '{"v":1,"part":1}')
    await backend.queue.finish_expansion("n1", 1)
    record = await backend.notifications.get("n1")
    assert record is not None and not record.expansion_pending
    assert record.expand_cursor == '{"v":1,"part":1}'
    v2 = await _notify(backend, title="v2")
    assert (v2.expansion_pending, v2.expand_cursor) == (True, None)


# --- lease -----------------------------------------------------------------------------------


async def test_lease_takes_only_due_unleased_queued_jobs(backend: Backend) -> None:
    await _notify(backend)
    now = time.time()
    await backend.queue.add_page(
        "n1",
        1,
        [
            _queued("due"),
            _queued("later", due=now + HOUR),
            _skipped("skipped", "muted", channel=CONVERSATION),
            _skipped("unknown@contoso.com", "unknown-user"),
        ],
        [],
        None,
    )
    jobs = await _lease_all(backend)
    assert _users(jobs) == ["due"]
    assert await _lease_all(backend) == []  # leased: not handed out again


async def test_lease_respects_the_limit(backend: Backend) -> None:
    await _notify(backend)
    await backend.queue.add_page("n1", 1, [_queued(f"u{i}") for i in range(5)], [], None)
    first = await backend.queue.lease(2, HOUR)
    rest = await backend.queue.lease(10, HOUR)
    assert (len(first), len(rest)) == (2, 3)
    assert sorted(_users(first + rest)) == [f"u{i}" for i in range(5)]
    assert await backend.queue.lease(10, HOUR) == []


async def test_lease_takes_the_earliest_due_first_in_due_order(backend: Backend) -> None:
    await _notify(backend)
    now = time.time()
    offsets = {"u50": 50, "u10": 10, "u30": 30, "u40": 40, "u20": 20, "u60": 60}
    await backend.queue.add_page(
        "n1", 1, [_queued(u, due=now - s) for u, s in offsets.items()], [], None
    )
    assert _users(await backend.queue.lease(3, HOUR)) == ["u60", "u50", "u40"]
    assert _users(await backend.queue.lease(3, HOUR)) == ["u30", "u20", "u10"]


async def test_lease_takes_urgent_first_then_the_lowest_fair_tag(backend: Backend) -> None:
    await _notify(backend)
    now = time.time()
    plan = [  # user, priority, tag: the order is priority, then tag, whatever the due time
        ("late-normal", 1, 5.0), ("low", 2, 0.0), ("urgent", 0, 99.0), ("early-normal", 1, 1.0),
        ("very-low", 3, 0.0), ("mid-normal", 1, 3.0),
    ]
    await backend.queue.add_page(
        "n1", 1,
        [
            NewDelivery(user, CONVERSATION, f"msteams|a:{user}", "queued", now - 10 + i,
                        lane="msteams|t1", priority=priority, tag=tag)
            for i, (user, priority, tag) in enumerate(plan)
        ],
        [], None,
    )
    first = await backend.queue.lease(3, HOUR)
    assert _users(first) == ["urgent", "early-normal", "mid-normal"]
    assert [(j.lane, j.priority, j.tag) for j in first] == [
        ("msteams|t1", 0, 99.0), ("msteams|t1", 1, 1.0), ("msteams|t1", 1, 3.0)
    ]
    assert _users(await backend.queue.lease(3, HOUR)) == ["late-normal", "low", "very-low"]


async def test_counters_and_depth_count_outstanding_deliveries_per_lane(backend: Backend) -> None:
    await _notify(backend)
    await backend.queue.add_page(
        "n1", 1,
        [
            NewDelivery("a", CONVERSATION, "msteams|a:a", "queued", time.time() - 1,
                        lane="msteams|t1"),
            NewDelivery("b", CONVERSATION, "msteams|a:b", "queued", time.time() - 1,
                        lane="msteams|t1"),
            NewDelivery("c", CONVERSATION, "msteams|a:c", "queued", time.time() - 1,
                        lane="msteams|t2"),
            _queued("d", channel=WEBPUSH, target="sub-d"),
            _skipped("e", "no-target"),
        ],
        [], None,
    )
    counters = await backend.ledger.counters("n1")
    assert counters.lanes == {"msteams|t1": 2, "msteams|t2": 1}  # unpaced lanes are not named
    depth = await backend.ledger.depth()
    assert depth == {
        (CONVERSATION, "queued", "msteams|t1"): 2,
        (CONVERSATION, "queued", "msteams|t2"): 1,
        (WEBPUSH, "queued", ""): 1,
    }
    job = next(j for j in await _lease_all(backend) if j.user_id == "c")
    await backend.queue.settle([_delivered(job, 1)])
    assert (await backend.ledger.counters("n1")).lanes == {"msteams|t1": 2}


async def test_a_leased_job_is_leased_again_only_after_the_lease_expires(
    backend: Backend,
) -> None:
    await _notify(backend)
    queue = backend.queue
    await queue.add_page("n1", 1, [_queued("u1"), _queued("u2")], [], None)
    lease_seconds = 3 * backend.time_unit

    first = await queue.lease(1, lease_seconds)
    second = await queue.lease(1, lease_seconds)
    assert len(first) == len(second) == 1
    assert first[0].id != second[0].id
    assert await queue.lease(10, lease_seconds) == []

    await asyncio.sleep(lease_seconds + 2 * backend.time_unit)

    again = await queue.lease(10, HOUR)
    assert sorted(j.id for j in again) == sorted([first[0].id, second[0].id])
    assert all(j.attempts == 0 for j in again)  # a lapsed lease is not a counted attempt


# --- settle ----------------------------------------------------------------------------------


async def test_settle_records_each_outcome(backend: Backend) -> None:
    await _notify(backend)
    queue, ledger = backend.queue, backend.ledger
    users = ["delivered", "retry-later", "retry-now", "failed", "dead", "skipped"]
    await queue.add_page("n1", 1, [_queued(u) for u in users], [], None)
    jobs = {j.user_id: j for j in await _lease_all(backend)}
    now = time.time()

    await queue.settle(
        [
            _delivered(jobs["delivered"], 1),
            Settlement(jobs["retry-later"].id, "retrying", now + HOUR, reason="throttled"),
            Settlement(jobs["retry-now"].id, "retrying", now - 1, reason="5xx", error="502"),
            Settlement(jobs["failed"].id, "failed", now, reason="bad-payload"),
            Settlement(jobs["dead"].id, "dead", now, reason="bot-uninstalled"),
            Settlement(jobs["skipped"].id, "skipped", now, reason="expired", count_attempt=False),
        ]
    )

    (retry,) = await _lease_all(backend)
    assert retry.user_id == "retry-now"
    assert retry.attempts == 1
    counters = await ledger.counters("n1")
    assert counters.totals == {
        **_zero(),
        "delivered": 1,
        "retrying": 2,
        "failed": 1,
        "deadTargets": 1,
        "skipped": 1,
    }
    assert counters.outstanding == 2
    assert counters.reasons == {
        "failed:bad-payload": 1,
        "dead:bot-uninstalled": 1,
        "skipped:expired": 1,
    }

    await queue.settle(
        [Settlement(retry.id, "retrying", time.time() - 1, reason="5xx", count_attempt=False)]
    )
    (retry,) = await _lease_all(backend)
    assert retry.attempts == 1  # not counted
    await queue.settle([_delivered(retry, 1)])
    assert await _lease_all(backend) == []
    assert (await ledger.counters("n1")).totals["delivered"] == 2


async def test_settle_of_nothing_is_a_no_op(backend: Backend) -> None:
    await backend.queue.settle([])


async def test_delivered_with_the_current_version_stays_delivered(backend: Backend) -> None:
    await _notify(backend)
    await backend.queue.add_page("n1", 1, [_queued("u1")], [], None)
    (job,) = await _lease_all(backend)
    await backend.queue.settle([_delivered(job, 1, "activity-1")])
    assert await _lease_all(backend) == []
    assert await backend.queue.next_due() is None


async def test_delivered_with_an_outdated_version_is_requeued_for_an_edit(
    backend: Backend,
) -> None:
    await _notify(backend, title="0 %")
    queue, ledger = backend.queue, backend.ledger
    await queue.add_page("n1", 1, [_queued("u1"), _queued("u2")], [], None)
    in_flight = {j.user_id: j for j in await _lease_all(backend)}

    await _notify(backend, title="50 %")  # updated while the sends were in flight

    await queue.settle(
        [_delivered(in_flight["u1"], 1, "activity-1"), _delivered(in_flight["u2"], 2, "act-2")]
    )

    (edit,) = await _lease_all(backend)
    assert edit.id == in_flight["u1"].id
    assert (edit.sent_version, edit.remote_id) == (1, "activity-1")
    assert edit.attempts == 0  # an edit is a new send with its own retry budget
    counters = await ledger.counters("n1")
    assert (counters.totals["queued"], counters.totals["delivered"]) == (1, 1)

    await queue.settle([_delivered(edit, 2, "activity-1")])
    assert await _lease_all(backend) == []
    assert (await ledger.counters("n1")).totals["delivered"] == 2


# --- finish_expansion ------------------------------------------------------------------------


async def test_finish_expansion_queues_older_deliveries_for_an_edit(backend: Backend) -> None:
    await _notify(backend, title="v1")
    queue, store = backend.queue, backend.notifications
    users = ["a", "b", "c", "d"]
    await queue.add_page("n1", 1, [_queued(u) for u in users], users, "4")
    assert await queue.finish_expansion("n1", 1) == 0
    jobs = {j.user_id: j for j in await _lease_all(backend)}
    now = time.time()
    await queue.settle(
        [
            _delivered(jobs["a"], 1, "act-a"),
            _delivered(jobs["b"], 1, "act-b"),
            Settlement(jobs["c"].id, "failed", now, reason="bad-payload"),
            Settlement(jobs["d"].id, "retrying", now + HOUR, reason="throttled"),
        ]
    )

    v2 = await _notify(backend, title="v2")
    assert v2.version == 2
    await queue.add_page("n1", 2, [_queued(u) for u in [*users, "e"]], [*users, "e"], "5")

    assert await queue.finish_expansion("n1", 2) == 2

    record = await store.get("n1")
    assert record is not None
    assert (record.expanded_version, record.expansion_pending) == (2, False)
    assert record.expand_cursor == "5"  # kept: the status reads what the audience's parts found
    assert await store.pending_expansion() == []
    edits = await _lease_all(backend)
    assert sorted((j.user_id, j.sent_version, j.remote_id, j.attempts) for j in edits) == [
        ("a", 1, "act-a", 0),
        ("b", 1, "act-b", 0),
        ("e", 0, None, 0),
    ]
    # Jobs already sent at the new version are left alone.
    await queue.settle([_delivered(j, 2, j.remote_id) for j in edits])
    assert await queue.finish_expansion("n1", 2) == 0


async def test_finish_expansion_of_an_outdated_version_does_not_mark_it_done(
    backend: Backend,
) -> None:
    await _notify(backend, title="v1")
    await _notify(backend, title="v2")
    await backend.queue.finish_expansion("n1", 1)
    record = await backend.notifications.get("n1")
    assert record is not None
    assert record.expansion_pending
    assert await backend.notifications.pending_expansion() == ["n1"]


# --- recover and next_due --------------------------------------------------------------------


async def test_recover_releases_leases(backend: Backend) -> None:
    await _notify(backend)
    queue = backend.queue
    await queue.add_page("n1", 1, [_queued(f"u{i}") for i in range(4)], [], None)
    jobs = await _lease_all(backend)
    await queue.settle([_delivered(jobs[0], 1)])
    assert await _lease_all(backend) == []

    assert await queue.recover() == 3

    again = await _lease_all(backend)
    assert sorted(j.id for j in again) == sorted(j.id for j in jobs[1:])
    assert await queue.recover() == 3
    assert await queue.recover() == 0


async def test_next_due(backend: Backend) -> None:
    queue = backend.queue
    assert await queue.next_due() is None
    await _notify(backend)
    now = time.time()
    await queue.add_page(
        "n1",
        1,
        [_queued("later", due=now + 600), _queued("latest", due=now + 900)],
        [],
        None,
    )
    due = await queue.next_due()
    assert due is not None
    assert abs(due - (now + 600)) < 1.0

    await queue.add_page("n1", 1, [_queued("now", due=now - 5)], [], None)
    due = await queue.next_due()
    assert due is not None
    assert due <= time.time()

    # A leased job becomes due again when its lease runs out, unless it is settled first.
    (job,) = await queue.lease(10, 300)
    due = await queue.next_due()
    assert due is not None
    assert abs(due - (now + 300)) < 5.0
    await queue.settle([_delivered(job, 1)])
    due = await queue.next_due()
    assert due is not None
    assert abs(due - (now + 600)) < 1.0


async def test_next_due_ignores_settled_and_skipped_jobs(backend: Backend) -> None:
    await _notify(backend)
    await backend.queue.add_page("n1", 1, [_skipped("u1", "muted")], [], None)
    assert await backend.queue.next_due() is None


# --- counters --------------------------------------------------------------------------------


async def test_counters_totals_per_channel_and_reasons(backend: Backend) -> None:
    await _notify(backend)
    queue, ledger = backend.queue, backend.ledger
    await queue.add_page(
        "n1",
        1,
        [
            _queued("u1"),
            _queued("u1", channel=WEBPUSH, target="sub-1"),
            _queued("u2"),
            _queued("u3"),
            _queued("u4", due=time.time() + HOUR),
            _skipped("u5", "muted", channel=WEBPUSH),
            _skipped("u6", "no-target"),
            _skipped("ghost@contoso.com", "unknown-user"),
            _skipped("ghost2@contoso.com", "unknown-user"),
        ],
        ["u1", "u2", "u3", "u4", "u5", "u6"],
        None,
    )
    jobs = {(j.user_id, j.channel): j for j in await _lease_all(backend)}
    now = time.time()
    await queue.settle(
        [
            _delivered(jobs[("u1", CONVERSATION)], 1),
            Settlement(jobs[("u1", WEBPUSH)].id, "dead", now, reason="gone-410"),
            Settlement(jobs[("u2", CONVERSATION)].id, "retrying", now + HOUR, reason="throttled"),
            Settlement(jobs[("u3", CONVERSATION)].id, "failed", now, reason="retries-exhausted"),
        ]
    )

    counters = await ledger.counters("n1")

    assert counters.totals == {
        "queued": 1,
        "delivered": 1,
        "retrying": 1,
        "skipped": 4,
        "failed": 1,
        "deadTargets": 1,
    }
    assert counters.channels == {
        CONVERSATION: {**_zero(), "queued": 1, "delivered": 1, "retrying": 1, "failed": 1},
        WEBPUSH: {**_zero(), "skipped": 1, "deadTargets": 1},
    }
    assert counters.reasons == {
        "skipped:muted": 1,
        "skipped:no-target": 1,
        "skipped:unknown-user": 2,
        "failed:retries-exhausted": 1,
        "dead:gone-410": 1,
    }
    assert counters.outstanding == 2


async def test_counters_of_an_unknown_notification_are_zero(backend: Backend) -> None:
    counters = await backend.ledger.counters("nope")
    assert counters.totals == _zero()
    assert counters.channels == {}
    assert counters.reasons == {}
    assert counters.outstanding == 0


async def test_counters_next_due_is_the_earliest_outstanding_delivery(backend: Backend) -> None:
    queue, ledger = backend.queue, backend.ledger
    await _notify(backend, "n1")
    await _notify(backend, "n2")
    assert (await ledger.counters("n1")).next_due is None
    later = time.time() + HOUR
    await queue.add_page(
        "n1", 1, [_queued("u1"), _queued("u2", due=later + HOUR), _skipped("u3", "muted")], [], None
    )
    now = time.time()
    due_now = (await ledger.counters("n1")).next_due
    assert due_now is not None and due_now <= now  # u1 is due
    [job] = await _lease_all(backend)
    assert (await ledger.counters("n1")).next_due == due_now  # leased, still outstanding
    await queue.settle([Settlement(job.id, "retrying", later, reason="throttled")])
    assert (await ledger.counters("n1")).next_due == pytest.approx(later, abs=1.0)

    # Settled deliveries are due no more; each notification has its own.
    assert (await ledger.counters("n2")).next_due is None
    await queue.add_page("n2", 1, [_queued("u1")], [], None)
    [job] = await _lease_all(backend)
    await queue.settle([_delivered(job, 1)])
    assert (await ledger.counters("n2")).next_due is None
    assert (await ledger.counters("n1")).next_due == pytest.approx(later, abs=1.0)


async def test_counters_are_per_notification(backend: Backend) -> None:
    await _notify(backend, "n1")
    await _notify(backend, "n2")
    await backend.queue.add_page("n1", 1, [_queued("u1"), _queued("u2")], [], None)
    await backend.queue.add_page("n2", 1, [_queued("u1")], [], None)
    assert (await backend.ledger.counters("n1")).totals["queued"] == 2
    assert (await backend.ledger.counters("n2")).totals["queued"] == 1


# --- concurrency -----------------------------------------------------------------------------


async def test_concurrent_leasers_never_receive_the_same_job_twice(backend: Backend) -> None:
    queue, ledger = backend.queue, backend.ledger
    await _notify(backend, "n1")
    await _notify(backend, "n2")
    for nid in ("n1", "n2"):
        await queue.add_page(nid, 1, [_queued(f"u{i:03d}") for i in range(500)], [], None)

    received: list[list[int]] = [[] for _ in range(4)]

    async def leaser(mine: list[int], batch: int) -> None:
        while jobs := await queue.lease(batch, HOUR):
            mine.extend(j.id for j in jobs)
            await asyncio.sleep(0)
            await queue.settle([_delivered(j, 1) for j in jobs[::2]])

    await asyncio.gather(*(leaser(mine, 17 + 8 * i) for i, mine in enumerate(received)))

    everything = [job_id for mine in received for job_id in mine]
    assert len(everything) == 1_000
    assert len(set(everything)) == 1_000
    assert all(mine for mine in received)  # each leaser got a share
    counters = await ledger.counters("n1")
    assert counters.totals["queued"] + counters.totals["delivered"] == 500

