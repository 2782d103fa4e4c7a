"""Mobile device registration: POST/GET/DELETE /api/devices.

A company's app registers each installation after the user signs in: a stable user id bound to
its push token(s), the installation id, and device metadata for audits (the contract of the
mobile push plugins for Dynamics 365). Registration is an idempotent upsert keyed by
`installationId`: the same installation posted again (by its user, or by a backend for another
user, with a new token) is updated, never duplicated, and a token that moves to another
installation is taken away from the one that had it.

Who may call: a backend with an API key (any user), or the app itself with the signed,
short-lived link token the bot gave one person (purpose "devices"), sent as
`Authorization: Bearer <token>`; such a token registers, lists, reads and deletes that person's
devices only (403 otherwise): an installation registered to another user, or a push token
another user's installation holds, is refused with 403 and nothing is written. Moving an
installation or a token between users takes a backend. The endpoints check credentials
themselves, so their routes declare `SELF_AUTHENTICATED`: the middleware lets them through.

A device may register before its user ever talked to the bot: the user record is created then
(with a stable id only: an Entra object id or `{channelId}:{id}`, never an alias), so pushes
reach the phone at once; the chat, aliases and name follow when the person first talks to the
bot. The device's `timeZone` becomes the user's time zone for quiet hours if they have none.
"""

from __future__ import annotations

import logging
import re
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote

from aiohttp import web
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
    field_validator,
)

from api.auth import from_backend
from api.http import ApiProblem, iso, model_response, path_param
from api.link_tokens import LinkTokenError, LinkTokens
from api.routing import (
    DATE_TIME,
    SELF_AUTHENTICATED,
    UNAUTHORIZED,
    Answer,
    Body,
    Route,
    body,
    error,
    json_body,
)
from api.schemas import first_problem
from errors import NotOwner
from preferences.service import PreferencesService
from storage.devices import DEVICE_METADATA, DeviceRecord, DeviceRegistration, DeviceStore
from storage.protocols import UserStore
from storage.records import UserRecord

__all__ = [
    "APNS_TOKEN_PATTERN",
    "DEVICES_PATH",
    "DEVICES_PURPOSE",
    "FCM_TOKEN_PATTERN",
    "INSTALLATION_ID",
    "INSTALLATION_ID_PATTERN",
    "STABLE_USER_ID_PATTERN",
    "DeviceRegistrationBody",
    "DevicesApi",
    "device_answer",
]

log = logging.getLogger(__name__)

DEVICES_PURPOSE: Final = "devices"
"""The link-token purpose for device registration: such a token registers devices, nothing else."""
DEVICES_PATH: Final = "/api/devices"
DEVICE_PATH: Final = DEVICES_PATH + "/{installationId}"

# Patterns use explicit character classes only (see api/schemas.py): pydantic, Python's re and
# ECMA-262 (the OpenAPI document, clients) read them alike.
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_SPACE = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_VISIBLE = rf"[^{_CONTROL}{_SPACE}]"
_PRINTABLE = rf"[^{_CONTROL}\u2028\u2029]"
_GUID = "[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"

STABLE_USER_ID_PATTERN: Final = (
    rf"^(?:{_GUID}|[a-z0-9][a-z0-9._-]{{0,63}}:{_VISIBLE}(?:{_PRINTABLE}*{_VISIBLE})?)$"
)
"""Herald's user key (DESIGN: Identity): an Entra object id, or `{channelId}:{from.id}`.
Aliases (email, UPN) are refused: they can change hands, an installation must not."""
INSTALLATION_ID_PATTERN: Final = "^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$"
"""An app installation id (a Firebase installation id, a UUID, ...): URL-safe, ≤ 200."""
FCM_TOKEN_PATTERN: Final = "^[A-Za-z0-9_:-]{100,4096}$"
"""An FCM registration token: a long opaque string (typically 140-200+ characters)."""
APNS_TOKEN_PATTERN: Final = "^(?:[0-9A-Fa-f]{2}){32,100}$"
"""An APNs device token as hex (32 bytes today; Apple says lengths may grow, up to 100)."""
_TEXT_PATTERN = rf"^{_PRINTABLE}*$"
MAX_TEXT = 200

