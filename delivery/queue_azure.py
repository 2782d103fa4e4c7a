"""The delivery queue on Azure Storage Queues (`azure-storage-queue`, async client).

A message names one delivery job and the token of the ledger row it belongs to (see
delivery/outbox_azure.py); it carries nothing else. It gives the scaled-out delivery queue
what that needs from a queue shared by several Herald instances:

- **leases**: a received message is invisible to every other consumer for the visibility
  timeout (the worker's lease); settled, it is deleted; not settled (the process died), it
  comes back by itself when the timeout runs out;
- **delays**: a message sent with a visibility timeout becomes receivable only then (retries,
  quiet hours), at most 7 days ahead (longer waits are re-hidden on receipt);
- **dequeue counts**: how often a message was received without being settled, for poison
  handling (moved to `<queue>-poison` after too many);
- **batched receive**: up to 32 messages a call.

Messages never expire (`time_to_live=-1`): a delivery is only ever removed by its settlement.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

__all__ = ["MAX_DELAY_SECONDS", "AzureDeliveryQueue", "QueuedMessage"]

log = logging.getLogger(__name__)

MAX_DELAY_SECONDS: Final = 7 * 24 * 3600
"""The longest visibility timeout Azure Storage Queues accept (7 days)."""

MAX_BATCH: Final = 32
"""The most messages one receive call returns."""


def _seconds(delay: float, *, minimum: int) -> int:
    """Whole seconds (the queue's unit), rounded up so nothing becomes visible early."""
    return max(minimum, min(MAX_DELAY_SECONDS, math.ceil(max(0.0, delay) - 1e-6)))


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A received message: its body, and what deleting or re-hiding it takes."""

    id: str
    pop_receipt: str
    content: str
    dequeue_count: int
    inserted_on: datetime | None


class AzureDeliveryQueue:
    """One Azure Storage queue (and its poison queue), opened once per process."""

    def __init__(self, connection_string: str, queue_name: str) -> None:
        self._connection_string = connection_string
        self.name = queue_name
        self.poison_name = f"{queue_name}-poison"
        self._queue: Any = None
        self._poison: Any = None

    def __repr__(self) -> str:  # the connection string holds the account key
        return f"AzureDeliveryQueue(name={self.name!r})"

    @property
    def is_open(self) -> bool:
        return self._queue is not None

    async def open(self) -> None:
        """Connect and create both queues if missing (idempotent)."""
        if self.is_open:
            return
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.queue.aio import QueueClient

        clients = [
            QueueClient.from_connection_string(
                self._connection_string, name, retry_total=3, connection_timeout=10
            )
            for name in (self.name, self.poison_name)
        ]
        try:
            for client in clients:
                with contextlib.suppress(ResourceExistsError):
                    await client.create_queue()
        except BaseException:
            for client in clients:
                await client.close()
            raise
        self._queue, self._poison = clients
        log.info("Azure Storage queue %r is open", self.name)

    async def close(self) -> None:
        for client in (self._queue, self._poison):
            if client is not None:
                await client.close()
        self._queue = self._poison = None

    def _client(self) -> Any:
        if self._queue is None:
            from errors import StoreUnavailable

            raise StoreUnavailable("the Azure Storage queue is not reachable yet")
        return self._queue

    async def check(self) -> bool:
        """Whether the queue answers now (for /readyz), within 5 seconds."""
        if self._queue is None:
            return False
        try:
            await asyncio.wait_for(self._queue.get_queue_properties(), 5.0)
        except Exception:
            return False
        return True

    async def send(self, content: str, delay: float = 0.0) -> None:
        """Enqueue `content`, receivable after `delay` seconds (rounded up, at most 7 days)."""
        await self._client().send_message(
            content, visibility_timeout=_seconds(delay, minimum=0), time_to_live=-1
        )

    async def receive(self, max_messages: int, visibility_seconds: float) -> list[QueuedMessage]:
        """Up to `max_messages` (≤ 32) messages, each hidden for `visibility_seconds`."""
        count = max(1, min(MAX_BATCH, max_messages))
        pager = self._client().receive_messages(
            messages_per_page=count,
            max_messages=count,
            visibility_timeout=_seconds(visibility_seconds, minimum=1),
        )
        return [
            QueuedMessage(m.id, m.pop_receipt, m.content, int(m.dequeue_count), m.inserted_on)
            async for m in pager
        ]

    async def delete(self, message_id: str, pop_receipt: str) -> bool:
        """Remove a message we hold; False if we no longer hold it (lease lapsed) or it is gone."""
        from azure.core.exceptions import HttpResponseError

        try:
            await self._client().delete_message(message_id, pop_receipt)
        except HttpResponseError as exc:
            if exc.status_code in (400, 404):
                return False
            raise
        return True

    async def hide(self, message_id: str, pop_receipt: str, seconds: float) -> bool:
        """Make a message we hold receivable again after `seconds` (0: now)."""
        from azure.core.exceptions import HttpResponseError

        try:
            await self._client().update_message(
                message_id, pop_receipt=pop_receipt, visibility_timeout=_seconds(seconds, minimum=0)
            )
        except HttpResponseError as exc:
            if exc.status_code in (400, 404):
                return False
            raise
        return True

    async def to_poison(self, message: QueuedMessage) -> None:
        """Move a message that keeps failing to the poison queue, where operators can see it."""
        if self._poison is None:
            self._client()
        await self._poison.send_message(message.content, time_to_live=-1)
        await self.delete(message.id, message.pop_receipt)

    async def approximate_count(self) -> int:
        properties = await self._client().get_queue_properties()
        return int(properties.approximate_message_count or 0)
