"""POST /api/notifications, GET /api/notifications/{id} and its per-recipient report."""

from __future__ import annotations

import csv
import io
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Final, Literal, Protocol

from aiohttp import web
from pydantic import Field, TypeAdapter

from api.http import ApiProblem, iso, model_response, path_param
from api.prompt_answers import prompt_answer_counts
from api.routing import (
    BACKEND,
    DATE_TIME,
    UNAUTHORIZED,
    Answer,
    Body,
    Route,
    backend_or_link,
    body,
    error,
    json_body,
    path_id,
)
from api.schemas import MAX_CARD_BYTES, Event, NotificationId, content_hash
from delivery.audience import Expansion, audience_parts
from delivery.outbox import DeliveryCounters, DeliveryLedger, DeliveryQueue
from delivery.reach import NOT_INSTALLABLE
from delivery.router import Router, send_at
from logs import NOTIFICATION_ID as NOTIFICATION_ID_LOG
from notifications.event import StoredEvent
from storage.protocols import InboxStore, NotificationStore, PromptStore, UserStore
from storage.records import Engagement, EngagementCounts

__all__ = [
    "NOTIFICATION_ID",
    "OPERATOR_LINK",
    "REPORT_COLUMNS",
    "NotificationsApi",
    "operator_purpose",
]

REPORT_COLUMNS = (
    "userId",
    "channel",
    "target",
    "status",
    "reason",
    "attempts",
    "lastError",
    "updatedAt",
    "readAt",
    "readVia",
    "acknowledgedAt",
    "acknowledgedVia",
)
"""The delivery columns, then the person's engagement (the same on each of their rows: read
and acknowledged are one state per person, wherever they happened)."""
_REPORT_PAGE = 1000

log = logging.getLogger(__name__)

NOTIFICATION_ID: TypeAdapter[str] = TypeAdapter(NotificationId)


def notification_id_parameter() -> dict[str, Any]:
    """The `{id}` path parameter of a notification's routes."""
    return {
        "name": "id",
        "in": "path",
        "required": True,
        "description": "The notification id.",
        "schema": NOTIFICATION_ID.json_schema(),
    }


class Accepted(Answer):
    id: str
    status: Literal["accepted", "scheduled"] = Field(
        description="`scheduled`: its `sendAt` is in the future; nothing is expanded or sent "
        "before it."
    )
    recipients: int = Field(
        ge=0,
        description="Recipients known at acceptance: the explicit users, the channels, and "
        "for `all` the people Herald knows. Members of groups and teams are added as they are "
        "listed: the status counts each person once when expansion is done.",
    )
    version: int = Field(ge=1)
    outcome: Literal["created", "unchanged", "updated"]
    sendAt: str | None = Field(None, json_schema_extra=DATE_TIME)
    note: str | None = Field(
        None, description="Said when `sendAt` is already past: it is sent now."
    )


class Counters(Answer):
    queued: int = Field(ge=0)
    delivered: int = Field(ge=0)
    retrying: int = Field(ge=0)
    skipped: int = Field(ge=0)
    failed: int = Field(ge=0)
    deadTargets: int = Field(ge=0)


class AudiencePart(Answer):
    kind: Literal["users", "group", "team", "channel", "all"] = Field(
        description="Which part of `recipients` this is; `id` names a group or team, "
        "`teamId`/`channelId` a channel."
    )
    id: str | None = None
    teamId: str | None = None
    channelId: str | None = None
    state: Literal["waiting", "expanding", "done", "failed"] = Field(
        description="`failed`: it could not be listed (`reason`; counted as a skipped "
        "recipient named after the part, e.g. `group:{id}`); `expanding` with a `reason`: its "
        "source is throttled or down and Herald tries again."
    )
    listed: int = Field(
        ge=0,
        description="Entries its source listed so far (keys, members, the channel), repeats "
        "and members that are not users included.",
    )
    added: int = Field(
        ge=0,
        description="Recipients it added: people no earlier part named, keys nobody answers "
        "to, channel posts.",
    )
    reason: str | None


