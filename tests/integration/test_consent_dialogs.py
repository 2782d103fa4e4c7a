"""The opt-in and opt-out dialogs, turn by turn over /api/messages (DESIGN: Preferences).

Each test is a conversation: what the person sends (a typed message, a tapped suggested action,
a card click as Teams sends it) and what Herald answers in that conversation.
"""

from __future__ import annotations

from typing import Any

from tests.conftest import HeraldFactory
from tests.harness import Emulator, RunningHerald
from tests.integration.chat import (
    Chat,
    button,
    cards,
    chat,
    everything,
    inputs,
    suggested,
    teams_chat,
)
from tests.peers.connector import ConnectorStandIn


def event(user_key: str, **fields: Any) -> dict[str, Any]:
    return {
        "type": "hr.announcement",
        "title": "Benefits enrollment opened",
        "recipients": {"users": [user_key]},
        **fields,
    }


async def opted_in(c: Chat) -> bool | None:
    prefs, _ = await c.preferences()
    value: bool | None = prefs["optedIn"]
    return value


async def test_welcome_explains_and_asks_with_card_buttons_and_text_fallback(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    [welcome] = await c.join()
    assert "Herald" in welcome["text"]
    assert "yes" in welcome["text"].lower() and "no" in welcome["text"].lower()
    assert "company's systems" in everything(welcome)
    assert welcome["inputHint"] == "expectingInput"
    assert suggested(welcome) == ["Yes", "No"]
    [card] = cards(welcome)
    assert "Reply yes or no" in card["fallbackText"]
    assert button(welcome, "Yes, notify me") == {"action": "optIn"}
    assert button(welcome, "No, thanks") == {"action": "optOut"}
    assert await opted_in(c) is None

    [answer] = await c.say("Yes")  # the suggested action types "Yes"
    assert "You're in" in answer["text"]
    assert await opted_in(c) is True
    [status] = await c.say("status")  # the dialog is over: commands work again
    assert "Notifications: on." in status["text"]


async def test_card_click_as_teams_sends_it_answers_the_waiting_question(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = teams_chat(herald, emulator, connector)
    [welcome] = await c.install()
    [answer] = await c.click(button(welcome, "Yes, notify me"))
    assert "You're in" in answer["text"]
    assert await opted_in(c) is True
    [status] = await c.say("status")
    assert "Notifications: on." in status["text"]


async def test_no_then_start_again(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    [answer] = await c.say("no")
    assert "turned off all notifications" in answer["text"]
    assert await opted_in(c) is False

    code, _ = await herald.post_event(event(c.user.key, id="while-out"))
    assert code == 202
    status = await herald.wait_status("while-out")
    assert status["reasons"] == {"skipped:opted-out": 1}
    assert await c.quiet() == []

    [answer] = await c.say("start")  # the answer itself: no second consent question
    assert "You're in" in answer["text"]
    assert suggested(answer) == []
    assert await opted_in(c) is True
    [again] = await c.say("opt in")
    assert "already" in again["text"]


async def test_opt_out_asks_for_confirmation_first(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    await c.say("yes")

    [confirm] = await c.say("stop")
    assert "Turn off all notifications?" in confirm["text"]
    assert suggested(confirm) == ["Yes", "No"]
    assert await opted_in(c) is True  # nothing changes before the answer
    [kept] = await c.say("No")
    assert "stay on" in kept["text"]
    assert await opted_in(c) is True

    [confirm] = await c.say("opt out")
    [done] = await c.click(button(confirm, "Yes, turn them off"))
    assert "turned off all notifications" in done["text"]
    assert await opted_in(c) is False
    [already] = await c.say("stop")
    assert "already off" in already["text"]


async def test_anything_else_is_asked_again_and_nothing_changes(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    [again] = await c.say("maybe later")
    assert again["text"].startswith("Sorry, I need one of the answers.")
    assert "**1.** Yes, **2.** No" in again["text"]
    assert suggested(again) == ["Yes", "No"]
    assert await opted_in(c) is None
    [answer] = await c.say("YES!")
    assert "You're in" in answer["text"]


async def test_help_inside_the_dialog_explains_and_keeps_waiting(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    explained, asked_again = await c.say("help")
    assert "I'm asking whether you want notifications" in explained["text"]
    assert "**settings**" in explained["text"]  # and what else Herald can do
    assert suggested(asked_again) == ["Yes", "No"]
    [answer] = await c.say("no")
    assert await opted_in(c) is False
    assert "turned off" in answer["text"]


async def test_other_commands_are_answered_and_the_question_asked_again(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    settings, asked_again = await c.say("settings")
    assert inputs(settings)["timeZone"]["value"] == "Europe/Berlin"
    assert "Would you like to receive notifications from me?" in asked_again["text"]
    saved, asked_again = await c.say("quiet 22:00-07:00")
    assert "- Quiet hours: 22:00–07:00" in saved["text"]
    assert suggested(asked_again) == ["Yes", "No"]
    [answer] = await c.say("yes")
    assert "You're in" in answer["text"]


async def test_cancel_ends_the_dialog_and_changes_nothing(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    await c.say("yes")
    await c.say("stop")
    [cancelled] = await c.say("cancel")
    assert "cancelled" in cancelled["text"]
    assert await opted_in(c) is True
    [reply] = await c.say("yes")  # no dialog is waiting any more
    assert "didn't understand" in reply["text"]
    [nothing] = await c.say("cancel")
    assert "nothing to cancel" in nothing["text"]


async def test_a_restart_in_the_middle_of_the_dialog_resumes_it(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    await c.say("yes")
    await c.say("stop")
    await herald.restart()
    [done] = await c.say("yes")
    assert "turned off all notifications" in done["text"]
    assert await opted_in(c) is False


async def test_old_consent_buttons_still_work_without_a_waiting_dialog(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    [welcome] = await c.join()
    await c.say("cancel")  # the question is gone from the dialog stack...
    await herald.restart()
    [answer] = await c.click(button(welcome, "No, thanks"))  # ...but its card still works
    assert "turned off" in answer["text"]
    assert await opted_in(c) is False
    [answer] = await c.click(button(welcome, "Yes, notify me"))
    assert "You're in" in answer["text"]
    assert await opted_in(c) is True


async def test_first_hello_without_a_conversation_update_gets_the_welcome(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    [welcome] = await c.say("hello")
    assert button(welcome, "Yes, notify me") == {"action": "optIn"}
    [answer] = await c.say("y")
    assert "You're in" in answer["text"]


async def test_someone_who_answered_is_welcomed_without_the_question(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    await c.say("no")
    [welcome] = await c.join()
    assert "Herald" in welcome["text"]
    assert cards(welcome) == []


async def test_default_mode_delivers_to_people_who_never_answered(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()  # the question stays unanswered
    await herald.post_event(event(c.user.key, id="default-rule"))
    status = await herald.wait_status("default-rule")
    assert status["counters"]["delivered"] == 1


async def test_opt_in_required_delivers_nothing_until_yes(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    herald = await herald_factory(HERALD_OPT_IN_REQUIRED="true")
    c = chat(herald, Emulator(herald, connector.url), connector)
    [welcome] = await c.join()
    assert "I'll only send you something once you say yes" in everything(welcome)

    await herald.post_event(event(c.user.key, id="before-yes"))
    status = await herald.wait_status("before-yes")
    assert status["reasons"] == {"skipped:not-opted-in": 1}
    [cancelled] = await c.say("cancel")
    assert "cancelled" in cancelled["text"]
    [status_reply] = await c.say("status")
    assert "off until you opt in" in status_reply["text"]

    await c.click(button(welcome, "Yes, notify me"))
    await herald.post_event(event(c.user.key, id="after-yes"))
    status = await herald.wait_status("after-yes")
    assert status["counters"]["delivered"] == 1


async def test_a_broken_dialog_state_is_reset_after_one_failed_turn(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()  # the consent question waits on the dialog stack
    # A dialog that no longer exists (an older version's state, say) sits on the stack.
    changed = await herald.herald.db.write(
        "UPDATE bot_state SET document = replace(document, 'OptInDialog', 'GoneDialog')"
        " WHERE document LIKE '%OptInDialog%'"
    )
    assert changed == 1
    [sorry] = await c.say("yes")
    assert "something went wrong" in sorry["text"]
    [status] = await c.say("status")  # the next turn starts afresh instead of failing again
    assert "Your Herald id" in status["text"]
