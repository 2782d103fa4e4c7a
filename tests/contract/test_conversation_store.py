"""ConversationStore contract: one reference per (user, channel, conversation), target keys."""

from __future__ import annotations

from typing import Any

from storage.records import StoredReference
from tests.contract.conftest import Backend

TEAMS_SERVICE = "https://smba.trafficmanager.net/emea/"
EMULATOR_SERVICE = "http://localhost:56723"


def _ref(
    user_id: str,
    conversation_id: str,
    *,
    channel_id: str = "msteams",
    service_url: str = TEAMS_SERVICE,
    tenant_id: str | None = "tenant-1",
    **reference: Any,
) -> StoredReference:
    wire = {
        "activityId": "1",
        "user": {"id": f"29:{user_id}", "aadObjectId": user_id},
        "bot": {"id": "28:bot", "name": "Herald"},
        "conversation": {"id": conversation_id, "conversationType": "personal"},
        "channelId": channel_id,
        "serviceUrl": service_url,
        **reference,
    }
    return StoredReference(
        user_id=user_id,
        channel_id=channel_id,
        conversation_id=conversation_id,
        service_url=service_url,
        reference=wire,
        tenant_id=tenant_id,
    )


# Conversation ids as the channels really spell them; several contain the "|" that also
# separates channel and conversation in a target key.
AWKWARD_IDS: list[tuple[str, str]] = [
    ("msteams", "a:1Xb3Uu_TfZ8Jk-personal-chat-id"),
    ("msteams", "19:abc@thread.v2;messageid=1"),
    ("msteams", "19:meeting_NjA0@thread.v2"),
    ("msteams", "29:1abc|weird;x=y:z@host"),
    ("emulator", "6c2d8e50-2f59-11ef-9f8a-3b1e8a8e6f4b|livechat"),
    ("webchat", "DL_7f1b|a|b|c"),
    ("directline", "Fz3TqPw9@#%&?=+ ünïcødé"),
    ("slack", "B0ABC:T0ABC:C0ABC"),
]


async def test_upsert_then_for_users(backend: Backend) -> None:
    store = backend.conversations
    ref = _ref("u1", "a:1")
    await store.upsert(ref)
    assert await store.for_users(["u1"]) == {"u1": [ref]}


async def test_upsert_refreshes_service_url_and_reference(backend: Backend) -> None:
    store = backend.conversations
    await store.upsert(_ref("u1", "a:1"))
    moved = _ref(
        "u1",
        "a:1",
        service_url="https://smba.trafficmanager.net/amer/",
        tenant_id="tenant-2",
        activityId="2",
    )
    await store.upsert(moved)

    refs = (await store.for_users(["u1"]))["u1"]
    assert refs == [moved]
    assert refs[0].service_url == "https://smba.trafficmanager.net/amer/"
    assert refs[0].reference["activityId"] == "2"
    assert refs[0].tenant_id == "tenant-2"


async def test_one_reference_per_user_channel_and_conversation(backend: Backend) -> None:
    store = backend.conversations
    refs = [
        _ref("u1", "a:1"),
        _ref("u1", "19:group@thread.v2"),
        _ref("u1", "a:1", channel_id="webchat", service_url="https://webchat.botframework.com/"),
        _ref("u2", "19:group@thread.v2"),
    ]
    for ref in refs:
        await store.upsert(ref)
    for ref in refs:  # upserting again adds nothing
        await store.upsert(ref)

    found = await store.for_users(["u1", "u2"])
    assert sorted(r.target for r in found["u1"]) == sorted(
        ["msteams|a:1", "msteams|19:group@thread.v2", "webchat|a:1"]
    )
    assert [r.target for r in found["u2"]] == ["msteams|19:group@thread.v2"]
    assert {(r.user_id, r.target) for rs in found.values() for r in rs} == {
        (r.user_id, r.target) for r in refs
    }


async def test_for_users_returns_only_active_references(backend: Backend) -> None:
    store = backend.conversations
    await store.upsert(_ref("u1", "a:1"))
    await store.upsert(_ref("u1", "a:2"))
    await store.upsert(_ref("u2", "a:3"))
    await store.deactivate("u1", "msteams|a:1", "bot-uninstalled")
    await store.deactivate("u2", "msteams|a:3", "bot-uninstalled")

    found = await store.for_users(["u1", "u2", "u3"])
    assert list(found) == ["u1"]
    assert [r.conversation_id for r in found["u1"]] == ["a:2"]
    assert all(r.active for r in found["u1"])
    assert await store.for_users([]) == {}


async def test_deactivate_then_upsert_revives(backend: Backend) -> None:
    store = backend.conversations
    ref = _ref("u1", "a:1")
    await store.upsert(ref)
    await store.deactivate("u1", ref.target, "bot-uninstalled")
    gone = await store.get_many([("u1", ref.target)])
    assert gone[("u1", ref.target)].active is False

    await store.upsert(ref)  # the user talked to the bot again

    assert await store.for_users(["u1"]) == {"u1": [ref]}
    assert (await store.get_many([("u1", ref.target)]))[("u1", ref.target)].active is True


