"""Graph subscriptions, the change inbox and known resources in the embedded SQLite store
(tables of the Microsoft Graph migration in storage/sqlite.py).

Leases are taken with one `UPDATE ... RETURNING` each, so two processes sharing the file never
hold the same record or change at once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from storage.graph_subscriptions import (
    GraphChange,
    GraphSubscription,
    KnownResource,
    NewGraphChange,
)
from storage.sqlite import SqliteDatabase

__all__ = ["SqliteGraphChangeInbox", "SqliteGraphResourceStore", "SqliteGraphSubscriptionStore"]


def _subscription(row: Any) -> GraphSubscription:
    return GraphSubscription(
        user_id=row["user_id"],
        kind=row["kind"],
        resource=row["resource"],
        allowed=bool(row["allowed"]),
        client_state=row["client_state"],
        subscription_id=row["subscription_id"],
        expires_at=row["expires_at"],
        delta_link=row["delta_link"],
        last_error=row["last_error"],
        attempts=int(row["attempts"]),
        next_attempt_at=float(row["next_attempt_at"]),
        renew_wanted=int(row["renew_wanted"]),
        renew_done=int(row["renew_done"]),
        resync_wanted=int(row["resync_wanted"]),
        resync_done=int(row["resync_done"]),
        lease_until=float(row["lease_until"]),
        lease_owner=row["lease_owner"],
        created_at=float(row["created_at"]),
        updated_at=float(row["updated_at"]),
    )


class SqliteGraphSubscriptionStore:
    """GraphSubscriptionStore on SQLite: one row per (user, kind)."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get(self, user_id: str, kind: str) -> GraphSubscription | None:
        row = await self._db.fetchone(
            "SELECT * FROM graph_subscriptions WHERE user_id = ? AND kind = ?", (user_id, kind)
        )
        return _subscription(row) if row is not None else None

    async def find(self, subscription_id: str) -> GraphSubscription | None:
        row = await self._db.fetchone(
            "SELECT * FROM graph_subscriptions WHERE subscription_id = ?", (subscription_id,)
        )
        return _subscription(row) if row is not None else None

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
        rows = await self._db.write_returning(
            "INSERT INTO graph_subscriptions (user_id, kind, resource, allowed, client_state,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (user_id, kind) DO UPDATE SET allowed = excluded.allowed,"
            " attempts = 0, next_attempt_at = 0, last_error = NULL,"
            " updated_at = excluded.updated_at RETURNING *",
            (user_id, kind, resource, int(allowed), client_state, now, now),
        )
        return _subscription(rows[0])

    async def request(
        self,
        subscription_id: str,
        *,
        renew: bool = False,
        resync: bool = False,
        removed: bool = False,
        now: float,
    ) -> GraphSubscription | None:
        rows = await self._db.write_returning(
            "UPDATE graph_subscriptions SET renew_wanted = renew_wanted + ?,"
            " resync_wanted = resync_wanted + ?,"
            " subscription_id = CASE WHEN ? THEN NULL ELSE subscription_id END,"
            " expires_at = CASE WHEN ? THEN NULL ELSE expires_at END,"
            " attempts = 0, next_attempt_at = 0, updated_at = ?"
            " WHERE subscription_id = ? RETURNING *",
            (int(renew), int(resync), int(removed), int(removed), now, subscription_id),
        )
        return _subscription(rows[0]) if rows else None

    async def claim(
        self, user_id: str, kind: str, *, owner: str, now: float, until: float
    ) -> GraphSubscription | None:
        rows = await self._db.write_returning(
            "UPDATE graph_subscriptions SET lease_until = ?, lease_owner = ?"
            " WHERE user_id = ? AND kind = ? AND (lease_until < ? OR lease_owner IS NULL)"
            " RETURNING *",
            (until, owner, user_id, kind, now),
        )
        return _subscription(rows[0]) if rows else None

    async def claim_due(
        self, *, owner: str, now: float, until: float, renew_before: float, limit: int
    ) -> list[GraphSubscription]:
        rows = await self._db.write_returning(
            "UPDATE graph_subscriptions SET lease_until = :until, lease_owner = :owner"
            " WHERE rowid IN (SELECT rowid FROM graph_subscriptions"
            "  WHERE (lease_until < :now OR lease_owner IS NULL) AND next_attempt_at <= :now AND ("
            "   (allowed = 1 AND (subscription_id IS NULL OR expires_at IS NULL"
            "     OR expires_at - :now <= :before OR renew_wanted > renew_done"
            "     OR resync_wanted > resync_done OR delta_link IS NULL))"
            "   OR (allowed = 0 AND subscription_id IS NOT NULL))"
            "  ORDER BY next_attempt_at, expires_at LIMIT :limit)"
            " RETURNING *",
            {"until": until, "owner": owner, "now": now, "before": renew_before, "limit": limit},
        )
        return sorted(
            (_subscription(row) for row in rows), key=lambda r: (r.next_attempt_at, r.user_id)
        )

    async def save(
        self, record: GraphSubscription, *, owner: str, now: float, release: bool
    ) -> bool:
        changed = await self._db.write(
            "UPDATE graph_subscriptions SET client_state = ?, subscription_id = ?,"
            " expires_at = ?, delta_link = ?, last_error = ?, attempts = ?, next_attempt_at = ?,"
            " renew_done = MAX(renew_done, ?), resync_done = MAX(resync_done, ?),"
            " lease_until = CASE WHEN ? THEN 0 ELSE lease_until END,"
            " lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END, updated_at = ?"
            " WHERE user_id = ? AND kind = ? AND lease_owner = ?",
            (
                record.client_state,
                record.subscription_id,
                record.expires_at,
                record.delta_link,
                record.last_error,
                record.attempts,
                record.next_attempt_at,
                record.renew_done,
                record.resync_done,
                int(release),
                int(release),
                now,
                record.user_id,
                record.kind,
                owner,
            ),
        )
        return changed > 0

    async def release(self, user_id: str, kind: str, *, owner: str) -> None:
        await self._db.write(
            "UPDATE graph_subscriptions SET lease_until = 0, lease_owner = NULL"
            " WHERE user_id = ? AND kind = ? AND lease_owner = ?",
            (user_id, kind, owner),
        )

    async def count_active(self) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) FROM graph_subscriptions WHERE subscription_id IS NOT NULL"
        )
        return int(row[0]) if row is not None else 0


