"""POST /api/notifications, GET /api/notifications/{id} and its per-recipient report."""

from __future__ import annotations

import csv
import io
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

from aiohttp import web
from pydantic import TypeAdapter

from api.http import ApiProblem, iso, json_response, path_param, read_json
from api.prompt_answers import prompt_answer_counts
from api.routing import BACKEND, Route, backend_or_link
from api.schemas import Event, NotificationId, content_hash
from delivery.audience import Expansion, audience_parts
from delivery.outbox import DeliveryCounters, Outbox
from delivery.reach import NOT_INSTALLABLE
from delivery.router import Router, send_at
from logs import NOTIFICATION_ID as NOTIFICATION_ID_LOG
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


class NotificationsApi:
    """Accepts events (validate, persist, 202) and reports their delivery status."""

    def __init__(
        self,
        notifications: NotificationStore,
        users: UserStore,
        outbox: Outbox,
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
        self._router = router
        self._prompts = prompts

    def routes(self) -> list[Route]:
        return [
            Route("POST", "/api/notifications", self.post, BACKEND),
            Route("GET", "/api/notifications/{id}", self.get, OPERATOR_LINK),
            Route("DELETE", "/api/notifications/{id}", self.recall, BACKEND),
            Route("GET", "/api/notifications/{id}/report.csv", self.report, OPERATOR_LINK),
        ]

    async def post(self, request: web.Request) -> web.Response:
        event = Event.model_validate(await read_json(request))
        document = event.document()
        notification_id = event.id or uuid.uuid4().hex
        NOTIFICATION_ID_LOG.set(notification_id)
        document["id"] = notification_id
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
            notification_id, content_hash(document), document, event.type.lower(), recipients
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
        due = send_at(document)
        if due is not None:
            answer["sendAt"] = document["sendAt"]
            if due > time.time():
                answer["status"] = "scheduled"
            else:
                answer["note"] = "sendAt is in the past: it is sent now"
        return json_response(
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
        parts = audience_parts(record.event.get("recipients") or {})
        cursor = record.expand_cursor
        saved = cursor is not None and cursor.startswith("{")
        expansion = Expansion.loads(cursor, len(parts))
        if not record.expansion_pending and saved:
            recipients = expansion.added  # each person once, as the expansion found them
        else:
            recipients = max(record.recipients, expansion.added)
        body: dict[str, Any] = {
            "id": record.id,
            "type": record.event.get("type"),
            "title": record.event.get("title"),
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
            body["sendAt"] = record.event["sendAt"]
        if record.event.get("resendOf"):
            body["resendOf"] = record.event["resendOf"]
        if self._inbox is not None:
            body["engagement"] = _funnel(
                await self._inbox.engagement_counts(notification_id),
                asks_acknowledgement=isinstance(record.event.get("acknowledge"), dict),
            )
        return json_response(body)

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
        deleting = await self._outbox.retract(notification_id)
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
        return json_response(
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