async def test_deactivate_touches_only_that_conversation(backend: Backend) -> None:
    store = backend.conversations
    await store.upsert(_ref("u1", "a:1"))
    await store.upsert(_ref("u1", "a:1|x"))
    await store.upsert(_ref("u2", "a:1"))
    await store.deactivate("u1", "msteams|a:1", "gone")
    await store.deactivate("u1", "msteams|never-seen", "gone")  # unknown: no effect, no error

    found = await store.for_users(["u1", "u2"])
    assert [r.target for r in found["u1"]] == ["msteams|a:1|x"]
    assert [r.target for r in found["u2"]] == ["msteams|a:1"]


async def test_target_keys_round_trip_with_awkward_ids(backend: Backend) -> None:
    store = backend.conversations
    refs = [
        _ref(f"u{i}", conversation_id, channel_id=channel_id)
        for i, (channel_id, conversation_id) in enumerate(AWKWARD_IDS)
    ]
    for ref in refs:
        await store.upsert(ref)

    for ref in refs:
        assert ref.target == f"{ref.channel_id}|{ref.conversation_id}"
        found = await store.get_many([(ref.user_id, ref.target)])
        assert found == {(ref.user_id, ref.target): ref}
        (by_user,) = (await store.for_users([ref.user_id]))[ref.user_id]
        assert (by_user.channel_id, by_user.conversation_id) == (
            ref.channel_id,
            ref.conversation_id,
        )
        assert by_user.target == ref.target

    # Deactivating by target splits on the first "|" only.
    emulator = refs[4]
    await store.deactivate(emulator.user_id, emulator.target, "gone")
    assert emulator.user_id not in await store.for_users([emulator.user_id])


async def test_target_does_not_match_a_differently_split_conversation(backend: Backend) -> None:
    # "emulator|a|b" is channel "emulator", conversation "a|b"; a stored channel "emulator|a"
    # could never exist, but conversation "a" in channel "emulator" must not match "a|b".
    store = backend.conversations
    await store.upsert(_ref("u1", "a", channel_id="emulator"))
    await store.upsert(_ref("u1", "a|b", channel_id="emulator"))

    found = await store.get_many([("u1", "emulator|a|b")])
    assert list(found) == [("u1", "emulator|a|b")]
    assert found[("u1", "emulator|a|b")].conversation_id == "a|b"


async def test_get_many_with_many_keys(backend: Backend) -> None:
    store = backend.conversations
    refs: list[StoredReference] = []
    for i in range(1_200):
        channel_id, base = AWKWARD_IDS[i % len(AWKWARD_IDS)]
        refs.append(_ref(f"user-{i % 400}", f"{base}#{i}", channel_id=channel_id))
    for ref in refs:
        await store.upsert(ref)
    for ref in refs[::10]:
        await store.deactivate(ref.user_id, ref.target, "gone")

    keys = [(r.user_id, r.target) for r in refs]
    missing = [("user-1", "msteams|nope"), ("nobody", refs[0].target), ("user-0", "msteams")]
    found = await store.get_many([*keys, *missing, *keys[:50]])

    assert set(found) == set(keys)
    for ref in refs:
        got = found[(ref.user_id, ref.target)]
        assert (got.user_id, got.target, got.reference) == (ref.user_id, ref.target, ref.reference)
    assert sum(not r.active for r in found.values()) == 120
    assert await store.get_many([]) == {}


async def test_for_users_with_many_users(backend: Backend) -> None:
    store = backend.conversations
    for i in range(1_100):
        await store.upsert(_ref(f"user-{i:04d}", f"a:{i}"))
    ids = [f"user-{i:04d}" for i in range(1_100)] + ["ghost"]
    found = await store.for_users(ids)
    assert len(found) == 1_100
    assert all(len(refs) == 1 for refs in found.values())
    assert found["user-0777"][0].conversation_id == "a:777"


async def test_targets_for_matches_for_users(backend: Backend) -> None:
    store = backend.conversations
    for i, (channel_id, conversation_id) in enumerate(AWKWARD_IDS):
        await store.upsert(_ref(f"u{i % 3}", conversation_id, channel_id=channel_id))
    await store.deactivate("u0", f"{AWKWARD_IDS[0][0]}|{AWKWARD_IDS[0][1]}", "403")
    users = ["u0", "u1", "u2", "nobody"]
    full = await store.for_users(users)
    targets = await store.targets_for(users)
    assert {user: [t.target for t in found] for user, found in targets.items()} == {
        user: [r.target for r in refs] for user, refs in full.items()
    }
    # What decides the rate limits a send shares comes with each target.
    for user, refs in full.items():
        assert [(t.channel_id, t.tenant_id, t.service_url) for t in targets[user]] == [
            (r.channel_id, r.tenant_id, r.service_url) for r in refs
        ]


async def test_ever_stored_counts_closed_references_too(backend: Backend) -> None:
    """People with any reference, active or closed: an audience opens chats only with the
    others (delivery/reach.py)."""
    store = backend.conversations
    await store.upsert(_ref("u1", "a:1"))
    await store.upsert(_ref("u2", "a:2"))
    await store.upsert(_ref("u2", "a:3"))
    await store.deactivate("u2", "msteams|a:2", "blocked")
    await store.deactivate("u2", "msteams|a:3", "blocked")
    many = [f"nobody-{i:04d}" for i in range(600)]  # more than one chunk of a query
    assert await store.ever_stored(["u1", "u2", "u3", "u1", *many]) == {"u1", "u2"}
    assert await store.ever_stored([]) == set()
