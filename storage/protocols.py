"""What Herald needs from a store, as Protocols every backend implements.

Stores hold plain JSON-able documents and records (storage/records.py); the meaning of
preferences or events lives in preferences/ and api/, so a backend never changes when a rule
does. Every backend passes the same contract tests (tests/contract).
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Protocol

from notifications.event import StoredEvent
from storage.records import (
    Acknowledgement,
    ConversationTarget,
    Engagement,
    EngagementBucket,
    EngagementCounts,
    InboxChange,
    InboxEntry,
    NotificationRecord,
    PendingPrompt,
    PutOutcome,
    StoredReference,
    UserRecord,
)

__all__ = ["ConversationStore", "InboxStore", "NotificationStore", "PromptStore", "UserStore"]


class UserStore(Protocol):
    """People Herald has met, their aliases and their preference document (with an etag)."""

    async def upsert_user(self, user: UserRecord) -> bool:
        """Create or refresh a user (name, tenant, aliases); keeps preferences. True if new."""
        ...

    async def get_user(self, user_id: str) -> UserRecord | None: ...

    async def resolve(self, keys: Sequence[str]) -> dict[str, str]:
        """Map each key that is a user id or a known alias (case-insensitive) to a user id."""
        ...

    async def user_id_page(self, after: str | None, limit: int) -> list[str]:
        """User ids in ascending order after `after`: the audience is streamed, never loaded."""
        ...

    async def count(self) -> int: ...

    async def get_preferences(self, user_id: str) -> tuple[dict[str, Any] | None, str]:
        """The stored preference document (None = never set) and its etag; NotFound if no user."""
        ...

    async def preferences_for(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        """Preference documents of many users at once, for the router."""
        ...

    async def put_preferences(
        self, user_id: str, prefs: dict[str, Any], if_match: str | None
    ) -> str:
        """Replace the document if the etag still matches (None = unconditional).

        Returns the new etag; raises ConcurrencyConflict on a stale etag, NotFound if no user.
        """
        ...


class ConversationStore(Protocol):
    """Conversation references: one per (user, channel, conversation)."""

    async def upsert(self, ref: StoredReference) -> None:
        """Save or refresh (service URL, reference); a live reference is re-activated."""
        ...

    async def for_users(self, user_ids: Sequence[str]) -> dict[str, list[StoredReference]]:
        """Active references of each user (users without any are absent)."""
        ...

    async def targets_for(
        self, user_ids: Sequence[str]
    ) -> dict[str, list[ConversationTarget]]:
        """Each user's active references as the router needs them: target key, and channel,
        tenant and service URL (which rate limits a send shares)."""
        ...

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredReference]:
        """References by (user_id, target), active or not."""
        ...

    async def deactivate(self, user_id: str, target: str, reason: str) -> None:
        """Never deliver to this conversation again (until the user talks to the bot again)."""
        ...

    async def ever_stored(self, user_ids: Sequence[str]) -> set[str]:
        """Which of `user_ids` have any reference, active or closed: people Herald has had a
        conversation with (an audience may open a chat only with the others: delivery/reach.py)."""
        ...


class NotificationStore(Protocol):
    """Posted events, idempotent by id."""

    async def put(
        self,
        notification_id: str,
        content_hash: str,
        event: StoredEvent,
        type_: str,
        recipients: int,
    ) -> tuple[PutOutcome, NotificationRecord]:
        """Create, or find unchanged (same hash), or update (new version, expansion pending)."""
        ...

    async def get(self, notification_id: str) -> NotificationRecord | None: ...

    async def get_many(self, ids: Sequence[str]) -> dict[str, NotificationRecord]: ...

    async def pending_expansion(self) -> list[str]:
        """Notifications whose latest version is not fully expanded (resumed after a crash)."""
        ...

    async def recall(self, notification_id: str, at: float) -> NotificationRecord | None:
        """Mark the notification recalled at `at` (a repeat keeps the first time) and count it
        as changed (`updated_at`), so live inbox pages drop it. None if there is no such
        notification. Expansion of a recalled notification is never resumed."""
        ...


class InboxStore(Protocol):
    """Each user's history of notifications, with read state."""

    async def list(self, user_id: str, *, unread_only: bool, limit: int) -> list[InboxEntry]:
        """The user's entries, newest first; recalled notifications are left out."""
        ...

    async def mark_all_read(self, user_id: str, via: str = "chat") -> int:
        """Mark every unread entry read (recalled ones aside); returns how many."""
        ...

    async def mark_read(
        self, user_id: str, notification_id: str, via: str = "inbox"
    ) -> float | None:
        """Mark one entry read, on surface `via` (the inbox page's button, a browser click...).
        Returns when it was read (the earlier time, and its surface kept, if it already was),
        or None if the user has no such entry (or it expired)."""
        ...

    async def mark_all_read_each(
        self, user_ids: Sequence[str], via: str
    ) -> dict[str, int]:
        """`mark_all_read` for many people at once (read-all storms): how many entries each
        had unread (absent: none)."""
        ...

    async def mark_read_each(
        self, reads: Sequence[tuple[str, str, str]]
    ) -> builtins.list[float | None]:
        """`mark_read` for many (user id, notification id, via) at once, results in order: a
        storm of reads from many people costs a statement or a few, not one per read."""
        ...

    async def mark_read_many(
        self, user_id: str, notification_ids: Sequence[str], via: str
    ) -> builtins.list[str]:
        """Mark these entries of the user read (a Teams read receipt covers every message up
        to the one it names); returns the ids that were unread until now."""
        ...

    async def acknowledge(
        self, user_id: str, notification_id: str, via: str
    ) -> Acknowledgement | None:
        """Record the user's acknowledgement once (it marks the entry read too): a repeat, from
        any surface, keeps the first time and surface. None if the user has no such entry."""
        ...

    async def entry(self, user_id: str, notification_id: str) -> InboxEntry | None:
        """One entry with its read and acknowledged state (None: not in the user's inbox)."""
        ...

    async def unread_counts(self, user_ids: Sequence[str]) -> dict[str, int]:
        """How many unread, not recalled entries each user has (absent: none), for the badge
        pushes carry and the `status` answer; one query per batch of users."""
        ...

    async def engagement_counts(self, notification_id: str) -> EngagementCounts:
        """The notification's funnel: recipients (entries), read, acknowledged, per surface."""
        ...

    async def engagement_of(
        self, notification_id: str, user_ids: Sequence[str]
    ) -> dict[str, Engagement]:
        """Read and acknowledged state of these recipients (users without an entry absent),
        for the per-recipient report, a page at a time."""
        ...

    async def engagement_timeline(
        self, notification_id: str, *, bucket_seconds: float
    ) -> builtins.list[EngagementBucket]:
        """How many recipients first read / acknowledged it per `bucket_seconds` window,
        oldest first, windows with none left out (the operator page's funnel over time)."""
        ...

    async def withdraw(self, notification_id: str) -> int:
        """Take a recalled notification out of its recipients' inboxes (lists, unread counts,
        badges; the live feed reports it as recalled). Returns how many entries it had."""
        ...

    async def unread_recipients(
        self, notification_id: str, *, created_before: float, limit: int
    ) -> builtins.list[str]:
        """Recipients who have not read it and whose entry was written before
        `created_before` (a reminder "not read after N hours"), at most `limit`."""
        ...

    async def changes(
        self, user_id: str, since: float, limit: int
    ) -> builtins.list[InboxChange]:
        """The user's entries that were written, read, or whose notification changed after
        `since` (epoch seconds), oldest change first, at most `limit`.

        The live inbox page's feed: each open page asks this every few seconds (and at once
        when this instance writes to the user's inbox), so it must be a cheap, indexed query
        within one user's entries. Entries past the retention are left out.
        """
        ...

    async def purge_expired(self) -> int:
        """Delete entries past the retention (Cosmos DB does this itself with TTL)."""
        ...

    async def contains(self, user_id: str, notification_id: str) -> bool:
        """Whether the notification is in the user's history (they were one of its recipients)."""
        ...

    async def types(self, user_id: str) -> builtins.list[str]:
        """The distinct event types in the user's history, sorted (offered for muting)."""
        ...


