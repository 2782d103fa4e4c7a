"""Keeps each user's Graph subscription in line with their wish: create, renew, recreate, resync,
delete — one place for every change Herald makes to a subscription.

`reconcile` runs only while its caller holds the record's lease (GraphSubscriptionStore.claim
or claim_due), so instances sharing a store never renew or create the same subscription twice.
It saves its progress after every step Graph has taken (a created subscription is never
forgotten because a later step failed), and on failure records the error with a backoff for
the maintenance job to try again.

Creating a subscription lists the app's subscriptions first and deletes any other for the same
resource and notification URL (left behind by a create whose answer was lost: Graph never shows
a clientState back, so Herald could not check its notifications), so a user never has two. A
subscription Graph no longer has (expired while Herald was down, removed by Graph) is recreated,
followed by a resync, since changes in between were not notified.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final

from errors import SourceError, SourceNotFound, SourceUnavailable
from sources.graph import GraphClient
from sources.graph_changes import CalendarNotifier
from storage.graph_subscriptions import (
    GraphResourceStore,
    GraphSubscription,
    GraphSubscriptionStore,
)

__all__ = [
    "CHANGE_TYPES",
    "MAX_CALENDAR_MINUTES",
    "Subscriber",
    "SubscriberConfig",
    "new_client_state",
]

log = logging.getLogger(__name__)

MAX_CALENDAR_MINUTES: Final = 4230
"""Graph's longest subscription lifetime for Outlook events."""
SKEW_MINUTES: Final = 5
"""Asked for this much less than the maximum, so a clock slightly ahead of Graph's is no 400."""
CHANGE_TYPES: Final = "created,updated,deleted"
_MAX_BACKOFF: Final = 3600.0


def new_client_state() -> str:
    """A random clientState: 64 URL-safe characters (Graph allows 128)."""
    return secrets.token_urlsafe(48)


def _epoch(value: Any) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def _graph_iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass(frozen=True, slots=True)
class SubscriberConfig:
    notification_url: str
    lifecycle_url: str
    lifetime_minutes: int = MAX_CALENDAR_MINUTES
    """Asked-for lifetime of a subscription (capped at the maximum minus the skew margin)."""
    renew_before_minutes: int = 720
    """Renew when less than this is left."""
    lease_seconds: float = 300.0


class _Progress:
    """The record as far as Graph has got, for saving on failure."""

    def __init__(self, record: GraphSubscription) -> None:
        self.record = record


