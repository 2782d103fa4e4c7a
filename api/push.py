"""Browser push registration: the VAPID public key and /api/push/subscriptions.

The consent page (GET /push/) posts a browser's PushSubscription here. Who it belongs to is
never taken from the request on trust; one of these proves it:

- `token`: the signed, short-lived link token the bot gave one person (purpose "webpush").
  A forged, expired or other-purpose token is a 401; a token for Ada sent with
  `"userId": "grace"` is a 403. Nothing is stored either way.
- `previous`: the endpoint and auth secret of a subscription Herald already holds. Only the
  browser knows that secret (RFC 8291 keeps it between browser and Herald), so its service
  worker can re-register after `pushsubscriptionchange` without a token; the new
  subscription keeps the old one's owner, and the old one is removed.
- a backend's API key with an explicit `userId`.

A token or `previous` acts for its own person only: an endpoint Herald holds for someone else
is a 403 (a shared browser profile is turned off on the page by whoever it belongs to, or moved
by a backend), decided by the store as part of the write.

DELETE works the same way (token, API key, or the subscription's own auth secret, which is
what the page's "turn off" uses), and a token for one person can never remove another's
subscription: the answer is 404, as for one that does not exist. GET lists a user's
subscriptions for support, with an API key only. The endpoints authenticate themselves, so the
API-key middleware lets them through (their routes declare `SELF_AUTHENTICATED`).
"""

from __future__ import annotations

import base64
import hmac
import ipaddress
import re
from typing import Annotated, Any, Final
from urllib.parse import urlsplit

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from pydantic import model_validator as _model_validator

from api.auth import from_backend
from api.http import ApiProblem, error_response, iso, model_response
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
from api.schemas import RecipientKey
from api.users import USER_KEY
from delivery.allowed_hosts import AllowedHosts
from dialogs.channel_links import ChannelLink
from errors import NotOwner
from storage.protocols import UserStore
from storage.subscriptions import PushSubscription, SubscriptionStore, subscription_id

__all__ = [
    "PUSH_PURPOSE",
    "PushApi",
    "PushLinks",
    "PushSubscriptionJson",
    "SubscribeRequest",
    "UnsubscribeRequest",
    "valid_endpoint",
]

PUSH_PURPOSE: Final = "webpush"
"""The link-token purpose of the consent page: such a token registers browsers, nothing else."""

VAPID_KEY_PATH: Final = "/api/push/vapid-public-key"
SUBSCRIPTIONS_PATH: Final = "/api/push/subscriptions"

MAX_ENDPOINT = 2048
MAX_USER_AGENT = 512
_CONTROL = r"\x00-\x1f\x7f-\x9f"
_SPACE = r"\x20\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
ENDPOINT_PATTERN: Final = rf"^https?://[^{_CONTROL}{_SPACE}/?#@]+(?:[/?][^{_CONTROL}{_SPACE}#]*)?$"
"""An absolute http(s) URL without user info, fragment, white space or control characters
(the handler also checks the scheme against the host: see `valid_endpoint`)."""
B64URL_PATTERN: Final = r"^[A-Za-z0-9_-]+={0,2}$"
_B64URL = re.compile(B64URL_PATTERN)
P256DH_PATTERN: Final = "^B[A-P][A-Za-z0-9_-]{84}[AEIMQUYcgkosw048]=?$"
"""Canonical base64url of 65 bytes starting with 0x04 (an uncompressed point), as published;
the handler also checks that the point is on P-256."""
AUTH_PATTERN: Final = "^[A-Za-z0-9_-]{21}[AQgw](==)?$"
"""Canonical base64url of 16 bytes, as published."""
_UNPRINTABLE = re.compile(rf"[{_CONTROL}\u2028\u2029]")


_NULL = {"type": "null"}


class VapidPublicKey(Answer):
    publicKey: str = Field(
        description="Herald's VAPID public key (RFC 8292): the uncompressed P-256 point, "
        "base64url; pass it to pushManager.subscribe() as applicationServerKey.",
        pattern="^B[A-Za-z0-9_-]{86}$",
    )


