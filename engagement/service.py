"""Read and acknowledged: one state per (person, notification), set from any surface.

A person reads a notification in the inbox page, in chat (`mark all read`, a card's *Mark
read*), in Teams (a read receipt for the bot's 1:1 chat), by clicking the browser notification
(the service worker reports it) or in the mobile app (it reports with the person's link
token). Each of those calls one method here; the state lives on the person's inbox entry
(InboxStore), the first time and surface win, and every change rings the live inbox pages of
that person (`on_changed`), so what was read anywhere shows as read everywhere: the inbox page,
`status` and `history` in chat, and the unread badge the next push carries.

An acknowledgement ("I have read the policy") is asked for by the event's `acknowledge`
field; it is recorded once, with its time and surface, and implies read.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from delivery.outbox import Outbox
from storage.protocols import InboxStore, NotificationStore
from storage.records import Acknowledgement

__all__ = ["SURFACES", "AckOutcome", "EngagementService", "acknowledge_text"]

log = logging.getLogger(__name__)

SURFACES: Final = ("inbox", "chat", "teams", "teams-receipt", "webpush", "mobile", "api")
"""Where a notification can be read or acknowledged (the `via` recorded with it)."""


def acknowledge_text(event: dict[str, Any]) -> str | None:
    """The text of the event's acknowledge button, if it asks for one."""
    ask = event.get("acknowledge")
    if isinstance(ask, dict) and isinstance(ask.get("text"), str) and ask["text"]:
        return str(ask["text"])
    return None


@dataclass(frozen=True, slots=True)
class AckOutcome:
    """What acknowledging did: `recorded` (now), `repeated` (it was already: the first
    record stands), or why not: `not-in-inbox` (not a recipient, or past the retention),
    `not-asked` (the event asks for no acknowledgement), `recalled`."""

    status: Literal["recorded", "repeated", "not-in-inbox", "not-asked", "recalled"]
    acknowledgement: Acknowledgement | None = None
    event: dict[str, Any] | None = None
    """The notification's event (for re-rendering the card), when it was found."""


class EngagementService:
    """Sets read and acknowledged state and tells the live pages."""

    def __init__(
        self,
        inbox: InboxStore,
        notifications: NotificationStore,
        outbox: Outbox,
        *,
        on_changed: Callable[[Sequence[str]], None] = lambda user_ids: None,
    ) -> None:
        self._inbox = inbox
        self._notifications = notifications
        self._outbox = outbox
        self._on_changed = on_changed

    async def read(self, user_id: str, notification_id: str, via: str) -> float | None:
        """Mark one notification read; when it was first read, or None if the person has no
        such notification."""
        read_at = await self._inbox.mark_read(user_id, notification_id, via)
        if read_at is not None:
            self._on_changed([user_id])
        return read_at

    async def unread(self, user_id: str) -> int:
        """The person's unread count now (the badge an app or browser shows)."""
        return (await self._inbox.unread_counts([user_id])).get(user_id, 0)

    async def read_all(self, user_id: str, via: str) -> int:
        count = await self._inbox.mark_all_read(user_id, via)
        if count:
            self._on_changed([user_id])
        return count

    async def read_receipt(self, user_id: str, target: str, last_read_message_id: str) -> list[str]:
        """A Teams read receipt: the person read their chat with the bot up to that message,
        so every notification sent there until then is read. Returns the ids newly read."""
        covered = await self._outbox.sent_upto(user_id, target, last_read_message_id)
        if not covered:
            return []
        marked = await self._inbox.mark_read_many(user_id, covered, "teams-receipt")
        if marked:
            self._on_changed([user_id])
        log.info("read receipt of %s: %d notification(s) read", user_id, len(marked))
        return marked

    async def acknowledge(self, user_id: str, notification_id: str, via: str) -> AckOutcome:
        """Record the person's acknowledgement, once (a repeat from any surface is harmless)."""
        record = await self._notifications.get(notification_id)
        if record is None:
            return AckOutcome("not-in-inbox")
        if record.recalled:
            return AckOutcome("recalled", event=record.event)
        if acknowledge_text(record.event) is None:
            return AckOutcome("not-asked", event=record.event)
        ack = await self._inbox.acknowledge(user_id, notification_id, via)
        if ack is None:
            return AckOutcome("not-in-inbox", event=record.event)
        if ack.first:
            self._on_changed([user_id])
        return AckOutcome("recorded" if ack.first else "repeated", ack, record.event)
