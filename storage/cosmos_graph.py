"""Graph subscriptions, the change inbox and known resources in Cosmos DB.

Leases are conditional writes: a record is read, checked and written back with If-Match on the
etag it was read with, so of two instances claiming one record only one write lands (the other
gets 412 and looks again). A holder's save is refused once its lease was taken over.

Change notifications (`graphChanges`, partition `/id`) are ordered by a numeric id made from the
clock (milliseconds, 12 bits of a per-process counter below them); a change with a dedupe key
gets the key's hash as its document id, so storing a repeat is a 409 and it is dropped on the way
in without a separate index (and purging the change frees the key).
"""

from __future__ import annotations

import itertools
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.exceptions import CosmosAccessConditionFailedError, CosmosResourceExistsError

from storage.cosmos import CosmosDatabase, bounded, doc_id
from storage.graph_subscriptions import (
    GraphChange,
    GraphSubscription,
    KnownResource,
    NewGraphChange,
)

__all__ = ["CosmosGraphChangeInbox", "CosmosGraphResourceStore", "CosmosGraphSubscriptionStore"]

# GraphSubscription field → document property.
_FIELDS: dict[str, str] = {
    "user_id": "userId",
    "kind": "kind",
    "resource": "resource",
    "allowed": "allowed",
    "client_state": "clientState",
    "subscription_id": "subscriptionId",
    "expires_at": "expiresAt",
    "delta_link": "deltaLink",
    "last_error": "lastError",
    "attempts": "attempts",
    "next_attempt_at": "nextAttemptAt",
    "renew_wanted": "renewWanted",
    "renew_done": "renewDone",
    "resync_wanted": "resyncWanted",
    "resync_done": "resyncDone",
    "lease_until": "leaseUntil",
    "lease_owner": "leaseOwner",
    "created_at": "createdAt",
    "updated_at": "updatedAt",
}


def _subscription(doc: dict[str, Any]) -> GraphSubscription:
    values: dict[str, Any] = {name: doc.get(prop) for name, prop in _FIELDS.items()}
    for name in ("attempts", "renew_wanted", "renew_done", "resync_wanted", "resync_done"):
        values[name] = int(values[name] or 0)
    for name in ("next_attempt_at", "lease_until", "created_at", "updated_at"):
        values[name] = float(values[name] or 0.0)
    values["allowed"] = bool(values["allowed"])
    return GraphSubscription(**values)


def _doc(record: GraphSubscription) -> dict[str, Any]:
    values = asdict(record)
    body = {prop: values[name] for name, prop in _FIELDS.items()}
    body["id"] = doc_id("graph-subscription", record.user_id, record.kind)
    return body


def _needs_work(r: GraphSubscription, now: float, renew_before: float) -> bool:
    if r.allowed:
        return bool(
            r.subscription_id is None
            or r.expires_at is None
            or r.expires_at - now <= renew_before
            or r.renew_pending
            or r.resync_pending
            or r.delta_link is None
        )
    return r.subscription_id is not None


