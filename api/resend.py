"""POST /api/notifications/{id}/resend: the same notification again, for just the people a
filter picks, as a new notification linked to the first (`resendOf`).

- `failed`: people with a delivery that failed for good (retries exhausted, refused).
- `dead`: people with a dead target (chat uninstalled, device or browser gone) who have a new
  one on that channel since (a new conversation with the bot, a new device registration).
- `unread`: a reminder: people who have not read it, `hours` after it reached their inbox.

The new notification's id is derived from the first's, the filter and the people picked, so a
retry of the same request finds it (`outcome: unchanged`) instead of sending twice; an explicit
`id` may be given instead.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any, Final, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.http import ApiProblem, model_response, path_param
from api.notifications import NOTIFICATION_ID
from api.routing import (
    BACKEND,
    UNAUTHORIZED,
    Answer,
    Body,
    Route,
    body,
    error,
    json_body,
    path_id,
)
from api.schemas import MAX_RECIPIENTS, NotificationId, Recipients, content_hash
from delivery.channel import ChannelRegistry
from delivery.outbox import DeliveryLedger
from delivery.router import Router
from notifications.event import LENIENT
from storage.protocols import InboxStore, NotificationStore

__all__ = ["ResendApi", "ResendRequest"]

_PAGE: Final = 1000


class Resent(Answer):
    id: str | None = Field(description="The new notification (null: nobody matched).")
    resendOf: str
    filter: Literal["failed", "dead", "unread"]
    recipients: int = Field(ge=0)
    outcome: Literal["created", "unchanged", "updated", "nobody"]
    version: int | None = Field(None, ge=1)


class ResendRequest(BaseModel):
    """The body of POST /api/notifications/{id}/resend."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    filter: Literal["failed", "dead", "unread"] = Field(
        description="`failed`: deliveries that failed for good; `dead`: dead targets whose "
        "person has a new conversation or device since; `unread`: not read `hours` after it "
        "reached their inbox (a reminder)."
    )
    hours: float | None = Field(
        None, ge=0, le=24 * 365, description="With `unread`: how long unread (required)."
    )
    id: NotificationId | None = Field(
        None, description="The new notification's id (default: derived, so retries match)."
    )


class ResendApi:
    """Resends a notification to the people a filter picks."""

    def __init__(
        self,
        notifications: NotificationStore,
        outbox: DeliveryLedger,
        inbox: InboxStore,
        channels: ChannelRegistry,
        router: Router,
    ) -> None:
        self._notifications = notifications
        self._outbox = outbox
        self._inbox = inbox
        self._channels = channels
        self._router = router

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                "/api/notifications/{id}/resend",
                self.resend,
                BACKEND,
                doc={
                    "operationId": "resendNotification",
                    "summary": "Send it again, as a linked notification, to the people a filter "
                    "picks (failed, dead targets with a new one since, unread after N hours).",
                    "parameters": [path_id("The notification id.", NOTIFICATION_ID)],
                    "responses": {
                        "200": {"description": "Nobody matched; nothing created.",
                                "content": json_body(Resent)},
                        "202": {"description": "The linked notification was accepted.",
                                "content": json_body(Resent)},
                        "400": error("Invalid body or id."),
                        "401": UNAUTHORIZED,
                        "404": error("No such notification."),
                        "409": error("It was recalled, or too many people match."),
                        "413": error("Body too large."),
                        "415": error("Body is not application/json."),
                    },
                },
                body=Body(ResendRequest),
            ),
        ]

    async def resend(self, request: web.Request) -> web.Response:
        notification_id = path_param(request, "id", NOTIFICATION_ID)
        wanted = await body(request, ResendRequest)
        if wanted.filter == "unread" and wanted.hours is None:
            raise ApiProblem(400, "missing_field", "hours is required with filter unread", "hours")
        if wanted.filter != "unread" and wanted.hours is not None:
            raise ApiProblem(400, "invalid_field", "hours goes with filter unread only", "hours")
        record = await self._notifications.get(notification_id)
        if record is None:
            raise ApiProblem(404, "not_found", f"no notification with id {notification_id!r}", "id")
        if record.recalled:
            raise ApiProblem(
                409, "recalled", f"notification {notification_id!r} was recalled", "id"
            )
        if wanted.filter == "unread":
            assert wanted.hours is not None
            people = await self._inbox.unread_recipients(
                notification_id,
                created_before=time.time() - wanted.hours * 3600,
                limit=MAX_RECIPIENTS + 1,
            )
        else:
            people = await self._picked(notification_id, wanted.filter)
        people = sorted(dict.fromkeys(people))
        if len(people) > MAX_RECIPIENTS:
            raise ApiProblem(
                409, "too_many", f"more than {MAX_RECIPIENTS} people match: resend in parts "
                "with explicit recipients", "filter",
            )
        answer: dict[str, Any] = {"resendOf": notification_id, "filter": wanted.filter,
                                  "recipients": len(people)}
        if not people:
            return model_response(Resent, {**answer, "id": None, "outcome": "nobody"})
        digest = hashlib.sha256("\n".join(people).encode()).hexdigest()[:12]
        new_id = wanted.id or f"{notification_id[:160]}.{wanted.filter}.{digest}"
        # The people come from Herald's own records, not from a sender: read like a stored
        # event (leniently), not refused by today's rules for a posted one.
        audience = Recipients.model_validate({"users": people}, context={LENIENT: True})
        event = record.event.model_copy(
            update={"id": new_id, "recipients": audience, "send_at": None,
                    "resend_of": notification_id}
        )
        existing = await self._notifications.get(new_id)
        if existing is not None and existing.recalled:
            raise ApiProblem(409, "recalled", f"notification {new_id!r} was recalled", "id")
        outcome, created = await self._notifications.put(
            new_id, content_hash(event.document()), event, event.type.lower(), len(people)
        )
        if outcome != "unchanged":
            self._router.submit(new_id)
        return model_response(
            Resent,
            {**answer, "id": new_id, "outcome": outcome, "version": created.version},
            status=202,
            headers={"Location": f"/api/notifications/{new_id}"},
        )

    async def _picked(self, notification_id: str, kind: str) -> list[str]:
        """People whose deliveries failed (`failed`), or whose dead targets have a live
        successor on the same channel (`dead`)."""
        failed: list[str] = []
        dead: dict[str, dict[str, set[str]]] = {}  # channel -> user -> dead target keys
        after = 0
        while True:
            rows = await self._outbox.report(notification_id, after=after, limit=_PAGE)
            for row in rows:
                if row.status == "failed":
                    failed.append(row.user_id)
                elif row.status == "deadTargets":
                    dead.setdefault(row.channel, {}).setdefault(row.user_id, set()).add(row.target)
            if len(rows) < _PAGE:
                break
            after = rows[-1].id
        if kind == "failed":
            return failed
        people: list[str] = []
        for name, users in dead.items():
            channel = self._channels.get(name)
            if channel is None:
                continue
            now = await channel.targets(list(users))
            people.extend(
                user for user, gone in users.items()
                if any(t.key not in gone for t in now.get(user, []))
            )
        return people
