"""The delivery worker: leases due jobs, sends them with bounded concurrency, records results.

Results are settled in batches (one transaction for many jobs) because a write per delivery
would make the store, not the network, the limit of a broadcast. A job whose result was not
settled when the process died is still leased in the store and is sent again after recovery:
at-least-once, never lost, and at most one repeat per slot (a slot is held until its result is
committed). Jobs wait for their lane's budget in the scheduler (delivery/schedule.py), never in
a slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from delivery.budget import LaneBudget, LocalBudget
from delivery.channel import ChannelRegistry, DeliveryResult, Retracting
from delivery.fairness import FairClock
from delivery.metrics import DeliveryMetrics
from delivery.outbox import DeliveryJob, DeliveryQueue, Settlement
from delivery.ratelimit import TEAMS_CONVERSATION_RATE, TEAMS_TENANT_RATE, KeyedBuckets
from delivery.schedule import Entry, Scheduler
from logs import NOTIFICATION_ID
from storage.protocols import NotificationStore
from storage.records import NotificationRecord

__all__ = ["Backoff", "DeliveryGate", "DeliveryWorker", "Hold"]

_DEFER_AFTER = 10.0
"""A lane paused longer than this (a 429 with a long Retry-After) gives its jobs back to the
store, due when the pause ends, instead of holding them (and their leases) in memory."""

_LEASE_MARGIN = 0.75
"""A job held longer than this share of its lease is given back rather than sent."""

_REQUEUED = frozenset({"queued", "retrying", "delivered"})
"""Settlements after which a job may be due again soon (a delivered one when its content
changed in flight is queued again for an edit)."""

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff with jitter: base·2^(attempt-1), capped, times a factor in [½, 1]."""

    base: float = 1.0
    cap: float = 300.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        raw = min(self.cap, self.base * (2 ** max(0, attempt - 1)))
        return float(raw * rng.uniform(0.5, 1.0))


@dataclass(frozen=True, slots=True)
class Hold:
    """A leased job that must not go out now: skipped for good, or deferred until `until`."""

    action: Literal["skip", "defer"]
    reason: str | None
    until: float | None = None


class DeliveryGate(Protocol):
    """Second thoughts at send time: preferences may have changed since the job was queued
    (opted out, channel switched off, type muted during a quiet-hours deferral)."""

    async def holds(
        self, jobs: Sequence[DeliveryJob], notifications: Mapping[str, NotificationRecord]
    ) -> dict[int, Hold]: ...


def _deferral(job_id: int, until: float) -> Settlement:
    """Back to the store, due at `until`, without counting an attempt."""
    return Settlement(job_id, "queued", until, reason="throttled", count_attempt=False)


def _expired(notification: NotificationRecord, now: float) -> bool:
    expires = notification.event.expires_at
    return expires is not None and expires.timestamp() <= now


class _Throughput:
    """Sends recorded per second over the last few seconds."""

    def __init__(self, window: float = 5.0) -> None:
        self._window = window
        self._events: deque[tuple[float, int]] = deque()
        self._total = 0

    def add(self, now: float, count: int) -> None:
        if count:
            self._events.append((now, count))
            self._total += count
        self._trim(now)

    def per_second(self, now: float) -> float:
        self._trim(now)
        return self._total / self._window

    def _trim(self, now: float) -> None:
        while self._events and self._events[0][0] < now - self._window:
            self._total -= self._events.popleft()[1]


