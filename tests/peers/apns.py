"""A stand-in of the Apple Push Notification service (APNs) provider API, on loopback.

No APNs emulator exists and nothing in a test may reach Apple, so this server speaks the
documented provider API over TLS and HTTP/2 (ALPN ``h2`` only, as APNs), built on ``h2``:

* ``POST /3/device/{token}`` with a provider token (``authorization: bearer <JWT>``): an ES256
  JWT whose ``kid`` is the test key's id and ``iss`` the team id, signed with the test key
  (:meth:`ApnsStandIn.write_key` writes it as a ``.p8`` file). An ``iat`` more than an hour old
  is ``403 ExpiredProviderToken``, a bad signature, key id or team ``403
  InvalidProviderToken``, no token ``403 MissingProviderToken``, and a connection whose token
  changes less than 20 minutes (by ``iat``) after its last one ``429
  TooManyProviderTokenUpdates``. Every distinct valid token is recorded (``provider_tokens``),
  so a test can tell how often a client made a new one.
* The headers: ``apns-topic`` must be the bundle id (``400 MissingTopic`` /
  ``DeviceTokenNotForTopic``), ``apns-push-type`` one of Apple's (``InvalidPushType``),
  ``apns-priority`` 1, 5 or 10 (``BadPriority``), ``apns-expiration`` epoch seconds
  (``BadExpirationDate``), ``apns-collapse-id`` at most 64 bytes (``BadCollapseId``),
  ``apns-id`` a UUID (``BadMessageId``); the token hex (``BadDeviceToken``).
* The payload: a JSON object with an ``aps`` dictionary, at most 4,096 bytes (``413
  PayloadTooLarge``; empty: ``PayloadEmpty``).

Answers are ``200`` with ``apns-id`` (and ``apns-unique-id``), or the status and ``{"reason":
...}`` (410 with a ``timestamp``). Any documented answer can be scripted per device token
(:meth:`ApnsStandIn.fail`), and every token can be declared expired
(:meth:`ApnsStandIn.expire_provider_tokens`). Like APNs with token authentication, a connection
allows one stream until its first request is authenticated, then 1,000
(``SETTINGS_MAX_CONCURRENT_STREAMS``), so clients must honour the setting as it changes.

The certificate is made at test time (``tests/peers/tls.py``): clients trust exactly that file.

Two ways to use it: in pytest, ``async with ApnsStandIn(tmp_path) as apns:`` (pushes are
recorded and can be awaited with :meth:`ApnsStandIn.wait_for`); standalone, as a counting sink
for benchmarks: ``python -m tests.peers.apns --dir DIR [--quiet]`` writes the key and the
certificate into DIR, prints ``LISTENING http://127.0.0.1:<port>`` (a plain HTTP control port:
``GET /_info`` says where APNs listens and the key's ids, ``GET /_stats``, ``POST /_reset``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import re
import signal
import ssl
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

import jwt
from aiohttp import web
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RequestReceived,
    StreamEnded,
    StreamReset,
)
from h2.exceptions import ProtocolError, StreamClosedError
from h2.settings import SettingCodes
from hpack import NeverIndexedHeaderTuple

from tests.peers.tls import SelfSigned, self_signed

__all__ = ["ERRORS", "ApnsStandIn", "Push", "main"]

_LOG = logging.getLogger("apns-standin")

ERRORS: Final[Mapping[str, int]] = {
    # reason -> HTTP status, as Apple documents them ("Handling notification responses from
    # APNs").
    "BadCollapseId": 400,
    "BadDeviceToken": 400,
    "BadExpirationDate": 400,
    "BadMessageId": 400,
    "BadPriority": 400,
    "BadTopic": 400,
    "DeviceTokenNotForTopic": 400,
    "DuplicateHeaders": 400,
    "IdleTimeout": 400,
    "InvalidPushType": 400,
    "MissingDeviceToken": 400,
    "MissingTopic": 400,
    "PayloadEmpty": 400,
    "TopicDisallowed": 400,
    "BadCertificate": 403,
    "BadCertificateEnvironment": 403,
    "ExpiredProviderToken": 403,
    "Forbidden": 403,
    "InvalidProviderToken": 403,
    "MissingProviderToken": 403,
    "UnrelatedKeyIdInToken": 403,
    "BadEnvironmentKeyInToken": 403,
    "BadPath": 404,
    "MethodNotAllowed": 405,
    "ExpiredToken": 410,
    "Unregistered": 410,
    "PayloadTooLarge": 413,
    "TooManyProviderTokenUpdates": 429,
    "TooManyRequests": 429,
    "InternalServerError": 500,
    "ServiceUnavailable": 503,
    "Shutdown": 503,
}

PUSH_TYPES: Final = frozenset(
    {
        "alert",
        "background",
        "location",
        "voip",
        "complication",
        "fileprovider",
        "mdm",
        "liveactivity",
        "pushtotalk",
        "widgets",
        "controls",
    }
)
MAX_PAYLOAD: Final = 4096
TOKEN_LIFETIME: Final = 3600
"""APNs refuses a provider token whose iat is older than an hour."""
MIN_TOKEN_REFRESH: Final = 20 * 60
"""... and one that replaces the previous token sooner than 20 minutes after it."""
STREAMS_AUTHENTICATED: Final = 1000

_TOKEN = re.compile(r"[0-9a-fA-F]{64,200}")
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


class _Refusal(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = ERRORS[reason]


@dataclass(frozen=True, slots=True)
class Push:
    """A notification APNs accepted."""

    token: str
    headers: dict[str, str]
    payload: dict[str, Any]
    size: int
    at: float
    provider_token: str
    connection: int


@dataclass(slots=True)
class _Script:
    reason: str
    times: int | None


@dataclass(slots=True)
class Counters:
    """What the server saw, for the standalone sink and assertions."""

    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    provider_tokens: int = 0
    first_at: float | None = None
    last_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "accepted": self.accepted,
            "rejected": dict(self.rejected),
            "connections": self.connections,
            "providerTokens": self.provider_tokens,
            "firstAt": self.first_at,
            "lastAt": self.last_at,
        }


@dataclass(slots=True)
class _Stream:
    headers: dict[str, str]
    duplicate: bool
    body: bytearray = field(default_factory=bytearray)


class _Connection(asyncio.Protocol):
    """One client's TLS + HTTP/2 connection."""

    def __init__(self, standin: ApnsStandIn, number: int) -> None:
        self.standin = standin
        self.number = number
        # What clients send is validated (h2's checks of inbound headers stay on); the answers
        # are this server's own, so their checks are skipped, and the per-answer apns-id is not
        # indexed: a counting sink for benchmarks must not cost more than the client it counts.
        self.h2 = H2Connection(
            H2Configuration(
                client_side=False,
                header_encoding="utf-8",
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.authenticated = False
        self.provider_token: str | None = None
        self.iat = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        ssl_object = transport.get_extra_info("ssl_object")
        # APNs speaks HTTP/2 only: offered by ALPN, or spoken straight away (prior knowledge,
        # as aioapns does); a client that asked for HTTP/1.1 only is turned away.
        if ssl_object is None or ssl_object.selected_alpn_protocol() not in ("h2", None):
            transport.close()
            return
        self.standin.connections.add(self)
        self.h2.initiate_connection()
        self.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: 1})
        self.flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self.standin.connections.discard(self)

    def flush(self) -> None:
        if self.transport is not None and not self.transport.is_closing():
            data = self.h2.data_to_send()
            if data:
                self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            _LOG.warning("connection %d: HTTP/2 protocol error: %s", self.number, exc)
            self.flush()
            if self.transport is not None:
                self.transport.close()
            return
        for event in events:
            if isinstance(event, RequestReceived):
                headers: dict[str, str] = {}
                duplicate = False
                for name, value in event.headers or ():
                    key = str(name)
                    duplicate = duplicate or key in headers
                    headers[key] = str(value)
                self.streams[event.stream_id] = _Stream(headers, duplicate)
            elif isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.body += event.data or b""
                self.h2.acknowledge_received_data(
                    event.flow_controlled_length, event.stream_id
                )
            elif isinstance(event, StreamEnded):
                stream = self.streams.pop(event.stream_id, None)
                if stream is not None:
                    self.standin._handle(self, event.stream_id, stream)
            elif isinstance(event, StreamReset):
                self.streams.pop(event.stream_id, None)
            elif isinstance(event, ConnectionTerminated) and self.transport is not None:
                self.flush()
                self.transport.close()
        self.flush()

    def answer(self, stream_id: int, status: int, apns_id: str, reason: str | None) -> None:
        headers: list[tuple[bytes, bytes]] = [
            (b":status", str(status).encode()),
            NeverIndexedHeaderTuple(b"apns-id", apns_id.encode()),
        ]
        try:
            if reason is None:
                self.h2.send_headers(stream_id, headers, end_stream=True)
            else:
                body: dict[str, Any] = {"reason": reason}
                if status == 410:
                    body["timestamp"] = int(self.standin.clock() * 1000)
                data = json.dumps(body).encode()
                headers.append((b"content-type", b"application/json"))
                headers.append((b"content-length", str(len(data)).encode()))
                self.h2.send_headers(stream_id, headers)
                self.h2.send_data(stream_id, data, end_stream=True)
        except StreamClosedError:
            return  # the client gave up on it
        self.flush()

    def authenticate(self) -> None:
        """The first authenticated request lifts the connection's stream limit."""
        if not self.authenticated:
            self.authenticated = True
            self.h2.update_settings({SettingCodes.MAX_CONCURRENT_STREAMS: STREAMS_AUTHENTICATED})

    def goaway(self, reason: str) -> None:
        self.h2.close_connection(additional_data=json.dumps({"reason": reason}).encode())
        self.flush()
        if self.transport is not None:
            self.transport.close()


