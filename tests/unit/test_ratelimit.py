"""Rate limiting: Teams' per-conversation and per-tenant limits, fairness, penalties, memory.

Most tests run on a virtual-time event loop: when every task is asleep the loop jumps its clock
to the next timer instead of waiting, so seconds of simulated traffic take milliseconds and the
timings are exact. One short test runs on the real clock to prove the pieces fit together.
"""

from __future__ import annotations

import asyncio
import itertools
import selectors
import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

import pytest

from delivery.ratelimit import (
    TEAMS_CONVERSATION_RATE,
    TEAMS_TENANT_RATE,
    KeyedBuckets,
    Limiter,
    NoLimit,
    RateLimiter,
    TokenBucket,
)

T = TypeVar("T")
EPS = 1e-9


class FakeClock:
    """A clock that moves only when the test says."""

    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class _TimeWarpSelector(selectors.DefaultSelector):
    """Polls real I/O without blocking and advances the virtual clock by the loop's timeout."""

    def __init__(self, clock: FakeClock) -> None:
        super().__init__()
        self._clock = clock

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        events = super().select(0)
        if events:
            return events
        if timeout is None:
            raise RuntimeError("every task waits and no timer is set: the test would hang")
        self._clock.advance(timeout)
        return []


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self) -> None:
        self.clock = FakeClock()
        super().__init__(_TimeWarpSelector(self.clock))

    def time(self) -> float:
        return self.clock.now


def run_virtual(main: Callable[[VirtualTimeLoop], Coroutine[Any, Any, T]]) -> T:
    loop = VirtualTimeLoop()
    try:
        return loop.run_until_complete(main(loop))
    finally:
        loop.close()


def limiter_on(loop: VirtualTimeLoop, **kwargs: Any) -> RateLimiter:
    return RateLimiter(clock=loop.time, sleep=asyncio.sleep, **kwargs)


async def grant_times(
    loop: VirtualTimeLoop, limiter: Limiter, calls: Sequence[tuple[str, str | None]]
) -> list[float]:
    """Start all calls at once (in order) and return, per call, the time it was granted."""

    async def one(conversation: str, tenant: str | None) -> float:
        await limiter.acquire(conversation, tenant)
        return loop.time()

    return list(await asyncio.gather(*(one(c, t) for c, t in calls)))


def assert_conforms(times: Sequence[float], rate: float, capacity: float) -> None:
    """No window [a, b] holds more grants than the burst plus what the rate refills in it."""
    ordered = sorted(times)
    for i, start in enumerate(ordered):
        for j in range(i, len(ordered)):
            allowed = capacity + rate * (ordered[j] - start)
            assert j - i + 1 <= allowed + 1e-6, (i, j, start, ordered[j])


# --- TokenBucket ---------------------------------------------------------------------------


def test_bucket_burst_is_capacity_then_rate() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=5, clock=clock)
    waits = [bucket.reserve() for _ in range(8)]
    assert waits[:5] == [0.0] * 5
    assert waits[5:] == pytest.approx([0.1, 0.2, 0.3])


def test_bucket_concurrent_reservations_are_evenly_spaced_in_call_order() -> None:
    clock = FakeClock(100.0)
    bucket = TokenBucket(rate=5, capacity=1, clock=clock)
    waits = [bucket.reserve() for _ in range(10)]
    assert waits == pytest.approx([i * 0.2 for i in range(10)])


def test_bucket_refills_at_rate_and_never_beyond_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=2, capacity=3, clock=clock)
    for _ in range(3):
        assert bucket.reserve() == 0.0
    clock.advance(1.0)  # two tokens back
    assert [bucket.reserve() for _ in range(3)] == pytest.approx([0.0, 0.0, 0.5])
    clock.advance(3600.0)  # a long idle time still only refills to capacity
    assert bucket.is_full()
    assert [bucket.reserve() for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.5])


def test_bucket_available_in_does_not_reserve() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=4, capacity=1, clock=clock)
    assert bucket.reserve() == 0.0
    assert bucket.available_in() == pytest.approx(0.25)
    assert bucket.available_in() == pytest.approx(0.25)
    clock.advance(0.25)
    assert bucket.available_in() == 0.0
    assert bucket.reserve() == 0.0


