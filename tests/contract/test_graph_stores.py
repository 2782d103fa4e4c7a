"""Contract: Graph subscriptions (wish, leases, lifecycle requests), the change inbox and known
resources, for every backend."""

from __future__ import annotations

import asyncio
from dataclasses import replace

from storage.graph_subscriptions import (
    CALENDAR,
    GraphSubscription,
    KnownResource,
    NewGraphChange,
    is_entra_id,
)
from tests.contract.conftest import Backend

USER = "6f1c2a4e-8a8b-4c55-9d0e-0123456789ab"
T0 = 1_800_000_000.0
LEASE = 300.0
DAY = 86400.0


async def wanted(backend: Backend, user: str = USER, allowed: bool = True) -> GraphSubscription:
    return await backend.graph_subscriptions.set_allowed(
        user, CALENDAR, allowed, resource=f"users/{user}/events", client_state="cs-1", now=T0
    )


async def holding(backend: Backend, owner: str, **changes: object) -> GraphSubscription:
    """The record leased by `owner`, saved with `changes`, lease kept."""
    store = backend.graph_subscriptions
    record = await store.claim(USER, CALENDAR, owner=owner, now=T0, until=T0 + LEASE)
    assert record is not None
    changed = replace(record, **changes)  # type: ignore[arg-type]
    assert await store.save(changed, owner=owner, now=T0, release=False)
    return changed


def test_entra_ids_are_guids() -> None:
    assert is_entra_id(USER)
    assert not is_entra_id("emulator:1234")
    assert not is_entra_id(USER + "x")


async def test_the_wish_creates_the_record_and_changes_it(backend: Backend) -> None:
    store = backend.graph_subscriptions
    assert await store.get(USER, CALENDAR) is None
    record = await wanted(backend)
    assert (record.allowed, record.status, record.client_state) == (True, "pending", "cs-1")
    assert record.resource == f"users/{USER}/events"
    again = await store.set_allowed(
        USER, CALENDAR, False, resource="ignored", client_state="ignored", now=T0 + 1
    )
    assert (again.allowed, again.status, again.client_state) == (False, "off", "cs-1")
    assert again.resource == f"users/{USER}/events"
    assert (await store.get(USER, CALENDAR)) == again


async def test_one_lease_at_a_time(backend: Backend) -> None:
    store = backend.graph_subscriptions
    await wanted(backend)
    claims = await asyncio.gather(
        *(
            store.claim(USER, CALENDAR, owner=f"instance-{i}", now=T0, until=T0 + LEASE)
            for i in range(5)
        )
    )
    winners = [c for c in claims if c is not None]
    assert len(winners) == 1
    owner = winners[0].lease_owner
    assert owner is not None
    assert await store.claim(USER, CALENDAR, owner="late", now=T0 + 1, until=T0 + LEASE) is None
    # A lease that ran out can be taken over; the previous holder then cannot save.
    taken = await store.claim(USER, CALENDAR, owner="late", now=T0 + LEASE + 1, until=T0 + 900)
    assert taken is not None
    lost = replace(winners[0], subscription_id="from-the-past")
    assert not await store.save(lost, owner=owner, now=T0 + LEASE + 2, release=True)
    assert (await store.get(USER, CALENDAR)).subscription_id is None  # type: ignore[union-attr]
    # Released: free for anyone.
    await store.release(USER, CALENDAR, owner="late")
    assert await store.claim(USER, CALENDAR, owner="x", now=T0 + 2, until=T0 + 3) is not None


async def test_save_writes_the_graph_side_never_the_wish(backend: Backend) -> None:
    store = backend.graph_subscriptions
    await wanted(backend)
    record = await holding(backend, "a", subscription_id="sub-1", expires_at=T0 + DAY)
    # The user changes their mind while "a" works: a's save must not undo that.
    await store.set_allowed(USER, CALENDAR, False, resource="r", client_state="c", now=T0)
    saved = replace(
        record,
        client_state="cs-2",
        delta_link="https://graph/delta?x",
        attempts=2,
        next_attempt_at=T0 + 60,
        last_error="boom",
        allowed=True,
    )
    assert await store.save(saved, owner="a", now=T0 + 1, release=True)
    stored = await store.get(USER, CALENDAR)
    assert stored is not None
    assert (stored.allowed, stored.status) == (False, "removing")
    assert (stored.subscription_id, stored.expires_at, stored.client_state) == (
        "sub-1",
        T0 + DAY,
        "cs-2",
    )
    assert (stored.delta_link, stored.attempts, stored.last_error) == (
        "https://graph/delta?x",
        2,
        "boom",
    )
    assert (stored.lease_owner, stored.lease_until) == (None, 0.0)
    assert await store.find("sub-1") == stored
    assert await store.count_active() == 1


