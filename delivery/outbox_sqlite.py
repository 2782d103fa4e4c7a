"""The delivery queue on the embedded SQLite store (single instance: the file is Herald's own)."""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Sequence

from delivery.outbox import DeliveryJob, NewDelivery, Settlement
from storage.sqlite import SqliteDatabase

__all__ = ["SqliteDeliveryQueue"]

# Highest priority, then lowest fair tag first (delivery/fairness.py), skipping the lanes the
# worker already holds enough of (never for urgent jobs: they go before what it holds); the
# partial index deliveries_fair covers every filter.
_LEASE = (
    "UPDATE deliveries SET lease_until = ? WHERE id IN ("
    " SELECT id FROM deliveries WHERE status IN ('queued', 'retrying')"
    " AND due_at <= ? AND lease_until <= ?"
    " AND (priority = 0 OR lane NOT IN (SELECT value FROM json_each(?)))"
    " ORDER BY priority, tag, due_at LIMIT ?)"
    " RETURNING id, notification_id, user_id, channel, target, attempts, sent_version, remote_id,"
    " lane, priority, tag, due_at"
)

# A job delivered with a version older than the notification's is queued again at once: the
# content changed while it was in flight, so the message must be edited. The edit is a new send
# with its own retry budget, so its attempts start again from zero (as in finish_expansion).
_OUTDATED = (
    ":status = 'delivered' AND COALESCE(:sent_version, sent_version) <"
    " (SELECT version FROM notifications WHERE id = deliveries.notification_id)"
)
_SETTLE = (
    "UPDATE deliveries SET"
    f" status = CASE WHEN {_OUTDATED} THEN 'queued' ELSE :status END,"
    " reason = :reason, due_at = :due_at, lease_until = 0,"
    f" attempts = CASE WHEN {_OUTDATED} THEN 0 ELSE attempts + :attempt END,"
    " sent_version = COALESCE(:sent_version, sent_version),"
    " remote_id = COALESCE(:remote_id, remote_id),"
    " last_error = :error, updated_at = :now"
    " WHERE id = :id"
)


