"""The router: expands a notification into one delivery per (user, channel, target).

Audiences are streamed part by part and a page at a time (delivery/audience.py: explicit users
by position, groups and teams by their source's page links, `{"all": true}` by keyset over user
ids), and each page is written together with the expansion's state (the part, its cursor, what
every part found), so memory stays flat as the audience grows and a crash resumes mid-part.
A person named by several parts is planned once (the outbox's marks). Expansion runs in the
background after the 202; `pending_expansion()` is resumed at start-up. One expansion at a time,
but a long one gives way between pages to notifications waiting behind it, and one whose source
is throttled or down waits (its state saved) without holding the others up.

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
import random
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from delivery.audience import (
    AudiencePage,
    Audiences,
    Expansion,
    Part,
    audience_parts,
    is_channel_post,
)
from delivery.channel import ChannelRegistry
from delivery.fairness import FairClock, priority_of
from delivery.outbox import DeliveryJob, DeliveryQueue, NewDelivery
from delivery.worker import Hold
from errors import AudiencePartFailed, AudienceUnavailable
from logs import NOTIFICATION_ID
from notifications.event import Notice
from preferences.model import UserPreferences
from preferences.rules import DeliveryPolicy, EventFacts, decide
from storage.protocols import NotificationStore, UserStore
from storage.records import NotificationRecord

__all__ = ["Router", "event_facts", "send_at"]

log = logging.getLogger(__name__)

NO_CHANNEL = ""
_PART_ATTEMPTS = 8
"""Tries to list a page of a part whose source is throttled or down before the part is given
up (counted as skipped, with the reason): ~15 minutes with the backoff below."""


def event_facts(event: Notice) -> EventFacts:
    return EventFacts(type=event.type.lower(), urgency=event.urgency, expires_at=event.expires_at)


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


def send_at(event: Notice) -> float | None:
    """The event's `sendAt` (epoch seconds): nothing is expanded or sent before it."""
    return None if event.send_at is None else event.send_at.timestamp()


def _retry_in(attempt: int) -> float:
    """Backoff before listing a part again after `attempt` transient failures."""
    return float(min(300.0, 2.0 ** attempt) * (0.5 + random.random() / 2))


