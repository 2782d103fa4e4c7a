"""The Web Push channel: a browser notification through the browser's push service.

Each push is encrypted for one subscription with pywebpush (RFC 8291 `aes128gcm`), signed with
Herald's VAPID key (RFC 8292) and posted to the subscription's endpoint (RFC 8030) over Herald's
outbound HTTP client (outbound/http.py: pooled keep-alive connections per push service).
Headers: `TTL` always (seconds until the event's `expiresAt`, else a default), `Urgency` when
the event has one, and `Topic` derived from the notification id, so a progress update (same id,
new version) replaces a push still waiting at the push service; the service worker shows it
under the same tag, replacing what is on screen.

Push services answer 201; 404/410 mean the subscription is gone (it is deleted and counted in
`deadTargets`); 429 and 5xx are retried after `Retry-After` (or the worker's backoff); any
other refusal fails that one delivery.

Herald posts only where WEBPUSH_ALLOWED_HOSTS allows (host and port), checked again before
every send, since the list may have changed since the subscription was registered: a
subscription no longer allowed fails with the reason and nothing is sent. Redirects are never
followed (a 3xx fails the delivery): a push service that is allowed could otherwise send the
push, and the VAPID token, anywhere.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final

from pywebpush import WebPusher, WebPushException
from yarl import URL

from delivery.allowed_hosts import AllowedHosts
from delivery.badges import MaybeBadged, UnreadCounts, unwrap, with_badges
from delivery.channel import Channel, DeliveryResult, Pace, Target
from delivery.outbox import DeliveryJob
from delivery.payload import Shrink, fit_json
from delivery.vapid import VapidKeys
from notifications.event import Notice
from outbound.errors import TransportError
from outbound.http import LeanHttpClient
from retry_after import retry_after_seconds
from storage.records import NotificationRecord
from storage.subscriptions import PushSubscription, SubscriptionStore

__all__ = ["DEFAULT_TTL_SECONDS", "WebPushChannel", "push_payload", "topic_for", "with_unread"]

log = logging.getLogger(__name__)

DEFAULT_TTL_SECONDS: Final = 24 * 3600
"""How long a push service keeps a push for a browser that is offline, unless the event says
(`expiresAt`). A day: most notifications are stale after that."""

_SHRINK: Final[tuple[Shrink, ...]] = (
    ("text", "truncate", 280),
    ("data", "drop", 0),
    ("icon", "drop", 0),
    ("text", "truncate", 0),
    ("url", "drop", 0),
    ("title", "truncate", 1),
)
"""What gives way when a payload is too large: the text is cut first, as long as a readable
start (280 characters) still fits; otherwise `data` and the icon go first (the service worker
shows neither) and the text is cut after; the click URL and the title go last."""

def topic_for(notification_id: str) -> str:
    """RFC 8030 §5.4 Topic: at most 32 characters of the base64url alphabet, one per id."""
    digest = hashlib.sha256(notification_id.encode()).digest()
    return base64.urlsafe_b64encode(digest).decode()[:32]


_BADGE_ROOM: Final = 16
"""Bytes kept free in every payload for the person's unread count (`,"unread":N`, N at most
99,999): as much of the text as fits still goes."""
_MAX_BADGE: Final = 99_999


def push_payload(event: Notice, notification_id: str, limit: int) -> bytes:
    """What the service worker receives: {id, title, text, icon, url, severity, type, data,
    acknowledge}, absent fields left out, shrunk to `limit` bytes (text cut first) when
    needed. `acknowledge` is the text of the acknowledge action the event asks for."""
    document: dict[str, Any] = {
        "id": notification_id,
        "title": event.title,
        "text": event.text,
        "icon": event.icon,
        "url": event.url,
        "severity": event.severity,
        "type": event.type,
        "data": event.data,
        "acknowledge": event.acknowledge.text if event.acknowledge else None,
    }
    return fit_json({k: v for k, v in document.items() if v is not None}, limit, _SHRINK)


def with_unread(payload: bytes, unread: int | None) -> bytes:
    """The payload with the person's unread count (the badge the service worker sets)."""
    if unread is None:
        return payload
    return payload[:-1] + b',"unread":' + str(min(unread, _MAX_BADGE)).encode() + b"}"


def _ttl(event: Notice, now: float, default: int) -> int:
    if event.expires_at is None:
        return default
    return max(0, int(event.expires_at.timestamp() - now))


