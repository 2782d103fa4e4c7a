"""Lane budgets: how fast each lane (a Teams tenant) may send, in this process or deployment-wide.

The worker's scheduler asks a budget before it gives a send a slot. Two kinds:

- :class:`LocalBudget` (one instance, the embedded default): one GCRA token bucket per lane in
  memory (delivery/ratelimit.py).
- :class:`SharedBudget` (several instances on Cosmos DB): one bucket per lane in a shared
  store, from which each instance reserves a few send slots at a time (delivery/budget_cosmos.py
  keeps it in Cosmos DB). The tenant's rate then holds for the whole deployment whatever the
  number of instances, an idle instance takes nothing, and a killed one loses at most the slots
  it had reserved (a fraction of a second of budget): there is no lease to wait out.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final, Protocol

from delivery.ratelimit import KeyedBuckets

__all__ = [
    "BudgetStore",
    "LaneBudget",
    "LocalBudget",
    "SharedBudget",
    "SlotGrant",
    "gcra_grant",
]

log = logging.getLogger(__name__)

_STALE_SLOT: Final = 0.5
"""A reserved slot not used within this many seconds is dropped, never saved up: sending a
stock of old slots at once would be a burst the service's own bucket may not allow."""


class LaneBudget(Protocol):
    """What the scheduler needs to know about a lane's rate."""

    def rate(self, lane: str) -> float:
        """Sends a second the lane may make (sizes the worker's backlog per lane)."""
        ...

    def wait(self, lane: str) -> float | None:
        """Seconds until one send may go in `lane` (0: now); None while the answer is being
        fetched (the budget calls `on_ready(lane)` when it knows)."""
        ...

    def take(self, lane: str) -> None:
        """Use one send of `lane`; only after `wait` answered 0."""
        ...

    def penalize(self, lane: str, seconds: float) -> None:
        """The service refused a send (429 + Retry-After): nothing more in `lane` before it."""
        ...

    async def aclose(self) -> None:
        """Stop any background work (at shutdown)."""
        ...

    on_ready: Callable[[str], None]


class LocalBudget:
    """One token bucket per lane in this process (KeyedBuckets: created on first use, forgotten
    when idle and full)."""

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_lanes: int = 100_000,
    ) -> None:
        self._rate = rate
        self._buckets = KeyedBuckets(rate, capacity, clock=clock, max_buckets=max_lanes)
        self.on_ready: Callable[[str], None] = lambda lane: None

    def rate(self, lane: str) -> float:
        return self._rate

    def wait(self, lane: str) -> float | None:
        return self._buckets.get(lane).available_in()

    def take(self, lane: str) -> None:
        self._buckets.get(lane).reserve()

    def penalize(self, lane: str, seconds: float) -> None:
        self._buckets.get(lane).penalize(seconds)

    async def aclose(self) -> None:
        return None


@dataclass(frozen=True, slots=True)
class SlotGrant:
    """Send slots reserved from a shared bucket: epoch times, earliest first."""

    slots: tuple[float, ...]


def gcra_grant(
    tat: float, blocked_until: float, now: float, count: int, rate: float, capacity: float
) -> tuple[list[float], float]:
    """Reserve `count` slots from a GCRA bucket whose theoretical arrival time is `tat`.

    Returns the slots (epoch seconds, ascending) and the bucket's new arrival time. The same
    arithmetic as delivery/ratelimit.TokenBucket, on numbers that live in a shared store.
    """
    interval = 1.0 / rate
    tolerance = (capacity - 1.0) * interval
    slots: list[float] = []
    for _ in range(count):
        start = max(tat, now)
        tat = start + interval
        slots.append(max(start - tolerance, blocked_until, now))
    return slots, tat


