"""Request and response schemas of Herald's HTTP API (DESIGN: Contracts), with pydantic.

The event schema is also the `value` of a BroadcastEvent, so the bot validates with it too.
"""

from __future__ import annotations

import hashlib
import json
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

__all__ = [
    "MAX_RECIPIENTS",
    "ApiError",
    "BroadcastValue",
    "Event",
    "Notice",
    "ValidationProblem",
    "content_hash",
    "first_problem",
]

MAX_RECIPIENTS = 10_000

NotificationId = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[A-Za-z0-9][A-Za-z0-9._~:@-]*$")
]
EventType = Annotated[
    str, StringConstraints(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
]
RecipientKey = Annotated[
    str, StringConstraints(min_length=1, max_length=256, pattern=r"^\S(.*\S)?$")
]
HttpsUrl = Annotated[str, StringConstraints(max_length=2048, pattern=r"^https://[^\s/?#]+[^\s]*$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class Recipients(_Strict):
    """Either a list of users (ids or aliases) or everybody Herald knows."""

    users: list[RecipientKey] | None = Field(None, min_length=1, max_length=MAX_RECIPIENTS)
    all: Literal[True] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> Recipients:
        if (self.users is None) == (self.all is None):
            raise ValueError('give either "users" (a non-empty list) or "all": true')
        return self


class Prompt(_Strict):
    """A question to start a proactive dialog with ("want to know more?")."""

    text: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    choices: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] = Field(
        ..., min_length=1, max_length=10
    )


class Notice(_Strict):
    """What a notification says: the event without its audience."""

    id: NotificationId | None = None
    type: EventType
    title: Annotated[str, StringConstraints(min_length=1, max_length=200)]
    text: Annotated[str, StringConstraints(max_length=4000)] | None = None
    severity: Literal["info", "warning", "error"] = "info"
    url: HttpsUrl | None = None
    icon: HttpsUrl | None = None
    card: dict[str, Any] | None = None
    prompt: Prompt | None = None
    data: dict[str, Any] | None = None
    expires_at: AwareDatetime | None = Field(None, alias="expiresAt")
    urgency: Literal["very-low", "low", "normal", "high"] | None = None

    @field_validator("card")
    @classmethod
    def _adaptive_card(cls, card: dict[str, Any] | None) -> dict[str, Any] | None:
        if card is not None and card.get("type") != "AdaptiveCard":
            raise ValueError('card must be an Adaptive Card ("type": "AdaptiveCard")')
        return card

    def document(self) -> dict[str, Any]:
        """The event as stored and passed on: JSON types, camelCase names, no nulls."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class Event(Notice):
    """The body of POST /api/notifications (DESIGN: Contracts)."""

    recipients: Recipients


class BroadcastValue(Notice):
    """The value of a BroadcastEvent posted to /api/messages: rendered in that conversation,
    so recipients, if present, are not needed."""

    recipients: Recipients | None = None


def content_hash(document: dict[str, Any]) -> str:
    """A stable hash of an event's content: a repeat with the same hash is a duplicate."""
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


class ValidationProblem(BaseModel):
    code: str
    message: str
    field: str | None = None


class ApiError(BaseModel):
    """The body of every 4xx answer: {"error": {"code", "message", "field"}}."""

    error: ValidationProblem


def first_problem(exc: ValidationError) -> ValidationProblem:
    """The first validation error, in the API's error shape."""
    err = exc.errors(include_url=False)[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    kind = err["type"]
    code = {"missing": "missing_field", "extra_forbidden": "unknown_field"}.get(
        kind, "invalid_field"
    )
    message = str(err["msg"])
    if message.startswith("Value error, "):
        message = message[len("Value error, ") :]
    return ValidationProblem(code=code, message=message, field=field)
