"""Herald's adapter: botbuilder's CloudAdapter with a lean transport under the turn.

Inbound activities are authenticated and turned into turns by the SDK exactly as usual. What
changes is the seam DESIGN.md names: sends, replies and edits go through `ConnectorTransport`
(one shared HTTP session, activities serialised by `proactive.codec`) instead of a new msrest
ConnectorClient, and `broadcast()` runs a `BroadcastEvent` turn for a stored reference without
building connector and token clients per message, which is what makes the SDK's
`continue_conversation` cost ~15 ms each.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Final

from botbuilder.core import TurnContext
from botbuilder.integration.aiohttp import CloudAdapter
from botbuilder.schema import (
    Activity,
    ActivityTypes,
    ConversationReference,
    DeliveryModes,
    InputHints,
    ResourceResponse,
)
from botframework.connector import Channels
from botframework.connector.auth import BotFrameworkAuthentication

from errors import DeliveryError
from proactive.connector import ConnectorTransport
from proactive.encoding import ActivityEncoder, clone

__all__ = [
    "BROADCAST_EVENT",
    "BROADCAST_TURN_KEY",
    "BroadcastTurn",
    "BroadcastTurnContext",
    "HeraldAdapter",
]

log = logging.getLogger(__name__)

BROADCAST_EVENT: Final = "BroadcastEvent"
BROADCAST_TURN_KEY: Final = "herald.BroadcastTurn"

Logic = Callable[[TurnContext], Awaitable[Any]]
SendHandler = Callable[[TurnContext, list[Activity], Callable[[], Awaitable[None]]], Awaitable[Any]]
"""What `TurnContext.on_send_activities` registers: (context, activities, next)."""


@dataclass(slots=True)
class BroadcastTurn:
    """What the delivery worker asks of a BroadcastEvent turn, and what the bot reports back.

    `update_activity_id` is the id of the message already sent for an earlier version (edit it
    in place); the bot sets `activity_id` to the id the connector returned.
    """

    update_activity_id: str | None = None
    activity_id: str | None = None


class BroadcastTurnContext(TurnContext):
    """A TurnContext for delivery turns whose sends copy activities shallowly.

    The SDK deep-copies every outgoing activity before addressing it, which for a card costs
    more than the rest of the turn. Addressing only replaces top-level fields (conversation,
    from, recipient, replyToId...), so a shallow copy protects the caller's activity just the
    same; the on-send handlers, the expect-replies buffer and `responded` behave as in the SDK.

    Only public TurnContext API is used: handlers registered with `on_send_activities` are
    kept here too (and still registered with the SDK's context, so a copy of this context has
    them), and run in order with the documented `(context, activities, next)` contract before
    the activities go to the adapter, as `TurnContext.send_activities` runs them.
    """

    def __init__(self, adapter: Any, request: Activity) -> None:
        super().__init__(adapter, request)
        self._send_handlers: list[SendHandler] = []

    def on_send_activities(self, handler: SendHandler) -> TurnContext:
        self._send_handlers.append(handler)
        return super().on_send_activities(handler)

    async def _run_send_handlers(self, activities: list[Activity]) -> None:
        handlers = list(self._send_handlers)

        async def run(index: int) -> None:
            if index < len(handlers):

                async def next_handler() -> None:
                    await run(index + 1)

                await handlers[index](self, activities, next_handler)

        await run(0)

    async def send_activities(self, activities: list[Activity]) -> list[ResourceResponse]:
        reference = TurnContext.get_conversation_reference(self.activity)
        output: list[Activity] = []
        for original in activities:
            activity = TurnContext.apply_conversation_reference(clone(original), reference)
            activity.type = activity.type or ActivityTypes.message
            activity.input_hint = activity.input_hint or InputHints.accepting_input
            activity.id = None
            output.append(activity)
        visible = any(a.type != ActivityTypes.trace for a in output)

        async def deliver() -> list[ResourceResponse]:
            if self.activity.delivery_mode == DeliveryModes.expect_replies:
                self.buffered_reply_activities.extend(output)
                responses = [ResourceResponse() for _ in output]
            else:
                responses = await self.adapter.send_activities(self, output)
            if visible:
                self.responded = True
            return responses

        # As in the SDK: the handlers run first, then the send (whether or not they called
        # next: botbuilder-python does not let a handler cancel it).
        await self._run_send_handlers(output)
        return await deliver()


def _goes_to_the_connector(activity: Activity) -> bool:
    """Whether CloudAdapterBase.send_activities would post this activity to the connector."""
    if activity.type in ("delay", ActivityTypes.invoke_response):
        return False
    return bool(activity.type != ActivityTypes.trace or activity.channel_id == Channels.emulator)


class HeraldAdapter(CloudAdapter):
    """CloudAdapter whose outgoing calls use a ConnectorTransport.

    It overrides the adapter's public extension points (`BotAdapter.send_activities`,
    `update_activity`, `delete_activity`); what the SDK does without a connector call (delays,
    invoke responses, traces outside the Emulator) is left to CloudAdapterBase itself."""

    def __init__(
        self,
        auth: BotFrameworkAuthentication,
        transport: ConnectorTransport,
        *,
        app_id: str = "",
        on_error_reply: str = "Sorry, something went wrong on my side. Please try again.",
    ) -> None:
        super().__init__(auth)
        self._transport = transport
        self._encoder = ActivityEncoder()
        self._claims = self.create_claims_identity(app_id)
        self._error_reply = on_error_reply
        self.on_turn_error = self._on_turn_error

    async def _on_turn_error(self, context: TurnContext, error: Exception) -> None:
        # A delivery turn's failure belongs to the delivery worker (retry, dead target...).
        if BROADCAST_TURN_KEY in context.turn_state:
            raise error
        if isinstance(error, DeliveryError):
            # The connector refused or could not be reached: no stack trace is needed to act.
            log.warning("a reply in a %s turn failed: %s", context.activity.type, error)
        else:
            log.error(
                "unhandled error in a turn (%s): %r", context.activity.type, error, exc_info=error
            )
        if context.activity.type == ActivityTypes.message:
            try:
                await context.send_activity(self._error_reply)
            except DeliveryError as exc:  # the connector refused this conversation again
                log.warning("could not tell the user about the error: %s", exc)
            except Exception:
                log.warning("could not tell the user about the error", exc_info=True)

    async def send_activities(
        self, context: TurnContext, activities: list[Activity]
    ) -> list[ResourceResponse]:
        if not activities:
            raise TypeError("Expecting one or more activities, but the list was empty.")
        responses: list[ResourceResponse] = []
        for activity in activities:
            if not _goes_to_the_connector(activity):
                # Delays, invoke responses (kept for the HTTP answer) and traces outside the
                # Emulator: CloudAdapterBase's own handling, which calls no connector for them.
                responses.extend(await super().send_activities(context, [activity]))
                continue
            activity.id = None
            sent_id = await self._transport.send(
                activity.service_url,
                activity.conversation.id,
                self._encoder.encode(activity),
                activity.reply_to_id or None,
            )
            responses.append(ResourceResponse(id=sent_id or ""))
        return responses

    async def update_activity(
        self, context: TurnContext, activity: Activity
    ) -> ResourceResponse | None:
        updated = await self._transport.update(
            activity.service_url,
            activity.conversation.id,
            activity.id,
            self._encoder.encode(activity),
        )
        return ResourceResponse(id=updated) if updated else None

    async def delete_activity(self, context: TurnContext, reference: ConversationReference) -> None:
        await self._transport.delete(
            reference.service_url, reference.conversation.id, reference.activity_id
        )

    async def delete_sent(self, reference: ConversationReference, activity_id: str) -> None:
        """Delete a message the bot sent in a stored conversation (a recalled notification)."""
        await self._transport.delete(reference.service_url, reference.conversation.id, activity_id)

    async def broadcast(
        self,
        reference: ConversationReference,
        value: dict[str, Any],
        logic: Logic,
        *,
        update_activity_id: str | None = None,
    ) -> BroadcastTurn:
        """Run a BroadcastEvent turn in a stored conversation through the bot's pipeline.

        The event activity has the shape of the SDK's continuation activity (so replies are
        addressed exactly as `continue_conversation` addresses them) with name BroadcastEvent
        and the notification as its value.
        """
        conversation = reference.conversation
        channel = conversation is not None and conversation.conversation_type == "channel"
        activity = Activity(
            type=ActivityTypes.event,
            name=BROADCAST_EVENT,
            # A post in a team's channel starts a thread: nothing to reply to. Elsewhere the
            # send is addressed as a reply to this id, as continue_conversation does.
            id=None if channel else str(uuid.uuid4()),
            channel_id=reference.channel_id,
            service_url=reference.service_url,
            conversation=reference.conversation,
            recipient=reference.bot,
            from_property=reference.user,
            relates_to=reference,
            value=value,
        )
        context = BroadcastTurnContext(self, activity)
        context.turn_state[self.BOT_IDENTITY_KEY] = self._claims
        context.turn_state[self.BOT_CALLBACK_HANDLER_KEY] = logic
        context.turn_state[self.BOT_OAUTH_SCOPE_KEY] = None
        turn = BroadcastTurn(update_activity_id=update_activity_id)
        context.turn_state[BROADCAST_TURN_KEY] = turn
        await self.run_pipeline(context, logic)
        return turn