class ApnsStandIn:
    """The APNs provider API on 127.0.0.1 over TLS (ALPN h2), with its own test signing key."""

    def __init__(
        self,
        directory: Path,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        bundle_id: str = "com.contoso.field",
        team_id: str = "TEAMID1234",
        key_id: str = "KEYID56789",
        record: bool = True,
        clock: Callable[[], float] = time.time,
        tls: SelfSigned | None = None,
    ) -> None:
        self.directory = directory
        self.host = host
        self.port = port
        self.bundle_id = bundle_id
        self.team_id = team_id
        self.key_id = key_id
        self.record = record
        self.clock = clock
        self.tls = tls or self_signed(directory / "apns-tls", "apns-standin")
        self._key = ec.generate_private_key(ec.SECP256R1())
        self._public_key = self._key.public_key()
        self.received: list[Push] = []
        self.counters = Counters()
        self.provider_tokens: dict[str, int] = {}
        """Every valid provider token seen, with its iat, in the order first seen."""
        self.connections: set[_Connection] = set()
        self._expired_before: int | None = None
        self._scripts: dict[str, _Script] = {}
        self._delay = 0.0
        self._server: asyncio.Server | None = None
        self._connection_numbers = 0
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []

    # ----------------------------------------------------------------- lifetime

    async def start(self) -> None:
        context = self.tls.server_context()
        context.set_alpn_protocols(["h2"])
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            self._protocol, self.host, self.port, ssl=context
        )
        self.port = self._server.sockets[0].getsockname()[1]

    def _protocol(self) -> _Connection:
        self._connection_numbers += 1
        self.counters.connections += 1
        return _Connection(self, self._connection_numbers)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for connection in list(self.connections):
            if connection.transport is not None:
                connection.transport.abort()
        await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def url(self) -> str:
        """The base URL (APNS_ENDPOINT / APNS_SANDBOX_ENDPOINT), e.g. https://127.0.0.1:4431."""
        if self._server is None:
            raise RuntimeError("the APNs stand-in is not started")
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The certificate to trust (APNS_CA_FILE)."""
        return self.tls.cert_file

    def write_key(self, path: Path) -> Path:
        """Write the signing key as Apple hands it out (a PKCS#8 PEM `.p8` file)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            self._key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return path

    def share_key(self, other: ApnsStandIn) -> None:
        """Accept the provider tokens `other` accepts (production and sandbox share a key)."""
        self._key, self._public_key = other._key, other._public_key

    # ------------------------------------------------------------ configuration

    def fail(self, token: str, reason: str, *, times: int | None = None) -> None:
        """Answer pushes to `token` with APNs' error `reason` (`times` times, or always)."""
        if reason not in ERRORS:
            raise ValueError(f"unknown APNs reason {reason!r}")
        self._scripts[token.lower()] = _Script(reason, times)

    def expire_provider_tokens(self) -> None:
        """Every provider token seen so far is refused as expired from now on."""
        self._expired_before = max(self.provider_tokens.values(), default=0) + 1

    def slow(self, seconds: float) -> None:
        """Delay every answer by `seconds` (0 to stop)."""
        self._delay = seconds

    def goaway(self, reason: str = "Shutdown") -> None:
        """Close every open connection with GOAWAY, as APNs does when it restarts a server."""
        for connection in list(self.connections):
            connection.goaway(reason)

    def clear(self) -> None:
        self.received.clear()
        self._scripts.clear()
        self._delay = 0.0

    # ------------------------------------------------------------------ queries

    def tokens(self) -> list[str]:
        return [p.token for p in self.received]

    def for_token(self, token: str) -> list[Push]:
        return [p for p in self.received if p.token == token.lower()]

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[Push]:
        """Wait until at least `count` pushes were accepted."""

        def check() -> bool:
            return len(self.received) >= count

        if not check():
            future = asyncio.get_running_loop().create_future()
            self._waiters.append((check, future))
            try:
                await asyncio.wait_for(future, timeout)
            except TimeoutError:
                raise AssertionError(
                    f"APNs stand-in got {len(self.received)} of {count} pushes"
                ) from None
        return list(self.received)

    # ----------------------------------------------------------------- handling

    def _handle(self, connection: _Connection, stream_id: int, stream: _Stream) -> None:
        at = time.monotonic()
        apns_id = stream.headers.get("apns-id") or str(uuid.uuid4())
        try:
            token, payload, provider_token = self._check(connection, stream)
        except _Refusal as refusal:
            self.counters.rejected[refusal.reason] = (
                self.counters.rejected.get(refusal.reason, 0) + 1
            )
            self._later(connection.answer, stream_id, refusal.status, apns_id, refusal.reason)
            return
        counters = self.counters
        counters.accepted += 1
        counters.first_at = at if counters.first_at is None else counters.first_at
        counters.last_at = at
        if self.record:
            self.received.append(
                Push(
                    token,
                    dict(stream.headers),
                    payload,
                    len(stream.body),
                    at,
                    provider_token,
                    connection.number,
                )
            )
            for check, future in list(self._waiters):
                if not future.done() and check():
                    future.set_result(None)
        self._later(connection.answer, stream_id, 200, apns_id, None)

    def _later(self, answer: Callable[[int, int, str, str | None], None], *args: Any) -> None:
        if self._delay:
            asyncio.get_running_loop().call_later(self._delay, answer, *args)
        else:
            answer(*args)

    def _check(self, connection: _Connection, stream: _Stream) -> tuple[str, dict[str, Any], str]:
        headers = stream.headers
        if stream.duplicate:
            raise _Refusal("DuplicateHeaders")
        if headers.get(":method") != "POST":
            raise _Refusal("MethodNotAllowed")
        path = headers.get(":path", "")
        if not path.startswith("/3/device/"):
            raise _Refusal("BadPath")
        token = path.removeprefix("/3/device/")
        if not token:
            raise _Refusal("MissingDeviceToken")
        provider_token = self._provider_token(connection, headers)
        connection.authenticate()
        if not _TOKEN.fullmatch(token):
            raise _Refusal("BadDeviceToken")
        topic = headers.get("apns-topic")
        if not topic:
            raise _Refusal("MissingTopic")
        if topic != self.bundle_id:
            raise _Refusal("DeviceTokenNotForTopic")
        apns_id = headers.get("apns-id")
        if apns_id is not None and not _UUID.fullmatch(apns_id):
            raise _Refusal("BadMessageId")
        push_type = headers.get("apns-push-type")
        if push_type is not None and push_type not in PUSH_TYPES:
            raise _Refusal("InvalidPushType")
        if headers.get("apns-priority", "10") not in ("1", "5", "10"):
            raise _Refusal("BadPriority")
        expiration = headers.get("apns-expiration")
        if expiration is not None and not (expiration.isascii() and expiration.isdigit()):
            raise _Refusal("BadExpirationDate")
        collapse = headers.get("apns-collapse-id")
        if collapse is not None and len(collapse.encode()) > 64:
            raise _Refusal("BadCollapseId")
        if not stream.body:
            raise _Refusal("PayloadEmpty")
        if len(stream.body) > MAX_PAYLOAD:
            raise _Refusal("PayloadTooLarge")
        try:
            payload = json.loads(stream.body)
        except ValueError:
            raise _Refusal("PayloadEmpty") from None  # APNs has no reason of its own for this
        if not isinstance(payload, dict) or not isinstance(payload.get("aps"), dict):
            raise _Refusal("PayloadEmpty")
        script = self._scripts.get(token.lower())
        if script is not None:
            if script.times is not None:
                script.times -= 1
                if script.times <= 0:
                    del self._scripts[token.lower()]
            raise _Refusal(script.reason)
        return token.lower(), payload, provider_token

    def _provider_token(self, connection: _Connection, headers: Mapping[str, str]) -> str:
        scheme, _, token = headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise _Refusal("MissingProviderToken")
        iat = self.provider_tokens.get(token)
        if iat is None:
            iat = self._validate(token)
            self.provider_tokens[token] = iat
            self.counters.provider_tokens += 1
        if connection.provider_token != token:
            # A connection's token may change once its 20 minutes are up, not sooner.
            if connection.provider_token is not None and iat - connection.iat < MIN_TOKEN_REFRESH:
                raise _Refusal("TooManyProviderTokenUpdates")
            connection.provider_token, connection.iat = token, iat
        if self._expired_before is not None and iat < self._expired_before:
            raise _Refusal("ExpiredProviderToken")
        if iat + TOKEN_LIFETIME < self.clock():
            raise _Refusal("ExpiredProviderToken")
        return token

    def _validate(self, token: str) -> int:
        try:
            header = jwt.get_unverified_header(token)
            claims = jwt.decode(
                token,
                self._public_key,
                algorithms=["ES256"],
                options={"require": ["iss", "iat"], "verify_iat": False},
            )
        except jwt.PyJWTError:
            raise _Refusal("InvalidProviderToken") from None
        if header.get("kid") != self.key_id:
            raise _Refusal("InvalidProviderToken")
        if claims.get("iss") != self.team_id or not isinstance(claims.get("iat"), int):
            raise _Refusal("InvalidProviderToken")
        return int(claims["iat"])


# --------------------------------------------------------------------- standalone


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.peers.apns",
        description="APNs provider API stand-in (TLS + HTTP/2): a counting sink.",
    )
    parser.add_argument("--dir", type=Path, required=True, help="key and certificate go here")
    parser.add_argument("--quiet", action="store_true", help="no log on stderr")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    if not args.quiet:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    standin = ApnsStandIn(args.dir, record=False)
    key_file = standin.write_key(args.dir / "AuthKey.p8")
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)

    async def info(request: web.Request) -> web.Response:
        return web.json_response(
            {
                "endpoint": standin.url,
                "caFile": str(standin.ca_file),
                "keyFile": str(key_file),
                "keyId": standin.key_id,
                "teamId": standin.team_id,
                "bundleId": standin.bundle_id,
            }
        )

    async def stats(request: web.Request) -> web.Response:
        return web.json_response(standin.counters.to_json())

    async def reset(request: web.Request) -> web.Response:
        standin.counters = Counters()
        standin.clear()
        return web.json_response({})

    control = web.Application()
    control.router.add_get("/_info", info)
    control.router.add_get("/_stats", stats)
    control.router.add_post("/_reset", reset)
    runner = web.AppRunner(control, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    async with standin:
        await site.start()
        host, port = runner.addresses[0][:2]
        # stdout carries only this line, so a parent process can read it to find the port.
        print(f"LISTENING http://{host}:{port}", flush=True)
        try:
            await stopping.wait()
        finally:
            await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tests.peers.apns``; serves until SIGTERM/SIGINT."""
    args = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
