"""What a person meets first in Teams (Agents Playground) and the Emulator (issue 16).

The double welcome (Teams sends `installationUpdate` and `conversationUpdate` within the same
millisecond), the settings card shown before the consent click, line breaks in a card, the
URL's Open button beside a question's answers, the card updated in place after Save, channel
names an Emulator user understands, and `start` after `stop`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import ON_EVERY_BACKEND, HeraldFactory
from tests.harness import Emulator, RunningHerald
from tests.integration.chat import (
    Chat,
    button,
    cards,
    chat,
    everything,
    inputs,
    teams_chat,
    walk,
)
from tests.peers.connector import ConnectorStandIn


async def opted_in(c: Chat) -> bool | None:
    prefs, _ = await c.preferences()
    value: bool | None = prefs["optedIn"]
    return value


async def install_and_join_at_once(c: Chat) -> None:
    """What Teams and Agents Playground send when the app is installed (or the Playground
    reloaded): both activities at the same moment, handled as two concurrent turns."""
    user = c.user
    statuses = await asyncio.gather(
        c.emulator.post(c.emulator.activity(user, "installationUpdate", action="add")),
        c.emulator.post(
            c.emulator.activity(
                user,
                "conversationUpdate",
                membersAdded=[{"id": f"28:{Emulator.BOT_ID}"}, {"id": user.id}],
            )
        ),
    )
    assert all(s in (200, 201) for s in statuses), statuses


@ON_EVERY_BACKEND
async def test_install_and_join_at_once_welcome_once(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    herald = await herald_factory()
    emulator = Emulator(herald, connector.url)
    for _ in range(3):  # a race: several people installing, each must be greeted exactly once
        c = teams_chat(herald, emulator, connector)
        await install_and_join_at_once(c)
        welcome = c._new()
        assert len(welcome) == 1, [m.get("text") for m in welcome]
        assert button(welcome[0], "Yes, notify me") == {"action": "optIn"}

        # The winner's consent question is what the conversation waits for.
        [answer] = await c.say("yes")
        assert "You're in" in answer["text"]
        assert await opted_in(c) is True

        for _reload in range(2):  # a reload of the Playground sends the pair again
            await install_and_join_at_once(c)
            again = c._new()
            assert len(again) == 1, [m.get("text") for m in again]
            assert "Hi, I'm Herald" in again[0]["text"] and cards(again[0]) == []


async def test_the_settings_card_shown_before_consent_is_saved_after_it(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = teams_chat(herald, emulator, connector)
    [welcome] = await c.install()
    shown = await c.say("settings")  # answered while the consent question waits
    card_message = next(m for m in shown if cards(m))
    save = button(card_message, "Save")
    card_id = c.records()[-len(shown)].activity_id
    assert card_id is not None
    await c.click(button(welcome, "Yes, notify me"))
    assert await opted_in(c) is True

    [saved] = await c.click(save, reply_to=card_id, webpush="false")
    assert saved["text"].startswith("Saved ✅"), saved["text"]
    assert "Browser push: off" in saved["text"]
    prefs, _ = await c.preferences()
    assert prefs["channels"]["webpush"] is False and prefs["optedIn"] is True

    # The card on screen now shows what was saved, and its Save carries the new state.
    [update] = connector.updates(c.user.conversation_id)
    assert update.activity_id == card_id
    toggles = inputs(update.body)
    assert toggles["webpush"]["value"] == "false"
    [again] = await c.click(button(update.body, "Save"), reply_to=card_id, webpush="true")
    assert "Browser push: on" in again["text"]


async def test_a_card_is_still_refused_when_what_it_edits_changed_elsewhere(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    await c.say("yes")
    [card_message] = await c.say("settings")
    save = button(card_message, "Save")
    await c.say("quiet 22:00-07:00")  # changes a field the card shows
    [refused] = await c.click(save, webpush="false")
    assert "changed somewhere else" in refused["text"]
    prefs, _ = await c.preferences()
    assert prefs["channels"]["webpush"] is True
    assert prefs["quietHours"] == {"start": "22:00", "end": "07:00"}


async def test_single_line_breaks_stay_line_breaks_in_the_card(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    await c.say("yes")
    code, _ = await herald.post_event(
        {
            "type": "case.assigned",
            "title": "Case 4711",
            "text": "Customer: Contoso\nPriority: high\r\nOwner: Ada\n\nReply by Friday.",
            "recipients": {"users": [c.user.key]},
        }
    )
    assert code == 202
    [message] = await c.wait_new()
    [card] = cards(message)
    texts = [n["text"] for n in walk(card) if n.get("type") == "TextBlock"]
    assert "Customer: Contoso\n\nPriority: high\n\nOwner: Ada\n\nReply by Friday." in texts


async def test_the_open_button_is_not_in_the_row_of_answers(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    await c.say("yes")
    code, _ = await herald.post_event(
        {
            "id": "survey-1",
            "type": "survey",
            "title": "Lunch survey",
            "url": "https://intranet.example.com/lunch",
            "prompt": {"text": "Pizza or pasta?", "choices": ["Pizza", "Pasta"]},
            "recipients": {"users": [c.user.key]},
        }
    )
    assert code == 202
    [message] = await c.wait_new()
    [card] = cards(message)
    assert [a["title"] for a in card["actions"]] == ["Pizza", "Pasta"]
    [action_set] = [n for n in card["body"] if n.get("type") == "ActionSet"]
    assert action_set["actions"] == [
        {"type": "Action.OpenUrl", "title": "Open", "url": "https://intranet.example.com/lunch"}
    ]
    question = next(i for i, n in enumerate(card["body"]) if n.get("text") == "Pizza or pasta?")
    assert card["body"].index(action_set) < question  # under the text, above the question

    # Without a question, Open stays the card's action.
    code, _ = await herald.post_event(
        {
            "type": "case.assigned",
            "title": "Case 4712",
            "url": "https://crm.example.com/cases/4712",
            "recipients": {"users": [c.user.key]},
        }
    )
    [plain] = await c.wait_new()
    [card] = cards(plain)
    # Open stays first; *Mark read* (issue 14) comes after it.
    assert [a["title"] for a in card["actions"]] == ["Open", "Mark read"]


async def test_an_emulator_user_is_not_offered_teams(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    await c.say("yes")
    [help_] = await c.say("help")
    [card_message] = await c.say("settings")
    [status] = await c.say("status")
    seen: list[dict[str, Any]] = [help_, card_message, status]
    assert all("Teams chat" not in everything(m) and "teams off" not in everything(m) for m in seen)
    assert inputs(card_message)["conversation"]["title"] == "Chat"
    [off] = await c.say("chat off")
    assert "Chat: off" in off["text"]


async def test_start_after_stop_turns_notifications_on_without_asking(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = teams_chat(herald, emulator, connector)
    await c.install()
    await c.say("yes")
    [confirm] = await c.say("stop")
    [off] = await c.click(button(confirm, "Yes, turn them off"))
    assert "turned off" in off["text"]
    assert await opted_in(c) is False
    [on] = await c.say("start")
    assert "You're in" in on["text"]
    assert cards(on) == []
    assert await opted_in(c) is True
