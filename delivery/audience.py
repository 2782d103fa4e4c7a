"""Audiences: who a notification's `recipients` name, part by part, a page at a time.

An event names people in parts (api/schemas.py): `users` (ids or aliases), `groups` (Entra ID
groups: their transitive user members, from Microsoft Graph), `teams` (a team's roster: through
the Bot Connector for a team the bot is in, or its group's members in Graph), `channels` (one
post in a channel of a team the bot is in) and `all` (everybody Herald knows). The router
expands the parts in that order, one page at a time, and saves where it is with every page it
writes (:class:`Expansion`, stored as the notification's expand cursor): the part, the cursor
inside it (an offset, a Graph `@odata.nextLink`, a Bot Connector continuation token, a user id)
and what each part found so far. So a restart resumes mid-part, the audience is never in memory
whole, and the status shows progress per part.

A person named by two parts is planned once: with every page the outbox marks who it planned
for the notification's version (`DeliveryQueue.planned`), and later pages leave them out.

People Herald never had a conversation with (no stored reference, active or closed) but whom
a directory or roster lists as Entra ID users of a tenant are returned with that tenant
(:attr:`Person.tenant`): the conversation channel may create their Teams chat at send time
(delivery/reach.py).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, Protocol

from errors import AudiencePartFailed, AudienceUnavailable, SourceError, SourceUnavailable
from notifications.event import Recipients
from storage.protocols import ConversationStore, UserStore
from storage.records import StoredReference, target_key

__all__ = [
    "CHANNEL_POST_PREFIX",
    "AudiencePage",
    "Audiences",
    "Directory",
    "Expansion",
    "Member",
    "MemberPage",
    "Part",
    "PartProgress",
    "Person",
    "Rosters",
    "audience_parts",
    "is_channel_post",
    "team_user",
]

CHANNEL_POST_PREFIX: Final = "team:"
"""The `user_id` under which a team's channel references are stored, and of channel posts in
the outbox (`team:{teamId}`): a channel is nobody's, so no person's preferences apply to it. No
real user key starts so (they are Entra ID object ids or `{channelId}:{from.id}`)."""

UNKNOWN_USER: Final = "unknown-user"
_LOOKUPS: Final = 8
"""Graph user look-ups in flight at once while resolving one page of explicit users."""
_OBJECT_ID: Final = re.compile(
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
)
"""An Entra ID object id: a Teams user's key in Herald (proactive/identity.py)."""
_ENTRA_KEY: Final = re.compile(
    r"^(?:[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
    r"|[A-Za-z0-9.!#$%&'*+=^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)$"
)
"""What Microsoft Graph `users/{id}` takes: an object id or a user principal name. Other keys
are never sent to Graph (nothing a backend writes reaches a Graph URL path unchecked)."""


def team_user(team_id: str) -> str:
    """The pseudo user a team's channel references are stored under."""
    return CHANNEL_POST_PREFIX + team_id


def is_channel_post(user_id: str) -> bool:
    """Whether an outbox row is a post in a channel rather than a delivery to a person."""
    return user_id.startswith(CHANNEL_POST_PREFIX)


PartKind = Literal["users", "group", "team", "channel", "all"]


@dataclass(frozen=True, slots=True)
class Part:
    """One part of an audience: `ref` is the group or team id; a channel has both ids."""

    kind: PartKind
    ref: str = ""
    channel: str = ""

    @property
    def label(self) -> str:
        """The `userId` of the report row that says why the part could not be listed."""
        return f"{self.kind}:{self.ref}" if self.ref else self.kind

    def describe(self) -> dict[str, str]:
        """The part as the status shows it."""
        if self.kind == "channel":
            return {"kind": "channel", "teamId": self.ref, "channelId": self.channel}
        if self.ref:
            return {"kind": self.kind, "id": self.ref}
        return {"kind": self.kind}


