"""The OpenAPI description of engagement: read and acknowledge from the mobile app, backends,
the browser's service worker and the inbox page (api/engagement.py, api/inbox.py), merged into
/openapi.json like api/pages_openapi.py.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field

from api.engagement import PUSH_ACK_PATH, PUSH_READ_PATH, PushEngagement, UserEngagement
from api.pages_openapi import notification_id_parameter
from engagement import SURFACES

__all__ = ["ENGAGEMENT_MODELS", "ENGAGEMENT_REQUESTS", "engagement_paths"]

_DATE_TIME: dict[str, Any] = {"format": "date-time"}


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


Surface = Literal["inbox", "chat", "teams", "teams-receipt", "webpush", "mobile", "api"]
assert set(get_args(Surface)) == set(SURFACES)


class ReadAnswer(_Answer):
    """Read: when it was first read (a repeat keeps that time)."""

    id: str
    userId: str
    read: Literal[True]
    readAt: str = Field(json_schema_extra=_DATE_TIME)
    unread: int = Field(ge=0, description="The person's unread count now (for a badge).")


class AcknowledgeAnswer(_Answer):
    """The acknowledgement as recorded: the first one stands."""

    id: str
    userId: str
    acknowledged: Literal[True]
    acknowledgedAt: str = Field(json_schema_extra=_DATE_TIME)
    acknowledgedVia: Surface = Field(description="Where it was first acknowledged.")
    first: bool = Field(description="Whether this call recorded it (false: it already was).")
    unread: int = Field(ge=0, description="The person's unread count now (for a badge).")


class InboxAcknowledged(_Answer):
    id: str
    acknowledged: Literal[True]
    acknowledgedAt: str = Field(json_schema_extra=_DATE_TIME)
    acknowledgedVia: Surface
    first: bool


ENGAGEMENT_MODELS: list[type[BaseModel]] = [
    UserEngagement,
    PushEngagement,
    ReadAnswer,
    AcknowledgeAnswer,
    InboxAcknowledged,
]
ENGAGEMENT_REQUESTS: tuple[type[BaseModel], ...] = (UserEngagement, PushEngagement)


def engagement_paths(
    json_content: Callable[[str], dict[str, Any]],
    error: Callable[[str], dict[str, Any]],
    unauthorized: dict[str, Any],
) -> dict[str, Any]:
    """The engagement path items, built with the document's own helpers."""
    who = (
        " Credentials: the mobile app's link token (purpose devices, the one it registers "
        "with: the person is the token's; surface `mobile`), or a backend's API key with "
        "`userId` (surface `api`), as Authorization: Bearer."
    )
    user_body = {"required": False, "content": json_content("UserEngagement")}
    forbidden = error("A link token for another user than userId.")
    browser = (
        " The service worker proves whose browser it is with its subscription's endpoint and "
        "auth secret (no other credential). Surface `webpush`."
    )
    proof = {"required": True, "content": json_content("PushEngagement")}
    bad_proof = error("No subscription Herald holds has that endpoint and secret.")
    return {
        "/api/notifications/{id}/read": {
            "post": {
                "operationId": "readNotification",
                "summary": "The person read the notification (the mobile app opened it).",
                "description": "Idempotent: the first read's time and surface are kept. Read "
                "anywhere is read everywhere: inbox pages update live, unread counts and "
                "badges follow." + who,
                "parameters": [notification_id_parameter()],
                "requestBody": user_body,
                "responses": {
                    "200": {"description": "Read.", "content": json_content("ReadAnswer")},
                    "400": error("Not a valid notification id or body (userId missing with "
                                 "an API key)."),
                    "401": unauthorized,
                    "403": forbidden,
                    "404": error("No such user, or the person has no such notification (not a "
                                 "recipient, or past the history's retention)."),
                    "413": error("Body too large."),
                    "415": error("Body is not application/json."),
                },
            }
        },
        "/api/notifications/{id}/acknowledge": {
            "post": {
                "operationId": "acknowledgeNotification",
                "summary": "The person acknowledged the notification (its `acknowledge` "
                "button in the mobile app).",
                "description": "Recorded once, with time and surface; a repeat (from any "
                "surface) answers the first record with `first: false`. Implies read." + who,
                "parameters": [notification_id_parameter()],
                "requestBody": user_body,
                "responses": {
                    "200": {
                        "description": "Acknowledged.",
                        "content": json_content("AcknowledgeAnswer"),
                    },
                    "400": error("Not a valid notification id or body."),
                    "401": unauthorized,
                    "403": forbidden,
                    "404": error("No such user, or the person has no such notification (or it "
                                 "was recalled)."),
                    "409": error("The notification asks for no acknowledgement."),
                    "413": error("Body too large."),
                    "415": error("Body is not application/json."),
                },
            }
        },
        PUSH_READ_PATH: {
            "post": {
                "operationId": "readFromBrowser",
                "summary": "A click on a browser notification: read.",
                "description": "Idempotent." + browser,
                "security": [],
                "requestBody": proof,
                "responses": {
                    "200": {"description": "Read.", "content": json_content("ReadAnswer")},
                    "400": error("Not a valid body."),
                    "401": bad_proof,
                    "404": error("The browser's person has no such notification."),
                    "413": error("Body too large."),
                    "415": error("Body is not application/json."),
                },
            }
        },
        PUSH_ACK_PATH: {
            "post": {
                "operationId": "acknowledgeFromBrowser",
                "summary": "The browser notification's acknowledge action.",
                "description": "Recorded once." + browser,
                "security": [],
                "requestBody": proof,
                "responses": {
                    "200": {
                        "description": "Acknowledged.",
                        "content": json_content("AcknowledgeAnswer"),
                    },
                    "400": error("Not a valid body."),
                    "401": bad_proof,
                    "404": error("The browser's person has no such notification."),
                    "409": error("The notification asks for no acknowledgement."),
                    "413": error("Body too large."),
                    "415": error("Body is not application/json."),
                },
            }
        },
        "/api/inbox/{id}/acknowledge": {
            "post": {
                "operationId": "acknowledgeInboxEntry",
                "summary": "The inbox entry's acknowledge button (recorded once; implies read).",
                "security": [{"inboxLink": []}],
                "parameters": [notification_id_parameter()],
                "responses": {
                    "200": {
                        "description": "Acknowledged.",
                        "content": json_content("InboxAcknowledged"),
                    },
                    "400": error("Not a valid notification id."),
                    "401": {
                        **error("No inbox token, or one that is not valid."),
                        "headers": {
                            "WWW-Authenticate": {
                                "required": True,
                                "schema": {"type": "string", "pattern": "^Bearer "},
                            }
                        },
                    },
                    "404": error("No such notification in this person's inbox."),
                    "409": error("The notification asks for no acknowledgement."),
                },
            }
        },
    }
