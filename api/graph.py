"""Microsoft Graph's endpoints (change and lifecycle notifications) and the calendar
subscription of a user for backends.

`POST /api/graph/notifications` and `/api/graph/lifecycle` carry no API key: Graph cannot send
one. They answer Graph's validation handshake (`?validationToken=` → 200 text/plain, the token
echoed), and otherwise accept a notification collection: items are checked against their
subscription's clientState and stored durably before the 202; an item that fails the check is
ignored and logged, and the answer is still 202, so Graph does not retry what will never pass.

`GET/PUT /api/users/{id}/subscriptions/calendar` show and set whether Herald watches a user's
calendar (`{"allowed": true|false}`), as the `calendar` dialog does.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from api.http import (
    ApiProblem,
    iso,
    model_response,
    path_param,
    query_param,
)
from api.routing import (
    BACKEND,
    DATE_TIME,
    PUBLIC,
    UNAUTHORIZED,
    Body,
    Operation,
    RawBody,
    Route,
    body,
    error,
    json_body,
)
from api.users import USER_KEY
from sources.graph_source import (
    LIFECYCLE_PATH,
    NOTIFICATIONS_PATH,
    CalendarState,
    CalendarUnavailable,
    GraphSource,
)
from storage.protocols import UserStore

__all__ = [
    "MAX_GRAPH_BODY_BYTES",
    "MAX_VALIDATION_TOKEN",
    "CalendarRequest",
    "GraphApi",
    "calendar_state_json",
]

log = logging.getLogger(__name__)

MAX_VALIDATION_TOKEN: Final = 512
"""Graph's tokens are a short sentence (~150 characters); anything far longer is not Graph. 512
characters, even each percent-encoded from 4 UTF-8 bytes, keep the request line under
aiohttp's 8,190 bytes, so an over-long token is refused here (400 JSON), not by the parser."""
MAX_GRAPH_BODY_BYTES: Final = 1024 * 1024
"""Graph batches notifications; a batch of resource-less ones stays well below this."""