def test_penalize_delays_the_next_token() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=10, capacity=10, clock=clock)
    bucket.penalize(2.0)
    assert bucket.available_in() == pytest.approx(2.0)
    assert bucket.reserve() == pytest.approx(2.0)
    # After the pause the bucket restarts with one token, not a full burst.
    assert bucket.reserve() == pytest.approx(2.1)
    assert not bucket.is_full()


def test_penalize_moves_queued_slots_keeping_their_spacing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, capacity=1, clock=clock)
    slots = [bucket.reserve_slot() for _ in range(3)]  # at 0, 1, 2
    clock.advance(0.5)
    bucket.penalize(3.0)  # nothing before 3.5
    assert [bucket.delay(s) for s in slots[1:]] == pytest.approx([3.0, 4.0])
    assert bucket.reserve() == pytest.approx(5.0)  # 5.5: after the queued ones


def test_penalize_holds_back_a_holder_that_overslept_its_slot() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, capacity=1, clock=clock)
    bucket.reserve()
    late = bucket.reserve_slot()  # slot at 1.0
    clock.advance(1.5)  # its holder has not run yet
    bucket.penalize(2.0)
    assert bucket.delay(late) == pytest.approx(2.0)


def test_penalize_ignores_non_positive_and_rejects_non_finite() -> None:
    clock = FakeClock()
    bucket = TokenBucket(rate=1, capacity=1, clock=clock)
    bucket.penalize(0.0)
    bucket.penalize(-5.0)
    assert bucket.reserve() == 0.0
    with pytest.raises(ValueError, match="finite"):
        bucket.penalize(float("inf"))
    with pytest.raises(ValueError, match="finite"):
        bucket.penalize(float("nan"))


@pytest.mark.parametrize(("rate", "capacity"), [(0, 1), (-1, 1), (float("inf"), 1), (1, 0.5)])
def test_bucket_rejects_unusable_settings(rate: float, capacity: float) -> None:
    with pytest.raises(ValueError):
        TokenBucket(rate, capacity)


# --- RateLimiter on virtual time ------------------------------------------------------------


def test_defaults_are_teams_published_limits() -> None:
    limiter = RateLimiter()
    assert TEAMS_CONVERSATION_RATE == 7.0
    assert TEAMS_TENANT_RATE == 50.0
    assert limiter.conversation_buckets.get("c").rate == 7.0
    assert limiter.conversation_buckets.get("c").capacity == 7.0
    assert limiter.tenant_buckets.get("t").rate == 50.0
    assert limiter.tenant_buckets.get("t").capacity == 50.0


def test_tenant_rate_over_500_acquires_without_burst() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = limiter_on(loop, tenant_rate=50, tenant_capacity=1)
        return await grant_times(loop, limiter, [(f"c{i}", "tenant") for i in range(500)])

    times = run_virtual(main)
    assert 9.9 <= max(times) <= 10.1  # 499 intervals of 20 ms
    assert_conforms(times, rate=50, capacity=1)


def test_tenant_burst_is_capacity_then_rate() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = limiter_on(loop)  # 50/s, burst 50
        return await grant_times(loop, limiter, [(f"c{i}", "tenant") for i in range(500)])

    times = sorted(run_virtual(main))
    assert times[:50] == [0.0] * 50
    assert times[50] == pytest.approx(0.02)
    assert max(times) == pytest.approx(9.0)  # 450 more at 20 ms
    assert_conforms(times, rate=50, capacity=50)


def test_sequential_acquires_respect_the_tenant_rate() -> None:
    async def main(loop: VirtualTimeLoop) -> float:
        limiter = limiter_on(loop)
        for i in range(500):
            await limiter.acquire(f"c{i}", "tenant")
        return loop.time()

    assert run_virtual(main) == pytest.approx(9.0)


def test_conversation_limit_is_seven_a_second() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = limiter_on(loop)
        return await grant_times(loop, limiter, [("thread", "tenant")] * 70)

    times = run_virtual(main)
    assert times == sorted(times)  # first come, first served
    assert times[:7] == [0.0] * 7
    gaps = [b - a for a, b in itertools.pairwise(times[7:])]
    assert min(gaps) >= 1 / 7 - EPS
    assert max(times) == pytest.approx(63 / 7)
    assert_conforms(times, rate=7, capacity=7)