class CosmosGraphSubscriptionStore:
    """GraphSubscriptionStore on Cosmos DB (`graphSubscriptions`, partition `/userId`)."""

    def __init__(self, db: CosmosDatabase) -> None:
        self._db = db

    async def _read(self, user_id: str, kind: str) -> dict[str, Any] | None:
        return await self._db.read(
            "graphSubscriptions", doc_id("graph-subscription", user_id, kind), user_id
        )

    async def _write(self, doc: dict[str, Any], record: GraphSubscription) -> bool:
        """Replace `doc` with `record` if nobody wrote it since it was read."""
        try:
            await self._db.container("graphSubscriptions").replace_item(
                doc["id"], _doc(record), etag=doc["_etag"],
                match_condition=MatchConditions.IfNotModified,
            )
        except CosmosAccessConditionFailedError:
            return False
        return True

    async def _update(
        self,
        read: Callable[[], Awaitable[dict[str, Any] | None]],
        change: Callable[[GraphSubscription], GraphSubscription | None],
    ) -> GraphSubscription | None:
        """Read, change (None: leave it) and write back If-Match, again until not overtaken."""
        while True:
            doc = await read()
            if doc is None:
                return None
            changed = change(_subscription(doc))
            if changed is None:
                return None
            if await self._write(doc, changed):
                return changed

    async def get(self, user_id: str, kind: str) -> GraphSubscription | None:
        doc = await self._read(user_id, kind)
        return _subscription(doc) if doc is not None else None

    async def _find_doc(self, subscription_id: str) -> dict[str, Any] | None:
        rows = await self._db.query(
            "graphSubscriptions",
            "SELECT * FROM c WHERE c.subscriptionId = @s",
            {"@s": subscription_id},
        )
        return rows[0] if rows else None

    async def find(self, subscription_id: str) -> GraphSubscription | None:
        doc = await self._find_doc(subscription_id)
        return _subscription(doc) if doc is not None else None

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
        while True:
            doc = await self._read(user_id, kind)
            if doc is None:
                record = GraphSubscription(
                    user_id=user_id, kind=kind, resource=resource, allowed=allowed,
                    client_state=client_state, created_at=now, updated_at=now,
                )
                try:
                    await self._db.container("graphSubscriptions").create_item(_doc(record))
                except CosmosResourceExistsError:
                    continue
                return record
            current = _subscription(doc)
            record = GraphSubscription(
                **{
                    **asdict(current),
                    "allowed": allowed,
                    "attempts": 0,
                    "next_attempt_at": 0.0,
                    "last_error": None,
                    "updated_at": now,
                }
            )
            if await self._write(doc, record):
                return record

    async def request(
        self,
        subscription_id: str,
        *,
        renew: bool = False,
        resync: bool = False,
        removed: bool = False,
        now: float,
    ) -> GraphSubscription | None:
        def change(r: GraphSubscription) -> GraphSubscription:
            values = asdict(r)
            values.update(
                renew_wanted=r.renew_wanted + int(renew),
                resync_wanted=r.resync_wanted + int(resync),
                attempts=0,
                next_attempt_at=0.0,
                updated_at=now,
            )
            if removed:
                values.update(subscription_id=None, expires_at=None)
            return GraphSubscription(**values)

        return await self._update(lambda: self._find_doc(subscription_id), change)

    async def claim(
        self, user_id: str, kind: str, *, owner: str, now: float, until: float
    ) -> GraphSubscription | None:
        def change(r: GraphSubscription) -> GraphSubscription | None:
            if not (r.lease_until < now or r.lease_owner is None):
                return None
            return GraphSubscription(**{**asdict(r), "lease_until": until, "lease_owner": owner})

        return await self._update(lambda: self._read(user_id, kind), change)

    async def claim_due(
        self, *, owner: str, now: float, until: float, renew_before: float, limit: int
    ) -> list[GraphSubscription]:
        rows = await self._db.query(
            "graphSubscriptions",
            "SELECT * FROM c WHERE (c.leaseUntil < @now OR IS_NULL(c.leaseOwner))"
            " AND c.nextAttemptAt <= @now",
            {"@now": now},
        )
        candidates = [
            (doc, r) for doc in rows
            if _needs_work(r := _subscription(doc), now, renew_before)
        ]
        candidates.sort(
            key=lambda pair: (pair[1].next_attempt_at, pair[1].expires_at or 0.0)
        )
        claimed: list[GraphSubscription] = []
        for doc, record in candidates:
            if len(claimed) >= limit:
                break
            leased = GraphSubscription(
                **{**asdict(record), "lease_until": until, "lease_owner": owner}
            )
            if await self._write(doc, leased):  # 412: another instance took it first
                claimed.append(leased)
        return sorted(claimed, key=lambda r: (r.next_attempt_at, r.user_id))

    async def save(
        self, record: GraphSubscription, *, owner: str, now: float, release: bool
    ) -> bool:
        def change(r: GraphSubscription) -> GraphSubscription | None:
            if r.lease_owner != owner:
                return None
            values = asdict(r)  # the wish (`allowed`) and the requests stay as stored
            values.update(
                client_state=record.client_state,
                subscription_id=record.subscription_id,
                expires_at=record.expires_at,
                delta_link=record.delta_link,
                last_error=record.last_error,
                attempts=record.attempts,
                next_attempt_at=record.next_attempt_at,
                renew_done=max(r.renew_done, record.renew_done),
                resync_done=max(r.resync_done, record.resync_done),
                updated_at=now,
            )
            if release:
                values.update(lease_until=0.0, lease_owner=None)
            return GraphSubscription(**values)

        saved = await self._update(lambda: self._read(record.user_id, record.kind), change)
        return saved is not None

    async def release(self, user_id: str, kind: str, *, owner: str) -> None:
        def change(r: GraphSubscription) -> GraphSubscription | None:
            if r.lease_owner != owner:
                return None
            return GraphSubscription(**{**asdict(r), "lease_until": 0.0, "lease_owner": None})

        await self._update(lambda: self._read(user_id, kind), change)

    async def count_active(self) -> int:
        rows = await self._db.values(
            "graphSubscriptions", "SELECT VALUE COUNT(1) FROM c WHERE IS_STRING(c.subscriptionId)"
        )
        return int(sum(int(n) for n in rows))