async def test_claim_due_finds_what_needs_work(backend: Backend) -> None:
    store = backend.graph_subscriptions
    users = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(6)]
    for user in users:
        await wanted(backend, user)

    async def state(user: str, **changes: object) -> None:
        record = await store.claim(user, CALENDAR, owner="setup", now=T0, until=T0 + 1)
        assert record is not None
        assert await store.save(
            replace(record, **changes),  # type: ignore[arg-type]
            owner="setup",
            now=T0,
            release=True,
        )

    link = "https://graph/delta"
    await state(users[0])  # wanted, never created: due
    await state(users[1], subscription_id="s1", expires_at=T0 + 3 * DAY, delta_link=link)  # fine
    await state(users[2], subscription_id="s2", expires_at=T0 + 3600, delta_link=link)  # renew
    await state(users[3], subscription_id="s3", expires_at=T0 + 3 * DAY)  # never synced
    await state(
        users[4],
        subscription_id="s4",
        expires_at=T0 + 3 * DAY,
        delta_link=link,
        next_attempt_at=T0 + 600,
    )  # failed recently: backing off
    await state(users[5], subscription_id="s5", expires_at=T0 + 3 * DAY, delta_link=link)
    await store.set_allowed(users[5], CALENDAR, False, resource="r", client_state="c", now=T0)
    # set_allowed made users[5] due at once (a wish changed); users[4]'s backoff was left alone.

    due = await store.claim_due(
        owner="m", now=T0, until=T0 + LEASE, renew_before=12 * 3600, limit=10
    )
    assert {r.user_id for r in due} == {users[0], users[2], users[3], users[5]}
    assert all(r.lease_owner == "m" for r in due)
    # Leased now: another instance gets none of them.
    assert (
        await store.claim_due(owner="n", now=T0, until=T0 + LEASE, renew_before=12 * 3600, limit=10)
        == []
    )
    # After the backoff, users[4] is due too (it has work: a renewal was asked for).
    await store.request("s4", renew=True, now=T0)
    later = await store.claim_due(
        owner="n", now=T0 + 1, until=T0 + LEASE, renew_before=12 * 3600, limit=10
    )
    assert [r.user_id for r in later] == [users[4]]
    assert later[0].renew_pending


async def test_concurrent_claim_due_shares_nothing(backend: Backend) -> None:
    store = backend.graph_subscriptions
    for i in range(20):
        await wanted(backend, f"00000000-0000-0000-0000-0000000000{i:02d}")
    batches = await asyncio.gather(
        *(
            store.claim_due(owner=f"i{n}", now=T0, until=T0 + LEASE, renew_before=0, limit=7)
            for n in range(4)
        )
    )
    claimed = [r.user_id for batch in batches for r in batch]
    assert len(claimed) == len(set(claimed)) == 20


async def test_lifecycle_requests_are_not_lost_during_an_operation(backend: Backend) -> None:
    store = backend.graph_subscriptions
    await wanted(backend)
    record = await holding(
        backend, "a", subscription_id="sub-1", expires_at=T0 + DAY, delta_link="https://graph/delta"
    )
    # Graph says `missed` while "a" is busy; a's save (which saw no request) must keep it.
    requested = await store.request("sub-1", resync=True, now=T0)
    assert requested is not None and requested.resync_pending
    assert await store.save(record, owner="a", now=T0, release=True)
    stored = await store.get(USER, CALENDAR)
    assert stored is not None and stored.resync_pending
    # Done once a holder that saw the request saves.
    claimed = await store.claim(USER, CALENDAR, owner="b", now=T0, until=T0 + LEASE)
    assert claimed is not None and claimed.resync_pending
    done = replace(claimed, resync_done=claimed.resync_wanted)
    assert await store.save(done, owner="b", now=T0, release=True)
    assert not (await store.get(USER, CALENDAR)).resync_pending  # type: ignore[union-attr]
    # subscriptionRemoved: the subscription id is forgotten; unknown ids change nothing.
    removed = await store.request("sub-1", removed=True, resync=True, now=T0)
    assert removed is not None
    assert (removed.subscription_id, removed.expires_at, removed.status) == (None, None, "pending")
    assert removed.resync_pending
    assert await store.find("sub-1") is None
    assert await store.request("sub-1", renew=True, now=T0) is None


