"""Token buckets that keep sends inside Teams' published throttling limits.

Teams throttles a bot per conversation ("per bot per thread": 7 messages a second) and per app
per tenant (50 requests a second). Sending faster only buys 429s and longer Retry-After waits,
so the worker's scheduler (delivery/schedule.py) asks these buckets before it gives a send a
slot, and reports the server's pushback (429 + Retry-After) with :meth:`TokenBucket.penalize`.

The buckets are written as a GCRA (generic cell rate algorithm): a bucket keeps one number, the
"theoretical arrival time", instead of a token count and a timer. That makes a reservation for
a future token as cheap as taking a present one, so concurrent callers are handed evenly spaced
slots in the order they asked (fair queueing) without a background refill task.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Final

__all__ = [
    "TEAMS_CONVERSATION_RATE",
    "TEAMS_TENANT_RATE",
    "KeyedBuckets",
    "Reservation",
    "TokenBucket",
    "burst_below",
]

TEAMS_CONVERSATION_RATE: Final = 7.0
"""Messages a second per bot per conversation (thread), Teams' shortest published window."""

TEAMS_TENANT_RATE: Final = 50.0
"""Requests a second per app per tenant, Teams' published global limit."""

_EPSILON: Final = 1e-9
"""Seconds of float rounding forgiven, so a burst of exactly ``capacity`` is not cut short."""

_SWEEP_STEPS: Final = 8
"""Entries a lookup may examine for eviction: bounded work per call, amortised O(1)."""


@dataclass(slots=True)
class Reservation:
    """A slot handed out by :meth:`TokenBucket.reserve_slot`.

    It stays mutable because a penalty that arrives while its holder sleeps moves the slot;
    :meth:`TokenBucket.delay` applies such moves.
    """

    at: float
    """Clock time from which the holder may send."""
    shift_mark: float
    """The bucket's cumulative penalty shift when the slot was last brought up to date."""


class TokenBucket:
    """A token bucket with fair reservations and server-imposed pauses.

    ``rate`` tokens a second refill a bucket of ``capacity`` tokens (the burst). A fresh bucket
    is full; a full bucket carries no information, which is what makes eviction safe.
    """

    __slots__ = (
        "_blocked_until",
        "_capacity",
        "_clock",
        "_interval",
        "_rate",
        "_shift",
        "_tat",
        "_tolerance",
    )

    def __init__(
        self, rate: float, capacity: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"rate must be a positive number of tokens a second, got {rate!r}")
        if not (math.isfinite(capacity) and capacity >= 1):
            raise ValueError(f"capacity must be at least one token, got {capacity!r}")
        self._rate = rate
        self._capacity = capacity
        self._interval = 1.0 / rate
        # How far the arrival time may run ahead of the clock and still grant now: the burst.
        self._tolerance = (capacity - 1.0) * self._interval
        self._clock = clock
        self._tat = clock()
        self._blocked_until = -math.inf
        self._shift = 0.0

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def capacity(self) -> float:
        return self._capacity

    @property
    def full_at(self) -> float:
        """Clock time from which the bucket is full again, so forgetting it loses nothing."""
        return self._tat

    def is_full(self, now: float | None = None) -> bool:
        """True when the bucket is indistinguishable from a new one (the eviction test)."""
        return self._tat <= (self._clock() if now is None else now)

    def available_in(self) -> float:
        """Seconds until :meth:`reserve` would return 0, without reserving anything."""
        now = self._clock()
        wait = max(0.0, self._tat - self._tolerance - now, self._blocked_until - now)
        return 0.0 if wait <= _EPSILON else wait

    def reserve(self) -> float:
        """Take a token now, or the next free one; return the seconds to wait (0 if none).

        Every call consumes a slot, so callers that reserve together are spaced ``1/rate``
        apart in call order. A caller that must honour later penalties should use
        :meth:`reserve_slot` and :meth:`delay` instead.
        """
        now = self._clock()
        return max(0.0, self._take(now) - now)

    def reserve_slot(self) -> Reservation:
        """Like :meth:`reserve`, but keep the slot so a later penalty can move it."""
        return Reservation(self._take(self._clock()), self._shift)

    def delay(self, reservation: Reservation) -> float:
        """Seconds the holder of ``reservation`` must still wait, after any penalties."""
        if reservation.shift_mark != self._shift:
            reservation.at += self._shift - reservation.shift_mark
            reservation.shift_mark = self._shift
        # A holder that overslept its slot past a penalty must not send inside the pause either.
        reservation.at = max(reservation.at, self._blocked_until)
        return max(0.0, reservation.at - self._clock())

    def penalize(self, seconds: float) -> None:
        """The server refused us (429 + Retry-After): no token before now + ``seconds``.

        Slots already handed out and still in the future move back together, keeping their
        spacing, so the first of them lands at the end of the pause. After the pause the bucket
        starts with one token and refills from there rather than allowing a full burst into a
        server that has just pushed back.
        """
        if not math.isfinite(seconds):
            raise ValueError(f"a penalty must be a finite number of seconds, got {seconds!r}")
        if seconds <= 0:
            return
        now = self._clock()
        until = now + seconds
        previous = self._blocked_until
        self._blocked_until = max(previous, until)
        last = self._tat - self._interval - self._tolerance  # slot of the newest reservation
        if last > now:
            # Queued slots are last, last - interval, ...; find the earliest still in the future.
            first = last - math.floor((last - now) / self._interval) * self._interval
            if first <= now:
                first += self._interval
            # Several sends refused at once each report the same pause: slots an earlier
            # penalty already moved start at that pause's end, so only the excess counts.
            if previous > now:
                first = max(first, previous)
            shift = until - first
            if shift > 0:
                self._shift += shift
                self._tat += shift
        self._tat = max(self._tat, until + self._tolerance)

    def _take(self, now: float) -> float:
        tat = max(self._tat, now)
        self._tat = tat + self._interval
        slot = max(tat - self._tolerance, self._blocked_until)
        return now if slot - now <= _EPSILON else slot


