"""Stand-ins for Microsoft Entra ID (token endpoint) and Microsoft Graph, on loopback over TLS.

`EntraStandIn` serves what msal needs for the client-credentials flow: the tenant's OpenID
configuration and its v2.0 token endpoint, answering errors the way Entra ID does (a wrong secret
is `401 invalid_client` with an AADSTS code). Besides the Graph app it knows APIs (`add_api`:
an app registration exposing app roles) and client apps with roles assigned on them
(`add_client`); a token for such an API is an RS256 v2.0 access token (`iss`, `aud` = the API's
client id, `azp`, `tid`, `oid`, `roles`, `exp`...) signed with a key the tenant publishes at
`jwks_uri`. Keys roll over on demand (`rotate_keys`), and tests can sign tokens of any shape
(`sign`, `access_token`) to check what Herald refuses.

`GraphStandIn` serves the part of Microsoft Graph Herald uses, and behaves like Graph where it
matters:

* every call needs a bearer token the Entra stand-in issued for the Graph scope (401 otherwise);
* `POST /subscriptions` validates the subscription first: it POSTs
  `notificationUrl?validationToken=...` (and the lifecycle URL) and creates nothing unless the
  answer is `200 text/plain` with the token echoed exactly, within the validation timeout
  (Graph's 10 s); the expiration may be at most 4,230 minutes (Outlook events) ahead of the
  stand-in's clock and must be in the future, `clientState` at most 128 characters;
* `GET /subscriptions` lists the app's subscriptions with `clientState: null` (Graph never
  shows it back), paged with `@odata.nextLink`; `PATCH` renews, `DELETE` removes; a subscription
  whose expiration passed is gone (404), as Graph deletes expired ones;
* calendars: `GET /users/{id}/events/{id}` and `GET /users/{id}/calendarView/delta` (pages,
  `@odata.nextLink` / `@odata.deltaLink`, `@removed` entries, 410 for a forgotten delta token);
* on demand, the next N calls answer 429 (or 503) with `Retry-After`.

Tests drive it: they change events (`add_event`, `update_event`, `touch_event`,
`delete_event`), deliver change notifications the way Outlook does (`notify`, several copies per
edit if asked) and lifecycle notifications (`lifecycle`), and control time with `ManualClock`.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import re
import secrets
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Final
from urllib.parse import quote, urlsplit

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.peers.tls import SelfSigned

__all__ = [
    "GRAPH_SCOPE",
    "MAX_EVENT_MINUTES",
    "Delivery",
    "EntraStandIn",
    "GraphStandIn",
    "ManualClock",
    "Recorded",
]

GRAPH_SCOPE: Final = "https://graph.microsoft.com/.default"
MAX_EVENT_MINUTES: Final = 4230
"""Graph's longest subscription lifetime for Outlook events (minutes)."""
_RESOURCE: Final = re.compile(r"/?users/([^/]+)/events", re.IGNORECASE)
_LOOPBACK: Final = frozenset({"127.0.0.1", "localhost", "::1"})


class ManualClock:
    """Time that moves only when a test says so (starts at the real time)."""

    def __init__(self, start: float | None = None) -> None:
        self._now = time.time() if start is None else start

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> float:
        self._now += seconds
        return self._now


def _iso(epoch: float) -> str:
    """Graph's form: UTC with 7 fractional digits and a Z."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _graph_time(moment: datetime) -> dict[str, str]:
    """A dateTimeTimeZone as Graph answers with `Prefer: outlook.timezone="UTC"`."""
    return {
        "dateTime": moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.0000000"),
        "timeZone": "UTC",
    }


def _parse_time(text: str) -> float:
    """An ISO 8601 date-time with an offset (Graph takes 7 fractional digits too)."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise ValueError("no offset")
    return moment.timestamp()


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "innerError": {"request-id": str(uuid.uuid4()), "date": _iso(time.time())[:19]},
        }
    }
    return web.json_response(body, status=status, headers=headers)


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request a stand-in answered."""

    method: str
    path: str
    query: dict[str, str]
    status: int
    at: float
    """The stand-in's clock (monotonic wall time for the Entra stand-in)."""
    real: float = field(default_factory=time.monotonic)
    body: Any = None


@dataclass(frozen=True, slots=True)
class Delivery:
    """A POST the Graph stand-in made to Herald (validation, change or lifecycle)."""

    kind: str
    url: str
    body: Any
    status: int
    elapsed: float
    text: str = ""
    content_type: str = ""


async def _serve(app: web.Application, tls: SelfSigned) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app, handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=tls.server_context())
    await site.start()
    host, port = runner.addresses[0][:2]
    return runner, f"https://{host}:{port}"


