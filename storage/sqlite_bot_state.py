"""botbuilder's `Storage` (bot and dialog state) on the embedded SQLite store.

State objects (DialogState and friends) are plain Python objects, so they are stored with
jsonpickle, which botbuilder-core already depends on; etags follow MemoryStorage's rules so
two turns racing on one conversation never silently overwrite each other.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

import jsonpickle
from botbuilder.core import Storage

from storage.sqlite import SqliteDatabase

__all__ = ["SqliteBotStorage"]


def _etag_of(value: Any) -> str | None:
    tag = value.get("e_tag") if isinstance(value, dict) else getattr(value, "e_tag", None)
    return str(tag) if tag is not None else None


def _with_etag(value: Any, etag: str) -> Any:
    """A shallow copy of `value` carrying `etag`: the caller's object keeps the etag it was read
    with, as in MemoryStorage and botbuilder's Cosmos/Blob storages, so writing it twice is a
    conflict, and a rolled-back write leaves nothing behind in it."""
    if isinstance(value, dict):
        return {**value, "e_tag": etag}
    if hasattr(value, "e_tag"):
        stored = copy.copy(value)
        stored.e_tag = etag
        return stored
    return value


class SqliteBotStorage(Storage):
    """Key/value state documents with etags, one row per key."""

    def __init__(self, db: SqliteDatabase) -> None:
        super().__init__()
        self._db = db

    async def read(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        rows = await self._db.fetchall(
            f"SELECT key, document FROM bot_state WHERE key IN ({','.join('?' * len(keys))})",
            list(keys),
        )
        return {r["key"]: jsonpickle.decode(r["document"]) for r in rows}

    async def write(self, changes: dict[str, Any]) -> None:
        if changes is None:
            raise ValueError("changes are required when writing")
        if not changes:
            return
        async with self._db.transaction() as conn:
            for key, value in changes.items():
                wanted = _etag_of(value)
                if wanted == "":
                    raise ValueError("storage.write(): etag missing")
                rows = list(
                    await conn.execute_fetchall("SELECT etag FROM bot_state WHERE key = ?", (key,))
                )
                current = rows[0]["etag"] if rows else None
                if current is not None and wanted is not None and wanted not in ("*", current):
                    raise KeyError(f"Etag conflict on {key!r}")
                etag = uuid.uuid4().hex
                await conn.execute(
                    "INSERT INTO bot_state (key, etag, document) VALUES (?, ?, ?)"
                    " ON CONFLICT (key) DO UPDATE SET etag = excluded.etag,"
                    " document = excluded.document",
                    (key, etag, jsonpickle.encode(_with_etag(value, etag))),
                )

    async def delete(self, keys: list[str]) -> None:
        if not keys:
            return
        await self._db.write(
            f"DELETE FROM bot_state WHERE key IN ({','.join('?' * len(keys))})", list(keys)
        )
