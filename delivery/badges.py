"""The unread badge a push carries: each person's unread count, read when a batch is loaded.

Read anywhere is read everywhere: the count comes from the person's inbox (InboxStore), where
every surface records reads, so the next push after a read elsewhere shows the lower number.
It is read once per leased batch (one query for its users), not per send, and travels with
the loaded target (`Badged`) from the channel's `load` to its `send`.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from delivery.outbox import DeliveryJob

__all__ = ["Badged", "MaybeBadged", "UnreadCounts", "unwrap", "with_badges"]

log = logging.getLogger(__name__)

UnreadCounts = Callable[[Sequence[str]], Awaitable[dict[str, int]]]
"""Unread count per user id (InboxStore.unread_counts); absent users have none."""


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Badged(Generic[T]):
    """A loaded push target and its person's unread count when the batch was loaded."""

    target: T
    unread: int


MaybeBadged: TypeAlias = T | Badged[T]
"""A loaded push target, with its person's unread count when it could be read."""


async def with_badges(
    targets: Mapping[int, T], jobs: Sequence[DeliveryJob], counts: UnreadCounts | None
) -> dict[int, MaybeBadged[T]]:
    """`targets` (by job id) wrapped with their people's unread counts. Without a source,
    or when it fails (the badge is a nicety, the push is not), they go unbadged."""
    if counts is None or not targets:
        return dict(targets)
    users = {job.id: job.user_id for job in jobs if job.id in targets}
    try:
        unread = await counts(list(dict.fromkeys(users.values())))
    except Exception:  # the store is busy or away: send without a badge
        log.warning("could not read unread counts for push badges", exc_info=True)
        return dict(targets)
    return {
        job_id: Badged(target, unread.get(users[job_id], 0)) for job_id, target in targets.items()
    }


def unwrap(target: MaybeBadged[T]) -> tuple[T, int | None]:
    """(the target, its unread count or None when it carries none)."""
    if isinstance(target, Badged):
        return target.target, target.unread
    return target, None
