"""A small HTTP/2 client over TLS for the APNs channel, on `h2` (the protocol state machine).

Why not a general client: APNs takes one request per push, so the rate is the number of
requests one connection can carry at once. Measured against the APNs stand-in on this machine
(tests/peers/apns.py, 2 cores): httpx's HTTP/2 (httpcore) managed ~340 requests/s with 64 or
512 in flight on one connection, and aioapns ~420/s sequentially; aioapns cannot be pointed at
another host without replacing its protocol classes, and it mints a provider token per
connection. This client keeps what APNs needs and nothing else:

- a few long-lived connections per origin (TLS, ALPN `h2`), each carrying as many concurrent
  streams as the server's SETTINGS_MAX_CONCURRENT_STREAMS allows *as it changes* (APNs allows
  one stream until the first request is authenticated, then many): a request waits for a free
  stream, never exceeds the limit;
- flow control honoured both ways (the body waits for window; received data is acknowledged);
- a GOAWAY or a refused stream tells which requests the server never processed
  (`NotProcessed`, safe to send again at once); a connection lost under a request it had
  sent is `ConnectionLost` (it may or may not have been processed);
- no proxies, no redirects, no cookies: requests go to the configured origin only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import (
    ConnectionTerminated,
    DataReceived,
    RemoteSettingsChanged,
    ResponseReceived,
    StreamEnded,
    StreamReset,
    WindowUpdated,
)
from h2.exceptions import H2Error, ProtocolError
from hpack import NeverIndexedHeaderTuple

__all__ = ["ConnectionLost", "Http2Origin", "Http2Response", "NotProcessed"]

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT: Final = 10.0
_FIRST_SETTINGS_TIMEOUT: Final = 10.0


class ConnectionLost(OSError):
    """The connection ended while a request was under way: it may have been processed."""


class NotProcessed(ConnectionLost):
    """The server said it did not process the request (GOAWAY below its stream, or
    REFUSED_STREAM): sending it again cannot duplicate it."""


@dataclass(frozen=True, slots=True)
class Http2Response:
    status: int
    headers: dict[str, str]
    body: bytes


@dataclass(slots=True)
class _Stream:
    future: asyncio.Future[Http2Response]
    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    unsent: memoryview | None = None
    """Body bytes still waiting for flow-control window."""


class _Connection(asyncio.Protocol):
    """One TLS connection speaking HTTP/2 as a client."""

    def __init__(self, origin: Http2Origin) -> None:
        self._origin = origin
        # Outbound headers are built by Herald (lower-case names, no whitespace): h2's checks
        # of them cost more CPU than the rest of a request (measured: ~150 µs each).
        self.h2 = H2Connection(
            H2Configuration(
                client_side=True,
                header_encoding="utf-8",
                validate_outbound_headers=False,
                normalize_outbound_headers=False,
            )
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.settled = asyncio.get_running_loop().create_future()
        """Resolved when the server's first SETTINGS arrived (its stream limit is known)."""
        self.closed = False
        self.active = 0
        self.limit = 1
        self._flush_scheduled = False

    # -------------------------------------------------------------- asyncio side

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.h2.initiate_connection()
        self._flush()

    def connection_lost(self, exc: Exception | None) -> None:
        self._close(ConnectionLost(f"connection to {self._origin.name} lost: {exc or 'closed'}"))

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except ProtocolError as exc:
            self._close(ConnectionLost(f"HTTP/2 protocol error from {self._origin.name}: {exc}"))
            return
        for event in events:
            if isinstance(event, ResponseReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    for name, value in event.headers or ():
                        # header_encoding="utf-8": h2 gives str pairs (its types say bytes)
                        key, text = str(name), str(value)
                        if key == ":status":
                            stream.status = int(text)
                        else:
                            stream.headers[key] = text
            elif isinstance(event, DataReceived):
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.body += event.data or b""
                self.h2.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, StreamEnded):
                self._finish(event.stream_id)
            elif isinstance(event, StreamReset):
                self._reset(event.stream_id, event.error_code)
            elif isinstance(event, RemoteSettingsChanged):
                self.limit = min(
                    self.h2.remote_settings.max_concurrent_streams, self._origin.streams
                )
                if not self.settled.done():
                    self.settled.set_result(None)
                self._origin._wake(everyone=True)
            elif isinstance(event, WindowUpdated):
                self._send_pending()
            elif isinstance(event, ConnectionTerminated):
                self._goaway(
                    event.last_stream_id or 0, int(event.error_code or 0), event.additional_data
                )
        self._schedule_flush()

    # ------------------------------------------------------------------- requests

    @property
    def free(self) -> bool:
        return not self.closed and self.settled.done() and self.active < self.limit

    def start(self, headers: Sequence[tuple[bytes, bytes]], body: bytes) -> _Stream:
        """Open a stream and send the request (the caller checked `free`)."""
        stream_id = self.h2.get_next_available_stream_id()
        stream = _Stream(asyncio.get_running_loop().create_future())
        self.h2.send_headers(stream_id, headers, end_stream=not body)
        self.streams[stream_id] = stream
        self.active += 1
        if body:
            stream.unsent = memoryview(body)
            self._send_body(stream_id, stream)
        self._schedule_flush()
        return stream

    def cancel(self, stream: _Stream) -> None:
        """Give up on a request (timeout, cancellation): reset its stream."""
        for stream_id, candidate in list(self.streams.items()):
            if candidate is stream:
                del self.streams[stream_id]
                self.active -= 1
                with contextlib.suppress(H2Error):
                    self.h2.reset_stream(stream_id, ErrorCodes.CANCEL)
                self._flush()
                self._origin._wake()
                return

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            with contextlib.suppress(H2Error):
                self.h2.close_connection()
                self._flush()
            self.transport.close()
        self._close(ConnectionLost(f"connection to {self._origin.name} closed"))

    # ------------------------------------------------------------------ internals

    def _send_body(self, stream_id: int, stream: _Stream) -> None:
        data = stream.unsent
        while data is not None and len(data):
            window = min(
                self.h2.local_flow_control_window(stream_id), self.h2.max_outbound_frame_size
            )
            if window <= 0:
                break
            chunk, data = data[:window], data[window:]
            self.h2.send_data(stream_id, bytes(chunk), end_stream=not len(data))
        stream.unsent = data if data is not None and len(data) else None

    def _send_pending(self) -> None:
        for stream_id, stream in list(self.streams.items()):
            if stream.unsent is not None:
                try:
                    self._send_body(stream_id, stream)
                except H2Error:
                    continue

    def _schedule_flush(self) -> None:
        """Write what h2 has to send once this turn of the event loop is over: the requests
        started (and data acknowledged) in one turn leave in one write, not a write each
        (measured: a write per request was a third of the client's CPU on loopback)."""
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.transport is not None and not self.transport.is_closing():
            data = self.h2.data_to_send()
            if data:
                self.transport.write(data)

    def _finish(self, stream_id: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        self.active -= 1
        if not stream.future.done():
            stream.future.set_result(
                Http2Response(stream.status, stream.headers, bytes(stream.body))
            )
        self._origin._wake()

    def _reset(self, stream_id: int, code: int) -> None:
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        self.active -= 1
        if not stream.future.done():
            error: ConnectionLost = (
                NotProcessed(f"{self._origin.name} refused the stream")
                if code == ErrorCodes.REFUSED_STREAM
                else ConnectionLost(f"{self._origin.name} reset the stream (error {code})")
            )
            stream.future.set_exception(error)
        self._origin._wake()

    def _goaway(self, last_stream_id: int, code: int, data: bytes | None) -> None:
        """The server is closing: no new streams here; those above `last_stream_id` were
        not processed; the rest may still be answered before the connection ends."""
        self.closed = True
        detail = (data or b"").decode(errors="replace")[:200]
        log.info("%s sent GOAWAY (error %s) %s", self._origin.name, code, detail)
        for stream_id in [s for s in self.streams if s > last_stream_id]:
            stream = self.streams.pop(stream_id)
            self.active -= 1
            if not stream.future.done():
                stream.future.set_exception(
                    NotProcessed(f"{self._origin.name} closed the connection (GOAWAY) {detail}")
                )
        self._origin._discard(self)
        if not self.streams and self.transport is not None:
            self.transport.close()

    def _close(self, error: ConnectionLost) -> None:
        self.closed = True
        if not self.settled.done():
            self.settled.set_exception(error)
            self.settled.exception()  # retrieved: nobody may be waiting for it
        streams, self.streams = self.streams, {}
        self.active = 0
        for stream in streams.values():
            if not stream.future.done():
                stream.future.set_exception(error)
        self._origin._discard(self)


class Http2Origin:
    """Requests to one `https://host:port` origin over up to `connections` HTTP/2 connections,
    kept open and reused; each request waits for a free stream."""

    def __init__(
        self,
        host: str,
        port: int,
        context: ssl.SSLContext,
        *,
        connections: int = 8,
        streams: int = 64,
        name: str | None = None,
    ) -> None:
        context.set_alpn_protocols(["h2"])
        self.streams = streams
        """Streams one connection carries at most, however many the server allows: h2 counts
        a connection's open streams on every new one, so many short connections' worth of
        streams on one costs more CPU than a few connections (measured: 512 streams on one
        connection ~120 µs a request in that count alone)."""
        self.host = host
        self.port = port
        self.name = name or f"{host}:{port}"
        self._authority = self.name.encode()
        self._context = context
        self._max_connections = connections
        self._connections: list[_Connection] = []
        self._connecting = 0
        self._waiting: deque[asyncio.Future[None]] = deque()
        """Requests waiting for a free stream, first come first served: a stream that ends
        wakes one of them (waking all, thousands during a broadcast, costs O(n²))."""
        self._closed = False
        self.opened = 0
        """Connections opened so far (tests, metrics)."""

    async def request(
        self,
        method: str,
        path: str,
        headers: Sequence[tuple[str, str]],
        body: bytes,
        *,
        timeout: float,  # noqa: ASYNC109 (one deadline for the stream, connect and answer)
    ) -> Http2Response:
        """Send one request and wait for its answer. Raises TimeoutError, ConnectionLost
        (NotProcessed when the server never processed it) or OSError (cannot connect)."""
        async with asyncio.timeout(timeout):
            connection = await self._acquire()
            stream = connection.start(
                [
                    (b":method", method.encode()),
                    (b":scheme", b"https"),
                    (b":authority", self._authority),
                    # A path differs per request: indexing it would only push the headers that
                    # repeat (the provider token) out of HPACK's table, to be encoded again.
                    NeverIndexedHeaderTuple(b":path", path.encode()),
                    *[(name.encode(), value.encode()) for name, value in headers],
                ],
                body,
            )
            try:
                return await asyncio.shield(stream.future)
            except (TimeoutError, asyncio.CancelledError):
                connection.cancel(stream)
                raise

    async def _acquire(self) -> _Connection:
        while True:
            if self._closed:
                raise ConnectionLost(f"the client for {self.name} is closed")
            best: _Connection | None = None
            for connection in self._connections:
                if connection.free and (best is None or connection.active < best.active):
                    best = connection
            if best is not None and (
                best.active == 0
                or len(self._connections) + self._connecting >= self._max_connections
                or best.active < best.limit // 2
            ):
                return best
            if len(self._connections) + self._connecting < self._max_connections:
                connection = await self._connect()
                if connection.free:
                    return connection
                continue
            if best is not None:
                return best
            waiter = asyncio.get_running_loop().create_future()
            self._waiting.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake()  # woken, but leaving: the stream goes to the next one
                raise

    async def _connect(self) -> _Connection:
        self._connecting += 1
        try:
            loop = asyncio.get_running_loop()
            async with asyncio.timeout(_CONNECT_TIMEOUT):
                transport, protocol = await loop.create_connection(
                    lambda: _Connection(self), self.host, self.port,
                    ssl=self._context, server_hostname=self.host,
                )
            ssl_object = transport.get_extra_info("ssl_object")
            if ssl_object is None or ssl_object.selected_alpn_protocol() != "h2":
                transport.close()
                raise ConnectionLost(f"{self.name} does not speak HTTP/2 (ALPN h2)")
            try:
                async with asyncio.timeout(_FIRST_SETTINGS_TIMEOUT):
                    await asyncio.shield(protocol.settled)
            except BaseException:
                protocol.close()
                raise
            self._connections.append(protocol)
            self.opened += 1
            return protocol
        finally:
            self._connecting -= 1
            self._wake(everyone=True)

    def _wake(self, *, everyone: bool = False) -> None:
        """A stream became free (`everyone`: the connections changed): wake who waits."""
        while self._waiting:
            waiter = self._waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                if not everyone:
                    return

    def _discard(self, connection: _Connection) -> None:
        with contextlib.suppress(ValueError):
            self._connections.remove(connection)
        self._wake(everyone=True)

    async def aclose(self) -> None:
        """Close every connection (requests under way end with ConnectionLost)."""
        self._closed = True
        for connection in list(self._connections):
            connection.close()
        self._connections.clear()
        self._wake(everyone=True)
        await asyncio.sleep(0)
