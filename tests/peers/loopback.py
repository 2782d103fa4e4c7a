"""The lifetime shared by the in-process HTTP stand-ins (Bot Connector, FCM): an aiohttp
application served on a loopback address, started and stopped from the test's event loop."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Self

from aiohttp import web


class LoopbackServer:
    """Serves `make_app()` on `host:port` (`port=0`: an ephemeral port); `url` once started."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None
        self._url: str | None = None

    def make_app(self) -> web.Application:
        raise NotImplementedError  # each stand-in routes its own API

    def access_logger(self) -> logging.Logger | None:
        """Where requests are logged (None: nowhere, the default for tests)."""
        return None

    async def start(self) -> None:
        """Bind and serve; afterwards `url` is known."""
        if self._runner is not None:
            raise RuntimeError(f"{type(self).__name__} already started")
        runner = web.AppRunner(
            self.make_app(), access_log=self.access_logger(), shutdown_timeout=1.0
        )
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        host, port = runner.addresses[0][:2]
        self._runner = runner
        self.port = port
        self._url = f"http://{host}:{port}"

    async def stop(self) -> None:
        """Close the listener and open connections; idempotent."""
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()

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
        """The base URL, e.g. `http://127.0.0.1:54321` (an activity's serviceUrl, FCM_ENDPOINT)."""
        if self._url is None:
            raise RuntimeError(f"{type(self).__name__} is not started")
        return self._url
