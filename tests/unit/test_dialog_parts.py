"""The pure parts of the dialogs: commands, choice recognition, card inputs, typed times and
zones, change descriptions and If-Match parsing."""

from __future__ import annotations

from typing import Any

import pytest
from botbuilder.schema import Activity

from api.preferences import parse_etags
from dialogs.choice_prompt import Choice, recognize
from dialogs.commands import Command, Verb, parse
from dialogs.preferences_flow import CardInputError, preferences_from_card
from preferences import (
    ChannelPreferences,
    QuietHours,
    UserPreferences,
    describe_changes,
    parse_quiet_hours,
    parse_time_of_day,
    resolve_time_zone,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("help", Command(Verb.HELP)),
        ("?", Command(Verb.HELP)),
        ("Settings", Command(Verb.PREFERENCES)),
        ("preferences", Command(Verb.PREFERENCES)),
        ("History.", Command(Verb.HISTORY)),
        ("mark all read", Command(Verb.MARK_ALL_READ)),
        ("opt in", Command(Verb.OPT_IN)),
        ("START", Command(Verb.OPT_IN)),
        ("stop", Command(Verb.OPT_OUT)),
        ("opt-out", Command(Verb.OPT_OUT)),
        ("mute training.due", Command(Verb.MUTE, "training.due")),
        ("Unmute Training.Due", Command(Verb.UNMUTE, "Training.Due")),
        ("quiet 22:00-07:00", Command(Verb.QUIET, "22:00-07:00")),
        ("quiet hours 10pm to 7am", Command(Verb.QUIET, "10pm to 7am")),
        ("quiet off", Command(Verb.QUIET_OFF)),
        ("quiet hours off", Command(Verb.QUIET_OFF)),
        ("timezone Europe/Berlin", Command(Verb.TIME_ZONE, "Europe/Berlin")),
        ("tz America/New_York", Command(Verb.TIME_ZONE, "America/New_York")),
        ("mobile off", Command(Verb.CHANNEL, "mobile", on=False)),
        ("Browser ON", Command(Verb.CHANNEL, "webpush", on=True)),
        ("turn off teams", Command(Verb.CHANNEL, "conversation", on=False)),
        ("switch on web push", Command(Verb.CHANNEL, "webpush", on=True)),
        ("<at>Herald</at> status", Command(Verb.STATUS)),
        ("fax off", Command(Verb.UNKNOWN, "fax off")),
        ("", Command(Verb.UNKNOWN)),
        (None, Command(Verb.UNKNOWN)),
    ],
)
def test_parse(text: str | None, expected: Command) -> None:
    assert parse(text) == expected


CHOICES = [
    Choice("Yes", ["y", "sure"], {"action": "optIn"}),
    Choice("No", ["n"], {"action": "optOut"}),
]


@pytest.mark.parametrize(
    ("text", "value", "expected"),
    [
        ("yes", None, "Yes"),
        ("  YES! ", None, "Yes"),
        ("sure", None, "Yes"),
        ("2", None, "No"),
        ("#1", None, "Yes"),
        ("3", None, None),
        ("maybe", None, None),
        (None, {"action": "optOut"}, "No"),
        (None, {"action": "optIn", "extra": "input"}, "Yes"),
        (None, {"action": "savePreferences"}, None),
        (None, "optIn", None),
    ],
)
def test_recognize(text: str | None, value: Any, expected: str | None) -> None:
    choice = recognize(Activity(type="message", text=text, value=value), CHOICES)
    assert (choice.value if choice else None) == expected


def test_a_choice_named_like_a_number_wins_over_the_position() -> None:
    ratings = [Choice(str(n)) for n in (5, 4, 3, 2, 1)]
    choice = recognize(Activity(type="message", text="1"), ratings)
    assert choice is not None and choice.value == "1"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("7", "07:00"),
        ("07:30", "07:30"),
        ("7.30", "07:30"),
        ("10pm", "22:00"),
        ("12am", "00:00"),
        ("12 PM", "12:00"),
        ("23:59", "23:59"),
    ],
)
def test_parse_time_of_day(text: str, expected: str) -> None:
    assert parse_time_of_day(text) == expected