class CalendarRequest(BaseModel):
    """The body of PUT /api/users/{id}/subscriptions/calendar."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed: StrictBool


def calendar_state_json(state: CalendarState) -> dict[str, Any]:
    return {
        "userId": state.user_id,
        "resource": "calendar",
        "available": state.available,
        "eligible": state.eligible,
        "allowed": state.allowed,
        "status": state.status,
        "expiresAt": iso(state.expires_at, seconds=True),
        "lastError": state.last_error,
    }


async def _read_limited(request: web.Request) -> bytes:
    """The body, refusing more than MAX_GRAPH_BODY_BYTES (413) before reading it all."""
    if request.content_length is not None and request.content_length > MAX_GRAPH_BODY_BYTES:
        raise ApiProblem(413, "body_too_large", "the notification batch is too large")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > MAX_GRAPH_BODY_BYTES:
            raise ApiProblem(413, "body_too_large", "the notification batch is too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _items(raw: bytes, content_type: str) -> list[Any]:
    if not raw.strip():
        return []  # nothing to accept (Graph's validation request has no body either)
    if content_type != "application/json":
        raise ApiProblem(415, "unsupported_media_type", "send notifications as application/json")
    try:
        document = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiProblem(400, "invalid_json", "the body is not a JSON document") from exc
    if not isinstance(document, dict) or not isinstance(document.get("value"), list):
        raise ApiProblem(
            400, "invalid_body", 'a notification collection is {"value": [...]}', "value"
        )
    items: list[Any] = document["value"]
    return items


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
        json_schema_extra=DATE_TIME,
        description="When the current Graph subscription ends unless renewed (Herald renews "
        "it well before).",
    )
    lastError: str | None


def document_graph_schemas(schemas: dict[str, Any]) -> None:
    """What the handlers promise beyond the types."""
    schemas["CalendarRequest"]["description"] = (
        "true: subscribe to the user's calendar (changes become notifications); false: unsubscribe."
    )

# Read by the handler itself: Graph's batches have their own size limit, an empty body is
# accepted, and what Herald cannot use is ignored rather than refused.
_CHANGES: Final = RawBody(json_body(ChangeNotificationCollection), required=False)
_LIFECYCLE: Final = RawBody(json_body(LifecycleNotificationCollection), required=False)


def _receiver(operation_id: str, summary: str) -> Operation:
    """The operation of one of Microsoft Graph's two notification URLs."""
    return {
        "operationId": operation_id,
        "summary": summary,
        "description": "Called by Microsoft Graph, without an API key. With "
        "`validationToken` it is Graph's validation handshake: the token is echoed as "
        "text/plain and any body is ignored. Otherwise the body is a notification "
        "collection: items whose clientState matches their subscription are stored and "
        "processed in the background; others (unknown subscription, wrong clientState, "
        "fields Herald cannot use) are ignored and logged, and the answer is still 202, so "
        "Graph does not retry them. An empty body accepts nothing.",
        "parameters": [
            {
                "name": "validationToken",
                "in": "query",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": MAX_VALIDATION_TOKEN},
            }
        ],
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


_USER = {
    "name": "id",
    "in": "path",
    "required": True,
    "description": "The user's id or alias.",
    "schema": USER_KEY.json_schema(),
}


class GraphApi:
    """Graph's webhook endpoints and the calendar subscription resource."""

    def __init__(self, source: GraphSource, users: UserStore) -> None:
        self._source = source
        self._users = users

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                NOTIFICATIONS_PATH,
                self.notifications,
                PUBLIC,
                doc=_receiver(
                    "postGraphNotifications",
                    "Microsoft Graph change notifications (and their validation handshake).",
                ),
                body=_CHANGES,
            ),
            Route(
                "POST",
                LIFECYCLE_PATH,
                self.lifecycle,
                PUBLIC,
                doc=_receiver(
                    "postGraphLifecycle",
                    "Microsoft Graph lifecycle notifications (and their validation handshake).",
                ),
                body=_LIFECYCLE,
            ),
            Route(
                "GET",
                "/api/users/{id}/subscriptions/calendar",
                self.get_calendar,
                BACKEND,
                doc={
                    "operationId": "getCalendarSubscription",
                    "summary": "Whether Herald watches the user's calendar (Microsoft Graph).",
                    "parameters": [_USER],
                    "responses": {
                        "200": {
                            "description": "State.",
                            "content": json_body(CalendarSubscription),
                        },
                        "400": error("Not a valid user id or alias."),
                        "401": UNAUTHORIZED,
                        "404": error("No such user."),
                    },
                },
            ),
            Route(
                "PUT",
                "/api/users/{id}/subscriptions/calendar",
                self.put_calendar,
                BACKEND,
                doc={
                    "operationId": "putCalendarSubscription",
                    "summary": "Subscribe to (or unsubscribe from) the user's calendar.",
                    "description": "Stores the wish and applies it at once: Herald lists its Graph "
                    "subscriptions first (a repeat never creates a second one), then creates, "
                    "renews or deletes. If Graph fails, the answer is still 200 with status "
                    "`pending` and `lastError`; Herald keeps trying in the background.",
                    "parameters": [_USER],
                    "responses": {
                        "200": {
                            "description": "Saved; the resulting state.",
                            "content": json_body(CalendarSubscription),
                        },
                        "400": error('Invalid user id, or a body that is not {"allowed": bool}.'),
                        "401": UNAUTHORIZED,
                        "404": error("No such user."),
                        "409": error(
                            "The user cannot have a calendar subscription: no Entra ID account "
                            "(`no_entra_id`), or they opted out of all notifications (`opted_out`)."
                        ),
                        "413": error("Body too large."),
                        "415": error("Body is not application/json."),
                        "503": error("Microsoft Graph is not configured on this Herald "
                        "(`graph_off`)."),
                    },
                },
                body=Body(
                    CalendarRequest, not_object='send {"allowed": true} or {"allowed": false}'
                ),
            ),
        ]

    async def notifications(self, request: web.Request) -> web.StreamResponse:
        return await self._receive(request, lifecycle=False)

    async def lifecycle(self, request: web.Request) -> web.StreamResponse:
        return await self._receive(request, lifecycle=True)

    async def _receive(self, request: web.Request, *, lifecycle: bool) -> web.StreamResponse:
        token = query_param(request, "validationToken")
        if token is not None:
            # Graph's validation handshake: echo the token, as plain text, at once.
            if not 0 < len(token) <= MAX_VALIDATION_TOKEN:
                raise ApiProblem(
                    400,
                    "invalid_field",
                    f"validationToken must have 1 to {MAX_VALIDATION_TOKEN} characters",
                    "validationToken",
                )
            return web.Response(text=token, content_type="text/plain", charset="utf-8")
        items = _items(await _read_limited(request), request.content_type)
        accepted, ignored = await self._source.accept(items, lifecycle=lifecycle)
        if items:
            log.info(
                "Graph %s notifications: %d accepted, %d ignored",
                "lifecycle" if lifecycle else "change",
                accepted,
                ignored,
            )
        return web.Response(status=202)

    async def _user(self, request: web.Request) -> str:
        key = path_param(request, "id", USER_KEY)
        resolved = await self._users.resolve([key])
        if key not in resolved:
            raise ApiProblem(404, "not_found", f"no user with id or alias {key!r}", "id")
        return resolved[key]

    async def get_calendar(self, request: web.Request) -> web.Response:
        user_id = await self._user(request)
        state = await self._source.state(user_id)
        return model_response(CalendarSubscription, calendar_state_json(state))

    async def put_calendar(self, request: web.Request) -> web.Response:
        user_id = await self._user(request)
        wanted = await body(request, CalendarRequest)
        try:
            state = await self._source.set_allowed(user_id, wanted.allowed)
        except CalendarUnavailable as exc:
            if exc.reason == "off":
                raise ApiProblem(
                    503,
                    "graph_off",
                    "calendar subscriptions are off: Microsoft Graph is not configured "
                    "on this Herald",
                ) from exc
            if exc.reason == "opted-out":
                raise ApiProblem(
                    409,
                    "opted_out",
                    "this user opted out of all notifications; they must opt in first",
                ) from exc
            raise ApiProblem(
                409,
                "no_entra_id",
                "this user has no Entra ID account (Teams), so Herald cannot watch a calendar",
                "id",
            ) from exc
        return model_response(CalendarSubscription, calendar_state_json(state))
