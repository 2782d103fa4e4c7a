"""Prompt answers and waiting prompts in the embedded SQLite store."""

from __future__ import annotations

import json
from typing import Any

from storage.records import PendingPrompt
from storage.sqlite import SqliteDatabase

__all__ = ["SqlitePromptStore"]


def _pending(row: Any) -> PendingPrompt:
    return PendingPrompt(
        conversation_key=row["conversation_key"],
        notification_id=row["notification_id"],
        user_id=row["user_id"],
        text=row["text"],
        choices=tuple(json.loads(row["choices"])),
        queued_at=float(row["queued_at"]),
    )


class SqlitePromptStore:
    """PromptStore on SQLite: one row per answer, one row per waiting prompt."""

    def __init__(self, db: SqliteDatabase) -> None:
        self._db = db

    async def record_answer(
        self, notification_id: str, user_id: str, choice: str, answered_at: float
    ) -> None:
        await self._db.write(
            "INSERT INTO prompt_answers (notification_id, user_id, choice, answered_at)"
            " VALUES (?, ?, ?, ?) ON CONFLICT (notification_id, user_id) DO UPDATE SET"
            " choice = excluded.choice, answered_at = excluded.answered_at",
            (notification_id, user_id, choice, answered_at),
        )

    async def answer_of(self, notification_id: str, user_id: str) -> str | None:
        row = await self._db.fetchone(
            "SELECT choice FROM prompt_answers WHERE notification_id = ? AND user_id = ?",
            (notification_id, user_id),
        )
        return str(row["choice"]) if row is not None else None

    async def answer_counts(self, notification_id: str) -> dict[str, int]:
        rows = await self._db.fetchall(
            "SELECT choice, COUNT(*) AS n FROM prompt_answers WHERE notification_id = ?"
            " GROUP BY choice ORDER BY choice",
            (notification_id,),
        )
        return {str(r["choice"]): int(r["n"]) for r in rows}

    async def queue(self, prompt: PendingPrompt) -> None:
        await self._db.write(
            "INSERT INTO pending_prompts (conversation_key, notification_id, user_id, text,"
            " choices, queued_at) VALUES (?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (conversation_key, notification_id) DO UPDATE SET"
            " text = excluded.text, choices = excluded.choices",
            (
                prompt.conversation_key,
                prompt.notification_id,
                prompt.user_id,
                prompt.text,
                json.dumps(list(prompt.choices), ensure_ascii=False),
                prompt.queued_at,
            ),
        )

    async def pending(self, conversation_key: str) -> list[PendingPrompt]:
        rows = await self._db.fetchall(
            "SELECT * FROM pending_prompts WHERE conversation_key = ?"
            " ORDER BY queued_at, rowid",
            (conversation_key,),
        )
        return [_pending(r) for r in rows]

    async def take_newest(self, conversation_key: str, user_id: str) -> PendingPrompt | None:
        rows = await self._db.write_returning(
            "DELETE FROM pending_prompts WHERE rowid = (SELECT rowid FROM pending_prompts"
            " WHERE conversation_key = ? AND user_id = ? ORDER BY queued_at DESC, rowid DESC"
            " LIMIT 1) RETURNING *",
            (conversation_key, user_id),
        )
        return _pending(rows[0]) if rows else None

    async def discard(self, conversation_key: str, notification_id: str) -> bool:
        changed = await self._db.write(
            "DELETE FROM pending_prompts WHERE conversation_key = ? AND notification_id = ?",
            (conversation_key, notification_id),
        )
        return changed > 0

    async def clear(self, conversation_key: str) -> int:
        return await self._db.write(
            "DELETE FROM pending_prompts WHERE conversation_key = ?", (conversation_key,)
        )
