"""A stand-in of the FCM HTTP v1 API and of Google's OAuth 2.0 token endpoint, on loopback.

No FCM emulator exists, and firebase-admin must never reach Google from a test. This server
speaks the two documented APIs firebase-admin (and google-auth under it) use to send a push:

* ``POST /token`` -- the OAuth 2.0 token endpoint a service account's ``token_uri`` names
  (RFC 7523 JWT bearer grant): the assertion must be an RS256 JWT signed with the service
  account's key, issued by its ``client_email``, for Google's token endpoint (what google-auth signs
  for) or this ``token_uri``, with an FCM scope, not expired. Answers
  ``{"access_token", "expires_in", "token_type": "Bearer"}``, or ``400 {"error":
  "invalid_grant"}``.
* ``POST /v1/projects/{project}/messages:send`` -- FCM's send call: requires a bearer token
  this server issued (else 401 UNAUTHENTICATED), checks the message against FCM's schema
  (known fields only, exactly one target, string data values and no reserved keys, Android
  priority and TTL, APNs headers, https links, the 4,096-byte payload limit) and answers
  ``{"name": "projects/{project}/messages/{id}"}``, or FCM's documented error bodies:
  ``{"error": {"code", "message", "status", "details": [{"@type":
  "type.googleapis.com/google.firebase.fcm.v1.FcmError", "errorCode": ...}]}}``. Errors per
  token can be scripted (:meth:`FcmStandIn.fail`), with ``Retry-After`` where FCM sends it.

``FcmStandIn.service_account(path)`` writes a service-account JSON whose ``token_uri`` points
here, with an RSA key generated for this server, so firebase-admin's real credential flow runs
offline.

Two ways to use it: in pytest, ``async with FcmStandIn() as fcm:`` (requests are recorded and
can be awaited with :meth:`FcmStandIn.wait_for`); standalone, as a counting sink for
benchmarks: ``python -m tests.peers.fcm --service-account FILE [--port 0] [--quiet]`` writes
FILE, prints ``LISTENING http://127.0.0.1:<port>`` and serves ``GET /_stats`` and
``POST /_reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import re
import secrets
import signal
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.peers.loopback import LoopbackServer

__all__ = ["ERRORS", "FcmStandIn", "Received", "main"]

_LOG = logging.getLogger("fcm-standin")

FCM_ERROR_TYPE: Final = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST_TYPE: Final = "type.googleapis.com/google.rpc.BadRequest"
JWT_BEARER: Final = "urn:ietf:params:oauth:grant-type:jwt-bearer"
GOOGLE_TOKEN_AUDIENCE: Final = "https://oauth2.googleapis.com/token"
FCM_SCOPES: Final = frozenset(
    {
        "https://www.googleapis.com/auth/firebase.messaging",
        "https://www.googleapis.com/auth/cloud-platform",
    }
)

ERRORS: Final[Mapping[str, tuple[int, str, str]]] = {
    # errorCode -> (HTTP status, google.rpc status, message), as FCM documents them
    # ("FCM error codes" in the HTTP v1 reference).
    "UNSPECIFIED_ERROR": (400, "INVALID_ARGUMENT", "No more information is available."),
    "INVALID_ARGUMENT": (400, "INVALID_ARGUMENT", "Request contains an invalid argument."),
    "UNREGISTERED": (404, "NOT_FOUND", "Requested entity was not found."),
    "SENDER_ID_MISMATCH": (403, "PERMISSION_DENIED", "SenderId mismatch"),
    "QUOTA_EXCEEDED": (
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded for quota metric 'Messages sent' and limit 'Messages sent per minute'.",
    ),
    "UNAVAILABLE": (503, "UNAVAILABLE", "The service is currently unavailable."),
    "INTERNAL": (500, "INTERNAL", "Internal error encountered."),
    "THIRD_PARTY_AUTH_ERROR": (401, "UNAUTHENTICATED", "Auth error from APNS or Web Push Service"),
}

_MESSAGE_FIELDS: Final = frozenset(
    {
        "name",
        "data",
        "notification",
        "android",
        "webpush",
        "apns",
        "fcm_options",
        "token",
        "topic",
        "condition",
    }
)
_TARGETS: Final = ("token", "topic", "condition")
_NOTIFICATION_FIELDS: Final = frozenset({"title", "body", "image"})
_ANDROID_FIELDS: Final = frozenset(
    {
        "collapse_key",
        "priority",
        "ttl",
        "restricted_package_name",
        "data",
        "notification",
        "fcm_options",
        "direct_boot_ok",
        "bandwidth_constrained_ok",
        "restricted_satellite_ok",
    }
)
_ANDROID_NOTIFICATION_PRIORITIES: Final = frozenset(
    {
        "PRIORITY_UNSPECIFIED",
        "PRIORITY_MIN",
        "PRIORITY_LOW",
        "PRIORITY_DEFAULT",
        "PRIORITY_HIGH",
        "PRIORITY_MAX",
    }
)
_APNS_FIELDS: Final = frozenset({"headers", "payload", "fcm_options", "live_activity_token"})
_APNS_PUSH_TYPES: Final = frozenset(
    {
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtocall",
        "widgets",
    }
)
_WEBPUSH_FIELDS: Final = frozenset({"headers", "data", "notification", "fcm_options"})
_RESERVED_DATA: Final = frozenset({"from", "message_type"})
_TTL = re.compile(r"[0-9]{1,12}(\.[0-9]{1,9})?s")
_TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_:-]{20,4096}")
MAX_PAYLOAD: Final = 4096


class _Problem(Exception):
    """An FCM error answer."""

    def __init__(
        self,
        code: str,
        message: str | None = None,
        *,
        field: str | None = None,
        retry_after: float | None = None,
        fcm_detail: bool = True,
    ) -> None:
        status, rpc_status, default = ERRORS.get(code, (400, code, code))
        super().__init__(message or default)
        self.code = code
        self.status = status
        self.rpc_status = rpc_status
        self.message = message or default
        self.field = field
        self.retry_after = retry_after
        self.fcm_detail = fcm_detail

    def body(self) -> dict[str, Any]:
        details: list[dict[str, Any]] = []
        if self.fcm_detail:
            details.append({"@type": FCM_ERROR_TYPE, "errorCode": self.code})
        if self.field is not None:
            details.append(
                {
                    "@type": BAD_REQUEST_TYPE,
                    "fieldViolations": [{"field": self.field, "description": self.message}],
                }
            )
        error: dict[str, Any] = {
            "code": self.status,
            "message": self.message,
            "status": self.rpc_status,
        }
        if details:
            error["details"] = details
        return {"error": error}


def _invalid(message: str, field: str) -> _Problem:
    return _Problem("INVALID_ARGUMENT", message, field=field)


@dataclass(frozen=True, slots=True)
class Received:
    """A message FCM accepted."""

    token: str
    message: dict[str, Any]
    name: str
    at: float
    headers: dict[str, str]


@dataclass(slots=True)
class _Script:
    code: str
    times: int | None
    retry_after: float | None
    message: str | None


@dataclass(slots=True)
class Counters:
    """What the server saw, for the standalone sink and assertions."""

    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    unauthenticated: int = 0
    tokens_issued: int = 0
    first_at: float | None = None
    last_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "unauthenticated": self.unauthenticated,
            "tokensIssued": self.tokens_issued,
            "firstAt": self.first_at,
            "lastAt": self.last_at,
        }


def _check_string_map(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _invalid(f"Invalid value at '{where}': expected an object", where)
    for key, item in value.items():
        if not isinstance(item, str):
            raise _invalid(
                f"Invalid value at '{where}[{key}]' (TYPE_STRING), {json.dumps(item)}",
                f"{where}[{key}]",
            )
    return value


def _check_known(value: Any, allowed: frozenset[str], where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _invalid(f"Invalid value at '{where}': expected an object", where)
    for key in value:
        if key not in allowed:
            raise _invalid(
                f"Invalid JSON payload received. Unknown name \"{key}\" at '{where}': "
                "Cannot find field.",
                where,
            )
    return value


def _check_strings(
    value: Mapping[str, Any], names: frozenset[str] | tuple[str, ...], where: str
) -> None:
    for name in names:
        if name in value and not isinstance(value[name], str):
            raise _invalid(f"Invalid value at '{where}.{name}' (TYPE_STRING)", f"{where}.{name}")


def validate_message(message: Any) -> str:
    """The message's token if it is one FCM would take; _Problem (INVALID_ARGUMENT) if not."""
    _check_known(message, _MESSAGE_FIELDS, "message")
    targets = [t for t in _TARGETS if t in message]
    if len(targets) != 1:
        raise _invalid("Exactly one of token, topic or condition must be set.", "message")
    if "data" in message:
        data = _check_string_map(message["data"], "message.data")
        for key in data:
            lowered = key.lower()
            if lowered in _RESERVED_DATA or lowered.startswith(("google", "gcm")):
                raise _invalid(f"Invalid data payload key: {key}", "message.data")
    if "notification" in message:
        notification = _check_known(
            message["notification"], _NOTIFICATION_FIELDS, "message.notification"
        )
        _check_strings(notification, _NOTIFICATION_FIELDS, "message.notification")
    if "android" in message:
        _check_android(message["android"])
    if "apns" in message:
        _check_apns(message["apns"])
    if "webpush" in message:
        _check_webpush(message["webpush"])
    sized = {k: v for k, v in message.items() if k not in _TARGETS}
    size = len(json.dumps(sized, ensure_ascii=False, separators=(",", ":")).encode())
    if size > MAX_PAYLOAD:
        raise _invalid(f"Message is too big ({size} bytes)", "message")
    token = message.get("token")
    if token is None:
        raise _invalid("This stand-in only sends to tokens.", "message.token")
    if not isinstance(token, str) or not _TOKEN_SHAPE.fullmatch(token):
        raise _invalid(
            "The registration token is not a valid FCM registration token", "message.token"
        )
    return token


