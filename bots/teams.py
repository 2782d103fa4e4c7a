"""What the bot remembers of the teams it is added to: a reference for each of their channels.

When the bot is added to a team (a `conversationUpdate` whose `channelData.team` names the team
and whose `membersAdded` holds the bot, or an `installationUpdate` add in a team), Herald stores
a conversation reference for every channel of the team, read from the Bot Connector
(`GET /v3/teams/{id}/conversations`), under the pseudo user `team:{teamId}`
(delivery/audience.py). A backend can then post in a channel (`recipients.channels`) and
address the team's roster (`recipients.teams`, through its General channel's reference, whose
id is the team's). Channels created, renamed or restored later are stored, deleted ones
forgotten; when the bot is removed from the team or the team is deleted, all of its channels
are forgotten (deactivated: a post to them is counted `channel-removed`).
"""

from __future__ import annotations

import logging
from typing import Any, Final, Protocol

from botbuilder.core import TurnContext
from botbuilder.schema import ActivityTypes, ChannelAccount, ConversationAccount
from botbuilder.schema import ConversationReference as Reference

from delivery.audience import team_user
from errors import DeliveryError
from proactive.codec import dump
from proactive.identity import tenant_of
from storage.protocols import ConversationStore
from storage.records import StoredReference

__all__ = ["TeamChannels"]

log = logging.getLogger(__name__)

_ADDED: Final = frozenset({"channelCreated", "channelRenamed", "channelRestored"})
_TEAM_GONE: Final = frozenset({"teamDeleted", "teamHardDeleted"})
_TEAM_BACK: Final = frozenset({"teamRestored"})


class TeamsConnector(Protocol):
    """The Bot Connector's list of a team's channels (proactive/rosters.py)."""

    async def team_channels(
        self, service_url: str, team_id: str
    ) -> list[tuple[str, str | None]]: ...


def _team(activity: Any) -> dict[str, Any] | None:
    data = activity.channel_data
    if activity.channel_id != "msteams" or not isinstance(data, dict):
        return None
    team = data.get("team")
    return team if isinstance(team, dict) and isinstance(team.get("id"), str) else None


def _names_bot(members: list[ChannelAccount] | None, bot: ChannelAccount | None) -> bool:
    return bot is not None and any(m.id == bot.id for m in members or ())


class TeamChannels:
    """Keeps the channel references of the teams the bot is in up to date."""

    def __init__(self, conversations: ConversationStore, connector: TeamsConnector) -> None:
        self._conversations = conversations
        self._connector = connector

    async def on_activity(self, turn_context: TurnContext) -> None:
        """Look at a conversationUpdate or installationUpdate; never raises (a failure to keep
        these references must not fail the turn: the next update refreshes them)."""
        activity = turn_context.activity
        team = _team(activity)
        if team is None:
            return
        try:
            await self._apply(activity, team)
        except Exception as exc:
            log.warning("could not update the channels of team %s: %r", team.get("id"), exc)

    async def _apply(self, activity: Any, team: dict[str, Any]) -> None:
        event = activity.channel_data.get("eventType")
        team_id = str(team["id"])
        if activity.type == ActivityTypes.installation_update:
            if str(activity.action or "").startswith("remove"):
                await self._forget_team(team_id, "bot-removed")
            elif str(activity.action or "").startswith("add"):
                await self._remember_team(activity, team_id)
            return
        if activity.type != ActivityTypes.conversation_update:
            return
        if _names_bot(activity.members_removed, activity.recipient) or event in _TEAM_GONE:
            await self._forget_team(team_id, "bot-removed" if event not in _TEAM_GONE else event)
        elif _names_bot(activity.members_added, activity.recipient) or event in _TEAM_BACK:
            await self._remember_team(activity, team_id)
        elif event in _ADDED or event == "channelDeleted":
            channel = activity.channel_data.get("channel")
            if not isinstance(channel, dict) or not isinstance(channel.get("id"), str):
                return
            if event == "channelDeleted":
                target = self._reference(activity, team_id, channel["id"], None).target
                await self._conversations.deactivate(team_user(team_id), target, event)
            else:
                name = channel.get("name")
                await self._conversations.upsert(
                    self._reference(activity, team_id, channel["id"], name)
                )

    async def _remember_team(self, activity: Any, team_id: str) -> None:
        """Store every channel of the team (at least the General one, whose id is the team's,
        when the connector cannot list them now)."""
        channels: list[tuple[str, str | None]] = [(team_id, None)]
        try:
            listed = await self._connector.team_channels(str(activity.service_url), team_id)
            channels = list({cid: (cid, name) for cid, name in [*channels, *listed]}.values())
        except DeliveryError as exc:
            log.warning("could not list the channels of team %s: %s", team_id, exc)
        for channel_id, name in channels:
            await self._conversations.upsert(
                self._reference(activity, team_id, channel_id, name)
            )
        log.info("stored %d channel(s) of team %s", len(channels), team_id)

    async def _forget_team(self, team_id: str, reason: str) -> None:
        user = team_user(team_id)
        stored = (await self._conversations.for_users([user])).get(user, [])
        for ref in stored:
            await self._conversations.deactivate(user, ref.target, reason)
        log.info("forgot %d channel(s) of team %s (%s)", len(stored), team_id, reason)

    @staticmethod
    def _reference(
        activity: Any, team_id: str, channel_id: str, name: str | None
    ) -> StoredReference:
        """A channel's reference: posts in it start a new thread (no activity to reply to)."""
        tenant = tenant_of(activity)
        reference = Reference(
            channel_id="msteams",
            service_url=str(activity.service_url),
            conversation=ConversationAccount(
                id=channel_id,
                name=name,
                conversation_type="channel",
                is_group=True,
                tenant_id=tenant,
            ),
            bot=activity.recipient,
        )
        return StoredReference(
            user_id=team_user(team_id),
            channel_id="msteams",
            conversation_id=channel_id,
            service_url=str(activity.service_url),
            reference=dump(reference),
            tenant_id=tenant,
        )
