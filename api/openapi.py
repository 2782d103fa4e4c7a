"""GET /openapi.json: an OpenAPI 3.1 document of Herald's HTTP API.

Schemas come from the same pydantic models the handlers validate and answer with, so the
document cannot drift from the code; schemathesis checks the running server against it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter
from pydantic.json_schema import models_json_schema

from api.devices_openapi import (
    DEVICE_MODELS,
    DEVICE_REQUESTS,
    device_paths,
    document_device_schemas,
)
from api.engagement_openapi import ENGAGEMENT_MODELS, ENGAGEMENT_REQUESTS, engagement_paths
from api.graph_openapi import GRAPH_MODELS, GRAPH_REQUESTS, document_graph_schemas, graph_paths
from api.http import json_response
from api.notifications import NOTIFICATION_ID
from api.pages_openapi import (
    PAGES_MODELS,
    PAGES_SECURITY_SCHEMES,
    document_pages_schemas,
    pages_paths,
)
from api.push_openapi import PUSH_MODELS, PUSH_REQUESTS, document_push_schemas, push_paths
from api.resend import ResendRequest
from api.routing import PUBLIC, Route, RouteTable
from api.schemas import MAX_CARD_BYTES, ApiError, Event
from api.users import MAX_LIMIT, USER_KEY
from preferences.model import ChannelPreferences, UserPreferences

__all__ = ["OpenApi", "build_document"]

REF = "#/components/schemas/{model}"


class _Answer(BaseModel):
    """A response body: every field it may carry is listed, no others (additionalProperties)."""

    model_config = ConfigDict(extra="forbid")


class Accepted(_Answer):
    id: str
    status: Literal["accepted", "scheduled"] = Field(
        description="`scheduled`: its `sendAt` is in the future; nothing is expanded or sent "
        "before it."
    )
    recipients: int = Field(
        ge=0,
        description="Recipients known at acceptance: the explicit users, the channels, and "
        "for `all` the people Herald knows. Members of groups and teams are added as they are "
        "listed: the status counts each person once when expansion is done.",
    )
    version: int = Field(ge=1)
    outcome: Literal["created", "unchanged", "updated"]
    sendAt: str | None = Field(None, json_schema_extra={"format": "date-time"})
    note: str | None = Field(
        None, description="Said when `sendAt` is already past: it is sent now."
    )


class Counters(_Answer):
    queued: int = Field(ge=0)
    delivered: int = Field(ge=0)
    retrying: int = Field(ge=0)
    skipped: int = Field(ge=0)
    failed: int = Field(ge=0)
    deadTargets: int = Field(ge=0)


class AudiencePart(_Answer):
    kind: Literal["users", "group", "team", "channel", "all"] = Field(
        description="Which part of `recipients` this is; `id` names a group or team, "
        "`teamId`/`channelId` a channel."
    )
    id: str | None = None
    teamId: str | None = None
    channelId: str | None = None
    state: Literal["waiting", "expanding", "done", "failed"] = Field(
        description="`failed`: it could not be listed (`reason`; counted as a skipped "
        "recipient named after the part, e.g. `group:{id}`); `expanding` with a `reason`: its "
        "source is throttled or down and Herald tries again."
    )
    listed: int = Field(
        ge=0,
        description="Entries its source listed so far (keys, members, the channel), repeats "
        "and members that are not users included.",
    )
    added: int = Field(
        ge=0,
        description="Recipients it added: people no earlier part named, keys nobody answers "
        "to, channel posts.",
    )
    reason: str | None


class Audience(_Answer):
    parts: list[AudiencePart] = Field(
        description="Each part of `recipients`, in the order they are expanded: users, groups, "
        "teams, channels, all."
    )


class Reach(_Answer):
    created: int = Field(
        ge=0,
        description="People who never talked to the bot, reached in a Teams chat Herald "
        "created (`POST /v3/conversations`).",
    )
    installed: int = Field(
        ge=0, description="…reached after Herald installed the app for them (Microsoft Graph)."
    )
    stored: int = Field(
        ge=0, description="…who had a chat with the bot by the time it was sent after all."
    )
    notInstallable: dict[str, Annotated[int, Field(ge=0)]] = Field(
        description="People who could not be reached, per reason (e.g. `installation-off`, "
        "`no-service-url`, `forbidden (…)`): failed deliveries whose reason starts "
        "`not-installable:`."
    )
class Funnel(_Answer):
    """Delivered → read → acknowledged: one state per person, wherever it happened."""

    recipients: int = Field(ge=0, description="People whose inbox has it (it was routed to them).")
    read: int = Field(ge=0, description="Of them, how many read it (any surface).")
    acknowledged: int | None = Field(
        ge=0, description="How many acknowledged it; null when the event asks for no "
        "acknowledgement.",
    )
    readVia: dict[str, Annotated[int, Field(ge=0)]] = Field(
        description="First reads per surface: inbox, chat, teams, teams-receipt, webpush, "
        "mobile, api."
    )
    acknowledgedVia: dict[str, Annotated[int, Field(ge=0)]]


class Resent(_Answer):
    id: str | None = Field(description="The new notification (null: nobody matched).")
    resendOf: str
    filter: Literal["failed", "dead", "unread"]
    recipients: int = Field(ge=0)
    outcome: Literal["created", "unchanged", "updated", "nobody"]
    version: int | None = Field(None, ge=1)


class Recall(_Answer):
    id: str
    status: Literal["recalled"]
    recalledAt: str = Field(json_schema_extra={"format": "date-time"})
    cancelled: int = Field(ge=0, description="Deliveries not sent yet: they never will be.")
    deleting: int = Field(
        ge=0, description="Sent Teams messages queued for deletion (Bot Connector DELETE)."
    )
    withdrawn: int = Field(ge=0, description="Inbox entries it was taken out of.")


class NotificationStatus(_Answer):
    id: str
    type: str
    title: str
    version: int = Field(ge=1)
    status: Literal["scheduled", "accepted", "delivering", "completed", "recalled"]
    recipients: int = Field(ge=0)
    createdAt: str
    updatedAt: str
    counters: Counters
    channels: dict[str, Counters]
    reasons: dict[str, int]
    answers: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        description="Answers to the event's `prompt`, counted per choice in the order of its "
        "choices (zeros included; an answer to a choice an update removed comes after them). "
        "null when the event has no prompt."
    )
    nextDueAt: str | None = Field(
        json_schema_extra={"format": "date-time"},
        description="When the earliest queued or retrying delivery is due (UTC, like "
        "createdAt): in the future while it waits (quiet hours defer it to the end of the "
        "window, a retry to its backoff), in the past when it is due now or being sent. null "
        "when no delivery is outstanding.",
    )
    waiting: Literal["tenant-rate", "conversation-rate"] | None = Field(
        description="Why deliveries that are due wait (the reason most of them wait for): "
        "`tenant-rate` while their Teams tenant's rate budget is used (by this or other "
        "notifications; they share it fairly, `urgency: high` first), `conversation-rate` "
        "while a conversation's own limit is. null when nothing waits for budget."
    )
    waitingFor: dict[str, Annotated[int, Field(ge=0)]] = Field(
        description="Deliveries waiting, per reason (empty when none). As seen by the "
        "instance that answers."
    )
    audience: Audience = Field(
        description="What each part of `recipients` found so far (expansion is streamed: "
        "this grows while the status is `accepted`)."
    )
    reach: Reach = Field(
        description="How people without a stored conversation were reached, or why not."
    )
    engagement: Funnel | None = None
    recalledAt: str | None = Field(
        None, description="When its sender recalled it (DELETE); absent unless recalled."
    )
    sendAt: str | None = Field(
        None, description="The event's sendAt, when it has one (status `scheduled` until then)."
    )
    resendOf: str | None = Field(
        None, description="A resend: the notification it repeats (POST .../resend)."
    )




class AcknowledgeRequest(_Answer):
    text: str


class HistoryItem(_Answer):
    id: str
    type: str
    title: str
    severity: Literal["info", "warning", "error"]
    version: int
    createdAt: str
    read: bool
    readAt: str | None
    text: str | None = None
    url: str | None = None
    icon: str | None = None
    readVia: str | None = Field(
        None,
        description="Where it was first read: inbox, chat, teams, teams-receipt, webpush, "
        "mobile or api.",
    )
    acknowledge: AcknowledgeRequest | None = Field(
        None, description="The acknowledgement the notification asks for (its button's text)."
    )
    acknowledged: bool | None = Field(None, description="Present when it asks for one.")
    acknowledgedAt: str | None = None
    recalled: Literal[True] | None = Field(
        None,
        description="Only in the live feed: its sender recalled it (drop it from the list); "
        "what it said is left out.",
    )


class History(_Answer):
    userId: str
    items: list[HistoryItem]


class ReadAll(_Answer):
    userId: str
    updated: int = Field(ge=0)


class MobilePushServices(_Answer):
    """Which mobile push services this instance sends through (not a readiness check)."""

    fcm: bool
    apns: bool
    prefer: Literal["fcm", "apns"] = Field(
        description="Which of the two sends to a device registered with both tokens."
    )


class Health(_Answer):
    status: Literal["ok", "ready", "not-ready"]
    checks: dict[str, bool] | None = None
    mobile: MobilePushServices | None = None


_MODELS: list[type[BaseModel]] = [
    Event,
    UserPreferences,
    ApiError,
    Accepted,
    Counters,
    AudiencePart,
    Audience,
    Reach,
    NotificationStatus,
    Funnel,
    Recall,
    Resent,
    ResendRequest,
    HistoryItem,
    History,
    ReadAll,
    Health,
    MobilePushServices,
    *PUSH_MODELS,
    *GRAPH_MODELS,
    *DEVICE_MODELS,
    *PAGES_MODELS,
    *ENGAGEMENT_MODELS,
]


_REQUESTS: tuple[type[BaseModel], ...] = (
    Event,
    UserPreferences,
    *PUSH_REQUESTS,
    *GRAPH_REQUESTS,
    *DEVICE_REQUESTS,
    *ENGAGEMENT_REQUESTS,
    ResendRequest,
)
"""Request bodies, published as what their handlers accept (pydantic's validation schema)."""

# Python's white space (str.isspace): a muted type of nothing else strips to "" and is refused.
_PY_SPACE = r"\t-\r\x1c-\x20\x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
_HH_MM = "^(?:[01][0-9]|2[0-3]):[0-5][0-9]$"
_ETAG = '^"[!#-~]+"$'
"""A strong entity tag, as Herald issues them (RFC 9110 etagc without obs-text)."""


def _json(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model)}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("ApiError")}


