"""The router: expands a notification into one delivery per (user, channel, target).

Audiences are streamed a page at a time (`{"all": true}` by keyset over user ids, explicit lists
by position), and each page is written together with its cursor, so memory stays flat as the
audience grows and a crash resumes mid-audience. Expansion runs in the background after the
202; `pending_expansion()` is resumed at start-up.

Several instances share one store (HERALD_STORE=cosmos), so an instance that dies mid-expansion
leaves a notification no restart of its own will resume. Every instance therefore looks at the
pending expansions now and then (`resume_seconds`) and takes over any that made no progress
(same version, same cursor) over a whole interval and that it is not expanding itself. Two
instances expanding one notification is safe, only wasted work: pages are insert-or-ignore by
delivery and the cursor only saves work.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from delivery.channel import ChannelRegistry
from delivery.fairness import FairClock, priority_of
from delivery.outbox import DeliveryJob, NewDelivery, Outbox
from delivery.worker import Hold
from logs import NOTIFICATION_ID
from preferences.model import UserPreferences
from preferences.rules import DeliveryPolicy, EventFacts, decide
from storage.protocols import NotificationStore, UserStore
from storage.records import NotificationRecord

__all__ = ["Router", "event_facts", "send_at"]

log = logging.getLogger(__name__)

NO_CHANNEL = ""


def event_facts(event: dict[str, Any]) -> EventFacts:
    expires = event.get("expiresAt")
    return EventFacts(
        type=str(event.get("type", "")).lower(),
        urgency=event.get("urgency"),
        expires_at=datetime.fromisoformat(expires) if expires else None,
    )


class _Tags:
    """Fair tags of one expansion: its k-th delivery in a lane gets the lane's virtual time
    when the expansion first reached that lane, plus k (delivery/fairness.py)."""

    def __init__(self, clock: FairClock) -> None:
        self._clock = clock
        self._lanes: dict[str, tuple[float, int]] = {}

    def next(self, lane: str) -> float:
        base, count = self._lanes.get(lane) or (self._clock.now(lane), 0)
        self._lanes[lane] = (base, count + 1)
        return base + count


def send_at(event: dict[str, Any]) -> float | None:
    """The event's `sendAt` (epoch seconds): nothing is expanded or sent before it."""
    raw = event.get("sendAt")
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return datetime.fromisoformat(raw).timestamp()
    except ValueError:
        return None


def _recipient_keys(event: dict[str, Any]) -> list[str]:
    users = (event.get("recipients") or {}).get("users") or []
    return list(dict.fromkeys(str(u) for u in users))


