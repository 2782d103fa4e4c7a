"""How people write preferences in chat: times of day, quiet-hour ranges and time zones.

Typed input is forgiving (``7`` and ``7am`` are ``07:00``; ``europe/berlin`` is
``Europe/Berlin``) but never guesses: anything else is a ``ValueError`` whose message can be
shown to the person as it is.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final
from zoneinfo import available_timezones

from pydantic import ValidationError

from preferences.model import QuietHours, UserPreferences

__all__ = ["parse_quiet_hours", "parse_time_of_day", "resolve_time_zone"]

_TIME: Final = re.compile(
    r"(?P<hour>\d{1,2})(?:[:.h](?P<minute>\d{2}))?\s*(?P<half>am|pm|a\.m\.|p\.m\.)?", re.IGNORECASE
)
_RANGE: Final = re.compile(r"\s*(?P<start>.+?)\s*(?:-|–|—|\bto\b|\buntil\b)\s*(?P<end>.+?)\s*")
_EXAMPLE_RANGE: Final = "22:00-07:00"


def parse_time_of_day(text: str) -> str:
    """``text`` as ``HH:MM`` (24 h); ValueError saying what is wrong otherwise."""
    match = _TIME.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"{text.strip()!r} is not a time of day; write it like 07:00 or 22:30")
    hour = int(match["hour"])
    minute = int(match["minute"] or 0)
    half = (match["half"] or "").lower().replace(".", "")
    if half:
        if not 1 <= hour <= 12:
            raise ValueError(f"{text.strip()!r} is not a time of day: {hour} {half} does not exist")
        hour = hour % 12 + (12 if half == "pm" else 0)
    if hour > 23 or minute > 59:
        raise ValueError(f"{text.strip()!r} is not a time of day; use 00:00 to 23:59")
    return f"{hour:02d}:{minute:02d}"


def parse_quiet_hours(text: str) -> QuietHours:
    """A range such as ``22:00-07:00`` or ``10pm to 7am``."""
    match = _RANGE.fullmatch(text)
    if match is None:
        raise ValueError(
            f"I could not read {text.strip()!r} as quiet hours; write them like {_EXAMPLE_RANGE}"
        )
    start = parse_time_of_day(match["start"])
    end = parse_time_of_day(match["end"])
    if start == end:
        raise ValueError("quiet hours need different start and end times")
    return QuietHours(start=start, end=end)


@lru_cache(maxsize=1)
def _zones_by_lower_name() -> dict[str, str]:
    # The tz database is fixed for the life of the process; read it once.
    return {name.lower(): name for name in available_timezones()}


def resolve_time_zone(text: str) -> str:
    """The IANA name ``text`` means (case-insensitive); ValueError for anything else."""
    candidate = text.strip().replace(" ", "_")
    if not candidate:
        raise ValueError("the time zone is empty; use an IANA name like Europe/Berlin")
    name = _zones_by_lower_name().get(candidate.lower(), candidate)
    try:
        UserPreferences(time_zone=name)
    except ValidationError as exc:
        raise ValueError(
            f"I don't know the time zone {text.strip()!r}; use an IANA name like Europe/Berlin,"
            " America/New_York or Asia/Tokyo"
        ) from exc
    return name
