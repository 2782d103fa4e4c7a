"""How a change to an Outlook calendar event reads as a Herald notification.

Pure functions: a Graph event becomes an :class:`EventSummary` (what a person sees of it), two
summaries tell whether anything visible changed (Outlook sends several notifications per edit,
most of them for changes nobody sees), and a change becomes an event document for
`POST /api/notifications`' pipeline. The notification id is derived from the calendar event, so
every later change of the same meeting updates the same notification (the Teams card is edited
in place).
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ValidationError

from notifications.event import Event

__all__ = [
    "CALENDAR_EVENT_TYPE",
    "ChangeType",
    "EventSummary",
    "calendar_notification",
    "notification_id",
    "summarize",
    "visibly_changed",
]

CALENDAR_EVENT_TYPE: Final = "calendar.event"
"""The Herald event type of every calendar notification (one type to mute them all)."""

ChangeType = Literal["created", "updated", "deleted"]

_NO_SUBJECT: Final = "(no subject)"


@dataclass(frozen=True, slots=True)
class EventSummary:
    """What a person sees of a calendar event. Times are ISO 8601 in UTC."""

    subject: str
    start: str | None
    end: str | None
    all_day: bool = False
    location: str = ""
    organizer: str = ""
    cancelled: bool = False
    web_link: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> EventSummary:
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**fields)


def _utc(value: Any) -> str | None:
    """A Graph dateTimeTimeZone as ISO UTC (Herald asks Graph for UTC; other zones converted)."""
    if not isinstance(value, dict) or not isinstance(value.get("dateTime"), str):
        return None
    try:
        moment = datetime.fromisoformat(value["dateTime"])
    except ValueError:
        return None
    if moment.tzinfo is None:
        zone_name = str(value.get("timeZone") or "UTC")
        try:
            zone = ZoneInfo("UTC" if zone_name in ("UTC", "tzone://Microsoft/Utc") else zone_name)
        except (ZoneInfoNotFoundError, ValueError):
            zone = ZoneInfo("UTC")  # a Windows zone name: Herald asked for UTC, so rarely seen
        moment = moment.replace(tzinfo=zone)
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def summarize(event: dict[str, Any]) -> EventSummary:
    """The visible part of a Graph event resource."""
    location = event.get("location")
    organizer = (event.get("organizer") or {}).get("emailAddress") or {}
    link = event.get("webLink")
    return EventSummary(
        subject=str(event.get("subject") or "").strip() or _NO_SUBJECT,
        start=_utc(event.get("start")),
        end=_utc(event.get("end")),
        all_day=bool(event.get("isAllDay")),
        location=str(location.get("displayName") or "") if isinstance(location, dict) else "",
        organizer=str(organizer.get("name") or organizer.get("address") or ""),
        cancelled=bool(event.get("isCancelled")),
        web_link=link if isinstance(link, str) and link.startswith("https://") else None,
    )


def visibly_changed(before: EventSummary | None, after: EventSummary) -> bool:
    """Whether a person would see a difference (the link is not something they read)."""
    if before is None:
        return True
    return (
        before.subject,
        before.start,
        before.end,
        before.all_day,
        before.location,
        before.organizer,
        before.cancelled,
    ) != (
        after.subject,
        after.start,
        after.end,
        after.all_day,
        after.location,
        after.organizer,
        after.cancelled,
    )


def notification_id(user_id: str, event_id: str) -> str:
    """The Herald notification id for one user's calendar event: stable across its changes."""
    resource = f"users/{user_id.lower()}/events/{event_id}"
    return "graph-" + hashlib.sha256(resource.encode()).hexdigest()[:40]


def _moment(value: str | None, zone: ZoneInfo) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(zone)


def _when(summary: EventSummary, zone: ZoneInfo) -> str:
    if summary.all_day:
        # All-day events start at midnight of their own zone; show that date, unconverted.
        start = _moment(summary.start, ZoneInfo("UTC"))
        return f"{start:%a %d %b %Y}, all day" if start else "all day"
    start, end = _moment(summary.start, zone), _moment(summary.end, zone)
    if start is None:
        return "time unknown"
    label = "UTC" if zone.key == "UTC" else zone.key
    if end is None:
        return f"{start:%a %d %b %Y, %H:%M} ({label})"
    if end.date() == start.date():
        return f"{start:%a %d %b %Y, %H:%M}–{end:%H:%M} ({label})"
    return f"{start:%a %d %b %Y, %H:%M} – {end:%a %d %b %Y, %H:%M} ({label})"


def _subject(summary: EventSummary) -> str:
    """The subject without the "Canceled: " Outlook puts before a cancelled meeting's."""
    if summary.cancelled:
        for prefix in ("Canceled: ", "Cancelled: "):
            if summary.subject.startswith(prefix) and len(summary.subject) > len(prefix):
                return summary.subject[len(prefix) :]
    return summary.subject


def _headline(
    change: ChangeType, summary: EventSummary, previous: EventSummary | None
) -> tuple[str, Literal["info", "warning"]]:
    if change == "deleted":
        return "Removed from your calendar", "warning"
    if summary.cancelled and not (previous and previous.cancelled):
        return "Cancelled", "warning"
    if change == "created":
        return "New in your calendar", "info"
    if previous is None:
        return "Changed", "info"
    if (previous.start, previous.end, previous.all_day) != (
        summary.start,
        summary.end,
        summary.all_day,
    ):
        return "Moved", "info"
    return "Changed", "info"


def calendar_notification(
    *,
    user_id: str,
    event_id: str,
    change: ChangeType,
    summary: EventSummary,
    previous: EventSummary | None,
    time_zone: str | None,
) -> dict[str, Any]:
    """A validated Herald event document (with its id) for one change of one calendar event.

    `previous` is what Herald last saw of the event (None: never seen), `time_zone` the user's
    IANA zone from their preferences (None: UTC)."""
    try:
        zone = ZoneInfo(time_zone or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        zone = ZoneInfo("UTC")
    headline, severity = _headline(change, summary, previous)
    lines = [f"When: {_when(summary, zone)}"]
    if previous is not None and (previous.start, previous.end) != (summary.start, summary.end):
        lines.append(f"Was: {_when(previous, zone)}")
    if summary.location:
        lines.append(f"Where: {summary.location}")
    if summary.organizer:
        lines.append(f"Organizer: {summary.organizer}")
    document: dict[str, Any] = {
        "id": notification_id(user_id, event_id),
        "type": CALENDAR_EVENT_TYPE,
        "title": f"{headline}: {_subject(summary)}"[:200],
        "text": "\n".join(lines)[:4000],
        "severity": severity,
        "recipients": {"users": [user_id]},
        "data": {
            "source": "microsoft-graph",
            "changeType": change,
            "eventId": event_id,
            "start": summary.start,
        },
    }
    if summary.web_link and change != "deleted":
        document["url"] = summary.web_link
    try:
        return Event.model_validate(document).document()
    except ValidationError:
        # A link Herald's event contract does not take (too long, odd characters): drop it.
        document.pop("url", None)
        return Event.model_validate(document).document()