def _change(doc: dict[str, Any]) -> GraphChange:
    return GraphChange(
        id=int(doc["changeId"]),
        subscription_id=doc["subscriptionId"],
        user_id=doc["userId"],
        kind=doc["kind"],
        payload=doc["payload"],
        received_at=float(doc["receivedAt"]),
        attempts=int(doc["attempts"]),
    )


class CosmosGraphChangeInbox:
    """GraphChangeInbox on Cosmos DB."""

    def __init__(self, db: CosmosDatabase) -> None:
        self._db = db
        self._counter = itertools.count()

    def _next_id(self) -> int:
        # Milliseconds since the epoch (41 bits) and 12 bits of counter: < 2**53, so exact
        # as a JSON number, and increasing within this process.
        return (int(time.time() * 1000) << 12) | (next(self._counter) & 0xFFF)

    async def add(self, changes: Sequence[NewGraphChange], *, now: float) -> int:
        added = 0
        container = self._db.container("graphChanges")
        for change in changes:  # in order: the ids say which came first
            key = (
                doc_id("graph-change", change.dedupe_key)
                if change.dedupe_key is not None
                else uuid.uuid4().hex
            )
            try:
                await container.create_item(
                    {
                        "id": key,
                        "changeId": self._next_id(),
                        "subscriptionId": change.subscription_id,
                        "userId": change.user_id,
                        "kind": change.kind,
                        "payload": change.payload,
                        "dedupeKey": change.dedupe_key,
                        "receivedAt": now,
                        "dueAt": now,
                        "leaseUntil": 0.0,
                        "attempts": 0,
                        "processedAt": None,
                        "lastError": None,
                    }
                )
            except CosmosResourceExistsError:
                continue  # seen before: a repeat
            added += 1
        return added

    async def _by_change_id(self, change_id: int) -> dict[str, Any] | None:
        rows = await self._db.query(
            "graphChanges", "SELECT * FROM c WHERE c.changeId = @i", {"@i": change_id}
        )
        return rows[0] if rows else None

    async def _patch(self, change_id: int, operations: list[dict[str, Any]]) -> None:
        doc = await self._by_change_id(change_id)
        if doc is not None:
            await self._db.container("graphChanges").patch_item(
                doc["id"], partition_key=doc["id"], patch_operations=operations
            )

    async def claim(self, *, now: float, until: float, limit: int) -> list[GraphChange]:
        rows = await self._db.query(
            "graphChanges",
            "SELECT TOP @n * FROM c WHERE IS_NULL(c.processedAt) AND c.dueAt <= @now"
            " AND c.leaseUntil < @now ORDER BY c.changeId",
            {"@n": limit, "@now": now},
            page_size=limit,
        )
        container = self._db.container("graphChanges")

        async def take(doc: dict[str, Any]) -> GraphChange | None:
            try:
                await container.patch_item(
                    doc["id"], partition_key=doc["id"],
                    patch_operations=[{"op": "set", "path": "/leaseUntil", "value": until}],
                    etag=doc["_etag"], match_condition=MatchConditions.IfNotModified,
                )
            except CosmosAccessConditionFailedError:
                return None  # another instance leased it first
            return _change(doc)

        taken = await bounded(take(doc) for doc in rows)
        return sorted((c for c in taken if c is not None), key=lambda c: c.id)

    async def done(self, change_id: int, *, now: float) -> None:
        await self._patch(
            change_id,
            [
                {"op": "set", "path": "/processedAt", "value": now},
                {"op": "set", "path": "/leaseUntil", "value": 0.0},
            ],
        )

    async def retry(self, change_id: int, *, at: float, error: str) -> None:
        await self._patch(
            change_id,
            [
                {"op": "set", "path": "/dueAt", "value": at},
                {"op": "set", "path": "/leaseUntil", "value": 0.0},
                {"op": "incr", "path": "/attempts", "value": 1},
                {"op": "set", "path": "/lastError", "value": error[:2000]},
            ],
        )

    async def fail(self, change_id: int, *, now: float, error: str) -> None:
        await self._patch(
            change_id,
            [
                {"op": "set", "path": "/processedAt", "value": now},
                {"op": "set", "path": "/leaseUntil", "value": 0.0},
                {"op": "incr", "path": "/attempts", "value": 1},
                {"op": "set", "path": "/lastError", "value": error[:2000]},
            ],
        )

    async def pending(self) -> int:
        rows = await self._db.values(
            "graphChanges", "SELECT VALUE COUNT(1) FROM c WHERE IS_NULL(c.processedAt)"
        )
        return int(sum(int(n) for n in rows))

    async def release_leases(self) -> int:
        rows = await self._db.query(
            "graphChanges",
            "SELECT c.id FROM c WHERE IS_NULL(c.processedAt) AND c.leaseUntil > 0",
        )
        container = self._db.container("graphChanges")
        await bounded(
            container.patch_item(
                r["id"], partition_key=r["id"],
                patch_operations=[{"op": "set", "path": "/leaseUntil", "value": 0.0}],
            )
            for r in rows
        )
        return len(rows)

    async def purge(self, *, before: float) -> int:
        rows = await self._db.query(
            "graphChanges",
            "SELECT c.id FROM c WHERE IS_NUMBER(c.processedAt) AND c.receivedAt < @before",
            {"@before": before},
        )
        removed = await bounded(self._db.delete("graphChanges", r["id"], r["id"]) for r in rows)
        return sum(removed)


