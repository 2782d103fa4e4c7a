"""The worker's scheduler, step by step on a fake clock: Teams' limits per lane (tenant) and
conversation, work conservation (nothing waits behind a job that cannot go), priority classes
and fair tags between notifications, penalties, memory."""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import pytest

from delivery.budget import LocalBudget
from delivery.channel import Pace
from delivery.fairness import PRIORITIES, FairClock, priority_of
from delivery.outbox import DeliveryJob
from delivery.ratelimit import TEAMS_CONVERSATION_RATE, TEAMS_TENANT_RATE, KeyedBuckets
from delivery.schedule import Entry, Scheduler

EPS = 1e-9
_ids = itertools.count(1)


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def make(
    clock: FakeClock,
    *,
    tenant_rate: float = 50.0,
    tenant_capacity: float = 50.0,
    conversation_rate: float = 7.0,
    conversation_capacity: float = 7.0,
) -> Scheduler:
    return Scheduler(
        LocalBudget(tenant_rate, tenant_capacity, clock=clock),
        KeyedBuckets(conversation_rate, conversation_capacity, clock=clock),
        clock=clock,
    )


def entry(
    conversation: str | None,
    lane: str | None = "tenant",
    *,
    notification: str = "n1",
    priority: int = 1,
    tag: float = 0.0,
) -> Entry:
    job_id = next(_ids)
    job = DeliveryJob(
        job_id, notification, f"user-{job_id}", "conversation", conversation or "x", 0, 0, None,
        lane=lane or "", priority=priority, tag=tag,
    )
    pace = Pace(lane, conversation) if lane and conversation else None
    return Entry(job, object(), None, pace)


def run(
    scheduler: Scheduler, clock: FakeClock, until: float = 1e9
) -> list[tuple[float, Entry]]:
    """Send everything the scheduler hands out, jumping the clock to each wake-up time."""
    sent: list[tuple[float, Entry]] = []
    while clock.now <= until:
        while (found := scheduler.pop()) is not None:
            sent.append((clock.now, found))
        wake = scheduler.wake_at()
        if wake is None:
            break
        assert wake > clock.now - EPS
        clock.now = max(wake, clock.now)
    return sent


def times_of(sent: Sequence[tuple[float, Entry]], entries: Sequence[Entry]) -> list[float]:
    at = {id(e): t for t, e in sent}
    return [at[id(e)] for e in entries]


def assert_conforms(times: Sequence[float], rate: float, capacity: float) -> None:
    """No window [a, b] holds more sends than the burst plus what the rate refills in it."""
    ordered = sorted(times)
    for i, start in enumerate(ordered):
        for j in range(i, len(ordered)):
            assert j - i + 1 <= capacity + rate * (ordered[j] - start) + 1e-6


def test_defaults_are_teams_published_limits() -> None:
    assert TEAMS_CONVERSATION_RATE == 7.0
    assert TEAMS_TENANT_RATE == 50.0


def test_tenant_burst_is_capacity_then_rate() -> None:
    clock = FakeClock()
    scheduler = make(clock)
    entries = [entry(f"c{i}", tag=i) for i in range(500)]
    for e in entries:
        scheduler.add(e)
    times = times_of(run(scheduler, clock), entries)
    assert times[:50] == [0.0] * 50
    assert times[50] == pytest.approx(0.02)
    assert max(times) == pytest.approx(9.0)  # 450 more at 20 ms
    assert times == sorted(times)  # in tag order
    assert_conforms(times, rate=50, capacity=50)
    assert len(scheduler) == 0


def test_tenant_rate_without_burst() -> None:
    clock = FakeClock()
    scheduler = make(clock, tenant_capacity=1)
    entries = [entry(f"c{i}", tag=i) for i in range(500)]
    for e in entries:
        scheduler.add(e)
    times = times_of(run(scheduler, clock), entries)
    assert 9.9 <= max(times) <= 10.1  # 499 intervals of 20 ms
    assert_conforms(times, rate=50, capacity=1)


