"""GET /openapi.json: an OpenAPI 3.1 document of Herald's HTTP API.

Schemas come from the same pydantic models the handlers validate and answer with, so the
document cannot drift from the code; schemathesis checks the running server against it.
"""

from __future__ import annotations

from typing import Any, Literal

from aiohttp import web
from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from api.http import json_response
from api.schemas import ApiError, Event

__all__ = ["OpenApi", "build_document"]

REF = "#/components/schemas/{model}"


class Accepted(BaseModel):
    id: str
    status: Literal["accepted"]
    recipients: int = Field(ge=0)
    version: int = Field(ge=1)
    outcome: Literal["created", "unchanged", "updated"]


class Counters(BaseModel):
    queued: int = Field(ge=0)
    delivered: int = Field(ge=0)
    retrying: int = Field(ge=0)
    skipped: int = Field(ge=0)
    failed: int = Field(ge=0)
    deadTargets: int = Field(ge=0)


class NotificationStatus(BaseModel):
    id: str
    type: str
    title: str
    version: int = Field(ge=1)
    status: Literal["accepted", "delivering", "completed"]
    recipients: int = Field(ge=0)
    createdAt: str
    updatedAt: str
    counters: Counters
    channels: dict[str, Counters]
    reasons: dict[str, int]


class HistoryItem(BaseModel):
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


class History(BaseModel):
    userId: str
    items: list[HistoryItem]


class ReadAll(BaseModel):
    userId: str
    updated: int = Field(ge=0)


class Health(BaseModel):
    status: str
    checks: dict[str, bool] | None = None


_MODELS: list[type[BaseModel]] = [
    Event,
    ApiError,
    Accepted,
    Counters,
    NotificationStatus,
    HistoryItem,
    History,
    ReadAll,
    Health,
]


def _json(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(model=model)}}}


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "content": _json("ApiError")}


_UNAUTHORIZED = _error("No or wrong API key.")


def _path_id(description: str) -> dict[str, Any]:
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": description,
        "schema": {"type": "string", "minLength": 1},
    }


def build_document(version: str = "0.1.0") -> dict[str, Any]:
    _, defs = models_json_schema(
        [(m, "validation" if m is Event else "serialization") for m in _MODELS],
        ref_template=REF,
    )
    schemas: dict[str, Any] = defs.get("$defs", {})
    # What pydantic's validators check but JSON Schema cannot infer from the types.
    recipients = schemas["Recipients"]
    recipients["oneOf"] = [{"required": ["users"]}, {"required": ["all"]}]
    recipients["properties"]["users"] = {
        "type": "array",
        "minItems": 1,
        "maxItems": 10000,
        "items": recipients["properties"]["users"]["anyOf"][0]["items"],
    }
    recipients["properties"]["all"] = {"const": True}
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
        "description": "An Adaptive Card replacing the default card in Teams.",
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
            "securitySchemes": {"apiKey": {"type": "http", "scheme": "bearer"}},
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
                        },
                        "400": _error("Invalid event; nothing was written."),
                        "401": _UNAUTHORIZED,
                        "413": _error("Body too large."),
                        "415": _error("Body is not application/json."),
                    },
                },
            },
            "/api/notifications/{id}": {
                "get": {
                    "operationId": "getNotification",
                    "summary": "Delivery status and counters per channel.",
                    "parameters": [_path_id("The notification id.")],
                    "responses": {
                        "200": {"description": "Status.", "content": _json("NotificationStatus")},
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
                        _path_id("The user's id or alias (email, UPN)."),
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
                                "maximum": 500,
                                "default": 50,
                            },
                        },
                    ],
                    "responses": {
                        "200": {"description": "History.", "content": _json("History")},
                        "400": _error("Invalid query."),
                        "401": _UNAUTHORIZED,
                        "404": _error("No such user."),
                    },
                },
            },
            "/api/users/{id}/notifications/read-all": {
                "post": {
                    "operationId": "readAllUserNotifications",
                    "summary": "Mark all of a user's notifications read.",
                    "parameters": [_path_id("The user's id or alias.")],
                    "responses": {
                        "200": {"description": "Marked.", "content": _json("ReadAll")},
                        "401": _UNAUTHORIZED,
                        "404": _error("No such user."),
                    },
                },
            },
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
                        "200": {"description": "Invoke response."},
                        "201": {"description": "Processed."},
                        "400": _error("Not an activity."),
                        "401": _error("Not authenticated."),
                        "415": _error("Not application/json."),
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
            "/openapi.json": {
                "get": {
                    "operationId": "openapi",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "This document.",
                            "content": {"application/json": {}},
                        }
                    },
                }
            },
        },
    }


class OpenApi:
    """Serves the document, built once."""

    def __init__(self, version: str = "0.1.0") -> None:
        self._document = build_document(version)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/openapi.json", self.get)]

    async def get(self, request: web.Request) -> web.Response:
        return json_response(self._document)
