"""Browser push subscriptions in Cosmos DB (`pushSubscriptions`, partition `/userId`).

A subscription lives in its owner's partition. When an endpoint moves to another user (a shared
browser), the new owner's document is written first and the old one deleted after; should a
crash fall between the two, the newer document (by `updatedAt`) is the owner everywhere a
subscription is looked up by id (`get`, `get_many`, `delete`), the older one is ignored and
removed by the next save of that endpoint.

Who owns an endpoint is decided by its claim in `owners` (storage/cosmos_owners.py), made
before the document is written: a user saving for themselves (`owner_only`) is refused there
when the endpoint is another user's, with nothing written.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from storage.cosmos import CosmosDatabase, bounded, doc_id
from storage.cosmos_owners import OwnerClaims
from storage.subscriptions import PushSubscription, SaveOutcome

__all__ = ["CosmosSubscriptionStore"]


def _record(doc: dict[str, Any]) -> PushSubscription:
    return PushSubscription(
        user_id=doc["userId"],
        endpoint=doc["endpoint"],
        p256dh=doc["p256dh"],
        auth=doc["auth"],
        expiration_time=doc.get("expirationTime"),
        user_agent=doc.get("userAgent"),
        created_at=float(doc["createdAt"]),
        updated_at=float(doc["updatedAt"]),
    )


def _newest(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The owning document of each subscription id (the newest, should there be two)."""
    owners: dict[str, dict[str, Any]] = {}
    for doc in sorted(docs, key=lambda d: (float(d["updatedAt"]), d["userId"])):
        owners[doc["subscriptionId"]] = doc
    return owners


class CosmosSubscriptionStore:
    """SubscriptionStore on Cosmos DB."""

    def __init__(self, db: CosmosDatabase, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._owners = OwnerClaims(
            db, "pushEndpoint", "endpoint", "this browser is subscribed for another user"
        )

    async def _by_ids(self, ids: Sequence[str]) -> list[dict[str, Any]]:
        return await self._db.query_in(
            "pushSubscriptions",
            "SELECT * FROM c WHERE ARRAY_CONTAINS(@keys, c.subscriptionId)",
            list(ids),
        )

    async def save(
        self, subscription: PushSubscription, *, owner_only: bool = False
    ) -> SaveOutcome:
        now = self._clock()
        key = subscription.id
        existing = await self._by_ids([key])
        owner = _newest(existing).get(key)
        # Decided by the endpoint's claim (NotOwner with `owner_only` if another user's).
        claimed = await self._owners.claim(
            key, subscription.user_id, owner_only=owner_only,
            unclaimed_owner=owner["userId"] if owner else None,
        )
        mine = claimed.previous in (None, subscription.user_id)
        outcome: SaveOutcome
        if mine and owner is None:
            outcome = "created"
        elif mine and owner is not None and owner["userId"] == subscription.user_id:
            outcome = "updated"
        else:
            outcome = "moved"
        created_at = float(owner["createdAt"]) if outcome == "updated" and owner else now
        await self._db.container("pushSubscriptions").upsert_item(
            {
                "id": doc_id("push", key),
                "subscriptionId": key,
                "userId": subscription.user_id,
                "endpoint": subscription.endpoint,
                "p256dh": subscription.p256dh,
                "auth": subscription.auth,
                "expirationTime": subscription.expiration_time,
                "userAgent": subscription.user_agent,
                "createdAt": created_at,
                "updatedAt": max(now, *(float(d["updatedAt"]) for d in existing), 0.0),
            }
        )
        await bounded(
            self._db.delete("pushSubscriptions", d["id"], d["userId"])
            for d in existing
            if d["userId"] != subscription.user_id
        )
        return outcome

    async def get(self, subscription_id: str) -> PushSubscription | None:
        owner = _newest(await self._by_ids([subscription_id])).get(subscription_id)
        return _record(owner) if owner is not None else None

    async def for_user(self, user_id: str) -> list[PushSubscription]:
        docs = await self._db.query(
            "pushSubscriptions", "SELECT * FROM c WHERE c.userId = @u", {"@u": user_id},
            partition_key=user_id,
        )
        docs.sort(key=lambda d: (float(d["createdAt"]), d["subscriptionId"]))
        return [_record(d) for d in docs]

    async def targets_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        rows = await self._db.query_in(
            "pushSubscriptions",
            "SELECT c.userId, c.subscriptionId, c.createdAt FROM c"
            " WHERE ARRAY_CONTAINS(@keys, c.userId)",
            list(user_ids),
        )
        rows.sort(key=lambda r: (r["userId"], float(r["createdAt"]), r["subscriptionId"]))
        result: dict[str, list[str]] = {}
        for r in rows:
            result.setdefault(r["userId"], []).append(r["subscriptionId"])
        return result

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], PushSubscription]:
        wanted = set(keys)
        owners = _newest(await self._by_ids([key for _, key in keys]))
        result: dict[tuple[str, str], PushSubscription] = {}
        for key, doc in owners.items():
            pair = (doc["userId"], key)
            if pair in wanted:  # moved to someone else: not this delivery's target
                result[pair] = _record(doc)
        return result

    async def delete(self, subscription_id: str, *, user_id: str | None = None) -> bool:
        docs = await self._by_ids([subscription_id])
        owner = _newest(docs).get(subscription_id)
        if owner is None or (user_id is not None and owner["userId"] != user_id):
            return False
        # The claim first, and only if it is `user_id`'s; then only the documents read above
        # (a copy written since, when the endpoint moved meanwhile, is its new owner's).
        if not await self._owners.release(
            subscription_id, user_id, unclaimed_owner=owner["userId"]
        ):
            return False
        mine = [d for d in docs if user_id is None or d["userId"] == user_id]
        removed = await bounded(
            self._db.delete("pushSubscriptions", d["id"], d["userId"]) for d in mine
        )
        return any(removed)
