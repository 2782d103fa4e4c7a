"""The delivery worker: leases due jobs, sends them with bounded concurrency, records results.

Results are settled in small batches (one transaction for many jobs) because a write per
delivery would make the store, not the network, the limit of a broadcast. A job whose result
was not settled when the process died is still leased in the store and is sent again after
recovery: at-least-once, never lost.
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
from datetime import datetime
from typing import Any, Literal, Protocol

from delivery.channel import ChannelRegistry, DeliveryResult
from delivery.metrics import DeliveryMetrics
from delivery.outbox import DeliveryJob, Outbox, Settlement
from logs import NOTIFICATION_ID
from storage.protocols import NotificationStore
from storage.records import NotificationRecord

__all__ = ["Backoff", "DeliveryGate", "DeliveryWorker", "Hold"]

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


def _expired(notification: NotificationRecord, now: float) -> bool:
    expires = notification.event.get("expiresAt")
    if not expires:
        return False
    try:
        return datetime.fromisoformat(expires).timestamp() <= now
    except ValueError:
        return False


class DeliveryWorker:
    """Runs until stopped; `wake()` tells it new jobs were queued."""

    def __init__(
        self,
        outbox: Outbox,
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
        busy_poll_seconds: float = 0.05,
        lease_batch: int | None = None,
        gate: DeliveryGate | None = None,
        settle_delay: float = 0.025,
        metrics: DeliveryMetrics | None = None,
    ) -> None:
        self._gate = gate
        self.metrics = metrics or DeliveryMetrics()
        # Results wait this long to be recorded together: one commit (and fsync) per batch.
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
        self._idle_poll = idle_poll_seconds
        self._busy_poll = busy_poll_seconds
        self._wake = asyncio.Event()
        self._slot_free = asyncio.Event()
        self._inflight: set[asyncio.Task[None]] = set()
        self._ready: deque[tuple[DeliveryJob, Any, NotificationRecord | None]] = deque()
        self._lease_batch = lease_batch or max(32, 2 * concurrency)
        self._refill: asyncio.Task[int] | None = None
        self._pending: list[Settlement] = []
        self._pending_ready = asyncio.Event()
        self._runner: asyncio.Task[None] | None = None
        self._settler: asyncio.Task[None] | None = None
        self._stopping = False
        self.results: dict[str, int] = {}

    @property
    def running(self) -> bool:
        return self._runner is not None and not self._runner.done()

    @property
    def in_flight(self) -> int:
        return len(self._inflight)

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        recovered = await self._outbox.recover()
        if recovered:
            log.info("recovered %d deliveries leased by a previous run", recovered)
        self._stopping = False
        self._settler = asyncio.create_task(self._settle_loop(), name="herald-settle")
        self._runner = asyncio.create_task(self._run(), name="herald-worker")

    async def stop(self) -> None:
        """Stop leasing, let in-flight sends finish (briefly), and record their results."""
        self._stopping = True
        self._wake.set()
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
        if self._ready:
            # Leased but never started: hand them back so they go out at once next time.
            await self._outbox.release([job.id for job, _, _ in self._ready])
            self._ready.clear()
        if self._settler is not None:
            self._settler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._settler
        await self._flush()

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
        if len(self._inflight) >= self._concurrency:
            self._slot_free.clear()
            await self._slot_free.wait()
            return
        # Lease whole batches, and the next one while the current one is being sent: one
        # store round trip (and commit) per batch, and the senders never wait for it.
        if len(self._ready) <= self._lease_batch // 2 and self._refill is None:
            self._refill = asyncio.create_task(self._fill(), name="herald-lease")
        if not self._ready:
            refill = self._refill
            if refill is not None and await refill == 0 and not self._ready:
                await self._idle()
            return
        while self._ready and len(self._inflight) < self._concurrency:
            job, target, notification = self._ready.popleft()
            task = asyncio.create_task(self._deliver(job, target, notification))
            self._inflight.add(task)
            task.add_done_callback(self._done)

    async def _idle(self) -> None:
        due = await self._outbox.next_due()
        timeout = self._idle_poll
        if due is not None:
            timeout = min(timeout, max(0.0, due - self._clock()))
        if timeout <= 0:
            # Due work exists but is leased by in-flight sends (or, on a shared queue, by
            # another instance): wait for one to finish, or poll again shortly.
            if self._inflight:
                self._slot_free.clear()
                await self._slot_free.wait()
            else:
                await asyncio.sleep(self._busy_poll)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _fill(self) -> int:
        """Lease and prepare one batch; returns how many jobs were leased."""
        try:
            self._wake.clear()
            jobs = await self._outbox.lease(self._lease_batch, self._lease_seconds)
            if jobs:
                await self._prepare(jobs)
            return len(jobs)
        finally:
            self._refill = None

    async def _prepare(self, jobs: Sequence[DeliveryJob]) -> None:
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
        by_channel: dict[str, list[DeliveryJob]] = {}
        for job in jobs:
            by_channel.setdefault(job.channel, []).append(job)
        targets: dict[int, Any] = {}
        for name, channel_jobs in by_channel.items():
            channel = self._channels.get(name)
            if channel is not None:
                targets.update(await channel.load(channel_jobs))
        self._ready.extend(
            (job, targets.get(job.id), notifications.get(job.notification_id)) for job in jobs
        )

    def _done(self, task: asyncio.Task[None]) -> None:
        self._inflight.discard(task)
        self._slot_free.set()

    async def _deliver(
        self, job: DeliveryJob, target: Any, notification: NotificationRecord | None
    ) -> None:
        NOTIFICATION_ID.set(job.notification_id)  # this task's own context: tags its log lines
        now = self._clock()
        channel = self._channels.get(job.channel)
        if notification is None:
            result = DeliveryResult.failed("notification-missing")
        elif channel is None:
            result = DeliveryResult.failed("channel-unavailable")
        elif target is None:
            result = DeliveryResult.dead("target-inactive")
        elif _expired(notification, now):
            result = DeliveryResult.skipped("expired")
        else:
            try:
                result = await channel.send(job, target, notification)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a channel bug must not kill the worker
                log.exception("channel %s raised on delivery %d", job.channel, job.id)
                result = DeliveryResult.retry(f"internal error: {type(exc).__name__}")
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
        self._pending.append(settlement)
        self._pending_ready.set()

    async def _settle_loop(self) -> None:
        while True:
            await self._pending_ready.wait()
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
        try:
            await self._outbox.settle(batch)
        except BaseException:
            self._pending[:0] = batch
            raise
        # Retries and edits may now be due sooner than the loop's idle timeout.
        self._wake.set()