class PushSubscriptionInfo(Answer):
    """A stored subscription as the API shows it (its keys never leave Herald)."""

    id: str = Field(pattern="^[0-9a-f]{64}$", description="SHA-256 of the endpoint, hex.")
    userId: str
    endpoint: str = Field(max_length=MAX_ENDPOINT)
    expirationTime: float | None = Field(
        ge=0, description="Milliseconds since 1970 when the subscription ends; null: never."
    )
    userAgent: str | None
    createdAt: str = Field(json_schema_extra=DATE_TIME)
    updatedAt: str = Field(json_schema_extra=DATE_TIME)


class PushSubscriptionList(Answer):
    userId: str
    items: list[PushSubscriptionInfo]


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

_OPTIONAL_KEY: list[dict[str, list[str]]] = [{}, {"apiKey": []}]


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def valid_endpoint(url: str) -> str:
    """A push endpoint Herald may post to, or ValueError saying why not.

    https only, except on a loopback host: a push service on the same machine (web-push-testing
    in the tests, a developer's local one) is reached without leaving the host, so there is no
    network path to protect, while http to any other host would send the VAPID token in clear.
    The payload itself is end-to-end encrypted (RFC 8291) either way.
    """
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError as exc:
        raise ValueError(f"endpoint is not a valid URL: {exc}") from None
    host = parts.hostname
    if not host:
        raise ValueError("endpoint must be an absolute URL with a host")
    if parts.username is not None or parts.password is not None or parts.fragment:
        raise ValueError("endpoint must not carry user info or a fragment")
    if parts.scheme == "https":
        return url
    if parts.scheme == "http" and _loopback(host):
        return url
    raise ValueError("endpoint must be an https URL (http only on a loopback host)")


def _b64url_bytes(value: str, what: str) -> bytes:
    if not _B64URL.fullmatch(value):
        raise ValueError(f"{what} must be base64url")
    stripped = value.rstrip("=")
    if len(stripped) % 4 == 1:
        raise ValueError(f"{what} is not valid base64url")
    raw = base64.urlsafe_b64decode(stripped + "=" * (-len(stripped) % 4))
    # One spelling per key: unused low bits set would decode alike but compare differently.
    if _canonical(raw) != stripped:
        raise ValueError(f"{what} is not canonical base64url")
    return raw


def _canonical(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _public_key(value: str) -> str:
    """A browser's p256dh key, checked to be a point on P-256, in unpadded base64url."""
    raw = _b64url_bytes(value, "p256dh")
    if len(raw) != 65 or raw[0] != 4:
        raise ValueError("p256dh must be a 65-byte uncompressed P-256 point (base64url)")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    except ValueError:
        raise ValueError("p256dh is not a point on the P-256 curve") from None
    return _canonical(raw)


def _auth_secret(value: str) -> str:
    """A browser's 16-byte auth secret in unpadded base64url."""
    raw = _b64url_bytes(value, "auth")
    if len(raw) != 16:
        raise ValueError("auth must be 16 bytes (base64url)")
    return _canonical(raw)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Tolerant(BaseModel):
    # What browsers produce (PushSubscription.toJSON()): fields a later browser adds are
    # ignored rather than refused.
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)


Endpoint = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_ENDPOINT, pattern=ENDPOINT_PATTERN)
]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=200)]
AuthSecret = Annotated[
    str,
    StringConstraints(min_length=1, max_length=200),
    Field(
        description="The browser's 16-byte authentication secret, base64url.",
        json_schema_extra={"pattern": AUTH_PATTERN},
    ),
]


class SubscriptionKeys(_Tolerant):
    """The browser's keys for RFC 8291 message encryption."""

    p256dh: Secret = Field(
        description="The browser's P-256 public key: base64url of the 65-byte uncompressed "
        "point (a value that is not a point on the curve is refused with 400).",
        json_schema_extra={"pattern": P256DH_PATTERN},
    )
    auth: AuthSecret

    @field_validator("p256dh")
    @classmethod
    def _point(cls, value: str) -> str:
        return _public_key(value)

    @field_validator("auth")
    @classmethod
    def _secret(cls, value: str) -> str:
        return _auth_secret(value)