class CosmosGraphResourceStore:
    """GraphResourceStore on Cosmos DB (`graphResources`, partition `/userId`)."""

    def __init__(self, db: CosmosDatabase) -> None:
        self._db = db

    async def get(self, user_id: str, resource_id: str) -> KnownResource | None:
        doc = await self._db.read(
            "graphResources", doc_id("graph-resource", user_id, resource_id), user_id
        )
        if doc is None:
            return None
        return KnownResource(
            user_id=doc["userId"],
            resource_id=doc["resourceId"],
            change_key=doc.get("changeKey"),
            summary=doc["summary"],
            updated_at=float(doc["updatedAt"]),
        )

    async def put_many(self, resources: Sequence[KnownResource]) -> None:
        container = self._db.container("graphResources")
        await bounded(
            container.upsert_item(
                {
                    "id": doc_id("graph-resource", r.user_id, r.resource_id),
                    "userId": r.user_id,
                    "resourceId": r.resource_id,
                    "changeKey": r.change_key,
                    "summary": r.summary,
                    "updatedAt": r.updated_at,
                }
            )
            for r in resources
        )

    async def delete(self, user_id: str, resource_id: str) -> None:
        await self._db.delete(
            "graphResources", doc_id("graph-resource", user_id, resource_id), user_id
        )

    async def forget_user(self, user_id: str) -> int:
        rows = await self._db.query(
            "graphResources", "SELECT c.id FROM c WHERE c.userId = @u", {"@u": user_id},
            partition_key=user_id,
        )
        removed = await bounded(self._db.delete("graphResources", r["id"], user_id) for r in rows)
        return sum(removed)