class EntraStandIn:
    """The Entra ID endpoints msal's client-credentials flow calls, for one app registration."""

    def __init__(
        self,
        tls: SelfSigned,
        *,
        tenant: str = "contoso-tenant",
        client_id: str = "herald-graph-app",
        client_secret: str = "graph-secret-value",
        token_seconds: int = 3599,
    ) -> None:
        self.tls = tls
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.token_seconds = token_seconds
        self.url = ""
        self.requests: list[Recorded] = []
        self._tokens: dict[str, tuple[float, str]] = {}
        self._runner: web.AppRunner | None = None
        self._clients: dict[str, tuple[str, dict[str, tuple[str, ...]]]] = {
            client_id: (client_secret, {})
        }
        """client id -> (secret, {API client id: roles assigned to the client on it})."""
        self._apis: dict[str, str] = {}
        """Application ID URI or client id -> the API's client id (a token's `aud`)."""
        self._keys: list[tuple[str, rsa.RSAPrivateKey]] = []
        """Signing keys, newest last; made when first needed (RSA keys take a moment)."""

    # --- APIs, clients, keys and tokens (Herald's own API, for Entra ID bearer auth) ---------

    def add_api(self, client_id: str, app_id_uri: str | None = None) -> None:
        """An app registration exposing an API (scope `{uri or client id}/.default`)."""
        self._apis[client_id] = client_id
        if app_id_uri:
            self._apis[app_id_uri] = client_id

    def add_client(self, client_id: str, secret: str, roles: dict[str, tuple[str, ...]]) -> None:
        """A backend's app registration, with app roles assigned to it per API client id."""
        self._clients[client_id] = (secret, dict(roles))

    def rotate_keys(self, *, keep_old: bool = True) -> str:
        """Sign with a new key from now on (publishing the old one too, unless told not to, as
        Entra ID does during a rollover); returns the new key id."""
        kid = f"key-{len(self._keys) + 1}-{secrets.token_hex(4)}"
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._keys = [*(self._keys if keep_old else []), (kid, key)]
        return kid

    @property
    def issuer(self) -> str:
        return f"{self.url}/{self.tenant}/v2.0"

    def _current_key(self) -> tuple[str, rsa.RSAPrivateKey]:
        if not self._keys:
            self.rotate_keys()
        return self._keys[-1]

    def jwks(self) -> dict[str, Any]:
        self._current_key()
        keys = []
        for kid, key in self._keys:
            jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
            keys.append({**jwk, "kid": kid, "use": "sig", "x5t": kid, "issuer": self.issuer})
        return {"keys": keys}

    def sign(
        self,
        claims: dict[str, Any],
        *,
        key: rsa.RSAPrivateKey | None = None,
        kid: str | None = None,
        algorithm: str = "RS256",
        omit_kid: bool = False,
    ) -> str:
        """A JWT with these claims, signed with the current key (or the one given)."""
        current_kid, current_key = self._current_key()
        headers = {"typ": "JWT"} if omit_kid else {"typ": "JWT", "kid": kid or current_kid}
        secret: Any = key or current_key
        if algorithm.startswith("HS"):
            secret = b"a shared secret of at least thirty-two bytes!"
        return jwt.encode(claims, secret, algorithm=algorithm, headers=headers)

    def access_token(
        self, client_id: str, audience: str, roles: tuple[str, ...] = (), **overrides: Any
    ) -> str:
        """An access token as Entra ID issues it to `client_id` for the API `audience`."""
        now = int(time.time())
        claims: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer,
            "iat": now,
            "nbf": now,
            "exp": now + self.token_seconds,
            "azp": client_id,
            "azpacr": "1",
            "oid": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
            "sub": str(uuid.uuid5(uuid.NAMESPACE_URL, client_id)),
            "tid": self.tenant,
            "ver": "2.0",
            "uti": secrets.token_urlsafe(16),
        }
        if roles:
            claims["roles"] = list(roles)
        claims.update(overrides)
        return self.sign({k: v for k, v in claims.items() if v is not None})

    @property
    def token_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path.endswith("/oauth2/v2.0/token")]

    def valid(self, token: str, scope: str = GRAPH_SCOPE) -> bool:
        issued = self._tokens.get(token)
        return issued is not None and issued[0] > time.time() and issued[1] == scope

    def revoke_all(self) -> None:
        self._tokens.clear()

    async def __aenter__(self) -> EntraStandIn:
        app = web.Application(middlewares=[self._record])
        app.router.add_get("/{tenant}/v2.0/.well-known/openid-configuration", self._openid)
        app.router.add_post("/{tenant}/oauth2/v2.0/token", self._token)
        app.router.add_get("/{tenant}/discovery/v2.0/keys", self._jwks)
        self._runner, self.url = await _serve(app, self.tls)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    @web.middleware
    async def _record(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        response: web.StreamResponse = await handler(request)
        body = dict(await request.post()) if request.method == "POST" else None
        if body and "client_secret" in body:
            body["client_secret"] = "***"
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                response.status,
                time.time(),
                body=body,
            )
        )
        return response

    def _tenant_error(self, tenant: str) -> web.Response:
        return web.json_response(
            {
                "error": "invalid_request",
                "error_description": f"AADSTS90002: Tenant '{tenant}' not found.",
                "error_codes": [90002],
            },
            status=400,
        )

    async def _openid(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant != self.tenant:
            return self._tenant_error(tenant)
        base = f"{self.url}/{tenant}"
        return web.json_response(
            {
                "token_endpoint": f"{base}/oauth2/v2.0/token",
                "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                "issuer": f"{base}/v2.0",
                "jwks_uri": f"{base}/discovery/v2.0/keys",
                "id_token_signing_alg_values_supported": ["RS256"],
                "response_types_supported": ["code", "id_token", "code id_token", "token"],
                "token_endpoint_auth_methods_supported": ["client_secret_post"],
            }
        )

    async def _jwks(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant != self.tenant:
            return self._tenant_error(tenant)
        return web.json_response(self.jwks())

    async def _token(self, request: web.Request) -> web.Response:
        tenant = request.match_info["tenant"]
        if tenant != self.tenant:
            return self._tenant_error(tenant)
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            return web.json_response(
                {"error": "unsupported_grant_type", "error_codes": [70003]}, status=400
            )
        client = self._clients.get(str(form.get("client_id")))
        if client is None:
            return web.json_response(
                {
                    "error": "unauthorized_client",
                    "error_description": f"AADSTS700016: Application with identifier "
                    f"'{form.get('client_id')}' was not found in the directory.",
                    "error_codes": [700016],
                },
                status=400,
            )
        if form.get("client_secret") != client[0]:
            return web.json_response(
                {
                    "error": "invalid_client",
                    "error_description": "AADSTS7000215: Invalid client secret provided.",
                    "error_codes": [7000215],
                },
                status=401,
            )
        scopes = str(form.get("scope", "")).split()
        resource_scopes = [s for s in scopes if s.endswith("/.default")]
        if len(resource_scopes) != 1:
            return web.json_response(
                {
                    "error": "invalid_scope",
                    "error_description": "AADSTS1002012: The provided value for scope is not "
                    "valid. Client credential flows must have a scope value with /.default.",
                    "error_codes": [1002012],
                },
                status=400,
            )
        resource = resource_scopes[0].removesuffix("/.default")
        if resource_scopes[0] != GRAPH_SCOPE:
            api = self._apis.get(resource)
            if api is None:
                return web.json_response(
                    {
                        "error": "invalid_resource",
                        "error_description": f"AADSTS500011: The resource principal named "
                        f"{resource} was not found in the tenant named {self.tenant}.",
                        "error_codes": [500011],
                    },
                    status=400,
                )
            roles = client[1].get(api, ())
            token = self.access_token(str(form.get("client_id")), api, roles)
            return web.json_response(
                {
                    "token_type": "Bearer",
                    "expires_in": self.token_seconds,
                    "ext_expires_in": self.token_seconds,
                    "access_token": token,
                }
            )
        token = "eyJ0eXAiOiJKV1QifQ." + secrets.token_urlsafe(32)
        self._tokens[token] = (time.time() + self.token_seconds, resource_scopes[0])
        return web.json_response(
            {
                "token_type": "Bearer",
                "expires_in": self.token_seconds,
                "ext_expires_in": self.token_seconds,
                "access_token": token,
            }
        )


@dataclass
class _Subscription:
    id: str
    resource: str
    user_id: str
    change_type: str
    notification_url: str
    lifecycle_url: str | None
    client_state: str | None
    expires_at: float
    needs_reauthorization: bool = False

    def document(self, *, with_client_state: bool) -> dict[str, Any]:
        return {
            "id": self.id,
            "resource": self.resource,
            "applicationId": "herald-graph-app",
            "changeType": self.change_type,
            "clientState": self.client_state if with_client_state else None,
            "notificationUrl": self.notification_url,
            "lifecycleNotificationUrl": self.lifecycle_url,
            "expirationDateTime": _iso(self.expires_at),
            "creatorId": "herald-graph-app",
            "includeResourceData": False,
            "latestSupportedTlsVersion": "v1_2",
            "notificationContentType": None,
        }


@dataclass
class _Calendar:
    events: dict[str, dict[str, Any]] = field(default_factory=dict)
    changed: dict[str, int] = field(default_factory=dict)
    """Event id -> sequence number of its last change (deletions included)."""
    deleted: set[str] = field(default_factory=set)


def _user_entry(user: dict[str, Any]) -> dict[str, Any]:
    return {"@odata.type": "#microsoft.graph.user", **user}


def _user_not_found(key: str) -> web.Response:
    return _error(
        404,
        "Request_ResourceNotFound",
        f"Resource '{key}' does not exist or one of its queried reference-property objects "
        "are not present.",
    )


class GraphStandIn:
    """Microsoft Graph's subscriptions and calendar endpoints (v1.0), for one app."""

    def __init__(
        self,
        tls: SelfSigned,
        entra: EntraStandIn,
        *,
        clock: Callable[[], float] = time.time,
        validation_timeout: float = 10.0,
        page_size: int = 100,
    ) -> None:
        self.tls = tls
        self.entra = entra
        self.clock = clock
        self.validation_timeout = validation_timeout
        self.page_size = page_size
        self.delta_page_size = 50
        self.url = ""
        self.requests: list[Recorded] = []
        self.deliveries: list[Delivery] = []
        self.subscriptions: dict[str, _Subscription] = {}
        self._calendars: dict[str, _Calendar] = {}
        self._seq = itertools.count(1)
        self._last_seq = 0
        self._throttles: list[tuple[int, str, str, str | None]] = []
        self._forgotten_deltas = False
        self._stall: asyncio.Event | None = None
        self.stalled = asyncio.Event()
        """Set once a request waits on `stall_events`."""
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        # The directory and Teams app installations (audiences, issue 13).
        self.people: dict[str, dict[str, Any]] = {}
        """Users by object id: `{"id", "userPrincipalName", "mail"}`."""
        self.groups: dict[str, list[dict[str, Any]]] = {}
        """Each group's direct members as Graph lists them (`@odata.type`, `id`...)."""
        self.member_page_size = 100
        """The most members a page holds (Graph: `$top`, at most 999; this when smaller)."""
        self.catalog_apps: set[str] = set()
        """Apps of the tenant's catalog that can be installed for users."""
        self.installed: dict[str, dict[str, str]] = {}
        """Per user: catalog app id → installation id."""
        self.install_blocked: set[str] = set()
        """Users an admin's app permission policy keeps the app from (403)."""
        self.on_install: Callable[[str], str] = lambda user_id: f"19:{user_id}_bot@unq.gbl.spaces"
        """Called when an app is installed for a user; returns the id of the bot's chat
        with them (tests wire it to the connector stand-in)."""
        self.chats: dict[str, str] = {}
        """Installation id → the chat it opened."""

    @property
    def base(self) -> str:
        """GRAPH_BASE_URL for Herald."""
        return f"{self.url}/v1.0"

    # ---- life

    async def __aenter__(self) -> GraphStandIn:
        app = web.Application(middlewares=[self._gate])
        app.router.add_get("/v1.0/subscriptions", self._list)
        app.router.add_post("/v1.0/subscriptions", self._create)
        app.router.add_get("/v1.0/subscriptions/{id}", self._get)
        app.router.add_patch("/v1.0/subscriptions/{id}", self._patch)
        app.router.add_delete("/v1.0/subscriptions/{id}", self._delete)
        app.router.add_get("/v1.0/users/{user}/events/{event}", self._event)
        app.router.add_get("/v1.0/users/{user}/calendarView/delta", self._delta)
        for relation in ("transitiveMembers", "members"):
            app.router.add_get(f"/v1.0/groups/{{group}}/{relation}", self._members)
            app.router.add_get(
                f"/v1.0/groups/{{group}}/{relation}/microsoft.graph.user", self._members
            )
        app.router.add_get("/v1.0/users/{user}", self._user)
        app.router.add_get("/v1.0/users/{user}/teamwork/installedApps", self._installations)
        app.router.add_post("/v1.0/users/{user}/teamwork/installedApps", self._install)
        app.router.add_get(
            "/v1.0/users/{user}/teamwork/installedApps/{installation}/chat", self._chat
        )
        self._runner, self.url = await _serve(app, self.tls)
        self._http = aiohttp.ClientSession(trust_env=False)
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._stall is not None:
            self._stall.set()
        if self._http is not None:
            await self._http.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # ---- what tests script

    def throttle(
        self,
        times: int = 1,
        *,
        retry_after: str = "1",
        status: int = 429,
        path_contains: str | None = None,
    ) -> None:
        """The next `times` calls (whose path and query contain `path_contains`, if given) are
        refused with `status` and `Retry-After: retry_after`."""
        code = "TooManyRequests" if status == 429 else "ServiceNotAvailable"
        self._throttles.append((times, retry_after, code, path_contains))

    def unthrottle(self) -> None:
        """Forget every scripted refusal not used yet."""
        self._throttles.clear()

    def stall_events(self) -> asyncio.Event:
        """Hold every `GET /users/{id}/events/{id}` until the returned event is set."""
        self._stall = asyncio.Event()
        return self._stall

    def forget_delta_tokens(self) -> None:
        """Every delta token issued so far is answered 410 (sync state gone)."""
        self._forgotten_deltas = True

    def calls(self, method: str, path_contains: str = "") -> list[Recorded]:
        return [r for r in self.requests if r.method == method and path_contains in r.path]

    def live(self) -> list[_Subscription]:
        now = self.clock()
        return [s for s in self.subscriptions.values() if s.expires_at > now]

    def for_user(self, user_id: str) -> list[_Subscription]:
        return [s for s in self.live() if s.user_id == user_id.lower()]

    def _calendar(self, user_id: str) -> _Calendar:
        return self._calendars.setdefault(user_id.lower(), _Calendar())

    def _bump(self, calendar: _Calendar, event_id: str) -> None:
        self._last_seq = next(self._seq)
        calendar.changed[event_id] = self._last_seq

    def add_event(
        self,
        user_id: str,
        subject: str,
        start: datetime,
        *,
        minutes: int = 60,
        location: str | None = "Room 1",
        organizer: tuple[str, str] = ("Ada Lovelace", "ada@contoso.com"),
        all_day: bool = False,
    ) -> dict[str, Any]:
        calendar = self._calendar(user_id)
        event_id = "AAMkAD" + secrets.token_urlsafe(30)
        event: dict[str, Any] = {
            "id": event_id,
            "subject": subject,
            "isAllDay": all_day,
            "isCancelled": False,
            "start": _graph_time(start),
            "end": _graph_time(start + timedelta(minutes=minutes)),
            "location": {"displayName": location or ""},
            "organizer": {"emailAddress": {"name": organizer[0], "address": organizer[1]}},
            "webLink": f"https://outlook.office365.com/owa/?itemid={quote(event_id)}"
            "&exvsurl=1&path=/calendar/item",
            "type": "singleInstance",
        }
        calendar.events[event_id] = event
        self._new_version(calendar, event)
        return event

    def _new_version(self, calendar: _Calendar, event: dict[str, Any]) -> None:
        change_key = base64.b64encode(secrets.token_bytes(18)).decode()
        event["changeKey"] = change_key
        event["@odata.etag"] = f'W/"{change_key}"'
        event["lastModifiedDateTime"] = _iso(self.clock())
        self._bump(calendar, event["id"])

    def update_event(
        self,
        user_id: str,
        event_id: str,
        *,
        subject: str | None = None,
        start: datetime | None = None,
        minutes: int | None = None,
        location: str | None = None,
        cancelled: bool | None = None,
    ) -> dict[str, Any]:
        calendar = self._calendar(user_id)
        event = calendar.events[event_id]
        if subject is not None:
            event["subject"] = subject
        if start is not None or minutes is not None:
            old_start = datetime.fromisoformat(event["start"]["dateTime"]).replace(tzinfo=UTC)
            old_end = datetime.fromisoformat(event["end"]["dateTime"]).replace(tzinfo=UTC)
            new_start = start or old_start
            length = timedelta(minutes=minutes) if minutes is not None else old_end - old_start
            event["start"] = _graph_time(new_start)
            event["end"] = _graph_time(new_start + length)
        if location is not None:
            event["location"] = {"displayName": location}
        if cancelled is not None:
            event["isCancelled"] = cancelled
            if cancelled and not event["subject"].startswith("Canceled: "):
                event["subject"] = "Canceled: " + event["subject"]
        self._new_version(calendar, event)
        return event

    def touch_event(self, user_id: str, event_id: str) -> dict[str, Any]:
        """A change nobody sees (Outlook updates internal properties): a new changeKey only."""
        calendar = self._calendar(user_id)
        event = calendar.events[event_id]
        self._new_version(calendar, event)
        return event

    def delete_event(self, user_id: str, event_id: str) -> None:
        calendar = self._calendar(user_id)
        del calendar.events[event_id]
        calendar.deleted.add(event_id)
        self._bump(calendar, event_id)

    async def _post(self, kind: str, url: str, body: Any) -> Delivery:
        assert self._http is not None
        started = time.monotonic()
        async with self._http.post(
            url,
            json=body,
            headers={"Content-Type": "application/json; charset=utf-8"},
            timeout=aiohttp.ClientTimeout(total=30),
        ) as response:
            text = await response.text()
            delivery = Delivery(
                kind,
                url,
                body,
                response.status,
                time.monotonic() - started,
                text,
                response.headers.get("Content-Type", ""),
            )
        self.deliveries.append(delivery)
        return delivery

    def notification(
        self,
        subscription: _Subscription,
        event_id: str,
        change_type: str,
        *,
        client_state: str | None = None,
    ) -> dict[str, Any]:
        """One change notification without resource data, as Outlook sends it."""
        calendar = self._calendar(subscription.user_id)
        event = calendar.events.get(event_id)
        resource_data: dict[str, Any] = {
            "@odata.type": "#Microsoft.Graph.Event",
            "@odata.id": f"Users/{subscription.user_id}/Events/{event_id}",
            "id": event_id,
        }
        if event is not None:
            resource_data["@odata.etag"] = event["@odata.etag"]
        return {
            "subscriptionId": subscription.id,
            "subscriptionExpirationDateTime": _iso(subscription.expires_at),
            "changeType": change_type,
            "resource": f"Users/{subscription.user_id}/Events/{event_id}",
            "resourceData": resource_data,
            "clientState": subscription.client_state if client_state is None else client_state,
            "tenantId": self.entra.tenant,
        }

    async def notify(
        self,
        user_id: str,
        event_id: str,
        change_type: str,
        *,
        copies: int = 1,
        client_state: str | None = None,
    ) -> list[Delivery]:
        """Deliver a change notification to every live subscription on the user's events,
        `copies` times (Outlook often sends several for one edit)."""
        sent: list[Delivery] = []
        for subscription in self.for_user(user_id):
            item = self.notification(subscription, event_id, change_type, client_state=client_state)
            for _ in range(copies):
                sent.append(
                    await self._post("change", subscription.notification_url, {"value": [item]})
                )
        return sent

    async def lifecycle(self, subscription_id: str, event: str) -> Delivery:
        """A lifecycle notification: reauthorizationRequired, subscriptionRemoved or missed."""
        subscription = self.subscriptions[subscription_id]
        if event == "subscriptionRemoved":
            self.subscriptions.pop(subscription_id, None)
        elif event == "reauthorizationRequired":
            subscription.needs_reauthorization = True
        assert subscription.lifecycle_url, "the subscription has no lifecycleNotificationUrl"
        body = {
            "value": [
                {
                    "subscriptionId": subscription.id,
                    "subscriptionExpirationDateTime": _iso(subscription.expires_at),
                    "tenantId": self.entra.tenant,
                    "clientState": subscription.client_state,
                    "lifecycleEvent": event,
                }
            ]
        }
        return await self._post("lifecycle", subscription.lifecycle_url, body)

    # ---- the API

    @web.middleware
    async def _gate(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        response = await self._gated(request, handler)
        body: Any = None
        if request.can_read_body:
            try:
                body = json.loads(await request.read() or b"null")
            except ValueError:
                body = None
        self.requests.append(
            Recorded(
                request.method,
                request.path,
                dict(request.query),
                response.status,
                self.clock(),
                body=body,
            )
        )
        return response

    async def _gated(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            return _error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if not self.entra.valid(token):
            return _error(
                401,
                "InvalidAuthenticationToken",
                "Access token validation failure. Invalid audience or expired token.",
            )
        for index, (times, retry_after, code, contains) in enumerate(self._throttles):
            if contains is not None and contains not in request.path_qs:
                continue
            if times <= 1:
                del self._throttles[index]
            else:
                self._throttles[index] = (times - 1, retry_after, code, contains)
            status = 429 if code == "TooManyRequests" else 503
            return _error(
                status,
                code,
                "Too many requests." if status == 429 else "Service unavailable.",
                headers={"Retry-After": retry_after},
            )
        response: web.StreamResponse = await handler(request)
        return response

    def _live_subscription(self, subscription_id: str) -> _Subscription | None:
        subscription = self.subscriptions.get(subscription_id)
        if subscription is None:
            return None
        if subscription.expires_at <= self.clock():
            del self.subscriptions[subscription_id]  # Graph removes expired subscriptions
            return None
        return subscription

    @staticmethod
    def _not_found() -> web.Response:
        return _error(404, "ResourceNotFound", "The object was not found.")

    async def _list(self, request: web.Request) -> web.Response:
        live = sorted(self.live(), key=lambda s: s.id)
        start = int(request.query.get("$skiptoken", "0"))
        page = live[start : start + self.page_size]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base}/$metadata#subscriptions",
            "value": [s.document(with_client_state=False) for s in page],
        }
        if start + self.page_size < len(live):
            body["@odata.nextLink"] = (
                f"{self.base}/subscriptions?$skiptoken={start + self.page_size}"
            )
        return web.json_response(body)

    def _expiration(self, value: Any) -> tuple[float | None, web.Response | None]:
        if not isinstance(value, str):
            return None, _error(400, "InvalidRequest", "expirationDateTime is required.")
        try:
            expires = _parse_time(value)
        except ValueError:
            return None, _error(400, "InvalidRequest", f"Invalid expirationDateTime '{value}'.")
        now = self.clock()
        if expires <= now:
            return None, _error(
                400, "InvalidRequest", "Subscription expiration must be in the future."
            )
        if expires > now + MAX_EVENT_MINUTES * 60:
            return None, _error(
                400,
                "ExtensionError",
                f"Subscription expiration can only be {MAX_EVENT_MINUTES} minutes in the future.",
            )
        return expires, None

    async def _validate(self, url: str) -> str | None:
        """Graph's validation request; the reason it failed, or None."""
        assert self._http is not None
        token = (
            f"Validation: Testing client application reachability for subscription "
            f"Request-Id: {uuid.uuid4()} <&\"'+%> {secrets.token_urlsafe(12)}"
        )
        target = f"{url}{'&' if '?' in url else '?'}validationToken={quote(token, safe='')}"
        started = time.monotonic()
        try:
            async with self._http.post(
                target,
                data=b"",
                headers={"Content-Type": "text/plain; charset=utf-8"},
                timeout=aiohttp.ClientTimeout(total=self.validation_timeout),
            ) as response:
                text = await response.text()
                elapsed = time.monotonic() - started
                content_type = response.headers.get("Content-Type", "")
                self.deliveries.append(
                    Delivery(
                        "validation", target, None, response.status, elapsed, text, content_type
                    )
                )
        except TimeoutError:
            self.deliveries.append(
                Delivery("validation", target, None, 0, time.monotonic() - started)
            )
            return "Subscription validation request timed out."
        except aiohttp.ClientError as exc:
            return f"Subscription validation request failed: {exc!r}."
        if response.status != 200:
            return (
                "Subscription validation request failed. Notification endpoint must respond "
                "with 200 OK to validation request."
            )
        if not content_type.startswith("text/plain"):
            return "Subscription validation request failed. Response must be text/plain."
        if text != token:
            return (
                "Subscription validation request failed. Response did not match the "
                "validation token."
            )
        return None

    @staticmethod
    def _url_allowed(url: Any) -> bool:
        if not isinstance(url, str):
            return False
        parts = urlsplit(url)
        return parts.scheme == "https" or (parts.scheme == "http" and parts.hostname in _LOOPBACK)

    async def _create(self, request: web.Request) -> web.Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "BadRequest", "Unable to read JSON request payload.")
        if not isinstance(body, dict):
            return _error(400, "BadRequest", "The request body must be an object.")
        change_type = body.get("changeType")
        if (
            not isinstance(change_type, str)
            or not change_type
            or not set(change_type.split(",")) <= {"created", "updated", "deleted"}
        ):
            return _error(400, "InvalidRequest", "Invalid changeType.")
        resource = body.get("resource")
        match = _RESOURCE.fullmatch(resource) if isinstance(resource, str) else None
        if match is None:
            return _error(400, "InvalidRequest", f"Resource '{resource}' is not supported.")
        if not self._url_allowed(body.get("notificationUrl")):
            return _error(400, "InvalidRequest", "The notificationUrl must be https.")
        lifecycle = body.get("lifecycleNotificationUrl")
        if lifecycle is not None and not self._url_allowed(lifecycle):
            return _error(400, "InvalidRequest", "The lifecycleNotificationUrl must be https.")
        client_state = body.get("clientState")
        if client_state is not None and (
            not isinstance(client_state, str) or len(client_state) > 128
        ):
            return _error(400, "InvalidRequest", "clientState can be at most 128 characters.")
        expires, problem = self._expiration(body.get("expirationDateTime"))
        if problem is not None or expires is None:
            return problem or self._not_found()
        for url in (body["notificationUrl"], lifecycle):
            if url is None:
                continue
            failure = await self._validate(url)
            if failure is not None:
                return _error(400, "ValidationError", failure)
        subscription = _Subscription(
            id=str(uuid.uuid4()),
            resource=resource,
            user_id=match[1].lower(),
            change_type=change_type,
            notification_url=body["notificationUrl"],
            lifecycle_url=lifecycle,
            client_state=client_state,
            expires_at=expires,
        )
        self.subscriptions[subscription.id] = subscription
        document = subscription.document(with_client_state=True)
        document["@odata.context"] = f"{self.base}/$metadata#subscriptions/$entity"
        return web.json_response(document, status=201)

    async def _get(self, request: web.Request) -> web.Response:
        subscription = self._live_subscription(request.match_info["id"])
        if subscription is None:
            return self._not_found()
        return web.json_response(subscription.document(with_client_state=False))

    async def _patch(self, request: web.Request) -> web.Response:
        subscription = self._live_subscription(request.match_info["id"])
        if subscription is None:
            return self._not_found()
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "BadRequest", "Unable to read JSON request payload.")
        expires, problem = self._expiration((body or {}).get("expirationDateTime"))
        if problem is not None or expires is None:
            return problem or self._not_found()
        subscription.expires_at = expires
        subscription.needs_reauthorization = False
        return web.json_response(subscription.document(with_client_state=False))

    async def _delete(self, request: web.Request) -> web.Response:
        subscription = self._live_subscription(request.match_info["id"])
        if subscription is None:
            return self._not_found()
        del self.subscriptions[subscription.id]
        return web.Response(status=204)

    async def _event(self, request: web.Request) -> web.Response:
        if self._stall is not None and not self._stall.is_set():
            self.stalled.set()
            await self._stall.wait()
        calendar = self._calendar(request.match_info["user"])
        event = calendar.events.get(request.match_info["event"])
        if event is None:
            return _error(
                404, "ErrorItemNotFound", "The specified object was not found in the store."
            )
        return web.json_response(event)

    async def _delta(self, request: web.Request) -> web.Response:
        user = request.match_info["user"]
        calendar = self._calendar(user)
        query = request.query
        link = f"{self.base}/users/{user}/calendarView/delta"
        if "$skiptoken" in query:
            state = json.loads(base64.urlsafe_b64decode(query["$skiptoken"]))
        elif "$deltatoken" in query:
            if self._forgotten_deltas:
                return _error(410, "SyncStateNotFound", "The sync state generation is not found.")
            state = json.loads(base64.urlsafe_b64decode(query["$deltatoken"]))
            state = {**state, "upto": self._last_seq, "offset": 0}
        else:
            if "startDateTime" not in query or "endDateTime" not in query:
                return _error(
                    400,
                    "ErrorInvalidParameter",
                    "This request requires a time window specified by the query string "
                    "parameters StartDateTime and EndDateTime.",
                )
            try:
                window = (_parse_time(query["startDateTime"]), _parse_time(query["endDateTime"]))
            except ValueError:
                return _error(400, "ErrorInvalidParameter", "Invalid time window.")
            state = {"since": 0, "upto": self._last_seq, "offset": 0, "window": window}
        since, upto, offset = state["since"], state["upto"], state["offset"]
        start, end = state["window"]
        items: list[dict[str, Any]] = []
        for event_id, seq in sorted(calendar.changed.items(), key=lambda kv: kv[1]):
            if not since < seq <= upto:
                continue
            if event_id in calendar.deleted:
                if since:  # an initial sync does not list what is already gone
                    items.append({"@removed": {"reason": "deleted"}, "id": event_id})
                continue
            event = calendar.events[event_id]
            begins = datetime.fromisoformat(event["start"]["dateTime"]).replace(tzinfo=UTC)
            if start <= begins.timestamp() < end:
                items.append(event)
        size = self.delta_page_size
        prefer = request.headers.get("Prefer", "")
        match = re.search(r"odata\.maxpagesize=(\d+)", prefer)
        if match:
            size = min(size, int(match[1]))
        page = items[offset : offset + size]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base}/$metadata#Collection(event)",
            "value": page,
        }

        def token(data: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(data).encode()).decode()

        if offset + size < len(items):
            body["@odata.nextLink"] = f"{link}?$skiptoken=" + token(
                {**state, "offset": offset + size}
            )
        else:
            body["@odata.deltaLink"] = f"{link}?$deltatoken=" + token(
                {"since": upto, "upto": upto, "offset": 0, "window": [start, end]}
            )
        return web.json_response(body)

    # ---- the directory and Teams app installations (audiences, issue 13)

    def add_user(self, user_id: str | None = None, *, upn: str | None = None) -> dict[str, Any]:
        """A user of the tenant's directory (a random object id unless given)."""
        user_id = user_id or str(uuid.uuid4())
        user = {
            "id": user_id,
            "userPrincipalName": upn or f"{user_id[:8]}@contoso.example",
            "mail": upn or f"{user_id[:8]}@contoso.example",
        }
        self.people[user_id] = user
        return user

    def add_group(
        self,
        group_id: str,
        users: Sequence[str] = (),
        *,
        groups: Sequence[str] = (),
        devices: int = 0,
    ) -> None:
        """A group whose direct members are these users (added to the directory if new), these
        nested groups and `devices` devices."""
        members: list[dict[str, Any]] = []
        for user_id in users:
            members.append(_user_entry(self.people.get(user_id) or self.add_user(user_id)))
        members.extend({"@odata.type": "#microsoft.graph.group", "id": g} for g in groups)
        members.extend(
            {"@odata.type": "#microsoft.graph.device", "id": str(uuid.uuid4())}
            for _ in range(devices)
        )
        self.groups[group_id] = members

    def _transitive(self, group_id: str) -> list[dict[str, Any]]:
        """Every member of the group and of its nested groups, each once, in order."""
        seen: dict[str, dict[str, Any]] = {}
        stack = [group_id]
        visited: set[str] = set()
        while stack:
            current = stack.pop(0)
            if current in visited:
                continue
            visited.add(current)
            for member in self.groups.get(current, ()):
                seen.setdefault(member["id"], member)
                if member["@odata.type"] == "#microsoft.graph.group":
                    stack.append(member["id"])
        return list(seen.values())

    async def _members(self, request: web.Request) -> web.Response:
        """`GET /groups/{id}/(transitiveMembers|members)[/microsoft.graph.user]`: pages of
        `member_page_size` (or `$top`) with `@odata.nextLink` (a `$skiptoken`)."""
        group_id = request.match_info["group"]
        if group_id not in self.groups:
            return _error(
                404,
                "Request_ResourceNotFound",
                f"Resource '{group_id}' does not exist or one of its queried reference-property "
                "objects are not present.",
            )
        transitive = "/transitiveMembers" in request.path
        members = self._transitive(group_id) if transitive else list(self.groups[group_id])
        if request.path.endswith("/microsoft.graph.user"):
            members = [m for m in members if m["@odata.type"] == "#microsoft.graph.user"]
        try:
            top = int(request.query.get("$top", "100"))
            start = int(request.query.get("$skiptoken", "0"))
        except ValueError:
            return _error(400, "Request_BadRequest", "Invalid paging parameters.")
        if not 1 <= top <= 999:
            return _error(400, "Request_BadRequest", f"Invalid page size specified: '{top}'.")
        size = min(top, self.member_page_size)
        chunk = members[start : start + size]
        fields = [f for f in request.query.get("$select", "").split(",") if f]
        value = [
            {k: v for k, v in m.items() if not fields or k in fields or k == "@odata.type"}
            for m in chunk
        ]
        body: dict[str, Any] = {
            "@odata.context": f"{self.base}/$metadata#directoryObjects",
            "value": value,
        }
        if start + size < len(members):
            query = dict(request.query)
            query["$skiptoken"] = str(start + size)
            body["@odata.nextLink"] = f"{self.url}{request.path}?" + "&".join(
                f"{k}={quote(v, safe=',')}" for k, v in query.items()
            )
        return web.json_response(body)

    def _find_person(self, key: str) -> dict[str, Any] | None:
        found = self.people.get(key)
        if found is None:
            found = next(
                (u for u in self.people.values() if u["userPrincipalName"].lower() == key.lower()),
                None,
            )
        return found

    async def _user(self, request: web.Request) -> web.Response:
        """`GET /users/{id | userPrincipalName}`."""
        key = request.match_info["user"]
        user = self._find_person(key)
        if user is None:
            return _user_not_found(key)
        return web.json_response(user)

    async def _install(self, request: web.Request) -> web.Response:
        """`POST /users/{id}/teamwork/installedApps` with `teamsApp@odata.bind`: 201; 409 when the
        app is installed for the user already; 403 when a policy blocks it; 404 for an app not in
        the catalog."""
        user = self._find_person(request.match_info["user"])
        if user is None:
            return _user_not_found(request.match_info["user"])
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "BadRequest", "Invalid request body.")
        binding = body.get("teamsApp@odata.bind") if isinstance(body, dict) else None
        prefix = f"{self.base}/appCatalogs/teamsApps/"
        if not isinstance(binding, str) or not binding.startswith(prefix):
            return _error(400, "BadRequest", "teamsApp@odata.bind is missing or malformed.")
        app_id = binding[len(prefix) :]
        if app_id not in self.catalog_apps:
            return _error(404, "NotFound", f"App '{app_id}' was not found in the catalog.")
        if user["id"] in self.install_blocked:
            return _error(403, "Forbidden", "The app permission policy does not allow this app.")
        mine = self.installed.setdefault(user["id"], {})
        if app_id in mine:
            return _error(409, "Conflict", "App is already installed.")
        installation = base64.urlsafe_b64encode(f"{user['id']}##{app_id}".encode()).decode()
        mine[app_id] = installation
        self.chats[installation] = self.on_install(user["id"])
        return web.Response(status=201)

    async def _installations(self, request: web.Request) -> web.Response:
        """`GET /users/{id}/teamwork/installedApps` (`$filter=teamsApp/id eq '…'` understood)."""
        user = self._find_person(request.match_info["user"])
        if user is None:
            return _user_not_found(request.match_info["user"])
        wanted = re.fullmatch(r"teamsApp/id eq '([^']*)'", request.query.get("$filter", ""))
        value = [
            {"id": installation, "teamsApp": {"id": app_id}}
            for app_id, installation in self.installed.get(user["id"], {}).items()
            if wanted is None or wanted.group(1) == app_id
        ]
        return web.json_response({"value": value})

    async def _chat(self, request: web.Request) -> web.Response:
        """`GET /users/{id}/teamwork/installedApps/{installation}/chat`: the bot's 1:1 chat."""
        chat = self.chats.get(request.match_info["installation"])
        if chat is None:
            return _error(404, "NotFound", "Installation not found.")
        return web.json_response({"id": chat, "chatType": "oneOnOne"})
