"""Reaching people who never talked to the bot: Herald opens their Teams chat itself.

An audience may name people Herald has no record of, by Entra ID object id (a group's members,
a team's roster, a UPN resolved through Graph). The router plans them with the target
`msteams|@{tenant}` (ConversationChannel.creatable), and when that delivery is sent:

1. a conversation stored for the person since then is used (they talked to the bot, another
   notification opened it): reached `stored`;
2. else Herald creates the 1:1 chat, `POST {serviceUrl}/v3/conversations` with their object id
   and the tenant, through the tenant's serviceUrl (proactive/tenants.py: learnt from any
   activity of the tenant, or configured); it stores the reference and a user record for the
   person, and sends there: `created`;
3. Teams refuses (403/404) when the bot's app is not installed for the person. With
   installation configured (HERALD_TEAMS_CATALOG_APP_ID and Microsoft Graph) Herald installs it
   (`POST /users/{id}/teamwork/installedApps`; 409 means it is already), reads the chat it
   opens (`GET …/installedApps/{id}/chat`), stores that and sends: `installed`;
4. otherwise the delivery fails `not-installable: <why>` (`installation-off`,
   `no-service-url`, `forbidden (…)`, `not-found (…)`...), and is not retried. Throttling and
   outages are retried like any send, at most HERALD_MAX_ATTEMPTS times.

Each way is counted (the delivery's reason: `GET /api/notifications/{id}` → `reach`). These
calls happen inside the send, so inside the tenant's budget (Teams counts the create call
too): it takes one more of the lane's tokens.

People with a stored conversation are never reached this way: one that is no longer active
means they removed or blocked the bot, and Herald respects that (delivery/audience.py). Somebody
with a user record but no conversation (they only wrote in a team's channel) may be.
HERALD_OPT_IN_REQUIRED holds as for anybody: nobody who has not opted in is planned, so no chat
is opened and no app installed for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from botbuilder.schema import ChannelAccount, ConversationAccount, ConversationReference

from errors import DeliveryFailed, RetryLater, TargetGone
from proactive.codec import dump
from proactive.tenants import TenantServiceUrls
from storage.protocols import ConversationStore, UserStore
from storage.records import StoredReference, UserRecord

__all__ = [
    "NEW_CHAT_PREFIX",
    "NOT_INSTALLABLE",
    "AppInstaller",
    "NewChat",
    "TeamsReach",
    "new_chat_target",
]

NOT_INSTALLABLE: Final = "not-installable:"
"""The reason prefix of a person Herald could not reach: no chat, and none it could open."""
_LONGEST_BUDGET_WAIT: Final = 5.0
"""A create call waits this long at most for its token; longer (the tenant is paused by a
Retry-After), the delivery is retried later instead of holding a worker."""
_ASKING: Final = 0.05
"""How soon to look again while a shared budget fetches slots."""
NEW_CHAT_PREFIX: Final = "msteams|@"
"""Targets `msteams|@{tenant}`: a chat to open at send time. Teams conversation ids never
start with `@`."""


def new_chat_target(tenant_id: str) -> str:
    return NEW_CHAT_PREFIX + tenant_id


@dataclass(frozen=True, slots=True)
class NewChat:
    """A loaded delivery whose person has no conversation yet."""

    user_id: str
    tenant_id: str


class ConversationOpener(Protocol):
    """The Bot Connector's create-conversation call (proactive/connector.py)."""

    async def create_conversation(
        self, service_url: str, parameters: Mapping[str, Any]
    ) -> dict[str, Any]: ...


class AppInstaller(Protocol):
    """Installs the bot's Teams app for a person (sources/graph_directory.py)."""

    async def install(self, user_id: str) -> str:
        """The id of the bot's chat with the person once the app is installed for them."""
        ...


class Budget(Protocol):
    """The tenants' send budget the worker's scheduler uses (delivery/budget.py LaneBudget)."""

    def wait(self, lane: str) -> float | None: ...

    def take(self, lane: str) -> None: ...


class TeamsReach:
    """Opens the Teams chat of a person who has none, and remembers it."""

    def __init__(
        self,
        opener: ConversationOpener,
        conversations: ConversationStore,
        users: UserStore,
        tenants: TenantServiceUrls,
        *,
        bot_id: str,
        installer: AppInstaller | None = None,
        budget: Budget | None = None,
    ) -> None:
        self._opener = opener
        self._conversations = conversations
        self._users = users
        self._tenants = tenants
        self._bot_id = bot_id
        self._installer = installer
        self._budget = budget

    async def open_chat(self, chat: NewChat, lane: str) -> tuple[StoredReference, str]:
        """The person's new chat, stored, and how it was opened (`created` or `installed`).
        DeliveryFailed(`not-installable: …`) when it cannot be; RetryLater when not now."""
        service_url = await self._tenants.service_url(chat.tenant_id)
        if not service_url:
            raise DeliveryFailed(f"{NOT_INSTALLABLE} no-service-url")
        if lane:  # the create call is one more call in the tenant's budget (unpaced: none)
            await self._token(lane)
        parameters = {
            "bot": {"id": self._bot_id},
            "members": [{"id": chat.user_id}],
            "isGroup": False,
            "tenantId": chat.tenant_id,
            "channelData": {"tenant": {"id": chat.tenant_id}},
        }
        try:
            created = await self._opener.create_conversation(service_url, parameters)
            conversation_id, how = str(created["id"]), "created"
        except TargetGone as exc:
            if self._installer is None:
                raise DeliveryFailed(f"{NOT_INSTALLABLE} installation-off") from exc
            conversation_id, how = await self._installer.install(chat.user_id), "installed"
        reference = ConversationReference(
            channel_id="msteams",
            service_url=service_url,
            conversation=ConversationAccount(
                id=conversation_id,
                conversation_type="personal",
                is_group=False,
                tenant_id=chat.tenant_id,
            ),
            user=ChannelAccount(id=chat.user_id, aad_object_id=chat.user_id, role="user"),
            bot=ChannelAccount(id=self._bot_id, role="bot"),
        )
        stored = StoredReference(
            user_id=chat.user_id,
            channel_id="msteams",
            conversation_id=conversation_id,
            service_url=service_url,
            reference=dump(reference),
            tenant_id=chat.tenant_id,
        )
        # A record makes them known: their next notification uses this chat, and if they remove
        # the bot, Herald never opens another one behind their back.
        await self._users.upsert_user(
            UserRecord(user_id=chat.user_id, channel_id="msteams", tenant_id=chat.tenant_id)
        )
        await self._conversations.upsert(stored)
        return stored, how

    async def _token(self, lane: str) -> None:
        """Take one token of `lane` for the create call, when there is one. The scheduler took
        one for the send already; taking this one without waiting would let a burst of sends
        make twice their calls at once (Teams answers 429)."""
        budget = self._budget
        if budget is None:
            return
        waited = 0.0
        while True:
            wait = budget.wait(lane)
            if wait == 0:
                budget.take(lane)
                return
            pause = _ASKING if wait is None else wait
            if waited + pause > _LONGEST_BUDGET_WAIT:
                raise RetryLater("tenant-rate", pause)
            await asyncio.sleep(pause)
            waited += pause