def test_conversation_limit_is_seven_a_second() -> None:
    clock = FakeClock()
    scheduler = make(clock)
    entries = [entry("thread", tag=i) for i in range(70)]
    for e in entries:
        scheduler.add(e)
    times = times_of(run(scheduler, clock), entries)
    assert times == sorted(times)  # first come, first served
    assert times[:7] == [0.0] * 7
    gaps = [b - a for a, b in itertools.pairwise(times[7:])]
    assert min(gaps) >= 1 / 7 - EPS
    assert max(times) == pytest.approx(63 / 7)
    assert_conforms(times, rate=7, capacity=7)


def test_lanes_conversations_and_unpaced_jobs_are_independent() -> None:
    clock = FakeClock()
    scheduler = make(clock, conversation_rate=1, conversation_capacity=1, tenant_rate=1,
                     tenant_capacity=1)
    a1, a2, b = entry("a", "t1", tag=0), entry("a", "t1", tag=1), entry("b", "t1", tag=2)
    c, d = entry("c", "t2", tag=3), entry(None, None, tag=4)
    for e in (a1, a2, b, c, d):
        scheduler.add(e)
    # t1 sends one a second in tag order (a's conversation is free again when t1 is); c
    # (another tenant) and d (unpaced) go at once.
    assert times_of(run(scheduler, clock), [a1, a2, b, c, d]) == pytest.approx(
        [0.0, 1.0, 2.0, 0.0, 0.0]
    )


def test_a_lane_without_budget_never_holds_back_another_lane() -> None:
    """Work conservation: tenant A's 2,000-job backlog does not delay tenant B's one job."""
    clock = FakeClock()
    scheduler = make(clock)
    for i in range(2_000):
        scheduler.add(entry(f"a{i}", "tenant-a", tag=i))
    first = run(scheduler, clock, until=3.0)  # A is spending its budget
    assert 195 <= len(first) <= 201  # the burst of 50, then 50 a second
    while scheduler.pop() is not None:  # A has no token left at this instant
        pass
    single = entry("b0", "tenant-b", tag=10_000)
    scheduler.add(single)
    assert scheduler.pop() is single  # at once, although its tag is far behind A's


def test_a_backlogged_conversation_does_not_hold_tenant_tokens() -> None:
    clock = FakeClock()
    scheduler = make(clock, conversation_rate=1, conversation_capacity=1, tenant_rate=10,
                     tenant_capacity=10)
    hot = [entry("hot", tag=i) for i in range(30)]
    others = [entry(f"other{i}", tag=30 + i) for i in range(9)]
    for e in hot + others:
        scheduler.add(e)
    sent = run(scheduler, clock)
    assert times_of(sent, others) == [0.0] * 9
    assert times_of(sent, hot) == pytest.approx([float(i) for i in range(30)])


def test_penalize_conversation_delays_only_that_conversation() -> None:
    clock = FakeClock()
    scheduler = make(clock)
    slow, fast = entry("slow", tag=0), entry("fast", tag=1)
    scheduler.penalize(Pace("other-lane", "slow"), 2.5)
    scheduler.add(slow)
    scheduler.add(fast)
    assert times_of(run(scheduler, clock), [slow, fast]) == pytest.approx([2.5, 0.0])


def test_penalize_lane_moves_everyone_waiting_on_it_and_no_other_lane() -> None:
    clock = FakeClock()
    scheduler = make(clock, tenant_rate=1, tenant_capacity=1)
    entries = [entry(f"c{i}", tag=i) for i in range(8)]
    for e in entries:
        scheduler.add(e)
    sent = run(scheduler, clock, until=2.5)
    assert [t for t, _ in sent] == pytest.approx([0.0, 1.0, 2.0])
    clock.now = 2.5
    scheduler.penalize(entries[0].pace, 3.0)  # type: ignore[arg-type]  # nothing before 5.5
    elsewhere = entry("x", "elsewhere")
    scheduler.add(elsewhere)
    assert scheduler.pop() is elsewhere
    rest = run(scheduler, clock)
    assert [t for t, _ in rest] == pytest.approx([5.5, 6.5, 7.5, 8.5, 9.5])


