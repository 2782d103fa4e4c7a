"""What the operator page (/notifications/{id}) reads besides the status and the report:
the delivery-rate timeline, and signed links that open the page without an API key.

`POST /api/notifications/{id}/link` (API key or Entra ID token) issues a link token for that
one notification (purpose `operator:{id}`, valid HERALD_LINK_MINUTES). It opens the page for
whoever holds it, and lets the page read exactly the status, timeline and report of that
notification — never another's, never a write (their routes declare
`OPERATOR_LINK`). The page renews the token with the same endpoint while it is open; a renewal
keeps the original grant, so it ends HERALD_LINK_MAX_HOURS after the link was issued.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final
from urllib.parse import quote

from aiohttp import web
from pydantic import Field

from api.auth import PRINCIPAL
from api.http import ApiProblem, iso, model_response, path_param, query_param
from api.link_tokens import LinkTokenError, LinkTokens
from api.notifications import (
    NOTIFICATION_ID,
    OPERATOR_LINK,
    notification_id_parameter,
    operator_purpose,
)
from api.routing import (
    DATE_TIME,
    UNAUTHORIZED,
    Answer,
    Route,
    error,
    json_body,
)
from delivery.outbox import DeliveryLedger, TimelineBucket
from storage.protocols import InboxStore, NotificationStore
from storage.records import EngagementBucket

__all__ = [
    "MAX_BUCKET_SECONDS",
    "NICE_BUCKETS",
    "OperatorApi",
    "bucket_for",
    "operator_purpose",
]

NICE_BUCKETS: Final = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400
)
"""Bucket sizes (seconds) a person reads at a glance on a chart's axis."""
MAX_BUCKET_SECONDS: Final = 86400
TARGET_BUCKETS: Final = 120
"""About as many bars as the page's chart shows legibly."""

class OperatorLink(Answer):
    """A link to the operator page of one notification, and the token in it."""

    url: str = Field(
        description="`{HERALD_PUBLIC_URL}/notifications/{id}?token=...`: opens the page."
    )
    token: str = Field(
        description="Opens GET /api/notifications/{id}, .../timeline and .../report.csv of this "
        "notification only (Authorization: Bearer), and this endpoint again to renew it."
    )
    expiresAt: str = Field(json_schema_extra=DATE_TIME)


class TimelineBucketInfo(Answer):
    """Deliveries that reached a final state in one bucket (by when they were settled)."""

    start: str = Field(json_schema_extra=DATE_TIME)
    delivered: int = Field(ge=0)
    skipped: int = Field(ge=0)
    failed: int = Field(ge=0)
    deadTargets: int = Field(ge=0)
    read: int | None = Field(None, ge=0, description="Recipients who first read it then.")
    acknowledged: int | None = Field(
        None, ge=0, description="Recipients who acknowledged it then."
    )


class Timeline(Answer):
    id: str
    bucketSeconds: int = Field(ge=1, le=MAX_BUCKET_SECONDS)
    buckets: list[TimelineBucketInfo] = Field(
        description="Oldest first; buckets without an outcome are left out. Deliveries per "
        "second in a bucket: its count / bucketSeconds."
    )

_OPERATOR: list[dict[str, list[str]]] = [{"apiKey": []}, {"operatorLink": []}]


def bucket_for(span_seconds: float) -> int:
    """The smallest nice bucket that draws `span_seconds` in at most TARGET_BUCKETS bars."""
    for size in NICE_BUCKETS:
        if span_seconds / size <= TARGET_BUCKETS:
            return size
    return MAX_BUCKET_SECONDS


def _bucket_json(bucket: TimelineBucket) -> dict[str, object]:
    return {
        "start": iso(bucket.start, seconds=True),
        "delivered": bucket.delivered,
        "skipped": bucket.skipped,
        "failed": bucket.failed,
        "deadTargets": bucket.dead,
    }


def _with_engagement(
    buckets: list[dict[str, object]], engaged: list[EngagementBucket]
) -> list[dict[str, object]]:
    """The delivery buckets with first reads and acknowledgements per bucket (the funnel
    over time); both are aligned on multiples of the bucket size."""
    by_start = {str(b["start"]): {**b, "read": 0, "acknowledged": 0} for b in buckets}
    for e in engaged:
        row = by_start.setdefault(
            iso(e.start, seconds=True),
            {"start": iso(e.start, seconds=True), "delivered": 0, "skipped": 0, "failed": 0,
             "deadTargets": 0, "read": 0, "acknowledged": 0},
        )
        row["read"], row["acknowledged"] = e.read, e.acknowledged
    return [by_start[k] for k in sorted(by_start)]