def audience_parts(recipients: Recipients) -> list[Part]:
    """The parts of an event's `recipients`, in expansion order, without repeats."""
    parts: list[Part] = []
    if recipients.users:
        parts.append(Part("users"))
    parts.extend(Part("group", g) for g in dict.fromkeys(recipients.groups or ()))
    parts.extend(Part("team", t) for t in dict.fromkeys(recipients.teams or ()))
    channels = dict.fromkeys((c.team_id, c.channel_id) for c in recipients.channels or ())
    parts.extend(Part("channel", team, channel) for team, channel in channels)
    if recipients.all:
        parts.append(Part("all"))
    return parts


def recipient_keys(recipients: Recipients) -> list[str]:
    """The explicit `users`, each once, in order."""
    return list(dict.fromkeys(recipients.users or ()))


PartState = Literal["waiting", "expanding", "done", "failed"]


@dataclass(slots=True)
class PartProgress:
    """What one part has found so far."""

    listed: int = 0
    """Entries its source listed (keys, members, the channel); repeats and non-users included."""
    added: int = 0
    """Recipients it added: people not named by an earlier part, unknown keys, channel posts."""
    state: PartState = "waiting"
    reason: str | None = None
    """Why it failed, or why it waits (the last transient failure)."""
    attempts: int = 0
    """Transient failures in a row (reset by a page that succeeds)."""


@dataclass(slots=True)
class Expansion:
    """Where the expansion of one notification version is: the part, the cursor inside it,
    and each part's progress. Saved as JSON with every page (the notification's cursor)."""

    part: int = 0
    cursor: str | None = None
    parts: list[PartProgress] = field(default_factory=list)

    def dumps(self) -> str:
        return json.dumps(
            {
                "v": 1,
                "part": self.part,
                "cursor": self.cursor,
                "parts": [[p.listed, p.added, p.state, p.reason, p.attempts] for p in self.parts],
            },
            separators=(",", ":"),
        )

    @classmethod
    def loads(cls, text: str | None, count: int) -> Expansion:
        """The saved state; a fresh one for none. A cursor from before audiences had parts
        (a plain offset or user id) is the cursor of the only part."""
        fresh = cls(parts=[PartProgress() for _ in range(count)])
        if not text:
            return fresh
        if not text.startswith("{"):
            fresh.cursor = text
            if fresh.parts:
                fresh.parts[0].state = "expanding"
            return fresh
        try:
            data = json.loads(text)
            parts = [
                PartProgress(int(p[0]), int(p[1]), p[2], p[3], int(p[4])) for p in data["parts"]
            ]
            state = cls(int(data["part"]), data.get("cursor"), parts)
        except (ValueError, KeyError, TypeError, IndexError):
            return fresh
        return state if len(parts) == count else fresh

    @property
    def added(self) -> int:
        return sum(p.added for p in self.parts)


@dataclass(frozen=True, slots=True)
class Person:
    """Someone a part names. `tenant` is set for an Entra ID user Herald never had a
    conversation with: the conversation channel may create a Teams chat with them there."""

    user_id: str
    tenant: str | None = None


@dataclass(frozen=True, slots=True)
class Member:
    """A user a directory or a roster listed: Entra ID object id and tenant."""

    user_id: str
    tenant: str | None


@dataclass(frozen=True, slots=True)
class MemberPage:
    """One page of members; `next` is None on the last page."""

    members: list[Member]
    listed: int
    """Entries the page held, members that are not users included."""
    next: str | None


@dataclass(slots=True)
class AudiencePage:
    """One page of a part, ready to plan: people, keys nobody answers to, channel posts."""

    people: list[Person] = field(default_factory=list)
    skipped: list[tuple[str, str, str]] = field(default_factory=list)
    """(user id or key, target, reason) rows to record as skipped."""
    posts: list[StoredReference] = field(default_factory=list)
    listed: int = 0
    next: str | None = None


class Directory(Protocol):
    """Microsoft Graph's people and groups (sources/graph_directory.py)."""

    async def group_members(
        self, group_id: str, link: str | None, *, transitive: bool
    ) -> MemberPage:
        """A page of the group's members that are users (transitive: nested groups too)."""
        ...

    async def find_user(self, key: str) -> Member | None:
        """The user with this object id or user principal name; None if there is none."""
        ...


