"""botbuilder `Storage` contract (bot, user and dialog state).

The rules are the ones botbuilder's own storage suite (botbuilder-testing `StorageBaseTests`)
holds Cosmos DB and Blob storage to: reading a missing key leaves it out, every stored item
carries an `e_tag`, an item written back with the etag it was read with succeeds once and a
stale etag raises, `"*"` or no etag overwrites, an empty etag is refused. Where MemoryStorage
(the SDK's reference implementation) is comparable — plain writes, reads and deletes without
etags — the same operations are run against both and must give the same data. Where it is not:
MemoryStorage hands out its stored objects by reference and only versions items that already
had an etag, so its conflict behaviour is not a reference for a persistent store.
"""

from __future__ import annotations

import asyncio
import copy
import random
from dataclasses import dataclass, field
from typing import Any

import pytest
from botbuilder.core import (
    ConversationState,
    MemoryStorage,
    MessageFactory,
    Storage,
    TurnContext,
    UserState,
)
from botbuilder.core.adapters import TestAdapter
from botbuilder.dialogs import (
    DialogSet,
    DialogState,
    DialogTurnResult,
    DialogTurnStatus,
    PromptOptions,
    TextPrompt,
    WaterfallDialog,
    WaterfallStepContext,
)

from tests.contract.conftest import Backend


@dataclass
class Profile:
    """A dataclass held in user state, as Herald's dialogs keep theirs (STYLE: dialogs as data)."""

    name: str = ""
    muted: list[str] = field(default_factory=list)
    turns: int = 0


def _without_etag(item: Any) -> Any:
    if isinstance(item, dict):
        return {k: v for k, v in item.items() if k != "e_tag"}
    return item


NESTED: dict[str, Any] = {
    "text": 'Grüße, 世界 ✓ "quoted" \\ back',
    "numbers": [0, -1, 2**53, 1.5, -0.25],
    "flags": {"on": True, "off": False, "none": None},
    "deep": {"a": [{"b": [{"c": {"d": ["e", {"f": []}]}}]}]},
    "empty": {},
}


# --- reading and writing ---------------------------------------------------------------------


async def test_reading_missing_keys_leaves_them_out(backend: Backend) -> None:
    storage = backend.bot_storage
    assert await storage.read(["unknown"]) == {}
    assert await storage.read([]) == {}
    await storage.write({"known": {"v": 1}})
    assert list(await storage.read(["unknown", "known", "other"])) == ["known"]


async def test_writing_nothing_is_fine_and_none_is_refused(backend: Backend) -> None:
    await backend.bot_storage.write({})
    with pytest.raises(Exception):  # noqa: B017 - botbuilder raises a bare Exception here
        await backend.bot_storage.write(None)


async def test_nested_documents_round_trip_with_an_etag(backend: Backend) -> None:
    storage = backend.bot_storage
    await storage.write({"doc": copy.deepcopy(NESTED), "other": {"id": 2}})
    items = await storage.read(["doc", "other"])
    assert _without_etag(items["doc"]) == NESTED
    assert _without_etag(items["other"]) == {"id": 2}
    assert items["doc"]["e_tag"]
    assert items["other"]["e_tag"]
    assert items["doc"]["e_tag"] != items["other"]["e_tag"]


async def test_crazy_keys(backend: Backend) -> None:
    storage = backend.bot_storage
    keys = [
        '!@#$%^&*()_+??><":QASD~`',
        "msteams/conversations/19:abc@thread.v2;messageid=1",
        "emulator/users/6c2d8e50|livechat",
        "webchat/conversations/a b\tc\nd/ünï",
        "'; DROP TABLE bot_state; --",
    ]
    await storage.write({k: {"id": i} for i, k in enumerate(keys)})
    items = await storage.read(keys)
    assert {k: v["id"] for k, v in items.items()} == {k: i for i, k in enumerate(keys)}


async def test_batch_write_read_delete(backend: Backend) -> None:
    storage = backend.bot_storage
    await storage.write({f"batch{i}": {"count": i * 10} for i in range(1, 4)})
    items = await storage.read(["batch1", "batch2", "batch3"])
    assert {k: v["count"] for k, v in items.items()} == {"batch1": 10, "batch2": 20, "batch3": 30}
    await storage.delete(["batch1", "batch2", "batch3"])
    assert await storage.read(["batch1", "batch2", "batch3"]) == {}


async def test_delete(backend: Backend) -> None:
    storage = backend.bot_storage
    await storage.write({"keep": {"n": 1}, "drop": {"n": 2}})
    await storage.delete(["drop"])
    await storage.delete(["never-written"])
    await storage.delete([])
    assert list(await storage.read(["keep", "drop"])) == ["keep"]
    # A deleted key can be written again from scratch.
    await storage.write({"drop": {"n": 3}})
    assert (await storage.read(["drop"]))["drop"]["n"] == 3