def test_tenant_keys_and_conversations_are_independent() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = limiter_on(loop, conversation_rate=1, tenant_rate=1)
        calls = [("a", "t1"), ("a", "t1"), ("b", "t1"), ("c", "t2"), ("d", None)]
        return await grant_times(loop, limiter, calls)

    # a's second waits for its conversation and only then queues for t1, behind b, which could
    # send at once as far as its conversation goes; c (other tenant) and d (none) go at once.
    assert run_virtual(main) == pytest.approx([0.0, 2.0, 1.0, 0.0, 0.0])


def test_concurrent_conversations_share_the_tenant_fairly() -> None:
    async def main(loop: VirtualTimeLoop) -> list[tuple[float, str]]:
        limiter = limiter_on(loop, conversation_rate=100, tenant_rate=10, tenant_capacity=1)

        async def one(conversation: str) -> tuple[float, str]:
            await limiter.acquire(conversation, "tenant")
            return loop.time(), conversation

        jobs = [one("a") for _ in range(20)] + [one("b") for _ in range(20)]
        return sorted(await asyncio.gather(*jobs))

    grants = run_virtual(main)
    seen = {"a": 0, "b": 0}
    for _, conversation in grants:
        seen[conversation] += 1
        assert abs(seen["a"] - seen["b"]) <= 2  # interleaved, not a's 20 then b's 20
    times = [t for t, _ in grants]
    last = {conversation: t for t, conversation in grants}
    assert abs(last["a"] - last["b"]) <= 0.2 + EPS  # both finish together
    assert [b - a for a, b in itertools.pairwise(times)] == pytest.approx([0.1] * 39)


def test_a_backlogged_conversation_does_not_hold_tenant_tokens() -> None:
    """Tenant tokens are reserved only when the conversation can send, so others keep theirs."""

    async def main(loop: VirtualTimeLoop) -> tuple[list[float], list[float]]:
        limiter = limiter_on(
            loop, conversation_rate=1, conversation_capacity=1, tenant_rate=10, tenant_capacity=10
        )
        hot = [("hot", "tenant")] * 30
        others = [(f"other{i}", "tenant") for i in range(9)]
        times = await grant_times(loop, limiter, hot + others)
        return times[:30], times[30:]

    hot_times, other_times = run_virtual(main)
    assert other_times == [0.0] * 9
    assert hot_times == pytest.approx([float(i) for i in range(30)])


def test_penalize_conversation_delays_only_that_conversation() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = limiter_on(loop)
        limiter.penalize("slow", None, 2.5)
        return await grant_times(loop, limiter, [("slow", "t"), ("fast", "t")])

    assert run_virtual(main) == pytest.approx([2.5, 0.0])


def test_penalize_tenant_moves_everyone_waiting_on_it() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = limiter_on(loop, tenant_rate=1, tenant_capacity=1)

        async def throttled_at(delay: float) -> None:
            await asyncio.sleep(delay)
            limiter.penalize("c0", "tenant", 3.0)  # the server says: nothing before 5.5

        calls = [(f"c{i}", "tenant") for i in range(8)]
        waiting = asyncio.ensure_future(grant_times(loop, limiter, calls))
        await throttled_at(2.5)
        other_tenant = await grant_times(loop, limiter, [("x", "elsewhere")])
        assert other_tenant == [2.5]
        return await waiting

    times = run_virtual(main)
    assert times[:3] == pytest.approx([0.0, 1.0, 2.0])
    assert times[3:] == pytest.approx([5.5, 6.5, 7.5, 8.5, 9.5])


def test_cancelled_waiter_does_not_block_the_conversation() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = limiter_on(loop, conversation_rate=1, conversation_capacity=1)
        await limiter.acquire("c", None)
        doomed = asyncio.ensure_future(limiter.acquire("c", None))
        await asyncio.sleep(0.5)
        doomed.cancel()
        return await grant_times(loop, limiter, [("c", None)])

    # The cancelled caller had not taken the conversation token, so the next one gets it at 1.0.
    assert run_virtual(main) == pytest.approx([1.0])


