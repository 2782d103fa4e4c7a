"""The outbound HTTP stack: every exception its clients can raise maps to a Herald transport
error, and the lean client's bounds hold against real sockets on loopback."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable

import aiohttp
import httptools
import httpx
import pytest
from yarl import URL

from outbound.errors import (
    BadAnswer,
    ConnectFailed,
    ConnectionLost,
    InvalidRequest,
    TimedOut,
    TlsFailed,
    TransportError,
    kind_of,
    map_transport_error,
)
from outbound.http import LeanHttpClient


def _subclasses(root: type[BaseException]) -> set[type[BaseException]]:
    found = {root}
    for sub in root.__subclasses__():
        found |= _subclasses(sub)
    return found


_NOT_TRANSPORT = {httpx.HTTPStatusError, httpx.HTTPError}
"""An HTTP status is an answer (raise_for_status), read by the caller, not a failed exchange;
httpx.HTTPError is only the common base of both."""

LIBRARY_EXCEPTIONS = sorted(
    (
        _subclasses(aiohttp.ClientError)
        | _subclasses(httpx.HTTPError)
        | _subclasses(httpx.InvalidURL)
        | _subclasses(httptools.HttpParserError)
        | _subclasses(ssl.SSLError)
        | _subclasses(ConnectionError)
        | {TimeoutError, asyncio.TimeoutError, socket.gaierror, socket.timeout, OSError}
    )
    - _NOT_TRANSPORT,
    key=lambda t: f"{t.__module__}.{t.__qualname__}",
)


@pytest.mark.parametrize(
    "exc_type", LIBRARY_EXCEPTIONS, ids=lambda t: f"{t.__module__}.{t.__qualname__}"
)
def test_every_exception_the_stack_can_raise_is_mapped(exc_type: type[BaseException]) -> None:
    kind = kind_of(exc_type)
    assert kind is not None, f"{exc_type} has no rule in outbound.errors"
    assert kind is not TransportError, f"{exc_type} falls through to the catch-all"


@pytest.mark.parametrize(
    ("exc_type", "kind"),
    [
        (aiohttp.ClientConnectorCertificateError, TlsFailed),
        (aiohttp.ClientConnectorDNSError, ConnectFailed),
        (aiohttp.ServerDisconnectedError, ConnectionLost),
        (aiohttp.ConnectionTimeoutError, TimedOut),
        (aiohttp.SocketTimeoutError, TimedOut),
        (aiohttp.ClientPayloadError, BadAnswer),
        (aiohttp.NonHttpUrlClientError, InvalidRequest),
        (httpx.ConnectTimeout, TimedOut),
        (httpx.ReadTimeout, TimedOut),
        (httpx.ConnectError, ConnectFailed),
        (httpx.ReadError, ConnectionLost),
        (httpx.RemoteProtocolError, BadAnswer),
        (httpx.UnsupportedProtocol, InvalidRequest),
        (httptools.HttpParserInvalidStatusError, BadAnswer),
        (ssl.SSLCertVerificationError, TlsFailed),
        (socket.gaierror, ConnectFailed),
        (ConnectionRefusedError, ConnectFailed),
        (ConnectionResetError, ConnectionLost),
        (BrokenPipeError, ConnectionLost),
        (TimeoutError, TimedOut),
    ],
)
def test_what_each_kind_of_failure_means(
    exc_type: type[BaseException], kind: type[TransportError]
) -> None:
    assert kind_of(exc_type) is kind


def test_mapped_errors_keep_a_short_reason_and_say_whether_to_retry() -> None:
    refused = map_transport_error(ConnectionRefusedError(111, "Connection refused"))
    assert isinstance(refused, ConnectFailed) and refused.retryable
    assert refused.reason.startswith("connect failed (ConnectionRefusedError")
    bad = map_transport_error(httpx.UnsupportedProtocol("gopher"))
    assert isinstance(bad, InvalidRequest) and isinstance(bad, ValueError)
    assert not bad.retryable
    unknown = map_transport_error(RuntimeError("?"))
    assert type(unknown) is TransportError and unknown.retryable
    assert map_transport_error(refused) is refused


Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[URL]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> URL:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return URL(f"http://127.0.0.1:{port}/x")

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> None:
    await reader.readuntil(b"\r\n\r\n")


async def _request(client: LeanHttpClient, url: URL, timeout: float = 5.0) -> int:
    return (await client.request("GET", url, {}, None, timeout=timeout)).status


async def test_a_refused_connection_is_connect_failed() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = LeanHttpClient()
    try:
        with pytest.raises(ConnectFailed):
            await _request(client, URL(f"http://127.0.0.1:{port}/"))
    finally:
        await client.aclose()


async def test_a_peer_that_never_answers_times_out(
    serve: Callable[[Handler], Awaitable[URL]],
) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        await asyncio.sleep(5)

    url = await serve(silent)
    client = LeanHttpClient()
    try:
        with pytest.raises(TimedOut):
            await _request(client, url, timeout=0.3)
    finally:
        await client.aclose()


async def test_an_answer_cut_off_midway_is_connection_lost(
    serve: Callable[[Handler], Awaitable[URL]],
) -> None:
    async def cut(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nshort")
        await writer.drain()
        writer.close()

    url = await serve(cut)
    client = LeanHttpClient()
    try:
        with pytest.raises(ConnectionLost):
            await _request(client, url)
    finally:
        await client.aclose()


async def test_garbage_is_a_bad_answer(serve: Callable[[Handler], Awaitable[URL]]) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"SMTP ready\r\n\r\n")
        await writer.drain()
        await asyncio.sleep(1)

    url = await serve(garbage)
    client = LeanHttpClient()
    try:
        with pytest.raises(BadAnswer):
            await _request(client, url)
    finally:
        await client.aclose()


async def test_an_answer_over_the_size_limit_is_refused(
    serve: Callable[[Handler], Awaitable[URL]],
) -> None:
    async def large(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await _read_request(reader)
            size = 2048
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size + b"x" * size)
            await writer.drain()

    url = await serve(large)
    roomy, tight = LeanHttpClient(), LeanHttpClient(max_response_bytes=1024)
    try:
        assert await _request(roomy, url) == 200
        with pytest.raises(BadAnswer, match="larger than 1024 bytes"):
            await _request(tight, url)
    finally:
        await roomy.aclose()
        await tight.aclose()


async def test_tls_to_a_peer_that_speaks_no_tls_is_tls_failed(
    serve: Callable[[Handler], Awaitable[URL]],
) -> None:
    async def plain(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    url = await serve(plain)
    client = LeanHttpClient()
    try:
        with pytest.raises((TlsFailed, ConnectionLost)):
            await _request(client, url.with_scheme("https"))
    finally:
        await client.aclose()


async def test_requests_that_cannot_be_sent_are_invalid_and_never_retried() -> None:
    client = LeanHttpClient()
    try:
        with pytest.raises(InvalidRequest) as caught:
            await client.request(
                "POST", URL("http://127.0.0.1:9/"), {"X": "a\r\nb"}, b"{}", timeout=1
            )
        assert not caught.value.retryable
    finally:
        await client.aclose()
