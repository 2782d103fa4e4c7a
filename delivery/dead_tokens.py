"""Tokens a push service called dead, kept from the send until the worker settles the job.

FCM (`UNREGISTERED`) and APNs (410 `Unregistered`, `BadDeviceToken`) say a token is gone while
Herald sends; the worker decides afterwards (`Channel.retire`) whether the job is really over.
The token sent is remembered per job so that only that token is removed: one the app has
registered since (the installation updated in place) is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from delivery.channel import DeliveryResult
from delivery.outbox import DeliveryJob

__all__ = ["DeadTokens"]

log = logging.getLogger(__name__)

RemoveToken = Callable[[str, str, str], Awaitable[bool]]
"""The device store's removal (installation id, token, reason): True if it was removed."""


class DeadTokens:
    def __init__(self, service: str, remove: RemoveToken) -> None:
        self._service = service
        self._remove = remove
        self._tokens: dict[int, str] = {}

    def note(self, job: DeliveryJob, token: str, result: DeliveryResult) -> DeliveryResult:
        """Remember `token` when `result` says it is dead; gives `result` back."""
        if result.status == "dead":
            self._tokens[job.id] = token
        return result

    async def retire(self, job: DeliveryJob, reason: str) -> None:
        token = self._tokens.pop(job.id, None)
        if token is None:
            return
        if await self._remove(job.target, token, reason):
            log.info(
                "removed the %s token of installation %s (%s)", self._service, job.target, reason
            )
