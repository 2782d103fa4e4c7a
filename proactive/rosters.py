"""A team's roster and channels through the Bot Connector.

`GET /v3/conversations/{teamId}/pagedmembers` (the roster, for `recipients.teams`) and
`GET /v3/teams/{teamId}/conversations` (the channels, read when the bot is added to a team:
bots/teams.py). The bot must be a member of the team. Teams returns at most 500 members a page
with a continuation token; each member carries its Entra ID object id, which is the person's
user key in Herald. The calls go through the same lean connector client the sends use (the
SDK's TeamsConnectorClient is synchronous: it would block the event loop).
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from delivery.audience import Member, MemberPage
from errors import AudiencePartFailed, AudienceUnavailable, DeliveryFailed, RetryLater, TargetGone
from proactive.connector import HttpConnectorTransport
from storage.records import StoredReference

__all__ = ["ConnectorRosters"]

_MAX_PAGE: Final = 500
"""Teams' largest `pageSize` for paged members."""


class ConnectorRosters:
    """Team rosters over the same lean connector client the sends use."""

    def __init__(self, transport: HttpConnectorTransport) -> None:
        self._transport = transport

    async def team_members(
        self, team: StoredReference, continuation: str | None, limit: int
    ) -> MemberPage:
        query = {"pageSize": str(max(1, min(limit, _MAX_PAGE)))}
        if continuation:
            query["continuationToken"] = continuation
        path = f"v3/conversations/{quote(team.conversation_id, safe='')}/pagedmembers"
        try:
            page = await self._transport.get_json(team.service_url, path, query)
        except TargetGone as exc:  # the bot is no longer in the team
            raise AudiencePartFailed(f"team-unreachable: {exc.reason}") from exc
        except RetryLater as exc:
            raise AudienceUnavailable(f"connector-unavailable: {exc.reason}", exc.after) from exc
        except DeliveryFailed as exc:
            raise AudiencePartFailed(f"team-unreachable: {exc.reason}") from exc
        entries = page.get("members")
        members = [
            Member(str(m["aadObjectId"]), team.tenant_id)
            for m in entries if isinstance(m, dict) and m.get("aadObjectId")
        ] if isinstance(entries, list) else []
        token = page.get("continuationToken")
        return MemberPage(
            members=members,
            listed=len(entries) if isinstance(entries, list) else 0,
            next=str(token) if token else None,
        )

    async def team_channels(self, service_url: str, team_id: str) -> list[tuple[str, str | None]]:
        """The team's channels: (id, name); the General channel's id is the team's, and it
        has no name. Raises the connector's errors (DeliveryError)."""
        answer = await self._transport.get_json(
            service_url, f"v3/teams/{quote(team_id, safe='')}/conversations"
        )
        entries = answer.get("conversations")
        return [
            (str(c["id"]), str(c["name"]) if c.get("name") else None)
            for c in entries if isinstance(c, dict) and c.get("id")
        ] if isinstance(entries, list) else []
