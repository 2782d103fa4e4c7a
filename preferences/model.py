"""What each person told Herald about how they want to be notified.

One validated definition shared by the store (which keeps :meth:`UserPreferences.to_json_dict`
as JSON), the preferences API (same camelCase shape) and the dialogs, so a value that one of
them accepts is never rejected by another. Unknown fields are refused rather than dropped: a
misspelt key in ``PUT /api/users/{id}/preferences`` should be a 400 that names it, not a
setting silently ignored.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, time
from typing import Any, Final, Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictBool,
    field_validator,
    model_validator,
)
from pydantic.alias_generators import to_camel

__all__ = [
    "CHANNELS",
    "ChannelName",
    "ChannelPreferences",
    "QuietHours",
    "UserPreferences",
]

ChannelName = Literal["conversation", "mobile", "webpush"]
CHANNELS: Final[tuple[ChannelName, ...]] = ("conversation", "mobile", "webpush")
"""Channel names as the delivery channels and the preferences both spell them."""

_HH_MM: Final = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")  # ASCII digits only
_RFC3339: Final = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
    r"([Zz]|[+-][0-9]{2}:[0-9]{2})"
)
"""A `date-time` as JSON Schema and OpenAPI mean it (RFC 3339), as api/schemas.py reads one."""

# Names the tz database ships that are not places: they would follow the server, not the user.
_NOT_PLACES: Final = frozenset({"localtime", "posixrules", "Factory"})
_NOT_PLACE_PREFIXES: Final = ("posix/", "right/")


class _CamelModel(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        validate_assignment=True,
    )


class ChannelPreferences(_CamelModel):
    """Which channels a person wants; the sample's rule is that every channel starts on."""

    conversation: StrictBool = True
    mobile: StrictBool = True
    webpush: StrictBool = True

    def is_enabled(self, channel: str) -> bool:
        """Whether ``channel`` is on; an unknown name is a wiring bug, so it raises."""
        if channel not in CHANNELS:
            raise ValueError(f"unknown channel {channel!r}; expected one of {CHANNELS}")
        return bool(getattr(self, channel))


class QuietHours(_CamelModel):
    """A daily window on the person's wall clock in which only urgent notifications go out.

    ``start`` is inside the window and ``end`` is not; ``start`` later than ``end`` means the
    window crosses midnight (``22:00``-``07:00``).
    """

    start: str
    end: str

    @field_validator("start", "end")
    @classmethod
    def _hh_mm(cls, value: str) -> str:
        if not _HH_MM.fullmatch(value):
            raise ValueError(f"{value!r} is not a time of day; use HH:MM from 00:00 to 23:59")
        return value

    @model_validator(mode="after")
    def _not_empty(self) -> Self:
        if self.start == self.end:
            raise ValueError("quiet hours need different start and end times")
        return self

    @property
    def start_time(self) -> time:
        return time.fromisoformat(self.start)

    @property
    def end_time(self) -> time:
        return time.fromisoformat(self.end)


class UserPreferences(_CamelModel):
    """One person's notification preferences, as stored and as the API shows them."""

    opted_in: StrictBool | None = None
    """None: never asked. Matters only when the operator requires opt-in."""
    channels: ChannelPreferences = Field(default_factory=ChannelPreferences)
    muted_types: list[str] = Field(default_factory=list)
    """Event types never to deliver, lower-case, unique and sorted so equal sets compare equal."""
    quiet_hours: QuietHours | None = None
    time_zone: str | None = None
    """IANA name for quiet hours; None means UTC. `""` is taken as None (no time zone)."""
    updated_at: AwareDatetime | None = None
    """Set by whoever saves the record, in UTC."""

    @classmethod
    def default(cls) -> Self:
        """The record of someone never seen before: every channel on, nothing muted."""
        return cls()

    @classmethod
    def from_json_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read back what :meth:`to_json_dict` produced (or an API body of the same shape)."""
        return cls.model_validate(data)

    def to_json_dict(self) -> dict[str, Any]:
        """The stored and API form: camelCase keys, only JSON types."""
        return self.model_dump(by_alias=True, mode="json")

    def zone(self) -> ZoneInfo:
        """The zone quiet hours are read in."""
        return ZoneInfo(self.time_zone or "UTC")

    def is_muted(self, event_type: str) -> bool:
        return event_type.strip().lower() in self.muted_types

    @field_validator("muted_types")
    @classmethod
    def _normalise_types(cls, value: list[str]) -> list[str]:
        types = {t.strip().lower() for t in value}
        if "" in types:
            raise ValueError("a muted type cannot be empty")
        return sorted(types)

    @field_validator("time_zone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None or value == "":  # the schema's string allows "": no time zone
            return None
        if value in _NOT_PLACES or value.startswith(_NOT_PLACE_PREFIXES):
            raise ValueError(f"unknown time zone {value!r}; use an IANA name like Europe/Berlin")
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError, OSError) as exc:
            raise ValueError(
                f"unknown time zone {value!r}; use an IANA name like Europe/Berlin"
            ) from exc
        return value

    @field_validator("updated_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        # pydantic alone also takes epoch numbers and other ISO 8601 spellings; the document
        # (and its OpenAPI schema) says an RFC 3339 date-time string or null.
        if value is None or isinstance(value, datetime):
            return value
        if isinstance(value, str) and _RFC3339.fullmatch(value):
            return value
        raise ValueError(
            "must be an RFC 3339 date-time with an offset (e.g. 2030-01-31T17:00:00Z) or null"
        )

    @field_validator("updated_at")
    @classmethod
    def _in_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else value.astimezone(UTC)
