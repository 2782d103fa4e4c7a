"""Who owns an installation or a browser's push endpoint, in Cosmos DB (`owners`, partition `/id`).

Installations and subscriptions live in their owner's partition (`/userId`), so two users can
each write a document for the same installation or endpoint, and nothing in those containers
can say "this one is taken". One small document per installation id or endpoint in `owners`,
keyed by its hash, can: it is created only if absent and replaced only if unchanged (etag), so a
claim is decided by Cosmos DB itself, not by a read followed by a write. A user acting for
themselves (`owner_only`) gets a record only if the claim is theirs or free; a backend may move
it (the claim is replaced).

Records written before claims existed have none: their owner is then the newest document's, as
the stores read it, until the next write claims it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, Literal

from azure.core import MatchConditions
from azure.cosmos.exceptions import CosmosAccessConditionFailedError, CosmosResourceNotFoundError

from errors import NotOwner
from storage.cosmos import CosmosDatabase, doc_id

__all__ = ["Claim", "OwnerClaims"]

CONTAINER: Final = "owners"

Kind = Literal["installation", "pushEndpoint"]


@dataclass(frozen=True, slots=True)
class Claim:
    """What `OwnerClaims.claim` did."""

    previous: str | None
    """Who owned the record before (None: nobody)."""
    created: dict[str, Any] | None
    """The claim document this call created, to be withdrawn if the write it guards fails."""


class OwnerClaims:
    """The owner of each record of one kind (installations, or push endpoints)."""

    def __init__(self, db: CosmosDatabase, kind: Kind, field: str, refusal: str) -> None:
        self._db = db
        self._kind = kind
        self._field = field
        self._refusal = refusal

    def _id(self, key: str) -> str:
        return doc_id("owner", self._kind, key)

    async def owner(self, key: str) -> tuple[str | None, dict[str, Any] | None]:
        """The claimed owner and the claim document (None, None: not claimed)."""
        claim_id = self._id(key)
        doc = await self._db.read(CONTAINER, claim_id, claim_id)
        return (None, None) if doc is None else (str(doc["userId"]), doc)

    def check(self, current: str | None, user_id: str) -> None:
        """NotOwner unless `user_id` may write a record `current` owns (None: nobody)."""
        if current is not None and current != user_id:
            raise NotOwner(self._refusal, field=self._field)

    async def claim(
        self, key: str, user_id: str, *, owner_only: bool, unclaimed_owner: str | None
    ) -> Claim:
        """Make `user_id` the owner of `key`; with `owner_only`, only if nobody else is
        (NotOwner otherwise, nothing written). `unclaimed_owner`: the owner of a record that
        has no claim yet (one written before claims existed), None if there is no record."""
        container = self._db.container(CONTAINER)
        claim_id = self._id(key)
        body = {"id": claim_id, "kind": self._kind, "key": key, "userId": user_id}
        while True:
            current, doc = await self.owner(key)
            if doc is None:
                current = unclaimed_owner
            if owner_only:
                self.check(current, user_id)
            if doc is None:
                created = await self._db.create(CONTAINER, body)
                if created is None:  # claimed meanwhile: decide again on what is there now
                    continue
                return Claim(current, created)
            if current == user_id:
                return Claim(current, None)
            try:
                await container.replace_item(
                    claim_id, body, etag=doc["_etag"], match_condition=MatchConditions.IfNotModified
                )
            except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
                continue
            return Claim(current, None)

    async def withdraw(self, created: dict[str, Any]) -> None:
        """Remove a claim this instance created, unless it changed since (a failed write)."""
        await self._db.delete(
            CONTAINER, created["id"], created["id"],
            etag=created["_etag"], match_condition=MatchConditions.IfNotModified,
        )

    async def release(self, key: str, user_id: str | None, *, unclaimed_owner: str | None) -> bool:
        """Remove the claim on `key` before its record is deleted; with `user_id`, only if it
        is that user's (False, nothing removed, when it is someone else's)."""
        while True:
            current, doc = await self.owner(key)
            if doc is None:
                return user_id is None or unclaimed_owner in (None, user_id)
            if user_id is not None and current != user_id:
                return False
            if await self._db.delete(
                CONTAINER, doc["id"], doc["id"],
                etag=doc["_etag"], match_condition=MatchConditions.IfNotModified,
            ):
                return True
