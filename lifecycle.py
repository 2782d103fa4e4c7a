"""Herald's running life: open the stores and clients, start the workers, keep the history
trimmed, and on shutdown stop and close everything in reverse.

A shared backend (Cosmos DB and Azure Storage Queues) may be unreachable at start-up: Herald then
serves anyway (/readyz answers 503) and keeps trying, instead of crash-looping. The embedded
backend is a local file: it opens at once or start-up fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol

from aiohttp import web

from config import Settings
from logs import MalformedRequests
from storage.backends import Stores
from storage.protocols import InboxStore

__all__ = ["Client", "Closable", "Lifecycle", "Service", "purge_history"]

log = logging.getLogger("herald")

HOUR = 3600.0


class Service(Protocol):
    """Background work that runs while the store is open (worker, router, Graph source)."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Closable(Protocol):
    async def aclose(self) -> None: ...


class Client(Closable, Protocol):
    """A client with connections of its own (the Bot Connector transport, Graph)."""

    async def open(self) -> None: ...


async def purge_history(
    inbox: InboxStore, history_days: int, started: asyncio.Event, every_seconds: float = HOUR
) -> None:
    """Hourly, once the store is open: drop history entries past HERALD_HISTORY_DAYS."""
    await started.wait()
    while True:
        try:
            purged = await inbox.purge_expired()
            if purged:
                log.info("purged %d history entries older than %d days", purged, history_days)
        except Exception:
            log.exception("housekeeping failed; trying again later")
        await asyncio.sleep(every_seconds)


def _short(exc: BaseException) -> str:
    """An exception as one short log line (SDK errors carry whole HTTP responses)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """The app's cleanup context (`app.cleanup_ctx.append(lifecycle.run)`)."""

    settings: Settings
    stores: Stores
    clients: Sequence[Client]
    """Opened at start-up, before the services start."""
    services: Sequence[Service]
    """Started in this order once the store is open, stopped in reverse."""
    closing: Sequence[Closable]
    """Closed in this order at shutdown, after the services stopped and before the store."""
    channel_names: Sequence[str]

    async def _start_services(self) -> None:
        for service in self.services:
            await service.start()

    async def _connect(self, started: asyncio.Event) -> None:
        """Open a shared backend and start the services, retrying until it answers: an
        instance whose Cosmos DB or queue is unreachable stays up (not ready) instead of
        crash-looping."""
        stores = self.stores
        delay = 1.0
        while True:
            try:
                await stores.open()
                await self._start_services()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.error(
                    "cannot reach %s (%s); /readyz answers 503 until it can, next try in %.0f s",
                    stores.description, _short(exc), delay,
                )
                with contextlib.suppress(Exception):
                    await stores.close()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            log.info("connected to %s", stores.description)
            started.set()
            return

    def _warn_of_remote_emulator(self) -> None:
        settings = self.settings
        if settings.emulator_mode and not settings.listens_on_loopback:
            log.warning(
                "HERALD_EMULATOR_ALLOW_REMOTE is set: Emulator mode on HOST=%s authenticates "
                "nobody - whoever reaches this address can act as any user of the bot. Replies "
                "go only to serviceUrls on %s. Set MicrosoftAppId for Bot Framework "
                "authentication.",
                settings.host, ", ".join(settings.emulator_service_hosts),
            )

    def _say_which_channels(self) -> None:
        settings = self.settings
        log.info("channels on: %s", ", ".join(self.channel_names))
        if settings.firebase_credentials is None:
            log.info("mobile push (FCM) is off: FIREBASE_CREDENTIALS is not set")
        if settings.apns_configured:
            log.info(
                "APNs is on for %s (production %s, sandbox %s)", settings.apns_bundle_id,
                settings.apns_endpoint, settings.apns_sandbox_endpoint,
            )
        else:
            log.info(
                "APNs is off: APNS_KEY_FILE, APNS_KEY_ID, APNS_TEAM_ID, APNS_BUNDLE_ID not set"
            )

    async def run(self, app: web.Application) -> AsyncIterator[None]:
        """Open stores and clients, start the services; on shutdown, stop and close in
        reverse."""
        stores = self.stores
        self._warn_of_remote_emulator()
        # aiohttp logs a request it cannot parse (a NUL in a header...) as an ERROR with a
        # traceback; it is the client's mistake, answered with 400: one warning line instead.
        malformed = MalformedRequests()
        server_log = logging.getLogger("aiohttp.server")
        server_log.addFilter(malformed)
        started = asyncio.Event()
        connecting: asyncio.Task[None] | None = None
        if stores.shared:
            for client in self.clients:
                await client.open()
            connecting = asyncio.create_task(self._connect(started), name="herald-connect")
            # Reachable: ready from the first request. Not: serve anyway, keep trying.
            await asyncio.wait({connecting}, timeout=15.0)
        else:
            await stores.open()
            for client in self.clients:
                await client.open()
            await self._start_services()
            started.set()
        self._say_which_channels()
        housekeeping = asyncio.create_task(
            purge_history(stores.inbox, self.settings.history_days, started),
            name="herald-housekeeping",
        )
        try:
            yield
        finally:
            housekeeping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await housekeeping
            if connecting is not None:
                connecting.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await connecting
            if started.is_set():
                for service in reversed(self.services):
                    await service.stop()
            for part in self.closing:
                await part.aclose()
            await stores.close()
            server_log.removeFilter(malformed)
