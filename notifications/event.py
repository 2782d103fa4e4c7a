"""The event: what a sender posts, as a validated pydantic model (DESIGN: Contracts).

It sits below the HTTP API because every layer carries it: the API validates a POST with it,
the stores keep it (`StoredEvent`), the router, channels, dialogs and the bot read it, and the
bot validates a BroadcastEvent's `value` with it. The wire JSON (names, aliases, errors) is the
API's contract: the OpenAPI document is generated from these models.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from typing import Annotated, Any, Final, Literal, TypeVar

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

__all__ = [
    "CARD_CONTENT_TYPE",
    "LENIENT",
    "MAX_AUDIENCE_PARTS",
    "MAX_CARD_BYTES",
    "MAX_RECIPIENTS",
    "PATTERN_MESSAGES",
    "Acknowledge",
    "BroadcastValue",
    "ChannelAddress",
    "Event",
    "Notice",
    "NotificationId",
    "Prompt",
    "RecipientKey",
    "Recipients",
    "Severity",
    "StoredEvent",
    "Urgency",
    "card_bytes",
    "content_hash",
    "read_stored",
]

MAX_RECIPIENTS = 10_000
MAX_AUDIENCE_PARTS: Final = 100
"""The most groups, teams or channels (each) one event may name."""

MAX_CARD_BYTES: Final = 24 * 1024
"""The most an event's `card` may take as the attachment the bot sends (see `card_bytes`).
Teams refuses a message over about 28 KB (the whole activity JSON); 4 KiB of that is left for
the rest of the activity: the summary, ids and addresses, a prompt's buttons."""
CARD_CONTENT_TYPE: Final = "application/vnd.microsoft.card.adaptive"

NotificationId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._~:@-]*$")
]
EventType = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
# Patterns use only explicit character classes with \xHH / \uHHHH escapes, so that pydantic (Rust
# regex), Python's re and ECMA-262 (JSON Schema: the OpenAPI document, schemathesis, clients) all
# read them alike. `\s`, `\S` and `.` mean different sets in each: U+0085 is white space to Rust
# and Python but not to ECMA, U+FEFF only to ECMA, U+001C only to Python; `.` matches \r and
# U+2028 except in ECMA.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_SPACE = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_VISIBLE = rf"[^{_CONTROL}{_SPACE}]"
"""One character that is neither a control character nor white space."""
_PRINTABLE = rf"[^{_CONTROL}\u2028\u2029]"
"""One character that is not a control character or line break (spaces are fine)."""

_RECIPIENT_KEY = rf"^{_VISIBLE}({_PRINTABLE}*{_VISIBLE})?$"
_HTTPS_URL = rf"^https://[^{_CONTROL}{_SPACE}/?#]+{_VISIBLE}*$"
PATTERN_MESSAGES = {
    _RECIPIENT_KEY: "must not start or end with white space or hold control characters",
    _HTTPS_URL: "must be an https URL with a host, without white space or control characters",
}
"""What a pattern means, for error messages: these patterns are not for people to read."""

RecipientKey = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=_RECIPIENT_KEY)
]
"""A user id or alias: printable, no white space at either end."""
HttpsUrl = Annotated[str, StringConstraints(max_length=2048, pattern=_HTTPS_URL)]
"""An https URL with a host and no white space or control characters."""


_RFC3339 = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})"
)


LENIENT: Final = "herald.lenient"
"""Validation context key: set (to True) when reading an event stored by an earlier version,
whose rules may have been looser than today's (see `StoredEvent.from_document`)."""


_LOOSER_RULES: Final = frozenset(
    {"string_too_short", "string_too_long", "string_pattern_mismatch", "too_short", "too_long"}
)
"""The rules a stored event read leniently may break: lengths and patterns, never types."""


def _lenient(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get(LENIENT))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)

    @field_validator("*", mode="wrap")
    @classmethod
    def _as_stored(
        cls, value: object, handler: ValidatorFunctionWrapHandler, info: ValidationInfo
    ) -> object:
        # Only when reading a stored event leniently: text (or a list of texts) that today's
        # length or pattern rules refuse was accepted when it was posted; keep it as it is
        # rather than lose the notification. Everything else must still fit its type.
        try:
            return handler(value)
        except ValidationError as exc:
            texts = isinstance(value, str) or (
                isinstance(value, list) and all(isinstance(v, str) for v in value)
            )
            looser = all(e["type"] in _LOOSER_RULES for e in exc.errors())
            if texts and looser and _lenient(info):
                return value
            raise


