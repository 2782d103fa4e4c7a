"""A user's history: GET /api/users/{id}/notifications and POST .../read-all."""

from __future__ import annotations

import re
from typing import Any, Literal

from aiohttp import web
from pydantic import Field, TypeAdapter

from api.http import ApiProblem, iso, model_response, path_param, query_param
from api.routing import (
    BACKEND,
    UNAUTHORIZED,
    Answer,
    Route,
    error,
    json_body,
    path_id,
)
from api.schemas import RecipientKey
from engagement import EngagementService
from storage.protocols import InboxStore, UserStore
from storage.records import InboxEntry

__all__ = ["MAX_LIMIT", "USER_KEY", "UsersApi", "history_item"]

MAX_LIMIT = 500
USER_KEY: TypeAdapter[str] = TypeAdapter(RecipientKey)
"""The rule for a user id or alias in a path: the same as for an event's recipients."""

# The spellings of the OpenAPI document's boolean and integer query parameters.
_BOOLS = {"true": True, "false": False}
_INTEGER = re.compile(r"[0-9]{1,9}")


class AcknowledgeRequest(Answer):
    text: str


class HistoryItem(Answer):
    id: str
    type: str
    title: str
    severity: Literal["info", "warning", "error"]
    version: int
    createdAt: str
    read: bool
    readAt: str | None
    text: str | None = None
    url: str | None = None
    icon: str | None = None
    readVia: str | None = Field(
        None,
        description="Where it was first read: inbox, chat, teams, teams-receipt, webpush, "
        "mobile or api.",
    )
    acknowledge: AcknowledgeRequest | None = Field(
        None, description="The acknowledgement the notification asks for (its button's text)."
    )
    acknowledged: bool | None = Field(None, description="Present when it asks for one.")
    acknowledgedAt: str | None = None
    recalled: Literal[True] | None = Field(
        None,
        description="Only in the live feed: its sender recalled it (drop it from the list); "
        "what it said is left out.",
    )


class History(Answer):
    userId: str
    items: list[HistoryItem]


class ReadAll(Answer):
    userId: str
    updated: int = Field(ge=0)


def _integer(raw: str) -> int | None:
    return int(raw) if _INTEGER.fullmatch(raw) else None


def history_item(entry: InboxEntry) -> dict[str, Any]:
    """One history entry as the API (and the inbox page) shows it."""
    event = entry.event
    item: dict[str, Any] = {
        "id": entry.notification_id,
        "type": event.get("type"),
        "title": event.get("title"),
        "severity": event.get("severity", "info"),
        "version": entry.version,
        "createdAt": iso(entry.created_at),
        "read": entry.read_at is not None,
        "readAt": iso(entry.read_at),
    }
    for key in ("text", "url", "icon"):
        if event.get(key) is not None:
            item[key] = event[key]
    if entry.read_via is not None:
        item["readVia"] = entry.read_via
    ask = event.get("acknowledge")
    if isinstance(ask, dict) and ask.get("text"):
        item["acknowledge"] = {"text": ask["text"]}
        item["acknowledged"] = entry.acknowledged_at is not None
        item["acknowledgedAt"] = iso(entry.acknowledged_at)
    if entry.recalled:
        # Only for the live feed, so open pages drop it: what it said is withdrawn.
        item.update(recalled=True, title="Recalled by its sender")
        for key in ("text", "url", "icon", "acknowledge", "acknowledged", "acknowledgedAt"):
            item.pop(key, None)
    return item


class UsersApi:
    """History (the seed of the inbox) for backends holding an API key."""

    def __init__(
        self, users: UserStore, inbox: InboxStore, engagement: EngagementService | None = None
    ) -> None:
        self._users = users
        self._inbox = inbox
        self._engagement = engagement

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                "/api/users/{id}/notifications",
                self.list_notifications,
                BACKEND,
                doc={
                    "operationId": "getUserNotifications",
                    "summary": "A user's notification history, newest first.",
                    "parameters": [
                        path_id("The user's id or alias (email, UPN).", USER_KEY),
                        {
                            "name": "unread",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "boolean", "default": False},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_LIMIT,
                                "default": 50,
                            },
                        },
                    ],
                    "responses": {
                        "200": {"description": "History.", "content": json_body(History)},
                        "400": error("Invalid user id or query (each parameter at most once)."),
                        "401": UNAUTHORIZED,
                        "404": error("No such user."),
                    },
                },
            ),
            Route(
                "POST",
                "/api/users/{id}/notifications/read-all",
                self.read_all,
                BACKEND,
                doc={
                    "operationId": "readAllUserNotifications",
                    "summary": "Mark all of a user's notifications read.",
                    "parameters": [path_id("The user's id or alias.", USER_KEY)],
                    "responses": {
                        "200": {"description": "Marked.", "content": json_body(ReadAll)},
                        "400": error("Not a valid user id or alias."),
                        "401": UNAUTHORIZED,
                        "404": error("No such user."),
                    },
                },
            ),
        ]

    async def _user(self, request: web.Request) -> str:
        user_id = path_param(request, "id", USER_KEY)
        resolved = await self._users.resolve([user_id])
        if user_id not in resolved:
            raise ApiProblem(404, "not_found", f"no user with id or alias {user_id!r}", "id")
        return resolved[user_id]

    async def list_notifications(self, request: web.Request) -> web.Response:
        unread_raw = query_param(request, "unread")
        unread = _BOOLS.get("false" if unread_raw is None else unread_raw)
        if unread is None:
            raise ApiProblem(400, "invalid_field", "unread must be true or false", "unread")
        limit_raw = query_param(request, "limit")
        # ASCII digits only: str.isdigit() also passes "²" (int() fails) and "٣" (int() takes it).
        limit = 50 if limit_raw is None else _integer(limit_raw)
        if limit is None or not 1 <= limit <= MAX_LIMIT:
            raise ApiProblem(
                400, "invalid_field", f"limit must be an integer from 1 to {MAX_LIMIT}", "limit"
            )
        user_id = await self._user(request)
        entries = await self._inbox.list(user_id, unread_only=unread, limit=limit)
        items = [history_item(e) for e in entries]
        return model_response(History, {"userId": user_id, "items": items})

    async def read_all(self, request: web.Request) -> web.Response:
        user_id = await self._user(request)
        if self._engagement is not None:
            updated = await self._engagement.read_all(user_id, "api")
        else:
            updated = await self._inbox.mark_all_read(user_id, "api")
        return model_response(ReadAll, {"userId": user_id, "updated": updated})
