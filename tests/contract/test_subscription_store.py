"""SubscriptionStore contract: one record per endpoint, owned by one user, on every backend."""

from __future__ import annotations

import asyncio
import base64
import os

import pytest

from errors import NotOwner
from storage.subscriptions import PushSubscription, subscription_id
from tests.contract.conftest import Backend


def _b64(size: int) -> str:
    return base64.urlsafe_b64encode(os.urandom(size)).rstrip(b"=").decode()


def browser(user_id: str, n: int = 1, **fields: object) -> PushSubscription:
    values: dict[str, object] = {
        "user_id": user_id,
        "endpoint": f"https://push.example.com/send/{user_id}-{n}",
        "p256dh": "B" + _b64(64),
        "auth": _b64(16),
        **fields,
    }
    return PushSubscription(**values)  # type: ignore[arg-type]


async def test_save_then_read_back(backend: Backend) -> None:
    store = backend.subscriptions
    sub = browser("ada", expiration_time=1_900_000_000.5, user_agent="Firefox 130 🦊")
    assert await store.save(sub) == "created"
    got = await store.get(sub.id)
    assert got is not None
    assert (got.user_id, got.endpoint, got.p256dh, got.auth) == (
        "ada",
        sub.endpoint,
        sub.p256dh,
        sub.auth,
    )
    assert got.expiration_time == 1_900_000_000.5
    assert got.user_agent == "Firefox 130 🦊"
    assert got.created_at > 0 and got.updated_at >= got.created_at
    assert got.id == subscription_id(sub.endpoint) == sub.id
    assert await store.get(subscription_id("https://push.example.com/other")) is None


async def test_reposting_an_endpoint_replaces_its_keys_and_keeps_created_at(
    backend: Backend,
) -> None:
    store = backend.subscriptions
    first = browser("ada")
    await store.save(first)
    before = await store.get(first.id)
    await asyncio.sleep(backend.time_unit / 10)
    renewed = browser("ada", expiration_time=None, user_agent="Chrome")
    assert renewed.endpoint == first.endpoint
    assert await store.save(renewed) == "updated"
    after = await store.get(first.id)
    assert before is not None and after is not None
    assert (after.p256dh, after.auth, after.user_agent) == (
        renewed.p256dh,
        renewed.auth,
        "Chrome",
    )
    assert after.created_at == before.created_at
    assert after.updated_at >= before.updated_at
    assert len(await store.for_user("ada")) == 1  # one row per endpoint


async def test_an_endpoint_posted_by_another_user_moves_to_them(backend: Backend) -> None:
    store = backend.subscriptions
    shared = browser("ada")
    await store.save(shared)
    moved = PushSubscription(
        user_id="grace", endpoint=shared.endpoint, p256dh=shared.p256dh, auth=shared.auth
    )
    assert await store.save(moved) == "moved"
    assert await store.for_user("ada") == []
    assert [s.endpoint for s in await store.for_user("grace")] == [shared.endpoint]
    assert await store.targets_for(["ada", "grace"]) == {"grace": [shared.id]}
    # A delivery planned for Ada before the move does not reach Grace's browser.
    found = await store.get_many([("ada", shared.id), ("grace", shared.id)])
    assert list(found) == [("grace", shared.id)]


async def test_several_browsers_per_user_and_targets_for_many_users(backend: Backend) -> None:
    store = backend.subscriptions
    laptop, phone = browser("ada", 1), browser("ada", 2)
    for sub in (laptop, phone, browser("grace", 1)):
        await store.save(sub)
        await asyncio.sleep(backend.time_unit / 10)
    assert [s.endpoint for s in await store.for_user("ada")] == [laptop.endpoint, phone.endpoint]
    targets = await store.targets_for(["ada", "grace", "nobody"])
    assert sorted(targets["ada"]) == sorted([laptop.id, phone.id])
    assert len(targets["grace"]) == 1
    assert "nobody" not in targets
    assert await store.targets_for([]) == {}


