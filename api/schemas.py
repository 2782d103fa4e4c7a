"""Schemas of Herald's HTTP API (DESIGN: Contracts), with pydantic.

The event itself lives in notifications/ (every layer carries it); this module names it for the
API's handlers and adds what only the HTTP API answers with.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from notifications.event import (
    CARD_CONTENT_TYPE,
    MAX_AUDIENCE_PARTS,
    MAX_CARD_BYTES,
    MAX_RECIPIENTS,
    Acknowledge,
    BroadcastValue,
    ChannelAddress,
    Event,
    Notice,
    NotificationId,
    RecipientKey,
    Recipients,
    card_bytes,
    content_hash,
)
from notifications.problems import ValidationProblem, first_problem

__all__ = [
    "CARD_CONTENT_TYPE",
    "MAX_AUDIENCE_PARTS",
    "MAX_CARD_BYTES",
    "MAX_RECIPIENTS",
    "Acknowledge",
    "ApiError",
    "BroadcastValue",
    "ChannelAddress",
    "Event",
    "Notice",
    "NotificationId",
    "RecipientKey",
    "Recipients",
    "ValidationProblem",
    "card_bytes",
    "content_hash",
    "first_problem",
]


class ApiError(BaseModel):
    """The body of every 4xx answer: {"error": {"code", "message", "field"}}."""

    model_config = ConfigDict(extra="forbid")

    error: ValidationProblem

