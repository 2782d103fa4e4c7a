"""Mobile devices in Cosmos DB.

An installation is one document in `devices` (partition `/userId`, its owner's). A push token
can belong to one installation only: `deviceTokens` (partition `/id`, the token's hash) says
which installation last registered it. Registering takes each of its tokens away from the
installation that held it (a write guarded by that device's etag, so a token registered there
since is kept), then points the token at the new installation, then writes the installation
(in its new owner's partition first, deleting the old owner's copy after: a crash between the
two leaves two copies, of which the newer is the installation everywhere it is looked up, and
the next registration removes the other). Each step is idempotent, so an app that retries a
failed registration ends in the same state as one that succeeded the first time.

Who owns an installation is decided by its claim in `owners` (storage/cosmos_owners.py), made
before any other write: a user registering for themselves (`owner_only`) is refused there, or
when a token they send is held by another user's installation (checked before writing, and
again on the holder's document as its etag-guarded take replaces it).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

from azure.core import MatchConditions
from azure.cosmos.exceptions import CosmosAccessConditionFailedError, CosmosResourceNotFoundError

from errors import NotOwner
from storage.cosmos import CosmosDatabase, bounded, doc_id
from storage.cosmos_owners import OwnerClaims
from storage.devices import (
    MOVED,
    DeviceRecord,
    DeviceRegistration,
    DeviceUpsert,
    TokenRemoval,
)

__all__ = ["CosmosDeviceStore"]

_COLUMNS = {"fcm": "fcmToken", "apns": "apnsToken"}
_FIELDS = _COLUMNS
"""The API's names of the token fields (in a NotOwner): the documents use the same."""


def _record(doc: dict[str, Any]) -> DeviceRecord:
    removed = doc.get("tokenRemoved")
    return DeviceRecord(
        installation_id=doc["installationId"],
        user_id=doc["userId"],
        platform=doc["platform"],
        fcm_token=doc.get("fcmToken"),
        apns_token=doc.get("apnsToken"),
        metadata=dict(doc.get("metadata") or {}),
        active=bool(doc["active"]),
        created_at=float(doc["createdAt"]),
        updated_at=float(doc["updatedAt"]),
        token_removed=(
            None if not removed else TokenRemoval(str(removed["reason"]), float(removed["at"]))
        ),
    )