class Router:
    """Expands notifications in a background task, one at a time, newest version first."""

    def __init__(
        self,
        users: UserStore,
        notifications: NotificationStore,
        outbox: DeliveryQueue,
        channels: ChannelRegistry,
        policy: DeliveryPolicy,
        *,
        page_size: int = 500,
        on_enqueued: Callable[[], None] = lambda: None,
        on_inbox_written: Callable[[Sequence[str]], None] = lambda user_ids: None,
        clock: Callable[[], float] = time.time,
        resume_seconds: float = 10.0,
        fair_clock: FairClock | None = None,
        audiences: Audiences | None = None,
    ) -> None:
        self._fair = fair_clock or FairClock()
        self._audiences = audiences or Audiences(users)
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
        # Expansions waiting for their source (throttled, down): when each goes on.
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._idle = asyncio.Event()
        self._idle.set()

    async def start(self) -> None:
        for notification_id in await self._notifications.pending_expansion():
            self.submit(notification_id)
        self._task = asyncio.create_task(self._run(), name="herald-router")
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="herald-router-sweep")

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
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
                if notification_id not in self._timers:  # scheduled elsewhere: wait here too
                    self.submit(notification_id)
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
                pause = await self._expand_logged(notification_id, yielding=True)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("expanding %s failed; retrying in 1 s", notification_id)
                await asyncio.sleep(1.0)
                self._queue.put_nowait(notification_id)
            else:
                if pause == 0.0:
                    # Others wait: this one goes on after them (its state is saved).
                    self._queue.put_nowait(notification_id)
                elif pause is not None:
                    self._wait(notification_id, pause)
                else:
                    left = self._active.pop(notification_id, 1) - 1
                    if left:
                        self._active[notification_id] = left
            if self._queue.empty() and not self._timers:
                self._idle.set()

    def _wait(self, notification_id: str, seconds: float) -> None:
        """Go on with an expansion in `seconds`; it stays this instance's meanwhile."""
        if notification_id in self._timers:
            return

        def resume() -> None:
            self._timers.pop(notification_id, None)
            self._queue.put_nowait(notification_id)

        self._timers[notification_id] = asyncio.get_running_loop().call_later(seconds, resume)

    async def expand(self, notification_id: str) -> None:
        """Expand what is left of a notification's audience now (tests call this directly)."""
        await self._expand_logged(notification_id, yielding=False)

    async def _expand_logged(self, notification_id: str, *, yielding: bool) -> float | None:
        token = NOTIFICATION_ID.set(notification_id)
        try:
            return await self._expand(notification_id, yielding=yielding)
        finally:
            NOTIFICATION_ID.reset(token)

    async def _expand(self, notification_id: str, *, yielding: bool) -> float | None:
        """Expand from where the saved state says. None when it is finished (or no longer
        the current version); otherwise seconds until it should go on: 0 when it only gives
        way to notifications waiting behind it, more while its source is unavailable."""
        record = await self._notifications.get(notification_id)
        if record is None or not record.expansion_pending:
            return None
        due = send_at(record.event)
        if due is not None and due > self._clock():
            # Scheduled: nothing is expanded (so nothing queued or sent) before `sendAt`; it
            # waits here like an expansion whose source is throttled, and a restart (start()
            # resumes pending expansions) or another instance's sweep sets the wait again.
            log.info("%s v%d is scheduled: expanded at %s", record.id, record.version,
                     record.event.send_at)
            return max(due - self._clock(), 0.05)
        recipients = record.event.recipients
        parts = audience_parts(recipients)
        state = Expansion.loads(record.expand_cursor, len(parts))
        facts = event_facts(record.event)
        tags = _Tags(self._fair)
        # One part cannot name anybody twice (or, explicit users, only as different keys of one
        # person, whose rows are the same): marks are needed from two parts on.
        dedupe = len(parts) > 1
        while state.part < len(parts):
            part = parts[state.part]
            progress = state.parts[state.part]
            progress.state = "expanding"
            failure: str | None = None
            page: AudiencePage | None = None
            try:
                page = await self._audiences.page(
                    part, recipients, state.cursor, self._page_size,
                    last_try=progress.attempts >= _PART_ATTEMPTS - 1,
                )
            except AudienceUnavailable as exc:
                progress.attempts += 1
                progress.reason = exc.reason
                if progress.attempts < _PART_ATTEMPTS:
                    await self._outbox.add_page(record.id, record.version, [], [], state.dumps())
                    wait = exc.after if exc.after is not None else _retry_in(progress.attempts)
                    log.warning(
                        "cannot list %s of %s now (%s, attempt %d); trying again in %.0f s",
                        part.label, record.id, exc.reason, progress.attempts, wait,
                    )
                    return max(wait, 0.05)
                failure = f"{exc.reason} (gave up after {progress.attempts} attempts)"
            except AudiencePartFailed as exc:
                failure = exc.reason
            if page is None:
                reason = failure or "unavailable"
                log.warning("cannot list %s of %s: %s", part.label, record.id, reason)
                deliveries = [
                    NewDelivery(part.label, NO_CHANNEL, "", "skipped", self._clock(), reason)
                ]
                inbox: list[str] = []
                marks: list[str] = []
                progress.state, progress.reason = "failed", reason
                progress.added += 1
                state.part, state.cursor = state.part + 1, None
            else:
                deliveries, inbox, marks, added = await self._plan_page(
                    record, part, page, facts, tags, dedupe=dedupe
                )
                progress.listed += page.listed
                progress.added += added
                progress.attempts, progress.reason = 0, None
                if page.next is None:
                    progress.state = "done"
                    state.part, state.cursor = state.part + 1, None
                else:
                    state.cursor = page.next
            await self._outbox.add_page(
                record.id, record.version, deliveries, inbox, state.dumps(), marks=marks
            )
            self._on_enqueued()
            self._on_inbox_written(inbox)
            if not await self._current(record):
                return None
            if yielding and not self._queue.empty() and state.part < len(parts):
                return 0.0
        edits = await self._outbox.finish_expansion(record.id, record.version)
        if edits:
            self._on_enqueued()
        log.info(
            "expanded %s v%d: %d recipients (%d queued for update)",
            record.id, record.version, state.added, edits,
        )
        return None

    async def _current(self, record: NotificationRecord) -> bool:
        latest = await self._notifications.get(record.id)
        # A recall ends the expansion (the worker sends nothing of it either).
        return latest is not None and latest.version == record.version and not latest.recalled

    async def _plan_page(
        self,
        record: NotificationRecord,
        part: Part,
        page: AudiencePage,
        facts: EventFacts,
        tags: _Tags,
        *,
        dedupe: bool,
    ) -> tuple[list[NewDelivery], list[str], list[str], int]:
        """The deliveries, history entries and marks of one page, and how many recipients it
        adds (people not planned before, keys nobody answers to, channel posts)."""
        people = page.people
        if dedupe and people:
            seen = await self._outbox.planned(
                record.id, record.version, [p.user_id for p in people]
            )
            people = [p for p in people if p.user_id not in seen]
        strangers = {p.user_id: p.tenant for p in people if p.tenant}
        deliveries, inbox = await self._plan([p.user_id for p in people], facts, tags, strangers)
        now = self._clock()
        deliveries.extend(
            NewDelivery(user_id, NO_CHANNEL, target, "skipped", now, reason)
            for user_id, target, reason in page.skipped
        )
        deliveries.extend(await self._posts(page, facts, tags))
        marks = [p.user_id for p in people] if dedupe else []
        return deliveries, inbox, marks, len(people) + len(page.skipped) + len(page.posts)

    async def _posts(
        self, page: AudiencePage, facts: EventFacts, tags: _Tags
    ) -> list[NewDelivery]:
        """Posts in channels: nobody's preferences apply (a channel is no person); an expired
        event is not posted."""
        if not page.posts:
            return []
        now = self._clock()
        channel = self._channels.get("conversation")
        if channel is None:
            return [
                NewDelivery(r.user_id, NO_CHANNEL, r.target, "skipped", now, "channel-unavailable")
                for r in page.posts
            ]
        targets = await channel.targets(list(dict.fromkeys(r.user_id for r in page.posts)))
        expired = facts.expires_at is not None and facts.expires_at.timestamp() <= now
        priority = priority_of(facts.urgency)
        posts: list[NewDelivery] = []
        for ref in page.posts:
            target = next((t for t in targets.get(ref.user_id, ()) if t.key == ref.target), None)
            if target is None or expired:
                reason = "expired" if expired else "channel-removed"
                posts.append(
                    NewDelivery(ref.user_id, channel.name, ref.target, "skipped", now, reason)
                )
                continue
            posts.append(
                NewDelivery(
                    ref.user_id, channel.name, target.key, "queued", now,
                    lane=target.lane, priority=priority, tag=tags.next(target.lane),
                )
            )
        return posts

    async def holds(
        self, jobs: Sequence[DeliveryJob], notifications: Mapping[str, NotificationRecord]
    ) -> dict[int, Hold]:
        """The router's rules again at send time, for jobs that are not edits of a message the
        user already has: a preference changed since expansion wins (DeliveryGate)."""
        fresh = [
            job
            for job in jobs
            if job.remote_id is None
            and job.channel != NO_CHANNEL
            and not is_channel_post(job.user_id)  # a channel is nobody: no preferences
        ]
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
        self,
        user_ids: Sequence[str],
        facts: EventFacts,
        tags: _Tags,
        strangers: Mapping[str, str] | None = None,
    ) -> tuple[list[NewDelivery], list[str]]:
        """Decide, for each user and channel, deliver now, later, or skip (and why).
        `strangers` names people Herald has no record of, with the tenant a chat with them may
        be created in (delivery/reach.py)."""
        now = self._clock()
        priority = priority_of(facts.urgency)
        now_dt = datetime.fromtimestamp(now, UTC)
        documents = await self._users.preferences_for(user_ids)
        targets = {channel.name: await channel.targets(user_ids) for channel in self._channels}
        creator = self._channels.creator
        if strangers and creator is not None and creator.name in targets:
            reachable = targets[creator.name]
            for user_id, tenant in strangers.items():
                if not reachable.get(user_id):
                    target = creator.creatable(user_id, tenant)
                    if target is not None:
                        reachable[user_id] = [target]
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