def test_urgent_goes_first_and_low_urgency_yields() -> None:
    clock = FakeClock()
    scheduler = make(clock, tenant_rate=10, tenant_capacity=1)
    broadcast = [entry(f"b{i}", tag=i) for i in range(100)]
    for e in broadcast:
        scheduler.add(e)
    run(scheduler, clock, until=1.0)  # 11 sent
    low = entry("low", priority=PRIORITIES["low"], tag=0)
    urgent = entry("urgent", priority=PRIORITIES["high"], tag=1_000)
    scheduler.add(low)
    scheduler.add(urgent)
    sent = run(scheduler, clock)
    order = [e for _, e in sent]
    assert order[0] is urgent  # the next token, after 0.1 s at most
    assert sent[0][0] - 1.0 <= 0.1 + EPS
    assert order[-1] is low  # after every normal job, although its tag is lowest


def test_fair_tags_interleave_a_small_notification_with_a_broadcast() -> None:
    """A notification expanded during a broadcast gets the lane's current virtual time: it goes
    one-for-one with what is left of the broadcast, not after it."""
    clock = FakeClock()
    scheduler = make(clock, tenant_rate=10, tenant_capacity=1)
    fair = FairClock()
    broadcast = [entry(f"b{i}", notification="big", tag=fair.now("tenant") + i)
                 for i in range(200)]
    for e in broadcast[:40]:
        scheduler.add(e)
    for _, e in run(scheduler, clock, until=2.0):
        fair.advance("tenant", e.job.tag)
    small = [entry(f"s{i}", notification="small", tag=fair.now("tenant") + i) for i in range(5)]
    for e in broadcast[40:] + small:
        scheduler.add(e)
    later = [e.job.notification_id for _, e in run(scheduler, clock)]
    assert later[:10].count("small") == 5  # interleaved with the broadcast's next five


def test_fair_clock_resumes_and_bounds_memory() -> None:
    fair = FairClock(max_lanes=2)
    fair.seed({"a": 100.0, "b": 5.0})
    assert fair.now("a") == 100.0
    assert fair.now("new") == 100.0  # an unknown lane starts at the latest tag
    fair.advance("b", 7.0)
    fair.advance("c", 1.0)
    assert fair.now("b") == 7.0 and fair.now("c") == 1.0
    assert fair.now("a") == 100.0  # evicted: falls back to the latest
    assert priority_of("high") == 0 and priority_of("nonsense") == priority_of(None) == 1


def test_full_lanes_and_backlog_drive_the_lease() -> None:
    clock = FakeClock()
    scheduler = make(clock)  # 50/s: a lane is worth 100 jobs in memory
    assert scheduler.lane_cap("tenant") == 100
    for i in range(100):
        scheduler.add(entry(f"c{i}", tag=i))
    scheduler.add(entry(None, None))
    assert scheduler.full_lanes() == ["tenant"]
    assert scheduler.backlog("tenant") == 100 and scheduler.unpaced == 1
    assert len(scheduler) == 101
    states = scheduler.lane_states()
    assert states == {"tenant": ("ready", 100)}
    run(scheduler, clock, until=0.0)
    assert scheduler.lane_states()["tenant"][0] == "waiting"


def test_drain_returns_every_waiting_job() -> None:
    clock = FakeClock()
    scheduler = make(clock, conversation_rate=1, conversation_capacity=1)
    entries = [entry("same", tag=i) for i in range(3)] + [entry(None, None)]
    for e in entries:
        scheduler.add(e)
    run(scheduler, clock, until=0.0)
    left = scheduler.drain()
    assert len(left) == 2 and len(scheduler) == 0
    assert scheduler.pop() is None and scheduler.wake_at() is None