async def test_inbox_drops_repeats_and_leases_changes(backend: Backend) -> None:
    inbox = backend.graph_changes

    def change(key: str | None, n: int = 0) -> NewGraphChange:
        return NewGraphChange("sub-1", USER, "change", {"n": n, "changeType": "updated"}, key)

    added = await inbox.add(
        [change("k1", 1), change("k1", 2), change(None, 3), change("k2", 4)], now=T0
    )
    assert added == 3
    assert await inbox.add([change("k1", 5), change(None, 6)], now=T0 + 1) == 1
    assert await inbox.pending() == 4
    first = await inbox.claim(now=T0 + 1, until=T0 + 60, limit=2)
    assert [c.payload["n"] for c in first] == [1, 3]
    assert all(c.user_id == USER and c.kind == "change" for c in first)
    rest = await inbox.claim(now=T0 + 1, until=T0 + 1000, limit=10)
    assert [c.payload["n"] for c in rest] == [4, 6]
    assert await inbox.claim(now=T0 + 2, until=T0 + 60, limit=10) == []  # all leased

    await inbox.done(first[0].id, now=T0 + 2)
    await inbox.retry(first[1].id, at=T0 + 100, error="throttled")
    await inbox.fail(rest[0].id, now=T0 + 2, error="forbidden")
    assert await inbox.pending() == 2
    assert await inbox.claim(now=T0 + 3, until=T0 + 60, limit=10) == []
    [again] = await inbox.claim(now=T0 + 100, until=T0 + 160, limit=10)
    assert (again.id, again.attempts) == (first[1].id, 1)
    # A stopped process's leases are released at start-up.
    assert await inbox.release_leases() == 2
    assert len(await inbox.claim(now=T0 + 100, until=T0 + 160, limit=10)) == 2


async def test_inbox_purge_forgets_processed_changes_and_their_keys(backend: Backend) -> None:
    inbox = backend.graph_changes
    await inbox.add([NewGraphChange("s", USER, "change", {}, "old")], now=T0)
    await inbox.add([NewGraphChange("s", USER, "lifecycle", {}, None)], now=T0 + 10)
    [old, _] = await inbox.claim(now=T0 + 10, until=T0 + 20, limit=5)
    await inbox.done(old.id, now=T0 + 11)
    assert await inbox.purge(before=T0 + 5) == 1
    assert await inbox.pending() == 1  # unprocessed entries are never purged
    assert await inbox.add([NewGraphChange("s", USER, "change", {}, "old")], now=T0 + 12) == 1


async def test_known_resources(backend: Backend) -> None:
    resources = backend.graph_resources
    assert await resources.get(USER, "e1") is None
    first = KnownResource(USER, "e1", "ck1", {"subject": "Design review"}, T0)
    other = KnownResource("someone-else", "e1", "ck9", {"subject": "Theirs"}, T0)
    await resources.put_many([first, other, KnownResource(USER, "e2", None, {}, T0)])
    assert await resources.get(USER, "e1") == first
    await resources.put_many([replace(first, change_key="ck2", summary={"subject": "Moved"})])
    updated = await resources.get(USER, "e1")
    assert updated is not None and (updated.change_key, updated.summary) == (
        "ck2",
        {"subject": "Moved"},
    )
    await resources.delete(USER, "e2")
    assert await resources.get(USER, "e2") is None
    assert await resources.forget_user(USER) == 1
    assert await resources.get(USER, "e1") is None
    assert await resources.get("someone-else", "e1") == other
