"""The bot offers browser notifications, turn by turn: a link to the consent page that carries
a signed, short-lived token for this one person, in the opt-in answer, after `browser on`,
after a card that switches browser push on, and as a button on the preferences card."""

from __future__ import annotations

import re
from typing import Any

from tests.conftest import HeraldFactory
from tests.harness import Emulator, RunningHerald
from tests.integration.chat import Chat, button, card_texts, cards, chat, walk
from tests.peers.connector import ConnectorStandIn
from tests.peers.webpush import WebPushTesting

PUBLIC = "https://herald.contoso.com"
LINK = re.compile(r"\[Enable browser notifications\]\((?P<url>[^)\s]+)\)")


def offered(text: str) -> str | None:
    """The consent page link in a message, if it offers one."""
    match = LINK.search(text or "")
    return match["url"] if match else None


def token_of(herald: RunningHerald, url: str) -> str:
    assert url.startswith(f"{PUBLIC}/push/?token="), url
    return url.split("?token=", 1)[1]


def open_url_buttons(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for c in cards(message) for n in walk(c) if n.get("type") == "Action.OpenUrl"]


async def started(herald_factory: HeraldFactory, connector: ConnectorStandIn) -> Chat:
    herald = await herald_factory(HERALD_PUBLIC_URL=PUBLIC + "/")
    return chat(herald, Emulator(herald, connector.url), connector)


async def register_with(c: Chat, push_service: WebPushTesting, url: str) -> None:
    """What the consent page does with the link: subscribe, post with the token."""
    sub = await push_service.subscribe(c.herald.herald.vapid.public_key)
    code, body = await c.herald.request(
        "POST",
        "/api/push/subscriptions",
        json={"subscription": sub.to_json(), "token": token_of(c.herald, url)},
        auth=False,
    )
    assert code == 201, body


async def test_saying_yes_offers_the_link_for_this_person_only(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    c = await started(herald_factory, connector)
    await c.join()
    [answer] = await c.say("yes")
    assert "You're in" in answer["text"]
    url = offered(answer["text"])
    assert url is not None
    assert "only for you and works for 15 minutes" in answer["text"]
    links = c.herald.herald.links
    assert links.verify(token_of(c.herald, url), "webpush") == c.user.key

    [again] = await c.say("start")  # already in: nothing new is offered
    assert offered(again["text"]) is None


async def test_browser_on_offers_the_link_until_a_browser_is_registered(
    herald_factory: HeraldFactory, connector: ConnectorStandIn, push_service: WebPushTesting
) -> None:
    c = await started(herald_factory, connector)
    await c.join()
    await c.say("no")  # opted out: no offer at consent
    await c.say("start")  # turns them back on without asking again
    [answer] = await c.say("browser on")  # on by default, but it reaches no browser yet
    assert answer["text"].startswith("Nothing changed. Browser push was already on.")
    url = offered(answer["text"])
    assert url is not None

    await register_with(c, push_service, url)
    [answer] = await c.say("browser on")
    assert offered(answer["text"]) is None

    [answer] = await c.say("browser off")
    assert "- Browser push: off" in answer["text"] and offered(answer["text"]) is None
    [answer] = await c.say("browser on")
    assert "- Browser push: on" in answer["text"]
    assert offered(answer["text"]) is None  # the registered browser still reaches them


async def test_switching_browser_push_on_offers_the_link(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    c = await started(herald_factory, connector)
    await c.join()
    await c.say("yes")
    await c.say("browser off")
    [answer] = await c.say("turn on browser push")
    assert "- Browser push: on" in answer["text"]
    assert offered(answer["text"]) is not None

    await c.say("browser off")
    [card_message] = await c.say("settings")
    [saved] = await c.click(button(card_message, "Save"), webpush="true")
    assert "- Browser push: on" in saved["text"]
    url = offered(saved["text"])
    assert url is not None
    assert c.herald.herald.links.verify(token_of(c.herald, url), "webpush") == c.user.key
    [card_message] = await c.say("settings")
    [saved] = await c.click(button(card_message, "Save"), mutedTypes="x.y")
    assert offered(saved["text"]) is None  # browser push was not switched on by this one


async def test_the_preferences_card_has_a_button_to_the_consent_page(
    herald_factory: HeraldFactory, connector: ConnectorStandIn, push_service: WebPushTesting
) -> None:
    c = await started(herald_factory, connector)
    await c.join()
    await c.say("yes")
    [message] = await c.say("settings")
    assert "No browser registered." in card_texts(message)
    [open_url] = open_url_buttons(message)
    assert open_url["title"] == "Enable browser notifications"
    token = token_of(c.herald, open_url["url"])
    assert c.herald.herald.links.verify(token, "webpush") == c.user.key

    await register_with(c, push_service, open_url["url"])
    [message] = await c.say("settings")
    assert "Reaches you in 1 browser." in card_texts(message)
    assert len(open_url_buttons(message)) == 1  # still there, to add another browser

    other = chat(c.herald, Emulator(c.herald, connector.url), connector, name="Grace")
    await other.join()
    await other.say("yes")
    [theirs] = await other.say("settings")
    [their_button] = open_url_buttons(theirs)
    assert c.herald.herald.links.verify(token_of(c.herald, their_button["url"]), "webpush") == (
        other.user.key
    )


async def test_links_point_at_localhost_by_default(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector)
    await c.join()
    [answer] = await c.say("yes")
    assert "(http://localhost:3978/push/?token=" in answer["text"]
