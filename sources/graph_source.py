"""Microsoft Graph change notifications as an event source: the part the rest of Herald sees.

* `accept` takes what Graph POSTs to `/api/graph/notifications` and `/api/graph/lifecycle`:
  each item's clientState is compared in constant time with the one stored for its
  subscription (unknown or wrong: ignored and logged), and the rest is written to the durable
  inbox in one transaction, before Graph gets its 202.
* A background task processes the inbox: a change becomes a notification (CalendarNotifier), a
  lifecycle event asks for a renewal (reauthorizationRequired), a new subscription
  (subscriptionRemoved) or a resync (missed). Changes a stopped process had leased are due
  again at start-up, so nothing acknowledged is lost.
* A maintenance task renews subscriptions well before they expire, retries what failed,
  deletes what users no longer want, and purges old inbox entries.
* `set_allowed` / `state` serve the dialog and `PUT/GET /api/users/{id}/subscriptions/calendar`.

When Graph is not configured the source is off: nothing runs, `state` says so, and asking for a
subscription raises `CalendarUnavailable("off")`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol

from errors import HeraldError, NotFound, SourceError, SourceUnavailable
from preferences.service import PreferencesService
from sources.graph import GraphClient, GraphConfig, GraphTokens, MsalGraphTokens
from sources.graph_changes import CalendarNotifier, change_key_of, event_id_of
from sources.graph_subscriber import Subscriber, SubscriberConfig, new_client_state
from storage.graph_subscriptions import (
    CALENDAR,
    GraphChange,
    GraphChangeInbox,
    GraphResourceStore,
    GraphSubscription,
    GraphSubscriptionStore,
    NewGraphChange,
    is_entra_id,
)
from storage.protocols import NotificationStore

__all__ = [
    "LIFECYCLE_PATH",
    "NOTIFICATIONS_PATH",
    "CalendarAccess",
    "CalendarState",
    "CalendarUnavailable",
    "GraphSource",
]

log = logging.getLogger(__name__)

NOTIFICATIONS_PATH: Final = "/api/graph/notifications"
LIFECYCLE_PATH: Final = "/api/graph/lifecycle"
LIFECYCLE_EVENTS: Final = frozenset({"reauthorizationRequired", "subscriptionRemoved", "missed"})
_KEPT: Final = (
    "subscriptionId",
    "subscriptionExpirationDateTime",
    "changeType",
    "resource",
    "resourceData",
    "tenantId",
    "lifecycleEvent",
)
"""What the inbox keeps of an item: never the clientState (a secret)."""
_MAX_ATTEMPTS: Final = 8
_RETENTION_SECONDS: Final = 7 * 86400.0
_BUSY_DELAY: Final = 2.0


class CalendarUnavailable(HeraldError):
    """A calendar subscription cannot be had: `reason` is "off" (Graph not configured),
    "no-entra-id" (the user has no Entra ID account, e.g. an Emulator user) or "opted-out"
    (the user turned all notifications off)."""

    def __init__(self, reason: Literal["off", "no-entra-id", "opted-out"]) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class CalendarState:
    """A user's calendar subscription as people and backends see it."""

    user_id: str
    available: bool
    """Graph is configured on this Herald."""
    eligible: bool
    """The user has an Entra ID account Graph knows."""
    allowed: bool
    status: Literal["off", "pending", "active", "removing"]
    expires_at: float | None = None
    last_error: str | None = None


class CalendarAccess(Protocol):
    """What dialogs and the API need of the calendar source."""

    @property
    def enabled(self) -> bool: ...

    async def state(self, user_id: str) -> CalendarState: ...

    async def set_allowed(self, user_id: str, allowed: bool) -> CalendarState: ...


def _digest(text: str) -> bytes:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _dedupe_key(subscription_id: str, item: dict[str, Any]) -> str | None:
    """Outlook's repeats of one change: same subscription, event, change type and etag."""
    key = change_key_of(item)
    event_id = event_id_of(item)
    if key is None or event_id is None:
        return None
    raw = f"{subscription_id}|{event_id}|{item.get('changeType')}|{key}"
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()


class _Busy(Exception):
    """Another holder has the subscription's lease; try the inbox entry again shortly."""