# --- memory ----------------------------------------------------------------------------------


def test_idle_full_buckets_are_evicted_as_traffic_moves_on() -> None:
    async def main(loop: VirtualTimeLoop) -> tuple[int, int, int]:
        limiter = limiter_on(loop, max_buckets=1_000)
        most = 0
        for i in range(20_000):  # one message each to 20,000 conversations, at 50/s
            await limiter.acquire(f"conversation-{i}", "tenant")
            most = max(most, len(limiter.conversation_buckets))
        return most, len(limiter.conversation_buckets), len(limiter.tenant_buckets)

    most, conversations, tenants = run_virtual(main)
    # A conversation bucket is full again 1/7 s after its one message: the first second's burst
    # of 50 plus ~7 live at 50/s, never the 1,000 allowed, let alone 20,000.
    assert most <= 60
    assert conversations <= 10
    assert tenants == 1


def test_max_buckets_bounds_memory_even_when_nothing_is_full_yet() -> None:
    clock = FakeClock()
    buckets = KeyedBuckets(rate=7, capacity=7, clock=clock, max_buckets=100)
    for i in range(150_000):  # all at the same instant: no bucket refills
        buckets.get(f"c{i}").reserve()
        assert len(buckets) <= 101
    assert "c149999" in buckets
    assert "c0" not in buckets


def test_bucket_with_a_waiter_is_never_evicted() -> None:
    async def main(loop: VirtualTimeLoop) -> list[float]:
        limiter = limiter_on(loop, conversation_rate=1, conversation_capacity=1, max_buckets=10)
        await limiter.acquire("busy", None)
        waiting = asyncio.ensure_future(grant_times(loop, limiter, [("busy", None)] * 2))
        await asyncio.sleep(0.1)
        for i in range(1_000):  # push far past max_buckets while "busy" has waiters
            await limiter.acquire(f"c{i}", None)
            assert len(limiter.conversation_buckets) <= 10 + 1
        assert "busy" in limiter.conversation_buckets
        return await waiting

    assert run_virtual(main) == pytest.approx([1.0, 2.0])


def test_keyed_buckets_validate_settings() -> None:
    with pytest.raises(ValueError):
        KeyedBuckets(rate=1, capacity=1, max_buckets=0)
    with pytest.raises(ValueError):
        KeyedBuckets(rate=0, capacity=1)


# --- NoLimit and the Protocol ----------------------------------------------------------------


async def test_no_limit_never_waits() -> None:
    limiter: Limiter = NoLimit()
    started = time.monotonic()
    for i in range(10_000):
        await limiter.acquire(f"c{i % 3}", "tenant")
    limiter.penalize("c0", "tenant", 60.0)
    await limiter.acquire("c0", "tenant")
    assert time.monotonic() - started < 1.0


async def test_both_limiters_fit_the_protocol() -> None:
    limiters: list[Limiter] = [RateLimiter(), NoLimit()]  # checked by mypy as well
    for limiter in limiters:
        await limiter.acquire("c", "t")
        limiter.penalize("c", "t", 0.0)


# --- real time --------------------------------------------------------------------------------


async def test_real_clock_burst_then_rate() -> None:
    limiter = RateLimiter()  # time.monotonic + asyncio.sleep
    finished: list[float] = []
    started = time.monotonic()

    async def one(i: int) -> None:
        await limiter.acquire(f"conversation-{i}", "tenant")
        finished.append(time.monotonic() - started)

    await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(60))), timeout=2.0)
    finished.sort()
    assert finished[49] < 0.1  # the burst of 50 goes at once
    assert 0.18 <= finished[-1] < 1.5  # 10 more at 20 ms each: ~0.2 s


def test_concurrent_429s_do_not_stack_their_pauses() -> None:
    """Three sends refused at the same moment with Retry-After: 1 pause the bucket 1 s, not 3."""
    now = [0.0]
    bucket = TokenBucket(50.0, 50.0, clock=lambda: now[0])
    waits = [bucket.reserve() for _ in range(60)]
    assert waits[49] == 0 and waits[50] > 0
    for _ in range(3):
        bucket.penalize(1.0)
    assert 0.99 <= bucket.reserve() <= 1.25  # the queued slots moved once, by ~1 s
