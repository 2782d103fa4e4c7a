"""The live inbox: /api/inbox for the page at /inbox/, opened from a link the bot gives a person.

Every call carries the link token (purpose `inbox`) as `Authorization: Bearer <token>`; it names
the person, so nobody can read or mark anyone else's inbox, and an API key is no use here (it
names nobody). The token in the link works for HERALD_LINK_MINUTES; an open page trades it for
a fresh one before it runs out (`POST /api/inbox/token`), so the page stays live while it is
open, up to HERALD_LINK_MAX_HOURS after the link was given, while a link left in a chat stops
working.

`GET /api/inbox/events` is a server-sent events stream (text/event-stream):

- `snapshot` (first, or when more changed than a stream replays): `{userId, unread, items}`;
- `notification`: one history item that is new, was updated (a new version) or was read;
- a comment line every `heartbeat_seconds`, so proxies keep the connection and a dead one is
  noticed; `retry:` tells the browser how soon to reconnect.

Each event's `id` is a cursor (epoch seconds of the last change sent). A reconnect with
`Last-Event-ID` gets what changed after it — and again what changed in the `overlap_seconds`
before it, since a write committed late can carry an earlier time (on this instance, and more
so between instances whose clocks differ); the page merges items by id, so a repeat is
harmless. The stream ends when its token expires; the page reconnects with the renewed one.
It reads the store when this instance writes to the person's inbox (api/inbox_feed.py) and
every `poll_seconds` in any case, which is how writes by other instances reach it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import time
from collections.abc import Callable
from typing import Any, Final, Literal

from aiohttp import web
from pydantic import Field

from api.engagement import InboxAcknowledged
from api.http import ApiProblem, iso, model_response, path_param, query_param
from api.inbox_feed import InboxFeed
from api.link_tokens import LinkClaims, LinkTokenError, LinkTokens
from api.notifications import NOTIFICATION_ID, notification_id_parameter
from api.routing import (
    DATE_TIME,
    REF,
    SELF_AUTHENTICATED,
    Answer,
    Route,
    error,
    json_body,
)
from api.users import history_item
from dialogs.channel_links import ChannelLink
from engagement import EngagementService
from storage.protocols import InboxStore
from storage.records import InboxEntry

__all__ = [
    "INBOX_PATH",
    "INBOX_PURPOSE",
    "MAX_ITEMS",
    "InboxApi",
    "InboxLinks",
]

log = logging.getLogger(__name__)

INBOX_PURPOSE: Final = "inbox"
"""The link-token purpose of the inbox page: such a token reads and marks one inbox only."""
INBOX_PATH: Final = "/api/inbox"
MAX_ITEMS: Final = 500
MAX_REPLAY: Final = 100
"""A reconnect that missed more changes than this gets a fresh snapshot instead."""
_BOOLS: Final = {"true": True, "false": False}


class InboxList(Answer):
    userId: str
    unread: int = Field(ge=0, description="How many entries are unread (at most 500 counted).")
    items: list[dict[str, Any]] = Field(
        description="Unread entries first (newest first), then the most recent read ones."
    )
    cursor: str = Field(
        pattern=r"^[0-9]+\.[0-9]{6}$",
        description="Send as Last-Event-ID to GET /api/inbox/events to get what changed since.",
    )


class InboxRead(Answer):
    id: str
    read: Literal[True]
    readAt: str = Field(json_schema_extra=DATE_TIME)


class InboxReadAll(Answer):
    userId: str
    updated: int = Field(ge=0)


class InboxToken(Answer):
    token: str = Field(description="A fresh inbox token for the same person.")
    expiresAt: str = Field(json_schema_extra=DATE_TIME)


def document_inbox_schemas(schemas: dict[str, Any]) -> None:
    """The inbox list's items are history items, as GET /api/users/{id}/notifications has."""
    schemas["InboxList"]["properties"]["items"]["items"] = {"$ref": REF.format(model="HistoryItem")}

_INBOX: list[dict[str, list[str]]] = [{"inboxLink": []}]
_INBOX_UNAUTHORIZED = {
    **error(
        "No inbox token, or one that is forged, expired or for another purpose (an API key "
        "is not an inbox token)."
    ),
    "headers": {
        "WWW-Authenticate": {
            "required": True,
            "schema": {"type": "string", "pattern": "^Bearer "},
        }
    },
}


def _cursor_text(value: float) -> str:
    return f"{value:.6f}"


def _parse_cursor(text: str | None) -> float | None:
    """A Last-Event-ID Herald gave out; anything else counts as none (a fresh snapshot)."""
    if not text or len(text) > 32:
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) and value > 0 else None