def _newest(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    owners: dict[str, dict[str, Any]] = {}
    for doc in sorted(docs, key=lambda d: (float(d["updatedAt"]), d["userId"])):
        owners[doc["installationId"]] = doc
    return owners


def _body(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if not k.startswith("_")}


class CosmosDeviceStore:
    """DeviceStore on Cosmos DB."""

    def __init__(self, db: CosmosDatabase, *, clock: Callable[[], float] = time.time) -> None:
        self._db = db
        self._clock = clock
        self._owners = OwnerClaims(
            db, "installation", "installationId", "this installation is registered to another user"
        )

    async def _docs(self, installation_ids: Sequence[str]) -> list[dict[str, Any]]:
        return await self._db.query_in(
            "devices",
            "SELECT * FROM c WHERE ARRAY_CONTAINS(@keys, c.installationId)",
            list(installation_ids),
        )

    async def upsert(
        self, registration: DeviceRegistration, *, owner_only: bool = False
    ) -> DeviceUpsert:
        reg = registration
        copies = await self._docs([reg.installation_id])
        before = _newest(copies).get(reg.installation_id)
        unclaimed_owner = before["userId"] if before else None
        wanted = [(k, t) for k, t in (("fcm", reg.fcm_token), ("apns", reg.apns_token)) if t]
        if owner_only:
            # Refuse before writing anything; the writes below check again as they go.
            current, claim = await self._owners.owner(reg.installation_id)
            self._owners.check(current if claim else unclaimed_owner, reg.user_id)
            for kind, token in wanted:
                await self._holder_owner(reg, kind, token, check=True)
        claimed = await self._owners.claim(
            reg.installation_id, reg.user_id, owner_only=owner_only,
            unclaimed_owner=unclaimed_owner,
        )
        displaced: list[str] = []
        tokens = self._db.container("deviceTokens")
        try:
            for kind, token in wanted:
                holder = await self._holder_owner(reg, kind, token, check=False)
                if holder is not None and await self._take_token(
                    holder, kind, token, MOVED, owner=reg.user_id if owner_only else None
                ):
                    displaced.append(holder)
        except NotOwner:
            # Another user registered the token between the check and the take (a race):
            # nothing of theirs was written; the claim this call made is withdrawn.
            if claimed.created is not None:
                await self._owners.withdraw(claimed.created)
            raise
        for kind, token in wanted:
            token_id = doc_id("token", kind, token)
            await tokens.upsert_item(
                {"id": token_id, "installationId": reg.installation_id, "userId": reg.user_id}
            )
        now = max(self._clock(), *(float(d["updatedAt"]) + 1e-6 for d in copies), 0.0)
        saved = await self._db.container("devices").upsert_item(
            {
                "id": doc_id("device", reg.installation_id),
                "installationId": reg.installation_id,
                "userId": reg.user_id,
                "platform": reg.platform,
                "fcmToken": reg.fcm_token,
                "apnsToken": reg.apns_token,
                "metadata": dict(reg.metadata),
                "tokenRemoved": None,
                "active": True,
                "createdAt": float(before["createdAt"]) if before else now,
                "updatedAt": now,
            }
        )
        await bounded(
            self._db.delete("devices", d["id"], d["userId"])
            for d in copies
            if d["userId"] != reg.user_id
        )
        previous = before["userId"] if before else None
        return DeviceUpsert(
            device=_record(saved),
            created=before is None,
            previous_user_id=previous if previous != reg.user_id else None,
            displaced=tuple(dict.fromkeys(displaced)),
        )

    async def _holder_owner(
        self, reg: DeviceRegistration, kind: str, token: str, *, check: bool
    ) -> str | None:
        """The other installation `deviceTokens` says holds the token, if any; with `check`,
        NotOwner if that installation still holds it and is another user's."""
        token_id = doc_id("token", kind, token)
        holder = await self._db.read("deviceTokens", token_id, token_id)
        if holder is None or holder["installationId"] == reg.installation_id:
            return None
        installation_id = str(holder["installationId"])
        if check:
            doc = _newest(await self._docs([installation_id])).get(installation_id)
            if doc is not None and doc.get(_COLUMNS[kind]) == token:
                self._token_check(doc, kind, reg.user_id)
        return installation_id

    @staticmethod
    def _token_check(doc: dict[str, Any], kind: str, user_id: str) -> None:
        if doc["userId"] != user_id:
            raise NotOwner(
                "this push token belongs to another user's installation", field=_FIELDS[kind]
            )

    async def _take_token(
        self, installation_id: str, kind: str, token: str, reason: str, owner: str | None = None
    ) -> bool:
        """Remove `token` from the installation if it still holds it; True if it did. With
        `owner`, NotOwner if that installation is not `owner`'s (checked on the document the
        etag-guarded write replaces)."""
        column = _COLUMNS[kind]
        container = self._db.container("devices")
        while True:
            doc = _newest(await self._docs([installation_id])).get(installation_id)
            if doc is None or doc.get(column) != token:
                return False
            if owner is not None:
                self._token_check(doc, kind, owner)
            body = _body(doc)
            body[column] = None
            body["active"] = bool(
                doc["active"] and (body.get("fcmToken") or body.get("apnsToken"))
            )
            body["tokenRemoved"] = {"reason": reason, "at": self._clock()}
            body["updatedAt"] = max(self._clock(), float(doc["updatedAt"]))
            try:
                await container.replace_item(
                    doc["id"], body, etag=doc["_etag"],
                    match_condition=MatchConditions.IfNotModified,
                )
            except (CosmosAccessConditionFailedError, CosmosResourceNotFoundError):
                continue
            return True

    async def get(self, installation_id: str) -> DeviceRecord | None:
        doc = _newest(await self._docs([installation_id])).get(installation_id)
        return _record(doc) if doc is not None else None

    async def for_user(self, user_id: str) -> list[DeviceRecord]:
        docs = await self._db.query(
            "devices", "SELECT * FROM c WHERE c.userId = @u", {"@u": user_id},
            partition_key=user_id,
        )
        docs.sort(key=lambda d: (float(d["createdAt"]), d["installationId"]))
        return [_record(d) for d in docs]

    async def delete(self, installation_id: str, *, user_id: str | None = None) -> bool:
        docs = await self._docs([installation_id])
        newest = _newest(docs).get(installation_id)
        # The claim goes first (only if it is `user_id`'s): a registration meanwhile then
        # finds the documents below and their owner, never a claim without them.
        if not await self._owners.release(
            installation_id, user_id, unclaimed_owner=newest["userId"] if newest else None
        ):
            return False
        # Only the documents read above: a copy written since (the installation moved to
        # someone else meanwhile) is theirs and stays.
        mine = [d for d in docs if user_id is None or d["userId"] == user_id]
        removed = await bounded(self._db.delete("devices", d["id"], d["userId"]) for d in mine)
        return any(removed)

    async def _by_user(self, condition: str, user_ids: Sequence[str]) -> dict[str, list[str]]:
        rows = await self._db.query_in(
            "devices",
            "SELECT c.userId, c.installationId, c.createdAt FROM c"
            f" WHERE c.active = true AND {condition} AND ARRAY_CONTAINS(@keys, c.userId)",
            list(user_ids),
        )
        rows.sort(key=lambda r: (r["userId"], float(r["createdAt"]), r["installationId"]))
        result: dict[str, list[str]] = {}
        for r in rows:
            result.setdefault(r["userId"], []).append(r["installationId"])
        return result

    async def targets_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self._by_user("IS_STRING(c.fcmToken)", user_ids)

    async def apns_only_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self._by_user("IS_NULL(c.fcmToken) AND IS_STRING(c.apnsToken)", user_ids)

    async def fcm_only_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self._by_user("IS_STRING(c.fcmToken) AND IS_NULL(c.apnsToken)", user_ids)

    async def apns_targets_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        return await self._by_user("IS_STRING(c.apnsToken)", user_ids)

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], DeviceRecord]:
        wanted = set(keys)
        owners = _newest(await self._docs([installation_id for _, installation_id in keys]))
        result: dict[tuple[str, str], DeviceRecord] = {}
        for installation_id, doc in owners.items():
            key = (doc["userId"], installation_id)
            if key in wanted:
                result[key] = _record(doc)
        return result

    async def remove_fcm_token(self, installation_id: str, token: str, reason: str) -> bool:
        return await self._remove_token("fcm", installation_id, token, reason)

    async def remove_apns_token(self, installation_id: str, token: str, reason: str) -> bool:
        return await self._remove_token("apns", installation_id, token, reason)

    async def _remove_token(
        self, kind: str, installation_id: str, token: str, reason: str
    ) -> bool:
        removed = await self._take_token(installation_id, kind, token, reason)
        if removed:
            token_id = doc_id("token", kind, token)
            holder = await self._db.read("deviceTokens", token_id, token_id)
            if holder is not None and holder["installationId"] == installation_id:
                await self._db.delete("deviceTokens", token_id, token_id)
        return removed
