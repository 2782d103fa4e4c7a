"""The worker's scheduler: leased jobs wait here per lane, never in a send slot.

Work-conserving: a job whose lane (tenant) or conversation has no budget now waits in its lane,
and the worker's free slots always go to the best job that *can* go now. So a broadcast waiting
for tenant A's tokens never holds back tenant B, nor an unthrottled Web Chat user.

Order (delivery/fairness.py): the lowest (priority, fair tag) first — among the jobs of one lane,
and between lanes that can send now. Inside a lane a job whose conversation is out of budget
(Teams: 7 a second per conversation) is parked until its conversation may send and the lane
goes on with its next job.

Everything here is synchronous and driven by a clock, so it is tested step by step; the worker
(delivery/worker.py) calls `pop` while it has free slots and sleeps until `wake_at` or until it
is told something changed.
"""

from __future__ import annotations

import heapq
import itertools
import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from delivery.budget import LaneBudget
from delivery.channel import UNPACED, Pace
from delivery.outbox import DeliveryJob
from delivery.ratelimit import KeyedBuckets
from storage.records import NotificationRecord

__all__ = ["Entry", "LaneState", "Scheduler"]

_MIN_LANE_BACKLOG: Final = 16
_LANE_BACKLOG_SECONDS: Final = 2.0
"""A paced lane holds this many seconds of its rate in memory (at least 16 jobs): enough that it
never runs dry between leases, little enough that what waits in the store can still be
overtaken by a more urgent or fairer job."""

LaneState = Literal["idle", "ready", "waiting", "asking"]


@dataclass(slots=True, eq=False)
class Entry:
    """A leased job, ready to be sent once its lane and conversation allow."""

    job: DeliveryJob
    target: Any
    notification: NotificationRecord | None
    pace: Pace | None
    since: float = 0.0
    """Clock time it entered the scheduler (for the wait metric)."""
    leased_at: float = 0.0
    """Clock time just before its lease was asked for: the lease runs from then, not from when
    loading its notification and target let it into the scheduler (slow under load)."""

    @property
    def key(self) -> tuple[int, float]:
        return (self.job.priority, self.job.tag)


@dataclass(slots=True, eq=False)
class _Lane:
    name: str
    heap: list[tuple[int, float, int, Entry]] = field(default_factory=list)
    parked: int = 0
    state: LaneState = "idle"
    marker: tuple[int, float, int] | None = None
    """The key of this lane's one valid marker in the ready heap (older ones are stale)."""

    @property
    def backlog(self) -> int:
        return len(self.heap) + self.parked


