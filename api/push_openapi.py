"""The OpenAPI description of /api/push/*: its models and paths, merged into /openapi.json.

Kept beside the handlers (api/push.py) rather than in api/openapi.py so the browser-push API
is described in one place; api/openapi.py adds these models to its schema generation and these
paths to its document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.push import (
    MAX_ENDPOINT,
    SubscribeRequest,
    UnsubscribeRequest,
)
from api.users import USER_KEY

__all__ = ["PUSH_MODELS", "PUSH_REQUESTS", "document_push_schemas", "push_paths"]

REF = "#/components/schemas/{model}"


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class VapidPublicKey(_Answer):
    publicKey: str = Field(
        description="Herald's VAPID public key (RFC 8292): the uncompressed P-256 point, "
        "base64url; pass it to pushManager.subscribe() as applicationServerKey.",
        pattern="^B[A-Za-z0-9_-]{86}$",
    )


class PushSubscriptionInfo(_Answer):
    """A stored subscription as the API shows it (its keys never leave Herald)."""

    id: str = Field(pattern="^[0-9a-f]{64}$", description="SHA-256 of the endpoint, hex.")
    userId: str
    endpoint: str = Field(max_length=MAX_ENDPOINT)
    expirationTime: float | None = Field(
        ge=0, description="Milliseconds since 1970 when the subscription ends; null: never."
    )
    userAgent: str | None
    createdAt: str = Field(json_schema_extra={"format": "date-time"})
    updatedAt: str = Field(json_schema_extra={"format": "date-time"})


class PushSubscriptionList(_Answer):
    userId: str
    items: list[PushSubscriptionInfo]


PUSH_MODELS: list[type[BaseModel]] = [
    SubscribeRequest,
    UnsubscribeRequest,
    VapidPublicKey,
    PushSubscriptionInfo,
    PushSubscriptionList,
]
PUSH_REQUESTS: tuple[type[BaseModel], ...] = (SubscribeRequest, UnsubscribeRequest)

_NULL = {"type": "null"}


def _alternative(
    title: str, properties: dict[str, Any], required: list[str], description: str
) -> dict[str, Any]:
    return {
        "title": title,
        "description": description,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of pydantic's `anyOf: [X, null]` for an optional field."""
    branches = [b for b in schema.get("anyOf", [schema]) if b != _NULL]
    return dict(branches[0])


def document_push_schemas(schemas: dict[str, Any]) -> None:
    """Publish the request bodies as the handlers read them: exactly one way of proving whose
    browser it is (three closed alternatives), rather than a bag of optional fields."""
    subscribe = schemas["SubscribeRequest"]["properties"]
    token = _non_null(subscribe["token"])
    user_id = _non_null(subscribe["userId"])
    previous = _non_null(subscribe["previous"])
    subscription, agent = subscribe["subscription"], subscribe["userAgent"]
    schemas["SubscribeRequest"] = {
        "title": "SubscribeRequest",
        "description": "A browser's subscription and the proof of whose it is.",
        "oneOf": [
            _alternative(
                "WithLinkToken",
                {
                    "subscription": subscription,
                    "token": token,
                    "userId": {"anyOf": [user_id, _NULL]},
                    "previous": _NULL,
                    "userAgent": agent,
                },
                ["subscription", "token"],
                "From the consent page: the link token the bot gave this person (a userId, if "
                "given, must be the token's).",
            ),
            _alternative(
                "ReplacingASubscription",
                {
                    "subscription": subscription,
                    "previous": previous,
                    "token": _NULL,
                    "userId": _NULL,
                    "userAgent": agent,
                },
                ["subscription", "previous"],
                "From the service worker after pushsubscriptionchange: the subscription this "
                "one replaces, proven by its auth secret; the owner carries over.",
            ),
            _alternative(
                "FromABackend",
                {
                    "subscription": subscription,
                    "userId": user_id,
                    "token": _NULL,
                    "previous": _NULL,
                    "userAgent": agent,
                },
                ["subscription", "userId"],
                "From a backend holding an API key (Authorization: Bearer), for the user named.",
            ),
        ],
    }
    unsubscribe = schemas["UnsubscribeRequest"]["properties"]
    endpoint = unsubscribe["endpoint"]
    auth = _non_null(unsubscribe["auth"])
    schemas["UnsubscribeRequest"] = {
        "title": "UnsubscribeRequest",
        "description": "The endpoint of the subscription to remove and the proof of whose it is.",
        "oneOf": [
            _alternative(
                "WithLinkToken",
                {
                    "endpoint": endpoint,
                    "token": token,
                    "userId": {"anyOf": [user_id, _NULL]},
                    "auth": _NULL,
                },
                ["endpoint", "token"],
                "The token's user's subscription only.",
            ),
            _alternative(
                "WithItsSecret",
                {"endpoint": endpoint, "auth": auth, "token": _NULL, "userId": _NULL},
                ["endpoint", "auth"],
                "The subscription's own auth secret (what the consent page sends).",
            ),
            _alternative(
                "FromABackend",
                {
                    "endpoint": endpoint,
                    "userId": {"anyOf": [user_id, _NULL]},
                    "token": _NULL,
                    "auth": _NULL,
                },
                ["endpoint"],
                "With an API key; with userId, only if the subscription is that user's.",
            ),
        ],
    }


