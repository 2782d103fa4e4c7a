"""Plain records the stores read and write; no behaviour, so every backend shares them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from notifications.event import StoredEvent

__all__ = [
    "Acknowledgement",
    "ConversationTarget",
    "Engagement",
    "EngagementBucket",
    "EngagementCounts",
    "InboxChange",
    "InboxEntry",
    "NotificationRecord",
    "PendingPrompt",
    "PutOutcome",
    "StoredReference",
    "UserRecord",
    "target_key",
]


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A person Herald has met: their stable key and what the channel told us about them."""

    user_id: str
    channel_id: str
    name: str | None = None
    tenant_id: str | None = None
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class StoredReference:
    """A ConversationReference (wire JSON) for one (user, conversation), plus what routing needs."""

    user_id: str
    channel_id: str
    conversation_id: str
    service_url: str
    reference: dict[str, Any]
    tenant_id: str | None = None
    active: bool = True

    @property
    def target(self) -> str:
        """The delivery target key: unique per conversation across channels."""
        return target_key(self.channel_id, self.conversation_id)


def target_key(channel_id: str, conversation_id: str) -> str:
    """A conversation's delivery target key: unique per conversation across channels."""
    return f"{channel_id}|{conversation_id}"


@dataclass(frozen=True, slots=True)
class ConversationTarget:
    """What the router needs of an active reference: its target key, and what decides which
    rate limits its sends share (channel, tenant, service URL)."""

    target: str
    channel_id: str
    tenant_id: str | None
    service_url: str


@dataclass(frozen=True, slots=True)
class NotificationRecord:
    """A posted event as stored: the validated event (parsed once, when read from the
    store), a content hash for idempotency, a version that grows with each changed re-post,
    and how far audience expansion has got."""

    id: str
    version: int
    content_hash: str
    event: StoredEvent
    type: str
    recipients: int
    expanded_version: int
    expand_cursor: str | None
    created_at: float
    updated_at: float
    recalled_at: float | None = None
    """When its sender recalled it (DELETE /api/notifications/{id}): nothing more is sent, sent
    Teams messages are deleted, and it leaves its recipients' inboxes. None: not recalled."""

    @property
    def expansion_pending(self) -> bool:
        return self.expanded_version < self.version

    @property
    def recalled(self) -> bool:
        return self.recalled_at is not None


PutOutcome = Literal["created", "unchanged", "updated"]


@dataclass(frozen=True, slots=True)
class InboxEntry:
    """One notification in one user's history."""

    notification_id: str
    created_at: float
    read_at: float | None
    event: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    read_via: str | None = None
    """Where it was first read: `inbox`, `chat`, `teams-receipt`, `webpush`, `mobile`, `api`."""
    acknowledged_at: float | None = None
    acknowledged_via: str | None = None
    recalled: bool = False
    """Its sender recalled it: lists leave it out; the live feed reports it once, so open
    pages remove it."""


@dataclass(frozen=True, slots=True)
class InboxChange:
    """An inbox entry that changed after a point in time, for the live inbox page's feed."""

    entry: InboxEntry
    changed_at: float
    """When it last changed: the entry was written, read, or its notification was updated
    (the latest of the three). A feed's cursor; epoch seconds."""


@dataclass(frozen=True, slots=True)
class PendingPrompt:
    """A proactive question (an event's `prompt`) sent into a conversation and not yet taken up
    by a dialog there: the user is mid-dialog, or has not said anything since it arrived."""

    conversation_key: str
    """`{channelId}/{conversationId}`: where the question was asked."""
    notification_id: str
    user_id: str
    text: str
    choices: tuple[str, ...]
    queued_at: float


@dataclass(frozen=True, slots=True)
class Engagement:
    """One person's read and acknowledged state of one notification: one state, wherever it
    was set (chat, card button, Teams read receipt, inbox page, browser, mobile app)."""

    user_id: str
    read_at: float | None = None
    read_via: str | None = None
    acknowledged_at: float | None = None
    acknowledged_via: str | None = None


@dataclass(frozen=True, slots=True)
class Acknowledgement:
    """The outcome of acknowledging: when and where it was first recorded (a repeat keeps
    the first), and whether this call recorded it."""

    acknowledged_at: float
    via: str
    first: bool


@dataclass(frozen=True, slots=True)
class EngagementCounts:
    """A notification's funnel after delivery: of the people whose inbox has it (its
    recipients), how many read it and acknowledged it, and where."""

    recipients: int = 0
    read: int = 0
    acknowledged: int = 0
    read_via: dict[str, int] = field(default_factory=dict)
    acknowledged_via: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EngagementBucket:
    """How many recipients first read / acknowledged a notification within one time bucket."""

    start: float
    read: int = 0
    acknowledged: int = 0
