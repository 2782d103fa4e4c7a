"""Conversation references in Cosmos DB (`conversations`, partition `/userId`)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from azure.cosmos.exceptions import CosmosResourceNotFoundError

from storage.cosmos import CosmosDatabase, doc_id
from storage.records import ConversationTarget, StoredReference, target_key

__all__ = ["CosmosConversationStore"]


def _split_target(target: str) -> tuple[str, str]:
    channel_id, _, conversation_id = target.partition("|")
    return channel_id, conversation_id


def _id(user_id: str, channel_id: str, conversation_id: str) -> str:
    return doc_id("conversation", user_id, channel_id, conversation_id)


def _record(doc: dict[str, Any]) -> StoredReference:
    return StoredReference(
        user_id=doc["userId"],
        channel_id=doc["channelId"],
        conversation_id=doc["conversationId"],
        service_url=doc["serviceUrl"],
        reference=doc["reference"],
        tenant_id=doc.get("tenantId"),
        active=bool(doc["active"]),
    )


class CosmosConversationStore:
    """ConversationStore on Cosmos DB: one document per (user, channel, conversation)."""

    def __init__(self, db: CosmosDatabase) -> None:
        self._db = db

    async def upsert(self, ref: StoredReference) -> None:
        await self._db.container("conversations").upsert_item(
            {
                "id": _id(ref.user_id, ref.channel_id, ref.conversation_id),
                "userId": ref.user_id,
                "channelId": ref.channel_id,
                "conversationId": ref.conversation_id,
                "serviceUrl": ref.service_url,
                "tenantId": ref.tenant_id,
                "reference": ref.reference,
                "active": True,
                "deadReason": None,
                "updatedAt": time.time(),
            }
        )

    async def _active(self, user_ids: Sequence[str], fields: str) -> list[dict[str, Any]]:
        rows = await self._db.query_in(
            "conversations",
            f"SELECT {fields} FROM c WHERE c.active = true AND ARRAY_CONTAINS(@keys, c.userId)",
            list(user_ids),
        )
        rows.sort(key=lambda r: (r["userId"], r["updatedAt"]))
        return rows

    async def for_users(self, user_ids: Sequence[str]) -> dict[str, list[StoredReference]]:
        result: dict[str, list[StoredReference]] = {}
        for row in await self._active(user_ids, "*"):
            result.setdefault(row["userId"], []).append(_record(row))
        return result

    async def ever_stored(self, user_ids: Sequence[str]) -> set[str]:
        rows = await self._db.query_in(
            "conversations",
            "SELECT c.userId FROM c WHERE ARRAY_CONTAINS(@keys, c.userId)",
            list(dict.fromkeys(user_ids)),
        )
        return {row["userId"] for row in rows}

    async def targets_for(
        self, user_ids: Sequence[str]
    ) -> dict[str, list[ConversationTarget]]:
        result: dict[str, list[ConversationTarget]] = {}
        fields = (
            "c.userId, c.channelId, c.conversationId, c.tenantId, c.serviceUrl, c.updatedAt"
        )
        for row in await self._active(user_ids, fields):
            result.setdefault(row["userId"], []).append(
                ConversationTarget(
                    target_key(row["channelId"], row["conversationId"]),
                    row["channelId"],
                    row.get("tenantId"),
                    row["serviceUrl"],
                )
            )
        return result

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], StoredReference]:
        ids = [_id(user_id, *_split_target(target)) for user_id, target in keys]
        rows = await self._db.query_in(
            "conversations", "SELECT * FROM c WHERE ARRAY_CONTAINS(@keys, c.id)", ids
        )
        result: dict[tuple[str, str], StoredReference] = {}
        for row in rows:
            record = _record(row)
            result[(record.user_id, record.target)] = record
        return result

    async def deactivate(self, user_id: str, target: str, reason: str) -> None:
        channel_id, conversation_id = _split_target(target)
        with contextlib.suppress(CosmosResourceNotFoundError):  # never seen: nothing to do
            await self._db.container("conversations").patch_item(
                _id(user_id, channel_id, conversation_id),
                partition_key=user_id,
                patch_operations=[
                    {"op": "set", "path": "/active", "value": False},
                    {"op": "set", "path": "/deadReason", "value": reason},
                    {"op": "set", "path": "/updatedAt", "value": time.time()},
                ],
            )
