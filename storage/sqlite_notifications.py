"""Notifications (posted events) and user history in the embedded SQLite store."""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Sequence
from typing import Any

from notifications.event import StoredEvent
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
from storage.sqlite import SqliteDatabase

__all__ = ["SqliteInboxStore", "SqliteNotificationStore"]

_CHUNK = 500


def _record(row: Any) -> NotificationRecord:
    return NotificationRecord(
        id=row["id"],
        version=int(row["version"]),
        content_hash=row["content_hash"],
        event=StoredEvent.from_document(json.loads(row["event"])),
        type=row["type"],
        recipients=int(row["recipients"]),
        expanded_version=int(row["expanded_version"]),
        expand_cursor=row["expand_cursor"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
        recalled_at=None if row["recalled_at"] is None else float(row["recalled_at"]),
    )


_ENTRY_COLUMNS = (
    "i.notification_id, i.created_at, i.read_at, i.read_via, i.acknowledged_at,"
    " i.acknowledged_via, n.event, n.version, n.recalled_at"
)


def _entry(row: Any) -> InboxEntry:
    return InboxEntry(
        notification_id=row["notification_id"],
        created_at=float(row["created_at"]),
        read_at=row["read_at"],
        event=json.loads(row["event"]),
        version=int(row["version"]),
        read_via=row["read_via"],
        acknowledged_at=row["acknowledged_at"],
        acknowledged_via=row["acknowledged_via"],
        recalled=row["recalled_at"] is not None,
    )


class SqliteNotificationStore:
    """NotificationStore on SQLite: create/unchanged/update decided inside one transaction."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def put(
        self,
        notification_id: str,
        content_hash: str,
        event: StoredEvent,
        type_: str,
        recipients: int,
    ) -> tuple[PutOutcome, NotificationRecord]:
        now = time.time()
        body = json.dumps(event.document(), separators=(",", ":"), ensure_ascii=False)
        outcome: PutOutcome
        async with self._db.transaction() as conn:
            rows = list(
                await conn.execute_fetchall(
                    "SELECT content_hash FROM notifications WHERE id = ?", (notification_id,)
                )
            )
            if not rows:
                outcome = "created"
                await conn.execute(
                    "INSERT INTO notifications (id, version, content_hash, event, type, recipients,"
                    " expanded_version, expand_cursor, created_at, updated_at)"
                    " VALUES (?, 1, ?, ?, ?, ?, 0, NULL, ?, ?)",
                    (notification_id, content_hash, body, type_, recipients, now, now),
                )
            elif rows[0]["content_hash"] == content_hash:
                outcome = "unchanged"
            else:
                outcome = "updated"
                # A new version restarts audience expansion from the beginning: new recipients
                # are added and already delivered messages are queued for an edit.
                await conn.execute(
                    "UPDATE notifications SET version = version + 1, content_hash = ?, event = ?,"
                    " type = ?, recipients = ?, expand_cursor = NULL, updated_at = ? WHERE id = ?",
                    (content_hash, body, type_, recipients, now, notification_id),
                )
            result = list(
                await conn.execute_fetchall(
                    "SELECT * FROM notifications WHERE id = ?", (notification_id,)
                )
            )
        return outcome, _record(result[0])

    async def get(self, notification_id: str) -> NotificationRecord | None:
        row = await self._db.fetchone(
            "SELECT * FROM notifications WHERE id = ?", (notification_id,)
        )
        return _record(row) if row is not None else None

    async def get_many(self, ids: Sequence[str]) -> dict[str, NotificationRecord]:
        unique = list(dict.fromkeys(ids))
        found: dict[str, NotificationRecord] = {}
        # Chunked like the other stores: SQLite's default limit on host parameters is 32766.
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i : i + _CHUNK]
            rows = await self._db.fetchall(
                f"SELECT * FROM notifications WHERE id IN ({','.join('?' * len(chunk))})", chunk
            )
            found.update((r["id"], _record(r)) for r in rows)
        return found

    async def pending_expansion(self) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT id FROM notifications WHERE expanded_version < version ORDER BY updated_at"
        )
        return [r["id"] for r in rows]

    async def recall(self, notification_id: str, at: float) -> NotificationRecord | None:
        # Expansion ends here: the latest version counts as expanded, so it is never resumed.
        rows = await self._db.write_returning(
            "UPDATE notifications SET recalled_at = COALESCE(recalled_at, ?),"
            " updated_at = CASE WHEN recalled_at IS NULL THEN MAX(updated_at, ?)"
            " ELSE updated_at END,"
            " expanded_version = version, expand_cursor = NULL WHERE id = ? RETURNING *",
            (at, at, notification_id),
        )
        return _record(rows[0]) if rows else None


class SqliteInboxStore:
    """InboxStore on SQLite; entries older than the retention are never returned."""

    def __init__(self, db: SqliteDatabase, *, retention_seconds: float) -> None:
        self._db = db
        self._retention = retention_seconds

    async def purge_expired(self) -> int:
        return await self._db.write(
            "DELETE FROM inbox WHERE created_at < ?", (time.time() - self._retention,)
        )

    async def list(self, user_id: str, *, unread_only: bool, limit: int) -> list[InboxEntry]:
        rows = await self._db.fetchall(
            f"SELECT {_ENTRY_COLUMNS}"
            " FROM inbox i JOIN notifications n ON n.id = i.notification_id"
            " WHERE i.user_id = ? AND i.created_at >= ? AND n.recalled_at IS NULL"
            + (" AND i.read_at IS NULL" if unread_only else "")
            + " ORDER BY i.created_at DESC, i.notification_id LIMIT ?",
            (user_id, time.time() - self._retention, limit),
        )
        return [_entry(r) for r in rows]

    async def contains(self, user_id: str, notification_id: str) -> bool:
        row = await self._db.fetchone(
            "SELECT 1 FROM inbox WHERE user_id = ? AND notification_id = ? AND created_at >= ?",
            (user_id, notification_id, time.time() - self._retention),
        )
        return row is not None

    async def types(self, user_id: str) -> builtins.list[str]:
        rows = await self._db.fetchall(
            "SELECT DISTINCT n.type FROM inbox i JOIN notifications n ON n.id = i.notification_id"
            " WHERE i.user_id = ? AND i.created_at >= ? ORDER BY n.type",
            (user_id, time.time() - self._retention),
        )
        return [str(r["type"]) for r in rows]

    async def mark_all_read(self, user_id: str, via: str = "chat") -> int:
        # Entries past the retention are gone for the user: they are neither marked nor counted;
        # recalled ones are no longer in the inbox.
        now = time.time()
        return await self._db.write(
            "UPDATE inbox SET read_at = ?, read_via = ?"
            " WHERE user_id = ? AND read_at IS NULL AND created_at >= ?"
            " AND NOT EXISTS (SELECT 1 FROM notifications n"
            " WHERE n.id = inbox.notification_id AND n.recalled_at IS NOT NULL)",
            (now, via, user_id, now - self._retention),
        )

    async def mark_read(
        self, user_id: str, notification_id: str, via: str = "inbox"
    ) -> float | None:
        now = time.time()
        # The right-hand sides see the row as it was: the first read keeps its time and surface.
        rows = await self._db.write_returning(
            "UPDATE inbox SET read_at = COALESCE(read_at, ?),"
            " read_via = CASE WHEN read_at IS NULL THEN ? ELSE read_via END"
            " WHERE user_id = ? AND notification_id = ? AND created_at >= ?"
            " AND NOT EXISTS (SELECT 1 FROM notifications n"
            " WHERE n.id = inbox.notification_id AND n.recalled_at IS NOT NULL)"
            " RETURNING read_at",
            (now, via, user_id, notification_id, now - self._retention),
        )
        return float(rows[0]["read_at"]) if rows else None

    async def mark_all_read_each(
        self, user_ids: Sequence[str], via: str
    ) -> dict[str, int]:
        now = time.time()
        counts: dict[str, int] = {}
        unique = list(dict.fromkeys(user_ids))
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i : i + _CHUNK]
            rows = await self._db.write_returning(
                "UPDATE inbox SET read_at = ?, read_via = ?"
                f" WHERE user_id IN ({','.join('?' * len(chunk))})"
                " AND read_at IS NULL AND created_at >= ?"
                " AND NOT EXISTS (SELECT 1 FROM notifications n"
                " WHERE n.id = inbox.notification_id AND n.recalled_at IS NOT NULL)"
                " RETURNING user_id",
                (now, via, *chunk, now - self._retention),
            )
            for r in rows:
                counts[str(r["user_id"])] = counts.get(str(r["user_id"]), 0) + 1
        return counts

    async def mark_read_each(
        self, reads: Sequence[tuple[str, str, str]]
    ) -> builtins.list[float | None]:
        now = time.time()
        found: dict[tuple[str, str], float] = {}
        # Grouped by notification and surface (a storm is many people reading one): then each
        # statement is a primary-key lookup per person.
        groups: dict[tuple[str, str], list[str]] = {}
        for user_id, notification_id, via in reads:
            groups.setdefault((notification_id, via), []).append(user_id)
        for (notification_id, via), users in groups.items():
            unique = list(dict.fromkeys(users))
            for i in range(0, len(unique), _CHUNK):
                chunk = unique[i : i + _CHUNK]
                rows = await self._db.write_returning(
                    "UPDATE inbox SET read_at = COALESCE(read_at, ?),"
                    " read_via = CASE WHEN read_at IS NULL THEN ? ELSE read_via END"
                    f" WHERE user_id IN ({','.join('?' * len(chunk))}) AND notification_id = ?"
                    " AND created_at >= ? AND NOT EXISTS (SELECT 1 FROM notifications n"
                    " WHERE n.id = inbox.notification_id AND n.recalled_at IS NOT NULL)"
                    " RETURNING user_id, read_at",
                    (now, via, *chunk, notification_id, now - self._retention),
                )
                found.update(
                    ((str(r["user_id"]), notification_id), float(r["read_at"])) for r in rows
                )
        return [found.get((user_id, notification_id)) for user_id, notification_id, _ in reads]

    async def mark_read_many(
        self, user_id: str, notification_ids: Sequence[str], via: str
    ) -> builtins.list[str]:
        now = time.time()
        marked: builtins.list[str] = []
        unique = list(dict.fromkeys(notification_ids))
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i : i + _CHUNK]
            rows = await self._db.write_returning(
                "UPDATE inbox SET read_at = ?, read_via = ?"
                " WHERE user_id = ? AND read_at IS NULL AND created_at >= ?"
                f" AND notification_id IN ({','.join('?' * len(chunk))})"
                " RETURNING notification_id",
                (now, via, user_id, now - self._retention, *chunk),
            )
            marked.extend(str(r["notification_id"]) for r in rows)
        return marked

    async def acknowledge(
        self, user_id: str, notification_id: str, via: str
    ) -> Acknowledgement | None:
        now = time.time()
        async with self._db.transaction() as conn:
            found = list(
                await conn.execute_fetchall(
                    "SELECT acknowledged_at, acknowledged_via FROM inbox"
                    " WHERE user_id = ? AND notification_id = ? AND created_at >= ?",
                    (user_id, notification_id, now - self._retention),
                )
            )
            if not found:
                return None
            if found[0]["acknowledged_at"] is not None:
                return Acknowledgement(
                    float(found[0]["acknowledged_at"]), str(found[0]["acknowledged_via"]), False
                )
            await conn.execute(
                "UPDATE inbox SET acknowledged_at = ?, acknowledged_via = ?,"
                " read_via = CASE WHEN read_at IS NULL THEN ? ELSE read_via END,"
                " read_at = COALESCE(read_at, ?)"
                " WHERE user_id = ? AND notification_id = ?",
                (now, via, via, now, user_id, notification_id),
            )
        return Acknowledgement(now, via, True)

    async def entry(self, user_id: str, notification_id: str) -> InboxEntry | None:
        row = await self._db.fetchone(
            f"SELECT {_ENTRY_COLUMNS} FROM inbox i JOIN notifications n"
            " ON n.id = i.notification_id"
            " WHERE i.user_id = ? AND i.notification_id = ? AND i.created_at >= ?",
            (user_id, notification_id, time.time() - self._retention),
        )
        return _entry(row) if row is not None else None

    async def unread_counts(self, user_ids: Sequence[str]) -> dict[str, int]:
        counts: dict[str, int] = {}
        unique = list(dict.fromkeys(user_ids))
        since = time.time() - self._retention
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i : i + _CHUNK]
            rows = await self._db.fetchall(
                "SELECT i.user_id, COUNT(*) AS n FROM inbox i"
                " JOIN notifications n ON n.id = i.notification_id"
                f" WHERE i.user_id IN ({','.join('?' * len(chunk))})"
                " AND i.read_at IS NULL AND i.created_at >= ? AND n.recalled_at IS NULL"
                " GROUP BY i.user_id",
                (*chunk, since),
            )
            counts.update((str(r["user_id"]), int(r["n"])) for r in rows)
        return counts

    async def engagement_counts(self, notification_id: str) -> EngagementCounts:
        rows = await self._db.fetchall(
            "SELECT read_at IS NOT NULL AS r, read_via, acknowledged_at IS NOT NULL AS a,"
            " acknowledged_via, COUNT(*) AS n FROM inbox"
            " WHERE notification_id = ? AND created_at >= ? GROUP BY 1, 2, 3, 4",
            (notification_id, time.time() - self._retention),
        )
        recipients = read = acknowledged = 0
        read_via: dict[str, int] = {}
        ack_via: dict[str, int] = {}
        for r in rows:
            n = int(r["n"])
            recipients += n
            if r["r"]:
                read += n
                via = str(r["read_via"] or "unknown")
                read_via[via] = read_via.get(via, 0) + n
            if r["a"]:
                acknowledged += n
                via = str(r["acknowledged_via"] or "unknown")
                ack_via[via] = ack_via.get(via, 0) + n
        return EngagementCounts(recipients, read, acknowledged, read_via, ack_via)

    async def engagement_of(
        self, notification_id: str, user_ids: Sequence[str]
    ) -> dict[str, Engagement]:
        found: dict[str, Engagement] = {}
        unique = list(dict.fromkeys(user_ids))
        for i in range(0, len(unique), _CHUNK):
            chunk = unique[i : i + _CHUNK]
            rows = await self._db.fetchall(
                "SELECT user_id, read_at, read_via, acknowledged_at, acknowledged_via FROM inbox"
                f" WHERE notification_id = ? AND user_id IN ({','.join('?' * len(chunk))})",
                (notification_id, *chunk),
            )
            for r in rows:
                found[str(r["user_id"])] = Engagement(
                    str(r["user_id"]), r["read_at"], r["read_via"],
                    r["acknowledged_at"], r["acknowledged_via"],
                )
        return found

    async def engagement_timeline(
        self, notification_id: str, *, bucket_seconds: float
    ) -> builtins.list[EngagementBucket]:
        counts: dict[int, dict[str, int]] = {}
        for column, name in (("read_at", "read"), ("acknowledged_at", "acknowledged")):
            rows = await self._db.fetchall(
                f"SELECT CAST({column} / ? AS INTEGER) AS bucket, COUNT(*) AS n FROM inbox"
                f" WHERE notification_id = ? AND {column} IS NOT NULL GROUP BY bucket",
                (bucket_seconds, notification_id),
            )
            for r in rows:
                counts.setdefault(int(r["bucket"]), {})[name] = int(r["n"])
        return [
            EngagementBucket(start=bucket * bucket_seconds, **counts[bucket])
            for bucket in sorted(counts)
        ]

    async def withdraw(self, notification_id: str) -> int:
        # Nothing to write: every read joins the notification and leaves recalled ones out.
        row = await self._db.fetchone(
            "SELECT COUNT(*) AS n FROM inbox WHERE notification_id = ?", (notification_id,)
        )
        return int(row["n"]) if row is not None else 0

    async def unread_recipients(
        self, notification_id: str, *, created_before: float, limit: int
    ) -> builtins.list[str]:
        rows = await self._db.fetchall(
            "SELECT user_id FROM inbox WHERE notification_id = ? AND read_at IS NULL"
            " AND created_at < ? AND created_at >= ? ORDER BY user_id LIMIT ?",
            (notification_id, created_before, time.time() - self._retention, limit),
        )
        return [str(r["user_id"]) for r in rows]

    async def changes(
        self, user_id: str, since: float, limit: int
    ) -> builtins.list[InboxChange]:
        # One user's entries within the retention (the inbox_recent index); a page holds at
        # most a few hundred, so filtering them by change time costs little.
        changed = (
            "MAX(i.created_at, COALESCE(i.read_at, 0), COALESCE(i.acknowledged_at, 0),"
            " n.updated_at)"
        )
        rows = await self._db.fetchall(
            f"SELECT {_ENTRY_COLUMNS}, {changed} AS changed_at"
            " FROM inbox i JOIN notifications n ON n.id = i.notification_id"
            f" WHERE i.user_id = ? AND i.created_at >= ? AND {changed} > ?"
            " ORDER BY changed_at, i.notification_id LIMIT ?",
            (user_id, time.time() - self._retention, since, limit),
        )
        return [InboxChange(entry=_entry(r), changed_at=float(r["changed_at"])) for r in rows]