def _check_android(value: Any) -> None:
    android = _check_known(value, _ANDROID_FIELDS, "message.android")
    _check_strings(android, ("collapse_key", "restricted_package_name"), "message.android")
    priority = android.get("priority")
    if priority is not None and str(priority).lower() not in ("normal", "high"):
        raise _invalid(f"Invalid value at 'message.android.priority', {priority}", "priority")
    ttl = android.get("ttl")
    if ttl is not None and not (isinstance(ttl, str) and _TTL.fullmatch(ttl)):
        raise _invalid(f"Invalid value at 'message.android.ttl', {ttl}", "message.android.ttl")
    if "data" in android:
        _check_string_map(android["data"], "message.android.data")
    notification = android.get("notification")
    if notification is not None:
        if not isinstance(notification, dict):
            raise _invalid("Invalid value at 'message.android.notification'", "notification")
        level = notification.get("notification_priority")
        if level is not None and level not in _ANDROID_NOTIFICATION_PRIORITIES:
            raise _invalid(
                f"Invalid value at 'message.android.notification.notification_priority', {level}",
                "message.android.notification.notification_priority",
            )
        _check_strings(notification, ("tag", "title", "body", "image"), "message.android")


def _check_apns(value: Any) -> None:
    apns = _check_known(value, _APNS_FIELDS, "message.apns")
    headers = _check_string_map(apns.get("headers", {}), "message.apns.headers")
    if headers.get("apns-priority", "10") not in ("1", "5", "10"):
        raise _invalid("Invalid apns-priority", "message.apns.headers")
    if len(headers.get("apns-collapse-id", "").encode()) > 64:
        raise _invalid("apns-collapse-id is longer than 64 bytes", "message.apns.headers")
    push_type = headers.get("apns-push-type")
    if push_type is not None and push_type not in _APNS_PUSH_TYPES:
        raise _invalid(f"Invalid apns-push-type {push_type}", "message.apns.headers")
    expiration = headers.get("apns-expiration")
    if expiration is not None and not expiration.isdigit():
        raise _invalid("apns-expiration must be epoch seconds", "message.apns.headers")
    payload = apns.get("payload")
    if payload is not None and not (
        isinstance(payload, dict) and isinstance(payload.get("aps"), dict)
    ):
        raise _invalid("apns.payload must hold an aps dictionary", "message.apns.payload")