async def test_a_read_item_is_a_copy(backend: Backend) -> None:
    storage = backend.bot_storage
    await storage.write({"doc": {"list": [1]}})
    first = await storage.read(["doc"])
    first["doc"]["list"].append(2)
    assert (await storage.read(["doc"]))["doc"]["list"] == [1]


# --- etags -----------------------------------------------------------------------------------


async def test_writing_back_with_the_read_etag_succeeds_once(backend: Backend) -> None:
    storage = backend.bot_storage
    await storage.write({"doc": {"count": 1}})
    loaded = (await storage.read(["doc"]))["doc"]
    etag = loaded["e_tag"]

    loaded["count"] = 2
    await storage.write({"doc": loaded})
    reloaded = (await storage.read(["doc"]))["doc"]
    assert reloaded["count"] == 2
    assert reloaded["e_tag"] != etag

    # The same copy, still carrying the etag it was read with, is now stale.
    loaded["count"] = 3
    with pytest.raises(KeyError):
        await storage.write({"doc": loaded})
    assert (await storage.read(["doc"]))["doc"] == reloaded


async def test_stale_etag_raises_and_changes_nothing(backend: Backend) -> None:
    storage = backend.bot_storage
    await storage.write({"doc": {"count": 1}})
    turn_a = (await storage.read(["doc"]))["doc"]
    turn_b = (await storage.read(["doc"]))["doc"]

    turn_a["count"] = 10
    await storage.write({"doc": turn_a})
    turn_b["count"] = 20
    with pytest.raises(KeyError):
        await storage.write({"doc": turn_b})

    assert _without_etag((await storage.read(["doc"]))["doc"]) == {"count": 10}


async def test_concurrent_writers_with_one_etag_exactly_one_wins(backend: Backend) -> None:
    storage = backend.bot_storage
    await storage.write({"doc": {"count": 0}})
    copies = [(await storage.read(["doc"]))["doc"] for _ in range(4)]
    for i, item in enumerate(copies):
        item["count"] = i + 1

    outcomes = await asyncio.gather(
        *(storage.write({"doc": item}) for item in copies), return_exceptions=True
    )

    winners = [i for i, o in enumerate(outcomes) if o is None]
    assert len(winners) == 1
    assert all(isinstance(o, KeyError) for o in outcomes if o is not None)
    assert (await storage.read(["doc"]))["doc"]["count"] == winners[0] + 1


async def test_wildcard_or_no_etag_overwrites(backend: Backend) -> None:
    storage = backend.bot_storage
    await storage.write({"a": {"count": 1}, "b": {"count": 1}})
    stale = await storage.read(["a", "b"])
    await storage.write(copy.deepcopy(stale))  # both now carry newer etags

    stale["a"]["e_tag"] = "*"
    stale["a"]["count"] = 100
    stale["b"]["e_tag"] = None
    stale["b"]["count"] = 200
    await storage.write(stale)

    items = await storage.read(["a", "b"])
    assert (items["a"]["count"], items["b"]["count"]) == (100, 200)
    assert items["a"]["e_tag"] not in (None, "*")


async def test_empty_etag_is_refused(backend: Backend) -> None:
    storage = backend.bot_storage
    await storage.write({"doc": {"count": 1}})
    item = (await storage.read(["doc"]))["doc"]
    item["e_tag"] = ""
    item["count"] = 2
    with pytest.raises(Exception):  # noqa: B017 - botbuilder raises a bare Exception here
        await storage.write({"doc": item})
    assert (await storage.read(["doc"]))["doc"]["count"] == 1


@dataclass
class _PickledItem:
    """A state object (not a dict) carrying its etag as an attribute, as botbuilder allows."""

    count: int
    e_tag: str | None = None


async def test_etags_work_on_objects_too(backend: Backend) -> None:
    storage = backend.bot_storage
    await storage.write({"obj": _PickledItem(count=1)})
    loaded = (await storage.read(["obj"]))["obj"]
    assert isinstance(loaded, _PickledItem)
    assert loaded.e_tag
    loaded.count = 2
    await storage.write({"obj": loaded})
    loaded.count = 3
    with pytest.raises(KeyError):
        await storage.write({"obj": loaded})
    reread = (await storage.read(["obj"]))["obj"]
    assert reread.count == 2
    assert reread.e_tag not in (None, loaded.e_tag)


# --- against MemoryStorage -------------------------------------------------------------------


async def test_plain_operations_match_memory_storage(backend: Backend) -> None:
    reference = MemoryStorage()
    storage = backend.bot_storage
    rng = random.Random(2024)
    keys = [f"key-{i}" for i in range(6)]

    for step in range(150):
        action = rng.choice(["write", "write", "delete", "read"])
        chosen = rng.sample(keys, rng.randint(1, 3))
        if action == "write":
            changes = {
                k: {"step": step, "value": rng.random(), "tags": [k] * rng.randint(0, 2)}
                for k in chosen
            }
            if rng.random() < 0.3:
                for item in changes.values():
                    item["e_tag"] = "*"
            await reference.write(copy.deepcopy(changes))
            await storage.write(copy.deepcopy(changes))
        elif action == "delete":
            await reference.delete(list(chosen))
            await storage.delete(list(chosen))
        expected = await reference.read(keys)
        actual = await storage.read(keys)
        assert {k: _without_etag(v) for k, v in actual.items()} == {
            k: _without_etag(v) for k, v in expected.items()
        }, f"diverged at step {step} ({action} {chosen})"


