"""The calendar dialog, turn by turn over /api/messages: "Notify me about changes to my
calendar" — Allowed / Not allowed, with Herald subscribing at the Graph stand-in for real."""

from __future__ import annotations

from tests.harness import Emulator, RunningHerald
from tests.integration.chat import Chat, button, card_texts, chat, everything, suggested
from tests.integration.conftest import GraphPeers
from tests.peers.connector import ConnectorStandIn


async def teams(herald: RunningHerald, connector: ConnectorStandIn) -> Chat:
    emulator = Emulator(herald, connector.url)
    c = Chat(herald, emulator, connector, emulator.teams_user())
    await c.install()
    await c.say("yes")
    return c


async def test_allow_by_card_then_not_allowed_by_text(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    graph = graph_peers.graph
    c = await teams(graph_herald, connector)
    [question] = await c.say("calendar")
    assert "Notify me about changes to my calendar?" in question["text"]
    assert "Right now: off" in question["text"]
    assert suggested(question) == ["Allowed", "Not allowed"]
    assert button(question, "Allowed") == {"action": "calendarAllow"}
    assert button(question, "Not allowed") == {"action": "calendarDeny"}
    assert graph.live() == []  # nothing before the answer

    [done] = await c.click(button(question, "Allowed"))
    assert "Done ✅" in done["text"]
    [subscription] = graph.for_user(c.user.key)
    assert subscription.resource == f"users/{c.user.key}/events"

    [question] = await c.say("calendar")  # asked again: shows it is on
    assert "Right now: on (renews itself" in question["text"]
    [already] = await c.say("allowed")
    assert "already on" in already["text"]
    assert len(graph.for_user(c.user.key)) == 1
    assert len(graph.calls("POST", "/subscriptions")) == 1

    [question] = await c.say("calendar")
    [off] = await c.say("not allowed")
    assert "calendar notifications are off" in off["text"]
    assert graph.live() == []
    [status] = await c.say("status")
    assert "Calendar changes: off" in status["text"]


async def test_buttons_work_whenever_clicked_and_text_shortcuts(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    graph = graph_peers.graph
    c = await teams(graph_herald, connector)
    [question] = await c.say("calendar")
    await c.say("cancel")  # the dialog is gone; the card's buttons still work
    [done] = await c.click(button(question, "Allowed"))
    assert "Done ✅" in done["text"]
    assert len(graph.for_user(c.user.key)) == 1
    [off] = await c.say("calendar off")
    assert "off" in off["text"]
    assert graph.live() == []
    [on] = await c.say("calendar on")
    assert "Done ✅" in on["text"]
    assert len(graph.for_user(c.user.key)) == 1


async def test_help_inside_the_question_and_other_answers(
    graph_herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    c = await teams(graph_herald, connector)
    await c.say("calendar")
    explained, asked_again = await c.say("help")
    assert "changes to your calendar" in explained["text"]
    assert "**calendar**" in explained["text"]  # help lists the command
    assert suggested(asked_again) == ["Allowed", "Not allowed"]
    [again] = await c.say("maybe")
    assert again["text"].startswith("Sorry, I need one of the answers.")


async def test_stop_also_ends_the_calendar_subscription(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    graph = graph_peers.graph
    c = await teams(graph_herald, connector)
    await c.say("calendar on")
    assert len(graph.for_user(c.user.key)) == 1
    [confirm] = await c.say("stop")
    [done] = await c.click(button(confirm, "Yes, turn them off"))
    assert "turned off all notifications" in done["text"]
    assert "stopped watching your calendar" in done["text"]
    assert graph.live() == []
    [refused] = await c.say("calendar on")
    assert "Type **start** first" in refused["text"]
    assert graph.live() == []


async def test_settings_card_shows_the_calendar_and_opens_the_question(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    c = await teams(graph_herald, connector)
    [card] = await c.say("settings")
    assert "Calendar changes: off." in card_texts(card)
    [question] = await c.click(button(card, "Calendar notifications…"))
    assert "Notify me about changes to my calendar?" in everything(question)
    [done] = await c.click(button(question, "Allowed"))
    assert "Done ✅" in done["text"]
    [card] = await c.say("settings")
    assert "Calendar changes: on (renews itself" in card_texts(card)


async def test_emulator_users_are_told_they_cannot_have_it(
    graph_herald: RunningHerald, graph_peers: GraphPeers, connector: ConnectorStandIn
) -> None:
    c = chat(graph_herald, Emulator(graph_herald, connector.url), connector)
    await c.join()
    await c.say("yes")
    [answer] = await c.say("calendar")
    assert "Microsoft 365 work account" in answer["text"]
    [answer] = await c.say("calendar on")
    assert "Microsoft 365 work account" in answer["text"]
    assert graph_peers.graph.requests == []


async def test_without_graph_the_dialog_says_it_is_off(
    herald: RunningHerald, connector: ConnectorStandIn
) -> None:
    c = await teams(herald, connector)
    [answer] = await c.say("calendar")
    assert "switched off on this Herald" in answer["text"]
    [help_text] = await c.say("help")
    assert "**calendar**" in help_text["text"]
    [card] = await c.say("settings")
    assert "Calendar" not in card_texts(card)  # no section for what this Herald cannot do
