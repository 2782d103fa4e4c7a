"""UserStore contract: users, aliases, the streamed audience and etag-guarded preferences."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import pytest

from errors import ConcurrencyConflict, NotFound
from storage.protocols import UserStore
from storage.records import UserRecord
from tests.contract.conftest import Backend


def _user(user_id: str, **fields: Any) -> UserRecord:
    return UserRecord(user_id=user_id, channel_id=fields.pop("channel_id", "msteams"), **fields)


async def _add_users(users: UserStore, ids: list[str]) -> None:
    for user_id in ids:
        assert await users.upsert_user(_user(user_id))


# --- users -----------------------------------------------------------------------------------


async def test_upsert_returns_true_only_for_a_new_user(backend: Backend) -> None:
    users = backend.users
    assert await users.upsert_user(_user("u1", name="Ann")) is True
    assert await users.upsert_user(_user("u1", name="Ann")) is False
    assert await users.upsert_user(_user("u1", name="Ann B.")) is False
    assert await users.upsert_user(_user("u2")) is True
    assert await users.count() == 2


async def test_get_user_round_trips_and_unknown_is_none(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(
        _user("aad-1", name="Ann", tenant_id="t1", aliases=("Ann@Contoso.com",))
    )
    got = await users.get_user("aad-1")
    assert got is not None
    assert (got.user_id, got.channel_id, got.name, got.tenant_id) == (
        "aad-1",
        "msteams",
        "Ann",
        "t1",
    )
    assert [a.lower() for a in got.aliases] == ["ann@contoso.com"]
    assert await users.get_user("aad-2") is None


async def test_refresh_updates_name_and_tenant_and_keeps_preferences(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("u1", name="Ann", tenant_id="t1"))
    etag = await users.put_preferences("u1", {"optedIn": True, "mutedTypes": ["a"]}, None)

    assert await users.upsert_user(_user("u1", name="Ann Smith", tenant_id="t2")) is False

    got = await users.get_user("u1")
    assert got is not None
    assert (got.name, got.tenant_id) == ("Ann Smith", "t2")
    prefs, etag_after = await users.get_preferences("u1")
    assert prefs == {"optedIn": True, "mutedTypes": ["a"]}
    # The bot refreshes the user on every turn; that must not invalidate a preferences dialog's
    # etag, or every dialog save would conflict with its own turn.
    assert etag_after == etag


async def test_refresh_without_name_or_tenant_keeps_the_known_ones(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("u1", name="Ann", tenant_id="t1"))
    await users.upsert_user(_user("u1", aliases=("ann@contoso.com",)))
    got = await users.get_user("u1")
    assert got is not None
    assert (got.name, got.tenant_id) == ("Ann", "t1")


async def test_count(backend: Backend) -> None:
    assert await backend.users.count() == 0
    await _add_users(backend.users, [f"u{i}" for i in range(7)])
    await backend.users.upsert_user(_user("u3", name="again"))
    assert await backend.users.count() == 7


# --- aliases and resolve ---------------------------------------------------------------------


async def test_aliases_resolve_case_insensitively(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("u1", aliases=("Ann@Contoso.com", "ann.upn@contoso.com")))
    assert await users.resolve(["ann@contoso.com"]) == {"ann@contoso.com": "u1"}
    assert await users.resolve(["ANN@CONTOSO.COM"]) == {"ANN@CONTOSO.COM": "u1"}
    assert await users.resolve(["Ann.UPN@Contoso.com"]) == {"Ann.UPN@Contoso.com": "u1"}
    assert await users.resolve([" ann@contoso.com "]) == {" ann@contoso.com ": "u1"}


async def test_keys_differing_only_in_case_all_resolve(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("u1", aliases=("ann@contoso.com",)))
    keys = ["ann@contoso.com", "Ann@Contoso.com", "ANN@CONTOSO.COM"]
    assert await users.resolve(keys) == dict.fromkeys(keys, "u1")


async def test_alias_is_repointed_to_the_newest_user(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("old-id", aliases=("ann@contoso.com",)))
    await users.upsert_user(_user("new-id", aliases=("ANN@contoso.com",)))
    assert await users.resolve(["ann@contoso.com"]) == {"ann@contoso.com": "new-id"}
    # Refreshing the old user without aliases does not steal the alias back.
    await users.upsert_user(_user("old-id", name="Ann"))
    assert await users.resolve(["Ann@Contoso.com"]) == {"Ann@Contoso.com": "new-id"}


async def test_resolve_mixes_ids_and_aliases_and_ignores_unknown_keys(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("aad-1", aliases=("ann@contoso.com",)))
    await users.upsert_user(_user("emulator:42", channel_id="emulator"))
    await users.upsert_user(_user("aad-3", aliases=("carl@contoso.com", "carl.upn@contoso.com")))

    resolved = await users.resolve(
        [
            "aad-1",
            "nobody@contoso.com",
            "Carl.UPN@contoso.com",
            "emulator:42",
            "ann@contoso.com",
            "aad-404",
            "",
        ]
    )
    assert resolved == {
        "aad-1": "aad-1",
        "Carl.UPN@contoso.com": "aad-3",
        "emulator:42": "emulator:42",
        "ann@contoso.com": "aad-1",
    }
    assert await users.resolve([]) == {}


async def test_resolve_many_keys(backend: Backend) -> None:
    users = backend.users
    for i in range(1_100):
        await users.upsert_user(_user(f"u{i:04d}", aliases=(f"user{i}@contoso.com",)))
    keys = [f"u{i:04d}" if i % 2 else f"USER{i}@contoso.com" for i in range(1_100)]
    keys += [f"ghost{i}@contoso.com" for i in range(300)]
    random.Random(7).shuffle(keys)

    resolved = await users.resolve(keys)

    assert resolved == {
        k: (k if k.startswith("u") else f"u{int(k[4:].split('@')[0]):04d}")
        for k in keys
        if not k.startswith("ghost")
    }


# --- the streamed audience -------------------------------------------------------------------


async def test_user_id_page_covers_every_user_once_in_order(backend: Backend) -> None:
    users = backend.users
    ids = [f"{i:08x}-aad" for i in range(1_234)] + ["msteams:29:1abc", "emulator:Z", "A-upper"]
    random.Random(1).shuffle(ids)
    await asyncio.gather(*(users.upsert_user(_user(user_id)) for user_id in ids))

    seen: list[str] = []
    pages: list[int] = []
    after: str | None = None
    while True:
        page = await users.user_id_page(after, 100)
        if not page:
            break
        assert len(page) <= 100
        pages.append(len(page))
        seen.extend(page)
        after = page[-1]

    assert seen == sorted(ids)
    assert pages == [100] * 12 + [37]
    assert await users.user_id_page(after, 100) == []


async def test_user_id_page_on_empty_store(backend: Backend) -> None:
    assert await backend.users.user_id_page(None, 100) == []


async def test_user_id_page_after_a_key_that_is_not_a_user(backend: Backend) -> None:
    await _add_users(backend.users, ["a", "c", "e"])
    assert await backend.users.user_id_page("b", 10) == ["c", "e"]
    assert await backend.users.user_id_page("c", 1) == ["e"]


# --- preferences -----------------------------------------------------------------------------


async def test_preferences_of_a_new_user_are_none_with_an_etag(backend: Backend) -> None:
    await backend.users.upsert_user(_user("u1"))
    prefs, etag = await backend.users.get_preferences("u1")
    assert prefs is None
    assert isinstance(etag, str)
    assert etag


async def test_put_without_if_match_is_unconditional(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("u1"))
    _, etag0 = await users.get_preferences("u1")
    etag1 = await users.put_preferences("u1", {"optedIn": True}, None)
    etag2 = await users.put_preferences("u1", {"optedIn": False}, None)
    assert len({etag0, etag1, etag2}) == 3
    assert await users.get_preferences("u1") == ({"optedIn": False}, etag2)


async def test_put_with_matching_etag_returns_the_new_etag(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("u1"))
    _, etag = await users.get_preferences("u1")
    document = {"optedIn": True, "channels": {"mobile": False}, "tz": "Europe/Zürich"}
    new_etag = await users.put_preferences("u1", document, etag)
    assert new_etag != etag
    assert await users.get_preferences("u1") == (document, new_etag)
    newer = await users.put_preferences("u1", {"optedIn": False}, new_etag)
    assert await users.get_preferences("u1") == ({"optedIn": False}, newer)


async def test_put_with_stale_etag_conflicts_and_changes_nothing(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("u1"))
    _, stale = await users.get_preferences("u1")
    current = await users.put_preferences("u1", {"optedIn": True}, stale)

    with pytest.raises(ConcurrencyConflict):
        await users.put_preferences("u1", {"optedIn": False}, stale)
    with pytest.raises(ConcurrencyConflict):
        await users.put_preferences("u1", {"optedIn": False}, "never-issued")

    assert await users.get_preferences("u1") == ({"optedIn": True}, current)


async def test_unknown_user_preferences_are_not_found(backend: Backend) -> None:
    users = backend.users
    with pytest.raises(NotFound):
        await users.get_preferences("nobody")
    with pytest.raises(NotFound):
        await users.put_preferences("nobody", {"optedIn": True}, None)
    with pytest.raises(NotFound):
        await users.put_preferences("nobody", {"optedIn": True}, "some-etag")
    assert await users.count() == 0


async def test_two_concurrent_writers_with_one_etag_exactly_one_wins(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("u1"))
    await users.put_preferences("u1", {"mutedTypes": []}, None)
    base, etag = await users.get_preferences("u1")
    assert base is not None

    async def mute(type_: str, if_match: str) -> str:
        return await users.put_preferences(
            "u1", {"mutedTypes": [*base["mutedTypes"], type_]}, if_match
        )

    outcomes = await asyncio.gather(
        mute("training.due", etag), mute("case.assigned", etag), return_exceptions=True
    )

    winners = [o for o in outcomes if isinstance(o, str)]
    losers = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(winners) == 1
    assert len(losers) == 1
    assert isinstance(losers[0], ConcurrencyConflict)
    won_type = "training.due" if isinstance(outcomes[0], str) else "case.assigned"
    lost_type = "case.assigned" if won_type == "training.due" else "training.due"
    assert await users.get_preferences("u1") == ({"mutedTypes": [won_type]}, winners[0])

    # The loser re-reads and retries: nobody's update is lost.
    current, current_etag = await users.get_preferences("u1")
    assert current is not None
    final_etag = await users.put_preferences(
        "u1", {"mutedTypes": [*current["mutedTypes"], lost_type]}, current_etag
    )
    assert await users.get_preferences("u1") == (
        {"mutedTypes": [won_type, lost_type]},
        final_etag,
    )


async def test_many_read_modify_write_loops_lose_no_update(backend: Backend) -> None:
    users = backend.users
    await users.upsert_user(_user("u1"))
    await users.put_preferences("u1", {"counter": 0}, None)
    conflicts = 0

    async def increment() -> None:
        nonlocal conflicts
        while True:
            prefs, etag = await users.get_preferences("u1")
            assert prefs is not None
            await asyncio.sleep(0)  # let the other writers read the same etag
            try:
                await users.put_preferences("u1", {"counter": prefs["counter"] + 1}, etag)
                return
            except ConcurrencyConflict:
                conflicts += 1

    writers, rounds = 6, 5
    for _ in range(rounds):
        await asyncio.gather(*(increment() for _ in range(writers)))

    prefs, _ = await users.get_preferences("u1")
    assert prefs == {"counter": writers * rounds}
    assert conflicts > 0  # the writers really did race


async def test_preferences_for_many_users(backend: Backend) -> None:
    users = backend.users
    ids = [f"u{i:04d}" for i in range(1_234)]
    await _add_users(users, ids)
    for i in range(0, len(ids), 3):
        await users.put_preferences(ids[i], {"optedIn": True, "n": i}, None)
    wanted = [*ids, "ghost-1", "ghost-2"]
    random.Random(3).shuffle(wanted)

    documents = await users.preferences_for(wanted)

    for i, user_id in enumerate(ids):
        expected = {"optedIn": True, "n": i} if i % 3 == 0 else None
        assert user_id in documents
        assert documents[user_id] == expected
    assert documents.get("ghost-1") is None
    assert documents.get("ghost-2") is None
    assert await users.preferences_for([]) == {}
