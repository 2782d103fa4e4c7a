"""Whether, and when, one notification goes to one person on one channel.

:func:`decide` is a pure function of the preferences, the event, the channel and the time, so
the router, a worker re-checking at send time and the tests all get the same answer without a
store or a clock. The rules, first match wins:

1. the event has expired (``expires_at <= now``) -> skip ``expired``;
2. no record and the operator requires opt-in -> skip ``not-opted-in``; no record otherwise ->
   the default record (every channel on);
3. ``opted_in is False`` -> skip ``opted-out`` (an explicit no always wins);
4. opt-in required and ``opted_in`` is not True -> skip ``not-opted-in``;
5. the channel is off -> skip ``preference``;
6. the type is muted -> skip ``muted``, unless the event is ``high`` urgency and the operator
   lists its type as critical (``HERALD_CRITICAL_TYPES``). People may mute a critical type, and
   that silences its routine events, but an urgent one always gets through: nobody can mute
   those. An urgent critical event still respects opt-out (consent) and the channels a person
   switched off (they get it on the channels they kept), and, being ``high``, skips quiet hours;
7. inside quiet hours -> ``high`` urgency delivers now, anything else is deferred to the end of
   the window (``quiet-hours``), or skipped as ``expired`` if it would expire by then.

Quiet hours are wall-clock times in the person's zone, so the window's end has to be found on
the real timeline, where daylight-saving changes skip or repeat wall times; see
:func:`quiet_window_end`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Final, Literal, Self, get_args
from zoneinfo import ZoneInfo

from notifications.event import Urgency
from preferences.model import CHANNELS, UserPreferences

__all__ = [
    "DEFERRED_QUIET_HOURS",
    "SKIP_EXPIRED",
    "SKIP_MUTED",
    "SKIP_NOT_OPTED_IN",
    "SKIP_OPTED_OUT",
    "SKIP_PREFERENCE",
    "URGENCIES",
    "Action",
    "Decision",
    "DeliveryPolicy",
    "EventFacts",
    "Urgency",
    "decide",
    "quiet_window_end",
]

URGENCIES: Final[frozenset[str]] = frozenset(get_args(Urgency))
"""The event's urgencies (notifications/, the domain core, defines them), for checks at run time."""
Action = Literal["deliver", "skip", "defer"]

SKIP_EXPIRED: Final = "expired"
SKIP_NOT_OPTED_IN: Final = "not-opted-in"
SKIP_OPTED_OUT: Final = "opted-out"
SKIP_PREFERENCE: Final = "preference"
SKIP_MUTED: Final = "muted"
DEFERRED_QUIET_HOURS: Final = "quiet-hours"

_DAY: Final = timedelta(days=1)
_MICROSECOND: Final = timedelta(microseconds=1)
_OFFSET_SCAN_STEP: Final = timedelta(hours=1)
"""Offset changes closer together than this could hide from the scan; no zone has any."""
_MAX_SEGMENTS: Final = 8
"""Offset changes a window may span; real zones change at most twice a day."""


