"""Browser push subscriptions: the record and the store Protocol every backend implements.

One record per push endpoint (a browser profile's subscription at its push service), owned by
one user; a user may have several (one per browser). The record's id is the SHA-256 of the
endpoint, so re-posting a subscription finds it again and a delivery names its target without
repeating a 500-character URL. A backend posting an endpoint another user holds moves it: the
browser now belongs to whoever subscribed last. A user acting for themselves (the consent
page's link token) cannot: `save(owner_only=True)` refuses another user's endpoint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

__all__ = ["PushSubscription", "SaveOutcome", "SubscriptionStore", "subscription_id"]

SaveOutcome = Literal["created", "updated", "moved"]
"""What `save` did: a new endpoint, a refresh by its owner, or an endpoint taken over."""


def subscription_id(endpoint: str) -> str:
    """The stable id of the subscription at `endpoint` (hex SHA-256 of the URL)."""
    return hashlib.sha256(endpoint.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class PushSubscription:
    """A browser's PushSubscription (RFC 8030 endpoint, RFC 8291 keys) and whose it is."""

    user_id: str
    endpoint: str
    p256dh: str
    """The browser's P-256 public key, base64url (65 bytes decoded, uncompressed point)."""
    auth: str
    """The browser's 16-byte authentication secret, base64url. Never shown by the API."""
    expiration_time: float | None = None
    """When the push service ends the subscription (epoch seconds), if it said."""
    user_agent: str | None = None
    created_at: float = 0.0
    updated_at: float = 0.0

    @property
    def id(self) -> str:
        return subscription_id(self.endpoint)

    def __repr__(self) -> str:  # the keys are secrets of the browser: keep them out of logs
        return f"PushSubscription(id={self.id[:12]}…, user_id={self.user_id!r})"


class SubscriptionStore(Protocol):
    """Push subscriptions, one per endpoint, each owned by one user."""

    async def save(
        self, subscription: PushSubscription, *, owner_only: bool = False
    ) -> SaveOutcome:
        """Create or replace the subscription at its endpoint for `subscription.user_id`.

        Keys, expiration and user agent are replaced; `created_at` is kept unless the endpoint
        moves to another user (then it starts again, as for a new subscription).

        `owner_only` (a user acting for themselves, not a backend): the endpoint must be new or
        already that user's; otherwise `NotOwner` (field `endpoint`) and nothing is written,
        decided as part of the write (of two users racing for a new endpoint, one gets it).
        """
        ...

    async def get(self, subscription_id: str) -> PushSubscription | None: ...

    async def for_user(self, user_id: str) -> list[PushSubscription]:
        """A user's subscriptions, oldest first."""
        ...

    async def targets_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """Subscription ids of each user (users without any are absent), for the router."""
        ...

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], PushSubscription]:
        """Subscriptions by (user_id, subscription id); a pair whose subscription has moved
        to another user (or is gone) is absent, so nothing goes to a browser's new owner by
        way of a delivery planned for its old one."""
        ...

    async def delete(self, subscription_id: str, *, user_id: str | None = None) -> bool:
        """Remove a subscription; with `user_id`, only if it is that user's (as one step, so a
        subscription that moved meanwhile is kept). True if removed."""
        ...