_GUID = r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"
_THREAD = r"19:[A-Za-z0-9._~%!$&'()*+,;=:-]+@thread\.[A-Za-z0-9]+"
_GROUP_ID = rf"^{_GUID}$"
_THREAD_ID = rf"^{_THREAD}$"
_TEAM_ID = rf"^(?:{_GUID}|{_THREAD})$"
PATTERN_MESSAGES.update(
    {
        _GROUP_ID: "must be an Entra ID object id (a GUID)",
        _THREAD_ID: "must be a Teams id as the Bot Framework gives it (19:…@thread.tacv2)",
        _TEAM_ID: "must be a team's Bot Framework id (19:…@thread.tacv2) or its group's object "
        "id (a GUID)",
    }
)

GroupId = Annotated[str, StringConstraints(pattern=_GROUP_ID)]
"""An Entra ID object id (a GUID)."""
ThreadId = Annotated[str, StringConstraints(max_length=256, pattern=_THREAD_ID)]
"""A Teams thread id as the Bot Framework gives it: a team's (`channelData.team.id`, which is
also its General channel's) or a channel's, e.g. `19:…@thread.tacv2`."""
TeamId = Annotated[str, StringConstraints(max_length=256, pattern=_TEAM_ID)]
"""A team: its Bot Framework id (`19:…@thread.tacv2`) or its Microsoft 365 group's object id."""


class ChannelAddress(_Strict):
    """One channel of a team the bot was added to: one post in the channel."""

    team_id: ThreadId = Field(alias="teamId")
    channel_id: ThreadId = Field(alias="channelId")


class Recipients(_Strict):
    """Who gets the notification: any of these parts, combined; each person once however many
    parts name them."""

    users: list[RecipientKey] | None = Field(None, min_length=1, max_length=MAX_RECIPIENTS)
    groups: list[GroupId] | None = Field(
        None,
        min_length=1,
        max_length=MAX_AUDIENCE_PARTS,
        description="Entra ID groups: their transitive members that are users (Microsoft Graph).",
    )
    teams: list[TeamId] | None = Field(
        None,
        min_length=1,
        max_length=MAX_AUDIENCE_PARTS,
        description="Teams whose members each get the notification (the team's roster): the "
        "Bot Framework team id of a team the bot was added to, or the team's group object id.",
    )
    channels: list[ChannelAddress] | None = Field(
        None,
        min_length=1,
        max_length=MAX_AUDIENCE_PARTS,
        description="Channels of teams the bot was added to: one post in each channel.",
    )
    all: Literal[True] | None = None

    @field_validator("all", mode="before")
    @classmethod
    def _json_true(cls, value: object) -> object:
        # Literal[True] alone also takes 1 and 1.0; the contract says the JSON literal true.
        if value is not None and value is not True:
            raise ValueError("Input should be true")
        return value

    @model_validator(mode="after")
    def _some(self) -> Recipients:
        if all(
            part is None
            for part in (self.users, self.groups, self.teams, self.channels, self.all)
        ):
            raise ValueError(
                'give at least one of "users", "groups", "teams", "channels" (non-empty lists) '
                'or "all": true'
            )
        return self


class Prompt(_Strict):
    """A question to start a proactive dialog with ("want to know more?")."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    choices: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        ..., min_length=1, max_length=10
    )


class Acknowledge(_Strict):
    """An acknowledgement asked of every recipient: a button with this text on every surface
    (Teams card, inbox page, push notification); one acknowledgement per person is recorded."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=_RECIPIENT_KEY)]


Severity = Literal["info", "warning", "error"]
Urgency = Literal["very-low", "low", "normal", "high"]
"""How soon a push service should deliver (RFC 8030 Urgency; FCM and APNs priorities)."""

_RFC3339_MESSAGE = "must be an RFC 3339 date-time with an offset, e.g. 2030-01-31T17:00:00Z"


