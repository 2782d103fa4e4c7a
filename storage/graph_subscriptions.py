"""Microsoft Graph subscriptions, the durable inbox of change notifications, and what Herald
knows about each watched calendar event: records and the store Protocols every backend
implements.

A :class:`GraphSubscription` is one user's wish ("notify me about changes to my calendar") plus
the state of the Graph subscription that serves it. Only the user writes the wish
(`set_allowed`); only whoever holds the record's lease writes the Graph side (`save`), so two
Herald instances never renew, create or delete the same subscription twice: a lease is taken
with one conditional update (`claim`, `claim_due`) and a save by a holder whose lease was taken
over is refused. Lifecycle events ask for work by raising counters (`request`) that a save
marks done only up to what its holder saw, so a request made during an operation is not lost.

Change notifications are written to the inbox before Graph gets its 202 and processed from
there, so nothing acknowledged is lost when Herald stops; a notification whose dedupe key was
seen before is dropped on the way in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol

__all__ = [
    "CALENDAR",
    "ChangeKind",
    "GraphChange",
    "GraphChangeInbox",
    "GraphResourceStore",
    "GraphSubscription",
    "GraphSubscriptionStore",
    "KnownResource",
    "NewGraphChange",
    "SubscriptionStatus",
    "is_entra_id",
]

CALENDAR: Final = "calendar"
"""The kind of subscription: the user's Outlook calendar (`users/{id}/events`)."""

_GUID: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")


def is_entra_id(user_id: str) -> bool:
    """Whether a Herald user id is an Entra ID object id (a GUID), i.e. Graph knows the user.
    Users keyed `{channelId}:{from.id}` (Emulator, Web Chat) have no mailbox Herald can watch."""
    return _GUID.fullmatch(user_id) is not None


SubscriptionStatus = Literal["off", "pending", "active", "removing"]
ChangeKind = Literal["change", "lifecycle"]


@dataclass(frozen=True, slots=True)
class GraphSubscription:
    """One user's Graph subscription of one kind: the wish and the subscription's state."""

    user_id: str
    kind: str
    resource: str
    """What Graph watches, e.g. `users/{id}/events`."""
    allowed: bool
    """The user's wish; the subscription follows it."""
    client_state: str = field(repr=False)
    """The secret Graph echoes in every notification of the current subscription."""
    subscription_id: str | None = None
    expires_at: float | None = None
    delta_link: str | None = field(default=None, repr=False)
    """Where a resync starts (a delta query link); None until the first sync."""
    last_error: str | None = None
    attempts: int = 0
    """Failed attempts in a row; the next is not before `next_attempt_at`."""
    next_attempt_at: float = 0.0
    renew_wanted: int = 0
    renew_done: int = 0
    resync_wanted: int = 0
    resync_done: int = 0
    lease_until: float = 0.0
    lease_owner: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def status(self) -> SubscriptionStatus:
        if self.allowed:
            return "active" if self.subscription_id else "pending"
        return "removing" if self.subscription_id else "off"

    @property
    def renew_pending(self) -> bool:
        """Graph asked for a renewal (reauthorizationRequired) not yet made."""
        return self.renew_wanted > self.renew_done

    @property
    def resync_pending(self) -> bool:
        """Changes may have been missed since the last sync."""
        return self.resync_wanted > self.resync_done


