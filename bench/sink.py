"""A minimal Bot Connector sink for the broadcast benchmark: it records when each message arrived.

``tests/peers/connector.py`` is the full stand-in (errors, rosters, Teams throttling) and keeps
only counters and the first/last accept time when run as a sink. The benchmark needs the arrival
time of *every* message to report per-message latency percentiles, so this sink does one thing:
answer ``POST {serviceUrl}/v3/conversations/{id}/activities[/{replyToId}]`` (and ``PUT`` edits)
with ``{"id": ...}`` the way the Bot Connector does, and remember ``(time.monotonic(),
conversation id)`` per accepted message. ``time.monotonic()`` is ``CLOCK_MONOTONIC``, one clock
for every process on a Linux host, so the benchmark driver can subtract its own POST time.

Run: ``python bench/sink.py [--port 0]``; it prints ``LISTENING http://127.0.0.1:<port>`` and
serves until SIGTERM/SIGINT. Control routes:

* ``GET /_stats`` -- ``{"accepted", "rejected", "conversations", "lastAt"}`` (cheap, for polling)
* ``GET /_arrivals`` -- ``{"times": [...], "conversations": [...], "firstBody": {...}}``
* ``POST /_reset`` -- forget everything
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import signal
import sys
import time
from typing import Any
from urllib.parse import unquote

import httptools

__all__ = ["Sink", "main"]


class Sink:
    """Arrival log of accepted activities; one instance per process."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.conversations: list[str] = []
        self.first_body: dict[str, Any] | None = None
        self.rejected = 0
        self._ids = itertools.count(1)

    def answer(self, method: str, path: str, raw: bytes, at: float) -> tuple[int, bytes]:
        """Status and JSON body for one request."""
        route = path.split("?", 1)[0]
        if route.startswith("/v3/conversations/") and method in ("POST", "PUT"):
            parts = route.split("/")  # "", v3, conversations, cid, activities[, aid]
            if len(parts) in (5, 6) and parts[4] == "activities":
                return self._activity(unquote(parts[3]), raw, at)
        if route == "/_stats" and method == "GET":
            return 200, _json(
                {
                    "accepted": len(self.times),
                    "rejected": self.rejected,
                    "lastAt": self.times[-1] if self.times else None,
                }
            )
        if route == "/_arrivals" and method == "GET":
            return 200, _json(
                {
                    "times": self.times,
                    "conversations": self.conversations,
                    "firstBody": self.first_body,
                    "rejected": self.rejected,
                }
            )
        if route == "/_reset" and method == "POST":
            self.times, self.conversations, self.first_body, self.rejected = [], [], None, 0
            return 200, _json({"reset": True})
        return 404, _json({"error": {"code": "NotFound", "message": route}})

    def _activity(self, conversation: str, raw: bytes, at: float) -> tuple[int, bytes]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("type"):
            # The connector's answer to a body it cannot use: never counted as delivered.
            self.rejected += 1
            return 400, _json({"error": {"code": "BadArgument", "message": "not an activity"}})
        self.times.append(at)
        self.conversations.append(conversation)
        if self.first_body is None:
            self.first_body = body
        return 200, b'{"id":"%d"}' % next(self._ids)


def _json(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


_REASONS = {200: b"OK", 400: b"Bad Request", 404: b"Not Found"}


class _Server(asyncio.Protocol):
    """HTTP/1.1 keep-alive server for the sink: httptools parses, the sink answers.

    aiohttp's server spends ~0.3 ms of CPU per request on this 2-core machine, a third of what
    Herald spends sending it; this one spends a fraction of that, so the benchmark measures
    Herald rather than the stand-in for a service that in production runs elsewhere.
    """

    def __init__(self, sink: Sink) -> None:
        self._sink = sink
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._body: list[bytes] = []
        self._arrived = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError:
            if self._transport is not None:
                self._transport.close()

    def on_message_begin(self) -> None:
        self._arrived = time.monotonic()
        self._url, self._body = b"", []

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method().decode()
        status, payload = self._sink.answer(
            method, self._url.decode("latin-1"), b"".join(self._body), self._arrived
        )
        keep = self._parser.should_keep_alive()
        head = b"HTTP/1.1 %d %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n" % (
            status,
            _REASONS.get(status, b"OK"),
            len(payload),
        )
        head += b"\r\n" if keep else b"Connection: close\r\n\r\n"
        assert self._transport is not None
        self._transport.write(head + payload)
        if not keep:
            self._transport.close()


async def _serve(host: str, port: int) -> None:
    sink = Sink()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Server(sink), host, port, backlog=1024)
    bound_host, bound_port = server.sockets[0].getsockname()[:2]
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(f"LISTENING http://{bound_host}:{bound_port}", flush=True)
    try:
        await stopping.wait()
    finally:
        server.close()
        await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Arrival-time recording Bot Connector sink.")
    parser.add_argument("--host", default="127.0.0.1", choices=["127.0.0.1", "localhost"])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
