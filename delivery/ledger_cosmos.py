"""The delivery ledger on Cosmos DB: what became of each delivery, read from the `deliveries`
container that delivery/outbox_azure.py's queue writes (one document per delivery job).

Cross-partition queries in this SDK (and the stand-in server) have no GROUP BY, so counts are
taken here a page at a time: memory is one counter per group, never the audience.
"""

from __future__ import annotations

from delivery.outbox import COUNTER_NAMES, DeliveryCounters, ReportRow, TimelineBucket
from storage.cosmos import CosmosDatabase

__all__ = ["CosmosDeliveryLedger"]


class CosmosDeliveryLedger:
    """Reads only: counters, depth, report, read receipts and the timeline."""

    def __init__(self, db: CosmosDatabase) -> None:
        self._db = db

    async def counters(self, notification_id: str) -> DeliveryCounters:
        counters = DeliveryCounters()
        async for page in self._db.pages(
            "deliveries",
            "SELECT c.channel, c.status, c.reason, c.dueAt, c.lane FROM c"
            " WHERE c.notificationId = @n",
            {"@n": notification_id},
            page_size=1000,
        ):
            for r in page:
                counters.add(
                    channel=r["channel"], status=r["status"], reason=r.get("reason"),
                    lane=r.get("lane") or "", n=1, due=float(r["dueAt"]),
                )
        return counters

    async def depth(self) -> dict[tuple[str, str, str], int]:
        depth: dict[tuple[str, str, str], int] = {}
        async for page in self._db.pages(
            "deliveries",
            "SELECT c.channel, c.status, c.lane FROM c WHERE c.status IN ('queued', 'retrying')",
            page_size=1000,
        ):
            for r in page:
                key = (r["channel"], r["status"], r.get("lane") or "")
                depth[key] = depth.get(key, 0) + 1
        return depth

    async def report(self, notification_id: str, *, after: int, limit: int) -> list[ReportRow]:
        rows = await self._db.query(
            "deliveries",
            "SELECT TOP @n * FROM c WHERE c.notificationId = @nid AND c.jobId > @after"
            " ORDER BY c.jobId",
            {"@n": limit, "@nid": notification_id, "@after": after},
            page_size=limit,
        )
        return [
            ReportRow(
                id=int(r["jobId"]),
                user_id=r["userId"],
                channel=r["channel"],
                target=r["target"],
                status=COUNTER_NAMES[r["status"]],
                reason=r.get("reason"),
                attempts=int(r["attempts"]),
                last_error=r.get("lastError"),
                updated_at=float(r["updatedAt"]),
            )
            for r in rows
        ]

    async def sent_upto(self, user_id: str, target: str, remote_id: str) -> list[str]:
        # One person's messages in one conversation: a short list, filtered here.
        rows = await self._db.query(
            "deliveries",
            "SELECT c.notificationId, c.remoteId, c.updatedAt FROM c"
            " WHERE c.target = @t AND c.userId = @u AND IS_STRING(c.remoteId)",
            {"@t": target, "@u": user_id},
        )
        hits = [float(r["updatedAt"]) for r in rows if r["remoteId"] == remote_id]
        if not hits:
            return []
        upto = max(hits)
        return list(
            dict.fromkeys(r["notificationId"] for r in rows if float(r["updatedAt"]) <= upto)
        )

    async def timeline(
        self, notification_id: str, *, bucket_seconds: float
    ) -> list[TimelineBucket]:
        # The stand-in (and this SDK's cross-partition queries) have no GROUP BY: the final
        # rows are read a page at a time and counted here; memory is one counter per bucket.
        counts: dict[int, dict[str, int]] = {}
        async for page in self._db.pages(
            "deliveries",
            "SELECT c.status, c.updatedAt FROM c WHERE c.notificationId = @n"
            " AND c.status IN ('delivered', 'skipped', 'failed', 'dead')",
            {"@n": notification_id},
            page_size=1000,
        ):
            for r in page:
                bucket = int(float(r["updatedAt"]) // bucket_seconds)
                per = counts.setdefault(bucket, {})
                per[r["status"]] = per.get(r["status"], 0) + 1
        return [
            TimelineBucket(start=bucket * bucket_seconds, **counts[bucket])
            for bucket in sorted(counts)
        ]