@dataclass(frozen=True, slots=True)
class EventFacts:
    """The parts of an event the rules look at, so they need not know the whole contract."""

    type: str
    urgency: Urgency | None = None
    expires_at: datetime | None = None

    def __post_init__(self) -> None:
        if self.urgency is not None and self.urgency not in URGENCIES:
            raise ValueError(f"unknown urgency {self.urgency!r}; expected one of {URGENCIES}")
        if self.expires_at is not None:
            _require_aware(self.expires_at, "expires_at")


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """The operator's side of the rules."""

    opt_in_required: bool = False
    """Send nothing to people who have not completed the opt-in dialog."""
    critical_types: frozenset[str] = frozenset()
    """Event types whose urgent (``high``) events nobody can mute (matched case-insensitively)."""

    def __post_init__(self) -> None:
        normalised = frozenset(t.strip().lower() for t in self.critical_types)
        object.__setattr__(self, "critical_types", normalised)

    def is_critical(self, event_type: str) -> bool:
        return event_type.strip().lower() in self.critical_types

    def overrides_mute(self, event_type: str, urgency: str | None) -> bool:
        """Whether this event is delivered even to people who muted its type."""
        return urgency == "high" and self.is_critical(event_type)


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do with one (person, channel) delivery, and why, for the status counters."""

    action: Action
    reason: str | None = None
    not_before: datetime | None = None
    """For ``defer``: the aware UTC instant the delivery may go."""

    @classmethod
    def deliver(cls) -> Self:
        return cls("deliver")

    @classmethod
    def skip(cls, reason: str) -> Self:
        return cls("skip", reason)

    @classmethod
    def defer(cls, not_before: datetime, reason: str = DEFERRED_QUIET_HOURS) -> Self:
        return cls("defer", reason, not_before)


def decide(
    prefs: UserPreferences | None,
    event: EventFacts,
    channel: str,
    now: datetime,
    policy: DeliveryPolicy,
) -> Decision:
    """Apply the rules in the module docstring to one person and one channel."""
    _require_aware(now, "now")
    if channel not in CHANNELS:
        raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
    if event.expires_at is not None and event.expires_at <= now:
        return Decision.skip(SKIP_EXPIRED)
    if prefs is None:
        if policy.opt_in_required:
            return Decision.skip(SKIP_NOT_OPTED_IN)
        prefs = UserPreferences.default()
    if prefs.opted_in is False:
        return Decision.skip(SKIP_OPTED_OUT)
    if policy.opt_in_required and prefs.opted_in is not True:
        return Decision.skip(SKIP_NOT_OPTED_IN)
    if not prefs.channels.is_enabled(channel):
        return Decision.skip(SKIP_PREFERENCE)
    event_type = event.type.strip().lower()
    if event_type in prefs.muted_types and not policy.overrides_mute(event_type, event.urgency):
        return Decision.skip(SKIP_MUTED)
    quiet = prefs.quiet_hours
    if quiet is None or event.urgency == "high":
        return Decision.deliver()
    end = quiet_window_end(now, quiet.start_time, quiet.end_time, prefs.zone())
    if end is None:
        return Decision.deliver()
    if event.expires_at is not None and end >= event.expires_at:
        return Decision.skip(SKIP_EXPIRED)
    return Decision.defer(end)


def quiet_window_end(now: datetime, start: time, end: time, tz: ZoneInfo) -> datetime | None:
    """The first instant at or after ``now`` that is outside the quiet window, in UTC.

    None when ``now`` itself is outside. The window is every instant whose wall-clock time in
    ``tz`` lies in ``[start, end)`` (wrapping past midnight when ``start > end``). So the answer
    is, in order of what happens first:

    * the instant the wall clock reads ``end``; where ``end`` occurs twice (the repeated hour
      when clocks go back) that is the first occurrence still ahead of ``now``;
    * where clocks spring forward over ``end``, the instant of the change: the first valid wall
      time after the missing ``end``;
    * where clocks fall back to a wall time before ``start`` (window ``01:30``-``02:30`` in New
      York when 02:00 EDT becomes 01:00 EST), the instant of the change. The wall clock then
      reads 01:00, outside the person's quiet hours, and waiting for 02:30 EST would hold the
      notification through half an hour that is not quiet.

    Every instant in ``[now, answer)`` is inside the window, and the answer is not.
    """
    _require_aware(now, "now")
    if start.tzinfo is not None or end.tzinfo is not None:
        raise ValueError("start and end are wall-clock times; the zone comes from tz")
    if start == end:
        raise ValueError("quiet hours need different start and end times")
    t = now.astimezone(UTC)
    if not _inside(_wall(t, tz).time(), start, end):
        return None
    for _ in range(_MAX_SEGMENTS):
        # Within one UTC offset the wall clock runs evenly, so it reaches `end` after exactly
        # the wall-clock distance to it, unless the offset changes first.
        wall = _wall(t, tz)
        distance = datetime.combine(wall.date(), end) - wall
        if distance <= timedelta(0):
            distance += _DAY
        reaches_end = t + distance
        change = _first_offset_change(t, reaches_end, tz)
        if change is None:
            return reaches_end
        if not _inside(_wall(change, tz).time(), start, end):
            return change
        t = change  # the clock jumped to another wall time still inside the window
    raise RuntimeError(f"{tz.key} changes its UTC offset too often to place quiet hours")


def _require_aware(value: datetime, name: str) -> None:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")


def _inside(wall: time, start: time, end: time) -> bool:
    if start < end:
        return start <= wall < end
    return wall >= start or wall < end


def _wall(instant: datetime, tz: ZoneInfo) -> datetime:
    return instant.astimezone(tz).replace(tzinfo=None, fold=0)


def _offset(instant: datetime, tz: ZoneInfo) -> timedelta | None:
    return instant.astimezone(tz).utcoffset()


def _first_offset_change(after: datetime, until: datetime, tz: ZoneInfo) -> datetime | None:
    """The first instant in ``(after, until]`` with a UTC offset other than ``after``'s."""
    base = _offset(after, tz)
    low = after
    while low < until:
        high = min(low + _OFFSET_SCAN_STEP, until)
        if _offset(high, tz) != base:
            while high - low > _MICROSECOND:  # bisect down to the exact instant
                middle = low + (high - low) / 2
                if _offset(middle, tz) == base:
                    low = middle
                else:
                    high = middle
            return high
        low = high
    return None
