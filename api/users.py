"""A user's history: GET /api/users/{id}/notifications and POST .../read-all."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from api.http import ApiProblem, json_response
from storage.protocols import InboxStore, UserStore
from storage.records import InboxEntry

__all__ = ["UsersApi"]

_BOOLS = {"true": True, "1": True, "false": False, "0": False}


def _iso(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def _item(entry: InboxEntry) -> dict[str, Any]:
    event = entry.event
    item: dict[str, Any] = {
        "id": entry.notification_id,
        "type": event.get("type"),
        "title": event.get("title"),
        "severity": event.get("severity", "info"),
        "version": entry.version,
        "createdAt": _iso(entry.created_at),
        "read": entry.read_at is not None,
        "readAt": _iso(entry.read_at),
    }
    for key in ("text", "url", "icon"):
        if event.get(key) is not None:
            item[key] = event[key]
    return item


class UsersApi:
    """History (the seed of the inbox) for backends holding an API key."""

    def __init__(self, users: UserStore, inbox: InboxStore) -> None:
        self._users = users
        self._inbox = inbox

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/users/{id}/notifications", self.list_notifications),
            web.post("/api/users/{id}/notifications/read-all", self.read_all),
        ]

    async def _user(self, request: web.Request) -> str:
        user_id = request.match_info["id"]
        resolved = await self._users.resolve([user_id])
        if user_id not in resolved:
            raise ApiProblem(404, "not_found", f"no user with id or alias {user_id!r}", "id")
        return resolved[user_id]

    async def list_notifications(self, request: web.Request) -> web.Response:
        unread_raw = request.query.get("unread", "false").lower()
        if unread_raw not in _BOOLS:
            raise ApiProblem(400, "invalid_field", "unread must be true or false", "unread")
        limit_raw = request.query.get("limit", "50")
        if not limit_raw.isdigit() or not 1 <= int(limit_raw) <= 500:
            raise ApiProblem(
                400, "invalid_field", "limit must be an integer from 1 to 500", "limit"
            )
        user_id = await self._user(request)
        entries = await self._inbox.list(
            user_id, unread_only=_BOOLS[unread_raw], limit=int(limit_raw)
        )
        return json_response({"userId": user_id, "items": [_item(e) for e in entries]})

    async def read_all(self, request: web.Request) -> web.Response:
        user_id = await self._user(request)
        updated = await self._inbox.mark_all_read(user_id)
        return json_response({"userId": user_id, "updated": updated})
