"""A small server-sent events reader for tests (the event-stream format, line by line)."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass(frozen=True)
class Event:
    event: str
    data: Any
    id: str | None


class EventReader:
    """Reads events (and counts comment lines) from an open text/event-stream response."""

    def __init__(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        self.comments = 0
        self.retry: int | None = None
        self.last_id: str | None = None
        self.closed = False

    async def next(self, timeout: float = 10.0) -> Event:
        """The next event within `timeout` seconds in all (comments do not restart the clock:
        a stream of heartbeats must not keep a test waiting)."""
        async with asyncio.timeout(timeout):
            return await self._next()

    async def _next(self) -> Event:
        event, data, event_id = "message", [], None
        while True:
            raw = await self.response.content.readline()
            if not raw:
                self.closed = True
                raise EOFError("the stream ended")
            line = raw.decode().rstrip("\r\n")
            if line == "":
                if event_id is not None:
                    self.last_id = event_id
                if data:
                    return Event(event, json.loads("\n".join(data)), event_id)
                event, data, event_id = "message", [], None
                continue
            if line.startswith(":"):
                self.comments += 1
                continue
            field, _, value = line.partition(":")
            value = value.removeprefix(" ")
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
            elif field == "id":
                event_id = value
            elif field == "retry":
                self.retry = int(value)

    async def until(self, predicate: Any, timeout: float = 10.0) -> Event:
        """The first event that matches (others are skipped)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("no matching event")
            event = await self.next(left)
            if predicate(event):
                return event