def _check_webpush(value: Any) -> None:
    webpush = _check_known(value, _WEBPUSH_FIELDS, "message.webpush")
    if "headers" in webpush:
        _check_string_map(webpush["headers"], "message.webpush.headers")
    if "data" in webpush:
        _check_string_map(webpush["data"], "message.webpush.data")
    options = webpush.get("fcm_options") or {}
    link = options.get("link") if isinstance(options, dict) else None
    if link is not None and not (isinstance(link, str) and link.startswith("https://")):
        raise _invalid("The link must be an https URL", "message.webpush.fcm_options.link")


class FcmStandIn(LoopbackServer):
    """FCM HTTP v1 (`messages:send`) and an OAuth 2.0 token endpoint on 127.0.0.1."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        project_id: str = "herald-test",
        record: bool = True,
        token_lifetime: int = 3600,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(host, port)
        self.project_id = project_id
        self.record = record
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.received: list[Received] = []
        self.counters = Counters()
        self.client_email = f"herald@{project_id}.iam.gserviceaccount.com"
        self.key_id = secrets.token_hex(20)
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._public_key = self._key.public_key()
        self._access_tokens: dict[str, float] = {}
        self._scripts: dict[str, _Script] = {}
        self._delay = 0.0
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        self._ids = itertools.count(1)

    # ----------------------------------------------------------------- lifetime

    def make_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/token", self._token)
        app.router.add_post("/v1/projects/{project}/messages:send", self._send)
        app.router.add_get("/_stats", self._stats)
        app.router.add_post("/_reset", self._reset)
        return app

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def service_account(self, path: Path) -> Path:
        """Write a service-account JSON (FIREBASE_CREDENTIALS) whose token_uri is this server."""
        pem = self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
        document = {
            "type": "service_account",
            "project_id": self.project_id,
            "private_key_id": self.key_id,
            "private_key": pem,
            "client_email": self.client_email,
            "client_id": "100000000000000000001",
            "auth_uri": f"{self.url}/auth",
            "token_uri": self.token_uri,
            "universe_domain": "googleapis.com",
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(document, indent=2))
        return path

    # ------------------------------------------------------------ configuration

    def fail(
        self,
        token: str,
        code: str,
        *,
        times: int | None = None,
        retry_after: float | None = None,
        message: str | None = None,
    ) -> None:
        """Answer sends to `token` with FCM's error `code` (`times` times, or always)."""
        if code not in ERRORS:
            raise ValueError(f"unknown FCM error code {code!r}")
        self._scripts[token] = _Script(code, times, retry_after, message)

    def slow(self, seconds: float) -> None:
        """Delay every send answer by `seconds` (0 to stop)."""
        self._delay = seconds

    def revoke_tokens(self) -> None:
        """Invalidate every access token issued so far (sends get 401 until a new one)."""
        self._access_tokens.clear()

    def clear(self) -> None:
        self.received.clear()
        self._scripts.clear()
        self._delay = 0.0

    # ------------------------------------------------------------------ queries

    def tokens(self) -> list[str]:
        return [r.token for r in self.received]

    def for_token(self, token: str) -> list[Received]:
        return [r for r in self.received if r.token == token]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Wait until at least `count` messages were accepted."""

        def check() -> bool:
            return len(self.received) >= count

        if not check():
            future = asyncio.get_running_loop().create_future()
            self._waiters.append((check, future))
            try:
                await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise AssertionError(
                    f"FCM stand-in got {len(self.received)} of {count} messages"
                ) from None
        return list(self.received)

    # ----------------------------------------------------------------- handlers

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        if form.get("grant_type") != JWT_BEARER:
            return _oauth_error("unsupported_grant_type", "Invalid grant_type.")
        assertion = str(form.get("assertion", ""))
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(
                assertion,
                self._public_key,
                algorithms=["RS256"],
                # google-auth signs for Google's token endpoint whatever token_uri says.
                audience=[self.token_uri, GOOGLE_TOKEN_AUDIENCE],
                issuer=self.client_email,
                options={"require": ["exp", "iat", "iss", "aud"]},
            )
        except jwt.PyJWTError as exc:
            return _oauth_error("invalid_grant", f"Invalid JWT: {exc}")
        if header.get("kid") != self.key_id:
            return _oauth_error("invalid_grant", "Invalid JWT Signature (unknown key id).")
        scopes = set(str(claims.get("scope", "")).split())
        if not scopes & FCM_SCOPES:
            return _oauth_error("invalid_scope", "The scope does not allow sending messages.")
        token = "ya29." + secrets.token_urlsafe(48)
        self._access_tokens[token] = self.clock() + self.token_lifetime
        self.counters.tokens_issued += 1
        return web.json_response(
            {"access_token": token, "expires_in": self.token_lifetime, "token_type": "Bearer"}
        )

    def _authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        expires = self._access_tokens.get(token.strip()) if scheme.lower() == "bearer" else None
        return expires is not None and expires > self.clock()

    async def _send(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        if self._delay:
            await asyncio.sleep(self._delay)
        try:
            if not self._authorized(request):
                self.counters.unauthenticated += 1
                raise _Problem(
                    "UNAUTHENTICATED",
                    "Request had invalid authentication credentials. Expected OAuth 2 access "
                    "token, login cookie or other valid authentication credential.",
                    fcm_detail=False,
                )
            if request.match_info["project"] != self.project_id:
                raise _Problem(
                    "SENDER_ID_MISMATCH", "Permission denied on the project.", fcm_detail=False
                )
            try:
                body = json.loads(await request.read())
            except ValueError:
                raise _invalid("Invalid JSON payload received.", "body") from None
            _check_known(body, frozenset({"message", "validate_only"}), "body")
            message = body.get("message")
            token = validate_message(message)
            script = self._scripts.get(token)
            if script is not None:
                if script.times is not None:
                    script.times -= 1
                    if script.times <= 0:
                        del self._scripts[token]
                raise _Problem(script.code, script.message, retry_after=script.retry_after)
        except _Problem as problem:
            key = problem.code if problem.code in ERRORS else problem.rpc_status
            self.counters.rejected[key] = self.counters.rejected.get(key, 0) + 1
            headers = (
                {"Retry-After": str(int(problem.retry_after))}
                if problem.retry_after is not None
                else None
            )
            status = 401 if problem.code == "UNAUTHENTICATED" else problem.status
            return web.json_response(problem.body(), status=status, headers=headers)
        name = f"projects/{self.project_id}/messages/0:{next(self._ids)}%{self.key_id[:16]}"
        counters = self.counters
        counters.accepted += 1
        counters.first_at = at if counters.first_at is None else counters.first_at
        counters.last_at = at
        if self.record:
            self.received.append(Received(token, message, name, at, dict(request.headers)))
            if self._waiters:
                for check, future in list(self._waiters):
                    if not future.done() and check():
                        future.set_result(None)
        return web.json_response({"name": name})

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(self.counters.to_json())

    async def _reset(self, request: web.Request) -> web.Response:
        self.counters = Counters()
        self.clear()
        return web.json_response({})


def _oauth_error(code: str, description: str) -> web.Response:
    return web.json_response({"error": code, "error_description": description}, status=400)


# --------------------------------------------------------------------- standalone


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.peers.fcm",
        description="FCM HTTP v1 + OAuth token endpoint stand-in: a counting sink.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--project", default="herald-bench")
    parser.add_argument("--service-account", type=Path, required=True, help="where to write it")
    parser.add_argument("--quiet", action="store_true", help="no log on stderr")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    if not args.quiet:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    standin = FcmStandIn(host=args.host, port=args.port, project_id=args.project, record=False)
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with standin:
        standin.service_account(args.service_account)
        # stdout carries only this line, so a parent process can read it to find the port.
        print(f"LISTENING {standin.url}", flush=True)
        await stopping.wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tests.peers.fcm``; serves until SIGTERM/SIGINT."""
    args = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