class WebPushChannel(Channel[MaybeBadged[PushSubscription]]):
    """Channel `webpush`: one push per subscription (a user may have several browsers)."""

    name = "webpush"
    max_payload_bytes: Final = 3993
    """RFC 8291 §4: a push message body is at most 4,096 bytes; aes128gcm takes 86 for its
    header (salt, record size, the 65-byte ephemeral key) and 17 per record (padding
    delimiter, 16-byte tag), leaving 3,993 for the payload in a single record."""
    content_encoding: Final = "aes128gcm"

    def __init__(
        self,
        subscriptions: SubscriptionStore,
        vapid: VapidKeys,
        *,
        allowed_hosts: AllowedHosts,
        default_ttl: int = DEFAULT_TTL_SECONDS,
        timeout_seconds: float = 30.0,
        connections: int = 256,
        clock: Callable[[], float] = time.time,
        payload_cache_size: int = 64,
        unread_counts: UnreadCounts | None = None,
    ) -> None:
        self._unread_counts = unread_counts
        self._subscriptions = subscriptions
        self._vapid = vapid
        self._allowed_hosts = allowed_hosts
        self._default_ttl = default_ttl
        self._timeout = timeout_seconds
        self._clock = clock
        self._payloads: OrderedDict[tuple[str, int], bytes] = OrderedDict()
        self._payload_cache_size = payload_cache_size
        self._connections = connections
        self._client: LeanHttpClient | None = None

    @property
    def public_key(self) -> str:
        return self._vapid.public_key

    def _http(self) -> LeanHttpClient:
        # Opened on the first send; closed by aclose() at shutdown (and opened again if the
        # channel is used after that, as the aiohttp session it replaces was).
        if self._client is None:
            self._client = LeanHttpClient(
                max_connections_per_origin=self._connections, user_agent="Herald"
            )
        return self._client

    async def targets(self, user_ids: Sequence[str]) -> dict[str, list[Target]]:
        found = await self._subscriptions.targets_for(user_ids)
        return {user: [Target(key) for key in keys] for user, keys in found.items()}

    def pace(self, target: MaybeBadged[PushSubscription]) -> Pace | None:
        return None  # push services publish no per-sender rate; their 429s are retried

    async def load(self, jobs: Sequence[DeliveryJob]) -> dict[int, MaybeBadged[PushSubscription]]:
        found = await self._subscriptions.get_many([(j.user_id, j.target) for j in jobs])
        targets: dict[int, PushSubscription] = {}
        for job in jobs:
            subscription = found.get((job.user_id, job.target))
            if subscription is not None:
                targets[job.id] = subscription
        return await with_badges(targets, jobs, self._unread_counts)

    def payload(self, notification: NotificationRecord) -> bytes:
        """The plaintext for every recipient of this version (built once, then cached)."""
        key = (notification.id, notification.version)
        payload = self._payloads.get(key)
        if payload is None:
            payload = push_payload(
                notification.event, notification.id, self.max_payload_bytes - _BADGE_ROOM
            )
            self._payloads[key] = payload
            if len(self._payloads) > self._payload_cache_size:
                self._payloads.popitem(last=False)
        return payload

    def headers(
        self, subscription: PushSubscription, notification: NotificationRecord, now: float
    ) -> dict[str, str]:
        """The push request's headers (RFC 8030 §5, RFC 8291 §4, RFC 8292 §3)."""
        headers = {
            "Authorization": self._vapid.authorization(subscription.endpoint),
            "TTL": str(_ttl(notification.event, now, self._default_ttl)),
            "Topic": topic_for(notification.id),
            "Content-Encoding": self.content_encoding,
            "Content-Type": "application/octet-stream",
        }
        if notification.event.urgency is not None:
            headers["Urgency"] = notification.event.urgency
        return headers

    async def send(
        self,
        job: DeliveryJob,
        target: MaybeBadged[PushSubscription],
        notification: NotificationRecord,
    ) -> DeliveryResult:
        subscription, unread = unwrap(target)
        refusal = self._allowed_hosts.refusal(subscription.endpoint)
        if refusal is not None:  # allowed when registered, no longer: never sent
            return DeliveryResult.failed(f"not sent: {refusal}")
        now = self._clock()
        info = {
            "endpoint": subscription.endpoint,
            "keys": {"p256dh": subscription.p256dh, "auth": subscription.auth},
        }
        try:
            # pywebpush encrypts (a fresh ephemeral key and salt per push); the request goes
            # out on Herald's client rather than through WebPusher.send_async (aiohttp, which
            # would decode every answer's body as text and copy the headers again).
            plain = with_unread(self.payload(notification), unread)
            body = WebPusher(info).encode(plain, self.content_encoding)
        except WebPushException as exc:  # keys pywebpush cannot use: this push never works
            return DeliveryResult.failed(f"bad subscription keys: {exc.message}")
        except ValueError as exc:  # a key that is not a P-256 point fails in the encryption
            return DeliveryResult.failed(f"bad subscription keys: {type(exc).__name__}")
        try:
            # The client follows no redirects (see _result).
            answer = await self._http().request(
                "POST",
                URL(subscription.endpoint),
                self.headers(subscription, notification, now),
                body["body"],
                timeout=self._timeout,
            )
        except TransportError as exc:
            if not exc.retryable:  # an endpoint or header the client cannot send
                return DeliveryResult.failed(f"not sent: {exc.reason}")
            return DeliveryResult.retry(f"push service unreachable: {exc.reason}")
        return self._result(answer.status, answer.headers, now)

    @staticmethod
    def _result(status: int, headers: Mapping[str, str], now: float) -> DeliveryResult:
        """What a push service's answer means; `headers` with lower-cased names."""
        if 200 <= status < 300:
            return DeliveryResult.delivered(headers.get("location"))
        if 300 <= status < 400:
            return DeliveryResult.failed(
                f"push service answered {status} (a redirect): Herald follows no redirects"
            )
        if status in (404, 410):
            return DeliveryResult.dead(f"push subscription gone ({status})")
        if status == 429 or status >= 500:
            return DeliveryResult.retry(
                f"push service answered {status}",
                retry_after_seconds(headers.get("retry-after"), now),
            )
        if status in (401, 403):
            return DeliveryResult.failed(f"push service refused our VAPID credentials ({status})")
        if status == 413:
            return DeliveryResult.failed("push service says the payload is too large (413)")
        return DeliveryResult.failed(f"push service refused the push ({status})")

    async def retire(self, job: DeliveryJob, reason: str) -> None:
        if await self._subscriptions.delete(job.target, user_id=job.user_id):
            log.info(
                "deleted push subscription %s… of %s: %s", job.target[:12], job.user_id, reason
            )

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