class GraphSource:
    """Graph subscriptions for users' calendars, and the notifications their changes become."""

    def __init__(
        self,
        *,
        config: GraphConfig | None,
        subscriptions: GraphSubscriptionStore,
        inbox: GraphChangeInbox,
        resources: GraphResourceStore,
        notifications: NotificationStore,
        preferences: PreferencesService,
        submit: Callable[[str], None],
        public_url: str,
        lifetime_minutes: int,
        renew_before_minutes: int,
        tokens: GraphTokens | None = None,
        clock: Callable[[], float] = time.time,
        owner: str | None = None,
        maintenance_seconds: float = 60.0,
        poll_seconds: float = 2.0,
        batch: int = 16,
    ) -> None:
        self.clock = clock
        """Where time comes from; tests replace it to drive renewals."""
        self._subscriptions = subscriptions
        self._inbox = inbox
        self._resources = resources
        self._preferences = preferences
        self._maintenance_seconds = maintenance_seconds
        self._poll_seconds = poll_seconds
        self._batch = batch
        self._owner = owner or uuid.uuid4().hex
        self._client: GraphClient | None = None
        self._subscriber: Subscriber | None = None
        self._notifier: CalendarNotifier | None = None
        if config is not None:
            self._client = GraphClient(config, tokens or MsalGraphTokens(config))
            self._notifier = CalendarNotifier(
                self._client, resources, notifications, preferences, submit, self._now
            )
            base = public_url.rstrip("/")
            self._subscriber = Subscriber(
                self._client,
                subscriptions,
                resources,
                self._notifier,
                SubscriberConfig(
                    notification_url=base + NOTIFICATIONS_PATH,
                    lifecycle_url=base + LIFECYCLE_PATH,
                    lifetime_minutes=lifetime_minutes,
                    renew_before_minutes=renew_before_minutes,
                ),
                owner=self._owner,
                now=self._now,
                opted_out=self._opted_out,
            )
            if not base.startswith("https://"):
                log.warning(
                    "HERALD_PUBLIC_URL is not https: Microsoft Graph will refuse to "
                    "send change notifications to %s",
                    base,
                )
        self._wake = asyncio.Event()
        self._maintain_now = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def _now(self) -> float:
        return self.clock()

    @property
    def enabled(self) -> bool:
        return self._subscriber is not None

    @property
    def owner(self) -> str:
        return self._owner

    # ---- life

    async def start(self) -> None:
        if self._client is None:
            log.info(
                "Microsoft Graph source off (GRAPH_TENANT_ID, GRAPH_CLIENT_ID and "
                "GRAPH_CLIENT_SECRET are not all set)"
            )
            return
        await self._client.open()
        released = await self._inbox.release_leases()
        pending = await self._inbox.pending()
        log.info(
            "Microsoft Graph source on: %d subscriptions, %d changes to process%s",
            await self._subscriptions.count_active(),
            pending,
            f" ({released} resumed)" if released else "",
        )
        self._tasks = [
            asyncio.create_task(self._process_loop(), name="herald-graph-changes"),
            asyncio.create_task(self._maintenance_loop(), name="herald-graph-maintenance"),
        ]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._client is not None:
            await self._client.aclose()

    @property
    def running(self) -> bool:
        return bool(self._tasks) and all(not t.done() for t in self._tasks)

    def wake(self) -> None:
        self._wake.set()

    # ---- what Graph posts

    async def accept(self, items: Sequence[Any], *, lifecycle: bool) -> tuple[int, int]:
        """Check and store notifications durably; (accepted, ignored). Returns only once the
        accepted ones are written, so the caller may answer 202."""
        kind = "lifecycle" if lifecycle else "change"
        if not self.enabled:
            if items:
                log.warning(
                    "ignored %d Graph %s notification(s): the source is off", len(items), kind
                )
            return 0, len(items)
        accepted: list[NewGraphChange] = []
        ignored = 0
        for item in items:
            change = await self._checked(item, lifecycle=lifecycle)
            if change is None:
                ignored += 1
            else:
                accepted.append(change)
        added = await self._inbox.add(accepted, now=self._now())
        if added:
            self.wake()
        if len(accepted) > added:
            log.info("dropped %d repeated Graph change notification(s)", len(accepted) - added)
        return len(accepted), ignored

    async def _checked(self, item: Any, *, lifecycle: bool) -> NewGraphChange | None:
        kind: Literal["change", "lifecycle"] = "lifecycle" if lifecycle else "change"
        if not isinstance(item, dict):
            log.warning("ignored a Graph %s notification that is not an object", kind)
            return None
        subscription_id, client_state = item.get("subscriptionId"), item.get("clientState")
        if not isinstance(subscription_id, str) or not 0 < len(subscription_id) <= 200:
            log.warning("ignored a Graph %s notification without a subscription id", kind)
            return None
        record = await self._subscriptions.find(subscription_id)
        expected = record.client_state if record is not None else new_client_state()
        # Compared whatever happens, digests of equal length: timing tells nothing.
        matches = hmac.compare_digest(
            _digest(client_state if isinstance(client_state, str) else ""), _digest(expected)
        )
        if record is None or not matches:
            log.warning(
                "ignored a Graph %s notification for subscription %s: %s",
                kind,
                subscription_id[:64],
                "unknown subscription" if record is None else "clientState does not match",
            )
            return None
        if lifecycle and item.get("lifecycleEvent") not in LIFECYCLE_EVENTS:
            log.warning(
                "ignored an unknown Graph lifecycle event %r", str(item.get("lifecycleEvent"))[:64]
            )
            return None
        payload = {key: item[key] for key in _KEPT if key in item}
        return NewGraphChange(
            subscription_id=subscription_id,
            user_id=record.user_id,
            kind=kind,
            payload=payload,
            dedupe_key=None if lifecycle else _dedupe_key(subscription_id, item),
        )

    # ---- processing the inbox

    async def _process_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                processed = await self.process_pending()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("processing Graph notifications failed; trying again shortly")
                processed = 0
            if processed == 0:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._poll_seconds):
                        await self._wake.wait()

    async def process_pending(self) -> int:
        """Process one batch of due inbox entries; how many were taken."""
        now = self._now()
        changes = await self._inbox.claim(
            now=now, until=now + self._lease_seconds, limit=self._batch
        )
        by_user: dict[str, list[GraphChange]] = {}
        for change in changes:
            by_user.setdefault(change.user_id, []).append(change)
        # One user's changes in the order Graph sent them (a meeting created, then moved, reads
        # as such); different users' side by side.
        await asyncio.gather(*(self._process_in_order(group) for group in by_user.values()))
        return len(changes)

    async def _process_in_order(self, changes: Sequence[GraphChange]) -> None:
        for change in changes:
            await self._process(change)

    @property
    def _lease_seconds(self) -> float:
        return self._subscriber.lease_seconds if self._subscriber else 300.0

    async def _process(self, change: GraphChange) -> None:
        try:
            if change.kind == "lifecycle":
                await self._lifecycle(change)
            else:
                await self._change(change)
            await self._inbox.done(change.id, now=self._now())
        except asyncio.CancelledError:
            raise
        except _Busy:
            await self._inbox.retry(change.id, at=self._now() + _BUSY_DELAY, error="busy")
        except Exception as exc:
            attempts = change.attempts + 1
            permanent = isinstance(exc, SourceError) and exc.status in (400, 401, 403)
            if permanent or attempts >= _MAX_ATTEMPTS:
                log.error(
                    "gave up on a Graph %s notification after %d attempt(s): %s",
                    change.kind,
                    attempts,
                    exc,
                )
                await self._inbox.fail(change.id, now=self._now(), error=str(exc))
                return
            after = exc.after if isinstance(exc, SourceUnavailable) else None
            delay = after if after else min(900.0, 5.0 * 2 ** (attempts - 1))
            if isinstance(exc, SourceError):
                log.warning(
                    "a Graph %s notification failed (%s); retrying in %.0f s",
                    change.kind,
                    exc,
                    delay,
                )
            else:
                log.exception(
                    "a Graph %s notification failed; retrying in %.0f s", change.kind, delay
                )
            await self._inbox.retry(change.id, at=self._now() + delay, error=str(exc))

    async def _change(self, change: GraphChange) -> None:
        assert self._notifier is not None
        record = await self._subscriptions.get(change.user_id, CALENDAR)
        if record is None or not record.allowed:
            log.info("dropped a calendar change for %s: they no longer want them", change.user_id)
            return
        if await self._opted_out(change.user_id):
            await self._unsubscribe_opted_out(change.user_id)
            return
        outcome = await self._notifier.handle(change.user_id, change.payload)
        log.debug("calendar change for %s: %s", change.user_id, outcome)

    async def _lifecycle(self, change: GraphChange) -> None:
        event = change.payload.get("lifecycleEvent")
        now = self._now()
        log.info(
            "Graph lifecycle event %s for the calendar subscription of %s", event, change.user_id
        )
        if event == "reauthorizationRequired":
            record = await self._subscriptions.request(change.subscription_id, renew=True, now=now)
        elif event == "subscriptionRemoved":
            record = await self._subscriptions.request(
                change.subscription_id, removed=True, resync=True, now=now
            )
        else:  # missed
            record = await self._subscriptions.request(change.subscription_id, resync=True, now=now)
        if record is None:
            return  # that subscription was replaced or deleted meanwhile
        # The request is stored: if the work fails or the lease is busy, maintenance does it.
        claimed = await self._claim(record.user_id)
        if claimed is None:
            self._maintain_now.set()
            return
        with contextlib.suppress(SourceError):
            await self._reconcile(claimed)

    # ---- subscriptions

    async def _claim(self, user_id: str) -> GraphSubscription | None:
        now = self._now()
        return await self._subscriptions.claim(
            user_id, CALENDAR, owner=self._owner, now=now, until=now + self._lease_seconds
        )

    async def _claim_waiting(self, user_id: str) -> GraphSubscription | None:
        """The lease, waiting up to 10 s for a holder (a renewal in flight) to finish."""
        deadline = asyncio.get_running_loop().time() + 10.0
        while True:
            record = await self._claim(user_id)
            if record is not None:
                return record
            if asyncio.get_running_loop().time() >= deadline:
                return None
            await asyncio.sleep(0.05)

    async def _reconcile(
        self, record: GraphSubscription, *, verify: bool = False
    ) -> GraphSubscription:
        assert self._subscriber is not None
        return await self._subscriber.reconcile(record, verify=verify)

    async def _opted_out(self, user_id: str) -> bool:
        try:
            return (await self._preferences.read(user_id)).prefs.opted_in is False
        except NotFound:
            return False

    async def _unsubscribe_opted_out(self, user_id: str) -> None:
        log.info("%s opted out: dropping their calendar change and the subscription", user_id)
        record = await self._claim(user_id)
        if record is None:
            self._maintain_now.set()
            return
        with contextlib.suppress(SourceError):
            await self._reconcile(record)  # sees the opt-out and removes the subscription

    async def state(self, user_id: str) -> CalendarState:
        record = await self._subscriptions.get(user_id, CALENDAR)
        return CalendarState(
            user_id=user_id,
            available=self.enabled,
            eligible=is_entra_id(user_id),
            allowed=record.allowed if record else False,
            status=record.status if record else "off",
            expires_at=record.expires_at if record else None,
            last_error=record.last_error if record else None,
        )

    async def set_allowed(self, user_id: str, allowed: bool) -> CalendarState:
        """The user's wish, applied at once when possible (else retried in the background).

        Raises CalendarUnavailable when the user has no Entra ID account, or asks for a
        subscription while Graph is not configured."""
        if not is_entra_id(user_id):
            raise CalendarUnavailable("no-entra-id")
        if allowed and not self.enabled:
            raise CalendarUnavailable("off")
        if allowed and await self._opted_out(user_id):
            raise CalendarUnavailable("opted-out")
        await self._subscriptions.set_allowed(
            user_id,
            CALENDAR,
            allowed,
            resource=f"users/{user_id}/events",
            client_state=new_client_state(),
            now=self._now(),
        )
        if self.enabled:
            record = await self._claim_waiting(user_id)
            if record is None:
                self._maintain_now.set()  # someone else is working on it; maintenance follows
            else:
                with contextlib.suppress(SourceError):  # recorded on the subscription
                    await self._reconcile(record, verify=allowed)
        return await self.state(user_id)

    # ---- maintenance

    async def maintain(self, limit: int = 50) -> int:
        """One pass: every subscription that needs work and is not leased elsewhere."""
        assert self._subscriber is not None
        done = 0
        while True:
            now = self._now()
            records = await self._subscriptions.claim_due(
                owner=self._owner,
                now=now,
                until=now + self._lease_seconds,
                renew_before=self._subscriber.renew_before_seconds,
                limit=limit,
            )
            for record in records:
                try:
                    await self._reconcile(record)
                except SourceError:
                    pass  # recorded with a backoff; logged by the subscriber
                except Exception:
                    log.exception(
                        "maintaining the calendar subscription of %s failed", record.user_id
                    )
            done += len(records)
            if len(records) < limit:
                return done

    async def _maintenance_loop(self) -> None:
        last_purge = 0.0
        while True:
            self._maintain_now.clear()
            try:
                await self.maintain()
                now = self._now()
                if now - last_purge >= 3600.0:
                    purged = await self._inbox.purge(before=now - _RETENTION_SECONDS)
                    last_purge = now
                    if purged:
                        log.info("purged %d processed Graph notifications", purged)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("Graph maintenance failed; trying again later")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._maintenance_seconds):
                    await self._maintain_now.wait()

    async def settled(self, within: float = 10.0) -> None:
        """Wait until the inbox holds nothing unprocessed (tests)."""
        deadline = asyncio.get_running_loop().time() + within
        while await self._inbox.pending():
            if asyncio.get_running_loop().time() > deadline:
                raise TimeoutError("Graph notifications are still waiting to be processed")
            await asyncio.sleep(0.02)