async def test_targets_and_lookups_span_more_users_than_one_query_chunk(backend: Backend) -> None:
    store = backend.subscriptions
    users = [f"user-{i:04d}" for i in range(1200)]
    subs = [browser(user) for user in users]
    for sub in subs:
        await store.save(sub)
    targets = await store.targets_for(users)
    assert len(targets) == 1200
    assert all(targets[s.user_id] == [s.id] for s in subs)
    found = await store.get_many([(s.user_id, s.id) for s in subs])
    assert len(found) == 1200
    assert found[(subs[700].user_id, subs[700].id)].endpoint == subs[700].endpoint


async def test_get_many_skips_unknown_and_foreign_pairs(backend: Backend) -> None:
    store = backend.subscriptions
    sub = browser("ada")
    await store.save(sub)
    found = await store.get_many(
        [("ada", sub.id), ("ada", sub.id), ("grace", sub.id), ("ada", "0" * 64)]
    )
    assert list(found) == [("ada", sub.id)]
    assert await store.get_many([]) == {}


async def test_delete_only_for_the_owner_when_asked(backend: Backend) -> None:
    store = backend.subscriptions
    sub = browser("ada")
    await store.save(sub)
    assert await store.delete(sub.id, user_id="grace") is False
    assert await store.get(sub.id) is not None
    assert await store.delete(sub.id, user_id="ada") is True
    assert await store.get(sub.id) is None
    assert await store.delete(sub.id) is False
    await store.save(sub)
    assert await store.delete(sub.id) is True
    assert await store.targets_for(["ada"]) == {}


async def test_keys_never_show_in_repr(backend: Backend) -> None:
    sub = browser("ada")
    await backend.subscriptions.save(sub)
    stored = await backend.subscriptions.get(sub.id)
    assert stored is not None
    assert sub.auth not in repr(stored) and sub.p256dh not in repr(stored)


# --- ownership (issue 11, case 5): a user may write only their own subscriptions ---


async def test_owner_only_refuses_another_user_s_endpoint_and_writes_nothing(
    backend: Backend,
) -> None:
    store = backend.subscriptions
    shared = browser("ada")
    await store.save(shared)
    before = await store.get(shared.id)
    taken = PushSubscription(
        user_id="grace", endpoint=shared.endpoint, p256dh="B" + _b64(64), auth=_b64(16)
    )
    with pytest.raises(NotOwner) as refused:
        await store.save(taken, owner_only=True)
    assert refused.value.field == "endpoint"
    assert await store.get(shared.id) == before
    assert await store.for_user("grace") == []
    assert await store.save(shared, owner_only=True) == "updated"  # its owner may
    assert await store.save(taken) == "moved"  # and a backend may move it


async def test_concurrent_owner_only_saves_of_one_new_endpoint_have_one_owner(
    backend: Backend,
) -> None:
    endpoint = "https://push.example.com/send/contested"
    results = await asyncio.gather(
        *(
            backend.subscriptions.save(
                PushSubscription(user_id=user, endpoint=endpoint, p256dh="B" + _b64(64),
                                 auth=_b64(16)),
                owner_only=True,
            )
            for user in ("ada", "grace", "alan", "edsger") * 3
        ),
        return_exceptions=True,
    )
    lost = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, NotOwner) for r in lost), lost
    saved = await backend.subscriptions.get(subscription_id(endpoint))
    assert saved is not None
    users = ("ada", "grace", "alan", "edsger")
    owners = {u for u in users if await backend.subscriptions.for_user(u)}
    assert owners == {saved.user_id}
    assert len(lost) == 12 - results.count("created") - results.count("updated")


async def test_delete_of_a_moved_endpoint_by_its_old_owner_removes_nothing(
    backend: Backend,
) -> None:
    store = backend.subscriptions
    sub = browser("ada")
    await store.save(sub)
    await store.save(PushSubscription(user_id="grace", endpoint=sub.endpoint, p256dh=sub.p256dh,
                                      auth=sub.auth))
    assert await store.delete(sub.id, user_id="ada") is False
    moved = await store.get(sub.id)
    assert moved is not None and moved.user_id == "grace"
    assert await store.delete(sub.id, user_id="grace") is True
    assert await store.save(browser("ada"), owner_only=True) == "created"