@dataclass(slots=True, eq=False)
class _Entry:
    bucket: TokenBucket
    users: int = 0
    lock: asyncio.Lock | None = None


class KeyedBuckets:
    """One :class:`TokenBucket` per key, created on first use, forgotten when it is idle.

    Entries are kept in least-recently-used order. Each lookup examines a few of the oldest:
    a full bucket with nobody waiting on it is dropped (a new one would behave the same), and
    while there are more than ``max_buckets`` entries the oldest idle one is dropped even if it
    is not yet full. That second rule trades a little accuracy (a forgotten conversation may
    get one extra burst) for a hard memory bound; it only bites when more than ``max_buckets``
    keys were used within about a second, beyond what Teams lets one app send anyway. Buckets
    somebody is waiting on are never dropped, so their count is bounded by concurrency.
    """

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_buckets: int = 100_000,
    ) -> None:
        if max_buckets < 1:
            raise ValueError(f"max_buckets must be at least 1, got {max_buckets!r}")
        TokenBucket(rate, capacity, clock)  # validate now rather than on first use
        self._rate = rate
        self._capacity = capacity
        self._clock = clock
        self._max = max_buckets
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def get(self, key: str) -> TokenBucket:
        """The bucket for ``key``, created full if it was unknown or forgotten."""
        return self._checkout(key).bucket

    @contextmanager
    def hold(self, key: str) -> Iterator[_Entry]:
        """Keep ``key``'s entry from eviction while the caller waits on it."""
        entry = self._checkout(key)
        entry.users += 1
        try:
            yield entry
        finally:
            entry.users -= 1
            if entry.users == 0:
                entry.lock = None  # nobody holds or awaits it; don't keep one per idle key

    def _checkout(self, key: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = _Entry(TokenBucket(self._rate, self._capacity, self._clock))
            self._entries[key] = entry
        else:
            self._entries.move_to_end(key)
        self._sweep(key)
        return entry

    def _sweep(self, current: str) -> None:
        now = self._clock()
        for _ in range(_SWEEP_STEPS):
            oldest, entry = next(iter(self._entries.items()))
            if oldest == current:
                return
            if entry.users:
                self._entries.move_to_end(oldest)  # in use, so recently used in effect
            elif entry.bucket.is_full(now) or len(self._entries) > self._max:
                del self._entries[oldest]
            else:
                return


def burst_below(rate: float) -> float:
    """Burst size for a published limit of `rate`/s: one second's worth minus 10% headroom
    (at least 1). The service's buckets start when our first message arrives, not when we sent
    it, so a full-size burst followed by sends at exactly the rate meets an empty bucket at the
    first bit of network jitter (measured: 3-7 429s)."""
    return max(1.0, rate - max(1.0, rate * 0.1))
