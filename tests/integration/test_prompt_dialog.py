"""Proactive prompts: an event's question, answered by button or by text, without breaking a
dialog the user is in; and the history dialog."""

from __future__ import annotations

import asyncio
from typing import Any

from api.prompt_answers import prompt_answer_counts
from tests.harness import Emulator, RunningHerald
from tests.integration.chat import Chat, button, card_texts, cards, chat, suggested, teams_chat
from tests.peers.connector import ConnectorStandIn

QUESTION = "Benefits enrollment just opened. Would you like to know more?"


def asking(user_key: str, notification_id: str, **fields: Any) -> dict[str, Any]:
    return {
        "id": notification_id,
        "type": "hr.benefits",
        "title": "Benefits enrollment opened",
        "recipients": {"users": [user_key]},
        "prompt": {"text": QUESTION, "choices": ["Yes", "No", "Later"]},
        **fields,
    }


async def answers(herald: RunningHerald, notification_id: str) -> dict[str, int] | None:
    """The answers as GET /api/notifications/{id} reports them: what the prompt store counted,
    in the same order (the prompt's choices first)."""
    reported = (await herald.status(notification_id))["answers"]
    record = await herald.herald.notifications.get(notification_id)
    assert record is not None
    counted = await prompt_answer_counts(herald.herald.prompts, record)
    assert reported == counted
    assert list(reported or ()) == list(counted or ())
    return reported


async def joined(herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn) -> Chat:
    c = chat(herald, emulator, connector)
    await c.join()
    await c.say("yes")
    return c


async def receive(c: Chat, event: dict[str, Any]) -> dict[str, Any]:
    code, body = await c.herald.post_event(event)
    assert code == 202, body
    [card] = await c.wait_new(1)
    await c.herald.wait_status(event["id"])
    return card


