"""A null push service for the Web Push benchmark: answers every push 201, decrypts nothing.

web-push-testing verifies each push's VAPID JWT and decrypts its body, which costs it several
milliseconds of CPU per push on one Node thread; this sink answers ``POST /push/<id>`` the way
a push service accepts a message (``201 Created`` with a ``Location``) after checking only that
the request looks like a Web Push (aes128gcm body, TTL and a vapid Authorization), so the
benchmark can show what Herald itself sustains when the push service is not the limit.

Run: ``python bench/push_sink.py [--port 0]``; it prints ``LISTENING http://127.0.0.1:<port>``
and serves until SIGTERM/SIGINT. ``GET /_stats`` answers ``{"accepted", "rejected", "lastAt"}``
(``lastAt``: ``time.time()`` of the last accepted push).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
import time

import httptools

__all__ = ["main"]


class _Stats:
    def __init__(self) -> None:
        self.accepted = 0
        self.rejected = 0
        self.last_at: float | None = None


class _Server(asyncio.Protocol):
    """HTTP/1.1 keep-alive, parsed by httptools (a fraction of aiohttp's cost per request)."""

    def __init__(self, stats: _Stats) -> None:
        self._stats = stats
        self._parser = httptools.HttpRequestParser(self)
        self._transport: asyncio.Transport | None = None
        self._url = b""
        self._headers: dict[bytes, bytes] = {}
        self._size = 0

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
        self._url, self._headers, self._size = b"", {}, 0

    def on_url(self, url: bytes) -> None:
        self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.lower()] = value

    def on_body(self, body: bytes) -> None:
        self._size += len(body)

    def on_message_complete(self) -> None:
        method = self._parser.get_method()
        status, extra, payload = 404, b"", b""
        if method == b"GET" and self._url == b"/_stats":
            status = 200
            payload = json.dumps(
                {
                    "accepted": self._stats.accepted,
                    "rejected": self._stats.rejected,
                    "lastAt": self._stats.last_at,
                }
            ).encode()
        elif method == b"POST" and self._url.startswith(b"/push/"):
            looks_right = (
                self._headers.get(b"content-encoding") == b"aes128gcm"
                and self._headers.get(b"ttl", b"").isdigit()
                and self._headers.get(b"authorization", b"").startswith(b"vapid t=")
                and 0 < self._size <= 4096
            )
            if looks_right:
                self._stats.accepted += 1
                self._stats.last_at = time.time()
                status, extra = 201, b"Location: " + self._url + b"/m\r\n"
            else:
                self._stats.rejected += 1
                status = 400
        reason = {200: b"OK", 201: b"Created", 400: b"Bad Request"}.get(status, b"Not Found")
        head = b"HTTP/1.1 %d %s\r\n%sContent-Length: %d\r\n\r\n" % (
            status,
            reason,
            extra,
            len(payload),
        )
        assert self._transport is not None
        self._transport.write(head + payload)
        if not self._parser.should_keep_alive():
            self._transport.close()


async def _serve(port: int) -> None:
    stats = _Stats()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Server(stats), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    stopping = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(f"LISTENING http://127.0.0.1:{bound}", flush=True)
    try:
        await stopping.wait()
    finally:
        server.close()
        await server.wait_closed()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="A push service that accepts every push.")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
