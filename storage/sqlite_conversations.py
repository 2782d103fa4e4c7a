"""Conversation references in the embedded SQLite store."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

from storage.records import ConversationTarget, StoredReference, target_key
from storage.sqlite import SqliteDatabase

__all__ = ["SqliteConversationStore"]

_CHUNK = 500


def _split_target(target: str) -> tuple[str, str]:
    channel_id, _, conversation_id = target.partition("|")
    return channel_id, conversation_id


def _record(row: Any) -> StoredReference:
    return StoredReference(
        user_id=row["user_id"],
        channel_id=row["channel_id"],
        conversation_id=row["conversation_id"],
        service_url=row["service_url"],
        reference=json.loads(row["reference"]),
        tenant_id=row["tenant_id"],
        active=bool(row["active"]),
    )


class SqliteConversationStore:
    """ConversationStore on SQLite."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def upsert(self, ref: StoredReference) -> None:
        await self._db.write(
            "INSERT INTO conversations (user_id, channel_id, conversation_id, service_url,"
            " tenant_id, reference, active, dead_reason, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, 1, NULL, ?)"
            " ON CONFLICT (user_id, channel_id, conversation_id) DO UPDATE SET"
            " service_url = excluded.service_url, tenant_id = excluded.tenant_id,"
            " reference = excluded.reference, active = 1, dead_reason = NULL,"
            " updated_at = excluded.updated_at",
            (
                ref.user_id,
                ref.channel_id,
                ref.conversation_id,
                ref.service_url,
                ref.tenant_id,
                json.dumps(ref.reference, separators=(",", ":")),
                time.time(),
            ),
        )

    async def for_users(self, user_ids: Sequence[str]) -> dict[str, list[StoredReference]]:
        result: dict[str, list[StoredReference]] = {}
        ids = list(user_ids)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = await self._db.fetchall(
                "SELECT * FROM conversations WHERE active = 1 AND user_id IN"
                f" ({','.join('?' * len(chunk))}) ORDER BY user_id, updated_at",
                chunk,
            )
            for row in rows:
                result.setdefault(row["user_id"], []).append(_record(row))
        return result

    async def ever_stored(self, user_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        ids = list(dict.fromkeys(user_ids))
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = await self._db.fetchall(
                "SELECT DISTINCT user_id FROM conversations"
                f" WHERE user_id IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            found.update(row["user_id"] for row in rows)
        return found

    async def targets_for(
        self, user_ids: Sequence[str]
    ) -> dict[str, list[ConversationTarget]]:
        result: dict[str, list[ConversationTarget]] = {}
        ids = list(user_ids)
        for i in range(0, len(ids), _CHUNK):
            chunk = ids[i : i + _CHUNK]
            rows = await self._db.fetchall(
                "SELECT user_id, channel_id, conversation_id, tenant_id, service_url"
                " FROM conversations"
                f" WHERE active = 1 AND user_id IN ({','.join('?' * len(chunk))})"
                " ORDER BY user_id, updated_at",
                chunk,
            )
            for user_id, channel_id, conversation_id, tenant_id, service_url in rows:
                result.setdefault(user_id, []).append(
                    ConversationTarget(
                        target_key(channel_id, conversation_id), channel_id, tenant_id,
                        service_url,
                    )
                )
        return result

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredReference]:
        result: dict[tuple[str, str], StoredReference] = {}
        wanted = list(dict.fromkeys(keys))
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i : i + _CHUNK]
            clauses = " OR ".join(
                "(user_id = ? AND channel_id = ? AND conversation_id = ?)" for _ in chunk
            )
            params: list[str] = []
            for user_id, target in chunk:
                params.extend((user_id, *_split_target(target)))
            for row in await self._db.fetchall(
                f"SELECT * FROM conversations WHERE {clauses}", params
            ):
                record = _record(row)
                result[(record.user_id, record.target)] = record
        return result

    async def deactivate(self, user_id: str, target: str, reason: str) -> None:
        channel_id, conversation_id = _split_target(target)
        await self._db.write(
            "UPDATE conversations SET active = 0, dead_reason = ?, updated_at = ?"
            " WHERE user_id = ? AND channel_id = ? AND conversation_id = ?",
            (reason, time.time(), user_id, channel_id, conversation_id),
        )