def _change(row: Any) -> GraphChange:
    return GraphChange(
        id=int(row["id"]),
        subscription_id=row["subscription_id"],
        user_id=row["user_id"],
        kind=row["kind"],
        payload=json.loads(row["payload"]),
        received_at=float(row["received_at"]),
        attempts=int(row["attempts"]),
    )


class SqliteGraphChangeInbox:
    """GraphChangeInbox on SQLite: one row per notification, dedupe keys unique."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def add(self, changes: Sequence[NewGraphChange], *, now: float) -> int:
        if not changes:
            return 0
        added = 0
        async with self._db.transaction() as conn:
            for change in changes:
                cursor = await conn.execute(
                    "INSERT INTO graph_changes (subscription_id, user_id, kind, payload,"
                    " dedupe_key, received_at, due_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
                    " ON CONFLICT (dedupe_key) DO NOTHING",
                    (
                        change.subscription_id,
                        change.user_id,
                        change.kind,
                        json.dumps(change.payload, separators=(",", ":"), ensure_ascii=False),
                        change.dedupe_key,
                        now,
                        now,
                    ),
                )
                added += cursor.rowcount
                await cursor.close()
        return added

    async def claim(self, *, now: float, until: float, limit: int) -> list[GraphChange]:
        rows = await self._db.write_returning(
            "UPDATE graph_changes SET lease_until = ? WHERE id IN (SELECT id FROM graph_changes"
            " WHERE processed_at IS NULL AND due_at <= ? AND lease_until < ? ORDER BY id LIMIT ?)"
            " RETURNING *",
            (until, now, now, limit),
        )
        return sorted((_change(row) for row in rows), key=lambda c: c.id)

    async def done(self, change_id: int, *, now: float) -> None:
        await self._db.write(
            "UPDATE graph_changes SET processed_at = ?, lease_until = 0 WHERE id = ?",
            (now, change_id),
        )

    async def retry(self, change_id: int, *, at: float, error: str) -> None:
        await self._db.write(
            "UPDATE graph_changes SET due_at = ?, lease_until = 0, attempts = attempts + 1,"
            " last_error = ? WHERE id = ?",
            (at, error[:2000], change_id),
        )

    async def fail(self, change_id: int, *, now: float, error: str) -> None:
        await self._db.write(
            "UPDATE graph_changes SET processed_at = ?, lease_until = 0,"
            " attempts = attempts + 1, last_error = ? WHERE id = ?",
            (now, error[:2000], change_id),
        )

    async def pending(self) -> int:
        row = await self._db.fetchone(
            "SELECT COUNT(*) FROM graph_changes WHERE processed_at IS NULL"
        )
        return int(row[0]) if row is not None else 0

    async def release_leases(self) -> int:
        return await self._db.write(
            "UPDATE graph_changes SET lease_until = 0"
            " WHERE processed_at IS NULL AND lease_until > 0"
        )

    async def purge(self, *, before: float) -> int:
        return await self._db.write(
            "DELETE FROM graph_changes WHERE processed_at IS NOT NULL AND received_at < ?",
            (before,),
        )


class SqliteGraphResourceStore:
    """GraphResourceStore on SQLite."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def get(self, user_id: str, resource_id: str) -> KnownResource | None:
        row = await self._db.fetchone(
            "SELECT * FROM graph_resources WHERE user_id = ? AND resource_id = ?",
            (user_id, resource_id),
        )
        if row is None:
            return None
        return KnownResource(
            user_id=row["user_id"],
            resource_id=row["resource_id"],
            change_key=row["change_key"],
            summary=json.loads(row["summary"]),
            updated_at=float(row["updated_at"]),
        )

    async def put_many(self, resources: Sequence[KnownResource]) -> None:
        if not resources:
            return
        await self._db.write_many(
            "INSERT INTO graph_resources (user_id, resource_id, change_key, summary, updated_at)"
            " VALUES (?, ?, ?, ?, ?) ON CONFLICT (user_id, resource_id) DO UPDATE SET"
            " change_key = excluded.change_key, summary = excluded.summary,"
            " updated_at = excluded.updated_at",
            [
                (
                    r.user_id,
                    r.resource_id,
                    r.change_key,
                    json.dumps(r.summary, separators=(",", ":"), ensure_ascii=False),
                    r.updated_at,
                )
                for r in resources
            ],
        )

    async def delete(self, user_id: str, resource_id: str) -> None:
        await self._db.write(
            "DELETE FROM graph_resources WHERE user_id = ? AND resource_id = ?",
            (user_id, resource_id),
        )

    async def forget_user(self, user_id: str) -> int:
        return await self._db.write("DELETE FROM graph_resources WHERE user_id = ?", (user_id,))