_STABLE_USER_ID = re.compile(STABLE_USER_ID_PATTERN)
_INSTALLATION_ID = re.compile(INSTALLATION_ID_PATTERN)
_FCM_TOKEN = re.compile(FCM_TOKEN_PATTERN)
_APNS_TOKEN = re.compile(APNS_TOKEN_PATTERN)
_HEX_64 = re.compile("[0-9A-Fa-f]{64}")
_TEXT = re.compile(_TEXT_PATTERN)
_GUID_RE = re.compile(_GUID)

INSTALLATION_ID: TypeAdapter[str] = TypeAdapter(
    Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=INSTALLATION_ID_PATTERN)]
)
"""The rule for an installation id in a path: the same as in a registration."""


_NULL: dict[str, Any] = {"type": "null"}


class TokenRemoved(Answer):
    """Why and when the installation last lost a push token (until it registers again)."""

    reason: str = Field(
        description="UNREGISTERED or SENDER_ID_MISMATCH (FCM said so), or "
        "moved-to-another-installation (another installation registered the token)."
    )
    at: str = Field(json_schema_extra=DATE_TIME)


class DeviceInfo(Answer):
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
    createdAt: str = Field(json_schema_extra=DATE_TIME)
    updatedAt: str = Field(json_schema_extra=DATE_TIME)


class DeviceList(Answer):
    userId: str
    items: list[DeviceInfo]


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

_LOCATION = {
    "Location": {
        "description": "Where the registration can be read.",
        "required": True,
        "schema": {"type": "string", "pattern": f"^{DEVICES_PATH}/"},
    }
}
_WHO = (
    " Credentials: a backend's API key, or the link token the bot gave the device's "
    "owner (purpose devices), both as Authorization: Bearer."
)
_INSTALLATION = {
    "name": "installationId",
    "in": "path",
    "required": True,
    "description": "The installation id it was registered with.",
    "schema": INSTALLATION_ID.json_schema(),
}
_FORBIDDEN = error("A link token for another user than the one named.")


def _stable_user_id(value: str) -> str:
    if len(value) > 256 or not _STABLE_USER_ID.fullmatch(value):
        raise ValueError(
            "must be a stable user id: an Entra object id (GUID) or {channelId}:{id} "
            "(e.g. msteams:29:1abc), not an alias such as an email address"
        )
    # Teams gives Entra object ids in lower case; one spelling per person.
    return value.lower() if _GUID_RE.fullmatch(value) else value


def _text(value: str) -> str:
    if not _TEXT.fullmatch(value):
        raise ValueError("must not hold control characters or line breaks")
    return value


def _user_id_field(description: str) -> Any:
    return Field(
        alias="userId",
        max_length=256,
        description=description,
        json_schema_extra={"pattern": STABLE_USER_ID_PATTERN},
    )


def _meta(description: str, *, alias: str | None = None, min_length: int = 0) -> Any:
    """A metadata string field: printable, at most MAX_TEXT characters."""
    return Field(
        alias=alias,
        min_length=min_length,
        max_length=MAX_TEXT,
        description=description,
        json_schema_extra={"pattern": _TEXT_PATTERN},
    )


