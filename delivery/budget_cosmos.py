"""Shared lane buckets in Cosmos DB: one Teams tenant budget for every Herald instance.

One document per lane (container `rateBudgets`, partition `/id`) holds a GCRA bucket: its
theoretical arrival time (`tat`, epoch seconds) and a pause (`blockedUntil`) after a 429. An
instance with work in the lane reserves a few send slots at a time by replacing the document
with If-Match on its etag; a writer that lost the race reads again and retries. Why this design
(rather than tenant-owning leases) is written in docs/architecture.md.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable
from typing import Any, Final

from delivery.budget import SlotGrant, gcra_grant
from errors import StoreUnavailable
from storage.cosmos import CosmosDatabase, doc_id, is_precondition_failed

__all__ = ["CONTAINER", "CosmosBudgetStore"]

CONTAINER: Final = "rateBudgets"
_TRIES: Final = 20


class CosmosBudgetStore:
    """BudgetStore (delivery/budget.py) on Cosmos DB, optimistic concurrency by etag."""

    def __init__(self, db: CosmosDatabase, rng: random.Random | None = None) -> None:
        self._db = db
        self._rng = rng or random.Random()

    async def reserve(
        self, lane: str, count: int, rate: float, capacity: float, now: float
    ) -> SlotGrant:
        def change(doc: dict[str, Any]) -> list[float]:
            slots, tat = gcra_grant(
                float(doc["tat"]), float(doc["blockedUntil"]), now, count, rate, capacity
            )
            doc["tat"] = tat
            return slots

        return SlotGrant(tuple(await self._update(lane, now, change)))

    async def block(self, lane: str, until: float, tat: float) -> None:
        def change(doc: dict[str, Any]) -> list[float]:
            doc["blockedUntil"] = max(float(doc["blockedUntil"]), until)
            doc["tat"] = max(float(doc["tat"]), tat)
            return []

        await self._update(lane, until, change)

    async def _update(
        self, lane: str, now: float, change: Callable[[dict[str, Any]], list[float]]
    ) -> list[float]:
        from azure.core import MatchConditions

        ident = doc_id("lane", lane)
        container = self._db.container(CONTAINER)
        for attempt in range(_TRIES):
            doc = await self._db.read(CONTAINER, ident, ident)
            if doc is None:
                fresh: dict[str, Any] = {
                    "id": ident, "lane": lane, "tat": now, "blockedUntil": 0.0,
                }
                result = change(fresh)
                if await self._db.create(CONTAINER, fresh) is not None:
                    return list(result)
                continue  # another instance created it first
            etag = doc.get("_etag")
            body = {k: v for k, v in doc.items() if not k.startswith("_")}
            result = change(body)
            try:
                await container.replace_item(
                    ident, body, etag=etag, match_condition=MatchConditions.IfNotModified
                )
            except Exception as exc:
                if not is_precondition_failed(exc):
                    raise
                # Another instance reserved meanwhile: read again after a short, random pause.
                await asyncio.sleep(self._rng.uniform(0, 0.005 * (attempt + 1)))
                continue
            return list(result)
        raise StoreUnavailable(f"the send budget of lane {lane!r} is too contended")