class GraphSubscriptionStore(Protocol):
    """Subscriptions by (user, kind), findable by Graph's subscription id, with leases."""

    async def get(self, user_id: str, kind: str) -> GraphSubscription | None: ...

    async def find(self, subscription_id: str) -> GraphSubscription | None:
        """The record currently holding Graph's subscription `subscription_id`."""
        ...

    async def set_allowed(
        self,
        user_id: str,
        kind: str,
        allowed: bool,
        *,
        resource: str,
        client_state: str,
        now: float,
    ) -> GraphSubscription:
        """Record the user's wish, creating the record (with `resource`, `client_state`) if
        there is none. A changed wish is due at once (attempts and backoff reset)."""
        ...

    async def request(
        self,
        subscription_id: str,
        *,
        renew: bool = False,
        resync: bool = False,
        removed: bool = False,
        now: float,
    ) -> GraphSubscription | None:
        """Ask for work on the record holding `subscription_id` (a lifecycle event): a renewal,
        a resync, or — Graph removed it — forget the subscription id. None if no record holds
        that subscription (any more). Due at once."""
        ...

    async def claim(
        self, user_id: str, kind: str, *, owner: str, now: float, until: float
    ) -> GraphSubscription | None:
        """Take the record's lease until `until` if nobody holds it at `now`; None if held."""
        ...

    async def claim_due(
        self, *, owner: str, now: float, until: float, renew_before: float, limit: int
    ) -> list[GraphSubscription]:
        """Lease up to `limit` records that need work at `now` and whose backoff has passed:
        allowed without a subscription, expiring within `renew_before` seconds, a renewal or
        resync requested, no delta link yet; or not allowed but still subscribed."""
        ...

    async def save(
        self, record: GraphSubscription, *, owner: str, now: float, release: bool
    ) -> bool:
        """Write the Graph side of `record` (subscription id, expiry, client state, delta link,
        error and backoff, the counters it has done) if `owner` still holds the lease; the
        wish is never written here. With `release`, give the lease up. False if the lease was
        lost (nothing written)."""
        ...

    async def release(self, user_id: str, kind: str, *, owner: str) -> None: ...

    async def count_active(self) -> int:
        """Records that hold a Graph subscription."""
        ...


@dataclass(frozen=True, slots=True)
class NewGraphChange:
    """A notification Graph delivered, its clientState already checked."""

    subscription_id: str
    user_id: str
    kind: ChangeKind
    payload: dict[str, Any]
    dedupe_key: str | None = None
    """Same key, same change: dropped when seen before (None: never a duplicate)."""


@dataclass(frozen=True, slots=True)
class GraphChange:
    """A notification in the inbox, waiting to be turned into Herald notifications."""

    id: int
    subscription_id: str
    user_id: str
    kind: ChangeKind
    payload: dict[str, Any]
    received_at: float
    attempts: int = 0


class GraphChangeInbox(Protocol):
    """The durable queue between Graph's 202 and the work a notification asks for."""

    async def add(self, changes: Sequence[NewGraphChange], *, now: float) -> int:
        """Store all changes in one atomic write, dropping those whose dedupe key is known;
        returns how many were added."""
        ...

    async def claim(self, *, now: float, until: float, limit: int) -> list[GraphChange]:
        """Lease up to `limit` unprocessed changes that are due, oldest first."""
        ...

    async def done(self, change_id: int, *, now: float) -> None: ...

    async def retry(self, change_id: int, *, at: float, error: str) -> None:
        """Back to the queue, due at `at`, one attempt more."""
        ...

    async def fail(self, change_id: int, *, now: float, error: str) -> None:
        """Give up on a change (kept, marked processed, with the error)."""
        ...

    async def pending(self) -> int:
        """Changes not processed yet."""
        ...

    async def release_leases(self) -> int:
        """At start-up: changes a stopped process had leased are due again."""
        ...

    async def purge(self, *, before: float) -> int:
        """Forget processed changes received before `before` (their dedupe keys too)."""
        ...


@dataclass(frozen=True, slots=True)
class KnownResource:
    """What Herald last saw of a watched item (a calendar event): its change key and summary,
    to tell a real change from a repeat and to say what moved or what was removed."""

    user_id: str
    resource_id: str
    change_key: str | None
    summary: dict[str, Any]
    updated_at: float = 0.0


class GraphResourceStore(Protocol):
    """Known items by (user, resource id)."""

    async def get(self, user_id: str, resource_id: str) -> KnownResource | None: ...

    async def put_many(self, resources: Sequence[KnownResource]) -> None:
        """Create or replace, in one atomic write."""
        ...

    async def delete(self, user_id: str, resource_id: str) -> None: ...

    async def forget_user(self, user_id: str) -> int:
        """Everything known about a user's items (when they stop the subscription)."""
        ...
