"""A person chatting with Herald, turn by turn, as the Emulator or Teams would carry it.

`Chat` wraps the Emulator-style client and the Bot Connector stand-in for one user: each call
posts one activity to /api/messages and returns the messages the bot sent into that
conversation during the turn (the bot answers inside the request, so they have all arrived
when the POST returns). Card clicks are sent the way Teams sends an Action.Submit: a message
with the button's data (and the card's inputs) as `value` and no text.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDict

from tests.harness import API_KEY, EmulatedUser, Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn, Recorded

CARD = "application/vnd.microsoft.card.adaptive"


def cards(message: dict[str, Any]) -> list[dict[str, Any]]:
    return [a["content"] for a in message.get("attachments") or [] if a["contentType"] == CARD]


def walk(node: Any) -> list[dict[str, Any]]:
    """Every object in a card, depth first."""
    found: list[dict[str, Any]] = []
    stack = [node]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            found.append(item)
            stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def submits(message: dict[str, Any]) -> list[dict[str, Any]]:
    """The Action.Submit buttons of a message's cards."""
    return [n for c in cards(message) for n in walk(c) if n.get("type") == "Action.Submit"]


def button(message: dict[str, Any], title: str) -> dict[str, Any]:
    """The data of the Action.Submit titled `title`."""
    for action in submits(message):
        if action["title"] == title:
            data: dict[str, Any] = action["data"]
            return data
    raise AssertionError(f"no button {title!r} in {[a['title'] for a in submits(message)]}")


def inputs(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The inputs of a message's cards by id."""
    return {
        n["id"]: n
        for c in cards(message)
        for n in walk(c)
        if str(n.get("type", "")).startswith("Input.")
    }


def card_texts(message: dict[str, Any]) -> str:
    return "\n".join(
        str(n.get("text", ""))
        for c in cards(message)
        for n in walk(c)
        if n.get("type") == "TextBlock"
    )


def suggested(message: dict[str, Any]) -> list[str]:
    actions = (message.get("suggestedActions") or {}).get("actions") or []
    return [str(a["value"]) for a in actions]


def everything(message: dict[str, Any]) -> str:
    """What a person reads: the text and the cards' texts."""
    return f"{message.get('text') or ''}\n{card_texts(message)}"


@dataclass
class Chat:
    """One person's conversation with Herald."""

    herald: RunningHerald
    emulator: Emulator
    connector: ConnectorStandIn
    user: EmulatedUser
    _seen: int = 0

    def _new(self) -> list[dict[str, Any]]:
        sent = self.connector.sent(self.user.conversation_id)
        fresh = sent[self._seen :]
        self._seen = len(sent)
        return [r.body for r in fresh]

    def records(self) -> list[Recorded]:
        return self.connector.sent(self.user.conversation_id)

    async def _post(self, activity: dict[str, Any]) -> list[dict[str, Any]]:
        status = await self.emulator.post(activity)
        assert status in (200, 201), status
        return self._new()

    async def join(self) -> list[dict[str, Any]]:
        """The conversation opens (Emulator, Web Chat): conversationUpdate with both members."""
        assert await self.emulator.join(self.user) in (200, 201)
        return self._new()

    async def install(self) -> list[dict[str, Any]]:
        """The app is installed in Teams: installationUpdate, action add."""
        return await self._post(
            self.emulator.activity(self.user, "installationUpdate", action="add")
        )

    async def say(self, text: str, **fields: Any) -> list[dict[str, Any]]:
        return await self._post(self.emulator.activity(self.user, "message", text=text, **fields))

    async def click(
        self, data: dict[str, Any], *, reply_to: str | None = None, **card_inputs: Any
    ) -> list[dict[str, Any]]:
        """An Action.Submit, as Teams sends it: the data merged with the inputs, no text
        (`reply_to`: the id of the message carrying the card, as Teams sets `replyToId`)."""
        fields: dict[str, Any] = {"value": {**data, **card_inputs}}
        if reply_to is not None:
            fields["replyToId"] = reply_to
        return await self._post(self.emulator.activity(self.user, "message", **fields))

    async def click_on(self, card_id: str, data: dict[str, Any]) -> list[dict[str, Any]]:
        """An Action.Submit on the card sent as activity `card_id`: Teams and the Emulator
        name it in `replyToId`, which lets the bot update that card in place."""
        return await self._post(
            self.emulator.activity(self.user, "message", value=data, replyToId=card_id)
        )

    async def wait_new(self, count: int = 1, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Messages sent outside a turn of ours (proactive deliveries)."""
        target = self._seen + count
        await self.connector.wait_for(
            lambda c: len(c.sent(self.user.conversation_id)) >= target, timeout=timeout
        )
        return self._new()

    async def quiet(self, seconds: float = 0.2) -> list[dict[str, Any]]:
        """Whatever arrived in the next moment (expected: nothing)."""
        await asyncio.sleep(seconds)
        return self._new()

    async def preferences(self) -> tuple[dict[str, Any], str]:
        """The user's preferences document and its ETag, through the API."""
        code, body, headers = await call(
            self.herald, "GET", f"/api/users/{self.user.key}/preferences"
        )
        assert code == 200, body
        return body, headers["ETag"]


async def call(
    herald: RunningHerald,
    method: str,
    path: str,
    *,
    json: Any = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, Any, CIMultiDict[str]]:
    """One API call with the test key; (status, JSON body or None, response headers)."""
    assert herald.http is not None
    hdrs = {"Authorization": f"Bearer {API_KEY}", **(headers or {})}
    async with herald.http.request(method, herald.url + path, json=json, headers=hdrs) as response:
        text = await response.text()
        body = await response.json(content_type=None) if text else None
        return response.status, body, CIMultiDict(response.headers)


def chat(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn, **kwargs: Any
) -> Chat:
    return Chat(herald, emulator, connector, emulator.user(**kwargs))


def teams_chat(herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn) -> Chat:
    return Chat(herald, emulator, connector, emulator.teams_user())
