"""Prompt answers and waiting prompts in Cosmos DB.

Answers live in `promptAnswers` (partition `/notificationId`: counting them is one partition's
query); waiting prompts in `pendingPrompts` (partition `/conversationKey`). Taking a prompt is a
delete guarded by the etag it was read with, so of several turns racing for one prompt exactly
one gets it (the others look again).
"""

from __future__ import annotations

import time
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.exceptions import CosmosResourceExistsError

from storage.cosmos import CosmosDatabase, bounded, doc_id
from storage.records import PendingPrompt

__all__ = ["CosmosPromptStore"]


def _pending(doc: dict[str, Any]) -> PendingPrompt:
    return PendingPrompt(
        conversation_key=doc["conversationKey"],
        notification_id=doc["notificationId"],
        user_id=doc["userId"],
        text=doc["text"],
        choices=tuple(doc["choices"]),
        queued_at=float(doc["queuedAt"]),
    )


def _order(doc: dict[str, Any]) -> tuple[float, int]:
    return float(doc["queuedAt"]), int(doc["seq"])


class CosmosPromptStore:
    """PromptStore on Cosmos DB."""

    def __init__(self, db: CosmosDatabase) -> None:
        self._db = db

    async def record_answer(
        self, notification_id: str, user_id: str, choice: str, answered_at: float
    ) -> None:
        await self._db.container("promptAnswers").upsert_item(
            {
                "id": doc_id("answer", notification_id, user_id),
                "notificationId": notification_id,
                "userId": user_id,
                "choice": choice,
                "answeredAt": answered_at,
            }
        )

    async def answer_of(self, notification_id: str, user_id: str) -> str | None:
        doc = await self._db.read(
            "promptAnswers", doc_id("answer", notification_id, user_id), notification_id
        )
        return str(doc["choice"]) if doc is not None else None

    async def answer_counts(self, notification_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        async for page in self._db.pages(
            "promptAnswers",
            "SELECT VALUE c.choice FROM c WHERE c.notificationId = @n",
            {"@n": notification_id},
            partition_key=notification_id,
        ):
            for choice in page:
                counts[str(choice)] = counts.get(str(choice), 0) + 1
        return dict(sorted(counts.items()))

    async def queue(self, prompt: PendingPrompt) -> None:
        key = doc_id("prompt", prompt.conversation_key, prompt.notification_id)
        container = self._db.container("pendingPrompts")
        try:
            await container.create_item(
                {
                    "id": key,
                    "conversationKey": prompt.conversation_key,
                    "notificationId": prompt.notification_id,
                    "userId": prompt.user_id,
                    "text": prompt.text,
                    "choices": list(prompt.choices),
                    "queuedAt": prompt.queued_at,
                    "seq": time.time_ns(),  # insertion order among equal queuedAt
                }
            )
        except CosmosResourceExistsError:
            await container.patch_item(
                key, partition_key=prompt.conversation_key,
                patch_operations=[
                    {"op": "set", "path": "/text", "value": prompt.text},
                    {"op": "set", "path": "/choices", "value": list(prompt.choices)},
                ],
            )

    async def _docs(self, conversation_key: str, user_id: str | None = None) -> list[Any]:
        sql = "SELECT * FROM c WHERE c.conversationKey = @k"
        params: dict[str, Any] = {"@k": conversation_key}
        if user_id is not None:
            sql += " AND c.userId = @u"
            params["@u"] = user_id
        docs = await self._db.query(
            "pendingPrompts", sql, params, partition_key=conversation_key
        )
        docs.sort(key=_order)
        return docs

    async def pending(self, conversation_key: str) -> list[PendingPrompt]:
        return [_pending(d) for d in await self._docs(conversation_key)]

    async def take_newest(self, conversation_key: str, user_id: str) -> PendingPrompt | None:
        while True:
            docs = await self._docs(conversation_key, user_id)
            if not docs:
                return None
            newest = docs[-1]
            if await self._db.delete(
                "pendingPrompts", newest["id"], conversation_key,
                etag=newest["_etag"], match_condition=MatchConditions.IfNotModified,
            ):
                return _pending(newest)
            # Taken (or refreshed) by someone else meanwhile: look again.

    async def discard(self, conversation_key: str, notification_id: str) -> bool:
        return await self._db.delete(
            "pendingPrompts", doc_id("prompt", conversation_key, notification_id),
            conversation_key,
        )

    async def clear(self, conversation_key: str) -> int:
        docs = await self._docs(conversation_key)
        removed = await bounded(
            self._db.delete("pendingPrompts", d["id"], conversation_key) for d in docs
        )
        return sum(removed)