class Audience(Answer):
    parts: list[AudiencePart] = Field(
        description="Each part of `recipients`, in the order they are expanded: users, groups, "
        "teams, channels, all."
    )


class Reach(Answer):
    created: int = Field(
        ge=0,
        description="People who never talked to the bot, reached in a Teams chat Herald "
        "created (`POST /v3/conversations`).",
    )
    installed: int = Field(
        ge=0, description="…reached after Herald installed the app for them (Microsoft Graph)."
    )
    stored: int = Field(
        ge=0, description="…who had a chat with the bot by the time it was sent after all."
    )
    notInstallable: dict[str, Annotated[int, Field(ge=0)]] = Field(
        description="People who could not be reached, per reason (e.g. `installation-off`, "
        "`no-service-url`, `forbidden (…)`): failed deliveries whose reason starts "
        "`not-installable:`."
    )


class Funnel(Answer):
    """Delivered → read → acknowledged: one state per person, wherever it happened."""

    recipients: int = Field(ge=0, description="People whose inbox has it (it was routed to them).")
    read: int = Field(ge=0, description="Of them, how many read it (any surface).")
    acknowledged: int | None = Field(
        ge=0, description="How many acknowledged it; null when the event asks for no "
        "acknowledgement.",
    )
    readVia: dict[str, Annotated[int, Field(ge=0)]] = Field(
        description="First reads per surface: inbox, chat, teams, teams-receipt, webpush, "
        "mobile, api."
    )
    acknowledgedVia: dict[str, Annotated[int, Field(ge=0)]]


class Recall(Answer):
    id: str
    status: Literal["recalled"]
    recalledAt: str = Field(json_schema_extra=DATE_TIME)
    cancelled: int = Field(ge=0, description="Deliveries not sent yet: they never will be.")
    deleting: int = Field(
        ge=0, description="Sent Teams messages queued for deletion (Bot Connector DELETE)."
    )
    withdrawn: int = Field(ge=0, description="Inbox entries it was taken out of.")


class NotificationStatus(Answer):
    id: str
    type: str
    title: str
    version: int = Field(ge=1)
    status: Literal["scheduled", "accepted", "delivering", "completed", "recalled"]
    recipients: int = Field(ge=0)
    createdAt: str
    updatedAt: str
    counters: Counters
    channels: dict[str, Counters]
    reasons: dict[str, int]
    answers: dict[str, Annotated[int, Field(ge=0)]] | None = Field(
        description="Answers to the event's `prompt`, counted per choice in the order of its "
        "choices (zeros included; an answer to a choice an update removed comes after them). "
        "null when the event has no prompt."
    )
    nextDueAt: str | None = Field(
        json_schema_extra=DATE_TIME,
        description="When the earliest queued or retrying delivery is due (UTC, like "
        "createdAt): in the future while it waits (quiet hours defer it to the end of the "
        "window, a retry to its backoff), in the past when it is due now or being sent. null "
        "when no delivery is outstanding.",
    )
    waiting: Literal["tenant-rate", "conversation-rate"] | None = Field(
        description="Why deliveries that are due wait (the reason most of them wait for): "
        "`tenant-rate` while their Teams tenant's rate budget is used (by this or other "
        "notifications; they share it fairly, `urgency: high` first), `conversation-rate` "
        "while a conversation's own limit is. null when nothing waits for budget."
    )
    waitingFor: dict[str, Annotated[int, Field(ge=0)]] = Field(
        description="Deliveries waiting, per reason (empty when none). As seen by the "
        "instance that answers."
    )
    audience: Audience = Field(
        description="What each part of `recipients` found so far (expansion is streamed: "
        "this grows while the status is `accepted`)."
    )
    reach: Reach = Field(
        description="How people without a stored conversation were reached, or why not."
    )
    engagement: Funnel | None = None
    recalledAt: str | None = Field(
        None, description="When its sender recalled it (DELETE); absent unless recalled."
    )
    sendAt: str | None = Field(
        None, description="The event's sendAt, when it has one (status `scheduled` until then)."
    )
    resendOf: str | None = Field(
        None, description="A resend: the notification it repeats (POST .../resend)."
    )


