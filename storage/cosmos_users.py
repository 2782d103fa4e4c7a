"""Users, aliases and preference documents in Cosmos DB.

A user is one document in `users` (partition `/userId`); the preference document has its own
etag (`prefsEtag`), separate from the document's `_etag`, so refreshing a user's name on every
turn never invalidates the etag a preferences dialog or API client holds. Writes of the
preferences are read-modify-writes guarded by the document's `_etag` (If-Match), retried when a
refresh overtook them, and refused with ConcurrencyConflict only when the *preferences* changed.

Aliases (lower-cased e-mail/UPN) are documents of their own in `aliases` (partition `/id`, the
alias), so an alias points at exactly one user and moves to whoever claimed it last.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.exceptions import CosmosAccessConditionFailedError

from errors import ConcurrencyConflict, NotFound
from storage.cosmos import CosmosDatabase, bounded, doc_id
from storage.records import UserRecord

__all__ = ["CosmosUserStore"]


def _alias_key(alias: str) -> str:
    return alias.strip().lower()


def _user_doc_id(user_id: str) -> str:
    return doc_id("user", user_id)


class CosmosUserStore:
    """UserStore on Cosmos DB."""

    def __init__(self, db: CosmosDatabase) -> None:
        self._db = db

    async def upsert_user(self, user: UserRecord) -> bool:
        now = time.time()
        created = await self._db.create(
            "users",
            {
                "id": _user_doc_id(user.user_id),
                "userId": user.user_id,
                "channelId": user.channel_id,
                "name": user.name,
                "tenantId": user.tenant_id,
                "prefs": None,
                "prefsEtag": uuid.uuid4().hex,
                "createdAt": now,
                "updatedAt": now,
            },
        )
        if created is None:
            operations: list[dict[str, Any]] = [{"op": "set", "path": "/updatedAt", "value": now}]
            if user.name is not None:
                operations.append({"op": "set", "path": "/name", "value": user.name})
            if user.tenant_id is not None:
                operations.append({"op": "set", "path": "/tenantId", "value": user.tenant_id})
            await self._db.container("users").patch_item(
                _user_doc_id(user.user_id), partition_key=user.user_id,
                patch_operations=operations,
            )
        keys = list(dict.fromkeys(_alias_key(a) for a in user.aliases if a.strip()))
        await bounded(
            self._db.container("aliases").upsert_item(
                {"id": doc_id("alias", key), "alias": key, "userId": user.user_id,
                 "updatedAt": now}
            )
            for key in keys
        )
        return created is not None

    async def get_user(self, user_id: str) -> UserRecord | None:
        doc = await self._db.read("users", _user_doc_id(user_id), user_id)
        if doc is None:
            return None
        aliases = await self._db.query(
            "aliases", "SELECT c.alias FROM c WHERE c.userId = @u", {"@u": user_id}
        )
        return UserRecord(
            user_id=doc["userId"],
            channel_id=doc["channelId"],
            name=doc.get("name"),
            tenant_id=doc.get("tenantId"),
            aliases=tuple(sorted(a["alias"] for a in aliases)),
        )

    async def resolve(self, keys: Sequence[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        if not keys:
            return found
        rows = await self._db.query_in(
            "users", "SELECT c.userId FROM c WHERE ARRAY_CONTAINS(@keys, c.userId)", list(keys)
        )
        known = {r["userId"] for r in rows}
        found.update({k: k for k in keys if k in known})
        # Several keys may spell one alias differently: each of them resolves.
        spellings: dict[str, list[str]] = {}
        for k in keys:
            if k not in found:
                spellings.setdefault(_alias_key(k), []).append(k)
        if spellings:
            rows = await self._db.query_in(
                "aliases",
                "SELECT c.alias, c.userId FROM c WHERE ARRAY_CONTAINS(@keys, c.alias)",
                list(spellings),
            )
            for r in rows:
                for k in spellings.get(r["alias"], ()):
                    found[k] = r["userId"]
        return found

    async def user_id_page(self, after: str | None, limit: int) -> list[str]:
        rows = await self._db.query(
            "users",
            "SELECT TOP @n c.userId FROM c WHERE c.userId > @after ORDER BY c.userId",
            {"@n": limit, "@after": after or ""},
            page_size=limit,
        )
        return [r["userId"] for r in rows]

    async def count(self) -> int:
        rows = await self._db.values("users", "SELECT VALUE COUNT(1) FROM c")
        return int(sum(int(n) for n in rows))  # one partial count per partition range

    async def get_preferences(self, user_id: str) -> tuple[dict[str, Any] | None, str]:
        doc = await self._db.read("users", _user_doc_id(user_id), user_id)
        if doc is None:
            raise NotFound(f"user {user_id!r} is not known")
        return doc.get("prefs"), str(doc["prefsEtag"])

    async def preferences_for(self, user_ids: Sequence[str]) -> dict[str, dict[str, Any] | None]:
        rows = await self._db.query_in(
            "users",
            "SELECT c.userId, c.prefs FROM c WHERE ARRAY_CONTAINS(@keys, c.userId)",
            list(user_ids),
        )
        return {r["userId"]: r.get("prefs") for r in rows}

    async def put_preferences(
        self, user_id: str, prefs: dict[str, Any], if_match: str | None
    ) -> str:
        container = self._db.container("users")
        etag = uuid.uuid4().hex
        while True:
            doc = await self._db.read("users", _user_doc_id(user_id), user_id)
            if doc is None:
                raise NotFound(f"user {user_id!r} is not known")
            if if_match is not None and if_match != "*" and doc["prefsEtag"] != if_match:
                raise ConcurrencyConflict(
                    f"preferences of {user_id!r} changed since they were read"
                )
            body = {k: v for k, v in doc.items() if not k.startswith("_")}
            body.update(prefs=prefs, prefsEtag=etag, updatedAt=time.time())
            try:
                await container.replace_item(
                    doc["id"], body, etag=doc["_etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except CosmosAccessConditionFailedError:
                continue  # someone wrote the document meanwhile: compare the preferences again
            return etag