class DeliveryWorker:
    """Runs until stopped; `wake()` tells it new jobs were queued.

    Three parts work together. The *filler* leases jobs from the outbox into the scheduler: a
    bounded window of them, and per paced lane only what the lane can send in the next couple of
    seconds (the rest of a backlogged lane stays in the store, skipped by the lease, so work of
    other lanes and newer, fairer work is always within reach). The *dispatcher* gives each free
    slot to the best job that can go now (delivery/schedule.py). The *settler* records results
    in batches, and a slot is free again only once its result is committed: after a crash at
    most `concurrency` sends can go out twice, however fast the sends are.
    """

    def __init__(
        self,
        outbox: DeliveryQueue,
        notifications: NotificationStore,
        channels: ChannelRegistry,
        *,
        concurrency: int = 64,
        lease_seconds: float = 60.0,
        max_attempts: int = 8,
        backoff: Backoff | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.time,
        idle_poll_seconds: float = 5.0,
        lease_batch: int | None = None,
        window: int = 4096,
        gate: DeliveryGate | None = None,
        settle_delay: float = 0.005,
        metrics: DeliveryMetrics | None = None,
        budget: LaneBudget | None = None,
        conversation_buckets: KeyedBuckets | None = None,
        fair_clock: FairClock | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._gate = gate
        self.metrics = metrics or DeliveryMetrics()
        # Results wait this long to be recorded together: one commit for many. Measured on the
        # 10,000-user benchmark: 0 costs ~20 % more CPU per delivery (a commit per few
        # results), 20 ms holds slots so long that the rate drops; 5 ms keeps both.
        self._settle_delay = settle_delay
        self._outbox = outbox
        self._notifications = notifications
        self._channels = channels
        self._concurrency = concurrency
        self._lease_seconds = lease_seconds
        self._max_attempts = max_attempts
        self._backoff = backoff or Backoff()
        self._rng = rng or random.Random()
        self._clock = clock
        self._monotonic = monotonic
        self._idle_poll = idle_poll_seconds
        self._lease_batch = lease_batch or max(32, 2 * concurrency)
        self._window = max(window, self._lease_batch)
        self._budget = budget or LocalBudget(TEAMS_TENANT_RATE, TEAMS_TENANT_RATE)
        self._budget.on_ready = self._budget_ready
        self._fair = fair_clock or FairClock()
        self.scheduler = Scheduler(
            self._budget,
            conversation_buckets
            or KeyedBuckets(TEAMS_CONVERSATION_RATE, TEAMS_CONVERSATION_RATE, clock=monotonic),
            clock=monotonic,
        )
        self._kick = asyncio.Event()
        self._new_work = True
        self._more_in_store = True
        self._excluded: set[str] = set()
        self._store_due: float | None = None
        self._busy = 0
        self._held: set[int] = set()
        """Jobs in the scheduler or being sent, until their result is recorded: a lease that
        ran out meanwhile must not put a second copy into the scheduler."""
        self._sent_rate = _Throughput()
        self._paused: dict[str, float] = {}
        """Lanes paused for longer than _DEFER_AFTER, until when (worker clock)."""
        self._turns: dict[str, float] = {}
        """Per lane, when the last job given back for lack of budget is due (worker clock):
        a queue that cannot skip a lane gets them back spread at the lane's rate."""
        self._inflight: set[asyncio.Task[None]] = set()
        self._refill: asyncio.Task[None] | None = None
        self._pending: list[tuple[Settlement, bool]] = []
        self._pending_ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._settler: asyncio.Task[None] | None = None
        self._stopping = False
        self.results: dict[str, int] = {}
        self._recalled: set[str] = set()
        """Notifications recalled through this instance: checked at send time, since a job
        may have waited in the scheduler with the record it was leased with."""
        self._sending: dict[str, int] = {}
        """Sends under way per notification (a recall waits for them to end)."""
        self._flushing = 0

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    @property
    def in_flight(self) -> int:
        """Sends under way or whose results are not yet recorded (each holds a slot)."""
        return self._busy

    def is_recalled(self, notification: NotificationRecord | None, notification_id: str) -> bool:
        return notification_id in self._recalled or (
            notification is not None and notification.recalled
        )

    async def recall(self, notification_id: str, wait_seconds: float = 60.0) -> None:
        """From now on nothing of this notification is sent by this instance (jobs already
        leased included: `_deliver` checks); returns once the sends under way have ended and
        their results are recorded, so what they sent can be found and taken back."""
        self._recalled.add(notification_id)
        deadline = self._monotonic() + wait_seconds
        while self._sending.get(notification_id, 0) or self._flushing:
            if self._monotonic() > deadline:
                log.warning("recall of %s: sends still under way after %ss",
                            notification_id, wait_seconds)
                return
            await asyncio.sleep(0.005)
        await self._flush()  # their results, and whatever else waits, recorded now

    def wake(self) -> None:
        """New jobs were queued: lease again."""
        self._new_work = True
        self._kick.set()

    def _budget_ready(self, lane: str) -> None:
        self.scheduler.budget_ready(lane)
        self._kick.set()

    def waiting_lanes(self) -> set[str]:
        """Lanes that have more work than budget right now: their jobs wait for tokens."""
        states = self.scheduler.lane_states()
        full = set(self.scheduler.full_lanes())
        return {
            lane for lane, (state, backlog) in states.items()
            if backlog and (state in ("waiting", "asking") or lane in full)
        } | set(self._paused)

    def waiting(self, notification_id: str, lanes: Mapping[str, int]) -> dict[str, int]:
        """Why a notification's outstanding deliveries (`lanes`: how many per lane) wait here:
        reason → how many. For GET /api/notifications/{id}."""
        found: dict[str, int] = {}
        busy = self.waiting_lanes()
        tenant = sum(count for lane, count in lanes.items() if lane in busy)
        if tenant:
            found["tenant-rate"] = tenant
        parked = self.scheduler.parked_notifications().get(notification_id, 0)
        if parked:
            found["conversation-rate"] = parked
        return found

    async def start(self) -> None:
        recovered = await self._outbox.recover()
        if recovered:
            log.info("recovered %d deliveries leased by a previous run", recovered)
        self._fair.seed(await self._outbox.lane_tags())
        self._stopping = False
        self._new_work = True
        self._settler = asyncio.create_task(self._settle_loop(), name="herald-settle")
        self._runner = asyncio.create_task(self._run(), name="herald-worker")

    async def stop(self) -> None:
        """Stop leasing, let in-flight sends finish (briefly), and record their results."""
        self._stopping = True
        self._kick.set()
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        if self._refill is not None:
            refill = self._refill
            refill.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await refill
        if self._inflight:
            _, still = await asyncio.wait(self._inflight, timeout=5.0)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still)
        waiting = self.scheduler.drain()
        self._held.difference_update(entry.job.id for entry in waiting)
        if waiting:
            # Leased but never started: hand them back so they go out at once next time.
            await self._outbox.release([entry.job.id for entry in waiting])
        if self._settler is not None:
            self._settler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settler
        await self._flush()
        await self._budget.aclose()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivery worker iteration failed; retrying shortly")
                await asyncio.sleep(1.0)

    async def _tick(self) -> None:
        self._kick.clear()
        self._dispatch()
        if self._refill is None and self._should_lease():
            self._refill = asyncio.create_task(self._fill(), name="herald-lease")
        timeout = self._idle_poll
        if self._busy < self._concurrency:
            # With every slot taken only a recorded result (which kicks) frees one.
            wake_at = self.scheduler.wake_at()
            if wake_at is not None:
                timeout = min(timeout, max(0.0, wake_at - self._monotonic()))
        if self._store_due is not None:
            timeout = min(timeout, max(0.0, self._store_due - self._clock()))
        if timeout <= 0:
            if self._store_due is not None and self._store_due <= self._clock():
                self._store_due = None
                self._new_work = True
            await asyncio.sleep(0)  # let the sends and the lease run
            return
        try:
            await asyncio.wait_for(self._kick.wait(), timeout)
        except TimeoutError:
            # Polling: a shared queue gets work no wake() announces, and deferred jobs fall due.
            self._new_work = True
            self._store_due = None

    def _dispatch(self) -> None:
        stale: list[Entry] = []
        oldest = self._monotonic() - self._lease_seconds * _LEASE_MARGIN
        while self._busy < self._concurrency:
            entry = self.scheduler.pop()
            if entry is None:
                break
            if (entry.leased_at or entry.since) < oldest:
                # Its lease may run out before the send ends: another instance could be sending
                # it already. Give it back untouched; whoever leases it next sends it.
                stale.append(entry)
                continue
            self._busy += 1
            lane = entry.pace.lane if entry.pace is not None else ""
            self.metrics.observe_wait(lane, self._monotonic() - entry.since)
            # The lane's virtual time is the tag in service: a notification expanded now
            # interleaves with what still waits, here and in the store.
            self._fair.advance(entry.job.lane, entry.job.tag)
            task = asyncio.create_task(self._deliver(entry))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
        if stale:
            log.warning("%d deliveries waited out most of their lease; given back", len(stale))
            task = asyncio.create_task(self._give_back(stale))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)

    async def _give_back(self, entries: Sequence[Entry]) -> None:
        """Back to the store while the lease is still ours, due when the lane's budget would
        reach them, as a deferral: a queue counts a message taken and let go as a failed try
        (poison after a few), but waiting for budget is nobody's failure."""
        now = self._clock()
        try:
            await self._outbox.settle([
                _deferral(
                    entry.job.id,
                    self._turn(entry.pace.lane, now) if entry.pace is not None else now,
                )
                for entry in entries
            ])
        finally:
            self._held.difference_update(entry.job.id for entry in entries)

    def _room(self) -> int:
        return self._window - len(self.scheduler) - self._busy

    def _unpaced_cap(self) -> int:
        """Unpaced jobs worth holding: two lease batches, but no more than a quarter of a lease
        at the rate sends complete (slow peers), so a job never waits out its lease here."""
        by_rate = int(self._sent_rate.per_second(self._monotonic()) * self._lease_seconds / 4)
        return max(self._concurrency, min(2 * self._lease_batch, by_rate))

    def _exclusions(self) -> list[str]:
        now = self._clock()
        for lane in [lane for lane, until in self._paused.items() if until <= now]:
            del self._paused[lane]
        return [*self.scheduler.full_lanes(), *self._paused]

    def _should_lease(self) -> bool:
        if self._stopping or self._room() < min(self._lease_batch, self._window // 2):
            return False
        if self.scheduler.unpaced >= self._unpaced_cap():
            return False  # every slot has work until the next look
        if self._new_work:
            return True  # maybe urgent: the window has room for it whatever else waits
        if self._more_in_store and self.scheduler.unpaced < self._lease_batch:
            return True
        # A lane whose backlog the last lease left in the store has room again.
        return any(
            self.scheduler.backlog(lane) <= self.scheduler.lane_cap(lane) // 2
            for lane in self._excluded
        )

    async def _fill(self) -> None:
        """Lease and prepare one batch."""
        try:
            self._new_work = False
            exclude = self._exclusions()
            limit = min(self._lease_batch, self._room())
            leased_at = self._monotonic()
            jobs = await self._outbox.lease(limit, self._lease_seconds, exclude)
            self._excluded = set(exclude)
            self._more_in_store = len(jobs) >= limit
            if jobs:
                await self._prepare(jobs, leased_at)
            else:
                self._store_due = await self._outbox.next_due(exclude)
        finally:
            self._refill = None
            self._kick.set()

    async def _prepare(self, jobs: Sequence[DeliveryJob], leased_at: float) -> None:
        """Load the notifications and targets of a leased batch, one query per kind."""
        notifications = await self._notifications.get_many([j.notification_id for j in jobs])
        if self._gate is not None:
            holds = await self._gate.holds(jobs, notifications)
            if holds:
                await self._outbox.settle([
                    Settlement(
                        job_id, "skipped" if hold.action == "skip" else "queued",
                        hold.until if hold.until is not None else self._clock(),
                        reason=hold.reason, count_attempt=False,
                    )
                    for job_id, hold in holds.items()
                ])
                jobs = [job for job in jobs if job.id not in holds]
        # A recalled notification: what was never sent is never sent (no slot taken); what
        # was sent to a channel that can take it back goes on, to be retracted.
        cancelled = [
            job for job in jobs
            if self.is_recalled(notifications.get(job.notification_id), job.notification_id)
            and not (job.remote_id and isinstance(self._channels.get(job.channel), Retracting))
        ]
        if cancelled:
            await self._outbox.settle([
                Settlement(job.id, "skipped", self._clock(), reason="recalled",
                           count_attempt=False)
                for job in cancelled
            ])
            jobs = [job for job in jobs if job not in cancelled]
        by_channel: dict[str, list[DeliveryJob]] = {}
        for job in jobs:
            by_channel.setdefault(job.channel, []).append(job)
        targets: dict[int, Any] = {}
        for name, channel_jobs in by_channel.items():
            channel = self._channels.get(name)
            if channel is not None:
                targets.update(await channel.load(channel_jobs))
        deferred: list[Settlement] = []
        now = self._clock()
        for job in jobs:
            if job.id in self._held:
                continue  # its lease ran out while it waited here: it is still ours
            target = targets.get(job.id)
            channel = self._channels.get(job.channel)
            pace = channel.pace(target) if channel is not None and target is not None else None
            if pace is not None and (until := self._paused.get(pace.lane, 0.0)) > now:
                deferred.append(_deferral(job.id, until))
                continue
            if (
                pace is not None
                and not self._outbox.skips_lanes
                and job.priority > 0
                and self.scheduler.backlog(pace.lane) >= self.scheduler.lane_cap(pace.lane)
            ):
                deferred.append(_deferral(job.id, self._turn(pace.lane, now)))
                continue
            self._held.add(job.id)
            self.scheduler.add(
                Entry(
                    job, target, notifications.get(job.notification_id), pace,
                    leased_at=leased_at,
                )
            )
        if deferred:
            await self._outbox.settle(deferred)

    def _turn(self, lane: str, now: float) -> float:
        """When a job given back now would find budget in `lane`: after what this worker holds
        and what it gave back before, one rate interval apart."""
        if len(self._turns) > 10_000:
            self._turns = {k: v for k, v in self._turns.items() if v > now}
        interval = 1.0 / self._budget.rate(lane)
        start = now + self.scheduler.backlog(lane) * interval
        turn = max(self._turns.get(lane, start), start) + interval
        self._turns[lane] = turn
        return turn

    def _pause(self, entry: Entry, seconds: float) -> None:
        """The service pushed back: the lane and conversation pause, other lanes go on. A long
        pause hands the lane's waiting jobs back to the store, due when it ends."""
        assert entry.pace is not None
        self.scheduler.penalize(entry.pace, seconds)
        if seconds < _DEFER_AFTER:
            return
        until = self._clock() + seconds
        self._paused[entry.pace.lane] = max(until, self._paused.get(entry.pace.lane, 0.0))
        for waiting in self.scheduler.take_lane(entry.pace.lane):
            self._pending.append((_deferral(waiting.job.id, until), False))
        self._pending_ready.set()

    async def _deliver(self, entry: Entry) -> None:
        job, target, notification = entry.job, entry.target, entry.notification
        NOTIFICATION_ID.set(job.notification_id)  # this task's own context: tags its log lines
        now = self._clock()
        channel = self._channels.get(job.channel)
        if notification is None:
            result = DeliveryResult.failed("notification-missing")
        elif channel is None:
            result = DeliveryResult.failed("channel-unavailable")
        elif target is None:
            result = DeliveryResult.dead("target-inactive")
        elif self.is_recalled(notification, job.notification_id) and not (
            job.remote_id and isinstance(channel, Retracting)
        ):
            result = DeliveryResult.skipped("recalled")
        elif _expired(notification, now) and not self.is_recalled(
            notification, job.notification_id
        ):
            result = DeliveryResult.skipped("expired")
        else:
            nid = job.notification_id
            self._sending[nid] = self._sending.get(nid, 0) + 1
            try:
                if self.is_recalled(notification, nid) and isinstance(channel, Retracting):
                    result = await channel.retract(job, target)
                else:
                    result = await channel.send(job, target, notification)
            except asyncio.CancelledError:
                self._busy -= 1
                raise
            except Exception as exc:  # a channel bug must not kill the worker
                log.exception("channel %s raised on delivery %d", job.channel, job.id)
                result = DeliveryResult.retry(f"internal error: {type(exc).__name__}")
            finally:
                self._sending[nid] -= 1
                if not self._sending[nid]:
                    del self._sending[nid]
        if result.status == "retry" and result.retry_after and entry.pace is not None:
            self._pause(entry, result.retry_after)
        if result.status == "dead" and channel is not None and target is not None:
            try:
                await channel.retire(job, result.reason or "gone")
            except Exception:
                log.exception("could not retire target of delivery %d", job.id)
        self._record(job, result, notification)

    def _record(
        self, job: DeliveryJob, result: DeliveryResult, notification: NotificationRecord | None
    ) -> None:
        now = self._clock()
        settlement: Settlement
        self.results[result.status] = self.results.get(result.status, 0) + 1
        latency = None
        if result.status == "delivered" and notification is not None:
            latency = now - notification.updated_at
        self.metrics.observe(job.channel, result.status, latency)
        if result.status == "delivered":
            settlement = Settlement(
                job.id,
                "delivered",
                now,
                # How, when the channel says (a Teams chat it created first: delivery/reach.py).
                reason=result.reason,
                sent_version=notification.version if notification else None,
                remote_id=result.remote_id,
            )
        elif result.status == "retry":
            attempt = job.attempts + 1
            if attempt >= self._max_attempts:
                settlement = Settlement(
                    job.id, "failed", now, reason="retries-exhausted", error=result.reason
                )
            else:
                delay = self._backoff.delay(attempt, self._rng)
                if result.retry_after is not None:
                    delay = max(result.retry_after, 0.0)
                settlement = Settlement(
                    job.id, "retrying", now + delay, reason=result.reason, error=result.reason
                )
        elif result.status == "dead":
            settlement = Settlement(job.id, "dead", now, reason=result.reason, error=result.reason)
        elif result.status == "failed":
            settlement = Settlement(
                job.id, "failed", now, reason=result.reason, error=result.reason
            )
        else:
            settlement = Settlement(
                job.id, "skipped", now, reason=result.reason, count_attempt=False
            )
        self._pending.append((settlement, True))
        self._pending_ready.set()

    async def _settle_loop(self) -> None:
        while True:
            await self._pending_ready.wait()
            if self._settle_delay > 0:
                # Let a few more results arrive so one transaction records many.
                await asyncio.sleep(self._settle_delay)
            self._pending_ready.clear()
            try:
                await self._flush()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("could not record delivery results; will retry")
                self._pending_ready.set()
                await asyncio.sleep(0.5)

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            return
        self._flushing += 1
        try:
            await self._outbox.settle([settlement for settlement, _ in batch])
        except BaseException:
            self._pending[:0] = batch
            raise
        finally:
            self._flushing -= 1
        # Recorded: the slots these sends held are free, and retries and edits may be due
        # sooner than the loop's idle timeout.
        sends = sum(1 for _, holds_slot in batch if holds_slot)
        self._busy -= sends
        self._sent_rate.add(self._monotonic(), sends)
        self._held.difference_update(settlement.job_id for settlement, _ in batch)
        if any(settlement.status in _REQUEUED for settlement, _ in batch):
            self._new_work = True  # a retry (or an edit) may be due before the next poll
        self._kick.set()
