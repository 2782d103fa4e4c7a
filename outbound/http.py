"""Herald's outbound HTTP/1.1 transport: the Bot Connector, FCM and Web Push calls go through it.

Why not aiohttp's ClientSession here: measured on this project's 2-core machines against a
local connector, a ClientSession request costs ~300 µs of CPU (header multidicts, cookie
handling, tracing hooks, timers), while the same POST written to a pooled asyncio transport and
parsed by httptools (the C parser uvicorn uses) costs ~130 µs. At fan-out that is the difference
between the HTTP client and the rest of the turn being the bottleneck. Herald's calls are
simple (a POST/PUT/GET/DELETE of a small body, a small answer), so this client does only that:
pooled keep-alive connections per origin, TLS through asyncio, and the answer's status, headers
(names lower-cased) and whole body. No redirects are followed, no cookies kept, no proxy used.

Bounds, so that no peer can hold a worker or its memory:

- `connect_timeout` (default 10 s): TCP connect plus TLS handshake of a new connection;
- `timeout` (per request, required): one deadline for the whole exchange once a connection
  slot is free (connecting, sending, and reading the answer to its last byte), so it is also
  the read timeout: a peer that stops sending mid-answer is cut off when it passes;
- `max_response_bytes` (default 8 MiB): status line, headers and body together; a larger
  answer closes the connection and fails with BadAnswer;
- `max_connections_per_origin` (default 64): requests beyond it wait for a connection.

Every failure is one of Herald's transport errors (`outbound.errors`: ConnectFailed, TlsFailed,
TimedOut, ConnectionLost, BadAnswer, InvalidRequest), never a library's exception. Anything
unusual (a malformed answer, a dropped or half-used connection) closes the connection, and the
caller decides whether to retry (`TransportError.retryable`).
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from dataclasses import dataclass
from typing import Any

import httptools
from yarl import URL

from outbound.errors import BadAnswer, ConnectionLost, InvalidRequest, map_transport_error

__all__ = ["DEFAULT_MAX_RESPONSE_BYTES", "HttpResponse", "LeanHttpClient"]

_DEFAULT_PORTS = {"http": 80, "https": 443}
DEFAULT_MAX_RESPONSE_BYTES = 8 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """Status, headers (names lower-cased) and the whole body of one answer."""

    status: int
    headers: dict[str, str]
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; carries one request at a time."""

    def __init__(self, max_response_bytes: int) -> None:
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[HttpResponse] | None = None
        self._headers: dict[str, str] = {}
        self._body: list[bytes] = []
        self._limit = max_response_bytes
        self._received = 0
        self.usable = True

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        if self._waiter is None:
            # Bytes nobody asked for: the connection is out of step; drop it.
            self.close()
            return
        self._received += len(data)
        if self._received > self._limit:
            self._fail(BadAnswer(f"bad answer (larger than {self._limit} bytes)"))
            self.close()
            return
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def eof_received(self) -> bool:
        self.usable = False
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self._fail(exc or ConnectionResetError("the server closed the connection"))

    # httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        if not self._parser.should_keep_alive():
            self.usable = False
        response = HttpResponse(self._parser.get_status_code(), self._headers, b"".join(self._body))
        self._headers, self._body = {}, []
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(response)

    # ours
    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def send(self, data: bytes) -> asyncio.Future[HttpResponse]:
        assert self._transport is not None
        self._received = 0
        self._waiter = asyncio.get_running_loop().create_future()
        self._transport.write(data)
        return self._waiter

    def close(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.close()


class _Origin:
    """The connections to one scheme://host:port, at most `limit` at a time."""

    def __init__(self, limit: int) -> None:
        self.idle: deque[_Connection] = deque()
        self.slots = asyncio.Semaphore(limit)


class LeanHttpClient:
    """Pooled HTTP/1.1 requests with whole-body answers; one instance per process."""

    def __init__(
        self,
        *,
        max_connections_per_origin: int = 64,
        connect_timeout: float = 10.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        ssl_context: ssl.SSLContext | None = None,
        user_agent: str = "Herald (Microsoft-BotFramework/3.1)",
    ) -> None:
        self._limit = max_connections_per_origin
        self._connect_timeout = connect_timeout
        self._max_response_bytes = max_response_bytes
        self._ssl = ssl_context
        self._user_agent = user_agent
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        self._closed = False

    async def request(
        self,
        method: str,
        url: URL,
        headers: dict[str, str],
        body: bytes | None,
        *,
        timeout: float,  # noqa: ASYNC109 (one deadline for connect + send + read)
    ) -> HttpResponse:
        """Send one request and read the whole answer within `timeout` seconds; a
        TransportError (outbound.errors) when no answer could be had."""
        if self._closed:
            raise ConnectionLost("connection lost (the HTTP client is closed)")
        if url.scheme not in _DEFAULT_PORTS or not url.raw_host:
            # Anything else would be spoken to as HTTP (gopher://, ftp://, a relative URL).
            raise InvalidRequest(f"not an absolute http(s) URL: {url.scheme}://{url.raw_host}")
        head = self._head(method, url, headers, body)
        try:
            return await self._exchange(url, head + body if body else head, seconds=timeout)
        except (OSError, TimeoutError, httptools.HttpParserError) as exc:
            raise map_transport_error(exc) from exc

    async def _exchange(self, url: URL, data: bytes, *, seconds: float) -> HttpResponse:
        scheme, host = url.scheme, url.raw_host or ""
        port = url.port or _DEFAULT_PORTS.get(scheme, 80)
        key = (scheme, host, port)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(self._limit)
        async with origin.slots:
            async with asyncio.timeout(seconds):
                connection = await self._connection(origin, scheme, host, port)
                try:
                    response = await connection.send(data)
                except BaseException:
                    connection.close()
                    raise
            if connection.usable and not self._closed:
                origin.idle.append(connection)
            else:
                connection.close()
            return response

    def _head(self, method: str, url: URL, headers: dict[str, str], body: bytes | None) -> bytes:
        host = url.raw_host or ""
        if ":" in host:
            host = f"[{host}]"
        if url.explicit_port is not None:
            host = f"{host}:{url.port}"
        target = url.raw_path_qs
        if not target.isascii() or not target.isprintable() or " " in target:
            raise InvalidRequest("the request target must be printable ASCII without spaces")
        lines = [f"{method} {target} HTTP/1.1", f"Host: {host}",
                 f"User-Agent: {self._user_agent}"]
        for name, value in headers.items():
            if "\r" in value or "\n" in value or "\r" in name or "\n" in name:
                raise InvalidRequest(f"header {name!r} contains a line break")
            lines.append(f"{name}: {value}")
        lines.append(f"Content-Length: {len(body) if body else 0}")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _connection(self, origin: _Origin, scheme: str, host: str, port: int) -> _Connection:
        while origin.idle:
            connection = origin.idle.pop()
            if connection.usable:
                return connection
        loop = asyncio.get_running_loop()
        tls: Any = None
        if scheme == "https":
            if self._ssl is None:
                self._ssl = ssl.create_default_context()
            tls = self._ssl
        async with asyncio.timeout(self._connect_timeout):
            _, protocol = await loop.create_connection(
                lambda: _Connection(self._max_response_bytes),
                host,
                port,
                ssl=tls,
                server_hostname=host if tls else None,
            )
        return protocol

    async def aclose(self) -> None:
        self._closed = True
        for origin in self._origins.values():
            while origin.idle:
                origin.idle.pop().close()
        self._origins.clear()