class Notice(_Strict):
    """What a notification says: the event without its audience."""

    id: NotificationId | None = None
    type: EventType
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    text: Annotated[str, StringConstraints(max_length=4000)] | None = None
    severity: Severity = "info"
    url: HttpsUrl | None = None
    icon: HttpsUrl | None = None
    card: dict[str, Any] | None = None
    prompt: Prompt | None = None
    data: dict[str, Any] | None = None
    expires_at: AwareDatetime | None = Field(
        None,
        alias="expiresAt",
        description="RFC 3339 date-time with seconds and an offset (Z or +hh:mm); not :60.",
    )
    urgency: Urgency | None = None
    send_at: AwareDatetime | None = Field(
        None,
        alias="sendAt",
        description="RFC 3339 date-time with seconds and an offset: nothing is expanded or "
        "sent before it (it survives restarts), and the notification can be recalled until "
        "then. A time already past is sent now (the answer says so).",
    )
    acknowledge: Acknowledge | None = None

    @field_validator("expires_at", "send_at", mode="before")
    @classmethod
    def _rfc3339(cls, value: object) -> object:
        # pydantic alone also takes epoch numbers, "2030-01-01 10:00Z" and other ISO 8601 forms;
        # the contract (and the OpenAPI `date-time` format) is an RFC 3339 string.
        if value is not None and not (isinstance(value, str) and _RFC3339.fullmatch(value)):
            raise ValueError(_RFC3339_MESSAGE)
        return value

    @field_validator("card")
    @classmethod
    def _adaptive_card(
        cls, card: dict[str, Any] | None, info: ValidationInfo
    ) -> dict[str, Any] | None:
        if card is None or _lenient(info):
            return card
        if card.get("type") != "AdaptiveCard":
            raise ValueError('card must be an Adaptive Card ("type": "AdaptiveCard")')
        size = card_bytes(card)
        if size > MAX_CARD_BYTES:
            # Refused here, not by Teams at send time for every recipient.
            raise PydanticCustomError(
                "card_too_large",
                "the card is {size} bytes as Teams would receive it (the Adaptive Card "
                "attachment, compact UTF-8 JSON); at most {limit} fit in a Teams message",
                {"size": f"{size:,}", "limit": f"{MAX_CARD_BYTES:,}"},
            )
        return card

    def document(self) -> dict[str, Any]:
        """The event as stored and passed on: JSON types, camelCase names, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Event(Notice):
    """The body of POST /api/notifications (DESIGN: Contracts)."""

    recipients: Recipients


class StoredEvent(Event):
    """An event as stored and carried below the API: its id settled, and for a resend the
    notification it resends (`resendOf`, api/resend.py). Stores keep its `document()`."""

    model_config = ConfigDict(extra="ignore")

    id: NotificationId
    resend_of: NotificationId | None = Field(None, alias="resendOf")

    @classmethod
    def from_document(cls, document: object) -> StoredEvent:
        """A stored event's JSON as the model (see `read_stored`)."""
        return read_stored(cls, document)

    def content(self) -> dict[str, Any]:
        """What is sent to recipients as JSON (the bot's BroadcastEvent value): the event
        without its audience, which may be 10,000 people long, and without `resendOf`, a
        link between notifications that is never shown."""
        return self.model_dump(
            mode="json", by_alias=True, exclude_none=True, exclude={"recipients", "resend_of"}
        )


class BroadcastValue(Notice):
    """The value of a BroadcastEvent posted to /api/messages: rendered in that conversation,
    so recipients, if present, are not needed."""

    recipients: Recipients | None = None


_Read = TypeVar("_Read", bound=_Strict)


def read_stored(model: type[_Read], document: object) -> _Read:
    """The one place an event Herald stored itself is parsed (a store's row, the value the
    delivery channel hands the bot). It was valid when posted, but perhaps under looser rules
    than today's (a longer title, a larger card, a pattern since tightened): then it is read
    leniently, keeping such values as they are, so old rows still load. A document that does
    not fit the event's shape at all still fails."""
    try:
        return model.model_validate(document)
    except ValidationError:
        return model.model_validate(document, context={LENIENT: True})


def card_bytes(card: dict[str, Any]) -> int:
    """The size of `card` as it goes to Teams: an Adaptive Card attachment, compact UTF-8 JSON
    (as proactive/encoding.py writes activities)."""
    attachment = {"contentType": CARD_CONTENT_TYPE, "content": card}
    return len(json.dumps(attachment, ensure_ascii=False, separators=(",", ":")).encode())


def content_hash(document: Mapping[str, Any]) -> str:
    """A stable hash of an event's content: a repeat with the same hash is a duplicate."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