@pytest.mark.parametrize("text", ["24:00", "7:60", "13pm", "0am", "noon", "", "7:5"])
def test_parse_time_of_day_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_time_of_day(text)


def test_parse_quiet_hours() -> None:
    assert parse_quiet_hours("22:00-07:00") == QuietHours(start="22:00", end="07:00")
    assert parse_quiet_hours("10pm – 6:30am") == QuietHours(start="22:00", end="06:30")
    assert parse_quiet_hours("13:00 until 14:00") == QuietHours(start="13:00", end="14:00")
    for bad in ("22:00", "22:00-22:00", "late-early"):
        with pytest.raises(ValueError):
            parse_quiet_hours(bad)


def test_resolve_time_zone() -> None:
    assert resolve_time_zone("Europe/Berlin") == "Europe/Berlin"
    assert resolve_time_zone(" america/new york ") == "America/New_York"
    assert resolve_time_zone("utc") == "UTC"
    for bad in ("Mars/Base", "posix/Europe/Berlin", "localtime", "", "../etc/passwd"):
        with pytest.raises(ValueError, match="time zone"):
            resolve_time_zone(bad)


CURRENT = UserPreferences(opted_in=True, muted_types=["a"], time_zone="Europe/Berlin")


def test_card_inputs_as_teams_sends_them() -> None:
    prefs = preferences_from_card(
        CURRENT,
        {
            "action": "savePreferences",
            "etag": "x",
            "conversation": "true",
            "mobile": "false",
            "webpush": "true",
            "mutedTypes": "b.c,a",
            "quietFrom": "22:00",
            "quietTo": "07:00",
            "timeZone": "asia/tokyo",
        },
    )
    assert prefs.channels == ChannelPreferences(conversation=True, mobile=False, webpush=True)
    assert prefs.muted_types == ["a", "b.c"]
    assert prefs.quiet_hours == QuietHours(start="22:00", end="07:00")
    assert prefs.time_zone == "Asia/Tokyo"
    assert prefs.opted_in is True


def test_card_inputs_left_out_keep_toggles_and_types_and_clear_the_rest() -> None:
    prefs = preferences_from_card(CURRENT, {"action": "savePreferences"})
    assert prefs.channels == CURRENT.channels and prefs.muted_types == ["a"]
    assert prefs.quiet_hours is None and prefs.time_zone is None
    assert preferences_from_card(CURRENT, {"mutedTypes": ["x", ""]}).muted_types == ["x"]


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"quietFrom": "22:00"}, "quietTo"),
        ({"quietTo": "07:00"}, "quietFrom"),
        ({"quietFrom": "99:00", "quietTo": "07:00"}, "quietFrom"),
        ({"timeZone": "Nowhere/Land"}, "timeZone"),
        ({"webpush": "perhaps"}, "webpush"),
    ],
)
def test_card_inputs_refused(value: dict[str, Any], field: str) -> None:
    with pytest.raises(CardInputError) as caught:
        preferences_from_card(CURRENT, value)
    assert caught.value.field == field


def test_describe_changes() -> None:
    after = UserPreferences(
        opted_in=False,
        channels=ChannelPreferences(mobile=False),
        muted_types=["b"],
        quiet_hours=QuietHours(start="22:00", end="07:00"),
    )
    assert describe_changes(CURRENT, after) == [
        "Notifications: off (you opted out)",
        "Mobile push: off",
        "Muted: b",
        "Unmuted: a",
        "Quiet hours: 22:00–07:00",
        "Time zone: UTC (not set)",
    ]
    assert describe_changes(CURRENT, CURRENT) == []


def test_parse_etags() -> None:
    assert parse_etags("*") is None
    assert parse_etags('"abc"') == ["abc"]
    assert parse_etags('"a", W/"b" , c') == ["a", 'W/"b"', "c"]
