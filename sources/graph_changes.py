"""From a change in someone's calendar to a Herald notification, once per visible change.

Graph's change notifications for Outlook carry no resource data, so the event is fetched; what
Herald last saw of each event (its change key and summary, a `KnownResource`) tells a real change
from one of the repeats Outlook sends for a single edit, says what moved, and names a removed
meeting. A notification is stored and routed exactly as `POST /api/notifications` does it
(`NotificationStore.put` + `Router.submit`), under an id derived from the event, so a later
change of the same meeting updates the same notification and the card sent for it.

The same code serves a resync (`missed` lifecycle events, a subscription recreated after a
gap): a calendarView delta query lists what changed since the last sync, and only what a person
would see as changed is notified.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from errors import NotFound, SourceNotFound
from logs import NOTIFICATION_ID
from notifications.event import StoredEvent, content_hash
from preferences.service import PreferencesService
from sources.calendar import (
    CALENDAR_EVENT_TYPE,
    ChangeType,
    EventSummary,
    calendar_notification,
    summarize,
    visibly_changed,
)
from sources.graph import GraphClient
from storage.graph_subscriptions import GraphResourceStore, GraphSubscription, KnownResource
from storage.protocols import NotificationStore

__all__ = ["CalendarNotifier", "Outcome", "change_key_of", "event_id_of"]

log = logging.getLogger(__name__)

Outcome = Literal["notified", "unchanged", "invisible", "duplicate", "unknown", "ignored"]

SYNC_DAYS_BACK: Final = 1
SYNC_DAYS_AHEAD: Final = 365
"""The calendarView window a resync covers (fixed when the first sync is made)."""


def event_id_of(item: dict[str, Any]) -> str | None:
    """The changed event's id: resourceData.id, else the last segment of `resource`."""
    data = item.get("resourceData")
    if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"]:
        return str(data["id"])
    resource = item.get("resource")
    if isinstance(resource, str) and "/" in resource:
        last = resource.rstrip("/").rsplit("/", 1)[-1]
        # Events('id') form, as some Graph resources are written
        if last.startswith("Events('") and last.endswith("')"):
            last = last[len("Events('") : -2]
        return last or None
    return None