def push_paths(
    json_content: Callable[[str], dict[str, Any]],
    error: Callable[[str], dict[str, Any]],
    unauthorized: dict[str, Any],
) -> dict[str, Any]:
    """The /api/push/* path items, built with the document's own helpers."""
    optional_key: list[dict[str, list[str]]] = [{}, {"apiKey": []}]
    return {
        "/api/push/vapid-public-key": {
            "get": {
                "operationId": "getVapidPublicKey",
                "summary": "Herald's VAPID public key, for pushManager.subscribe().",
                "security": [],
                "responses": {
                    "200": {"description": "The key.", "content": json_content("VapidPublicKey")},
                },
            }
        },
        "/api/push/subscriptions": {
            "post": {
                "operationId": "postPushSubscription",
                "summary": "Register a browser's push subscription for one person.",
                "description": "Proof of whose browser it is: the bot's link token, the "
                "subscription it replaces, or an API key with userId. The same endpoint "
                "posted again is updated (200); posted by a backend for another person it "
                "moves to them (201), while a link token or `previous` cannot take another "
                "person's endpoint (403). Nothing is stored on any 4xx.",
                "security": optional_key,
                "requestBody": {"required": True, "content": json_content("SubscribeRequest")},
                "responses": {
                    "200": {
                        "description": "Updated (this person had this endpoint already).",
                        "content": json_content("PushSubscriptionInfo"),
                    },
                    "201": {
                        "description": "Registered.",
                        "content": json_content("PushSubscriptionInfo"),
                    },
                    "400": error(
                        "Invalid body: not a subscription (an endpoint that is not https, or "
                        "http off loopback; keys that are not a P-256 point and a 16-byte "
                        "secret), or no userId with an API key."
                    ),
                    "401": error(
                        "No credentials, or a forged, expired or other-purpose link token, or "
                        "a `previous` Herald does not hold."
                    ),
                    "403": error(
                        "The link token was issued to another user than userId, or (field "
                        "subscription.endpoint) the endpoint is another person's: only a backend "
                        "may move it."
                    ),
                    "404": error("userId names no user Herald knows."),
                    "409": error("Removed by a concurrent DELETE while being saved; post again."),
                    "413": error("Body too large."),
                    "415": error("Body is not application/json."),
                },
            },
            "delete": {
                "operationId": "deletePushSubscription",
                "summary": "Remove a browser's push subscription.",
                "security": optional_key,
                "requestBody": {"required": True, "content": json_content("UnsubscribeRequest")},
                "responses": {
                    "204": {"description": "Removed."},
                    "400": error("Invalid body."),
                    "401": error(
                        "No credentials, a link token that is not valid, or the wrong secret."
                    ),
                    "403": error("The link token was issued to another user than userId."),
                    "404": error(
                        "No such subscription, or not the user's the token or userId names."
                    ),
                    "413": error("Body too large."),
                    "415": error("Body is not application/json."),
                },
            },
            "get": {
                "operationId": "getPushSubscriptions",
                "summary": "A user's browser subscriptions (for support; keys are never shown).",
                "parameters": [
                    {
                        "name": "userId",
                        "in": "query",
                        "required": True,
                        "description": "The user's id or alias, exactly once.",
                        "schema": USER_KEY.json_schema(),
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The subscriptions, oldest first.",
                        "content": json_content("PushSubscriptionList"),
                    },
                    "400": error("No userId, more than one, or not a valid id."),
                    "401": unauthorized,
                    "404": error("No such user."),
                },
            },
        },
    }
