"""Token buckets: burst and rate, fair reservations, penalties, memory.

How the worker's scheduler uses them (Teams' per-conversation and per-tenant limits, fairness
between lanes) is tested in tests/unit/test_schedule.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeVar

import pytest

from delivery.ratelimit import KeyedBuckets, TokenBucket

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


# --- memory ----------------------------------------------------------------------------------


def test_idle_full_buckets_are_evicted_as_traffic_moves_on() -> None:
    clock = FakeClock()
    buckets = KeyedBuckets(rate=7, capacity=7, clock=clock, max_buckets=1_000)
    most = 0
    for i in range(20_000):  # one message each to 20,000 conversations, at 50/s
        buckets.get(f"conversation-{i}").reserve()
        most = max(most, len(buckets))
        clock.advance(0.02)
    # A conversation bucket is full again 1/7 s after its one message: ~7 live at 50/s, never
    # the 1,000 allowed, let alone 20,000.
    assert most <= 12
    assert len(buckets) <= 12


def test_max_buckets_bounds_memory_even_when_nothing_is_full_yet() -> None:
    clock = FakeClock()
    buckets = KeyedBuckets(rate=7, capacity=7, clock=clock, max_buckets=100)
    for i in range(150_000):  # all at the same instant: no bucket refills
        buckets.get(f"c{i}").reserve()
        assert len(buckets) <= 101
    assert "c149999" in buckets
    assert "c0" not in buckets


def test_bucket_with_a_holder_is_never_evicted() -> None:
    clock = FakeClock()
    buckets = KeyedBuckets(rate=1, capacity=1, clock=clock, max_buckets=10)
    with buckets.hold("busy") as entry:
        entry.bucket.reserve()
        for i in range(1_000):  # push far past max_buckets while "busy" is held
            buckets.get(f"c{i}").reserve()
            assert len(buckets) <= 10 + 1
        assert "busy" in buckets
        assert buckets.get("busy").available_in() == pytest.approx(1.0)


def test_keyed_buckets_validate_settings() -> None:
    with pytest.raises(ValueError):
        KeyedBuckets(rate=1, capacity=1, max_buckets=0)
    with pytest.raises(ValueError):
        KeyedBuckets(rate=0, capacity=1)


def test_concurrent_429s_do_not_stack_their_pauses() -> None:
    """Three sends refused at the same moment with Retry-After: 1 pause the bucket 1 s, not 3."""
    now = [0.0]
    bucket = TokenBucket(50.0, 50.0, clock=lambda: now[0])
    waits = [bucket.reserve() for _ in range(60)]
    assert waits[49] == 0 and waits[50] > 0
    for _ in range(3):
        bucket.penalize(1.0)
    assert 0.99 <= bucket.reserve() <= 1.25  # the queued slots moved once, by ~1 s
