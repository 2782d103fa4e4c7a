"""What the dialogs work with: stores, the preferences service, the channels and the policy.

Built once in app.py and handed to every dialog and card handler, so none of them reaches for
a global or builds its own store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from botbuilder.core import TurnContext
from botbuilder.schema import Activity

from delivery.channel import ChannelRegistry
from dialogs.channel_links import LinkMaker
from engagement import EngagementService
from preferences.rules import DeliveryPolicy
from preferences.service import PreferencesService
from proactive.identity import user_key
from sources.graph_source import CalendarAccess
from storage.protocols import (
    ConversationStore,
    InboxStore,
    NotificationStore,
    PromptStore,
    UserStore,
)

__all__ = ["DialogServices", "conversation_key", "sender_id"]


@dataclass(frozen=True, slots=True)
class DialogServices:
    """The collaborators of Herald's dialogs."""

    users: UserStore
    preferences: PreferencesService
    conversations: ConversationStore
    inbox: InboxStore
    notifications: NotificationStore
    prompts: PromptStore
    channels: ChannelRegistry
    """May still be filling up while the app is wired; read it only during turns."""
    policy: DeliveryPolicy = field(default_factory=DeliveryPolicy)
    clock: Callable[[], float] = time.time
    channel_links: Mapping[str, LinkMaker] = field(default_factory=dict)
    """Per channel name: a link to set it up outside the chat (browser push's consent page)."""
    calendar: CalendarAccess | None = None
    """Calendar subscriptions through Microsoft Graph (off unless configured)."""
    inbox_link: LinkMaker | None = None
    """A link to the person's live inbox page (the `inbox` command, the history answer)."""
    engagement: EngagementService | None = None
    """Read and acknowledged state, which also rings the person's live inbox pages."""


def conversation_key(activity: Activity) -> str | None:
    """`{channelId}/{conversationId}`: the key waiting prompts are kept under."""
    if activity.conversation is None or not activity.conversation.id:
        return None
    return f"{activity.channel_id}/{activity.conversation.id}"


def sender_id(context: TurnContext) -> str | None:
    """Herald's id of the person this turn is from (DESIGN: Identity)."""
    return user_key(context.activity)