class PushSubscriptionJson(_Tolerant):
    """A PushSubscription as the browser's `toJSON()` gives it."""

    endpoint: Endpoint = Field(
        description="The push service URL for this browser: https (http only on a loopback "
        "host, for a push service on the same machine)."
    )
    expiration_time: Annotated[float, Field(strict=True, ge=0)] | None = Field(
        None,
        alias="expirationTime",
        description="When the subscription ends, in milliseconds since 1970 (null: never).",
    )
    keys: SubscriptionKeys

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        return valid_endpoint(value)


UserAgent = Annotated[str, StringConstraints(max_length=MAX_USER_AGENT)]
Token = Annotated[str, StringConstraints(min_length=1, max_length=2048)]


class SubscriptionProof(_Strict):
    """A subscription Herald holds, proven by its auth secret (only its browser knows it)."""

    endpoint: Endpoint
    auth: AuthSecret

    @field_validator("auth")
    @classmethod
    def _secret(cls, value: str) -> str:
        return _auth_secret(value)


class SubscribeRequest(_Strict):
    """The body of POST /api/push/subscriptions."""

    subscription: PushSubscriptionJson
    token: Token | None = Field(None, description="The link token from the bot's link.")
    user_id: RecipientKey | None = Field(
        None,
        alias="userId",
        description="Whose browser this is: required with an API key; with a token it must be "
        "the token's user.",
    )
    previous: SubscriptionProof | None = Field(
        None,
        description="The subscription this one replaces (a service worker's re-registration "
        "after pushsubscriptionchange).",
    )
    user_agent: UserAgent | None = Field(None, alias="userAgent")

    @_model_validator(mode="after")
    def _one_proof(self) -> SubscribeRequest:
        if self.previous is not None and (self.token is not None or self.user_id is not None):
            raise ValueError("previous cannot be combined with token or userId")
        return self


class UnsubscribeRequest(_Strict):
    """The body of DELETE /api/push/subscriptions."""

    endpoint: Endpoint
    token: Token | None = None
    auth: AuthSecret | None = Field(
        None, description="The subscription's own auth secret: proof that this is its browser."
    )
    user_id: RecipientKey | None = Field(None, alias="userId")

    @field_validator("auth")
    @classmethod
    def _secret(cls, value: str | None) -> str | None:
        return None if value is None else _auth_secret(value)

    @_model_validator(mode="after")
    def _one_proof(self) -> UnsubscribeRequest:
        if self.auth is not None and (self.token is not None or self.user_id is not None):
            raise ValueError("auth cannot be combined with token or userId")
        return self


def subscription_answer(subscription: PushSubscription) -> dict[str, Any]:
    """A subscription as the API shows it: never its keys."""
    expiration = subscription.expiration_time
    return {
        "id": subscription.id,
        "userId": subscription.user_id,
        "endpoint": subscription.endpoint,
        "expirationTime": None if expiration is None else expiration * 1000.0,
        "userAgent": subscription.user_agent,
        "createdAt": iso(subscription.created_at),
        "updatedAt": iso(subscription.updated_at),
    }


def _unauthorized(message: str, code: str = "unauthorized") -> ApiProblem:
    return ApiProblem(401, code, message)


class PushLinks:
    """Builds the consent page link the bot gives one person: `{public URL}/push/?token=...`."""

    def __init__(self, tokens: LinkTokens, public_url: str, minutes: int) -> None:
        self._tokens = tokens
        self._base = public_url.rstrip("/")
        self._minutes = minutes

    def link(self, user_id: str) -> ChannelLink:
        token = self._tokens.issue(user_id, PUSH_PURPOSE)  # base64url and ".": URL-safe
        return ChannelLink(
            channel="webpush",
            title="Enable browser notifications",
            url=f"{self._base}/push/?token={token}",
            minutes=self._minutes,
            invitation="To get them as browser notifications, open this link in each browser "
            "that should show them:",
        )


