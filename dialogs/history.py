"""History in chat: the last notifications with read state, and marking them all read."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Final
from zoneinfo import ZoneInfo

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import ActionTypes, CardAction, SuggestedActions

from dialogs.services import DialogServices, sender_id
from errors import NotFound
from storage.records import InboxEntry

__all__ = ["HISTORY_SIZE", "HistoryFlow", "history_text"]

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


class HistoryFlow:
    """`history` and `mark all read`."""

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
        count = await self._services.inbox.mark_all_read(user_id)
        if count == 0:
            await context.send_activity("You have no unread notifications.")
        else:
            await context.send_activity(
                f"Marked {count} notification{'s' if count != 1 else ''} as read ✅"
            )
