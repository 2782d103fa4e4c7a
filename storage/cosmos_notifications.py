"""Notifications (posted events) and user history in Cosmos DB.

A notification is one document in `notifications` (partition `/id`); create/unchanged/update
is decided by a read and a conditional write (create, or replace If-Match), retried when a
concurrent post overtook it, so every changed post gets its own version. `pending` mirrors
`expandedVersion < version` so the resume query needs no comparison of two fields.

History entries live in `inbox` (partition `/userId`) and carry a `ttl` of HERALD_HISTORY_DAYS:
Cosmos DB deletes them itself. Queries also filter on `createdAt`, because TTL deletion runs in
the background (and the local stand-in does not run it at all), and `purge_expired` deletes
what the TTL has not removed yet.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Sequence
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.exceptions import CosmosAccessConditionFailedError

from storage.cosmos import CosmosDatabase, bounded, doc_id
from storage.records import InboxChange, InboxEntry, NotificationRecord, PutOutcome

__all__ = ["CosmosInboxStore", "CosmosNotificationStore", "inbox_id", "notification_doc_id"]


def notification_doc_id(notification_id: str) -> str:
    return doc_id("notification", notification_id)


def inbox_id(user_id: str, notification_id: str) -> str:
    return doc_id("inbox", user_id, notification_id)


def _record(doc: dict[str, Any]) -> NotificationRecord:
    return NotificationRecord(
        id=doc["notificationId"],
        version=int(doc["version"]),
        content_hash=doc["contentHash"],
        event=doc["event"],
        type=doc["type"],
        recipients=int(doc["recipients"]),
        expanded_version=int(doc["expandedVersion"]),
        expand_cursor=doc.get("expandCursor"),
        created_at=float(doc["createdAt"]),
        updated_at=float(doc["updatedAt"]),
    )


def _body(doc: dict[str, Any]) -> dict[str, Any]:
    """A read document without the system properties, ready to be written back."""
    return {k: v for k, v in doc.items() if not k.startswith("_")}


class CosmosNotificationStore:
    """NotificationStore on Cosmos DB."""

    def __init__(self, db: CosmosDatabase) -> None:
        self._db = db

    async def put(
        self,
        notification_id: str,
        content_hash: str,
        event: dict[str, Any],
        type_: str,
        recipients: int,
    ) -> tuple[PutOutcome, NotificationRecord]:
        key = notification_doc_id(notification_id)
        container = self._db.container("notifications")
        while True:
            doc = await self._db.read("notifications", key, key)
            now = time.time()
            if doc is None:
                created = await self._db.create(
                    "notifications",
                    {
                        "id": key,
                        "notificationId": notification_id,
                        "version": 1,
                        "contentHash": content_hash,
                        "event": event,
                        "type": type_,
                        "recipients": recipients,
                        "expandedVersion": 0,
                        "expandCursor": None,
                        "pending": True,
                        "createdAt": now,
                        "updatedAt": now,
                    },
                )
                if created is not None:
                    return "created", _record(created)
                continue  # created concurrently: decide again against that
            if doc["contentHash"] == content_hash:
                return "unchanged", _record(doc)
            # A new version restarts audience expansion from the beginning.
            body = _body(doc)
            body.update(
                version=int(doc["version"]) + 1,
                contentHash=content_hash,
                event=event,
                type=type_,
                recipients=recipients,
                expandCursor=None,
                pending=True,
                updatedAt=max(now, float(doc["updatedAt"])),
            )
            try:
                replaced = await container.replace_item(
                    key, body, etag=doc["_etag"], match_condition=MatchConditions.IfNotModified
                )
            except CosmosAccessConditionFailedError:
                continue
            return "updated", _record(replaced)

    async def get(self, notification_id: str) -> NotificationRecord | None:
        key = notification_doc_id(notification_id)
        doc = await self._db.read("notifications", key, key)
        return _record(doc) if doc is not None else None

    async def get_many(self, ids: Sequence[str]) -> dict[str, NotificationRecord]:
        rows = await self._db.query_in(
            "notifications",
            "SELECT * FROM c WHERE ARRAY_CONTAINS(@keys, c.id)",
            [notification_doc_id(i) for i in ids],
        )
        return {r["notificationId"]: _record(r) for r in rows}

    async def types_of(self, ids: Sequence[str]) -> dict[str, str]:
        rows = await self._db.query_in(
            "notifications",
            "SELECT c.notificationId, c.type FROM c WHERE ARRAY_CONTAINS(@keys, c.id)",
            [notification_doc_id(i) for i in ids],
        )
        return {r["notificationId"]: r["type"] for r in rows}

    async def pending_expansion(self) -> list[str]:
        rows = await self._db.query(
            "notifications",
            "SELECT c.notificationId, c.updatedAt FROM c WHERE c.pending = true",
        )
        rows.sort(key=lambda r: r["updatedAt"])
        return [r["notificationId"] for r in rows]

    async def update_if_version(
        self, notification_id: str, version: int, changes: dict[str, Any]
    ) -> bool:
        """Write `changes` if the notification is still at `version` (If-Match, retried)."""
        key = notification_doc_id(notification_id)
        container = self._db.container("notifications")
        while True:
            doc = await self._db.read("notifications", key, key)
            if doc is None or int(doc["version"]) != version:
                return False
            body = _body(doc)
            body.update(changes)
            body["pending"] = int(body["expandedVersion"]) < int(body["version"])
            try:
                await container.replace_item(
                    key, body, etag=doc["_etag"], match_condition=MatchConditions.IfNotModified
                )
            except CosmosAccessConditionFailedError:
                continue
            return True


class CosmosInboxStore:
    """InboxStore on Cosmos DB; entries older than the retention are never returned."""

    def __init__(
        self,
        db: CosmosDatabase,
        notifications: CosmosNotificationStore,
        *,
        retention_seconds: float,
    ) -> None:
        self._db = db
        self._notifications = notifications
        self._retention = retention_seconds

    async def purge_expired(self) -> int:
        rows = await self._db.query(
            "inbox",
            "SELECT c.id, c.userId FROM c WHERE c.createdAt < @since",
            {"@since": time.time() - self._retention},
        )
        deleted = await bounded(self._db.delete("inbox", r["id"], r["userId"]) for r in rows)
        return sum(deleted)

    async def list(self, user_id: str, *, unread_only: bool, limit: int) -> list[InboxEntry]:
        unread = " AND IS_NULL(c.readAt)" if unread_only else ""
        rows = await self._db.query(
            "inbox",
            "SELECT TOP @n c.notificationId, c.createdAt, c.readAt FROM c"
            f" WHERE c.userId = @u AND c.createdAt >= @since{unread} ORDER BY c.createdAt DESC",
            {"@n": limit, "@u": user_id, "@since": time.time() - self._retention},
            partition_key=user_id,
            page_size=limit,
        )
        rows.sort(key=lambda r: (-float(r["createdAt"]), r["notificationId"]))
        records = await self._notifications.get_many([r["notificationId"] for r in rows])
        return [
            InboxEntry(
                notification_id=r["notificationId"],
                created_at=float(r["createdAt"]),
                read_at=r.get("readAt"),
                event=records[r["notificationId"]].event,
                version=records[r["notificationId"]].version,
            )
            for r in rows
            if r["notificationId"] in records
        ]

    async def unread_counts(self, user_ids: Sequence[str]) -> dict[str, int]:
        ids = list(dict.fromkeys(user_ids))
        since = time.time() - self._retention
        # One count per user, in the user's own partition (an indexed, single-partition query).
        counts = await bounded(
            self._db.values(
                "inbox",
                "SELECT VALUE COUNT(1) FROM c WHERE c.userId = @u AND c.createdAt >= @since"
                " AND IS_NULL(c.readAt)",
                {"@u": user_id, "@since": since},
                partition_key=user_id,
            )
            for user_id in ids
        )
        return {
            user_id: int(found[0])
            for user_id, found in zip(ids, counts, strict=True)
            if found and found[0]
        }

    async def contains(self, user_id: str, notification_id: str) -> bool:
        doc = await self._db.read("inbox", inbox_id(user_id, notification_id), user_id)
        return doc is not None and float(doc["createdAt"]) >= time.time() - self._retention

    async def types(self, user_id: str) -> builtins.list[str]:
        rows = await self._db.values(
            "inbox",
            "SELECT VALUE c.notificationId FROM c WHERE c.userId = @u AND c.createdAt >= @since",
            {"@u": user_id, "@since": time.time() - self._retention},
            partition_key=user_id,
        )
        types = await self._notifications.types_of(rows)
        return sorted(set(types.values()))

    async def mark_all_read(self, user_id: str) -> int:
        # Entries past the retention are gone for the user: they are neither marked nor counted.
        now = time.time()
        rows = await self._db.query(
            "inbox",
            "SELECT c.id FROM c WHERE c.userId = @u AND IS_NULL(c.readAt)"
            " AND c.createdAt >= @since",
            {"@u": user_id, "@since": now - self._retention},
            partition_key=user_id,
        )
        container = self._db.container("inbox")
        await bounded(
            container.patch_item(
                r["id"], partition_key=user_id,
                patch_operations=[{"op": "set", "path": "/readAt", "value": now}],
            )
            for r in rows
        )
        return len(rows)

    async def mark_read(self, user_id: str, notification_id: str) -> float | None:
        key = inbox_id(user_id, notification_id)
        container = self._db.container("inbox")
        while True:
            now = time.time()
            doc = await self._db.read("inbox", key, user_id)
            if doc is None or float(doc["createdAt"]) < now - self._retention:
                return None
            if doc.get("readAt") is not None:
                return float(doc["readAt"])
            try:
                await container.patch_item(
                    key, partition_key=user_id,
                    patch_operations=[{"op": "set", "path": "/readAt", "value": now}],
                    etag=doc["_etag"], match_condition=MatchConditions.IfNotModified,
                )
            except CosmosAccessConditionFailedError:
                continue  # read meanwhile (or changed): the first time stays
            return now

    async def changes(
        self, user_id: str, since: float, limit: int
    ) -> builtins.list[InboxChange]:
        # One user's entries within the retention (one partition); a notification's update is
        # a change of the entry too, so the notifications are read with them.
        rows = await self._db.query(
            "inbox",
            "SELECT c.notificationId, c.createdAt, c.readAt FROM c"
            " WHERE c.userId = @u AND c.createdAt >= @since",
            {"@u": user_id, "@since": time.time() - self._retention},
            partition_key=user_id,
        )
        records = await self._notifications.get_many([r["notificationId"] for r in rows])
        found: builtins.list[InboxChange] = []
        for r in rows:
            record = records.get(r["notificationId"])
            if record is None:
                continue
            changed_at = max(
                float(r["createdAt"]), float(r.get("readAt") or 0.0), record.updated_at
            )
            if changed_at <= since:
                continue
            entry = InboxEntry(
                notification_id=r["notificationId"],
                created_at=float(r["createdAt"]),
                read_at=r.get("readAt"),
                event=record.event,
                version=record.version,
            )
            found.append(InboxChange(entry=entry, changed_at=changed_at))
        found.sort(key=lambda c: (c.changed_at, c.entry.notification_id))
        return found[:limit]