def change_key_of(item: dict[str, Any]) -> str | None:
    """The change key a notification's `@odata.etag` (W/"<changeKey>") names, if any."""
    data = item.get("resourceData")
    etag = data.get("@odata.etag") if isinstance(data, dict) else None
    if not isinstance(etag, str) or not etag:
        return None
    return etag.removeprefix("W/").strip('"') or None


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class CalendarNotifier:
    """Turns calendar changes into notifications for the calendar's owner."""

    def __init__(
        self,
        client: GraphClient,
        resources: GraphResourceStore,
        notifications: NotificationStore,
        preferences: PreferencesService,
        submit: Callable[[str], None],
        now: Callable[[], float],
    ) -> None:
        self._client = client
        self._resources = resources
        self._notifications = notifications
        self._preferences = preferences
        self._submit = submit
        self._now = now

    async def handle(self, user_id: str, item: dict[str, Any]) -> Outcome:
        """One change notification (clientState already checked)."""
        event_id = event_id_of(item)
        change = item.get("changeType")
        if event_id is None or change not in ("created", "updated", "deleted"):
            log.warning("ignored a Graph change notification without an event id or change type")
            return "ignored"
        known = await self._resources.get(user_id, event_id)
        key = change_key_of(item)
        if change != "deleted" and known is not None and key and known.change_key == key:
            return "duplicate"  # this version was seen already (a repeat, or via a resync)
        event = None if change == "deleted" else await self._client.get_event(user_id, event_id)
        return await self.apply(user_id, event_id, event, known, hint=change)

    async def apply(
        self,
        user_id: str,
        event_id: str,
        event: dict[str, Any] | None,
        known: KnownResource | None,
        *,
        hint: ChangeType,
    ) -> Outcome:
        """Notify what `event` (None: it is gone) changed since `known`, and remember it.

        Published before remembered: if remembering fails, a retry publishes the same content
        again, which Herald's idempotency turns into nothing."""
        previous = EventSummary.from_json(known.summary) if known is not None else None
        if event is None:
            if known is None or previous is None:
                return "unknown"  # gone before Herald ever saw it: nothing to say about it
            outcome = await self._publish(user_id, event_id, "deleted", previous, previous)
            await self._resources.delete(user_id, event_id)
            return outcome
        summary = summarize(event)
        remembered = self._known(user_id, {**event, "id": event_id})
        if previous is not None and not visibly_changed(previous, summary):
            await self._resources.put_many([remembered])
            return "invisible"
        change: ChangeType = hint if previous is None else "updated"
        if change == "deleted":
            change = "updated"
        outcome = await self._publish(user_id, event_id, change, summary, previous)
        await self._resources.put_many([remembered])
        return outcome

    async def _zone(self, user_id: str) -> str | None:
        try:
            return (await self._preferences.read(user_id)).prefs.time_zone
        except NotFound:
            return None

    async def _publish(
        self,
        user_id: str,
        event_id: str,
        change: ChangeType,
        summary: EventSummary,
        previous: EventSummary | None,
    ) -> Outcome:
        document = calendar_notification(
            user_id=user_id,
            event_id=event_id,
            change=change,
            summary=summary,
            previous=previous,
            time_zone=await self._zone(user_id),
        )
        nid = str(document["id"])
        token = NOTIFICATION_ID.set(nid)
        try:
            outcome, record = await self._notifications.put(
                nid,
                content_hash(document),
                StoredEvent.model_validate(document),
                CALENDAR_EVENT_TYPE,
                1,
            )
            if outcome == "unchanged":
                return "unchanged"
            self._submit(nid)
            log.info(
                "calendar change %s: notification %s %s (version %d)",
                change,
                nid,
                outcome,
                record.version,
            )
            return "notified"
        finally:
            NOTIFICATION_ID.reset(token)

    # ---- delta queries

    def _known(self, user_id: str, event: dict[str, Any]) -> KnownResource:
        change_key = event.get("changeKey")
        return KnownResource(
            user_id=user_id,
            resource_id=str(event["id"]),
            change_key=str(change_key) if change_key else None,
            summary=summarize(event).to_json(),
            updated_at=self._now(),
        )

    def _window(self) -> tuple[str, str]:
        now = datetime.fromtimestamp(self._now(), UTC)
        return (
            _iso(now - timedelta(days=SYNC_DAYS_BACK)),
            _iso(now + timedelta(days=SYNC_DAYS_AHEAD)),
        )

    async def baseline(self, record: GraphSubscription) -> str | None:
        """The first sync: remember every event in the window, notify nothing; the delta
        link to resync from later."""
        link: str | None = None
        async for page in self._client.calendar_delta(record.user_id, window=self._window()):
            await self._resources.put_many(
                [
                    self._known(record.user_id, item)
                    for item in page.items
                    if "@removed" not in item and isinstance(item.get("id"), str)
                ]
            )
            link = page.delta_link or link
        log.info("calendar of %s synced for the first time", record.user_id)
        return link

    async def resync(self, record: GraphSubscription) -> str | None:
        """What changed since the last sync, notified as if Graph had told us; a new delta
        link. When Graph forgot the sync state, a full sync notifies changes to known events."""
        if record.delta_link is None:
            return await self.baseline(record)
        counts: dict[str, int] = {}
        try:
            link = await self._follow(record, record.delta_link, counts)
        except SourceNotFound:
            log.info("Graph forgot the calendar sync state of %s; syncing afresh", record.user_id)
            link = await self._follow(record, None, counts, full=True)
        log.info("calendar of %s resynced: %s", record.user_id, counts or "nothing changed")
        return link

    async def _follow(
        self,
        record: GraphSubscription,
        delta_link: str | None,
        counts: dict[str, int],
        *,
        full: bool = False,
    ) -> str | None:
        link: str | None = None
        pages = self._client.calendar_delta(
            record.user_id, delta_link=delta_link, window=None if delta_link else self._window()
        )
        async for page in pages:
            for item in page.items:
                event_id = item.get("id")
                if not isinstance(event_id, str):
                    continue
                known = await self._resources.get(record.user_id, event_id)
                outcome: Outcome
                if "@removed" in item:
                    outcome = await self.apply(
                        record.user_id, event_id, None, known, hint="deleted"
                    )
                elif full and known is None:
                    # A full sync cannot tell a new event from one it never looked at.
                    await self._resources.put_many([self._known(record.user_id, item)])
                    outcome = "unknown"
                elif (
                    known is not None
                    and known.change_key
                    and known.change_key == item.get("changeKey")
                ):
                    outcome = "duplicate"
                else:
                    outcome = await self.apply(
                        record.user_id,
                        event_id,
                        item,
                        known,
                        hint="created" if known is None else "updated",
                    )
                counts[outcome] = counts.get(outcome, 0) + 1
            link = page.delta_link or link
        return link