class Rosters(Protocol):
    """A team's roster through the Bot Connector (the bot is a member of the team)."""

    async def team_members(
        self, team: StoredReference, continuation: str | None, limit: int
    ) -> MemberPage: ...


def _graph_failure(exc: SourceError, what: str) -> AudiencePartFailed | AudienceUnavailable:
    """A Graph error, as what it means for listing a part."""
    if isinstance(exc, SourceUnavailable):
        return AudienceUnavailable(f"graph-unavailable: {exc.status or ''} {exc.code}".strip(),
                                   exc.after)
    if exc.status == 404:
        return AudiencePartFailed(f"{what}-not-found")
    if exc.status in (401, 403):
        return AudiencePartFailed(f"forbidden: {exc.code or exc.status}")
    return AudiencePartFailed(f"graph-error: {exc.status} {exc.code}".strip())


class Audiences:
    """Lists each kind of part a page at a time, from the store, Graph or the Bot Connector."""

    def __init__(
        self,
        users: UserStore,
        conversations: ConversationStore | None = None,
        *,
        directory: Directory | None = None,
        rosters: Rosters | None = None,
    ) -> None:
        self._users = users
        self._conversations = conversations
        self._directory = directory
        self._rosters = rosters

    async def page(
        self,
        part: Part,
        recipients: Recipients,
        cursor: str | None,
        limit: int,
        *,
        last_try: bool = False,
    ) -> AudiencePage:
        """The page of `part` after `cursor`. Raises AudiencePartFailed (the part can never be
        listed: counted and skipped) or AudienceUnavailable (not now: try later). On the
        `last_try` of a page of explicit users, keys Graph could not be asked about are
        skipped (`unresolved: graph-unavailable`) instead, so the others go on."""
        if part.kind == "users":
            return await self._users_page(recipient_keys(recipients), cursor, limit, last_try)
        if part.kind == "all":
            ids = await self._users.user_id_page(cursor, limit)
            return AudiencePage(
                people=[Person(i) for i in ids],
                listed=len(ids),
                next=ids[-1] if len(ids) >= limit else None,
            )
        if part.kind == "channel":
            return await self._channel_page(part)
        if part.kind == "group":
            return await self._people(await self._group_page(part.ref, cursor, transitive=True))
        return await self._people(await self._team_page(part.ref, cursor, limit))

    async def _people(self, page: MemberPage) -> AudiencePage:
        """Members as people: those Herald has had a conversation with, and the others with
        the tenant a chat could be created in."""
        members = list({m.user_id: m for m in page.members}.values())
        met = await self._met([m.user_id for m in members])
        people = [Person(m.user_id, None if m.user_id in met else m.tenant) for m in members]
        return AudiencePage(people=people, listed=page.listed, next=page.next)

    async def _known(self, user_ids: Sequence[str]) -> list[Person]:
        """People Herald has a record of: a Teams user of whom it has no conversation (they
        only wrote in a team's channel) comes with their tenant, so a chat may be opened."""
        unique = list(dict.fromkeys(user_ids))
        if self._conversations is None:
            return [Person(u) for u in unique]
        met = await self._met([u for u in unique if _OBJECT_ID.match(u)])
        people: list[Person] = []
        for user_id in unique:
            tenant: str | None = None
            if _OBJECT_ID.match(user_id) and user_id not in met:
                record = await self._users.get_user(user_id)
                if record is not None and record.channel_id == "msteams":
                    tenant = record.tenant_id
            people.append(Person(user_id, tenant))
        return people

    async def _met(self, user_ids: Sequence[str]) -> set[str]:
        """Which of these Entra ID object ids Herald has had a conversation with (any stored
        reference, active or closed): a closed one means they removed or blocked the bot, and
        no chat is opened behind their back. People with a record but no conversation (they
        only wrote in a team's channel) are not met: a chat may be opened with them."""
        if not user_ids:
            return set()
        if self._conversations is None:
            known = await self._users.resolve(user_ids)
            return {u for u in user_ids if known.get(u) == u}
        return await self._conversations.ever_stored(user_ids)

    async def _group_page(self, group_id: str, link: str | None, *, transitive: bool) -> MemberPage:
        if self._directory is None:
            raise AudiencePartFailed("graph-off")
        try:
            return await self._directory.group_members(group_id, link, transitive=transitive)
        except SourceError as exc:
            raise _graph_failure(exc, "group") from exc

    async def _team_page(self, team_id: str, cursor: str | None, limit: int) -> MemberPage:
        if not team_id.startswith("19:"):
            # A team's roster is its Microsoft 365 group's members.
            return await self._group_page(team_id, cursor, transitive=False)
        team = await self._team_reference(team_id)
        if team is None:
            raise AudiencePartFailed("unknown-team")
        if self._rosters is None:
            raise AudiencePartFailed("roster-off")
        return await self._rosters.team_members(team, cursor, limit)

    async def _reference(self, team_id: str, channel_id: str) -> StoredReference | None:
        """The stored reference of a team's channel (active or not; None if never stored)."""
        if self._conversations is None:
            return None
        key = (team_user(team_id), target_key("msteams", channel_id))
        return (await self._conversations.get_many([key])).get(key)

    async def _team_reference(self, team_id: str) -> StoredReference | None:
        """The stored reference of the team's General channel (its id is the team's)."""
        ref = await self._reference(team_id, team_id)
        return ref if ref is not None and ref.active else None

    async def _channel_page(self, part: Part) -> AudiencePage:
        key = (team_user(part.ref), target_key("msteams", part.channel))
        ref = await self._reference(part.ref, part.channel)
        if ref is None or not ref.active:
            # Never stored (the bot was never added to the team, or it is not its channel),
            # or forgotten (the bot was removed, the channel deleted).
            reason = "unknown-channel" if ref is None else "channel-removed"
            return AudiencePage(skipped=[(key[0], key[1], reason)], listed=1)
        return AudiencePage(posts=[ref], listed=1)

    async def _users_page(
        self, keys: Sequence[str], cursor: str | None, limit: int, last_try: bool
    ) -> AudiencePage:
        start = int(cursor or 0)
        chunk = keys[start : start + limit]
        resolved = await self._users.resolve(chunk)
        people = await self._known([resolved[k] for k in chunk if k in resolved])
        unknown = [k for k in chunk if k not in resolved]
        skipped: list[tuple[str, str, str]] = []
        if unknown:
            try:
                found = await self._look_up(unknown)
            except AudienceUnavailable as exc:
                if not last_try:
                    raise
                found = dict.fromkeys(unknown, f"unresolved: {exc.reason}")
            members = [m for m in found.values() if isinstance(m, Member)]
            met = await self._met([m.user_id for m in members])
            for key in unknown:
                outcome = found.get(key)
                if isinstance(outcome, Member):
                    tenant = None if outcome.user_id in met else outcome.tenant
                    people.append(Person(outcome.user_id, tenant))
                else:
                    skipped.append((key, "", outcome or UNKNOWN_USER))
        unique = list({p.user_id: p for p in people}.values())
        end = start + len(chunk)
        return AudiencePage(
            people=unique, skipped=skipped, listed=len(chunk),
            next=str(end) if end < len(keys) else None,
        )

    async def _look_up(self, keys: Sequence[str]) -> dict[str, Member | str | None]:
        """Each key Graph may know (object id or UPN) → the user, None (no such user) or why
        it could not be asked; AudienceUnavailable when Graph is down or throttling."""
        directory = self._directory
        if directory is None:
            return {}
        wanted = [k for k in keys if _ENTRA_KEY.match(k)]
        gate = asyncio.Semaphore(_LOOKUPS)

        async def one(key: str) -> Member | str | None:
            async with gate:
                try:
                    return await directory.find_user(key)
                except SourceUnavailable:
                    raise
                except SourceError as exc:
                    if exc.status == 404:
                        return None
                    return f"unresolved: {_graph_failure(exc, 'user').reason}"

        try:
            answers = await asyncio.gather(*(one(k) for k in wanted))
        except SourceUnavailable as exc:
            raise _graph_failure(exc, "user") from exc
        return dict(zip(wanted, answers, strict=True))