async def test_the_question_comes_on_the_card_and_a_click_answers_it(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    card = await receive(c, asking(c.user.key, "benefits-1"))
    assert len(cards(card)) == 1
    assert QUESTION in card_texts(card)
    assert button(card, "Yes") == {
        "action": "promptAnswer",
        "notificationId": "benefits-1",
        "choice": "Yes",
    }
    assert suggested(card) == ["Yes", "No", "Later"]
    assert await answers(herald, "benefits-1") == {"Yes": 0, "No": 0, "Later": 0}

    [thanks] = await c.click(button(card, "No"))
    assert "**No**" in thanks["text"]
    assert await answers(herald, "benefits-1") == {"Yes": 0, "No": 1, "Later": 0}
    [status] = await c.say("status")  # nothing is left waiting for a typed answer
    assert "Your Herald id" in status["text"]
    [changed] = await c.click(button(card, "Yes"))  # the latest answer counts
    assert "**Yes**" in changed["text"]
    assert await answers(herald, "benefits-1") == {"Yes": 1, "No": 0, "Later": 0}


async def test_a_typed_answer_is_taken_by_the_prompt_dialog(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    await receive(c, asking(c.user.key, "benefits-2"))
    [thanks] = await c.say("later")  # case-insensitive; the suggested action types "Later"
    assert "**Later**" in thanks["text"]
    assert await answers(herald, "benefits-2") == {"Yes": 0, "No": 0, "Later": 1}
    [reply] = await c.say("yes")  # answered: "yes" is nobody's answer any more
    assert "didn't understand" in reply["text"]


async def test_anything_else_asks_again_help_explains_and_cancel_skips(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    await receive(c, asking(c.user.key, "benefits-3"))
    [again] = await c.say("what is this about")
    assert QUESTION in again["text"] and "**3.** Later" in again["text"]
    explained, asked = await c.say("help")
    assert "A notification asked you a question" in explained["text"]
    assert suggested(asked) == ["Yes", "No", "Later"]
    [cancelled] = await c.say("cancel")
    assert "cancelled" in cancelled["text"]
    assert await answers(herald, "benefits-3") == {"Yes": 0, "No": 0, "Later": 0}
    [reply] = await c.say("2")
    assert "didn't understand" in reply["text"]


async def test_a_question_waits_until_the_dialog_the_user_is_in_ends(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    [confirm] = await c.say("stop")
    assert "Turn off all notifications?" in confirm["text"]  # mid-dialog
    await receive(c, asking(c.user.key, "benefits-4"))
    # "No" answers the dialog the user is in, not the question that arrived meanwhile.
    kept, reminder = await c.say("No")
    assert "stay on" in kept["text"]
    assert (await c.preferences())[0]["optedIn"] is True
    assert await answers(herald, "benefits-4") == {"Yes": 0, "No": 0, "Later": 0}
    assert reminder["text"] == f"Earlier I asked: {QUESTION}"
    assert suggested(reminder) == ["Yes", "No", "Later"]
    [thanks] = await c.say("Yes")
    assert "**Yes**" in thanks["text"]
    assert await answers(herald, "benefits-4") == {"Yes": 1, "No": 0, "Later": 0}


async def test_a_button_answer_works_while_another_dialog_waits(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    await c.say("stop")
    card = await receive(c, asking(c.user.key, "benefits-5"))
    [thanks] = await c.click(button(card, "Later"))
    assert "**Later**" in thanks["text"]
    [done] = await c.say("yes")  # the opt-out confirmation was still waiting, untouched
    assert "turned off all notifications" in done["text"]
    assert await c.quiet() == []  # and the answered question is not asked again


async def test_two_questions_newest_first_then_the_other_with_a_reminder(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    await receive(c, asking(c.user.key, "q-old"))
    await receive(
        c, asking(c.user.key, "q-new", prompt={"text": "Coffee?", "choices": ["Tea", "Coffee"]})
    )
    thanks, reminder = await c.say("coffee")  # the suggested actions on screen are the newest
    assert "**Coffee**" in thanks["text"]
    assert reminder["text"] == f"Earlier I asked: {QUESTION}"
    await c.say("no")
    assert await answers(herald, "q-new") == {"Tea": 0, "Coffee": 1}
    assert await answers(herald, "q-old") == {"Yes": 0, "No": 1, "Later": 0}


async def test_a_restart_before_the_answer_loses_nothing(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    card = await receive(c, asking(c.user.key, "benefits-6"))
    await herald.restart()
    [again] = await c.say("hmm")  # the question is taken up after the restart...
    assert QUESTION in again["text"]
    await herald.restart()  # ...and survives another one mid-dialog
    [thanks] = await c.say("no")
    assert "**No**" in thanks["text"]
    await herald.restart()
    [changed] = await c.click(button(card, "Yes"))  # the card works after restarts too
    assert "**Yes**" in changed["text"]
    assert await answers(herald, "benefits-6") == {"Yes": 1, "No": 0, "Later": 0}


async def test_answers_are_counted_per_choice_across_users(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    people = [await joined(herald, emulator, connector) for _ in range(4)]
    event = asking(people[0].user.key, "benefits-7")
    event["recipients"] = {"users": [p.user.key for p in people]}
    await herald.post_event(event)
    await herald.wait_status("benefits-7")
    for person in people:
        await person.wait_new(1)
    for person, choice in zip(people, ("Yes", "yes", "No", "LATER"), strict=True):
        await person.say(choice)
    assert await answers(herald, "benefits-7") == {"Yes": 2, "No": 1, "Later": 1}


async def test_answers_from_people_who_were_not_asked_are_refused(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    asked = await joined(herald, emulator, connector)
    card = await receive(asked, asking(asked.user.key, "benefits-8"))
    outsider = await joined(herald, emulator, connector)
    [refused] = await outsider.click(button(card, "Yes"))
    assert "wasn't sent to you" in refused["text"]
    [refused] = await asked.click({**button(card, "Yes"), "choice": "Maybe"})
    assert "not one of the answers" in refused["text"]
    [refused] = await asked.click({**button(card, "Yes"), "notificationId": "nope"})
    assert "don't know that question" in refused["text"]
    assert await answers(herald, "benefits-8") == {"Yes": 0, "No": 0, "Later": 0}


async def test_a_backends_own_card_gets_the_question_on_a_second_card(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    own = {"type": "AdaptiveCard", "version": "1.4", "body": [{"type": "TextBlock", "text": "Own"}]}
    card = await receive(c, asking(c.user.key, "benefits-9", card=own))
    first, second = cards(card)
    assert first == own
    assert second["body"][0]["text"] == QUESTION
    [thanks] = await c.click(button(card, "Yes"))
    assert "**Yes**" in thanks["text"]


async def test_an_edited_notification_keeps_its_question_and_answers(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    event = asking(c.user.key, "benefits-10")
    card = await receive(c, event)
    await c.click(button(card, "Yes"))
    await herald.post_event({**event, "title": "Benefits enrollment: 3 days left"})
    await connector.wait_for(lambda s: len(s.updates(c.user.conversation_id)) == 1)
    edit = connector.updates(c.user.conversation_id)[0].body
    assert button(edit, "No")["notificationId"] == "benefits-10"
    assert await answers(herald, "benefits-10") == {"Yes": 1, "No": 0, "Later": 0}
    [reply] = await c.say("no")  # answered already: not asked again after the edit
    assert "didn't understand" in reply["text"]


async def test_the_status_shows_answers_per_choice_in_the_prompts_order(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    plain = {"id": "no-question", "type": "hr.news", "title": "News"}
    await receive(c, {**plain, "recipients": {"users": [c.user.key]}})
    status = await herald.status("no-question")
    assert "answers" in status and status["answers"] is None  # it asks nothing

    choices = ["Later", "No", "Yes"]  # not alphabetical by accident: the prompt's order
    event = asking(c.user.key, "benefits-11", prompt={"text": QUESTION, "choices": choices})
    card = await receive(c, event)
    status = await herald.status("benefits-11")
    assert list(status["answers"].items()) == [("Later", 0), ("No", 0), ("Yes", 0)]
    await c.click(button(card, "Later"))
    status = await herald.status("benefits-11")
    assert list(status["answers"].items()) == [("Later", 1), ("No", 0), ("Yes", 0)]

    # An update drops "Later": its answer still counts, after the current choices.
    updated = {**event, "prompt": {"text": QUESTION, "choices": ["Yes", "No"]}}
    code, body = await herald.post_event(updated)
    assert (code, body["outcome"]) == (202, "updated"), body
    await connector.wait_for(lambda s: len(s.updates(c.user.conversation_id)) == 1)
    status = await herald.wait_status("benefits-11", lambda s: s["version"] == 2)
    assert list(status["answers"].items()) == [("Yes", 0), ("No", 0), ("Later", 1)]
    assert await answers(herald, "benefits-11") == {"Yes": 0, "No": 0, "Later": 1}


async def test_user_turns_racing_deliveries_with_questions_never_fail(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    """A delivery turn only adds a row for its question; it never writes the dialog state a
    user's turn is writing at the same moment, so neither side hits an etag conflict."""
    c = teams_chat(herald, emulator, connector)
    await c.install()
    await c.say("yes")
    connector.slow(c.user.conversation_id, 0.02)  # every send takes a while: turns overlap
    n = 12
    events = [asking(c.user.key, f"race-{i}") for i in range(n)]

    async def typing() -> None:  # one message at a time, as a person types
        for text in ("status", "settings", "history", "mute a.b", "unmute a.b") * 3:
            assert await c.emulator.say(c.user, text) in (200, 201)

    await asyncio.gather(*(herald.post_event(e) for e in events), typing())
    for e in events:
        status = await herald.wait_status(e["id"])
        assert status["counters"]["delivered"] == 1, status  # once, never retried
    assert herald.herald.worker.results == {"delivered": n}
    texts = [r.body.get("text") or "" for r in c.records()]
    assert not any("something went wrong" in t for t in texts)
    connector.slow(c.user.conversation_id, 0)
    for _ in range(n):  # every question is still answerable by text, newest first
        await c.say("Yes")
    for e in events:
        assert await answers(herald, e["id"]) == {"Yes": 1, "No": 0, "Later": 0}


async def test_history_lists_the_last_ten_newest_first_and_marks_all_read(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await joined(herald, emulator, connector)
    [empty] = await c.say("history")
    assert empty["text"] == "You have no notifications yet."
    for i in range(12):
        await herald.post_event(
            {
                "id": f"h-{i}",
                "type": "case.assigned",
                "title": f"Case {i}",
                "recipients": {"users": [c.user.key]},
            }
        )
        await herald.wait_status(f"h-{i}")
    await c.wait_new(12)
    [history] = await c.say("history")
    lines = history["text"].splitlines()
    assert lines[0] == "Your last 10 notifications, newest first (10 unread):"
    items = lines[2:]
    assert [line.split(" · ")[0] for line in items] == [
        f"{n}. Case {11 - n + 1}" for n in range(1, 11)
    ]
    assert all(line.endswith("🔵 **unread**") for line in items)
    assert suggested(history) == ["mark all read"]

    [marked] = await c.say("mark all read")
    assert marked["text"] == "Marked 12 notifications as read ✅"
    [history] = await c.say("history")
    assert "(0 unread)" in history["text"]
    assert all(line.endswith(" · read") for line in history["text"].splitlines()[2:])
    assert suggested(history) == []
    [none] = await c.say("mark all read")
    assert none["text"] == "You have no unread notifications."