class SqliteDeliveryQueue:
    """The delivery queue on SQLite: a job is a row of `deliveries`, its lease the row's
    `lease_until`. The statuses it writes are what delivery/ledger_sqlite.py reads."""

    skips_lanes = True

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def add_page(
        self,
        notification_id: str,
        version: int,
        deliveries: Sequence[NewDelivery],
        inbox_user_ids: Sequence[str],
        cursor: str | None,
        marks: Sequence[str] = (),
    ) -> int:
        now = time.time()
        async with self._db.transaction() as conn:
            before = conn.total_changes
            await conn.executemany(
                "INSERT INTO deliveries (notification_id, user_id, channel, target, status, reason,"
                " due_at, updated_at, lane, priority, tag) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (notification_id, user_id, channel, target) DO NOTHING",
                [
                    (
                        notification_id,
                        d.user_id,
                        d.channel,
                        d.target,
                        d.status,
                        d.reason,
                        d.due_at,
                        now,
                        d.lane,
                        d.priority,
                        d.tag,
                    )
                    for d in deliveries
                ],
            )
            inserted = conn.total_changes - before
            await conn.executemany(
                "INSERT INTO inbox (user_id, notification_id, created_at) VALUES (?, ?, ?)"
                " ON CONFLICT (user_id, notification_id) DO NOTHING",
                [(user_id, notification_id, now) for user_id in inbox_user_ids],
            )
            if marks:
                await conn.executemany(
                    "INSERT INTO audience_marks (notification_id, user_id, version)"
                    " VALUES (?, ?, ?) ON CONFLICT (notification_id, user_id) DO UPDATE"
                    " SET version = excluded.version WHERE excluded.version > version",
                    [(notification_id, user_id, version) for user_id in dict.fromkeys(marks)],
                )
            await conn.execute(
                "UPDATE notifications SET expand_cursor = ? WHERE id = ? AND version = ?",
                (cursor, notification_id, version),
            )
        return inserted

    async def planned(
        self, notification_id: str, version: int, user_ids: Sequence[str]
    ) -> set[str]:
        found: set[str] = set()
        unique = list(dict.fromkeys(user_ids))
        for i in range(0, len(unique), 500):
            chunk = unique[i : i + 500]
            rows = await self._db.fetchall(
                "SELECT user_id FROM audience_marks WHERE notification_id = ? AND version >= ?"
                f" AND user_id IN ({','.join('?' * len(chunk))})",
                (notification_id, version, *chunk),
            )
            found.update(r["user_id"] for r in rows)
        return found

    async def finish_expansion(self, notification_id: str, version: int) -> int:
        now = time.time()
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                # An edit is a new send: it gets the whole retry budget, not what is left of
                # the attempts every earlier version used up.
                "UPDATE deliveries SET status = 'queued', due_at = ?, attempts = 0, updated_at = ?"
                " WHERE notification_id = ? AND status = 'delivered' AND sent_version < ?",
                (now, now, notification_id, version),
            )
            requeued = cursor.rowcount
            await cursor.close()
            # The cursor stays: it holds what each part of the audience found (the status
            # shows it); a new version starts from none.
            await conn.execute(
                "UPDATE notifications SET expanded_version = ? WHERE id = ? AND version = ?",
                (version, notification_id, version),
            )
            await conn.execute(
                "DELETE FROM audience_marks WHERE notification_id = ? AND version <= ?",
                (notification_id, version),
            )
        return requeued

    async def lease(
        self, limit: int, lease_seconds: float, exclude_lanes: Collection[str] = ()
    ) -> list[DeliveryJob]:
        now = time.time()
        rows = await self._db.write_returning(
            _LEASE, (now + lease_seconds, now, now, json.dumps(list(exclude_lanes)), limit)
        )
        # RETURNING yields rows in no particular order; hand them out in the lease's order.
        rows.sort(key=lambda r: (r["priority"], r["tag"], r["due_at"], r["id"]))
        return [
            DeliveryJob(
                id=r["id"],
                notification_id=r["notification_id"],
                user_id=r["user_id"],
                channel=r["channel"],
                target=r["target"],
                attempts=r["attempts"],
                sent_version=r["sent_version"],
                remote_id=r["remote_id"],
                lane=r["lane"],
                priority=r["priority"],
                tag=r["tag"],
            )
            for r in rows
        ]

    async def settle(self, settlements: Sequence[Settlement]) -> None:
        if not settlements:
            return
        now = time.time()
        await self._db.write_many(
            _SETTLE,
            [
                {
                    "id": s.job_id,
                    "status": s.status,
                    "reason": s.reason,
                    "due_at": s.due_at,
                    "attempt": 1 if s.count_attempt else 0,
                    "sent_version": s.sent_version,
                    "remote_id": s.remote_id,
                    "error": s.error,
                    "now": now,
                }
                for s in settlements
            ],
        )

    async def release(self, job_ids: Sequence[int]) -> None:
        if job_ids:
            await self._db.write_many(
                "UPDATE deliveries SET lease_until = 0 WHERE id = ?", [(i,) for i in job_ids]
            )

    async def recover(self) -> int:
        return await self._db.write(
            "UPDATE deliveries SET lease_until = 0"
            " WHERE lease_until > 0 AND status IN ('queued', 'retrying')"
        )

    async def next_due(self, exclude_lanes: Collection[str] = ()) -> float | None:
        row = await self._db.fetchone(
            "SELECT MIN(MAX(due_at, lease_until)) AS due FROM deliveries"
            " WHERE status IN ('queued', 'retrying')"
            " AND lane NOT IN (SELECT value FROM json_each(?))",
            (json.dumps(list(exclude_lanes)),),
        )
        return float(row["due"]) if row is not None and row["due"] is not None else None

    async def lane_tags(self) -> dict[str, float]:
        rows = await self._db.fetchall(
            "SELECT lane, MIN(tag) AS tag FROM deliveries"
            " WHERE status IN ('queued', 'retrying') GROUP BY lane"
        )
        return {r["lane"]: float(r["tag"]) for r in rows}

    async def retract(self, notification_id: str) -> int:
        now = time.time()
        return await self._db.write(
            "UPDATE deliveries SET status = 'queued', due_at = ?, attempts = 0, updated_at = ?,"
            " reason = NULL WHERE notification_id = ? AND status = 'delivered'"
            " AND remote_id IS NOT NULL",
            (now, now, notification_id),
        )
