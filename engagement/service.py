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
from typing import Final, Literal

from delivery.outbox import DeliveryLedger
from engagement.coalesce import Coalescer
from notifications.event import Notice, StoredEvent
from storage.protocols import InboxStore, NotificationStore
from storage.records import Acknowledgement

__all__ = ["SURFACES", "AckOutcome", "EngagementService", "acknowledge_text"]

log = logging.getLogger(__name__)

_READ_BATCH: Final = 1000

SURFACES: Final = ("inbox", "chat", "teams", "teams-receipt", "webpush", "mobile", "api")
"""Where a notification can be read or acknowledged (the `via` recorded with it)."""


def acknowledge_text(event: Notice) -> str | None:
    """The text of the event's acknowledge button, if it asks for one."""
    return event.acknowledge.text if event.acknowledge and event.acknowledge.text else None


@dataclass(frozen=True, slots=True)
class AckOutcome:
    """What acknowledging did: `recorded` (now), `repeated` (it was already: the first
    record stands), or why not: `not-in-inbox` (not a recipient, or past the retention),
    `not-asked` (the event asks for no acknowledgement), `recalled`."""

    status: Literal["recorded", "repeated", "not-in-inbox", "not-asked", "recalled"]
    acknowledgement: Acknowledgement | None = None
    event: StoredEvent | None = None
    """The notification's event (for re-rendering the card), when it was found."""


class EngagementService:
    """Sets read and acknowledged state and tells the live pages."""

    def __init__(
        self,
        inbox: InboxStore,
        notifications: NotificationStore,
        outbox: DeliveryLedger,
        *,
        on_changed: Callable[[Sequence[str]], None] = lambda user_ids: None,
    ) -> None:
        self._inbox = inbox
        self._notifications = notifications
        self._outbox = outbox
        self._on_changed = on_changed
        # Reads and read-alls arriving together share their statements (read storms).
        self._reads: Coalescer[tuple[str, str, str], tuple[float | None, int]] = Coalescer(
            self._flush_reads, batch=_READ_BATCH, name="herald-reads"
        )
        self._read_alls: Coalescer[tuple[str, str], int] = Coalescer(
            self._flush_read_alls, batch=_READ_BATCH, name="herald-read-alls"
        )

    async def read(self, user_id: str, notification_id: str, via: str) -> float | None:
        """Mark one notification read; when it was first read, or None if the person has no
        such notification."""
        read_at = await self._inbox.mark_read(user_id, notification_id, via)
        if read_at is not None:
            self._on_changed([user_id])
        return read_at

    async def read_counted(
        self, user_id: str, notification_id: str, via: str
    ) -> tuple[float | None, int]:
        """`read`, and the person's unread count after it (the badge the answer carries).

        Reads arriving together share their statements: while one batch is written, the next
        gathers, so 10,000 people reading at once cost a few hundred statements, not 20,000
        (bench/read_storm.py). A read waits for no timer: a lone read goes at once."""
        return await self._reads.submit((user_id, notification_id, via))

    async def _flush_reads(
        self, batch: Sequence[tuple[str, str, str]]
    ) -> list[tuple[float | None, int]]:
        results = await self._inbox.mark_read_each(batch)
        users = list(dict.fromkeys(u for (u, *_), r in zip(batch, results, strict=True) if r))
        counts = await self._inbox.unread_counts(users) if users else {}
        if users:
            self._on_changed(users)
        return [
            (read_at, counts.get(u, 0)) for (u, *_), read_at in zip(batch, results, strict=True)
        ]

    async def unread(self, user_id: str) -> int:
        """The person's unread count now (the badge an app or browser shows)."""
        return (await self._inbox.unread_counts([user_id])).get(user_id, 0)

    async def read_all(self, user_id: str, via: str) -> int:
        """Mark everything of the person read; how many were unread. Read-alls arriving
        together share their statements, like `read_counted`."""
        return await self._read_alls.submit((user_id, via))

    async def _flush_read_alls(self, batch: Sequence[tuple[str, str]]) -> list[int]:
        by_via: dict[str, list[str]] = {}
        for user_id, via in batch:
            by_via.setdefault(via, []).append(user_id)
        counts: dict[str, int] = {}
        for via, users in by_via.items():
            counts.update(await self._inbox.mark_all_read_each(users, via))
        if counts:
            self._on_changed(list(counts))
        # The same person twice in a batch: the first call marked them, the next none.
        return [counts.pop(user_id, 0) for user_id, _ in batch]

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