def operator_purpose(notification_id: str) -> str:
    """The link-token purpose that opens one notification's operator page (api/operator.py)."""
    return f"operator:{notification_id}"


OPERATOR_LINK: Final = backend_or_link(lambda request: operator_purpose(request.match_info["id"]))
"""A backend, or an `operator:{id}` link token for this notification: the operator page reads
its status, timeline and report, and renews its link, never another's and never a write."""
"""The rule for a notification id in a path: the same as for an event's `id`."""


class Pacing(Protocol):
    """The delivery worker's view of what waits for budget (delivery/worker.py)."""

    def waiting(self, notification_id: str, lanes: Mapping[str, int]) -> dict[str, int]: ...


class Recalls(Protocol):
    """The delivery worker's part in a recall (delivery/worker.py)."""

    async def recall(self, notification_id: str, wait_seconds: float = 60.0) -> None: ...

    def wake(self) -> None: ...


def _closed(properties: dict[str, Any], required: str) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": [required],
        "additionalProperties": False,
    }


def document_event_schemas(schemas: dict[str, Any]) -> None:
    """What pydantic's validators check but JSON Schema cannot infer from the types."""
    # Recipients: at least one part is given and not null (null counts as absent), as closed
    # alternatives, one per part; generators (schemathesis' coverage phase) handle that form.
    recipients = schemas["Recipients"]
    properties = recipients["properties"]
    parts = ("users", "groups", "teams", "channels", "all")
    schemas["Recipients"] = {
        "title": "Recipients",
        "description": recipients["description"],
        "anyOf": [
            _closed(
                {
                    **{other: properties[other] for other in parts},
                    part: properties[part]["anyOf"][0],
                },
                required=part,
            )
            for part in parts
        ],
    }
    event = schemas["Event"]
    event["properties"]["card"] = {
        "anyOf": [
            {
                "type": "object",
                "required": ["type"],
                "properties": {"type": {"const": "AdaptiveCard"}},
            },
            {"type": "null"},
        ],
        "description": "An Adaptive Card replacing the default card in Teams. At most "
        f"{MAX_CARD_BYTES:,} bytes as the attachment the bot sends (compact UTF-8 JSON of "
        '`{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}`), '
        "since Teams refuses a message over about 28 KB: a larger one is refused with 400 "
        "`card_too_large`.",
    }


