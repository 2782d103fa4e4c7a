"""Notifications (posted events) and user history in the embedded SQLite store."""

from __future__ import annotations

import builtins
import json
import time
from collections.abc import Sequence
from typing import Any

from storage.records import InboxChange, InboxEntry, NotificationRecord, PutOutcome
from storage.sqlite import SqliteDatabase

__all__ = ["SqliteInboxStore", "SqliteNotificationStore"]

_CHUNK = 500


def _record(row: Any) -> NotificationRecord:
    return NotificationRecord(
        id=row["id"],
        version=int(row["version"]),
        content_hash=row["content_hash"],
        event=json.loads(row["event"]),
        type=row["type"],
        recipients=int(row["recipients"]),
        expanded_version=int(row["expanded_version"]),
        expand_cursor=row["expand_cursor"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


class SqliteNotificationStore:
    """NotificationStore on SQLite: create/unchanged/update decided inside one transaction."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def put(
        self,
        notification_id: str,
        content_hash: str,
        event: dict[str, Any],
        type_: str,
        recipients: int,
    ) -> tuple[PutOutcome, NotificationRecord]:
        now = time.time()
        body = json.dumps(event, separators=(",", ":"), ensure_ascii=False)
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


class SqliteInboxStore:
    """InboxStore on SQLite; entries older than the retention are never returned."""

    def __init__(self, db: SqliteDatabase, *, retention_seconds: float) -> None:
        self._db = db
        self._retention = retention_seconds

    async def purge_expired(self) -> int:
        return await self._db.write(
            "DELETE FROM inbox WHERE created_at < ?", (time.time() - self._retention,)
        )

    async def unread_counts(self, user_ids: Sequence[str]) -> dict[str, int]:
        result: dict[str, int] = {}
        ids = list(dict.fromkeys(user_ids))
        since = time.time() - self._retention
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            rows = await self._db.fetchall(
                "SELECT user_id, COUNT(*) FROM inbox WHERE read_at IS NULL AND created_at >= ?"
                f" AND user_id IN ({','.join('?' * len(chunk))}) GROUP BY user_id",
                (since, *chunk),
            )
            result.update((user_id, int(count)) for user_id, count in rows)
        return result

    async def list(self, user_id: str, *, unread_only: bool, limit: int) -> list[InboxEntry]:
        rows = await self._db.fetchall(
            "SELECT i.notification_id, i.created_at, i.read_at, n.event, n.version"
            " FROM inbox i JOIN notifications n ON n.id = i.notification_id"
            " WHERE i.user_id = ? AND i.created_at >= ?"
            + (" AND i.read_at IS NULL" if unread_only else "")
            + " ORDER BY i.created_at DESC, i.notification_id LIMIT ?",
            (user_id, time.time() - self._retention, limit),
        )
        return [
            InboxEntry(
                notification_id=r["notification_id"],
                created_at=float(r["created_at"]),
                read_at=r["read_at"],
                event=json.loads(r["event"]),
                version=int(r["version"]),
            )
            for r in rows
        ]

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

    async def mark_all_read(self, user_id: str) -> int:
        # Entries past the retention are gone for the user: they are neither marked nor counted.
        now = time.time()
        return await self._db.write(
            "UPDATE inbox SET read_at = ?"
            " WHERE user_id = ? AND read_at IS NULL AND created_at >= ?",
            (now, user_id, now - self._retention),
        )

    async def mark_read(self, user_id: str, notification_id: str) -> float | None:
        now = time.time()
        rows = await self._db.write_returning(
            "UPDATE inbox SET read_at = COALESCE(read_at, ?)"
            " WHERE user_id = ? AND notification_id = ? AND created_at >= ? RETURNING read_at",
            (now, user_id, notification_id, now - self._retention),
        )
        return float(rows[0]["read_at"]) if rows else None

    async def changes(
        self, user_id: str, since: float, limit: int
    ) -> builtins.list[InboxChange]:
        # One user's entries within the retention (the inbox_recent index); a page holds at
        # most a few hundred, so filtering them by change time costs little.
        rows = await self._db.fetchall(
            "SELECT i.notification_id, i.created_at, i.read_at, n.event, n.version,"
            " MAX(i.created_at, COALESCE(i.read_at, 0), n.updated_at) AS changed_at"
            " FROM inbox i JOIN notifications n ON n.id = i.notification_id"
            " WHERE i.user_id = ? AND i.created_at >= ?"
            " AND MAX(i.created_at, COALESCE(i.read_at, 0), n.updated_at) > ?"
            " ORDER BY changed_at, i.notification_id LIMIT ?",
            (user_id, time.time() - self._retention, since, limit),
        )
        return [
            InboxChange(
                entry=InboxEntry(
                    notification_id=r["notification_id"],
                    created_at=float(r["created_at"]),
                    read_at=r["read_at"],
                    event=json.loads(r["event"]),
                    version=int(r["version"]),
                ),
                changed_at=float(r["changed_at"]),
            )
            for r in rows
        ]
