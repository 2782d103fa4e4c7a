"""The in-process doorbell of the live inbox page: wakes a person's open streams when this
Herald instance writes to their inbox (a new or updated notification, something marked read).

It carries no data: a woken stream reads what changed from the store (`InboxStore.changes`),
which stays the one source of truth. With several Herald instances a stream only hears the
doorbell of the instance it is connected to, so every stream also asks the store on its own
every few seconds (`InboxApi.poll_seconds`): a write made by another instance reaches the page
within that interval, one made here at once. No shared message bus is needed for either.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Iterator

__all__ = ["InboxFeed"]


class InboxFeed:
    """Per user, the events of the streams open on this instance."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Event]] = {}
        self._closed = False

    @property
    def closed(self) -> bool:
        """Shutting down: open streams end so the server can stop without waiting for them."""
        return self._closed

    def listeners(self, user_id: str) -> int:
        return len(self._listeners.get(user_id, ()))

    def publish(self, user_ids: Iterable[str]) -> None:
        """Wake every open stream of these users (called after the write is committed)."""
        for user_id in user_ids:
            for event in self._listeners.get(user_id, ()):
                event.set()

    def publish_all(self) -> None:
        """Wake every open stream (a recall: rare, and cheaper than finding whose it was)."""
        self.publish(list(self._listeners))

    @contextlib.contextmanager
    def listen(self, user_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever `user_id`'s inbox is written here (or at shutdown)."""
        event = asyncio.Event()
        if self._closed:
            event.set()
        self._listeners.setdefault(user_id, set()).add(event)
        try:
            yield event
        finally:
            listeners = self._listeners.get(user_id)
            if listeners is not None:
                listeners.discard(event)
                if not listeners:
                    del self._listeners[user_id]

    def close(self) -> None:
        """Wake and end every stream (app shutdown)."""
        self._closed = True
        for listeners in self._listeners.values():
            for event in listeners:
                event.set()
