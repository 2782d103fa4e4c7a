"""Herald's lean send path puts exactly the SDK's JSON on the wire, with the same results.

The same stored reference and the same card go once through botbuilder's own
`CloudAdapter.continue_conversation` (msrest ConnectorClient) and once through Herald's
`HeraldAdapter.broadcast` + bot; the stand-in connector records both requests.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import (
    CloudAdapter,
    ConfigurationBotFrameworkAuthentication,
)
from botbuilder.schema import ConversationReference
from botframework.connector.models import ErrorResponseException

from dialogs.cards import notification_activity
from errors import RetryLater, TargetGone
from notifications.event import BroadcastValue
from proactive.codec import load
from tests.harness import EmulatedUser, Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn, Recorded

VALUE = {
    "id": "wire-1",
    "type": "case.assigned",
    "title": "Ünïcode — case 42 ✓",
    "text": "Line one\nLine two",
    "severity": "error",
    "url": "https://crm.example.com/cases/42?x=1&y=2",
    "icon": "https://crm.example.com/icon.png",
    "data": {"caseId": 42, "nested": {"ok": True, "list": [1, 2.5, None]}},
}


class _Config:
    APP_ID = ""
    APP_PASSWORD = ""
    APP_TYPE = "MultiTenant"
    APP_TENANTID = ""


def sdk_adapter() -> CloudAdapter:
    return CloudAdapter(ConfigurationBotFrameworkAuthentication(_Config()))


async def stored_reference(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn, user: EmulatedUser
) -> ConversationReference:
    await emulator.say(user, "hello")
    await connector.wait_for(1)
    connector.clear()
    refs = await herald.herald.conversations.for_users([user.key])
    return load(ConversationReference, refs[user.key][0].reference)


def normalised(record: Recorded) -> dict[str, Any]:
    body = dict(record.body)
    body.pop("replyToId", None)  # a fresh continuation id per turn, in both paths
    return body


Send = Callable[[TurnContext], Awaitable[Any]]


async def via_sdk(reference: ConversationReference, logic: Send) -> None:
    await sdk_adapter().continue_conversation(reference, logic, "")


@pytest.mark.parametrize("kind", ["emulator", "msteams", "webchat"])
async def test_send_is_byte_for_byte_the_sdks(
    kind: str, herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.teams_user() if kind == "msteams" else emulator.user(channel_id=kind)
    reference = await stored_reference(herald, emulator, connector, user)

    async def send_card(context: TurnContext) -> None:
        await context.send_activity(notification_activity(BroadcastValue.model_validate(VALUE)))

    await via_sdk(reference, send_card)
    turn = await herald.herald.adapter.broadcast(reference, VALUE, herald.herald.bot.on_turn)
    sdk, lean = connector.sent()
    assert normalised(lean) == normalised(sdk)
    assert lean.kind == sdk.kind  # reply (to the continuation id) vs plain send
    if kind == "webchat":
        assert lean.kind == "send" and "replyToId" not in lean.body
    else:
        assert lean.kind == "reply" and lean.reply_to_id == lean.body["replyToId"]
    assert lean.headers.get("x-ms-conversation-id") == sdk.headers.get("x-ms-conversation-id")
    assert turn.activity_id == lean.activity_id  # the id the connector returned


async def test_edit_is_the_sdks_put(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.teams_user()
    reference = await stored_reference(herald, emulator, connector, user)
    first = await herald.herald.adapter.broadcast(reference, VALUE, herald.herald.bot.on_turn)
    assert first.activity_id
    changed = {**VALUE, "title": "Case 42 closed"}

    async def edit(context: TurnContext) -> None:
        activity = notification_activity(BroadcastValue.model_validate(changed))
        activity.id = first.activity_id
        await context.update_activity(activity)

    await via_sdk(reference, edit)
    turn = await herald.herald.adapter.broadcast(
        reference, changed, herald.herald.bot.on_turn, update_activity_id=first.activity_id
    )
    sdk, lean = connector.updates()
    assert normalised(lean) == normalised(sdk)
    assert lean.path == sdk.path
    assert turn.activity_id == first.activity_id


@pytest.mark.parametrize(
    ("status", "expected"), [(403, TargetGone), (404, TargetGone), (429, RetryLater)]
)
async def test_failures_mean_the_same(
    status: int,
    expected: type[Exception],
    herald: RunningHerald,
    emulator: Emulator,
    connector: ConnectorStandIn,
) -> None:
    user = emulator.teams_user()
    reference = await stored_reference(herald, emulator, connector, user)

    async def send_card(context: TurnContext) -> None:
        await context.send_activity(notification_activity(BroadcastValue.model_validate(VALUE)))

    connector.fail(user.conversation_id, status, retry_after=2 if status == 429 else None)
    with pytest.raises(ErrorResponseException) as sdk_error:
        await via_sdk(reference, send_card)
    assert sdk_error.value.response.status_code == status

    connector.fail(user.conversation_id, status, retry_after=2 if status == 429 else None)
    with pytest.raises(expected) as lean_error:
        await herald.herald.adapter.broadcast(reference, VALUE, herald.herald.bot.on_turn)
    code = connector.rejected(user.conversation_id)[-1].body.get("type")
    assert code == "message"
    if status == 429:
        assert isinstance(lean_error.value, RetryLater) and lean_error.value.after == 2
