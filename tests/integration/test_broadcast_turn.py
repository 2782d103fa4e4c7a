"""A delivery (BroadcastEvent) turn sends through HeraldAdapter like any turn: handlers
registered with `TurnContext.on_send_activities` see, in order, the activities as addressed,
may change them, and what they leave is what the connector receives; the caller's activity
is never changed."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import ConfigurationBotFrameworkAuthentication
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
)

from proactive.adapter import HeraldAdapter
from proactive.connector import HttpConnectorTransport, NoTokens
from tests.peers.connector import ConnectorStandIn


class _Config:
    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


async def test_send_handlers_run_in_order_and_shape_what_is_sent(
    connector: ConnectorStandIn,
) -> None:
    transport = HttpConnectorTransport(NoTokens())
    await transport.open()
    adapter = HeraldAdapter(ConfigurationBotFrameworkAuthentication(_Config()), transport)
    reference = ConversationReference(
        channel_id="emulator",
        service_url=connector.url,
        conversation=ConversationAccount(id="conv-1"),
        bot=ChannelAccount(id="bot", name="Herald"),
        user=ChannelAccount(id="user-1", name="Ada"),
    )
    card = Activity(type=ActivityTypes.message, text="hello")
    seen: list[str] = []

    def handler(name: str) -> Callable[..., Awaitable[Any]]:
        async def handle(
            context: TurnContext, activities: list[Activity], next_: Callable[[], Awaitable[None]]
        ) -> None:
            seen.append(name)
            assert activities[0].conversation.id == "conv-1"  # addressed before handlers run
            activities[0].text += f" {name}"
            await next_()

        return handle

    async def logic(context: TurnContext) -> None:
        context.on_send_activities(handler("first"))
        context.on_send_activities(handler("second"))
        response = await context.send_activity(card)
        assert response is not None and response.id
        assert context.responded

    try:
        await adapter.broadcast(reference, {"id": "n-1"}, logic)
    finally:
        await transport.aclose()
    assert seen == ["first", "second"]
    (sent,) = await connector.wait_for(1)
    assert sent.body["text"] == "hello first second"
    assert sent.body["conversation"]["id"] == "conv-1"
    assert card.text == "hello" and card.conversation is None  # the caller's copy is untouched
