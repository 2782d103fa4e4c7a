"""The OpenAPI description of /api/devices: its models and paths, merged into /openapi.json.

Kept beside the handlers (api/devices.py), like api/push_openapi.py; api/openapi.py adds these
models to its schema generation and these paths to its document.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.devices import (
    DEVICES_PATH,
    INSTALLATION_ID,
    STABLE_USER_ID_PATTERN,
    DeviceRegistrationBody,
)

__all__ = ["DEVICE_MODELS", "DEVICE_REQUESTS", "device_paths", "document_device_schemas"]

_DATE_TIME: dict[str, Any] = {"format": "date-time"}
_NULL: dict[str, Any] = {"type": "null"}


class _Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")


class TokenRemoved(_Answer):
    """Why and when the installation last lost a push token (until it registers again)."""

    reason: str = Field(
        description="UNREGISTERED or SENDER_ID_MISMATCH (FCM said so), or "
        "moved-to-another-installation (another installation registered the token)."
    )
    at: str = Field(json_schema_extra=_DATE_TIME)


class DeviceInfo(_Answer):
    """A registration as Herald holds it, with its metadata, for support and audits."""

    installationId: str
    userId: str
    platform: Literal["android", "ios", "web"]
    fcmToken: str | None = Field(description="null once FCM said the token is gone.")
    apnsToken: str | None
    appId: str
    appVersion: str
    appBuild: str
    distribution: str
    hardware: str
    os: str
    osVersion: str
    model: str
    language: str
    timeZone: str
    active: bool = Field(description="false when no token is left: nothing reaches it.")
    tokenRemoved: TokenRemoved | None
    createdAt: str = Field(json_schema_extra=_DATE_TIME)
    updatedAt: str = Field(json_schema_extra=_DATE_TIME)


class DeviceList(_Answer):
    userId: str
    items: list[DeviceInfo]


DEVICE_MODELS: list[type[BaseModel]] = [DeviceRegistrationBody, DeviceInfo, DeviceList]
DEVICE_REQUESTS: tuple[type[BaseModel], ...] = (DeviceRegistrationBody,)


def _non_null(schema: dict[str, Any]) -> dict[str, Any]:
    """The non-null branch of pydantic's `anyOf: [X, null]` for an optional field, with what
    the field declares beside the `anyOf` (its pattern, its description)."""
    branches = [b for b in schema.get("anyOf", [schema]) if b != _NULL]
    outer = {k: v for k, v in schema.items() if k not in ("anyOf", "default", "title")}
    return {**branches[0], **outer}


def document_device_schemas(schemas: dict[str, Any]) -> None:
    """Publish the registration as the handler reads it: which token goes with which platform,
    as three closed alternatives (an FCM token for Android and web; for iOS an FCM token, an
    APNs token, or both), rather than two optional fields."""
    name = DeviceRegistrationBody.__name__
    body = schemas[name]
    properties = body["properties"]
    fcm = _non_null(properties["fcmToken"])
    apns = _non_null(properties["apnsToken"])
    common = {k: v for k, v in properties.items() if k not in ("platform", "fcmToken", "apnsToken")}
    required = [k for k in body["required"] if k != "platform"]

    def alternative(
        title: str, platform: dict[str, Any], tokens: dict[str, Any], needs: str, text: str
    ) -> dict[str, Any]:
        return {
            "title": title,
            "description": text,
            "type": "object",
            "properties": {**common, "platform": platform, **tokens},
            "required": [*required, "platform", needs],
            "additionalProperties": False,
        }

    schemas[name] = {
        "title": name,
        "description": "An app installation, whose it is, its push token(s) and metadata. "
        "Registering the same installationId again updates it (tokens, metadata, owner).",
        "oneOf": [
            alternative(
                "AndroidOrWeb",
                {"enum": ["android", "web"]},
                {"fcmToken": fcm, "apnsToken": _NULL},
                "fcmToken",
                "Android and web installations are reached through FCM.",
            ),
            alternative(
                "IosWithFcm",
                {"const": "ios"},
                {"fcmToken": fcm, "apnsToken": {"anyOf": [apns, _NULL]}},
                "fcmToken",
                "An iOS installation with an FCM token (FCM relays to APNs).",
            ),
            alternative(
                "IosApnsOnly",
                {"const": "ios"},
                {"apnsToken": apns, "fcmToken": _NULL},
                "apnsToken",
                "An iOS installation with only an APNs token: kept, but counted as skipped "
                "(apns-not-configured): Herald does not talk to APNs directly.",
            ),
        ],
    }


def device_paths(
    json_content: Callable[[str], dict[str, Any]],
    error: Callable[[str], dict[str, Any]],
    unauthorized: dict[str, Any],
) -> dict[str, Any]:
    """The /api/devices path items, built with the document's own helpers."""
    location = {
        "Location": {
            "description": "Where the registration can be read.",
            "required": True,
            "schema": {"type": "string", "pattern": f"^{DEVICES_PATH}/"},
        }
    }
    who = (
        " Credentials: a backend's API key, or the link token the bot gave the device's "
        "owner (purpose devices), both as Authorization: Bearer."
    )
    installation = {
        "name": "installationId",
        "in": "path",
        "required": True,
        "description": "The installation id it was registered with.",
        "schema": INSTALLATION_ID.json_schema(),
    }
    forbidden = error("A link token for another user than the one named.")
    return {
        DEVICES_PATH: {
            "post": {
                "operationId": "registerDevice",
                "summary": "Register (or update) a mobile app installation.",
                "description": "Idempotent by installationId: the same installation posted "
                "again (same or another user, new token) is updated, never duplicated; a "
                "token another installation held is removed from it. A user Herald has not "
                "met yet is created. The device's timeZone becomes the user's time zone for "
                "quiet hours if they have none. Nothing is stored on any 4xx." + who,
                "requestBody": {
                    "required": True,
                    "content": json_content(DeviceRegistrationBody.__name__),
                },
                "responses": {
                    "200": {
                        "description": "Updated (the installation was registered before).",
                        "content": json_content("DeviceInfo"),
                        "headers": location,
                    },
                    "201": {
                        "description": "Registered.",
                        "content": json_content("DeviceInfo"),
                        "headers": location,
                    },
                    "400": error(
                        "Invalid registration (the field says which): unknown platform, a "
                        "token of the wrong shape, a user id that is not a stable id, no "
                        "token, or an apnsToken for a platform other than ios."
                    ),
                    "401": unauthorized,
                    "403": error(
                        "A link token for another user than userId, or (field installationId, "
                        "fcmToken or apnsToken) an installation or push token of another user: "
                        "only a backend may move those."
                    ),
                    "413": error("Body too large."),
                    "415": error("Body is not application/json."),
                },
            },
            "get": {
                "operationId": "listDevices",
                "summary": "A user's registered installations, with metadata (support, audits).",
                "description": "With a link token, only the token's user's (userId may then be "
                "left out)." + who,
                "parameters": [
                    {
                        "name": "userId",
                        "in": "query",
                        "required": True,
                        "description": "The user's stable id, exactly once.",
                        "schema": {
                            "type": "string",
                            "maxLength": 256,
                            "pattern": STABLE_USER_ID_PATTERN,
                        },
                    }
                ],
                "responses": {
                    "200": {
                        "description": "The installations, oldest first (inactive ones too).",
                        "content": json_content("DeviceList"),
                    },
                    "400": error("No userId (with an API key), more than one, or not a stable id."),
                    "401": unauthorized,
                    "403": forbidden,
                },
            },
        },
        DEVICES_PATH + "/{installationId}": {
            "get": {
                "operationId": "getDevice",
                "summary": "One registration and its metadata." + who,
                "parameters": [installation],
                "responses": {
                    "200": {
                        "description": "The registration.",
                        "content": json_content("DeviceInfo"),
                    },
                    "400": error("Not a valid installation id."),
                    "401": unauthorized,
                    "403": error("A link token for another user than the device's."),
                    "404": error("No such installation."),
                },
            },
            "delete": {
                "operationId": "deleteDevice",
                "summary": "Forget a registration (the app signed out or was removed)." + who,
                "parameters": [installation],
                "responses": {
                    "204": {"description": "Deleted."},
                    "400": error("Not a valid installation id."),
                    "401": unauthorized,
                    "403": error("A link token for another user than the device's."),
                    "404": error("No such installation."),
                },
            },
        },
    }
