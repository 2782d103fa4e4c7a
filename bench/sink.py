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

from aiohttp import web

__all__ = ["Sink", "main"]


class Sink:
    """Arrival log of accepted activities; one instance per process."""

    def __init__(self) -> None:
        self.times: list[float] = []
        self.conversations: list[str] = []
        self.first_body: dict[str, Any] | None = None
        self.rejected = 0
        self._ids = itertools.count(1)

    def app(self) -> web.Application:
        app = web.Application()
        base = "/v3/conversations/{cid}/activities"
        app.router.add_post(base, self._activity)
        app.router.add_post(base + "/{aid}", self._activity)
        app.router.add_put(base + "/{aid}", self._activity)
        app.router.add_get("/_stats", self._stats)
        app.router.add_get("/_arrivals", self._arrivals)
        app.router.add_post("/_reset", self._reset)
        return app

    async def _activity(self, request: web.Request) -> web.Response:
        at = time.monotonic()
        raw = await request.read()
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        if not isinstance(body, dict) or not body.get("type"):
            # The connector's answer to a body it cannot use: never counted as delivered.
            self.rejected += 1
            return web.json_response(
                {"error": {"code": "BadArgument", "message": "not an activity"}}, status=400
            )
        self.times.append(at)
        self.conversations.append(request.match_info["cid"])
        if self.first_body is None:
            self.first_body = body
        return web.Response(body=b'{"id":"%d"}' % next(self._ids), content_type="application/json")

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "accepted": len(self.times),
                "rejected": self.rejected,
                "lastAt": self.times[-1] if self.times else None,
            }
        )

    async def _arrivals(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "times": self.times,
                "conversations": self.conversations,
                "firstBody": self.first_body,
                "rejected": self.rejected,
            }
        )

    async def _reset(self, request: web.Request) -> web.Response:
        self.times = []
        self.conversations = []
        self.first_body = None
        self.rejected = 0
        return web.json_response({"reset": True})


async def _serve(host: str, port: int) -> None:
    runner = web.AppRunner(Sink().app(), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, host, port, backlog=1024)
    await site.start()
    bound_host, bound_port = runner.addresses[0][:2]
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    print(f"LISTENING http://{bound_host}:{bound_port}", flush=True)
    try:
        await stopping.wait()
    finally:
        await runner.cleanup()


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