def _ordered(unread: list[InboxEntry], recent: list[InboxEntry], limit: int) -> list[InboxEntry]:
    """Unread first (newest first), then the rest of the most recent ones."""
    seen = {e.notification_id for e in unread}
    rest = [e for e in recent if e.notification_id not in seen]
    return [*unread, *rest][: max(limit, len(unread))]


class InboxLinks:
    """Builds the inbox link the bot gives one person: `{public URL}/inbox/?token=...`."""

    def __init__(self, tokens: LinkTokens, public_url: str, minutes: int) -> None:
        self._tokens = tokens
        self._base = public_url.rstrip("/")
        self._minutes = minutes

    def link(self, user_id: str) -> ChannelLink:
        token = self._tokens.issue(user_id, INBOX_PURPOSE)
        return ChannelLink(
            channel="inbox",
            title="Open my inbox",
            url=f"{self._base}/inbox/?token={token}",
            minutes=self._minutes,
            invitation="Your notifications on one live page (new ones appear as they arrive):",
        )


class InboxApi:
    """List, stream, mark read; all for the one person the link token names."""

    def __init__(
        self,
        inbox: InboxStore,
        tokens: LinkTokens,
        feed: InboxFeed,
        *,
        poll_seconds: float = 5.0,
        heartbeat_seconds: float = 15.0,
        overlap_seconds: float = 2.0,
        retry_ms: int = 2000,
        clock: Callable[[], float] = time.time,
        engagement: EngagementService | None = None,
    ) -> None:
        self._engagement = engagement
        self._inbox = inbox
        self._tokens = tokens
        self._feed = feed
        self.poll_seconds = poll_seconds
        self.heartbeat_seconds = heartbeat_seconds
        self.overlap_seconds = overlap_seconds
        self._retry_ms = retry_ms
        self._clock = clock

    def routes(self) -> list[Route]:
        return [
            Route(
                "GET",
                INBOX_PATH,
                self.list_items,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "getInbox",
                    "summary": "The inbox link's person's notifications, unread first.",
                    "security": _INBOX,
                    "parameters": [
                        {
                            "name": "limit",
                            "in": "query",
                            "required": False,
                            "description": "How many read entries at most besides the unread "
                            "ones (every unread one is listed, up to 500); at most once.",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_ITEMS,
                                "default": 100,
                            },
                        }
                    ],
                    "responses": {
                        "200": {"description": "The inbox.", "content": json_body(InboxList)},
                        "400": error("Not a valid limit (or given twice)."),
                        "401": _INBOX_UNAUTHORIZED,
                    },
                },
            ),
            Route(
                "GET",
                INBOX_PATH + "/events",
                self.events,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "getInboxEvents",
                    "summary": "Server-sent events: the inbox as it changes.",
                    "description": "text/event-stream. First (without Last-Event-ID, or after more "
                    "changes than a reconnect replays) a `snapshot` event `{userId, unread, "
                    "items}`; "
                    "then a `notification` event (a history item) for each entry that is new, "
                    "updated or read, with a cursor as its id. Send the last id as Last-Event-ID "
                    "when reconnecting; the changes of the two seconds before it come again, so "
                    "merge items by id. A comment line every 15 s keeps the connection; the stream "
                    "ends when the token expires (reconnect with a renewed one).",
                    "security": _INBOX,
                    "parameters": [
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "required": False,
                            "description": "The id of the last event received.",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The event stream (open until the token expires).",
                            "content": {"text/event-stream": {"schema": {"type": "string"}}},
                        },
                        "401": _INBOX_UNAUTHORIZED,
                    },
                },
            ),
            Route(
                "POST",
                INBOX_PATH + "/read-all",
                self.read_all,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "readAllInbox",
                    "summary": "Mark every entry of the inbox read.",
                    "security": _INBOX,
                    "responses": {
                        "200": {"description": "Marked.", "content": json_body(InboxReadAll)},
                        "401": _INBOX_UNAUTHORIZED,
                    },
                },
            ),
            Route(
                "POST",
                INBOX_PATH + "/token",
                self.renew,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "renewInboxToken",
                    "summary": "A fresh inbox token for the same person (before this one expires).",
                    "description": "The fresh token keeps the original link's grant: it expires "
                    "HERALD_LINK_MINUTES from now, but never later than HERALD_LINK_MAX_HOURS "
                    "after "
                    "the bot gave the link (then `expiresAt` stops moving and a new link is "
                    "needed).",
                    "security": _INBOX,
                    "responses": {
                        "200": {
                            "description": "The new token.",
                            "content": json_body(InboxToken),
                            "headers": {
                                "Cache-Control": {"required": True, "schema": {"const": "no-store"}}
                            },
                        },
                        "401": _INBOX_UNAUTHORIZED,
                    },
                },
            ),
            Route(
                "POST",
                INBOX_PATH + "/{id}/read",
                self.read_one,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "readInboxEntry",
                    "summary": "Mark one entry of the inbox read (again: the first time stays).",
                    "security": _INBOX,
                    "parameters": [notification_id_parameter()],
                    "responses": {
                        "200": {"description": "Read.", "content": json_body(InboxRead)},
                        "400": error("Not a valid notification id."),
                        "401": _INBOX_UNAUTHORIZED,
                        "404": error("No such notification in this person's inbox."),
                    },
                },
            ),
            Route(
                "POST",
                INBOX_PATH + "/{id}/acknowledge",
                self.acknowledge,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "acknowledgeInboxEntry",
                    "summary": "The inbox entry's acknowledge button (recorded once; implies "
                    "read).",
                    "security": [{"inboxLink": []}],
                    "parameters": [notification_id_parameter()],
                    "responses": {
                        "200": {
                            "description": "Acknowledged.",
                            "content": json_body(InboxAcknowledged),
                        },
                        "400": error("Not a valid notification id."),
                        "401": {
                            **error("No inbox token, or one that is not valid."),
                            "headers": {
                                "WWW-Authenticate": {
                                    "required": True,
                                    "schema": {"type": "string", "pattern": "^Bearer "},
                                }
                            },
                        },
                        "404": error("No such notification in this person's inbox."),
                        "409": error("The notification asks for no acknowledgement."),
                    },
                },
            ),
        ]

    @staticmethod
    def _credential(request: web.Request) -> str:
        scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise _unauthorized(
                "open the inbox from the link the Herald bot sends you (type \"inbox\" in the "
                "chat); its token goes in Authorization: Bearer ..."
            )
        return credential.strip()

    def _claims(self, request: web.Request) -> LinkClaims:
        try:
            return self._tokens.verify_claims(self._credential(request), INBOX_PURPOSE)
        except LinkTokenError as exc:
            raise _invalid(exc) from exc

    async def _snapshot(self, user_id: str, limit: int) -> dict[str, Any]:
        unread = await self._inbox.list(user_id, unread_only=True, limit=MAX_ITEMS)
        recent = await self._inbox.list(user_id, unread_only=False, limit=limit)
        return {
            "userId": user_id,
            "unread": len(unread),
            "items": [history_item(e) for e in _ordered(unread, recent, limit)],
        }

    async def list_items(self, request: web.Request) -> web.Response:
        user_id = self._claims(request).user_id
        raw = query_param(request, "limit")
        limit = 100 if raw is None else (int(raw) if raw.isascii() and raw.isdigit() else 0)
        if not 1 <= limit <= MAX_ITEMS:
            raise ApiProblem(
                400, "invalid_field", f"limit must be an integer from 1 to {MAX_ITEMS}", "limit"
            )
        cursor = self._clock()
        body = await self._snapshot(user_id, limit)
        body["cursor"] = _cursor_text(cursor)
        return model_response(InboxList, body, headers={"Cache-Control": "no-store"})

    async def read_one(self, request: web.Request) -> web.Response:
        user_id = self._claims(request).user_id
        notification_id = path_param(request, "id", NOTIFICATION_ID)
        read_at = await self._inbox.mark_read(user_id, notification_id, "inbox")
        if read_at is None:
            raise ApiProblem(404, "not_found", "no such notification in this inbox", "id")
        self._feed.publish([user_id])
        return model_response(
            InboxRead,
            {"id": notification_id, "read": True, "readAt": iso(read_at, seconds=True)}
        )

    async def read_all(self, request: web.Request) -> web.Response:
        user_id = self._claims(request).user_id
        updated = await self._inbox.mark_all_read(user_id, "inbox")
        if updated:
            self._feed.publish([user_id])
        return model_response(InboxReadAll, {"userId": user_id, "updated": updated})

    async def acknowledge(self, request: web.Request) -> web.Response:
        """The entry's acknowledge button: recorded once (a repeat answers the first)."""
        user_id = self._claims(request).user_id
        notification_id = path_param(request, "id", NOTIFICATION_ID)
        if self._engagement is None:
            raise ApiProblem(404, "not_found", "no such notification in this inbox", "id")
        outcome = await self._engagement.acknowledge(user_id, notification_id, "inbox")
        ack = outcome.acknowledgement
        if outcome.status in ("not-in-inbox", "recalled") or (
            outcome.status != "not-asked" and ack is None
        ):
            raise ApiProblem(404, "not_found", "no such notification in this inbox", "id")
        if ack is None:
            raise ApiProblem(
                409, "not_acknowledgeable", "this notification asks for no acknowledgement", "id"
            )
        self._feed.publish([user_id])
        return model_response(
            InboxAcknowledged,
            {
                "id": notification_id,
                "acknowledged": True,
                "acknowledgedAt": iso(ack.acknowledged_at, seconds=True),
                "acknowledgedVia": ack.via,
                "first": ack.first,
            }
        )

    async def renew(self, request: web.Request) -> web.Response:
        """A fresh token for the same person: an open page renews its own before it expires,
        up to the link's absolute lifetime (HERALD_LINK_MAX_HOURS after the bot gave it)."""
        try:
            token = self._tokens.renew(self._credential(request), INBOX_PURPOSE)
        except LinkTokenError as exc:
            raise _invalid(exc) from exc
        expires = self._tokens.verify_claims(token, INBOX_PURPOSE).expires_at
        return model_response(
            InboxToken,
            {"token": token, "expiresAt": iso(expires, seconds=True)},
            headers={"Cache-Control": "no-store"},
        )

    async def events(self, request: web.Request) -> web.StreamResponse:
        claims = self._claims(request)
        user_id = claims.user_id
        since = _parse_cursor(request.headers.get("Last-Event-ID"))
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream; charset=utf-8",
                "Cache-Control": "no-store",
                # Reverse proxies (nginx, Azure Front Door) must pass events on at once.
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        with (
            self._feed.listen(user_id) as doorbell,
            contextlib.suppress(ConnectionResetError),
        ):
            await response.write(f"retry: {self._retry_ms}\n\n".encode())
            await self._stream(response, user_id, since, claims.expires_at, doorbell)
        return response

    async def _stream(
        self,
        response: web.StreamResponse,
        user_id: str,
        since: float | None,
        expires_at: float,
        doorbell: asyncio.Event,
    ) -> None:
        sent: dict[str, tuple[Any, ...]] = {}
        """What this stream sent of each entry (version, read and acknowledged time,
        recalled): an overlap re-read sends only what changed since."""

        async def snapshot() -> float:
            cursor = self._clock()
            body = await self._snapshot(user_id, 100)
            sent.clear()
            for item in body["items"]:
                sent[item["id"]] = _sent_key(item)
            await _send(response, "snapshot", body, cursor)
            return cursor

        cursor = await snapshot() if since is None else since
        last_write = self._clock()
        while not self._feed.closed and self._clock() < expires_at:
            doorbell.clear()
            changes = await self._inbox.changes(
                user_id, cursor - self.overlap_seconds, MAX_REPLAY + 1
            )
            if len(changes) > MAX_REPLAY:
                cursor = await snapshot()
                last_write = self._clock()
            else:
                for change in changes:
                    item = history_item(change.entry)
                    key = _sent_key(item)
                    cursor = max(cursor, change.changed_at)
                    if sent.get(item["id"]) == key:
                        continue
                    sent[item["id"]] = key
                    await _send(response, "notification", item, cursor)
                    last_write = self._clock()
            now = self._clock()
            if now - last_write >= self.heartbeat_seconds:
                await response.write(b": keep-alive\n\n")
                last_write = now
            wait = min(
                self.poll_seconds,
                self.heartbeat_seconds - (now - last_write),
                expires_at - now,
            )
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(doorbell.wait(), wait)


def _sent_key(item: dict[str, Any]) -> tuple[Any, ...]:
    return (item["version"], item["readAt"], item.get("acknowledgedAt"), item.get("recalled"))


async def _send(response: web.StreamResponse, event: str, data: Any, cursor: float) -> None:
    payload = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    await response.write(
        f"id: {_cursor_text(cursor)}\nevent: {event}\ndata: {payload}\n\n".encode()
    )


def _invalid(exc: LinkTokenError) -> web.HTTPUnauthorized:
    return _unauthorized(
        f"the inbox link is not valid ({exc.reason}); type \"inbox\" in the chat with "
        "Herald for a new one",
        invalid_token=True,
    )


def _unauthorized(message: str, *, invalid_token: bool = False) -> web.HTTPUnauthorized:
    challenge = 'Bearer realm="herald-inbox"' + (', error="invalid_token"' if invalid_token else "")
    return web.HTTPUnauthorized(
        text=message, headers={"WWW-Authenticate": challenge}, content_type="text/plain"
    )
