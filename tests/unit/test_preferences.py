"""Preferences: the stored model, its validation, and the send/skip/defer rules.

Quiet hours are checked three ways: hand-worked cases around midnight and the 2026 daylight-
saving changes in Berlin and New York, decisions built on them, and a property test that
compares :func:`quiet_window_end` with a minute-by-minute walk along the real timeline.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from preferences import (
    ChannelPreferences,
    Decision,
    DeliveryPolicy,
    EventFacts,
    QuietHours,
    UserPreferences,
    decide,
    quiet_window_end,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
NOW = datetime(2026, 6, 15, 12, 0, tzinfo=UTC)
OPEN = DeliveryPolicy()
OPT_IN = DeliveryPolicy(opt_in_required=True)


def utc(
    year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0
) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def hm(text: str) -> time:
    return time.fromisoformat(text)


def quiet(start: str, end: str, zone: str | None = None, **kwargs: Any) -> UserPreferences:
    return UserPreferences(quiet_hours=QuietHours(start=start, end=end), time_zone=zone, **kwargs)


# --- the model --------------------------------------------------------------------------------


def test_default_is_the_samples_rule_all_channels_on() -> None:
    prefs = UserPreferences.default()
    assert prefs.opted_in is None
    assert prefs.channels == ChannelPreferences(conversation=True, mobile=True, webpush=True)
    assert prefs.muted_types == []
    assert prefs.quiet_hours is None
    assert prefs.time_zone is None
    assert prefs.zone() == ZoneInfo("UTC")


def test_json_round_trip_uses_camel_case_keys() -> None:
    prefs = UserPreferences(
        opted_in=True,
        channels=ChannelPreferences(mobile=False),
        muted_types=["Training.Due", "case.assigned", " training.due "],
        quiet_hours=QuietHours(start="22:00", end="07:00"),
        time_zone="Europe/Berlin",
        updated_at=datetime(2026, 5, 1, 12, 0, tzinfo=BERLIN),
    )
    document = prefs.to_json_dict()
    assert document == {
        "optedIn": True,
        "channels": {"conversation": True, "mobile": False, "webpush": True},
        "mutedTypes": ["case.assigned", "training.due"],
        "quietHours": {"start": "22:00", "end": "07:00"},
        "timeZone": "Europe/Berlin",
        "updatedAt": "2026-05-01T10:00:00Z",
    }
    assert document == prefs.model_dump(by_alias=True, mode="json")
    stored = json.loads(json.dumps(document))
    assert UserPreferences.from_json_dict(stored) == prefs
    assert UserPreferences.model_validate(stored) == prefs
    assert prefs.updated_at is not None and prefs.updated_at.tzinfo == UTC


def test_accepts_python_names_too() -> None:
    prefs = UserPreferences.model_validate({"opted_in": False, "time_zone": "UTC"})
    assert prefs.opted_in is False
    assert UserPreferences.from_json_dict({"optedIn": False, "timeZone": "UTC"}) == prefs


def test_muted_types_are_normalised_on_assignment_too() -> None:
    prefs = UserPreferences.default()
    prefs.muted_types = ["B", "a", "b"]
    assert prefs.muted_types == ["a", "b"]
    assert prefs.is_muted(" A ")


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"timeZone": "Mars/Olympus"}, "unknown time zone"),
        ({"timeZone": "europe/berlin"}, "unknown time zone"),
        ({"timeZone": "localtime"}, "unknown time zone"),
        ({"timeZone": "../../etc/passwd"}, "unknown time zone"),
        ({"quietHours": {"start": "25:00", "end": "07:00"}}, "HH:MM"),
        ({"quietHours": {"start": "22:00", "end": "24:00"}}, "HH:MM"),
        ({"quietHours": {"start": "7:00", "end": "08:00"}}, "HH:MM"),
        ({"quietHours": {"start": "12:60", "end": "08:00"}}, "HH:MM"),
        ({"quietHours": {"start": "22:00"}}, "end"),
        ({"quietHours": {"start": "22:00", "end": "22:00"}}, "different start and end"),
        ({"mutedTypes": ["ok", "  "]}, "cannot be empty"),
        ({"updatedAt": "2026-05-01T10:00:00"}, "with an offset"),
        ({"optedIn": "maybe"}, "optedIn"),
        ({"channels": {"fax": True}}, "fax"),
        ({"quietHour": {"start": "22:00", "end": "07:00"}}, "quietHour"),
    ],
)
def test_validation_errors(document: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        UserPreferences.model_validate(document)


def test_an_empty_time_zone_is_none_and_updated_at_a_date_time_string() -> None:
    # The published schema: timeZone is a string or null ("" means no time zone, like the
    # settings card's empty field), updatedAt an RFC 3339 date-time or null, never a number.
    assert UserPreferences.model_validate({"timeZone": ""}).time_zone is None
    stamped = UserPreferences.model_validate({"updatedAt": "2030-01-01T10:00:00+02:00"})
    assert stamped.updated_at is not None and stamped.updated_at.hour == 8
    for value in (0, 1.5, "2030-01-01", "2030-01-01T10:00:00", True):
        with pytest.raises(ValidationError, match="RFC 3339"):
            UserPreferences.model_validate({"updatedAt": value})


def test_assignment_is_validated() -> None:
    prefs = UserPreferences.default()
    with pytest.raises(ValidationError, match="unknown time zone"):
        prefs.time_zone = "Nowhere/Special"


def test_valid_zones_and_edges_of_the_day() -> None:
    prefs = quiet("00:00", "23:59", "America/New_York")
    assert prefs.quiet_hours is not None
    assert (prefs.quiet_hours.start_time, prefs.quiet_hours.end_time) == (hm("00:00"), hm("23:59"))
    assert prefs.zone() == NEW_YORK


def test_unknown_channel_is_a_bug_not_a_preference() -> None:
    with pytest.raises(ValueError, match="unknown channel"):
        ChannelPreferences().is_enabled("fcm")
    with pytest.raises(ValueError, match="unknown channel"):
        decide(None, EventFacts("a"), "fcm", NOW, OPEN)


# --- the rules, one by one --------------------------------------------------------------------


def test_expired_is_skipped_before_anything_else() -> None:
    opted_out = UserPreferences(opted_in=False)
    for expires in (NOW, NOW - timedelta(seconds=1)):
        event = EventFacts("a", expires_at=expires)
        assert decide(opted_out, event, "conversation", NOW, OPT_IN) == Decision.skip("expired")
    later = EventFacts("a", expires_at=NOW + timedelta(seconds=1))
    assert decide(None, later, "conversation", NOW, OPEN) == Decision.deliver()


def test_unknown_person_gets_the_default_unless_opt_in_is_required() -> None:
    event = EventFacts("a")
    for channel in ("conversation", "mobile", "webpush"):
        assert decide(None, event, channel, NOW, OPEN) == Decision("deliver", None, None)
        assert decide(None, event, channel, NOW, OPT_IN) == Decision.skip("not-opted-in")


def test_opted_out_always_wins() -> None:
    prefs = UserPreferences(opted_in=False)
    critical = DeliveryPolicy(critical_types=frozenset({"a"}))
    event = EventFacts("a", urgency="high")
    assert decide(prefs, event, "conversation", NOW, critical) == Decision.skip("opted-out")
    assert decide(prefs, event, "conversation", NOW, OPT_IN) == Decision.skip("opted-out")


def test_opt_in_required_needs_an_explicit_yes() -> None:
    event = EventFacts("a")
    never_asked = UserPreferences(opted_in=None)
    assert decide(never_asked, event, "mobile", NOW, OPT_IN) == Decision.skip("not-opted-in")
    assert decide(never_asked, event, "mobile", NOW, OPEN) == Decision.deliver()
    said_yes = UserPreferences(opted_in=True)
    assert decide(said_yes, event, "mobile", NOW, OPT_IN) == Decision.deliver()


def test_channel_off_is_skipped_as_preference() -> None:
    prefs = UserPreferences(channels=ChannelPreferences(mobile=False))
    event = EventFacts("a", urgency="high")
    assert decide(prefs, event, "mobile", NOW, OPEN) == Decision.skip("preference")
    assert decide(prefs, event, "webpush", NOW, OPEN) == Decision.deliver()


def test_muted_types_are_skipped_whatever_the_urgency() -> None:
    prefs = UserPreferences(muted_types=["training.due"])
    for urgency in (None, "low", "high"):
        event = EventFacts("Training.Due", urgency=urgency)
        assert decide(prefs, event, "conversation", NOW, OPEN) == Decision.skip("muted")
    assert decide(prefs, EventFacts("case.assigned"), "conversation", NOW, OPEN).action == (
        "deliver"
    )


def test_urgent_events_of_critical_types_cannot_be_muted() -> None:
    prefs = UserPreferences(muted_types=["security.alert"])
    policy = DeliveryPolicy(critical_types=frozenset({"Security.Alert"}))
    urgent = EventFacts("security.alert", urgency="high")
    assert decide(prefs, urgent, "conversation", NOW, policy) == Decision.deliver()
    # The mute still silences the type's routine events.
    for urgency in (None, "very-low", "low", "normal"):
        event = EventFacts("security.alert", urgency=urgency)
        assert decide(prefs, event, "conversation", NOW, policy) == Decision.skip("muted")
    # And urgency alone does not get past a mute of a type that is not critical.
    other = UserPreferences(muted_types=["training.due"])
    urgent_other = EventFacts("training.due", urgency="high")
    assert decide(other, urgent_other, "conversation", NOW, policy) == Decision.skip("muted")


def test_critical_types_still_respect_channels_and_quiet_hours() -> None:
    policy = DeliveryPolicy(critical_types=frozenset({"security.alert"}))
    event = EventFacts("security.alert")
    off = UserPreferences(channels=ChannelPreferences(conversation=False))
    assert decide(off, event, "conversation", NOW, policy) == Decision.skip("preference")
    asleep = quiet("11:00", "13:00")
    assert decide(asleep, event, "conversation", NOW, policy).action == "defer"


def test_quiet_hours_defer_to_the_end_of_the_window() -> None:
    prefs = quiet("22:00", "07:00", "Europe/Berlin")
    now = utc(2026, 6, 15, 21, 30)  # 23:30 CEST
    decision = decide(prefs, EventFacts("a", urgency="normal"), "webpush", now, OPEN)
    assert decision == Decision("defer", "quiet-hours", utc(2026, 6, 16, 5, 0))  # 07:00 CEST
    assert decision.not_before is not None and decision.not_before.tzinfo == UTC


def test_high_urgency_goes_through_quiet_hours() -> None:
    prefs = quiet("22:00", "07:00", "Europe/Berlin")
    now = utc(2026, 6, 15, 21, 30)
    assert decide(prefs, EventFacts("a", urgency="high"), "mobile", now, OPEN) == (
        Decision.deliver()
    )


def test_outside_quiet_hours_delivers() -> None:
    prefs = quiet("22:00", "07:00", "Europe/Berlin")
    assert decide(prefs, EventFacts("a"), "mobile", utc(2026, 6, 15, 5, 0), OPEN) == (
        Decision.deliver()  # 07:00 CEST: the end is not inside the window
    )
    assert decide(prefs, EventFacts("a"), "mobile", utc(2026, 6, 15, 19, 59), OPEN) == (
        Decision.deliver()  # 21:59 CEST
    )


def test_quiet_hours_without_a_zone_are_utc() -> None:
    prefs = quiet("11:00", "13:00")
    decision = decide(prefs, EventFacts("a"), "conversation", NOW, OPEN)
    assert decision == Decision.defer(utc(2026, 6, 15, 13, 0))


def test_a_deferral_past_expiry_is_skipped_as_expired() -> None:
    prefs = quiet("11:00", "13:00")
    end = utc(2026, 6, 15, 13, 0)
    for expires in (end, end - timedelta(minutes=1)):
        event = EventFacts("a", expires_at=expires)
        assert decide(prefs, event, "conversation", NOW, OPEN) == Decision.skip("expired")
    event = EventFacts("a", expires_at=end + timedelta(minutes=1))
    assert decide(prefs, event, "conversation", NOW, OPEN) == Decision.defer(end)


def test_naive_times_and_unknown_urgency_are_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        decide(None, EventFacts("a"), "mobile", datetime(2026, 1, 1), OPEN)
    with pytest.raises(ValueError, match="aware"):
        EventFacts("a", expires_at=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="urgency"):
        EventFacts("a", urgency="urgent")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="aware"):
        quiet_window_end(datetime(2026, 1, 1), hm("22:00"), hm("07:00"), BERLIN)
    with pytest.raises(ValueError, match="different"):
        quiet_window_end(NOW, hm("22:00"), hm("22:00"), BERLIN)


# --- quiet_window_end: midnight and daylight saving, worked by hand ---------------------------

# 2026 changes: Berlin 29 Mar 01:00Z (02:00 CET -> 03:00 CEST), 25 Oct 01:00Z (03:00 CEST ->
# 02:00 CET); New York 8 Mar 07:00Z (02:00 EST -> 03:00 EDT), 1 Nov 06:00Z (02:00 EDT -> 01:00 EST).
CASES = [
    # crossing midnight, UTC
    ("UTC", "22:00", "07:00", utc(2026, 6, 15, 23, 30), utc(2026, 6, 16, 7, 0)),
    ("UTC", "22:00", "07:00", utc(2026, 6, 16, 6, 59), utc(2026, 6, 16, 7, 0)),
    ("UTC", "22:00", "07:00", utc(2026, 6, 16, 0, 0), utc(2026, 6, 16, 7, 0)),
    ("UTC", "22:00", "07:00", utc(2026, 6, 15, 22, 0), utc(2026, 6, 16, 7, 0)),
    ("UTC", "22:00", "07:00", utc(2026, 6, 16, 7, 0), None),
    ("UTC", "22:00", "07:00", utc(2026, 6, 15, 21, 59, 59), None),
    ("UTC", "00:00", "23:59", utc(2026, 6, 15, 23, 59, 30), None),
    ("UTC", "23:59", "00:00", utc(2026, 12, 31, 23, 59, 30), utc(2027, 1, 1)),
    # Berlin, spring forward: 02:00-02:59 never happens
    ("Europe/Berlin", "22:00", "07:00", utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 5, 0)),
    ("Europe/Berlin", "01:30", "02:30", utc(2026, 3, 29, 0, 45), utc(2026, 3, 29, 1, 0)),
    ("Europe/Berlin", "22:00", "02:30", utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 1, 0)),
    ("Europe/Berlin", "02:00", "03:00", utc(2026, 3, 29, 0, 59, 59), None),
    ("Europe/Berlin", "02:00", "03:00", utc(2026, 3, 29, 1, 0), None),
    ("Europe/Berlin", "02:30", "06:00", utc(2026, 3, 29, 1, 0), utc(2026, 3, 29, 4, 0)),
    # Berlin, fall back: 02:00-02:59 happens twice (CEST, then CET)
    ("Europe/Berlin", "22:00", "07:00", utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 6, 0)),
    ("Europe/Berlin", "02:00", "03:00", utc(2026, 10, 25, 0, 10), utc(2026, 10, 25, 2, 0)),
    ("Europe/Berlin", "02:00", "03:00", utc(2026, 10, 25, 1, 10), utc(2026, 10, 25, 2, 0)),
    ("Europe/Berlin", "01:30", "02:30", utc(2026, 10, 25, 0, 10), utc(2026, 10, 25, 0, 30)),
    ("Europe/Berlin", "01:30", "02:30", utc(2026, 10, 25, 0, 45), None),  # 02:45 CEST
    ("Europe/Berlin", "01:30", "02:30", utc(2026, 10, 25, 1, 10), utc(2026, 10, 25, 1, 30)),
    ("Europe/Berlin", "22:00", "02:30", utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 0, 30)),
    ("Europe/Berlin", "02:30", "04:00", utc(2026, 10, 25, 0, 45), utc(2026, 10, 25, 1, 0)),
    ("Europe/Berlin", "02:30", "04:00", utc(2026, 10, 25, 1, 30), utc(2026, 10, 25, 3, 0)),
    # New York, spring forward: 02:00-02:59 never happens
    ("America/New_York", "22:00", "07:00", utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 11, 0)),
    ("America/New_York", "01:30", "02:30", utc(2026, 3, 8, 6, 45), utc(2026, 3, 8, 7, 0)),
    ("America/New_York", "02:00", "03:00", utc(2026, 3, 8, 6, 59), None),
    ("America/New_York", "02:00", "03:00", utc(2026, 3, 8, 7, 0), None),
    # New York, fall back: 01:00-01:59 happens twice (EDT, then EST)
    ("America/New_York", "22:00", "07:00", utc(2026, 11, 1, 3, 0), utc(2026, 11, 1, 12, 0)),
    ("America/New_York", "22:00", "01:30", utc(2026, 11, 1, 3, 0), utc(2026, 11, 1, 5, 30)),
    ("America/New_York", "22:00", "01:30", utc(2026, 11, 1, 6, 10), utc(2026, 11, 1, 6, 30)),
    ("America/New_York", "01:00", "02:00", utc(2026, 11, 1, 5, 30), utc(2026, 11, 1, 7, 0)),
    ("America/New_York", "02:00", "03:00", utc(2026, 11, 1, 7, 30), utc(2026, 11, 1, 8, 0)),
    ("America/New_York", "01:30", "02:30", utc(2026, 11, 1, 6, 45), utc(2026, 11, 1, 7, 30)),
    ("America/New_York", "01:30", "02:30", utc(2026, 11, 1, 6, 10), None),  # 01:10 EST
    # 01:45 EDT: at 02:00 EDT the clock falls back to 01:00 EST, before the window's start, so
    # the window ends there, not at 02:30 EST (which would hold through 30 non-quiet minutes).
    ("America/New_York", "01:30", "02:30", utc(2026, 11, 1, 5, 45), utc(2026, 11, 1, 6, 0)),
]


@pytest.mark.parametrize(("zone", "start", "end", "now", "expected"), CASES)
def test_quiet_window_end_by_hand(
    zone: str, start: str, end: str, now: datetime, expected: datetime | None
) -> None:
    result = quiet_window_end(now, hm(start), hm(end), ZoneInfo(zone))
    assert result == expected
    if result is not None:
        assert result.tzinfo == UTC
        assert _oracle(now, hm(start), hm(end), ZoneInfo(zone)) == result


def test_now_in_another_zone_is_the_same_instant() -> None:
    now = utc(2026, 3, 28, 22, 0).astimezone(ZoneInfo("Asia/Tokyo"))
    assert quiet_window_end(now, hm("22:00"), hm("07:00"), BERLIN) == utc(2026, 3, 29, 5, 0)


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        ("Europe/Berlin", utc(2026, 3, 28, 22, 0), utc(2026, 3, 29, 5, 0)),  # 8 h, not 9
        ("Europe/Berlin", utc(2026, 10, 24, 21, 0), utc(2026, 10, 25, 6, 0)),  # 9 h, not 8
        ("America/New_York", utc(2026, 3, 8, 4, 0), utc(2026, 3, 8, 11, 0)),
        ("America/New_York", utc(2026, 11, 1, 3, 0), utc(2026, 11, 1, 12, 0)),
    ],
)
def test_decide_defers_overnight_windows_across_dst(
    zone: str, now: datetime, expected: datetime
) -> None:
    prefs = quiet("22:00", "07:00", zone)
    decision = decide(prefs, EventFacts("a", urgency="low"), "conversation", now, OPEN)
    assert decision == Decision("defer", "quiet-hours", expected)
    assert decision.not_before is not None
    assert decision.not_before.astimezone(ZoneInfo(zone)).time() == hm("07:00")


# --- quiet_window_end: property against a walk along the timeline -----------------------------

ZONES = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Europe/London",
    "Australia/Sydney",
    "Australia/Lord_Howe",  # half-hour daylight saving
    "America/St_Johns",  # -03:30
    "America/Santiago",  # changes at midnight
    "America/Havana",  # changes at midnight / 01:00
    "Pacific/Chatham",  # +12:45
    "Asia/Kolkata",
]
_MINUTE = timedelta(minutes=1)


def _inside(instant: datetime, start: time, end: time, tz: ZoneInfo) -> bool:
    wall = instant.astimezone(tz).time().replace(fold=0)
    return start <= wall < end if start < end else (wall >= start or wall < end)


def _oracle(now: datetime, start: time, end: time, tz: ZoneInfo) -> datetime | None:
    """Walk whole UTC minutes until the wall clock is outside the window.

    Exact for these zones and whole-minute windows: offsets are whole minutes and changes happen
    on whole minutes, so whether an instant is inside cannot change within a minute.
    """
    if not _inside(now, start, end, tz):
        return None
    minute = now.astimezone(UTC).replace(second=0, microsecond=0) + _MINUTE
    for _ in range(3 * 24 * 60):
        if not _inside(minute, start, end, tz):
            return minute
        minute += _MINUTE
    raise AssertionError("window never ends")


def _offset_changes(tz: ZoneInfo, year: int) -> list[datetime]:
    """The instants (to the minute) at which ``tz`` changed its UTC offset in ``year``."""
    step = timedelta(hours=6)
    changes: list[datetime] = []
    t = datetime(year, 1, 1, tzinfo=UTC)
    before = t.astimezone(tz).utcoffset()
    while t.year == year:
        low, t = t, t + step
        offset = t.astimezone(tz).utcoffset()
        if offset != before:
            high = t
            while high - low > _MINUTE:
                middle = low + (high - low) // 2 // _MINUTE * _MINUTE
                if middle.astimezone(tz).utcoffset() == before:
                    low = middle
                else:
                    high = middle
            changes.append(high)
            before = offset
    return changes


def _minute_of_day(instant: datetime, tz: ZoneInfo, shift_minutes: int) -> time:
    wall = instant.astimezone(tz)
    minutes = (wall.hour * 60 + wall.minute + shift_minutes) % (24 * 60)
    return time(minutes // 60, minutes % 60)


_times = st.builds(time, st.integers(0, 23), st.integers(0, 59))


@st.composite
def _windows(draw: st.DrawFn) -> tuple[datetime, time, time, ZoneInfo]:
    """Any window at any time, or, half the time, a window around a real offset change."""
    tz = ZoneInfo(draw(st.sampled_from(ZONES)))
    changes = _offset_changes(tz, draw(st.sampled_from([2026, 2031])))
    if not changes or draw(st.booleans()):
        start = draw(_times)
        end = draw(_times.filter(lambda e: e != start))
        now = draw(
            st.datetimes(
                min_value=datetime(2000, 1, 1),
                max_value=datetime(2036, 12, 31),
                timezones=st.just(UTC),
            )
        )
        return now, start, end, tz
    change = draw(st.sampled_from(changes))
    just_before = change - _MINUTE
    start = _minute_of_day(just_before, tz, -draw(st.integers(0, 6 * 60)))
    end = _minute_of_day(just_before, tz, draw(st.integers(-90, 6 * 60)))
    if start == end:
        end = _minute_of_day(just_before, tz, 61)
    microseconds = draw(st.integers(-6 * 3600 * 10**6, 2 * 3600 * 10**6))
    return change + timedelta(microseconds=microseconds), start, end, tz


@settings(max_examples=300, deadline=None)
@given(_windows())
def test_quiet_window_end_matches_the_timeline(case: tuple[datetime, time, time, ZoneInfo]) -> None:
    now, start, end, tz = case
    result = quiet_window_end(now, start, end, tz)
    assert result == _oracle(now, start, end, tz)
    if result is None:
        assert not _inside(now, start, end, tz)
        return
    assert result > now
    assert result.tzinfo == UTC
    assert not _inside(result, start, end, tz)
    # Every instant before it is inside (the oracle walked them). Where it lands: on `end`,
    # unless the clock changed at that very instant, skipping over `end` or falling back out.
    just_before = result - timedelta(microseconds=1)
    assert _inside(just_before, start, end, tz)
    wall_before = just_before.astimezone(tz).replace(tzinfo=None, fold=0)
    wall_after = result.astimezone(tz).replace(tzinfo=None, fold=0)
    offset_before = just_before.astimezone(tz).utcoffset()
    offset_after = result.astimezone(tz).utcoffset()
    assert offset_before is not None and offset_after is not None
    if offset_after == offset_before:
        assert wall_after.time() == end
    elif offset_after > offset_before:  # spring forward: `end` did not exist, first valid after
        missing_end = datetime.combine(wall_before.date(), end)
        if missing_end < wall_before:
            missing_end += timedelta(days=1)
        assert wall_before < missing_end <= wall_after
    else:  # fall back to a wall time outside the window
        assert wall_after < wall_before


def test_quiet_hours_take_ascii_digits_only() -> None:
    with pytest.raises(ValidationError):
        QuietHours(start="1٢:3٠", end="07:00")


@pytest.mark.parametrize("value", ["no", "yes", 1, 0, "true"])
def test_switches_are_real_booleans(value: object) -> None:
    with pytest.raises(ValidationError):
        UserPreferences.model_validate({"channels": {"mobile": value}})
    with pytest.raises(ValidationError):
        UserPreferences.model_validate({"optedIn": value})
