"""Answers to a notification's prompt, counted per choice, for GET /api/notifications/{id}."""

from __future__ import annotations

from dialogs.cards import prompt_of
from storage.protocols import PromptStore
from storage.records import NotificationRecord

__all__ = ["prompt_answer_counts"]


async def prompt_answer_counts(
    prompts: PromptStore, notification: NotificationRecord
) -> dict[str, int] | None:
    """`{"Yes": 3, "No": 1}` in the order of the prompt's choices, zeros included; None when
    the notification asks nothing. An answer to a choice an update removed is still counted,
    after the current ones."""
    prompt = prompt_of(notification.event)
    if prompt is None:
        return None
    counts = await prompts.answer_counts(notification.id)
    ordered = {choice: counts.get(choice, 0) for choice in prompt[1]}
    for choice, count in counts.items():
        ordered.setdefault(choice, count)
    return ordered
