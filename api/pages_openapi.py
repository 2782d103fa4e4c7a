"""The OpenAPI description of what the live pages call: the operator page's link and timeline
(api/operator.py) and the inbox API (api/inbox.py), merged into /openapi.json.

Kept beside the handlers, like api/push_openapi.py; api/openapi.py adds these models to its
schema generation, these security schemes and paths to its document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.inbox import MAX_ITEMS
from api.notifications import NOTIFICATION_ID
from api.operator import MAX_BUCKET_SECONDS

__all__ = [
    "PAGES_MODELS",
    "PAGES_SECURITY_SCHEMES",
    "document_pages_schemas",
    "notification_id_parameter",
    "pages_paths",
]

REF = "#/components/schemas/{model}"
_DATE_TIME: dict[str, Any] = {"format": "date-time"}


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class OperatorLink(_Answer):
    """A link to the operator page of one notification, and the token in it."""

    url: str = Field(
        description="`{HERALD_PUBLIC_URL}/notifications/{id}?token=...`: opens the page."
    )
    token: str = Field(
        description="Opens GET /api/notifications/{id}, .../timeline and .../report.csv of this "
        "notification only (Authorization: Bearer), and this endpoint again to renew it."
    )
    expiresAt: str = Field(json_schema_extra=_DATE_TIME)


class TimelineBucketInfo(_Answer):
    """Deliveries that reached a final state in one bucket (by when they were settled)."""

    start: str = Field(json_schema_extra=_DATE_TIME)
    delivered: int = Field(ge=0)
    skipped: int = Field(ge=0)
    failed: int = Field(ge=0)
    deadTargets: int = Field(ge=0)
    read: int | None = Field(None, ge=0, description="Recipients who first read it then.")
    acknowledged: int | None = Field(
        None, ge=0, description="Recipients who acknowledged it then."
    )


class Timeline(_Answer):
    id: str
    bucketSeconds: int = Field(ge=1, le=MAX_BUCKET_SECONDS)
    buckets: list[TimelineBucketInfo] = Field(
        description="Oldest first; buckets without an outcome are left out. Deliveries per "
        "second in a bucket: its count / bucketSeconds."
    )


class InboxList(_Answer):
    userId: str
    unread: int = Field(ge=0, description="How many entries are unread (at most 500 counted).")
    items: list[dict[str, Any]] = Field(
        description="Unread entries first (newest first), then the most recent read ones."
    )
    cursor: str = Field(
        pattern=r"^[0-9]+\.[0-9]{6}$",
        description="Send as Last-Event-ID to GET /api/inbox/events to get what changed since.",
    )


class InboxRead(_Answer):
    id: str
    read: Literal[True]
    readAt: str = Field(json_schema_extra=_DATE_TIME)


class InboxReadAll(_Answer):
    userId: str
    updated: int = Field(ge=0)


class InboxToken(_Answer):
    token: str = Field(description="A fresh inbox token for the same person.")
    expiresAt: str = Field(json_schema_extra=_DATE_TIME)


PAGES_MODELS: list[type[BaseModel]] = [
    OperatorLink,
    TimelineBucketInfo,
    Timeline,
    InboxList,
    InboxRead,
    InboxReadAll,
    InboxToken,
]

PAGES_SECURITY_SCHEMES: dict[str, Any] = {
    "operatorLink": {
        "type": "http",
        "scheme": "bearer",
        "description": "A link token for one notification's operator page (POST "
        "/api/notifications/{id}/link): reads that notification's status, timeline and report.",
    },
    "inboxLink": {
        "type": "http",
        "scheme": "bearer",
        "description": "The token of the inbox link the bot gives one person (the `inbox` "
        "command): that person's inbox only. An API key names nobody and is refused.",
    },
}


def document_pages_schemas(schemas: dict[str, Any]) -> None:
    """The inbox list's items are history items, as GET /api/users/{id}/notifications has."""
    schemas["InboxList"]["properties"]["items"]["items"] = {"$ref": REF.format(model="HistoryItem")}


def notification_id_parameter() -> dict[str, Any]:
    """The `{id}` path parameter of a notification's routes."""
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The notification id.",
        "schema": NOTIFICATION_ID.json_schema(),
    }