class BudgetStore(Protocol):
    """Where a deployment's shared lane buckets live (Cosmos DB: delivery/budget_cosmos.py)."""

    async def reserve(
        self, lane: str, count: int, rate: float, capacity: float, now: float
    ) -> SlotGrant:
        """Reserve `count` slots of `lane`'s bucket atomically (optimistic concurrency)."""
        ...

    async def block(self, lane: str, until: float, tat: float) -> None:
        """Nobody sends in `lane` before `until` (epoch seconds): a 429's Retry-After; the
        bucket then restarts from arrival time `tat` (one token, not a full burst)."""
        ...


@dataclass(slots=True)
class _Shared:
    slots: deque[float] = field(default_factory=deque)
    fetching: asyncio.Task[None] | None = None
    blocked_until: float = 0.0
    failures: int = 0


class SharedBudget:
    """A lane budget shared by every instance: slots are reserved from the store in small
    blocks (`batch` = a fraction of a second of the rate) only when this instance has work in
    the lane, and dropped when not used soon (`_STALE_SLOT`)."""

    def __init__(
        self,
        store: BudgetStore,
        rate: float,
        capacity: float,
        *,
        batch_seconds: float = 0.25,
        clock: Callable[[], float] = time.time,
        max_lanes: int = 10_000,
    ) -> None:
        self._store = store
        self._rate = rate
        self._capacity = capacity
        self._batch = max(1, math.floor(rate * batch_seconds))
        self._clock = clock
        self._max = max_lanes
        self._lanes: dict[str, _Shared] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_ready: Callable[[str], None] = lambda lane: None

    def rate(self, lane: str) -> float:
        return self._rate

    def _lane(self, lane: str) -> _Shared:
        state = self._lanes.get(lane)
        if state is None:
            if len(self._lanes) >= self._max:
                for key in [k for k, v in self._lanes.items() if not v.slots and not v.fetching]:
                    del self._lanes[key]
            state = self._lanes[lane] = _Shared()
        return state

    def wait(self, lane: str) -> float | None:
        state = self._lane(lane)
        now = self._clock()
        while state.slots and state.slots[0] < now - _STALE_SLOT:
            state.slots.popleft()
        if state.slots:
            first = max(state.slots[0], state.blocked_until)
            return max(0.0, first - now)
        if state.fetching is None:
            state.fetching = asyncio.get_running_loop().create_task(
                self._fetch(lane, state), name=f"herald-budget-{lane[:40]}"
            )
        return None

    def take(self, lane: str) -> None:
        state = self._lane(lane)
        if state.slots:
            state.slots.popleft()

    def penalize(self, lane: str, seconds: float) -> None:
        if seconds <= 0 or not math.isfinite(seconds):
            return
        state = self._lane(lane)
        until = self._clock() + seconds
        state.blocked_until = max(state.blocked_until, until)
        state.slots.clear()  # reserved before the service pushed back: not to be used now
        tat = until + (self._capacity - 1.0) / self._rate
        task = asyncio.get_running_loop().create_task(self._block(lane, until, tat))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _block(self, lane: str, until: float, tat: float) -> None:
        try:
            await self._store.block(lane, until, tat)
        except Exception as exc:
            log.warning("could not share a pause of lane %s: %s", lane, type(exc).__name__)

    async def _fetch(self, lane: str, state: _Shared) -> None:
        try:
            grant = await self._store.reserve(
                lane, self._batch, self._rate, self._capacity, self._clock()
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # The store is unreachable: nothing is sent in this lane (never over the rate);
            # ask again after a short, growing pause.
            state.failures += 1
            pause = min(5.0, 0.2 * 2 ** min(state.failures, 5))
            log.warning(
                "could not reserve send slots for lane %s (%s); trying again in %.1f s",
                lane, type(exc).__name__, pause,
            )
            await asyncio.sleep(pause)
        else:
            state.failures = 0
            state.slots.extend(grant.slots)
        finally:
            state.fetching = None
        self.on_ready(lane)

    async def aclose(self) -> None:
        tasks = [s.fetching for s in self._lanes.values() if s.fetching is not None]
        tasks += list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
