"""Reading and acknowledging in the chat: the card's *Mark read* and acknowledge buttons, and
Teams read receipts.

A button click arrives as a message whose `value` names the action and the notification
(dialogs/card_actions.py); Teams and the Emulator send it with `replyToId` = the card's
activity id, so the card is updated in place: the acknowledge button becomes "Acknowledged"
with its time, *Mark read* becomes "Read". A read receipt is an event activity Teams sends the
bot (RSC permission `ChatMessageReadReceipt.Read.Chat`) when the person read their 1:1 chat up
to a message: every notification sent there until then counts as read.
"""

from __future__ import annotations

import logging
from typing import Final

from botbuilder.core import TurnContext

from dialogs.cards import CardState, notification_activity
from dialogs.services import DialogServices, sender_id
from engagement import EngagementService
from errors import DeliveryError
from notifications.event import StoredEvent
from storage.records import target_key

__all__ = ["READ_RECEIPT", "EngagementFlow", "surface_of"]

log = logging.getLogger(__name__)

READ_RECEIPT: Final = "application/vnd.microsoft.readReceipt"
"""The name of the event activity Teams sends a bot for a read receipt (value:
`{"lastReadMessageId": ...}`)."""

_NOT_FOUND: Final = "I can't find that notification in your inbox (it may have expired)."


def surface_of(context: TurnContext) -> str:
    """The `via` of something done in this conversation: `teams`, or `chat` for the other
    bot channels (Web Chat, the Emulator)."""
    return "teams" if context.activity.channel_id == "msteams" else "chat"


class EngagementFlow:
    """*Mark read* and acknowledge buttons, and read receipts."""

    def __init__(self, services: DialogServices, engagement: EngagementService) -> None:
        self._services = services
        self._engagement = engagement

    async def mark_read(self, context: TurnContext, notification_id: str) -> None:
        user_id = sender_id(context)
        if user_id is None:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        if await self._engagement.read(user_id, notification_id, surface_of(context)) is None:
            await context.send_activity(_NOT_FOUND)
            return
        entry = await self._services.inbox.entry(user_id, notification_id)
        state = CardState(read=True, acknowledged_at=entry.acknowledged_at if entry else None)
        if not await self._update_card(context, notification_id, None, state):
            await context.send_activity("Marked as read ✅")

    async def acknowledge(self, context: TurnContext, notification_id: str) -> None:
        user_id = sender_id(context)
        if user_id is None:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        outcome = await self._engagement.acknowledge(user_id, notification_id, surface_of(context))
        if outcome.status == "not-in-inbox":
            await context.send_activity(_NOT_FOUND)
            return
        if outcome.status == "recalled":
            await context.send_activity("Its sender recalled that notification.")
            return
        if outcome.status == "not-asked":
            await context.send_activity("That notification asks for no acknowledgement.")
            return
        ack = outcome.acknowledgement
        assert ack is not None
        state = CardState(read=True, acknowledged_at=ack.acknowledged_at)
        if not await self._update_card(context, notification_id, outcome.event, state):
            await context.send_activity("Acknowledged ✅")

    async def read_receipt(self, context: TurnContext) -> None:
        """The person read their chat with the bot up to `lastReadMessageId`."""
        activity = context.activity
        value = activity.value if isinstance(activity.value, dict) else {}
        last = value.get("lastReadMessageId")
        user_id = sender_id(context)
        if not isinstance(last, str) or not last or user_id is None:
            return
        if activity.conversation is None or not activity.conversation.id:
            return
        target = target_key(str(activity.channel_id), activity.conversation.id)
        await self._engagement.read_receipt(user_id, target, last)

    async def _update_card(
        self,
        context: TurnContext,
        notification_id: str,
        event: StoredEvent | None,
        state: CardState,
    ) -> bool:
        """Re-render the card the button was on (`replyToId`) for this person; False when
        there is no card to update (then the caller answers in text)."""
        card_id = context.activity.reply_to_id
        if not card_id:
            return False
        if event is None:
            record = await self._services.notifications.get(notification_id)
            if record is None:
                return False
            event = record.event
        activity = notification_activity(event, state)
        activity.id = card_id
        try:
            await context.update_activity(activity)
        except DeliveryError as exc:  # the card is gone, or the connector refused: say it
            log.info("could not update the card of %s in place: %s", notification_id, exc)
            return False
        return True