class NotificationsApi:
    """Accepts events (validate, persist, 202) and reports their delivery status."""

    def __init__(
        self,
        notifications: NotificationStore,
        users: UserStore,
        outbox: DeliveryLedger,
        queue: DeliveryQueue,
        router: Router,
        prompts: PromptStore,
        pacing: Pacing,
        inbox: InboxStore | None = None,
        recalls: Recalls | None = None,
        on_withdrawn: Callable[[], None] = lambda: None,
    ) -> None:
        self._inbox = inbox
        self._recalls = recalls
        self._on_withdrawn = on_withdrawn
        self._pacing = pacing
        self._notifications = notifications
        self._users = users
        self._outbox = outbox
        self._queue = queue
        self._router = router
        self._prompts = prompts

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                "/api/notifications",
                self.post,
                BACKEND,
                doc={
                    "operationId": "postNotification",
                    "summary": "Post an event to be delivered to its recipients.",
                    "responses": {
                        "202": {
                            "description": "Accepted; delivery runs in the background.",
                            "content": json_body(Accepted),
                            "headers": {
                                "Location": {
                                    "description": "Where the delivery status can be read.",
                                    "required": True,
                                    "schema": {"type": "string", "pattern": "^/api/notifications/"},
                                }
                            },
                        },
                        "400": error("Invalid event; nothing was written."),
                        "401": UNAUTHORIZED,
                        "409": error("That id was recalled (code `recalled`); nothing written."),
                        "413": error("Body too large."),
                        "415": error("Body is not application/json."),
                    },
                },
                body=Body(Event),
            ),
            Route(
                "GET",
                "/api/notifications/{id}",
                self.get,
                OPERATOR_LINK,
                doc={
                    "operationId": "getNotification",
                    "summary": "Delivery status and counters per channel.",
                    "security": [{"apiKey": []}, {"operatorLink": []}],
                    "parameters": [path_id("The notification id.", NOTIFICATION_ID)],
                    "responses": {
                        "200": {"description": "Status.", "content": json_body(NotificationStatus)},
                        "400": error("Not a valid notification id."),
                        "401": UNAUTHORIZED,
                        "404": error("No such notification."),
                    },
                },
            ),
            Route(
                "DELETE",
                "/api/notifications/{id}",
                self.recall,
                BACKEND,
                doc={
                    "operationId": "recallNotification",
                    "summary": "Recall: cancel what is not sent, delete sent Teams messages, "
                    "withdraw it from inboxes.",
                    "description": "Nothing of it is sent after this answer (jobs already "
                    "leased included). Sent Teams messages are deleted in the background, "
                    "within each tenant's rate budget (the status's `reasons` count them as "
                    "`skipped:deleted`). Idempotent: a repeat keeps the first recalledAt.",
                    "security": [{"apiKey": []}],
                    "parameters": [path_id("The notification id.", NOTIFICATION_ID)],
                    "responses": {
                        "200": {"description": "Recalled.", "content": json_body(Recall)},
                        "400": error("Not a valid notification id."),
                        "401": UNAUTHORIZED,
                        "404": error("No such notification."),
                    },
                },
            ),
            Route(
                "GET",
                "/api/notifications/{id}/report.csv",
                self.report,
                OPERATOR_LINK,
                doc={
                    "operationId": "getNotificationReport",
                    "summary": "Per recipient and channel: status, reason, attempts, last error.",
                    "security": [{"apiKey": []}, {"operatorLink": []}],
                    "parameters": [path_id("The notification id.", NOTIFICATION_ID)],
                    "responses": {
                        "200": {
                            "description": "CSV with a header row: userId, channel, target, "
                            "status, reason, attempts, lastError, updatedAt, readAt, readVia, "
                            "acknowledgedAt, acknowledgedVia. Unknown recipients "
                            "have an empty channel; status uses the counter names. A delivered "
                            "row's reason says how a person without a stored chat was reached "
                            "(`created`, `installed`, `stored`); a failed one why not "
                            "(`not-installable: …`). Channel posts are rows of `team:{teamId}` "
                            "with the channel as target; a part of the audience that could not "
                            "be listed is a skipped row named after it (`group:{id}`, "
                            "`team:{id}`). The last four are the person's (empty until they "
                            "read / acknowledge).",
                            "content": {"text/csv": {"schema": {"type": "string"}}},
                        },
                        "400": error("Not a valid notification id."),
                        "401": UNAUTHORIZED,
                        "404": error("No such notification."),
                    },
                },
            ),
        ]

    async def post(self, request: web.Request) -> web.Response:
        event = await body(request, Event)
        notification_id = event.id or uuid.uuid4().hex
        NOTIFICATION_ID_LOG.set(notification_id)
        stored = StoredEvent.model_validate({**event.document(), "id": notification_id})
        document = stored.document()
        existing = await self._notifications.get(notification_id)
        if existing is not None and existing.recalled:
            raise ApiProblem(
                409, "recalled", f"notification {notification_id!r} was recalled; "
                "send a new one under another id", "id",
            )
        # What is known now: explicit users, channels, everybody for `all` (overlaps counted
        # twice); groups and teams add their people as they are expanded (GET says how many).
        audience = event.recipients
        recipients = len(dict.fromkeys(audience.users or ()))
        recipients += len({(c.team_id, c.channel_id) for c in audience.channels or ()})
        if audience.all:
            recipients += await self._users.count()
        outcome, record = await self._notifications.put(
            notification_id, content_hash(document), stored, event.type.lower(), recipients
        )
        if outcome != "unchanged":
            self._router.submit(notification_id)
        log.info(
            "notification %s %s (version %d, %d recipients)",
            notification_id, outcome, record.version, record.recipients,
        )
        answer: dict[str, Any] = {
            "id": notification_id,
            "status": "accepted",
            "recipients": record.recipients,
            "version": record.version,
            "outcome": outcome,
        }
        due = send_at(stored)
        if due is not None:
            answer["sendAt"] = document["sendAt"]
            if due > time.time():
                answer["status"] = "scheduled"
            else:
                answer["note"] = "sendAt is in the past: it is sent now"
        return model_response(
            Accepted,
            answer,
            status=202,
            headers={"Location": f"/api/notifications/{notification_id}"},
        )

    async def get(self, request: web.Request) -> web.Response:
        notification_id = path_param(request, "id", NOTIFICATION_ID)
        record = await self._notifications.get(notification_id)
        if record is None:
            raise ApiProblem(404, "not_found", f"no notification with id {notification_id!r}", "id")
        counters = await self._outbox.counters(notification_id)
        due = send_at(record.event)
        if record.recalled:
            status = "recalled"
        elif record.expansion_pending and due is not None and due > time.time():
            status = "scheduled"
        elif record.expansion_pending:
            status = "accepted"
        elif counters.outstanding:
            status = "delivering"
        else:
            status = "completed"
        waiting = self._pacing.waiting(notification_id, counters.lanes) if counters.lanes else {}
        parts = audience_parts(record.event.recipients)
        cursor = record.expand_cursor
        saved = cursor is not None and cursor.startswith("{")
        expansion = Expansion.loads(cursor, len(parts))
        if not record.expansion_pending and saved:
            recipients = expansion.added  # each person once, as the expansion found them
        else:
            recipients = max(record.recipients, expansion.added)
        body: dict[str, Any] = {
            "id": record.id,
            "type": record.event.type,
            "title": record.event.title,
            "version": record.version,
            "status": status,
            "recipients": recipients,
            "createdAt": iso(record.created_at),
            "updatedAt": iso(record.updated_at),
            "counters": counters.totals,
            "channels": counters.channels,
            # Skip and failure reasons; how deliveries were delivered is in `reach`.
            "reasons": {
                k: n for k, n in counters.reasons.items() if not k.startswith("delivered:")
            },
            "audience": {
                "parts": [
                    {
                        **part.describe(),
                        "state": (
                            "done"
                            if not record.expansion_pending and progress.state != "failed"
                            else progress.state
                        ),
                        "listed": progress.listed,
                        "added": progress.added,
                        "reason": progress.reason,
                    }
                    for part, progress in zip(parts, expansion.parts, strict=True)
                ]
            },
            "reach": _reach(counters),
            # Always present: null when the event asks nothing / nothing is outstanding.
            "answers": await prompt_answer_counts(self._prompts, record),
            "nextDueAt": None if counters.next_due is None else iso(counters.next_due),
            "waiting": max(waiting, key=waiting.__getitem__) if waiting else None,
            "waitingFor": waiting,
        }
        if record.recalled_at is not None:
            body["recalledAt"] = iso(record.recalled_at)
        if due is not None:
            body["sendAt"] = record.event.model_dump(mode="json", include={"send_at"})["send_at"]
        if record.event.resend_of:
            body["resendOf"] = record.event.resend_of
        if self._inbox is not None:
            body["engagement"] = _funnel(
                await self._inbox.engagement_counts(notification_id),
                asks_acknowledgement=record.event.acknowledge is not None,
            )
        return model_response(NotificationStatus, body)

    async def recall(self, request: web.Request) -> web.Response:
        """Take a notification back: what is not sent yet never is (jobs already leased by
        the worker included), sent Teams messages are deleted (queued like sends, within the
        tenant's budget), and it leaves its recipients' inboxes. Idempotent: a repeat keeps
        the first `recalledAt` and reports what is left to do."""
        notification_id = path_param(request, "id", NOTIFICATION_ID)
        NOTIFICATION_ID_LOG.set(notification_id)
        record = await self._notifications.recall(notification_id, time.time())
        if record is None:
            raise ApiProblem(404, "not_found", f"no notification with id {notification_id!r}", "id")
        if self._recalls is not None:
            # Returns once no send of it is under way here: nothing goes out after this answer.
            await self._recalls.recall(notification_id)
        cancelled = (await self._outbox.counters(notification_id)).outstanding
        deleting = await self._queue.retract(notification_id)
        withdrawn = await self._inbox.withdraw(notification_id) if self._inbox else 0
        if withdrawn:
            self._on_withdrawn()
        if self._recalls is not None and deleting:
            self._recalls.wake()
        assert record.recalled_at is not None
        log.info(
            "notification %s recalled: %d unsent cancelled, %d sent messages to delete, "
            "%d inbox entries withdrawn", notification_id, cancelled, deleting, withdrawn,
        )
        return model_response(
            Recall,
            {
                "id": notification_id,
                "status": "recalled",
                "recalledAt": iso(record.recalled_at),
                "cancelled": cancelled,
                "deleting": deleting,
                "withdrawn": withdrawn,
            }
        )

    async def report(self, request: web.Request) -> web.StreamResponse:
        """Per recipient and channel: status, reason, attempts, last error (CSV, streamed)."""
        notification_id = path_param(request, "id", NOTIFICATION_ID)
        if await self._notifications.get(notification_id) is None:
            raise ApiProblem(404, "not_found", f"no notification with id {notification_id!r}", "id")
        response = web.StreamResponse(
            headers={
                "Content-Type": "text/csv; charset=utf-8",
                "Content-Disposition": f'attachment; filename="{notification_id}-report.csv"',
            }
        )
        await response.prepare(request)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(REPORT_COLUMNS)
        after = 0
        while True:
            rows = await self._outbox.report(notification_id, after=after, limit=_REPORT_PAGE)
            engaged: dict[str, Engagement] = {}
            if self._inbox is not None and rows:
                users = list(dict.fromkeys(row.user_id for row in rows))
                engaged = await self._inbox.engagement_of(notification_id, users)
            for row in rows:
                seen = engaged.get(row.user_id)
                writer.writerow(
                    [
                        _csv_safe(row.user_id),
                        row.channel,
                        _csv_safe(row.target),
                        row.status,
                        row.reason or "",
                        row.attempts,
                        _csv_safe(row.last_error or ""),
                        iso(row.updated_at),
                        *_engagement_cells(seen),
                    ]
                )
            await response.write(buffer.getvalue().encode())
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < _REPORT_PAGE:
                break
            after = rows[-1].id
        await response.write_eof()
        return response