_UNAUTHORIZED = {
    **_error("No or wrong API key."),
    "headers": {
        "WWW-Authenticate": {"required": True, "schema": {"type": "string", "pattern": "^Bearer "}}
    },
}


def _header(description: str, schema: dict[str, Any], required: bool = True) -> dict[str, Any]:
    return {"description": description, "required": required, "schema": schema}


_ETAG_HEADER = _header(
    "The version of the preferences document: send it back in If-Match (PUT) or "
    "If-None-Match (GET).",
    {"type": "string", "pattern": _ETAG},
)


def _preferences_answer(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": _json("UserPreferencesDocument"),
        "headers": {
            "ETag": _ETAG_HEADER,
            "Content-Location": _header(
                "Where this document lives.",
                {"type": "string", "pattern": "^/api/users/.+/preferences$"},
            ),
            "Cache-Control": _header(
                "Never cached: always read the current version.", {"const": "no-store"}
            ),
        },
    }


def _aliases(model: type[BaseModel]) -> list[str]:
    return [field.alias or name for name, field in model.model_fields.items()]


def _document_preferences(schemas: dict[str, Any]) -> None:
    """What UserPreferences' validators check beyond the types, and the answer's shape."""
    prefs = schemas["UserPreferences"]
    prefs["description"] = (
        "One person's notification preferences. PUT replaces the whole document: a field left "
        "out gets its default."
    )
    properties = prefs["properties"]
    properties["optedIn"]["description"] = (
        "null: never asked (matters only when the operator requires opt-in); false: opted out."
    )
    properties["mutedTypes"]["items"] = {"type": "string", "pattern": f"[^{_PY_SPACE}]"}
    properties["mutedTypes"]["description"] = (
        "Event types never delivered to this person (an urgent event of a critical type still "
        "is). Saved trimmed, lower-case, without duplicates, sorted."
    )
    properties["timeZone"]["description"] = (
        "IANA time zone name quiet hours are read in (e.g. Europe/Berlin); null, or \"\" (no "
        "time zone: saved as null), means UTC. A name Herald's time zone database does not "
        "know is refused with 400."
    )
    properties["updatedAt"]["description"] = (
        "When the document was last saved (RFC 3339 date-time, or null), set by Herald on every "
        "write; a value sent is replaced."
    )
    quiet = schemas["QuietHours"]
    for key in ("start", "end"):
        quiet["properties"][key]["pattern"] = _HH_MM
    quiet["description"] = (
        "A daily window, in the person's time zone, in which only urgent notifications go out; "
        "others are deferred to its end. `start` is in the window, `end` is not; `start` later "
        "than `end` crosses midnight; `start` equal to `end` is refused with 400."
    )
    schemas["UserPreferencesDocument"] = {
        "title": "UserPreferencesDocument",
        "description": "The preferences as Herald answers them: every field is present.",
        "allOf": [{"$ref": REF.format(model="UserPreferences")}],
        "required": _aliases(UserPreferences),
        "properties": {"channels": {"required": _aliases(ChannelPreferences)}},
    }


