"""Microsoft Graph as a directory of people: group members, users, and the bot's Teams app.

Used by audiences (delivery/audience.py: `groups`, `teams` given by group object id, explicit
users given by object id or UPN) and by reach (delivery/reach.py: installing the app for a
person so that Herald can write to them). Every call goes through :class:`GraphClient`, so it is
retried on 429/503/504 honouring `Retry-After`, with app-only tokens cached by msal, and Graph's
answers come back as Herald's errors (`SourceError` and its subclasses).

Least-privileged application permissions, per call:

- group members (`GET /groups/{id}/transitiveMembers/microsoft.graph.user`, `…/members/…`):
  GroupMember.Read.All;
- a user by object id or UPN (`GET /users/{key}`): User.Read.All;
- installing the bot for a user and reading its chat (`POST /users/{id}/teamwork/installedApps`,
  `GET …/installedApps?$filter=…`, `GET …/installedApps/{id}/chat`):
  TeamsAppInstallation.ReadWriteSelfForUser.All.

(`…SelfForUser` lets an app install only itself: GRAPH_CLIENT_ID must then be the bot's own app
registration, the one the Teams app's manifest names; with another registration it takes
TeamsAppInstallation.ReadWriteForUser.All.)
"""

from __future__ import annotations

from typing import Any, Final
from urllib.parse import quote

from delivery.audience import Member, MemberPage
from delivery.reach import NOT_INSTALLABLE
from errors import DeliveryFailed, RetryLater, SourceError, SourceUnavailable
from sources.graph import GraphClient

__all__ = ["GraphAppInstaller", "GraphDirectory"]
_USER_TYPE: Final = "#microsoft.graph.user"
_PAGE: Final = "999"
"""Graph's largest page of directory objects (`$top`)."""
_USER_FIELDS: Final = "id,userPrincipalName,mail"


class GraphDirectory:
    """Groups' members and users, from Microsoft Graph, in the Graph app's tenant."""

    def __init__(self, client: GraphClient, tenant_id: str) -> None:
        self._client = client
        self._tenant = tenant_id

    async def group_members(
        self, group_id: str, link: str | None, *, transitive: bool
    ) -> MemberPage:
        """One page of the group's members that are users. The OData cast asks Graph for users
        only; anything else a page still holds (a nested group, a device, a contact) is left
        out here too."""
        if link is not None:
            page = await self._client.call("GET", link)  # the nextLink carries its query
        else:
            relation = "transitiveMembers" if transitive else "members"
            page = await self._client.call(
                "GET",
                f"groups/{quote(group_id, safe='')}/{relation}/microsoft.graph.user",
                params={"$select": _USER_FIELDS, "$top": _PAGE},
            )
        entries = page.get("value") if isinstance(page, dict) else None
        items = [e for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
        members = [
            Member(str(item["id"]), self._tenant)
            for item in items
            if item.get("id") and item.get("@odata.type", _USER_TYPE) == _USER_TYPE
        ]
        next_link = page.get("@odata.nextLink") if isinstance(page, dict) else None
        return MemberPage(members=members, listed=len(items), next=next_link or None)

    async def find_user(self, key: str) -> Member | None:
        """The user whose object id or user principal name is `key`; None if none is."""
        try:
            user: Any = await self._client.call(
                "GET", f"users/{quote(key, safe='@')}", params={"$select": _USER_FIELDS}
            )
        except SourceError as exc:
            if exc.status == 404:
                return None
            raise
        if not isinstance(user, dict) or not user.get("id"):
            return None
        return Member(str(user["id"]), self._tenant)


class GraphAppInstaller:
    """Installs the bot's Teams app for a person, and finds the bot's chat with them."""

    def __init__(self, client: GraphClient, catalog_app_id: str, *, graph_base_url: str) -> None:
        self._client = client
        self._catalog = catalog_app_id
        self._binding = f"{graph_base_url.rstrip('/')}/appCatalogs/teamsApps/{catalog_app_id}"

    async def install(self, user_id: str) -> str:
        """Install (409: it is already) and return the id of the bot's 1:1 chat with the user.
        DeliveryFailed(`not-installable: …`) when Graph refuses; RetryLater when Graph is
        throttling or down, or the chat is not there yet."""
        user = quote(user_id, safe="")
        try:
            await self._client.call(
                "POST",
                f"users/{user}/teamwork/installedApps",
                json={"teamsApp@odata.bind": self._binding},
            )
        except SourceError as exc:
            if exc.status != 409:  # 409: installed already (by an admin, or a retry)
                raise _not_installable(exc) from exc
        try:
            found = await self._client.call(
                "GET",
                f"users/{user}/teamwork/installedApps",
                params={"$expand": "teamsApp", "$filter": f"teamsApp/id eq '{self._catalog}'"},
            )
            installations = found.get("value") if isinstance(found, dict) else None
            installation = next(
                (i for i in installations or () if isinstance(i, dict) and i.get("id")), None
            )
            if installation is None:
                # Graph's directory catches up with the POST a moment later.
                raise RetryLater("installation-pending")
            chat = await self._client.call(
                "GET",
                f"users/{user}/teamwork/installedApps/"
                f"{quote(str(installation['id']), safe='')}/chat",
            )
        except SourceError as exc:
            if exc.status == 404:
                raise RetryLater("installation-pending") from exc
            raise _not_installable(exc) from exc
        if not isinstance(chat, dict) or not chat.get("id"):
            raise RetryLater("installation-pending")
        return str(chat["id"])


def _not_installable(exc: SourceError) -> RetryLater | DeliveryFailed:
    """A Graph refusal, as a delivery outcome."""
    if isinstance(exc, SourceUnavailable):
        return RetryLater(f"graph-unavailable: {exc.status or ''} {exc.code}".strip(), exc.after)
    if exc.status in (401, 403):
        why = f"forbidden ({exc.code})" if exc.code else "forbidden"
    elif exc.status == 404:
        why = f"not-found ({exc.code})" if exc.code else "not-found"
    else:
        why = f"refused ({exc.status} {exc.code})".replace(" )", ")")
    return DeliveryFailed(f"{NOT_INSTALLABLE} {why}")
