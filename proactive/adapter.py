"""Herald's adapter: botbuilder's CloudAdapter with a lean transport under the turn.

Inbound activities are authenticated and turned into turns by the SDK exactly as usual. What
changes is the seam DESIGN.md names: sends, replies and edits go through `ConnectorTransport`
(one shared HTTP session, activities serialised by `proactive.codec`) instead of a new msrest
ConnectorClient, and `broadcast()` runs a `BroadcastEvent` turn for a stored reference without
building connector and token clients per message, which is what makes the SDK's
`continue_conversation` cost ~15 ms each.
"""

from __future__ import annotations

import asyncio
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
    """

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

        result: list[ResourceResponse] = await self._emit(
            self._on_send_activities, output, deliver()
        )
        return result


class HeraldAdapter(CloudAdapter):
    """CloudAdapter whose outgoing calls use a ConnectorTransport."""

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
            activity.id = None
            response: ResourceResponse | None = None
            if activity.type == "delay":
                await asyncio.sleep(int((activity.value or 1000) / 1000))
            elif activity.type == ActivityTypes.invoke_response:
                context.turn_state[self._INVOKE_RESPONSE_KEY] = activity
            elif activity.type == ActivityTypes.trace and activity.channel_id != Channels.emulator:
                pass
            else:
                sent_id = await self._transport.send(
                    activity.service_url,
                    activity.conversation.id,
                    self._encoder.encode(activity),
                    activity.reply_to_id or None,
                )
                response = ResourceResponse(id=sent_id or "")
            responses.append(response or ResourceResponse(id=activity.id or ""))
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
