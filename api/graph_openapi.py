"""The OpenAPI description of Microsoft Graph's endpoints and the calendar subscription of a
user: models and paths, merged into /openapi.json by api/openapi.py (kept beside api/graph.py so
the Graph API is described in one place).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.graph import MAX_VALIDATION_TOKEN, CalendarRequest
from api.users import USER_KEY

__all__ = ["GRAPH_MODELS", "GRAPH_REQUESTS", "document_graph_schemas", "graph_paths"]

REF = "#/components/schemas/{model}"


class _Open(BaseModel):
    """What Graph sends: Herald reads the fields it knows and ignores the rest."""

    model_config = ConfigDict(extra="allow")


class ChangeNotification(_Open):
    """One change notification (Graph's changeNotification resource, without resource data)."""

    subscriptionId: str | None = None
    clientState: str | None = Field(
        None, description="Must equal the secret Herald gave the subscription, else ignored."
    )
    changeType: str | None = None
    resource: str | None = None
    resourceData: dict[str, Any] | None = None
    subscriptionExpirationDateTime: str | None = None
    tenantId: str | None = None


class ChangeNotificationCollection(_Open):
    value: list[ChangeNotification]


class LifecycleNotification(_Open):
    """A lifecycle notification: reauthorizationRequired, subscriptionRemoved or missed."""

    subscriptionId: str | None = None
    clientState: str | None = None
    lifecycleEvent: str | None = None
    subscriptionExpirationDateTime: str | None = None
    tenantId: str | None = None


class LifecycleNotificationCollection(_Open):
    value: list[LifecycleNotification]


class CalendarSubscription(BaseModel):
    """Whether Herald watches a user's calendar, and how that stands."""

    model_config = ConfigDict(extra="forbid")

    userId: str
    resource: Literal["calendar"]
    available: bool = Field(description="Microsoft Graph is configured on this Herald.")
    eligible: bool = Field(
        description="The user has an Entra ID account (a Teams user); others cannot have one."
    )
    allowed: bool = Field(description="What the user (or a backend) asked for.")
    status: Literal["off", "pending", "active", "removing"] = Field(
        description="active: Graph holds a subscription; pending: wanted, being set up or "
        "retried (see lastError); removing: no longer wanted, being deleted; off: none."
    )
    expiresAt: str | None = Field(
        json_schema_extra={"format": "date-time"},
        description="When the current Graph subscription ends unless renewed (Herald renews "
        "it well before).",
    )
    lastError: str | None


GRAPH_MODELS: list[type[BaseModel]] = [
    ChangeNotificationCollection,
    LifecycleNotificationCollection,
    CalendarRequest,
    CalendarSubscription,
]
GRAPH_REQUESTS: tuple[type[BaseModel], ...] = (
    ChangeNotificationCollection,
    LifecycleNotificationCollection,
    CalendarRequest,
)


def document_graph_schemas(schemas: dict[str, Any]) -> None:
    """What the handlers promise beyond the types."""
    schemas["CalendarRequest"]["description"] = (
        "true: subscribe to the user's calendar (changes become notifications); false: unsubscribe."
    )


def _receiver(
    operation_id: str,
    summary: str,
    body_model: str,
    error: Callable[[str], dict[str, Any]],
) -> dict[str, Any]:
    return {
        "post": {
            "operationId": operation_id,
            "summary": summary,
            "description": "Called by Microsoft Graph, without an API key. With "
            "`validationToken` it is Graph's validation handshake: the token is echoed as "
            "text/plain and any body is ignored. Otherwise the body is a notification "
            "collection: items whose clientState matches their subscription are stored and "
            "processed in the background; others (unknown subscription, wrong clientState, "
            "fields Herald cannot use) are ignored and logged, and the answer is still 202, so "
            "Graph does not retry them. An empty body accepts nothing.",
            "security": [],
            "parameters": [
                {
                    "name": "validationToken",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": MAX_VALIDATION_TOKEN},
                }
            ],
            "requestBody": {
                "required": False,
                "content": {"application/json": {"schema": {"$ref": REF.format(model=body_model)}}},
            },
            "responses": {
                "200": {
                    "description": "The validation token, echoed.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                },
                "202": {"description": "Accepted (or ignored); processed in the background."},
                "400": error(
                    "Not a notification collection, or a validationToken that is empty, too "
                    "long or given twice."
                ),
                "413": error("Body larger than 1 MiB."),
                "415": error("A body that is not application/json."),
            },
        }
    }


def graph_paths(
    json_content: Callable[[str], dict[str, Any]],
    error: Callable[[str], dict[str, Any]],
    unauthorized: dict[str, Any],
) -> dict[str, Any]:
    user = {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The user's id or alias.",
        "schema": USER_KEY.json_schema(),
    }
    return {
        "/api/graph/notifications": _receiver(
            "postGraphNotifications",
            "Microsoft Graph change notifications (and their validation handshake).",
            "ChangeNotificationCollection",
            error,
        ),
        "/api/graph/lifecycle": _receiver(
            "postGraphLifecycle",
            "Microsoft Graph lifecycle notifications (and their validation handshake).",
            "LifecycleNotificationCollection",
            error,
        ),
        "/api/users/{id}/subscriptions/calendar": {
            "get": {
                "operationId": "getCalendarSubscription",
                "summary": "Whether Herald watches the user's calendar (Microsoft Graph).",
                "parameters": [user],
                "responses": {
                    "200": {
                        "description": "State.",
                        "content": json_content("CalendarSubscription"),
                    },
                    "400": error("Not a valid user id or alias."),
                    "401": unauthorized,
                    "404": error("No such user."),
                },
            },
            "put": {
                "operationId": "putCalendarSubscription",
                "summary": "Subscribe to (or unsubscribe from) the user's calendar.",
                "description": "Stores the wish and applies it at once: Herald lists its Graph "
                "subscriptions first (a repeat never creates a second one), then creates, "
                "renews or deletes. If Graph fails, the answer is still 200 with status "
                "`pending` and `lastError`; Herald keeps trying in the background.",
                "parameters": [user],
                "requestBody": {"required": True, "content": json_content("CalendarRequest")},
                "responses": {
                    "200": {
                        "description": "Saved; the resulting state.",
                        "content": json_content("CalendarSubscription"),
                    },
                    "400": error('Invalid user id, or a body that is not {"allowed": bool}.'),
                    "401": unauthorized,
                    "404": error("No such user."),
                    "409": error(
                        "The user cannot have a calendar subscription: no Entra ID account "
                        "(`no_entra_id`), or they opted out of all notifications (`opted_out`)."
                    ),
                    "413": error("Body too large."),
                    "415": error("Body is not application/json."),
                    "503": error("Microsoft Graph is not configured on this Herald (`graph_off`)."),
                },
            },
        },
    }