class Router:
    """Expands notifications in a background task, one at a time, newest version first."""

    def __init__(
        self,
        users: UserStore,
        notifications: NotificationStore,
        outbox: Outbox,
        channels: ChannelRegistry,
        policy: DeliveryPolicy,
        *,
        page_size: int = 500,
        on_enqueued: Callable[[], None] = lambda: None,
        on_inbox_written: Callable[[Sequence[str]], None] = lambda user_ids: None,
        clock: Callable[[], float] = time.time,
        resume_seconds: float = 10.0,
        fair_clock: FairClock | None = None,
    ) -> None:
        self._fair = fair_clock or FairClock()
        self._users = users
        self._notifications = notifications
        self._outbox = outbox
        self._channels = channels
        self._policy = policy
        self._page_size = page_size
        self._on_enqueued = on_enqueued
        # Rings the live inbox pages of these users (after the page is committed).
        self._on_inbox_written = on_inbox_written
        self._clock = clock
        self._queue: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._resume_seconds = resume_seconds
        # Submitted here and not yet expanded, with how many times they are queued (the sweep
        # leaves these to this instance).
        self._active: dict[str, int] = {}
        # Pending expansions seen by the last sweep: (version, cursor) then.
        self._seen: dict[str, tuple[int, str | None]] = {}
        self._idle = asyncio.Event()
        self._idle.set()
        # Scheduled sends (`sendAt`) waiting here, by id. Only a wake-up: the store is the
        # truth, so a restart (start() resumes pending expansions) sets them again.
        self._send_at_timers: dict[str, asyncio.TimerHandle] = {}

    async def start(self) -> None:
        for notification_id in await self._notifications.pending_expansion():
            self.submit(notification_id)
        self._task = asyncio.create_task(self._run(), name="herald-router")
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="herald-router-sweep")

    async def stop(self) -> None:
        for timer in self._send_at_timers.values():
            timer.cancel()
        self._send_at_timers.clear()
        for task in (self._sweeper, self._task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self._resume_seconds)
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store is unreachable for now: the next sweep tries again
                log.warning("looking for stalled expansions failed", exc_info=True)

    async def sweep(self) -> list[str]:
        """Resume expansions that made no progress since the last sweep; their ids."""
        pending = await self._notifications.pending_expansion()
        seen: dict[str, tuple[int, str | None]] = {}
        resumed: list[str] = []
        for notification_id in pending:
            if notification_id in self._active:
                continue
            record = await self._notifications.get(notification_id)
            if record is None or not record.expansion_pending:
                continue
            due = send_at(record.event)
            if due is not None and due > self._clock():
                if notification_id not in self._send_at_timers:  # another instance took it in
                    self._wake_at(notification_id, due)
                continue
            mark = (record.version, record.expand_cursor)
            if self._seen.get(notification_id) == mark:
                log.warning(
                    "resuming the expansion of %s v%d: no progress for %.0f s (an instance "
                    "stopped mid-way?)", notification_id, record.version, self._resume_seconds,
                )
                self.submit(notification_id)
                resumed.append(notification_id)
            else:
                seen[notification_id] = mark
        self._seen = seen
        return resumed

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    def submit(self, notification_id: str) -> None:
        self._idle.clear()
        self._active[notification_id] = self._active.get(notification_id, 0) + 1
        self._queue.put_nowait(notification_id)

    async def drained(self) -> None:
        """Wait until every submitted notification is expanded (tests, benchmarks)."""
        await self._idle.wait()

    async def _run(self) -> None:
        while True:
            notification_id = await self._queue.get()
            try:
                await self.expand(notification_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expanding %s failed; retrying in 1 s", notification_id)
                await asyncio.sleep(1.0)
                self._queue.put_nowait(notification_id)
            else:
                left = self._active.pop(notification_id, 1) - 1
                if left:
                    self._active[notification_id] = left
            if self._queue.empty():
                self._idle.set()

    async def expand(self, notification_id: str) -> None:
        token = NOTIFICATION_ID.set(notification_id)
        try:
            await self._expand(notification_id)
        finally:
            NOTIFICATION_ID.reset(token)

    def _wake_at(self, notification_id: str, due: float) -> None:
        """Submit the notification again when its `sendAt` comes."""
        old = self._send_at_timers.pop(notification_id, None)
        if old is not None:
            old.cancel()

        def due_now() -> None:
            self._send_at_timers.pop(notification_id, None)
            self.submit(notification_id)

        delay = max(0.0, due - self._clock())
        loop = asyncio.get_running_loop()
        self._send_at_timers[notification_id] = loop.call_later(delay, due_now)

    async def _expand(self, notification_id: str) -> None:
        record = await self._notifications.get(notification_id)
        if record is None or not record.expansion_pending:
            return
        due = send_at(record.event)
        if due is not None and due > self._clock():
            # Scheduled: nothing is expanded (so nothing queued or sent) before `sendAt`.
            self._wake_at(record.id, due)
            log.info("%s v%d is scheduled: expanded at %s", record.id, record.version,
                     record.event.get("sendAt"))
            return
        if (record.event.get("recipients") or {}).get("all"):
            completed = await self._expand_all(record)
        else:
            completed = await self._expand_list(record)
        if completed:
            edits = await self._outbox.finish_expansion(record.id, record.version)
            if edits:
                self._on_enqueued()
            log.info("expanded %s v%d (%d queued for update)", record.id, record.version, edits)

    async def _current(self, record: NotificationRecord) -> bool:
        latest = await self._notifications.get(record.id)
        # A recall ends the expansion (the worker sends nothing of it either).
        return latest is not None and latest.version == record.version and not latest.recalled

    async def _expand_all(self, record: NotificationRecord) -> bool:
        cursor = record.expand_cursor
        facts = event_facts(record.event)
        tags = _Tags(self._fair)
        while True:
            ids = await self._users.user_id_page(cursor, self._page_size)
            if not ids:
                return True
            deliveries, inbox = await self._plan(ids, facts, tags)
            cursor = ids[-1]
            await self._outbox.add_page(record.id, record.version, deliveries, inbox, cursor)
            self._on_enqueued()
            self._on_inbox_written(inbox)
            if not await self._current(record):
                return False

    async def _expand_list(self, record: NotificationRecord) -> bool:
        keys = _recipient_keys(record.event)
        start = int(record.expand_cursor or 0)
        facts = event_facts(record.event)
        tags = _Tags(self._fair)
        for offset in range(start, len(keys), self._page_size):
            chunk = keys[offset : offset + self._page_size]
            resolved = await self._users.resolve(chunk)
            known = list(dict.fromkeys(resolved[k] for k in chunk if k in resolved))
            deliveries, inbox = await self._plan(known, facts, tags)
            now = self._clock()
            deliveries.extend(
                NewDelivery(k, NO_CHANNEL, "", "skipped", now, "unknown-user")
                for k in chunk
                if k not in resolved
            )
            cursor = str(offset + len(chunk))
            await self._outbox.add_page(record.id, record.version, deliveries, inbox, cursor)
            self._on_enqueued()
            self._on_inbox_written(inbox)
            if not await self._current(record):
                return False
        return True

    async def holds(
        self, jobs: Sequence[DeliveryJob], notifications: Mapping[str, NotificationRecord]
    ) -> dict[int, Hold]:
        """The router's rules again at send time, for jobs that are not edits of a message the
        user already has: a preference changed since expansion wins (DeliveryGate)."""
        fresh = [job for job in jobs if job.remote_id is None and job.channel != NO_CHANNEL]
        if not fresh:
            return {}
        documents = await self._users.preferences_for(list({job.user_id for job in fresh}))
        now = datetime.fromtimestamp(self._clock(), UTC)
        facts: dict[str, EventFacts] = {}
        parsed: dict[str, UserPreferences | None] = {}
        holds: dict[int, Hold] = {}
        for job in fresh:
            notification = notifications.get(job.notification_id)
            if notification is None:
                continue
            if job.notification_id not in facts:
                facts[job.notification_id] = event_facts(notification.event)
            if job.user_id not in parsed:
                document = documents.get(job.user_id)
                parsed[job.user_id] = UserPreferences.model_validate(document) if document else None
            decision = decide(
                parsed[job.user_id], facts[job.notification_id], job.channel, now, self._policy
            )
            if decision.action == "skip":
                holds[job.id] = Hold("skip", decision.reason)
            elif decision.action == "defer" and decision.not_before is not None:
                holds[job.id] = Hold("defer", decision.reason, decision.not_before.timestamp())
        return holds

    async def _plan(
        self, user_ids: Sequence[str], facts: EventFacts, tags: _Tags
    ) -> tuple[list[NewDelivery], list[str]]:
        """Decide, for each user and channel, deliver now, later, or skip (and why)."""
        now = self._clock()
        priority = priority_of(facts.urgency)
        now_dt = datetime.fromtimestamp(now, UTC)
        documents = await self._users.preferences_for(user_ids)
        targets = {channel.name: await channel.targets(user_ids) for channel in self._channels}
        unreachable = [
            (source.name, await source.unreachable(user_ids))
            for source in self._channels.unreachable
        ]
        deliveries: list[NewDelivery] = []
        for user_id in user_ids:
            document = documents.get(user_id)
            prefs = UserPreferences.model_validate(document) if document else None
            planned = 0
            for channel_name, by_user in targets.items():
                user_targets = by_user.get(user_id)
                if not user_targets:
                    continue
                decision = decide(prefs, facts, channel_name, now_dt, self._policy)
                if decision.action == "skip":
                    deliveries.append(
                        NewDelivery(user_id, channel_name, "", "skipped", now, decision.reason)
                    )
                    planned += 1
                    continue
                due = decision.not_before.timestamp() if decision.not_before else now
                for target in user_targets:
                    deliveries.append(
                        NewDelivery(
                            user_id, channel_name, target.key, "queued", due, decision.reason,
                            lane=target.lane, priority=priority, tag=tags.next(target.lane),
                        )
                    )
                    planned += 1
            for channel_name, reach in unreachable:
                # Registered where nothing here can reach them: counted as skipped, with why
                # (the policy's reason first, like for the channels that can send).
                pairs = reach.get(user_id)
                if not pairs:
                    continue
                decision = decide(prefs, facts, channel_name, now_dt, self._policy)
                if decision.action == "skip":
                    deliveries.append(
                        NewDelivery(user_id, channel_name, "", "skipped", now, decision.reason)
                    )
                else:
                    deliveries.extend(
                        NewDelivery(user_id, channel_name, target, "skipped", now, reason)
                        for target, reason in pairs
                    )
                planned += 1
            if not planned:
                deliveries.append(NewDelivery(user_id, NO_CHANNEL, "", "skipped", now, "no-target"))
        return deliveries, list(user_ids)