class Subscriber:
    """Creates, renews, recreates and deletes Graph subscriptions for one owner (instance)."""

    def __init__(
        self,
        client: GraphClient,
        store: GraphSubscriptionStore,
        resources: GraphResourceStore,
        notifier: CalendarNotifier,
        config: SubscriberConfig,
        *,
        owner: str,
        now: Callable[[], float],
        opted_out: Callable[[str], Awaitable[bool]],
    ) -> None:
        self._client = client
        self._store = store
        self._resources = resources
        self._notifier = notifier
        self._config = config
        self.owner = owner
        self._now = now
        self._opted_out = opted_out

    @property
    def renew_before_seconds(self) -> float:
        return self._config.renew_before_minutes * 60.0

    @property
    def lease_seconds(self) -> float:
        return self._config.lease_seconds

    def expiration(self, now: float) -> float:
        minutes = min(self._config.lifetime_minutes, MAX_CALENDAR_MINUTES - SKEW_MINUTES)
        return now + minutes * 60.0

    async def _checkpoint(self, progress: _Progress, record: GraphSubscription) -> None:
        progress.record = record
        if not await self._store.save(record, owner=self.owner, now=self._now(), release=False):
            raise SourceError("another instance took over this subscription's lease")

    async def reconcile(
        self, record: GraphSubscription, *, verify: bool = False
    ) -> GraphSubscription:
        """Make Graph match the record's wish; the caller holds the lease, which is released.

        With `verify`, an existing subscription is looked up at Graph first (a user asked
        again: if Graph lost it, it is recreated). Raises SourceError after recording it."""
        progress = _Progress(record)
        try:
            wish = record.allowed
            if wish and await self._opted_out(record.user_id):
                # Opted out of everything (by API or elsewhere): stop watching their calendar.
                await self._store.set_allowed(
                    record.user_id,
                    record.kind,
                    False,
                    resource=record.resource,
                    client_state=record.client_state,
                    now=self._now(),
                )
                progress.record = replace(record, allowed=False)
                wish = False
                log.info("%s opted out: removing their calendar subscription", record.user_id)
            if wish:
                await self._keep(progress, verify=verify)
            else:
                await self._remove(progress)
            done = replace(progress.record, attempts=0, next_attempt_at=0.0, last_error=None)
            if not await self._store.save(done, owner=self.owner, now=self._now(), release=True):
                raise SourceError("another instance took over this subscription's lease")
            return done
        except SourceError as exc:
            current = progress.record
            attempts = current.attempts + 1
            after = exc.after if isinstance(exc, SourceUnavailable) else None
            delay = after if after else min(_MAX_BACKOFF, 60.0 * 2 ** (attempts - 1))
            failed = replace(
                current,
                attempts=attempts,
                next_attempt_at=self._now() + delay,
                last_error=str(exc)[:500],
            )
            await self._store.save(failed, owner=self.owner, now=self._now(), release=True)
            log.warning(
                "calendar subscription of %s: %s (attempt %d; next in %.0f s)",
                current.user_id,
                exc,
                attempts,
                delay,
            )
            raise
        except BaseException:
            await self._store.save(progress.record, owner=self.owner, now=self._now(), release=True)
            raise

    async def _remove(self, progress: _Progress) -> None:
        record = progress.record
        if record.subscription_id is not None:
            deleted = await self._client.delete_subscription(record.subscription_id)
            log.info(
                "calendar subscription of %s %s",
                record.user_id,
                "deleted" if deleted else "was already gone at Graph",
            )
        await self._resources.forget_user(record.user_id)
        progress.record = replace(
            record,
            subscription_id=None,
            expires_at=None,
            delta_link=None,
            renew_done=record.renew_wanted,
            resync_done=record.resync_wanted,
        )

    async def _keep(self, progress: _Progress, *, verify: bool) -> None:
        record = progress.record
        lost = False
        if (
            record.subscription_id is not None
            and verify
            and await self._client.get_subscription(record.subscription_id) is None
        ):
            lost = True
            record = replace(record, subscription_id=None, expires_at=None)
            await self._checkpoint(progress, record)
        now = self._now()
        if record.subscription_id is not None and (
            record.renew_pending
            or record.expires_at is None
            or record.expires_at - now <= self.renew_before_seconds
        ):
            wanted = self.expiration(now)
            try:
                answer = await self._client.renew_subscription(
                    record.subscription_id, _graph_iso(wanted)
                )
                record = replace(
                    record,
                    expires_at=_epoch(answer.get("expirationDateTime")) or wanted,
                    renew_done=record.renew_wanted,
                )
                log.info(
                    "calendar subscription of %s renewed until %s",
                    record.user_id,
                    _graph_iso(record.expires_at or wanted),
                )
            except SourceNotFound:
                lost = True
                record = replace(record, subscription_id=None, expires_at=None)
                log.info(
                    "Graph no longer has the calendar subscription of %s; recreating",
                    record.user_id,
                )
            await self._checkpoint(progress, record)
        if record.subscription_id is None:
            lost = lost or record.delta_link is not None
            record = await self._create(progress, record)
        if record.delta_link is None:
            link = await self._notifier.baseline(record)
            record = replace(record, delta_link=link, resync_done=record.resync_wanted)
            await self._checkpoint(progress, record)
        elif record.resync_pending or lost:
            link = await self._notifier.resync(record)
            record = replace(
                record, delta_link=link or record.delta_link, resync_done=record.resync_wanted
            )
            await self._checkpoint(progress, record)

    async def _create(self, progress: _Progress, record: GraphSubscription) -> GraphSubscription:
        resource = record.resource.strip("/").lower()
        for existing in await self._client.list_subscriptions():
            same_resource = str(existing.get("resource", "")).strip("/").lower() == resource
            if same_resource and existing.get("notificationUrl") == self._config.notification_url:
                # Left behind (a create whose answer was lost, a record reset): its clientState
                # is unknown, so its notifications could never be trusted. One subscription only.
                await self._client.delete_subscription(str(existing.get("id")))
                log.info("deleted a stray calendar subscription of %s", record.user_id)
        # The new clientState is stored before Graph knows it, so nothing Graph sends for the
        # new subscription can arrive before Herald can check it.
        record = replace(record, client_state=new_client_state(), renew_done=record.renew_wanted)
        await self._checkpoint(progress, record)
        wanted = self.expiration(self._now())
        created = await self._client.create_subscription(
            {
                "changeType": CHANGE_TYPES,
                "notificationUrl": self._config.notification_url,
                "lifecycleNotificationUrl": self._config.lifecycle_url,
                "resource": record.resource,
                "expirationDateTime": _graph_iso(wanted),
                "clientState": record.client_state,
                "latestSupportedTlsVersion": "v1_2",
            }
        )
        subscription_id = created.get("id")
        if not isinstance(subscription_id, str) or not subscription_id:
            raise SourceError("Graph created a subscription without an id")
        record = replace(
            record,
            subscription_id=subscription_id,
            expires_at=_epoch(created.get("expirationDateTime")) or wanted,
        )
        await self._checkpoint(progress, record)
        log.info(
            "calendar subscription of %s created, expires %s",
            record.user_id,
            _graph_iso(record.expires_at or wanted),
        )
        return record