class PushApi:
    """GET the VAPID key; POST, DELETE and (with an API key) GET push subscriptions."""

    def __init__(
        self,
        subscriptions: SubscriptionStore,
        users: UserStore,
        tokens: LinkTokens,
        vapid_public_key: str,
        allowed_hosts: AllowedHosts,
    ) -> None:
        self._allowed_hosts = allowed_hosts
        self._subscriptions = subscriptions
        self._users = users
        self._tokens = tokens
        self._public_key = vapid_public_key

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                VAPID_KEY_PATH,
                self.vapid_public_key,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "getVapidPublicKey",
                    "summary": "Herald's VAPID public key, for pushManager.subscribe().",
                    "security": [],
                    "responses": {
                        "200": {"description": "The key.", "content": json_body(VapidPublicKey)},
                    },
                },
            ),
            Route(
                "POST",
                SUBSCRIPTIONS_PATH,
                self.subscribe,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "postPushSubscription",
                    "summary": "Register a browser's push subscription for one person.",
                    "description": "Proof of whose browser it is: the bot's link token, the "
                    "subscription it replaces, or an API key with userId. The same endpoint "
                    "posted again is updated (200); posted by a backend for another person it "
                    "moves to them (201), while a link token or `previous` cannot take another "
                    "person's endpoint (403). Nothing is stored on any 4xx.",
                    "security": _OPTIONAL_KEY,
                    "responses": {
                        "200": {
                            "description": "Updated (this person had this endpoint already).",
                            "content": json_body(PushSubscriptionInfo),
                        },
                        "201": {
                            "description": "Registered.",
                            "content": json_body(PushSubscriptionInfo),
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
                            "subscription.endpoint) the endpoint is another person's: only a "
                            "backend "
                            "may move it."
                        ),
                        "404": error("userId names no user Herald knows."),
                        "409": error("Removed by a concurrent DELETE while being saved; post "
                        "again."),
                        "413": error("Body too large."),
                        "415": error("Body is not application/json."),
                    },
                },
                body=Body(SubscribeRequest, not_object=_NOT_OBJECT),
            ),
            Route(
                "DELETE",
                SUBSCRIPTIONS_PATH,
                self.unsubscribe,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "deletePushSubscription",
                    "summary": "Remove a browser's push subscription.",
                    "security": _OPTIONAL_KEY,
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
                body=Body(UnsubscribeRequest, not_object=_NOT_OBJECT),
            ),
            Route(
                "GET",
                SUBSCRIPTIONS_PATH,
                self.list_subscriptions,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "getPushSubscriptions",
                    "summary": "A user's browser subscriptions (for support; keys are never "
                    "shown).",
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
                            "content": json_body(PushSubscriptionList),
                        },
                        "400": error("No userId, more than one, or not a valid id."),
                        "401": UNAUTHORIZED,
                        "404": error("No such user."),
                    },
                },
            ),
        ]

    async def vapid_public_key(self, request: web.Request) -> web.Response:
        return model_response(VapidPublicKey, {"publicKey": self._public_key})

    def _token_user(self, token: str, claimed: str | None) -> str:
        try:
            user_id = self._tokens.verify(token, PUSH_PURPOSE)
        except LinkTokenError as exc:
            raise _unauthorized(
                f"the link token is not valid ({exc.reason}); ask the bot for a new link",
                "invalid_token",
            ) from exc
        if claimed is not None and claimed != user_id:
            raise ApiProblem(
                403, "forbidden", "the link token was issued to another user", "userId"
            )
        return user_id

    async def _backend_user(self, request: web.Request, claimed: str | None) -> str | None:
        """The user a backend names, or None when the request has no valid API key."""
        if not from_backend(request):
            return None
        if claimed is None:
            raise ApiProblem(400, "missing_field", "userId is required with an API key", "userId")
        resolved = await self._users.resolve([claimed])
        if claimed not in resolved:
            raise ApiProblem(404, "not_found", f"no user with id or alias {claimed!r}", "userId")
        return resolved[claimed]

    def _check_push_service(self, endpoint: str) -> None:
        """Herald posts to the endpoint it is given: only to push services (hosts and ports)
        the operator allows (WEBPUSH_ALLOWED_HOSTS), so a subscription cannot aim Herald's
        requests elsewhere. The channel checks again before each send."""
        refusal = self._allowed_hosts.refusal(endpoint)
        if refusal is not None:
            raise ApiProblem(400, "invalid_field", refusal, "subscription.endpoint")

    async def subscribe(self, request: web.Request) -> web.Response:
        wanted = await body(request, SubscribeRequest)
        replaced: str | None = None
        backend = False
        if wanted.token is not None:
            user_id = self._token_user(wanted.token, wanted.user_id)
        elif wanted.previous is not None:
            old = await self._subscriptions.get(subscription_id(wanted.previous.endpoint))
            if old is None or not hmac.compare_digest(old.auth, wanted.previous.auth):
                raise _unauthorized(
                    "previous names no subscription Herald holds (or the wrong secret)",
                    "invalid_proof",
                )
            user_id, replaced = old.user_id, old.id
        else:
            backend_user = await self._backend_user(request, wanted.user_id)
            if backend_user is None:
                raise _missing_credentials()
            user_id, backend = backend_user, True
        browser = wanted.subscription
        self._check_push_service(browser.endpoint)
        agent = (
            wanted.user_agent
            if wanted.user_agent is not None
            else request.headers.get("User-Agent")
        )
        record = PushSubscription(
            user_id=user_id,
            endpoint=browser.endpoint,
            p256dh=browser.keys.p256dh,
            auth=browser.keys.auth,
            expiration_time=(
                None if browser.expiration_time is None else browser.expiration_time / 1000.0
            ),
            user_agent=_UNPRINTABLE.sub("", agent)[:MAX_USER_AGENT] if agent else None,
        )
        try:
            # Only a backend moves another person's endpoint; a link token or `previous` acts
            # for its own person, and the store refuses as part of the write.
            outcome = await self._subscriptions.save(record, owner_only=not backend)
        except NotOwner as exc:
            raise ApiProblem(
                403,
                "forbidden",
                "this browser is subscribed for another person; they can turn it off on the "
                "page (or a backend with an API key can move it)",
                "subscription.endpoint",
            ) from exc
        if replaced is not None and replaced != record.id:
            await self._subscriptions.delete(replaced, user_id=user_id)
        saved = await self._subscriptions.get(record.id)
        if saved is None:  # removed between the two statements (a concurrent DELETE)
            raise ApiProblem(409, "conflict", "the subscription was removed meanwhile; post again")
        status = 200 if outcome == "updated" else 201
        return model_response(PushSubscriptionInfo, subscription_answer(saved), status)

    async def unsubscribe(self, request: web.Request) -> web.Response:
        wanted = await body(request, UnsubscribeRequest)
        key = subscription_id(wanted.endpoint)
        found = await self._subscriptions.get(key)
        owner: str | None
        if wanted.token is not None:
            owner = self._token_user(wanted.token, wanted.user_id)
        elif wanted.auth is not None:
            if found is not None and not hmac.compare_digest(found.auth, wanted.auth):
                raise _unauthorized("that is not this subscription's secret", "invalid_proof")
            owner = found.user_id if found is not None else None
        elif from_backend(request):
            owner = None
            if wanted.user_id is not None:
                resolved = await self._users.resolve([wanted.user_id])
                owner = resolved.get(wanted.user_id, wanted.user_id)
        else:
            raise _missing_credentials()
        if found is None or (owner is not None and found.user_id != owner):
            raise ApiProblem(404, "not_found", "no such subscription", "endpoint")
        if not await self._subscriptions.delete(key, user_id=found.user_id):
            raise ApiProblem(404, "not_found", "no such subscription", "endpoint")
        return web.Response(status=204)

    async def list_subscriptions(self, request: web.Request) -> web.Response:
        if not from_backend(request):
            return error_response(
                401,
                "unauthorized",
                "a valid API key is required (Authorization: Bearer <key>)",
                headers={"WWW-Authenticate": 'Bearer realm="herald"'},
            )
        values = request.query.getall("userId", [])
        if len(values) != 1:
            raise ApiProblem(400, "invalid_field", "give userId exactly once", "userId")
        user_id = await self._backend_user(request, _user_key(values[0]))
        assert user_id is not None
        items = await self._subscriptions.for_user(user_id)
        answers = [subscription_answer(s) for s in items]
        return model_response(PushSubscriptionList, {"userId": user_id, "items": answers})


_NOT_OBJECT: Final = "the body is a JSON object"


class _UserQuery(_Strict):
    user_id: RecipientKey = Field(alias="userId")


def _user_key(raw: str) -> str:
    return _UserQuery.model_validate({"userId": raw}).user_id


def _missing_credentials() -> ApiProblem:
    return ApiProblem(
        401,
        "unauthorized",
        "send the link token from the bot (token), the subscription it replaces (previous), "
        "or an API key (Authorization: Bearer <key>) with userId",
    )