# --- bot and dialog state through botbuilder ------------------------------------------------


async def _run_waterfall(storage: Storage) -> tuple[str, str]:
    """Drive a waterfall with a re-prompting TextPrompt over TestAdapter, one turn per message."""
    conversation_state = ConversationState(storage)
    user_state = UserState(storage)
    dialog_state = conversation_state.create_property("DialogState")
    profile_property = user_state.create_property("Profile")
    dialogs = DialogSet(dialog_state)
    seen_keys: list[str] = []

    async def ask_name(step: WaterfallStepContext) -> DialogTurnResult:
        assert isinstance(step.active_dialog.state["stepIndex"], int)
        return await step.prompt(
            "name", PromptOptions(prompt=MessageFactory.text("What is your name?"))
        )

    async def ask_mute(step: WaterfallStepContext) -> DialogTurnResult:
        profile: Profile = await profile_property.get(step.context, Profile)
        profile.name = str(step.result)
        return await step.prompt(
            "name", PromptOptions(prompt=MessageFactory.text(f"Mute what, {profile.name}?"))
        )

    async def done(step: WaterfallStepContext) -> DialogTurnResult:
        profile: Profile = await profile_property.get(step.context, Profile)
        profile.muted.append(str(step.result))
        await step.context.send_activity(f"Muted {', '.join(profile.muted)} for {profile.name}")
        return await step.end_dialog()

    async def longer_than_three(prompt: Any) -> bool:
        if len(prompt.recognized.value) > 3:
            return True
        await prompt.context.send_activity(f"Too short ({prompt.options.number_of_attempts})")
        return False

    dialogs.add(WaterfallDialog("profile", [ask_name, ask_mute, done]))
    dialogs.add(TextPrompt("name", longer_than_three))

    async def turn(context: TurnContext) -> None:
        profile: Profile = await profile_property.get(context, Profile)
        profile.turns += 1
        dialog_context = await dialogs.create_context(context)
        result = await dialog_context.continue_dialog()
        if result.status == DialogTurnStatus.Empty:
            await dialog_context.begin_dialog("profile")
        seen_keys.append(conversation_state.get_storage_key(context))
        seen_keys.append(user_state.get_storage_key(context))
        await conversation_state.save_changes(context)
        await user_state.save_changes(context)

    adapter = TestAdapter(turn)
    flow = await adapter.send("hi")
    flow = await flow.assert_reply("What is your name?")
    flow = await flow.send("Al")
    flow = await flow.assert_reply("Too short (0)")
    flow = await flow.send("Alice")
    flow = await flow.assert_reply("Mute what, Alice?")
    flow = await flow.send("training.due")
    await flow.assert_reply("Muted training.due for Alice")
    return seen_keys[0], seen_keys[1]


async def test_dialog_and_user_state_survive_between_turns(backend: Backend) -> None:
    conversation_key, user_key = await _run_waterfall(backend.bot_storage)

    items = await backend.bot_storage.read([conversation_key, user_key])
    dialog_state = items[conversation_key]["DialogState"]
    assert isinstance(dialog_state, DialogState)
    assert dialog_state.dialog_stack == []  # the waterfall ended
    profile = items[user_key]["Profile"]
    assert isinstance(profile, Profile)
    assert profile == Profile(name="Alice", muted=["training.due"], turns=4)


async def test_a_dialog_in_progress_is_stored_as_dialog_state(backend: Backend) -> None:
    storage = backend.bot_storage
    conversation_state = ConversationState(storage)
    dialogs = DialogSet(conversation_state.create_property("DialogState"))

    async def ask(step: WaterfallStepContext) -> DialogTurnResult:
        return await step.prompt("text", PromptOptions(prompt=MessageFactory.text("Sure?")))

    async def finish(step: WaterfallStepContext) -> DialogTurnResult:
        return await step.end_dialog(step.result)

    dialogs.add(WaterfallDialog("confirm", [ask, finish]))
    dialogs.add(TextPrompt("text"))
    keys: list[str] = []

    async def turn(context: TurnContext) -> None:
        dialog_context = await dialogs.create_context(context)
        await dialog_context.begin_dialog("confirm")
        keys.append(conversation_state.get_storage_key(context))
        await conversation_state.save_changes(context)

    adapter = TestAdapter(turn)
    await (await adapter.send("start")).assert_reply("Sure?")

    stored = (await storage.read(keys))[keys[0]]["DialogState"]
    assert isinstance(stored, DialogState)
    assert [instance.id for instance in stored.dialog_stack] == ["text", "confirm"]
    assert stored.dialog_stack[1].state["stepIndex"] == 0
    assert stored.dialog_stack[0].state["options"].prompt.text == "Sure?"
