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

from notifications.event import StoredEvent
from storage.cosmos import CosmosDatabase, bounded, doc_id
from storage.records import (
    Acknowledgement,
    Engagement,
    EngagementBucket,
    EngagementCounts,
    InboxChange,
    InboxEntry,
    NotificationRecord,
    PutOutcome,
)

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
        event=StoredEvent.from_document(doc["event"]),
        type=doc["type"],
        recipients=int(doc["recipients"]),
        expanded_version=int(doc["expandedVersion"]),
        expand_cursor=doc.get("expandCursor"),
        created_at=float(doc["createdAt"]),
        updated_at=float(doc["updatedAt"]),
        recalled_at=None if doc.get("recalledAt") is None else float(doc["recalledAt"]),
    )


def _entry(row: dict[str, Any], record: NotificationRecord) -> InboxEntry:
    return InboxEntry(
        notification_id=row["notificationId"],
        created_at=float(row["createdAt"]),
        read_at=row.get("readAt"),
        event=record.event.document(),
        version=record.version,
        read_via=row.get("readVia"),
        acknowledged_at=row.get("acknowledgedAt"),
        acknowledged_via=row.get("acknowledgedVia"),
        recalled=record.recalled,
    )


_ENTRY_FIELDS = (
    "c.notificationId, c.createdAt, c.readAt, c.readVia, c.acknowledgedAt, c.acknowledgedVia"
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
        event: StoredEvent,
        type_: str,
        recipients: int,
    ) -> tuple[PutOutcome, NotificationRecord]:
        key = notification_doc_id(notification_id)
        container = self._db.container("notifications")
        document = event.document()
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
                        "event": document,
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
                event=document,
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

    async def recall(self, notification_id: str, at: float) -> NotificationRecord | None:
        key = notification_doc_id(notification_id)
        container = self._db.container("notifications")
        while True:
            doc = await self._db.read("notifications", key, key)
            if doc is None:
                return None
            if doc.get("recalledAt") is not None:
                return _record(doc)
            body = _body(doc)
            # Expansion ends here: the latest version counts as expanded, never resumed.
            body.update(
                recalledAt=at,
                updatedAt=max(at, float(doc["updatedAt"])),
                expandedVersion=int(doc["version"]),
                expandCursor=None,
                pending=False,
            )
            try:
                replaced = await container.replace_item(
                    key, body, etag=doc["_etag"], match_condition=MatchConditions.IfNotModified
                )
            except CosmosAccessConditionFailedError:
                continue
            return _record(replaced)

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
        # Entries of recalled notifications are marked (`withdraw`): asked for a few more, so
        # that leaving them out still fills the page as a rule.
        rows = await self._db.query(
            "inbox",
            f"SELECT TOP @n {_ENTRY_FIELDS}, c.recalled FROM c"
            f" WHERE c.userId = @u AND c.createdAt >= @since{unread} ORDER BY c.createdAt DESC",
            {"@n": limit + 20, "@u": user_id, "@since": time.time() - self._retention},
            partition_key=user_id,
            page_size=limit + 20,
        )
        rows = [r for r in rows if not r.get("recalled")]
        rows.sort(key=lambda r: (-float(r["createdAt"]), r["notificationId"]))
        records = await self._notifications.get_many([r["notificationId"] for r in rows])
        entries = [
            _entry(r, records[r["notificationId"]]) for r in rows if r["notificationId"] in records
        ]
        return [e for e in entries if not e.recalled][:limit]

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

    async def mark_all_read(self, user_id: str, via: str = "chat") -> int:
        # Entries past the retention are gone for the user: they are neither marked nor counted;
        # recalled ones are no longer in the inbox.
        now = time.time()
        rows = await self._db.query(
            "inbox",
            "SELECT c.id, c.recalled FROM c WHERE c.userId = @u AND IS_NULL(c.readAt)"
            " AND c.createdAt >= @since",
            {"@u": user_id, "@since": now - self._retention},
            partition_key=user_id,
        )
        rows = [r for r in rows if not r.get("recalled")]
        container = self._db.container("inbox")
        await bounded(
            container.patch_item(
                r["id"], partition_key=user_id,
                patch_operations=[
                    {"op": "set", "path": "/readAt", "value": now},
                    {"op": "set", "path": "/readVia", "value": via},
                ],
            )
            for r in rows
        )
        return len(rows)

    async def _mark_read(
        self, user_id: str, notification_id: str, via: str
    ) -> tuple[float, bool] | None:
        """(when it was read, whether this call did it), or None without such an entry."""
        key = inbox_id(user_id, notification_id)
        container = self._db.container("inbox")
        while True:
            now = time.time()
            doc = await self._db.read("inbox", key, user_id)
            if doc is None or float(doc["createdAt"]) < now - self._retention:
                return None
            if doc.get("recalled"):
                return None  # withdrawn from the inbox: nothing to read
            if doc.get("readAt") is not None:
                return float(doc["readAt"]), False
            try:
                await container.patch_item(
                    key, partition_key=user_id,
                    patch_operations=[
                        {"op": "set", "path": "/readAt", "value": now},
                        {"op": "set", "path": "/readVia", "value": via},
                    ],
                    etag=doc["_etag"], match_condition=MatchConditions.IfNotModified,
                )
            except CosmosAccessConditionFailedError:
                continue  # read meanwhile (or changed): the first time stays
            return now, True

    async def mark_read(
        self, user_id: str, notification_id: str, via: str = "inbox"
    ) -> float | None:
        marked = await self._mark_read(user_id, notification_id, via)
        return None if marked is None else marked[0]

    async def mark_all_read_each(
        self, user_ids: Sequence[str], via: str
    ) -> dict[str, int]:
        # Each person's entries are in their own partition: one query and patches each.
        unique = list(dict.fromkeys(user_ids))
        counts = await bounded(self.mark_all_read(u, via) for u in unique)
        return {u: n for u, n in zip(unique, counts, strict=True) if n}

    async def mark_read_each(
        self, reads: Sequence[tuple[str, str, str]]
    ) -> builtins.list[float | None]:
        # One point read and patch per entry, each in its person's partition: concurrently.
        results = await bounded(self._mark_read(u, n, via) for u, n, via in reads)
        return [None if marked is None else marked[0] for marked in results]

    async def mark_read_many(
        self, user_id: str, notification_ids: Sequence[str], via: str
    ) -> builtins.list[str]:
        unique = list(dict.fromkeys(notification_ids))
        results = await bounded(self._mark_read(user_id, nid, via) for nid in unique)
        return [nid for nid, marked in zip(unique, results, strict=True) if marked and marked[1]]

    async def acknowledge(
        self, user_id: str, notification_id: str, via: str
    ) -> Acknowledgement | None:
        key = inbox_id(user_id, notification_id)
        container = self._db.container("inbox")
        while True:
            now = time.time()
            doc = await self._db.read("inbox", key, user_id)
            if doc is None or float(doc["createdAt"]) < now - self._retention:
                return None
            if doc.get("acknowledgedAt") is not None:
                return Acknowledgement(
                    float(doc["acknowledgedAt"]), str(doc.get("acknowledgedVia")), False
                )
            operations = [
                {"op": "set", "path": "/acknowledgedAt", "value": now},
                {"op": "set", "path": "/acknowledgedVia", "value": via},
            ]
            if doc.get("readAt") is None:
                operations += [
                    {"op": "set", "path": "/readAt", "value": now},
                    {"op": "set", "path": "/readVia", "value": via},
                ]
            try:
                await container.patch_item(
                    key, partition_key=user_id, patch_operations=operations,
                    etag=doc["_etag"], match_condition=MatchConditions.IfNotModified,
                )
            except CosmosAccessConditionFailedError:
                continue  # acknowledged (or read) meanwhile: decide again
            return Acknowledgement(now, via, True)

    async def entry(self, user_id: str, notification_id: str) -> InboxEntry | None:
        doc = await self._db.read("inbox", inbox_id(user_id, notification_id), user_id)
        if doc is None or float(doc["createdAt"]) < time.time() - self._retention:
            return None
        record = await self._notifications.get(notification_id)
        return None if record is None else _entry(doc, record)

    async def unread_counts(self, user_ids: Sequence[str]) -> dict[str, int]:
        since = time.time() - self._retention

        async def count(user_id: str) -> int:
            rows = await self._db.query(
                "inbox",
                "SELECT c.recalled FROM c WHERE c.userId = @u AND IS_NULL(c.readAt)"
                " AND c.createdAt >= @since",
                {"@u": user_id, "@since": since},
                partition_key=user_id,
            )
            return sum(1 for r in rows if not r.get("recalled"))

        unique = list(dict.fromkeys(user_ids))
        counts = await bounded(count(u) for u in unique)
        return {u: n for u, n in zip(unique, counts, strict=True) if n}

    async def engagement_counts(self, notification_id: str) -> EngagementCounts:
        recipients = read = acknowledged = 0
        read_via: dict[str, int] = {}
        ack_via: dict[str, int] = {}
        # The stand-in (and this SDK's cross-partition queries) have no GROUP BY: a page at a
        # time, counted here.
        async for page in self._db.pages(
            "inbox",
            "SELECT c.readAt, c.readVia, c.acknowledgedAt, c.acknowledgedVia FROM c"
            " WHERE c.notificationId = @n AND c.createdAt >= @since",
            {"@n": notification_id, "@since": time.time() - self._retention},
            page_size=1000,
        ):
            for r in page:
                recipients += 1
                if r.get("readAt") is not None:
                    read += 1
                    via = str(r.get("readVia") or "unknown")
                    read_via[via] = read_via.get(via, 0) + 1
                if r.get("acknowledgedAt") is not None:
                    acknowledged += 1
                    via = str(r.get("acknowledgedVia") or "unknown")
                    ack_via[via] = ack_via.get(via, 0) + 1
        return EngagementCounts(recipients, read, acknowledged, read_via, ack_via)

    async def engagement_of(
        self, notification_id: str, user_ids: Sequence[str]
    ) -> dict[str, Engagement]:
        rows = await self._db.query_in(
            "inbox",
            "SELECT c.userId, c.readAt, c.readVia, c.acknowledgedAt, c.acknowledgedVia FROM c"
            " WHERE c.notificationId = @n AND ARRAY_CONTAINS(@keys, c.userId)",
            user_ids,
            {"@n": notification_id},
        )
        return {
            r["userId"]: Engagement(
                r["userId"], r.get("readAt"), r.get("readVia"),
                r.get("acknowledgedAt"), r.get("acknowledgedVia"),
            )
            for r in rows
        }

    async def engagement_timeline(
        self, notification_id: str, *, bucket_seconds: float
    ) -> builtins.list[EngagementBucket]:
        counts: dict[int, dict[str, int]] = {}
        async for page in self._db.pages(
            "inbox",
            "SELECT c.readAt, c.acknowledgedAt FROM c WHERE c.notificationId = @n",
            {"@n": notification_id},
            page_size=1000,
        ):
            for r in page:
                for field, name in (("readAt", "read"), ("acknowledgedAt", "acknowledged")):
                    if r.get(field) is not None:
                        per = counts.setdefault(int(float(r[field]) // bucket_seconds), {})
                        per[name] = per.get(name, 0) + 1
        return [
            EngagementBucket(start=bucket * bucket_seconds, **counts[bucket])
            for bucket in sorted(counts)
        ]

    async def unread_recipients(
        self, notification_id: str, *, created_before: float, limit: int
    ) -> builtins.list[str]:
        found: builtins.list[str] = []
        async for page in self._db.pages(
            "inbox",
            "SELECT c.userId FROM c WHERE c.notificationId = @n AND IS_NULL(c.readAt)"
            " AND c.createdAt < @before AND c.createdAt >= @since",
            {
                "@n": notification_id,
                "@before": created_before,
                "@since": time.time() - self._retention,
            },
            page_size=1000,
        ):
            found.extend(r["userId"] for r in page)
        return sorted(found)[:limit]

    async def withdraw(self, notification_id: str) -> int:
        """Mark a recalled notification's entries (`recalled`), so the per-user queries
        (lists, unread counts) leave them out without reading the notification."""
        rows = await self._db.query(
            "inbox",
            "SELECT c.id, c.userId FROM c WHERE c.notificationId = @n",
            {"@n": notification_id},
        )
        container = self._db.container("inbox")
        await bounded(
            container.patch_item(
                r["id"], partition_key=r["userId"],
                patch_operations=[{"op": "set", "path": "/recalled", "value": True}],
            )
            for r in rows
        )
        return len(rows)

    async def changes(
        self, user_id: str, since: float, limit: int
    ) -> builtins.list[InboxChange]:
        # One user's entries within the retention (one partition); a notification's update is
        # a change of the entry too, so the notifications are read with them.
        rows = await self._db.query(
            "inbox",
            f"SELECT {_ENTRY_FIELDS} FROM c"
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
                float(r["createdAt"]),
                float(r.get("readAt") or 0.0),
                float(r.get("acknowledgedAt") or 0.0),
                record.updated_at,
            )
            if changed_at <= since:
                continue
            found.append(InboxChange(entry=_entry(r, record), changed_at=changed_at))
        found.sort(key=lambda c: (c.changed_at, c.entry.notification_id))
        return found[:limit]
