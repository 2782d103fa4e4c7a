"""botbuilder's `Storage` (bot and dialog state) on Cosmos DB, with the azure-cosmos 4.x async
client (botbuilder-azure's CosmosDbPartitionedStorage targets the 3.x SDK).

One document per key in `botState` (partition `/id`); the state object is kept as jsonpickle
text, as in the SQLite store. The item's `e_tag` *is* the document's `_etag`: a write with an
etag is a replace with If-Match (412 → the KeyError botbuilder's storages raise on a conflict),
a write with `"*"` or none is an unconditional upsert.
"""

from __future__ import annotations

from typing import Any

import jsonpickle
from azure.core import MatchConditions
from azure.cosmos.exceptions import (
    CosmosAccessConditionFailedError,
    CosmosResourceExistsError,
    CosmosResourceNotFoundError,
)
from botbuilder.core import Storage

from storage.cosmos import CosmosDatabase, bounded, doc_id
from storage.sqlite_bot_state import _etag_of, _with_etag

__all__ = ["CosmosBotStorage"]


def _id(key: str) -> str:
    return doc_id("state", key)


class CosmosBotStorage(Storage):
    """Key/value state documents with etags, one document per key."""

    def __init__(self, db: CosmosDatabase) -> None:
        super().__init__()
        self._db = db

    async def read(self, keys: list[str]) -> dict[str, Any]:
        if not keys:
            return {}
        rows = await self._db.query_in(
            "botState",
            "SELECT c.key, c.state, c._etag FROM c WHERE ARRAY_CONTAINS(@keys, c.id)",
            [_id(k) for k in keys],
        )
        return {r["key"]: _with_etag(jsonpickle.decode(r["state"]), r["_etag"]) for r in rows}

    async def write(self, changes: dict[str, Any]) -> None:
        if changes is None:
            raise ValueError("changes are required when writing")
        if not changes:
            return
        for value in changes.values():
            if _etag_of(value) == "":
                raise ValueError("storage.write(): etag missing")
        await bounded(self._write_one(key, value) for key, value in changes.items())

    async def _write_one(self, key: str, value: Any) -> None:
        container = self._db.container("botState")
        wanted = _etag_of(value)
        body = {"id": _id(key), "key": key, "state": jsonpickle.encode(value)}
        if wanted is None or wanted == "*":
            await container.upsert_item(body)
            return
        try:
            await container.replace_item(
                body["id"], body, etag=wanted, match_condition=MatchConditions.IfNotModified
            )
        except CosmosAccessConditionFailedError:
            raise KeyError(f"Etag conflict on {key!r}") from None
        except CosmosResourceNotFoundError:
            # Never stored (or deleted): an etag from elsewhere still creates it, as in SQLite.
            try:
                await container.create_item(body)
            except CosmosResourceExistsError:
                raise KeyError(f"Etag conflict on {key!r}") from None

    async def delete(self, keys: list[str]) -> None:
        if keys:
            await bounded(self._db.delete("botState", _id(k), _id(k)) for k in keys)