def _funnel(counts: EngagementCounts, *, asks_acknowledgement: bool) -> dict[str, Any]:
    """GET's `engagement`: of the people whose inbox has it, how many read and acknowledged it
    (on any surface; `readVia`/`acknowledgedVia`: where each first did)."""
    return {
        "recipients": counts.recipients,
        "read": counts.read,
        "acknowledged": counts.acknowledged if asks_acknowledgement else None,
        "readVia": dict(sorted(counts.read_via.items())),
        "acknowledgedVia": dict(sorted(counts.acknowledged_via.items())),
    }


def _engagement_cells(seen: Engagement | None) -> list[str]:
    if seen is None:
        return ["", "", "", ""]
    return [
        "" if seen.read_at is None else iso(seen.read_at),
        seen.read_via or "",
        "" if seen.acknowledged_at is None else iso(seen.acknowledged_at),
        seen.acknowledged_via or "",
    ]
def _reach(counters: DeliveryCounters) -> dict[str, Any]:
    """How people without a stored conversation were reached, or why not (delivery/reach.py):
    from the reasons of delivered and failed deliveries."""
    reach: dict[str, Any] = {"created": 0, "installed": 0, "stored": 0, "notInstallable": {}}
    for key, n in counters.reasons.items():
        status, _, reason = key.partition(":")
        if status == "delivered" and reason in ("created", "installed", "stored"):
            reach[reason] += n
        elif status == "failed" and reason.startswith(NOT_INSTALLABLE):
            why = reason[len(NOT_INSTALLABLE) :].strip() or "unknown"
            reach["notInstallable"][why] = reach["notInstallable"].get(why, 0) + n
    return reach


def _csv_safe(text: str) -> str:
    """Cells opened in a spreadsheet must not run as formulas (CSV injection)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@") else text