def _path_id(description: str, rule: TypeAdapter[str]) -> dict[str, Any]:
    """A path parameter `id`, published with the rule its handler checks it against."""
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": description,
        "schema": rule.json_schema(),
    }


def _closed(properties: dict[str, Any], required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": [required],
        "additionalProperties": False,
    }


def build_document(version: str = "0.1.0") -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "validation" if m in _REQUESTS else "serialization") for m in _MODELS],
        ref_template=REF,
    )
    schemas: dict[str, Any] = defs.get("$defs", {})
    # What pydantic's validators check but JSON Schema cannot infer from the types.
    # Recipients: at least one part is given and not null (null counts as absent), as closed
    # alternatives, one per part; generators (schemathesis' coverage phase) handle that form.
    recipients = schemas["Recipients"]
    properties = recipients["properties"]
    parts = ("users", "groups", "teams", "channels", "all")
    schemas["Recipients"] = {
        "title": "Recipients",
        "description": recipients["description"],
        "anyOf": [
            _closed(
                {
                    **{other: properties[other] for other in parts},
                    part: properties[part]["anyOf"][0],
                },
                required=part,
            )
            for part in parts
        ],
    }
    _document_preferences(schemas)
    document_push_schemas(schemas)
    document_graph_schemas(schemas)
    document_device_schemas(schemas)
    document_pages_schemas(schemas)
    event = schemas["Event"]
    event["properties"]["card"] = {
        "anyOf": [
            {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"const": "AdaptiveCard"}},
            },
            {"type": "null"},
        ],
        "description": "An Adaptive Card replacing the default card in Teams. At most "
        f"{MAX_CARD_BYTES:,} bytes as the attachment the bot sends (compact UTF-8 JSON of "
        '`{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}`), '
        "since Teams refuses a message over about 28 KB: a larger one is refused with 400 "
        "`card_too_large`.",
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Herald",
            "version": version,
            "description": "Enterprise notifications delivered by a Bot Framework bot, "
            "mobile push and Web Push.",
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "apiKey": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "An API key of this Herald, or (when HERALD_AUTH_TENANT_ID "
                    "and HERALD_AUTH_AUDIENCE are set) an Entra ID access token of that tenant "
                    "for that audience carrying the app role HERALD_AUTH_ROLE: 401 for a token "
                    "that is not valid, 403 for one without the role, 503 while the tenant's "
                    "signing keys cannot be read.",
                },
                **PAGES_SECURITY_SCHEMES,
            },
        },
        "security": [{"apiKey": []}],
        "paths": {
            "/api/notifications": {
                "post": {
                    "operationId": "postNotification",
                    "summary": "Post an event to be delivered to its recipients.",
                    "requestBody": {"required": True, "content": _json("Event")},
                    "responses": {
                        "202": {
                            "description": "Accepted; delivery runs in the background.",
                            "content": _json("Accepted"),
                            "headers": {
                                "Location": {
                                    "description": "Where the delivery status can be read.",
                                    "required": True,
                                    "schema": {"type": "string", "pattern": "^/api/notifications/"},
                                }
                            },
                        },
                        "400": _error("Invalid event; nothing was written."),
                        "401": _UNAUTHORIZED,
                        "409": _error("That id was recalled (code `recalled`); nothing written."),
                        "413": _error("Body too large."),
                        "415": _error("Body is not application/json."),
                    },
                },
            },
            "/api/notifications/{id}": {
                "get": {
                    "operationId": "getNotification",
                    "summary": "Delivery status and counters per channel.",
                    "security": [{"apiKey": []}, {"operatorLink": []}],
                    "parameters": [_path_id("The notification id.", NOTIFICATION_ID)],
                    "responses": {
                        "200": {"description": "Status.", "content": _json("NotificationStatus")},
                        "400": _error("Not a valid notification id."),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such notification."),
                    },
                },
                "delete": {
                    "operationId": "recallNotification",
                    "summary": "Recall: cancel what is not sent, delete sent Teams messages, "
                    "withdraw it from inboxes.",
                    "description": "Nothing of it is sent after this answer (jobs already "
                    "leased included). Sent Teams messages are deleted in the background, "
                    "within each tenant's rate budget (the status's `reasons` count them as "
                    "`skipped:deleted`). Idempotent: a repeat keeps the first recalledAt.",
                    "security": [{"apiKey": []}],
                    "parameters": [_path_id("The notification id.", NOTIFICATION_ID)],
                    "responses": {
                        "200": {"description": "Recalled.", "content": _json("Recall")},
                        "400": _error("Not a valid notification id."),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such notification."),
                    },
                },
            },
            "/api/notifications/{id}/resend": {
                "post": {
                    "operationId": "resendNotification",
                    "summary": "Send it again, as a linked notification, to the people a filter "
                    "picks (failed, dead targets with a new one since, unread after N hours).",
                    "parameters": [_path_id("The notification id.", NOTIFICATION_ID)],
                    "requestBody": {"required": True, "content": _json("ResendRequest")},
                    "responses": {
                        "200": {"description": "Nobody matched; nothing created.",
                                "content": _json("Resent")},
                        "202": {"description": "The linked notification was accepted.",
                                "content": _json("Resent")},
                        "400": _error("Invalid body or id."),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such notification."),
                        "409": _error("It was recalled, or too many people match."),
                        "413": _error("Body too large."),
                        "415": _error("Body is not application/json."),
                    },
                },
            },
            "/api/notifications/{id}/report.csv": {
                "get": {
                    "operationId": "getNotificationReport",
                    "summary": "Per recipient and channel: status, reason, attempts, last error.",
                    "security": [{"apiKey": []}, {"operatorLink": []}],
                    "parameters": [_path_id("The notification id.", NOTIFICATION_ID)],
                    "responses": {
                        "200": {
                            "description": "CSV with a header row: userId, channel, target, "
                            "status, reason, attempts, lastError, updatedAt, readAt, readVia, "
                            "acknowledgedAt, acknowledgedVia. Unknown recipients "
                            "have an empty channel; status uses the counter names. A delivered "
                            "row's reason says how a person without a stored chat was reached "
                            "(`created`, `installed`, `stored`); a failed one why not "
                            "(`not-installable: …`). Channel posts are rows of `team:{teamId}` "
                            "with the channel as target; a part of the audience that could not "
                            "be listed is a skipped row named after it (`group:{id}`, "
                            "`team:{id}`). The last four are the person's (empty until they "
                            "read / acknowledge).",
                            "content": {"text/csv": {"schema": {"type": "string"}}},
                        },
                        "400": _error("Not a valid notification id."),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such notification."),
                    },
                },
            },
            "/api/users/{id}/notifications": {
                "get": {
                    "operationId": "getUserNotifications",
                    "summary": "A user's notification history, newest first.",
                    "parameters": [
                        _path_id("The user's id or alias (email, UPN).", USER_KEY),
                        {
                            "name": "unread",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "boolean", "default": False},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_LIMIT,
                                "default": 50,
                            },
                        },
                    ],
                    "responses": {
                        "200": {"description": "History.", "content": _json("History")},
                        "400": _error("Invalid user id or query (each parameter at most once)."),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such user."),
                    },
                },
            },
            "/api/users/{id}/notifications/read-all": {
                "post": {
                    "operationId": "readAllUserNotifications",
                    "summary": "Mark all of a user's notifications read.",
                    "parameters": [_path_id("The user's id or alias.", USER_KEY)],
                    "responses": {
                        "200": {"description": "Marked.", "content": _json("ReadAll")},
                        "400": _error("Not a valid user id or alias."),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such user."),
                    },
                },
            },
            "/api/users/{id}/preferences": {
                "get": {
                    "operationId": "getUserPreferences",
                    "summary": "A user's preferences (the defaults if they never set any).",
                    "parameters": [
                        _path_id("The user's id or alias.", USER_KEY),
                        {
                            "name": "If-None-Match",
                            "in": "header",
                            "required": False,
                            "description": "ETags the client holds, or `*`: when one matches "
                            "the current version (weak comparison), the answer is 304.",
                            "schema": {"type": "string"},
                        },
                    ],
                    "responses": {
                        "200": _preferences_answer("The preferences and their ETag."),
                        "304": {
                            "description": "Not modified: If-None-Match named the current "
                            "version (or was `*`). No body.",
                            "headers": {"ETag": _ETAG_HEADER},
                        },
                        "400": _error("Not a valid user id or alias."),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such user."),
                    },
                },
                "put": {
                    "operationId": "putUserPreferences",
                    "summary": "Replace a user's preferences, if they are still the version read.",
                    "description": "Optimistic concurrency (RFC 9110): send the ETag from GET in "
                    "If-Match. Without it the answer is 428, with a tag that is no longer "
                    "current 412; either way nothing is written, so two writers never lose "
                    "each other's change.",
                    "parameters": [
                        _path_id("The user's id or alias.", USER_KEY),
                        {
                            "name": "If-Match",
                            "in": "header",
                            "required": True,
                            "description": "The ETag from GET (a comma-separated list matches "
                            "if any tag does; weak tags never match), or `*` for whatever is "
                            "current.",
                            "schema": {"type": "string", "pattern": "[!-~]"},
                        },
                    ],
                    "requestBody": {"required": True, "content": _json("UserPreferences")},
                    "responses": {
                        "200": _preferences_answer("Saved; the new ETag."),
                        "400": _error(
                            "Invalid user id, a body that is not JSON or not an object, or an "
                            "invalid or unknown field; nothing was written."
                        ),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such user."),
                        "412": _error(
                            "If-Match names no current version: the preferences changed since "
                            "they were read. Nothing was written; GET them again."
                        ),
                        "413": _error("Body too large."),
                        "415": _error("Body is not application/json."),
                        "428": _error("No If-Match header (or an empty one); nothing was written."),
                    },
                },
            },
            **push_paths(_json, _error, _UNAUTHORIZED),
            **graph_paths(_json, _error, _UNAUTHORIZED),
            **device_paths(_json, _error, _UNAUTHORIZED),
            **pages_paths(_json, _error, _UNAUTHORIZED),
            **engagement_paths(_json, _error, _UNAUTHORIZED),
            "/api/messages": {
                "post": {
                    "operationId": "postActivity",
                    "summary": "Bot Framework activities (Emulator, Teams, Direct Line).",
                    "security": [],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": {"type": "object"}}},
                    },
                    "responses": {
                        "200": {
                            "description": "Invoke response, or the replies of an activity "
                            "with deliveryMode expectReplies."
                        },
                        "201": {"description": "Processed."},
                        "400": _error(
                            "Not an activity: bad JSON, a malformed field (named), or a "
                            "serviceUrl Herald does not send to. Nothing was stored."
                        ),
                        "401": _error(
                            "Not authenticated: no or a bad Bot Framework token (Bot Framework "
                            "mode; checked before the body is read), or any token in Emulator "
                            "mode."
                        ),
                        "413": _error("Body too large."),
                        "415": _error("Not application/json."),
                        "501": {"description": "An invoke the bot does not handle."},
                        "503": _error(
                            "The Bot Framework's signing keys could not be fetched; try again "
                            "after Retry-After seconds."
                        ),
                    },
                },
            },
            "/healthz": {
                "get": {
                    "operationId": "healthz",
                    "security": [],
                    "responses": {"200": {"description": "Alive.", "content": _json("Health")}},
                }
            },
            "/readyz": {
                "get": {
                    "operationId": "readyz",
                    "security": [],
                    "responses": {
                        "200": {"description": "Ready.", "content": _json("Health")},
                        "503": {"description": "Not ready.", "content": _json("Health")},
                    },
                }
            },
            "/metrics": {
                "get": {
                    "operationId": "metrics",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                }
            },
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "This document.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["openapi", "info", "paths"],
                                    }
                                }
                            },
                        }
                    },
                }
            },
        },
    }


class OpenApi:
    """Serves the document, built once."""

    def __init__(self, routes: RouteTable, version: str = "0.1.0") -> None:
        self._routes = routes
        self._document = build_document(version)

    def routes(self) -> list[Route]:
        return [Route("GET", "/openapi.json", self.get, PUBLIC)]

    async def get(self, request: web.Request) -> web.Response:
        return json_response(self._document)
