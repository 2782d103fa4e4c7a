"""Who goes first: priority classes from urgency, and fair tags between notifications.

A broadcast to 10,000 people and an alert to one must share a tenant's budget so that the alert
is not sent after the 10,000th message. Two rules decide the order, in the store (which jobs are
leased) and in the worker (which leased job gets the next token):

1. **Priority classes.** `urgency: high` goes before everything else, `low` and `very-low` after
   `normal`. Strict: a lower class only gets what a higher one leaves over, so the broadcast
   still keeps almost the whole budget while nothing urgent waits.
2. **Fair tags inside a class** (start-time fair queueing). Each lane (the rate limit sends
   share, delivery/channel.py) has a virtual clock: the tag of the last job it sent. A
   notification's k-th delivery in a lane is tagged `clock + k` when it is expanded, so a
   notification posted during a broadcast interleaves one-for-one with what is left of it
   instead of queueing behind it, and a broadcast alone goes at full speed (tags only order).
   Retries and deferred deliveries keep their tag: when due they are the oldest.

Virtual clocks live in memory (one number per lane, bounded); a restarted process takes them
from the lowest tags still outstanding (DeliveryQueue.lane_tags).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import Final

__all__ = ["DEFAULT_PRIORITY", "PRIORITIES", "FairClock", "priority_of"]

PRIORITIES: Final[Mapping[str, int]] = {"high": 0, "normal": 1, "low": 2, "very-low": 3}
"""Urgency (RFC 8030's values, the event's `urgency`) → priority class; lower goes first."""

DEFAULT_PRIORITY: Final = PRIORITIES["normal"]


def priority_of(urgency: object) -> int:
    """The priority class of an event's `urgency` (normal when absent or unknown)."""
    return PRIORITIES.get(urgency, DEFAULT_PRIORITY) if isinstance(urgency, str) else (
        DEFAULT_PRIORITY
    )


class FairClock:
    """Virtual time per lane, for fair tags. Shared by the router (tags new deliveries) and
    the worker (advances a lane's clock as it leases its jobs)."""

    def __init__(self, max_lanes: int = 100_000) -> None:
        if max_lanes < 1:
            raise ValueError(f"max_lanes must be at least 1, got {max_lanes!r}")
        self._lanes: OrderedDict[str, float] = OrderedDict()
        self._max = max_lanes
        self._latest = 0.0

    def seed(self, tags: Mapping[str, float]) -> None:
        """Resume from the lowest tags still outstanding (a restarted process)."""
        for lane, tag in tags.items():
            self._set(lane, max(tag, self._lanes.get(lane, tag)))
            self._latest = max(self._latest, tag)

    def now(self, lane: str) -> float:
        """Where a notification expanded now starts in `lane`. A lane not seen lately starts
        at the latest tag of any lane, so it neither jumps ahead of nor waits behind others."""
        return self._lanes.get(lane, self._latest)

    def advance(self, lane: str, tag: float) -> None:
        """A job of `lane` tagged `tag` was taken into service (given a send slot)."""
        current = self._lanes.get(lane)
        if current is None or tag > current:
            self._set(lane, tag)
        if tag > self._latest:
            self._latest = tag

    def _set(self, lane: str, tag: float) -> None:
        self._lanes[lane] = tag
        self._lanes.move_to_end(lane)
        while len(self._lanes) > self._max:
            self._lanes.popitem(last=False)