class Scheduler:
    """Leased jobs by lane, handed out when their budget allows, best first."""

    def __init__(
        self,
        budget: LaneBudget,
        conversations: KeyedBuckets,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._budget = budget
        self._conversations = conversations
        self._clock = clock
        self._seq = itertools.count()
        self._free: list[tuple[int, float, int, Entry]] = []
        self._lanes: dict[str, _Lane] = {}
        self._ready: list[tuple[int, float, int, str]] = []
        self._timers: list[tuple[float, int, str]] = []
        self._parked: list[tuple[float, int, Entry]] = []
        self._size = 0

    def __len__(self) -> int:
        return self._size

    @property
    def unpaced(self) -> int:
        """Jobs waiting that no lane paces (they wait only for a slot)."""
        return len(self._free)

    def lane_cap(self, lane: str) -> int:
        """How many jobs of a paced lane are worth holding in memory."""
        return max(_MIN_LANE_BACKLOG, math.ceil(self._budget.rate(lane) * _LANE_BACKLOG_SECONDS))

    def backlog(self, lane: str) -> int:
        found = self._lanes.get(lane)
        return found.backlog if found is not None else 0

    def full_lanes(self) -> list[str]:
        """Paced lanes holding at least their cap: the store keeps the rest of their backlog."""
        return [name for name, lane in self._lanes.items() if lane.backlog >= self.lane_cap(name)]

    def lane_states(self) -> dict[str, tuple[LaneState, int]]:
        """Each lane with work here: its state and backlog (for the status and /metrics)."""
        return {name: (lane.state, lane.backlog) for name, lane in self._lanes.items()}

    def parked_notifications(self) -> Counter[str]:
        """Notifications with jobs waiting for their conversation's budget, and how many."""
        return Counter(entry.job.notification_id for _, _, entry in self._parked)

    def add(self, entry: Entry) -> None:
        entry.since = self._clock()
        self._size += 1
        if entry.pace is None or entry.pace.lane == UNPACED:
            heapq.heappush(self._free, (*entry.key, next(self._seq), entry))
            return
        self._enlane(entry)

    def _enlane(self, entry: Entry) -> None:
        assert entry.pace is not None
        name = entry.pace.lane
        lane = self._lanes.get(name)
        if lane is None:
            lane = self._lanes[name] = _Lane(name)
        item = (*entry.key, next(self._seq), entry)
        heapq.heappush(lane.heap, item)
        if lane.state == "idle":
            lane.state = "ready"
            self._mark(lane)
        elif lane.state == "ready" and lane.marker is not None and item[:3] < lane.marker:
            self._mark(lane)  # a better head: the lane competes with its new key

    def _mark(self, lane: _Lane) -> None:
        priority, tag, seq, _ = lane.heap[0]
        lane.marker = (priority, tag, seq)
        heapq.heappush(self._ready, (priority, tag, seq, lane.name))

    def _settle_lane(self, lane: _Lane) -> None:
        """After taking from a lane: compete again, or rest, or be forgotten."""
        if lane.heap:
            lane.state = "ready"
            self._mark(lane)
        elif lane.parked:
            lane.state = "idle"
            lane.marker = None
        else:
            del self._lanes[lane.name]

    def budget_ready(self, lane_name: str) -> None:
        """The lane's budget answered (a shared budget fetched slots): compete again."""
        lane = self._lanes.get(lane_name)
        if lane is not None and lane.state == "asking":
            self._settle_lane(lane)

    def _promote(self, now: float) -> None:
        while self._timers and self._timers[0][0] <= now:
            _, _, name = heapq.heappop(self._timers)
            lane = self._lanes.get(name)
            if lane is not None and lane.state == "waiting":
                self._settle_lane(lane)
        while self._parked and self._parked[0][0] <= now:
            _, _, entry = heapq.heappop(self._parked)
            assert entry.pace is not None
            self._lanes[entry.pace.lane].parked -= 1
            self._enlane(entry)  # still counted in the size while parked

    def pop(self) -> Entry | None:
        """The best job that may be sent now (its budget is taken), or None."""
        now = self._clock()
        self._promote(now)
        while True:
            lane_head = self._ready[0] if self._ready else None
            free_head = self._free[0] if self._free else None
            if lane_head is None and free_head is None:
                return None
            if free_head is not None and (lane_head is None or free_head[:3] < lane_head[:3]):
                heapq.heappop(self._free)
                self._size -= 1
                return free_head[3]
            assert lane_head is not None
            heapq.heappop(self._ready)
            lane = self._lanes.get(lane_head[3])
            if lane is None or lane.state != "ready" or lane.marker != lane_head[:3]:
                continue  # stale marker
            lane.marker = None
            wait = self._budget.wait(lane.name)
            if wait is None:
                lane.state = "asking"
                continue
            if wait > 0:
                lane.state = "waiting"
                heapq.heappush(self._timers, (now + wait, next(self._seq), lane.name))
                continue
            entry = lane.heap[0][3]
            assert entry.pace is not None
            conversation = self._conversations.get(entry.pace.conversation)
            conversation_wait = conversation.available_in()
            heapq.heappop(lane.heap)
            if conversation_wait > 0:
                lane.parked += 1
                heapq.heappush(self._parked, (now + conversation_wait, next(self._seq), entry))
                self._settle_lane(lane)
                continue
            self._budget.take(lane.name)
            conversation.reserve()
            self._size -= 1
            self._settle_lane(lane)
            return entry

    def wake_at(self) -> float | None:
        """Clock time when a waiting lane or parked job may go, or None."""
        times = []
        if self._timers:
            times.append(self._timers[0][0])
        if self._parked:
            times.append(self._parked[0][0])
        return min(times) if times else None

    def penalize(self, pace: Pace, seconds: float) -> None:
        """A 429 + Retry-After: pause the conversation and the lane."""
        self._conversations.get(pace.conversation).penalize(seconds)
        self._budget.penalize(pace.lane, seconds)

    def take_lane(self, lane_name: str) -> list[Entry]:
        """Every job waiting in a lane, taken out (a long pause: they go back to the store)."""
        lane = self._lanes.pop(lane_name, None)
        if lane is None:
            return []
        taken = [item[3] for item in lane.heap]
        if lane.parked:
            kept = []
            for item in self._parked:
                pace = item[2].pace
                if pace is not None and pace.lane == lane_name:
                    taken.append(item[2])
                else:
                    kept.append(item)
            heapq.heapify(kept)
            self._parked = kept
        self._size -= len(taken)
        return taken

    def drain(self) -> list[Entry]:
        """Every job still waiting here (at shutdown: they go back to the store)."""
        entries = [item[3] for item in self._free]
        entries += [item[3] for lane in self._lanes.values() for item in lane.heap]
        entries += [item[2] for item in self._parked]
        self._free.clear()
        self._lanes.clear()
        self._ready.clear()
        self._timers.clear()
        self._parked.clear()
        self._size = 0
        return entries
