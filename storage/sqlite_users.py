"""Users, aliases and preference documents in the embedded SQLite store."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Sequence
from typing import Any

from errors import ConcurrencyConflict, NotFound
from storage.records import UserRecord
from storage.sqlite import SqliteDatabase

__all__ = ["SqliteUserStore"]

# SQLite's default limit on host parameters is 32766; stay far below it per statement.
_CHUNK = 500


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


def _marks(n: int) -> str:
    return ",".join("?" * n)


def _alias_key(alias: str) -> str:
    """How an alias is stored and looked up: case and surrounding blanks do not matter."""
    return alias.strip().lower()


class SqliteUserStore:
    """UserStore on SQLite; aliases are stored lower-cased so lookups ignore case."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def upsert_user(self, user: UserRecord) -> bool:
        now = time.time()
        async with self._db.transaction() as conn:
            cursor = await conn.execute(
                "INSERT INTO users (user_id, name, channel_id, tenant_id, prefs, etag,"
                " created_at, updated_at) VALUES (?, ?, ?, ?, NULL, ?, ?, ?)"
                " ON CONFLICT (user_id) DO NOTHING",
                (
                    user.user_id,
                    user.name,
                    user.channel_id,
                    user.tenant_id,
                    uuid.uuid4().hex,
                    now,
                    now,
                ),
            )
            created = cursor.rowcount == 1
            await cursor.close()
            if not created:
                await conn.execute(
                    "UPDATE users SET name = COALESCE(?, name), tenant_id = COALESCE(?, tenant_id),"
                    " updated_at = ? WHERE user_id = ?",
                    (user.name, user.tenant_id, now, user.user_id),
                )
            if user.aliases:
                await conn.executemany(
                    "INSERT INTO aliases (alias, user_id) VALUES (?, ?)"
                    " ON CONFLICT (alias) DO UPDATE SET user_id = excluded.user_id",
                    [(_alias_key(alias), user.user_id) for alias in user.aliases if alias.strip()],
                )
        return created

    async def get_user(self, user_id: str) -> UserRecord | None:
        row = await self._db.fetchone(
            "SELECT user_id, name, channel_id, tenant_id FROM users WHERE user_id = ?", (user_id,)
        )
        if row is None:
            return None
        aliases = await self._db.fetchall(
            "SELECT alias FROM aliases WHERE user_id = ? ORDER BY alias", (user_id,)
        )
        return UserRecord(
            user_id=row["user_id"],
            channel_id=row["channel_id"],
            name=row["name"],
            tenant_id=row["tenant_id"],
            aliases=tuple(a["alias"] for a in aliases),
        )

    async def resolve(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        for chunk in _chunks(list(keys)):
            rows = await self._db.fetchall(
                f"SELECT user_id FROM users WHERE user_id IN ({_marks(len(chunk))})", chunk
            )
            found.update({r["user_id"]: r["user_id"] for r in rows})
            rest = [k for k in chunk if k not in found]
            if not rest:
                continue
            # Several keys may spell one alias differently ("Ann@x.com", "ann@x.com"): each of
            # them resolves, or the router would report the others as unknown users.
            spellings: dict[str, list[str]] = {}
            for k in rest:
                spellings.setdefault(_alias_key(k), []).append(k)
            rows = await self._db.fetchall(
                f"SELECT alias, user_id FROM aliases WHERE alias IN ({_marks(len(spellings))})",
                list(spellings),
            )
            for r in rows:
                for k in spellings[r["alias"]]:
                    found[k] = r["user_id"]
        return found

    async def user_id_page(self, after: str | None, limit: int) -> list[str]:
        rows = await self._db.fetchall(
            "SELECT user_id FROM users WHERE user_id > ? ORDER BY user_id LIMIT ?",
            (after or "", limit),
        )
        return [r["user_id"] for r in rows]

    async def count(self) -> int:
        row = await self._db.fetchone("SELECT COUNT(*) AS n FROM users")
        return int(row["n"]) if row else 0

    async def get_preferences(self, user_id: str) -> tuple[dict[str, Any] | None, str]:
        row = await self._db.fetchone("SELECT prefs, etag FROM users WHERE user_id = ?", (user_id,))
        if row is None:
            raise NotFound(f"user {user_id!r} is not known")
        prefs = json.loads(row["prefs"]) if row["prefs"] else None
        return prefs, str(row["etag"])

    async def preferences_for(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        result: dict[str, dict[str, Any] | None] = {}
        for chunk in _chunks(list(user_ids)):
            rows = await self._db.fetchall(
                f"SELECT user_id, prefs FROM users WHERE user_id IN ({_marks(len(chunk))})", chunk
            )
            for r in rows:
                result[r["user_id"]] = json.loads(r["prefs"]) if r["prefs"] else None
        return result

    async def put_preferences(
        self, user_id: str, prefs: dict[str, Any], if_match: str | None
    ) -> str:
        etag = uuid.uuid4().hex
        async with self._db.transaction() as conn:
            rows = list(
                await conn.execute_fetchall("SELECT etag FROM users WHERE user_id = ?", (user_id,))
            )
            if not rows:
                raise NotFound(f"user {user_id!r} is not known")
            if if_match is not None and if_match != "*" and rows[0]["etag"] != if_match:
                raise ConcurrencyConflict(
                    f"preferences of {user_id!r} changed since they were read"
                )
            await conn.execute(
                "UPDATE users SET prefs = ?, etag = ?, updated_at = ? WHERE user_id = ?",
                (json.dumps(prefs, separators=(",", ":")), etag, time.time(), user_id),
            )
        return etag
