"""The delivery ledger on the embedded SQLite store: what became of each delivery, read from
the `deliveries` rows that delivery/outbox_sqlite.py's queue writes (same file, same table)."""

from __future__ import annotations

from delivery.outbox import COUNTER_NAMES, DeliveryCounters, ReportRow, TimelineBucket
from storage.sqlite import SqliteDatabase

__all__ = ["SqliteDeliveryLedger"]


class SqliteDeliveryLedger:
    """Reads only: counters, depth, report, read receipts and the timeline, each one query."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def counters(self, notification_id: str) -> DeliveryCounters:
        # One pass: the earliest due time per group too, kept for the outstanding statuses.
        rows = await self._db.fetchall(
            "SELECT channel, status, reason, lane, COUNT(*) AS n, MIN(due_at) AS due"
            " FROM deliveries WHERE notification_id = ? GROUP BY channel, status, reason, lane",
            (notification_id,),
        )
        counters = DeliveryCounters()
        for r in rows:
            counters.add(
                channel=r["channel"], status=r["status"], reason=r["reason"], lane=r["lane"],
                n=int(r["n"]), due=float(r["due"]),
            )
        return counters

    async def depth(self) -> dict[tuple[str, str, str], int]:
        rows = await self._db.fetchall(
            "SELECT channel, status, lane, COUNT(*) AS n FROM deliveries"
            " WHERE status IN ('queued', 'retrying') GROUP BY channel, status, lane"
        )
        return {(r["channel"], r["status"], r["lane"]): int(r["n"]) for r in rows}

    async def report(self, notification_id: str, *, after: int, limit: int) -> list[ReportRow]:
        rows = await self._db.fetchall(
            "SELECT id, user_id, channel, target, status, reason, attempts, last_error,"
            " updated_at FROM deliveries WHERE notification_id = ? AND id > ?"
            " ORDER BY id LIMIT ?",
            (notification_id, after, limit),
        )
        return [
            ReportRow(
                id=r["id"],
                user_id=r["user_id"],
                channel=r["channel"],
                target=r["target"],
                status=COUNTER_NAMES[r["status"]],
                reason=r["reason"],
                attempts=r["attempts"],
                last_error=r["last_error"],
                updated_at=float(r["updated_at"]),
            )
            for r in rows
        ]

    async def sent_upto(self, user_id: str, target: str, remote_id: str) -> list[str]:
        # Both lookups read the deliveries_by_remote index: one conversation's messages.
        rows = await self._db.fetchall(
            "SELECT notification_id FROM deliveries"
            " WHERE target = ? AND user_id = ? AND remote_id IS NOT NULL"
            " AND updated_at <= (SELECT MAX(updated_at) FROM deliveries"
            " WHERE target = ? AND remote_id = ? AND user_id = ?)",
            (target, user_id, target, remote_id, user_id),
        )
        return list(dict.fromkeys(str(r["notification_id"]) for r in rows))

    async def timeline(
        self, notification_id: str, *, bucket_seconds: float
    ) -> list[TimelineBucket]:
        rows = await self._db.fetchall(
            "SELECT CAST(updated_at / ? AS INTEGER) AS bucket, status, COUNT(*) AS n"
            " FROM deliveries WHERE notification_id = ?"
            " AND status IN ('delivered', 'skipped', 'failed', 'dead')"
            " GROUP BY bucket, status ORDER BY bucket",
            (bucket_seconds, notification_id),
        )
        counts: dict[int, dict[str, int]] = {}
        for r in rows:
            counts.setdefault(int(r["bucket"]), {})[r["status"]] = int(r["n"])
        return [
            TimelineBucket(start=bucket * bucket_seconds, **by_status)
            for bucket, by_status in counts.items()
        ]