class DeviceRegistrationBody(BaseModel):
    """The body of POST /api/devices."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    user_id: str = _user_id_field(
        "Whose device this is: an Entra object id or {channelId}:{id} (never an alias)."
    )
    installation_id: str = Field(
        alias="installationId",
        min_length=1,
        max_length=200,
        description="The app installation; registering it again updates it.",
        json_schema_extra={"pattern": INSTALLATION_ID_PATTERN},
    )
    platform: Literal["android", "ios", "web"]
    fcm_token: str | None = Field(
        None,
        alias="fcmToken",
        max_length=4096,
        description="The FCM registration token (required unless an iOS device sends apnsToken).",
        json_schema_extra={"pattern": FCM_TOKEN_PATTERN},
    )
    apns_token: str | None = Field(
        None,
        alias="apnsToken",
        max_length=200,
        description="The APNs device token, hex (iOS only).",
        json_schema_extra={"pattern": APNS_TOKEN_PATTERN},
    )
    app_id: str = _meta("The app's id, e.g. com.contoso.field.", alias="appId", min_length=1)
    app_version: str = _meta("e.g. 4.2.0", alias="appVersion")
    app_build: str = _meta("e.g. 4207", alias="appBuild")
    distribution: str = _meta("How the app was installed, e.g. store, enterprise, testflight.")
    hardware: str = _meta("e.g. arm64")
    os: str = _meta("e.g. iOS, Android")
    os_version: str = _meta("e.g. 17.5", alias="osVersion")
    model: str = _meta("e.g. iPhone15,2")
    language: str = _meta("The app's language, e.g. de-DE.")
    time_zone: str = _meta(
        "The device's IANA time zone (e.g. Europe/Berlin): it becomes the user's time zone "
        "for quiet hours if they have not set one (a name Herald does not know is kept here, "
        "not adopted).",
        alias="timeZone",
    )

    @field_validator("user_id")
    @classmethod
    def _user(cls, value: str) -> str:
        return _stable_user_id(value)

    @field_validator("installation_id")
    @classmethod
    def _installation(cls, value: str) -> str:
        if not _INSTALLATION_ID.fullmatch(value):
            raise ValueError(
                "must be letters, digits and . _ : - (starting with a letter or digit)"
            )
        return value

    @field_validator("fcm_token")
    @classmethod
    def _fcm(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if _HEX_64.fullmatch(value):
            raise ValueError("this is an APNs device token, not an FCM token: send it as apnsToken")
        if not _FCM_TOKEN.fullmatch(value):
            raise ValueError(
                "is not an FCM registration token (100 to 4,096 characters of A-Z a-z 0-9 _ : -)"
            )
        return value

    @field_validator("apns_token")
    @classmethod
    def _apns(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _APNS_TOKEN.fullmatch(value):
            raise ValueError("is not an APNs device token (hex, 64 to 200 digits)")
        return value.lower()

    @field_validator(
        "app_id",
        "app_version",
        "app_build",
        "distribution",
        "hardware",
        "os",
        "os_version",
        "model",
        "language",
        "time_zone",
    )
    @classmethod
    def _printable(cls, value: str) -> str:
        return _text(value)

    def metadata(self) -> dict[str, str]:
        dumped = self.model_dump(by_alias=True)
        return {name: dumped[name] for name in DEVICE_METADATA}


class _UserQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user_id: str = Field(alias="userId", max_length=256)

    @field_validator("user_id")
    @classmethod
    def _user(cls, value: str) -> str:
        return _stable_user_id(value)


def device_answer(device: DeviceRecord) -> dict[str, Any]:
    """A registration as the API shows it: the body it was registered with, plus its state."""
    answer: dict[str, Any] = {
        "installationId": device.installation_id,
        "userId": device.user_id,
        "platform": device.platform,
        "fcmToken": device.fcm_token,
        "apnsToken": device.apns_token,
    }
    answer.update({name: device.metadata.get(name, "") for name in DEVICE_METADATA})
    removed = device.token_removed
    answer.update(
        {
            "active": device.active,
            "tokenRemoved": (
                None if removed is None else {"reason": removed.reason, "at": iso(removed.at)}
            ),
            "createdAt": iso(device.created_at),
            "updatedAt": iso(device.updated_at),
        }
    )
    return answer


def _user_channel(user_id: str) -> str:
    """The channel a device-registered user is recorded under: the id's own prefix, or Teams
    for an Entra object id (the channel that gives those)."""
    channel, colon, _ = user_id.partition(":")
    return channel if colon else "msteams"


_BACKEND: Final = None


class DevicesApi:
    """POST, GET and DELETE /api/devices for backends (API key) and apps (link token)."""

    def __init__(
        self,
        devices: DeviceStore,
        users: UserStore,
        preferences: PreferencesService,
        tokens: LinkTokens,
    ) -> None:
        self._devices = devices
        self._users = users
        self._preferences = preferences
        self._tokens = tokens

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                DEVICES_PATH,
                self.register,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "registerDevice",
                    "summary": "Register (or update) a mobile app installation.",
                    "description": "Idempotent by installationId: the same installation posted "
                    "again (same or another user, new token) is updated, never duplicated; a "
                    "token another installation held is removed from it. A user Herald has not "
                    "met yet is created. The device's timeZone becomes the user's time zone for "
                    "quiet hours if they have none. Nothing is stored on any 4xx." + _WHO,
                    "responses": {
                        "200": {
                            "description": "Updated (the installation was registered before).",
                            "content": json_body(DeviceInfo),
                            "headers": _LOCATION,
                        },
                        "201": {
                            "description": "Registered.",
                            "content": json_body(DeviceInfo),
                            "headers": _LOCATION,
                        },
                        "400": error(
                            "Invalid registration (the field says which): unknown platform, a "
                            "token of the wrong shape, a user id that is not a stable id, no "
                            "token, or an apnsToken for a platform other than ios."
                        ),
                        "401": UNAUTHORIZED,
                        "403": error(
                            "A link token for another user than userId, or (field installationId, "
                            "fcmToken or apnsToken) an installation or push token of another user: "
                            "only a backend may move those."
                        ),
                        "413": error("Body too large."),
                        "415": error("Body is not application/json."),
                    },
                },
                body=Body(DeviceRegistrationBody, not_object="the registration is a JSON object"),
            ),
            Route(
                "GET",
                DEVICES_PATH,
                self.list_devices,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "listDevices",
                    "summary": "A user's registered installations, with metadata (support, "
                    "audits).",
                    "description": "With a link token, only the token's user's (userId may then be "
                    "left out)." + _WHO,
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
                            "content": json_body(DeviceList),
                        },
                        "400": error("No userId (with an API key), more than one, or not a stable "
                        "id."),
                        "401": UNAUTHORIZED,
                        "403": _FORBIDDEN,
                    },
                },
            ),
            Route(
                "GET",
                DEVICE_PATH,
                self.get_device,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "getDevice",
                    "summary": "One registration and its metadata." + _WHO,
                    "parameters": [_INSTALLATION],
                    "responses": {
                        "200": {
                            "description": "The registration.",
                            "content": json_body(DeviceInfo),
                        },
                        "400": error("Not a valid installation id."),
                        "401": UNAUTHORIZED,
                        "403": error("A link token for another user than the device's."),
                        "404": error("No such installation."),
                    },
                },
            ),
            Route(
                "DELETE",
                DEVICE_PATH,
                self.delete_device,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "deleteDevice",
                    "summary": "Forget a registration (the app signed out or was removed)." + _WHO,
                    "parameters": [_INSTALLATION],
                    "responses": {
                        "204": {"description": "Deleted."},
                        "400": error("Not a valid installation id."),
                        "401": UNAUTHORIZED,
                        "403": error("A link token for another user than the device's."),
                        "404": error("No such installation."),
                    },
                },
            ),
        ]

    def _caller(self, request: web.Request) -> str | None:
        """None for a backend (API key or Entra ID token), else a valid link token's user id."""
        header = request.headers.get("Authorization")
        if from_backend(request):
            return _BACKEND
        scheme, _, credential = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise _unauthorized(
                "send an API key or the link token from the bot (Authorization: Bearer ...)"
            )
        try:
            return self._tokens.verify(credential.strip(), DEVICES_PURPOSE)
        except LinkTokenError as exc:
            raise _unauthorized(
                f"neither an API key nor a valid link token ({exc.reason}); ask the bot for a "
                "new link",
                invalid_token=True,
            ) from exc

    @staticmethod
    def _own(caller: str | None, user_id: str, field: str) -> None:
        if caller is not _BACKEND and caller != user_id:
            raise ApiProblem(403, "forbidden", "the link token was issued to another user", field)

    async def register(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        registration = await body(request, DeviceRegistrationBody)
        if registration.fcm_token is None and registration.apns_token is None:
            raise ApiProblem(
                400, "missing_field", "give fcmToken (or, for iOS, apnsToken)", "fcmToken"
            )
        if registration.apns_token is not None and registration.platform != "ios":
            raise ApiProblem(
                400, "invalid_field", "apnsToken is for platform ios only", "apnsToken"
            )
        user_id = registration.user_id
        self._own(caller, user_id, "userId")
        try:
            # A link token acts for its user only: another user's installation or token is
            # refused by the store, in the same step as the write (nothing is written).
            outcome = await self._devices.upsert(
                DeviceRegistration(
                    installation_id=registration.installation_id,
                    user_id=user_id,
                    platform=registration.platform,
                    fcm_token=registration.fcm_token,
                    apns_token=registration.apns_token,
                    metadata=registration.metadata(),
                ),
                owner_only=caller is not _BACKEND,
            )
        except NotOwner as exc:
            raise ApiProblem(
                403,
                "forbidden",
                f"{exc}: only its owner, or a backend with an API key, may move it",
                exc.field,
            ) from exc
        if await self._users.upsert_user(UserRecord(user_id, _user_channel(user_id))):
            log.info("user %s created by a device registration", user_id)
        if outcome.previous_user_id is not None:
            log.info(
                "installation %s moved from user %s to %s",
                registration.installation_id,
                outcome.previous_user_id,
                user_id,
            )
        if outcome.displaced:
            log.info(
                "installation %s took its token from %d other installation(s)",
                registration.installation_id,
                len(outcome.displaced),
            )
        if registration.time_zone:
            await self._preferences.adopt_time_zone(user_id, registration.time_zone)
        return model_response(
            DeviceInfo,
            device_answer(outcome.device),
            201 if outcome.created else 200,
            headers={"Location": _location(outcome.device.installation_id)},
        )

    async def list_devices(self, request: web.Request) -> web.Response:
        caller = self._caller(request)
        values = request.query.getall("userId", [])
        if len(values) > 1:
            raise ApiProblem(400, "invalid_field", "userId may be given only once", "userId")
        if values:
            try:
                user_id = _UserQuery.model_validate({"userId": values[0]}).user_id
            except ValidationError as exc:
                raise ApiProblem(
                    400, "invalid_field", first_problem(exc).message, "userId"
                ) from exc
            self._own(caller, user_id, "userId")
        elif caller is _BACKEND:
            raise ApiProblem(400, "missing_field", "userId is required with an API key", "userId")
        else:
            user_id = caller
        devices = await self._devices.for_user(user_id)
        items = [device_answer(d) for d in devices]
        return model_response(DeviceList, {"userId": user_id, "items": items})

    async def _device(self, request: web.Request) -> DeviceRecord:
        caller = self._caller(request)
        installation_id = path_param(request, "installationId", INSTALLATION_ID)
        device = await self._devices.get(installation_id)
        if device is None:
            raise ApiProblem(404, "not_found", "no such installation", "installationId")
        self._own(caller, device.user_id, "installationId")
        return device

    async def get_device(self, request: web.Request) -> web.Response:
        return model_response(DeviceInfo, device_answer(await self._device(request)))

    async def delete_device(self, request: web.Request) -> web.Response:
        device = await self._device(request)
        # Only if it is still that owner's (it may have moved since it was read).
        if not await self._devices.delete(device.installation_id, user_id=device.user_id):
            raise ApiProblem(404, "not_found", "no such installation", "installationId")
        log.info("installation %s of user %s deleted", device.installation_id, device.user_id)
        return web.Response(status=204)


def _location(installation_id: str) -> str:
    return f"{DEVICES_PATH}/{quote(installation_id, safe=':')}"


def _unauthorized(message: str, *, invalid_token: bool = False) -> web.HTTPUnauthorized:
    challenge = 'Bearer realm="herald"' + (', error="invalid_token"' if invalid_token else "")
    return web.HTTPUnauthorized(
        text=message, headers={"WWW-Authenticate": challenge}, content_type="text/plain"
    )
