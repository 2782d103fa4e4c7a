"""Mobile devices in the embedded SQLite store (the `devices` table of migration 3).

The `metadata` column holds a JSON object: `device` is what the app reported (appId, os, ...),
`tokenRemoved` why and when a token was last taken away (null after a fresh registration). The
token columns are UNIQUE, so one token can never be held by two installations.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import aiosqlite

from errors import NotOwner
from storage.devices import (
    MOVED,
    DeviceRecord,
    DeviceRegistration,
    DeviceUpsert,
    TokenRemoval,
)
from storage.sqlite import SqliteDatabase

__all__ = ["SqliteDeviceStore"]

_CHUNK = 500
_FIELDS = {"fcm_token": "fcmToken", "apns_token": "apnsToken"}
"""Token columns by the API's names for them (in a NotOwner)."""


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _metadata(device: dict[str, str], removed: TokenRemoval | None) -> str:
    document: dict[str, Any] = {
        "device": device,
        "tokenRemoved": None if removed is None else {"reason": removed.reason, "at": removed.at},
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":"))


def _record(row: Any) -> DeviceRecord:
    document = json.loads(row["metadata"])
    removed = document.get("tokenRemoved")
    return DeviceRecord(
        installation_id=row["installation_id"],
        user_id=row["user_id"],
        platform=row["platform"],
        fcm_token=row["fcm_token"],
        apns_token=row["apns_token"],
        metadata=dict(document.get("device") or {}),
        active=bool(row["active"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        token_removed=(
            None if not removed else TokenRemoval(str(removed["reason"]), float(removed["at"]))
        ),
    )


async def _rows(conn: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    return list(await conn.execute_fetchall(sql, params))


class SqliteDeviceStore:
    """DeviceStore on SQLite."""

    def __init__(self, db: SqliteDatabase, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock

    async def upsert(
        self, registration: DeviceRegistration, *, owner_only: bool = False
    ) -> DeviceUpsert:
        now = self._clock()
        reg = registration
        # One write transaction (BEGIN IMMEDIATE): what is checked is what is written over, and
        # a refusal rolls back before anything was written.
        async with self._db.transaction() as conn:
            before = await _rows(
                conn,
                "SELECT user_id FROM devices WHERE installation_id = ?",
                (reg.installation_id,),
            )
            if owner_only and before and before[0]["user_id"] != reg.user_id:
                raise NotOwner(
                    "this installation is registered to another user", field="installationId"
                )
            holders: list[tuple[str, Any]] = []
            for column, token in (("fcm_token", reg.fcm_token), ("apns_token", reg.apns_token)):
                if token is None:
                    continue
                rows = await _rows(
                    conn,
                    f"SELECT * FROM devices WHERE {column} = ? AND installation_id != ?",
                    (token, reg.installation_id),
                )
                if owner_only and any(row["user_id"] != reg.user_id for row in rows):
                    raise NotOwner(
                        "this push token belongs to another user's installation",
                        field=_FIELDS[column],
                    )
                holders.extend((column, row) for row in rows)
            displaced: list[str] = []
            for column, row in holders:
                await self._take_token(conn, _record(row), column, MOVED, now)
                displaced.append(row["installation_id"])
            await conn.execute(
                "INSERT INTO devices (installation_id, user_id, platform, fcm_token, apns_token,"
                " metadata, active, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, 1, ?, ?)"
                " ON CONFLICT (installation_id) DO UPDATE SET user_id = excluded.user_id,"
                " platform = excluded.platform, fcm_token = excluded.fcm_token,"
                " apns_token = excluded.apns_token, metadata = excluded.metadata, active = 1,"
                " updated_at = excluded.updated_at",
                (
                    reg.installation_id,
                    reg.user_id,
                    reg.platform,
                    reg.fcm_token,
                    reg.apns_token,
                    _metadata(dict(reg.metadata), None),
                    now,
                    now,
                ),
            )
            saved = await _rows(
                conn, "SELECT * FROM devices WHERE installation_id = ?", (reg.installation_id,)
            )
        previous = before[0]["user_id"] if before else None
        return DeviceUpsert(
            device=_record(saved[0]),
            created=not before,
            previous_user_id=previous if previous != reg.user_id else None,
            displaced=tuple(dict.fromkeys(displaced)),
        )

    @staticmethod
    async def _take_token(
        conn: aiosqlite.Connection, device: DeviceRecord, column: str, reason: str, now: float
    ) -> None:
        fcm = None if column == "fcm_token" else device.fcm_token
        apns = None if column == "apns_token" else device.apns_token
        await conn.execute(
            f"UPDATE devices SET {column} = NULL, active = ?, metadata = ?, updated_at = ?"
            " WHERE installation_id = ?",
            (
                int(device.active and (fcm is not None or apns is not None)),
                _metadata(device.metadata, TokenRemoval(reason, now)),
                now,
                device.installation_id,
            ),
        )

    async def get(self, installation_id: str) -> DeviceRecord | None:
        row = await self._db.fetchone(
            "SELECT * FROM devices WHERE installation_id = ?", (installation_id,)
        )
        return None if row is None else _record(row)

    async def for_user(self, user_id: str) -> list[DeviceRecord]:
        rows = await self._db.fetchall(
            "SELECT * FROM devices WHERE user_id = ? ORDER BY created_at, installation_id",
            (user_id,),
        )
        return [_record(row) for row in rows]

    async def delete(self, installation_id: str, *, user_id: str | None = None) -> bool:
        if user_id is None:
            changed = await self._db.write(
                "DELETE FROM devices WHERE installation_id = ?", (installation_id,)
            )
        else:
            changed = await self._db.write(
                "DELETE FROM devices WHERE installation_id = ? AND user_id = ?",
                (installation_id, user_id),
            )
        return changed > 0

    async def _by_user(self, condition: str, user_ids: Sequence[str]) -> dict[str, list[str]]:
        result: dict[str, list[str]] = {}
        ids = list(user_ids)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = await self._db.fetchall(
                "SELECT user_id, installation_id FROM devices"
                f" WHERE active = 1 AND {condition} AND user_id IN ({_marks(len(chunk))})"
                " ORDER BY user_id, created_at, installation_id",
                chunk,
            )
            for user_id, installation_id in rows:
                result.setdefault(user_id, []).append(installation_id)
        return result

    async def targets_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self._by_user("fcm_token IS NOT NULL", user_ids)

    async def apns_only_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self._by_user("fcm_token IS NULL AND apns_token IS NOT NULL", user_ids)

    async def fcm_only_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self._by_user("fcm_token IS NOT NULL AND apns_token IS NULL", user_ids)

    async def apns_targets_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self._by_user("apns_token IS NOT NULL", user_ids)

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], DeviceRecord]:
        wanted = set(keys)
        ids = list(dict.fromkeys(installation_id for _, installation_id in keys))
        result: dict[tuple[str, str], DeviceRecord] = {}
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = await self._db.fetchall(
                f"SELECT * FROM devices WHERE installation_id IN ({_marks(len(chunk))})", chunk
            )
            for row in rows:
                key = (row["user_id"], row["installation_id"])
                if key in wanted:
                    result[key] = _record(row)
        return result

    async def remove_fcm_token(self, installation_id: str, token: str, reason: str) -> bool:
        return await self._remove_token("fcm_token", installation_id, token, reason)

    async def remove_apns_token(self, installation_id: str, token: str, reason: str) -> bool:
        return await self._remove_token("apns_token", installation_id, token, reason)

    async def _remove_token(
        self, column: str, installation_id: str, token: str, reason: str
    ) -> bool:
        now = self._clock()
        async with self._db.transaction() as conn:
            rows = await _rows(
                conn,
                f"SELECT * FROM devices WHERE installation_id = ? AND {column} = ?",
                (installation_id, token),
            )
            if not rows:
                return False
            await self._take_token(conn, _record(rows[0]), column, reason, now)
        return True