class PromptStore(Protocol):
    """Answers to proactive questions, and questions waiting for a dialog to take them up.

    Both are rows keyed by what they are about, so a delivery turn and a user's turn never
    race on one document: queueing and taking a question are each one atomic step.
    """

    async def record_answer(
        self, notification_id: str, user_id: str, choice: str, answered_at: float
    ) -> None:
        """Save the user's answer; a later answer replaces an earlier one."""
        ...

    async def answer_of(self, notification_id: str, user_id: str) -> str | None: ...

    async def answer_counts(self, notification_id: str) -> dict[str, int]:
        """How many users gave each answer (only answers given at least once)."""
        ...

    async def queue(self, prompt: PendingPrompt) -> None:
        """Add a waiting question, or refresh it (text, choices) if already waiting."""
        ...

    async def pending(self, conversation_key: str) -> list[PendingPrompt]:
        """The conversation's waiting questions, oldest first."""
        ...

    async def take_newest(self, conversation_key: str, user_id: str) -> PendingPrompt | None:
        """Remove and return the user's most recently queued question there, atomically."""
        ...

    async def discard(self, conversation_key: str, notification_id: str) -> bool:
        """Forget a waiting question (answered some other way). True if it was waiting."""
        ...

    async def clear(self, conversation_key: str) -> int:
        """Forget every waiting question of the conversation; returns how many."""
        ...