def pages_paths(
    json_content: Callable[[str], dict[str, Any]],
    error: Callable[[str], dict[str, Any]],
    unauthorized: dict[str, Any],
) -> dict[str, Any]:
    """The operator page's and the inbox's path items, built with the document's helpers."""
    operator: list[dict[str, list[str]]] = [{"apiKey": []}, {"operatorLink": []}]
    inbox: list[dict[str, list[str]]] = [{"inboxLink": []}]
    inbox_unauthorized = {
        **error(
            "No inbox token, or one that is forged, expired or for another purpose (an API key "
            "is not an inbox token)."
        ),
        "headers": {
            "WWW-Authenticate": {
                "required": True,
                "schema": {"type": "string", "pattern": "^Bearer "},
            }
        },
    }
    return {
        "/api/notifications/{id}/link": {
            "post": {
                "operationId": "postOperatorLink",
                "summary": "A link to the notification's live delivery page, usable without an "
                "API key for HERALD_LINK_MINUTES.",
                "description": "With an operator link token of the same notification, a fresh "
                "one (the page renews its own while it is open), expiring no later than "
                "HERALD_LINK_MAX_HOURS after the link was first issued.",
                "security": operator,
                "parameters": [notification_id_parameter()],
                "responses": {
                    "200": {
                        "description": "The link.",
                        "content": json_content("OperatorLink"),
                        "headers": {
                            "Cache-Control": {"required": True, "schema": {"const": "no-store"}}
                        },
                    },
                    "400": error("Not a valid notification id."),
                    "401": unauthorized,
                    "404": error("No such notification."),
                },
            }
        },
        "/api/notifications/{id}/timeline": {
            "get": {
                "operationId": "getNotificationTimeline",
                "summary": "Deliveries that reached a final state per time bucket (the operator "
                "page's delivery-rate chart).",
                "security": operator,
                "parameters": [
                    notification_id_parameter(),
                    {
                        "name": "bucket",
                        "in": "query",
                        "required": False,
                        "description": "Bucket size in seconds, at most once. Without it Herald "
                        "picks a round size giving at most about 120 buckets.",
                        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_BUCKET_SECONDS},
                    },
                ],
                "responses": {
                    "200": {"description": "The timeline.", "content": json_content("Timeline")},
                    "400": error("Not a valid notification id or bucket (each at most once)."),
                    "401": unauthorized,
                    "404": error("No such notification."),
                },
            }
        },
        "/api/inbox": {
            "get": {
                "operationId": "getInbox",
                "summary": "The inbox link's person's notifications, unread first.",
                "security": inbox,
                "parameters": [
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "description": "How many read entries at most besides the unread "
                        "ones (every unread one is listed, up to 500); at most once.",
                        "schema": {
                            "type": "integer",
                            "minimum": 1,
                            "maximum": MAX_ITEMS,
                            "default": 100,
                        },
                    }
                ],
                "responses": {
                    "200": {"description": "The inbox.", "content": json_content("InboxList")},
                    "400": error("Not a valid limit (or given twice)."),
                    "401": inbox_unauthorized,
                },
            }
        },
        "/api/inbox/events": {
            "get": {
                "operationId": "getInboxEvents",
                "summary": "Server-sent events: the inbox as it changes.",
                "description": "text/event-stream. First (without Last-Event-ID, or after more "
                "changes than a reconnect replays) a `snapshot` event `{userId, unread, items}`; "
                "then a `notification` event (a history item) for each entry that is new, "
                "updated or read, with a cursor as its id. Send the last id as Last-Event-ID "
                "when reconnecting; the changes of the two seconds before it come again, so "
                "merge items by id. A comment line every 15 s keeps the connection; the stream "
                "ends when the token expires (reconnect with a renewed one).",
                "security": inbox,
                "parameters": [
                    {
                        "name": "Last-Event-ID",
                        "in": "header",
                        "required": False,
                        "description": "The id of the last event received.",
                        "schema": {"type": "string"},
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The event stream (open until the token expires).",
                        "content": {"text/event-stream": {"schema": {"type": "string"}}},
                    },
                    "401": inbox_unauthorized,
                },
            }
        },
        "/api/inbox/read-all": {
            "post": {
                "operationId": "readAllInbox",
                "summary": "Mark every entry of the inbox read.",
                "security": inbox,
                "responses": {
                    "200": {"description": "Marked.", "content": json_content("InboxReadAll")},
                    "401": inbox_unauthorized,
                },
            }
        },
        "/api/inbox/token": {
            "post": {
                "operationId": "renewInboxToken",
                "summary": "A fresh inbox token for the same person (before this one expires).",
                "description": "The fresh token keeps the original link's grant: it expires "
                "HERALD_LINK_MINUTES from now, but never later than HERALD_LINK_MAX_HOURS after "
                "the bot gave the link (then `expiresAt` stops moving and a new link is needed).",
                "security": inbox,
                "responses": {
                    "200": {
                        "description": "The new token.",
                        "content": json_content("InboxToken"),
                        "headers": {
                            "Cache-Control": {"required": True, "schema": {"const": "no-store"}}
                        },
                    },
                    "401": inbox_unauthorized,
                },
            }
        },
        "/api/inbox/{id}/read": {
            "post": {
                "operationId": "readInboxEntry",
                "summary": "Mark one entry of the inbox read (again: the first time stays).",
                "security": inbox,
                "parameters": [notification_id_parameter()],
                "responses": {
                    "200": {"description": "Read.", "content": json_content("InboxRead")},
                    "400": error("Not a valid notification id."),
                    "401": inbox_unauthorized,
                    "404": error("No such notification in this person's inbox."),
                },
            }
        },
    }
