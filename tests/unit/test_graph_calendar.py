"""How calendar changes read as notifications (sources/calendar.py), and the small parsers
around Graph's notifications."""

from __future__ import annotations

from typing import Any

from api.schemas import Event
from sources.calendar import (
    CALENDAR_EVENT_TYPE,
    EventSummary,
    calendar_notification,
    notification_id,
    summarize,
    visibly_changed,
)
from sources.graph_changes import change_key_of, event_id_of

USER = "6f1c2a4e-8a8b-4c55-9d0e-0123456789ab"


def graph_event(**fields: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "id": "AAMkAD-1",
        "subject": "Design review",
        "start": {"dateTime": "2030-06-18T07:00:00.0000000", "timeZone": "UTC"},
        "end": {"dateTime": "2030-06-18T08:00:00.0000000", "timeZone": "UTC"},
        "isAllDay": False,
        "isCancelled": False,
        "location": {"displayName": "Room 4"},
        "organizer": {"emailAddress": {"name": "Ada Lovelace", "address": "ada@contoso.com"}},
        "webLink": "https://outlook.office365.com/owa/?itemid=AAMkAD-1",
        "changeKey": "ck-1",
    }
    event.update(fields)
    return event


def notify(
    change: str,
    event: dict[str, Any],
    previous: dict[str, Any] | None = None,
    zone: str | None = "Europe/Berlin",
) -> dict[str, Any]:
    return calendar_notification(
        user_id=USER,
        event_id="AAMkAD-1",
        change=change,  # type: ignore[arg-type]
        summary=summarize(event),
        previous=summarize(previous) if previous else None,
        time_zone=zone,
    )


def test_summary_keeps_what_people_see_in_utc() -> None:
    summary = summarize(
        graph_event(start={"dateTime": "2030-06-18T09:00:00", "timeZone": "Europe/Berlin"})
    )
    assert summary.start == "2030-06-18T07:00:00Z"
    assert summary.end == "2030-06-18T08:00:00Z"
    assert (summary.subject, summary.location, summary.organizer) == (
        "Design review",
        "Room 4",
        "Ada Lovelace",
    )
    assert EventSummary.from_json(summary.to_json()) == summary
    blank = summarize({"subject": "  ", "webLink": "javascript:alert(1)"})
    assert (blank.subject, blank.start, blank.web_link) == ("(no subject)", None, None)


def test_visible_changes_only() -> None:
    before = summarize(graph_event())
    assert not visibly_changed(before, summarize(graph_event(changeKey="ck-2")))
    assert not visibly_changed(before, summarize(graph_event(webLink="https://other")))
    assert visibly_changed(before, summarize(graph_event(subject="Design review (v2)")))
    assert visibly_changed(before, summarize(graph_event(isCancelled=True)))
    assert visibly_changed(None, before)


def test_a_new_meeting_in_the_users_time_zone() -> None:
    document = notify("created", graph_event())
    assert document["id"] == notification_id(USER, "AAMkAD-1")
    assert document["type"] == CALENDAR_EVENT_TYPE
    assert document["title"] == "New in your calendar: Design review"
    assert document["text"].splitlines() == [
        "When: Tue 18 Jun 2030, 09:00–10:00 (Europe/Berlin)",
        "Where: Room 4",
        "Organizer: Ada Lovelace",
    ]
    assert document["url"] == "https://outlook.office365.com/owa/?itemid=AAMkAD-1"
    assert document["recipients"] == {"users": [USER]}
    assert document["severity"] == "info"
    assert document["data"]["changeType"] == "created"
    Event.model_validate(document)  # what POST /api/notifications would accept


def test_moved_changed_cancelled_removed() -> None:
    before = graph_event()
    moved = notify(
        "updated",
        graph_event(
            start={"dateTime": "2030-06-19T12:30:00", "timeZone": "UTC"},
            end={"dateTime": "2030-06-19T13:00:00", "timeZone": "UTC"},
        ),
        before,
        zone=None,
    )
    assert moved["title"] == "Moved: Design review"
    assert moved["text"].splitlines()[:2] == [
        "When: Wed 19 Jun 2030, 12:30–13:00 (UTC)",
        "Was: Tue 18 Jun 2030, 07:00–08:00 (UTC)",
    ]
    changed = notify("updated", graph_event(location={"displayName": "Room 9"}), before)
    assert changed["title"] == "Changed: Design review"
    assert "Was:" not in changed["text"]
    cancelled = notify(
        "updated", graph_event(isCancelled=True, subject="Canceled: Design review"), before
    )
    assert (cancelled["title"], cancelled["severity"]) == ("Cancelled: Design review", "warning")
    removed = notify("deleted", before, before)
    assert removed["title"] == "Removed from your calendar: Design review"
    assert "url" not in removed
    # Every change of one meeting is one notification (the card is edited in place).
    assert len({d["id"] for d in (moved, changed, cancelled, removed)}) == 1
    # Updated, but Herald never saw it before (older than its first sync).
    assert notify("updated", before, None)["title"] == "Changed: Design review"


def test_all_day_and_multi_day_and_odd_input() -> None:
    all_day = notify(
        "created",
        graph_event(
            isAllDay=True,
            start={"dateTime": "2030-06-18T00:00:00", "timeZone": "UTC"},
            end={"dateTime": "2030-06-19T00:00:00", "timeZone": "UTC"},
        ),
    )
    assert all_day["text"].startswith("When: Tue 18 Jun 2030, all day")
    long = notify(
        "created",
        graph_event(end={"dateTime": "2030-06-20T08:00:00", "timeZone": "UTC"}),
        zone="Nowhere/Invalid",
    )
    assert "When: Tue 18 Jun 2030, 07:00 – Thu 20 Jun 2030, 08:00 (UTC)" in long["text"]
    huge = notify(
        "created", graph_event(subject="x" * 500, webLink="https://example.com/" + "a" * 3000)
    )
    assert len(huge["title"]) == 200
    assert "url" not in huge  # a link the event contract refuses is dropped, not fatal


def test_notification_ids_are_stable_and_distinct() -> None:
    assert notification_id(USER, "e1") == notification_id(USER.upper(), "e1")
    assert notification_id(USER, "e1") != notification_id(USER, "e2")
    assert notification_id(USER, "e1") != notification_id("other", "e1")
    assert notification_id(USER, "e1").startswith("graph-")


def test_parsing_graph_notifications() -> None:
    item = {
        "resource": "Users/u/Events/AAMk-1",
        "resourceData": {"id": "AAMk-1", "@odata.etag": 'W/"DwAAABYAAAA"'},
    }
    assert (event_id_of(item), change_key_of(item)) == ("AAMk-1", "DwAAABYAAAA")
    assert event_id_of({"resource": "Users/u/Events('AAMk-2')"}) == "AAMk-2"
    assert event_id_of({"resource": "Users/u/Events/AAMk-3"}) == "AAMk-3"
    assert (event_id_of({}), change_key_of({})) == (None, None)
