"""History in chat: the last notifications with read state, and marking them all read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import ActionTypes, Attachment, CardAction, SuggestedActions

from dialogs.cards import ADAPTIVE_CARD
from dialogs.channel_links import ChannelLink, link_markdown
from dialogs.services import DialogServices, sender_id
from errors import NotFound
from storage.records import InboxEntry

__all__ = ["HISTORY_SIZE", "HistoryFlow", "history_text", "inbox_card"]

HISTORY_SIZE: Final = 10


def _when(epoch: float, zone: ZoneInfo) -> str:
    return datetime.fromtimestamp(epoch, UTC).astimezone(zone).strftime("%d %b %H:%M")


def history_text(entries: list[InboxEntry], zone: ZoneInfo) -> str:
    """Newest first, numbered, unread ones marked, times on the person's wall clock."""
    if not entries:
        return "You have no notifications yet."
    unread = sum(1 for e in entries if e.read_at is None)
    lines = [
        f"Your last {len(entries)} notification{'s' if len(entries) != 1 else ''}, newest first "
        f"({unread} unread):",
        "",
    ]
    for number, entry in enumerate(entries, start=1):
        event = entry.event
        state = "🔵 **unread**" if entry.read_at is None else "read"
        title = str(event.get("title", "(no title)"))
        when = _when(entry.created_at, zone)
        lines.append(f"{number}. {title} · {event.get('type', '')} · {when} · {state}")
    return "\n".join(lines)


def inbox_card(link: ChannelLink) -> dict[str, Any]:
    """A button that opens the person's live inbox page (Action.OpenUrl: Teams, Web Chat and
    the Emulator open it in the browser)."""
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": "1.4",
        "body": [
            {
                "type": "TextBlock",
                "text": f"Only for you; the link works for {link.minutes} minutes.",
                "wrap": True,
                "isSubtle": True,
                "size": "Small",
            }
        ],
        "actions": [{"type": "Action.OpenUrl", "title": link.title, "url": link.url}],
    }


class HistoryFlow:
    """`history`, `mark all read` and `inbox` (a link to the live inbox page)."""

    def __init__(self, services: DialogServices) -> None:
        self._services = services

    async def show(self, context: TurnContext) -> None:
        user_id = sender_id(context)
        if user_id is None:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        try:
            zone = (await self._services.preferences.read(user_id)).prefs.zone()
        except NotFound:
            zone = ZoneInfo("UTC")
        entries = await self._services.inbox.list(user_id, unread_only=False, limit=HISTORY_SIZE)
        activity = MessageFactory.text(history_text(entries, zone))
        if self._services.inbox_link is not None:
            card = inbox_card(self._services.inbox_link(user_id))
            activity.attachments = [Attachment(content_type=ADAPTIVE_CARD, content=card)]
        if any(e.read_at is None for e in entries):
            activity.suggested_actions = SuggestedActions(
                actions=[
                    CardAction(
                        type=ActionTypes.im_back, title="Mark all read", value="mark all read"
                    )
                ]
            )
        await context.send_activity(activity)

    async def mark_all_read(self, context: TurnContext) -> None:
        user_id = sender_id(context)
        if user_id is None:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        via = "teams" if context.activity.channel_id == "msteams" else "chat"
        engagement = self._services.engagement
        count = (
            await engagement.read_all(user_id, via)
            if engagement is not None
            else await self._services.inbox.mark_all_read(user_id, via)
        )
        if count == 0:
            await context.send_activity("You have no unread notifications.")
        else:
            await context.send_activity(
                f"Marked {count} notification{'s' if count != 1 else ''} as read ✅"
            )

    async def inbox(self, context: TurnContext) -> None:
        """A fresh link to the person's live inbox page (the history, if there is no page)."""
        user_id = sender_id(context)
        if user_id is None:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        if self._services.inbox_link is None:
            await self.show(context)
            return
        link = self._services.inbox_link(user_id)
        activity = MessageFactory.text(link_markdown(link))
        activity.attachments = [Attachment(content_type=ADAPTIVE_CARD, content=inbox_card(link))]
        await context.send_activity(activity)
