"""Browser push subscriptions in the embedded SQLite store (table of migration 3)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from errors import NotOwner
from storage.sqlite import SqliteDatabase
from storage.subscriptions import PushSubscription, SaveOutcome

__all__ = ["SqliteSubscriptionStore"]

_CHUNK = 500


def _record(row: Any) -> PushSubscription:
    return PushSubscription(
        user_id=row["user_id"],
        endpoint=row["endpoint"],
        p256dh=row["p256dh"],
        auth=row["auth"],
        expiration_time=row["expiration_time"],
        user_agent=row["user_agent"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )


class SqliteSubscriptionStore:
    """SubscriptionStore on SQLite: one row per endpoint, keyed by its hash."""

    def __init__(self, db: SqliteDatabase, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def save(
        self, subscription: PushSubscription, *, owner_only: bool = False
    ) -> SaveOutcome:
        now = self._clock()
        key = subscription.id
        # Checked inside the write transaction: a refusal rolls back with nothing written.
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "SELECT user_id FROM push_subscriptions WHERE id = ?", (key,)
            )
            row = await cursor.fetchone()
            await cursor.close()
            outcome: SaveOutcome
            if row is None:
                outcome = "created"
            elif row[0] == subscription.user_id:
                outcome = "updated"
            elif owner_only:
                raise NotOwner("this browser is subscribed for another user", field="endpoint")
            else:
                outcome = "moved"
            await conn.execute(
                "INSERT INTO push_subscriptions (id, user_id, endpoint, p256dh, auth,"
                " expiration_time, user_agent, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO UPDATE SET user_id = excluded.user_id,"
                " p256dh = excluded.p256dh, auth = excluded.auth,"
                " expiration_time = excluded.expiration_time, user_agent = excluded.user_agent,"
                " created_at = CASE WHEN push_subscriptions.user_id = excluded.user_id"
                " THEN push_subscriptions.created_at ELSE excluded.created_at END,"
                " updated_at = excluded.updated_at",
                (
                    key,
                    subscription.user_id,
                    subscription.endpoint,
                    subscription.p256dh,
                    subscription.auth,
                    subscription.expiration_time,
                    subscription.user_agent,
                    now,
                    now,
                ),
            )
        return outcome

    async def get(self, subscription_id: str) -> PushSubscription | None:
        row = await self._db.fetchone(
            "SELECT * FROM push_subscriptions WHERE id = ?", (subscription_id,)
        )
        return _record(row) if row is not None else None

    async def for_user(self, user_id: str) -> list[PushSubscription]:
        rows = await self._db.fetchall(
            "SELECT * FROM push_subscriptions WHERE user_id = ? ORDER BY created_at, id",
            (user_id,),
        )
        return [_record(row) for row in rows]

    async def targets_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        ids = list(user_ids)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = await self._db.fetchall(
                "SELECT user_id, id FROM push_subscriptions"
                f" WHERE user_id IN ({','.join('?' * len(chunk))})"
                " ORDER BY user_id, created_at, id",
                chunk,
            )
            for user_id, key in rows:
                result.setdefault(user_id, []).append(key)
        return result

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], PushSubscription]:
        wanted = set(keys)
        result: dict[tuple[str, str], PushSubscription] = {}
        ids = list(dict.fromkeys(key for _, key in keys))
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = await self._db.fetchall(
                f"SELECT * FROM push_subscriptions WHERE id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for row in rows:
                pair = (row["user_id"], row["id"])
                if pair in wanted:  # moved to someone else: not this delivery's target
                    result[pair] = _record(row)
        return result

    async def delete(self, subscription_id: str, *, user_id: str | None = None) -> bool:
        if user_id is None:
            changed = await self._db.write(
                "DELETE FROM push_subscriptions WHERE id = ?", (subscription_id,)
            )
        else:
            changed = await self._db.write(
                "DELETE FROM push_subscriptions WHERE id = ? AND user_id = ?",
                (subscription_id, user_id),
            )
        return changed > 0