class OperatorApi:
    """`POST /api/notifications/{id}/link` and `GET /api/notifications/{id}/timeline`."""

    def __init__(
        self,
        notifications: NotificationStore,
        outbox: DeliveryLedger,
        tokens: LinkTokens,
        public_url: str,
        *,
        clock: Callable[[], float] = time.time,
        inbox: InboxStore | None = None,
    ) -> None:
        self._inbox = inbox
        self._notifications = notifications
        self._outbox = outbox
        self._tokens = tokens
        self._base = public_url.rstrip("/")
        self._clock = clock

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                "/api/notifications/{id}/link",
                self.link,
                OPERATOR_LINK,
                doc={
                    "operationId": "postOperatorLink",
                    "summary": "A link to the notification's live delivery page, usable without an "
                    "API key for HERALD_LINK_MINUTES.",
                    "description": "With an operator link token of the same notification, a fresh "
                    "one (the page renews its own while it is open), expiring no later than "
                    "HERALD_LINK_MAX_HOURS after the link was first issued.",
                    "security": _OPERATOR,
                    "parameters": [notification_id_parameter()],
                    "responses": {
                        "200": {
                            "description": "The link.",
                            "content": json_body(OperatorLink),
                            "headers": {
                                "Cache-Control": {"required": True, "schema": {"const": "no-store"}}
                            },
                        },
                        "400": error("Not a valid notification id."),
                        "401": UNAUTHORIZED,
                        "404": error("No such notification."),
                    },
                },
            ),
            Route(
                "GET",
                "/api/notifications/{id}/timeline",
                self.timeline,
                OPERATOR_LINK,
                doc={
                    "operationId": "getNotificationTimeline",
                    "summary": "Deliveries that reached a final state per time bucket (the "
                    "operator "
                    "page's delivery-rate chart).",
                    "security": _OPERATOR,
                    "parameters": [
                        notification_id_parameter(),
                        {
                            "name": "bucket",
                            "in": "query",
                            "required": False,
                            "description": "Bucket size in seconds, at most once. Without it "
                            "Herald picks a round size giving at most about 120 buckets.",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": MAX_BUCKET_SECONDS,
                            },
                        },
                    ],
                    "responses": {
                        "200": {"description": "The timeline.", "content": json_body(Timeline)},
                        "400": error("Not a valid notification id or bucket (each at most once)."),
                        "401": UNAUTHORIZED,
                        "404": error("No such notification."),
                    },
                },
            ),
        ]

    async def _existing(self, request: web.Request) -> tuple[str, float]:
        notification_id = path_param(request, "id", NOTIFICATION_ID)
        record = await self._notifications.get(notification_id)
        if record is None:
            raise ApiProblem(404, "not_found", f"no notification with id {notification_id!r}", "id")
        return notification_id, record.created_at

    async def link(self, request: web.Request) -> web.Response:
        """A new link (API key or Entra ID token), or, called with the page's own link token,
        that token renewed: same grant, so never past its absolute lifetime."""
        notification_id, _ = await self._existing(request)
        purpose = operator_purpose(notification_id)
        principal = request.get(PRINCIPAL)
        if principal is not None and principal.kind == "link":
            _, _, credential = request.headers.get("Authorization", "").partition(" ")
            try:
                token = self._tokens.renew(credential.strip(), purpose)
            except LinkTokenError as exc:  # expired since the middleware looked
                message = f"the link is not valid ({exc.reason}); ask for a new one"
                raise ApiProblem(401, "unauthorized", message) from exc
        else:
            token = self._tokens.issue(notification_id, purpose)
        expires = self._tokens.verify_claims(token, purpose).expires_at
        url = f"{self._base}/notifications/{quote(notification_id, safe=':@~.-_')}?token={token}"
        return model_response(
            OperatorLink,
            {"url": url, "token": token, "expiresAt": iso(expires, seconds=True)},
            headers={"Cache-Control": "no-store"},
        )

    async def timeline(self, request: web.Request) -> web.Response:
        notification_id, created_at = await self._existing(request)
        raw = query_param(request, "bucket")
        requested: int | None = None
        if raw is not None:
            requested = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 6 else 0
            if not 1 <= requested <= MAX_BUCKET_SECONDS:
                raise ApiProblem(
                    400,
                    "invalid_field",
                    f"bucket must be an integer number of seconds from 1 to {MAX_BUCKET_SECONDS}",
                    "bucket",
                )
        # Sized first by the notification's whole life, then (when the outcomes cluster in a
        # shorter stretch, e.g. a completed broadcast looked at later) by their own span.
        size = requested or bucket_for(max(1.0, self._clock() - created_at))
        buckets = await self._outbox.timeline(notification_id, bucket_seconds=size)
        if requested is None and buckets and size > 1:
            finer = bucket_for(buckets[-1].start + size - buckets[0].start)
            if finer < size:
                size = finer
                buckets = await self._outbox.timeline(notification_id, bucket_seconds=size)
        rows = [_bucket_json(b) for b in buckets]
        if self._inbox is not None:
            engaged = await self._inbox.engagement_timeline(notification_id, bucket_seconds=size)
            rows = _with_engagement(rows, engaged)
        return model_response(
            Timeline, {"id": notification_id, "bucketSeconds": size, "buckets": rows}
        )
