"""The unread badge a push carries: each person's unread count, read when a batch is loaded.

Read anywhere is read everywhere: the count comes from the person's inbox (InboxStore), where
every surface records reads, so the next push after a read elsewhere shows the lower number.
It is read once per leased batch (one query for its users), not per send, and travels with
the loaded target (`Badged`) from the channel's `load` to its `send`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from delivery.outbox import DeliveryJob

__all__ = ["Badged", "UnreadCounts", "unwrap", "with_badges"]

log = logging.getLogger(__name__)

UnreadCounts = Callable[[Sequence[str]], Awaitable[dict[str, int]]]
"""Unread count per user id (InboxStore.unread_counts); absent users have none."""


@dataclass(frozen=True, slots=True)
class Badged:
    """A loaded push target and its person's unread count when the batch was loaded."""

    target: Any
    unread: int


async def with_badges(
    targets: dict[int, Any], jobs: Sequence[DeliveryJob], counts: UnreadCounts | None
) -> dict[int, Any]:
    """`targets` (by job id) wrapped with their people's unread counts. Without a source,
    or when it fails (the badge is a nicety, the push is not), they go unbadged."""
    if counts is None or not targets:
        return targets
    users = {job.id: job.user_id for job in jobs if job.id in targets}
    try:
        unread = await counts(list(dict.fromkeys(users.values())))
    except Exception:  # the store is busy or away: send without a badge
        log.warning("could not read unread counts for push badges", exc_info=True)
        return targets
    return {
        job_id: Badged(target, unread.get(users[job_id], 0)) for job_id, target in targets.items()
    }


def unwrap(target: Any) -> tuple[Any, int | None]:
    """(the target, its unread count or None when it carries none)."""
    if isinstance(target, Badged):
        return target.target, target.unread
    return target, None
