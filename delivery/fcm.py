"""The FCM channel (`mobile`): native pushes to registered app installations through the
documented FCM HTTP v1 API (`POST /v1/projects/{project}/messages:send`, one message a request).

Sends go out in micro-batches: the worker runs one task per delivery, and sends that arrive
within a couple of milliseconds (or 500 of them, whichever comes first) share one OAuth token
check and go out together as concurrent requests over Herald's pooled keep-alive HTTP/1.1
client (outbound/http.py, ~130 µs of CPU a request); each caller gets the answer for its own
token. One bad token never fails the rest of a batch: FCM answers per message, and the content
shared by a batch is validated once, when it is built.

Only firebase-admin's public message types are used (`messaging.Message` and its parts, and
`str(message)`, the SDK's encoder, which also validates); no firebase_admin App, no private
attribute. The OAuth 2.0 access token comes from the service account through google-auth's
documented flow (`google.oauth2.service_account.Credentials`, scope `firebase.messaging`), whose
refresh (a blocking `requests` call, about once an hour) runs in a thread, off the event loop.

What goes to a device (cached per notification version and platform):

- `notification`: title, body (the event's text) and image (the event's icon);
- `data` (string values only): `herald.id`, `herald.version`, `herald.type`,
  `herald.severity`, `herald.url` (the click link) and the event's own `data` (non-strings as
  JSON, FCM's reserved keys left out);
- Android: priority `high` for urgent events else `normal`, the notification's priority from
  `urgency`, `collapse_key` and notification `tag` from the notification id (a progress update
  replaces the one before, queued or on screen), `ttl` from `expiresAt`;
- APNs (iOS through FCM): `apns-priority` 10, or 5 for low urgency, `apns-collapse-id` from the
  notification id, `apns-expiration` from `expiresAt`, `apns-push-type: alert`, thread id from
  the event type;
- web: `Urgency`, `TTL` and `Topic` headers, notification `tag`, and the click link as
  `fcm_options.link`.

The whole message, token aside, is kept within FCM's 4,096-byte payload limit (by the builder
shared with APNs, delivery/mobile_payload.py): the text is cut first (keeping a readable
start), then the event's data and the image go, then the rest of the text, the link, and the
title last.

Errors per token (FCM's error body: `errorCode` in its FcmError detail, else the google.rpc
`status`): UNREGISTERED and SENDER_ID_MISMATCH → the token is removed from the installation
(`deadTargets`); INVALID_ARGUMENT (and THIRD_PARTY_AUTH_ERROR) → `failed` with FCM's reason,
not retried; QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL, UNAUTHENTICATED (the access token is then
fetched anew) and timeouts, refused connections, an OAuth token that could not be had → retried
after `Retry-After` when FCM gave one, else with the worker's exponential backoff.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Final

import google.auth.exceptions
import google.auth.transport.requests
import requests
from firebase_admin import exceptions, messaging
from google.oauth2 import service_account
from yarl import URL

from delivery.badges import MaybeBadged, UnreadCounts, unwrap, with_badges
from delivery.channel import Channel, DeliveryResult, Pace, Target
from delivery.dead_tokens import DeadTokens
from delivery.mobile import APNS_NOT_CONFIGURED, MOBILE
from delivery.mobile_payload import ACKNOWLEDGE_CATEGORY, Fitted, custom_keys, fit_push
from delivery.outbox import DeliveryJob
from delivery.payload import collapse_id, encode_json
from errors import DeliveryError, DeliveryFailed, RetryLater, SettingsError, TargetGone
from notifications.event import Notice
from outbound.errors import TimedOut, TransportError
from outbound.http import LeanHttpClient
from retry_after import retry_after_seconds
from storage.devices import DeviceRecord, DeviceStore
from storage.records import NotificationRecord

__all__ = [
    "FCM_SCOPES",
    "MAX_BATCH",
    "FcmChannel",
    "FcmRefused",
    "FcmStats",
    "build_message",
    "collapse_id",
    "fcm_refusal",
    "map_fcm_error",
]

log = logging.getLogger(__name__)

MAX_BATCH: Final = 500
"""The most sends that go out together (one batch, one round of concurrent requests)."""
FCM_SEND_PATH: Final = "/v1/projects/{0}/messages:send"
FCM_SCOPES: Final = ("https://www.googleapis.com/auth/firebase.messaging",)
"""The OAuth scope FCM's HTTP v1 API documents for `messages:send`."""

_ANDROID_NOTIFICATION_PRIORITY: Final = {
    "very-low": "min",
    "low": "low",
    "normal": "default",
    "high": "high",
}
_BADGE_ROOM: Final = 64
"""Bytes kept free in every message for the person's unread badge (`herald.unread`, Android's
`notification_count`, APNs `badge`), added per device to the shared content."""
_RESERVED_DATA_KEYS: Final = frozenset({"from", "message_type"})
_RESERVED_DATA_PREFIXES: Final = ("google", "gcm")
_MAX_REASON: Final = 200


def _web_topic(notification_id: str) -> str:
    """RFC 8030 Topic for web installations: at most 32 base64url characters."""
    return hashlib.sha256(notification_id.encode()).hexdigest()[:32]


def _reserved(key: str) -> bool:
    """FCM refuses data keys it keeps for itself (`from`, `message_type`, `google*`, `gcm*`)."""
    lowered = key.lower()
    return lowered in _RESERVED_DATA_KEYS or lowered.startswith(_RESERVED_DATA_PREFIXES)


def _seconds_left(event: Notice, now: float) -> tuple[int, float] | None:
    if event.expires_at is None:
        return None
    at = event.expires_at.timestamp()
    return max(0, int(at - now)), at


def _encoded_size(message: messaging.Message) -> int:
    """Bytes of the message as sent (compact UTF-8 JSON), its token aside."""
    document = json.loads(str(message))  # str() runs the SDK's encoder: it validates too
    document.pop("token", None)
    return len(encode_json(document))


def _assemble(
    fitted: Fitted,
    event: Notice,
    notification_id: str,
    version: int,
    platform: str,
    now: float,
) -> messaging.Message:
    urgency = event.urgency
    collapse = collapse_id(notification_id)
    url = fitted.url
    data = custom_keys(fitted, event, notification_id, version)
    acknowledge = event.acknowledge.text if event.acknowledge is not None else None
    left = _seconds_left(event, now)
    android = apns = webpush = None
    if platform == "android":
        android = messaging.AndroidConfig(
            collapse_key=collapse,
            priority="high" if urgency == "high" else "normal",
            ttl=timedelta(seconds=left[0]) if left else None,
            notification=messaging.AndroidNotification(
                tag=collapse, priority=_ANDROID_NOTIFICATION_PRIORITY.get(urgency or "")
            ),
        )
    elif platform == "ios":
        headers = {
            "apns-priority": "5" if urgency in ("low", "very-low") else "10",
            "apns-collapse-id": collapse,
            "apns-push-type": "alert",
        }
        if left:
            headers["apns-expiration"] = str(int(left[1]))
        image = fitted.image
        apns = messaging.APNSConfig(
            headers=headers,
            payload=messaging.APNSPayload(
                aps=messaging.Aps(
                    thread_id=event.type or None,
                    mutable_content=True if image else None,
                    category=ACKNOWLEDGE_CATEGORY if acknowledge else None,
                )
            ),
            fcm_options=messaging.APNSFCMOptions(image=image) if image else None,
        )
    else:
        headers = {"Topic": _web_topic(notification_id)}
        if urgency:
            headers["Urgency"] = urgency
        if left:
            headers["TTL"] = str(left[0])
        webpush = messaging.WebpushConfig(
            headers=headers,
            notification=messaging.WebpushNotification(tag=collapse),
            fcm_options=messaging.WebpushFCMOptions(link=url) if url else None,
        )
    message = messaging.Message(
        notification=messaging.Notification(
            title=fitted.title, body=fitted.body, image=fitted.image
        ),
        data=data,
        android=android,
        apns=apns,
        webpush=webpush,
    )
    # `Message(token=...)` warns (DeprecationWarning) in firebase-admin 7 in favour of `fid=`,
    # but `fid` addresses a Firebase installation ID, not the registration token apps register;
    # FCM's API takes `token`, and setting the attribute sends it without the warning.
    message.token = "x"
    return message


def build_message(
    event: Notice,
    notification_id: str,
    version: int,
    platform: str,
    *,
    limit: int = 4096,
    now: float | None = None,
) -> messaging.Message:
    """The message for one platform, shrunk to `limit` bytes (token aside); the caller sets
    `token`. Raises ValueError for content the SDK (and so FCM) would refuse."""
    when = time.time() if now is None else now

    def assemble(fitted: Fitted) -> tuple[messaging.Message, int]:
        message = _assemble(fitted, event, notification_id, version, platform, when)
        return message, _encoded_size(message)

    return fit_push(event, limit, assemble, reserved=_reserved, name="message")


def _badged(template: messaging.Message, unread: int | None) -> messaging.Message:
    """A device's message: the shared content, with the person's unread count as the badge
    where the platform shows one (Android's notification count, the APNs badge) and in the
    data for the app (`herald.unread`)."""
    if unread is None:
        return messaging.Message(
            data=template.data,
            notification=template.notification,
            android=template.android,
            apns=template.apns,
            webpush=template.webpush,
        )
    android, apns = template.android, template.apns
    if android is not None and android.notification is not None:
        note = android.notification
        android = messaging.AndroidConfig(
            collapse_key=android.collapse_key,
            priority=android.priority,
            ttl=android.ttl,
            notification=messaging.AndroidNotification(
                tag=note.tag, priority=note.priority, notification_count=unread
            ),
        )
    if apns is not None and apns.payload is not None:
        aps = apns.payload.aps
        apns = messaging.APNSConfig(
            headers=apns.headers,
            payload=messaging.APNSPayload(
                aps=messaging.Aps(
                    thread_id=aps.thread_id,
                    mutable_content=aps.mutable_content,
                    category=aps.category,
                    badge=unread,
                )
            ),
            fcm_options=apns.fcm_options,
        )
    return messaging.Message(
        data={**(template.data or {}), "herald.unread": str(unread)},
        notification=template.notification,
        android=android,
        apns=apns,
        webpush=template.webpush,
    )


class FcmRefused(Exception):
    """An error answer of FCM's `messages:send` (HTTP v1), read from its documented body:
    `code` is the FCM `errorCode` when FCM gave one Herald acts on, else the google.rpc status
    (`INVALID_ARGUMENT`, `UNAVAILABLE`, ...); `retry_after` is FCM's Retry-After in seconds."""

    def __init__(
        self, code: str, message: str, *, status: int = 0, retry_after: float | None = None
    ) -> None:
        super().__init__(message)
        self.code = code
        self.status = status
        self.retry_after = retry_after


_FCM_ERROR_TYPE: Final = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
_FCM_ERROR_CODES: Final = frozenset(
    {
        "UNREGISTERED",
        "SENDER_ID_MISMATCH",
        "QUOTA_EXCEEDED",
        "THIRD_PARTY_AUTH_ERROR",
        "APNS_AUTH_ERROR",
    }
)
"""FCM's `errorCode`s that say more than the google.rpc status beside them (FCM's reference,
"ErrorCode"); the others (UNSPECIFIED_ERROR, INVALID_ARGUMENT, UNAVAILABLE, INTERNAL) are
read as their status."""
_STATUS_CODES: Final = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "CONFLICT",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def fcm_refusal(status: int, headers: Mapping[str, str], body: bytes) -> FcmRefused:
    """What a non-2xx answer of FCM says, whatever its body (a proxy's HTML page included)."""
    message = f"FCM answered HTTP {status}"
    code = _STATUS_CODES.get(status, "UNKNOWN" if status < 500 else "INTERNAL")
    try:
        document = json.loads(body)
    except ValueError:
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        if isinstance(error.get("message"), str) and error["message"]:
            message = error["message"]
        if isinstance(error.get("status"), str) and error["status"]:
            code = error["status"]
        for detail in error.get("details") or ():
            if (
                isinstance(detail, dict)
                and detail.get("@type") == _FCM_ERROR_TYPE
                and detail.get("errorCode") in _FCM_ERROR_CODES
            ):
                code = str(detail["errorCode"])
    after = retry_after_seconds(headers.get("retry-after"))
    return FcmRefused(code, message, status=status, retry_after=after)


def _retry_after(exc: BaseException) -> float | None:
    """Retry-After from FCM's answer carried by firebase-admin's exception."""
    response = getattr(exc, "http_response", None)
    value = response.headers.get("Retry-After") if response is not None else None
    return retry_after_seconds(str(value)) if value else None


def _fcm_code(exc: BaseException) -> str:
    code = getattr(exc, "code", None)
    return str(code).upper().replace("-", "_") if code else type(exc).__name__


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


def _map_refusal(exc: FcmRefused) -> DeliveryError:
    code, after = exc.code, exc.retry_after
    if code in ("UNREGISTERED", "SENDER_ID_MISMATCH"):
        return TargetGone(code)
    if code in ("INVALID_ARGUMENT", "THIRD_PARTY_AUTH_ERROR", "APNS_AUTH_ERROR"):
        # A refused message, or Firebase could not authenticate to APNs / the web push
        # service (a project setting): trying again changes nothing.
        return DeliveryFailed(_short(f"{code}: {exc}"))
    # QUOTA_EXCEEDED, UNAVAILABLE, INTERNAL, UNAUTHENTICATED (a revoked access token) and
    # anything unknown: worth another try, after FCM's Retry-After when it gave one.
    return RetryLater(code, after)


def map_fcm_error(exc: BaseException) -> DeliveryError:
    """What an FCM failure (an error answer, a transport error, an OAuth token that could not
    be had, a message the SDK's encoder refused) means for the delivery: the one place where
    FCM's error codes are read. firebase-admin's public exception types (as its own senders
    raise them) are read the same way."""
    if isinstance(exc, FcmRefused):
        return _map_refusal(exc)
    if isinstance(exc, messaging.UnregisteredError):
        return TargetGone("UNREGISTERED")
    if isinstance(exc, messaging.SenderIdMismatchError):
        return TargetGone("SENDER_ID_MISMATCH")
    if isinstance(exc, messaging.QuotaExceededError):
        return RetryLater("QUOTA_EXCEEDED", _retry_after(exc))
    if isinstance(exc, exceptions.InvalidArgumentError):
        return DeliveryFailed(_short(f"INVALID_ARGUMENT: {exc}"))
    if isinstance(exc, messaging.ThirdPartyAuthError):
        return DeliveryFailed(_short(f"THIRD_PARTY_AUTH_ERROR: {exc}"))
    if isinstance(exc, exceptions.UnavailableError):
        return RetryLater("UNAVAILABLE", _retry_after(exc))
    if isinstance(exc, exceptions.InternalError):
        return RetryLater("INTERNAL", _retry_after(exc))
    if isinstance(exc, exceptions.FirebaseError):
        # Timeouts, refused credentials, unknown answers: worth another try later.
        return RetryLater(_fcm_code(exc), _retry_after(exc))
    if isinstance(exc, google.auth.exceptions.GoogleAuthError):
        return RetryLater(_short(f"oauth-token: {exc}"))
    if isinstance(exc, TransportError):
        if not exc.retryable:
            return DeliveryFailed(_short(f"invalid-request: {exc.reason}"))
        # Refused, reset, closed or garbled mid-answer: FCM's own words for them.
        return RetryLater("DEADLINE_EXCEEDED" if isinstance(exc, TimedOut) else "UNAVAILABLE")
    if isinstance(exc, ValueError):
        return DeliveryFailed(_short(f"invalid-message: {exc}"))
    return RetryLater(type(exc).__name__)


def _as_result(error: DeliveryError) -> DeliveryResult:
    if isinstance(error, TargetGone):
        return DeliveryResult.dead(error.reason)
    if isinstance(error, RetryLater):
        return DeliveryResult.retry(error.reason, error.after)
    return DeliveryResult.failed(error.reason)


class _AccessToken:
    """OAuth 2.0 access tokens for FCM from the service account, via google-auth's documented
    flow (`service_account.Credentials`: a JWT signed with the account's key, posted to its
    `token_uri`)."""

    def __init__(self, credential: service_account.Credentials) -> None:
        self._credential = credential
        self._session = requests.Session()
        self._request = google.auth.transport.requests.Request(self._session)
        self._lock = asyncio.Lock()
        self._stale = False
        self.header = ""

    async def ensure(self) -> None:
        """Refresh unless the token is good for a few more minutes (google-auth's margin)."""
        if self._stale or not self._credential.valid:
            async with self._lock:
                if self._stale or not self._credential.valid:
                    # google-auth's stable service-account refresh is synchronous (requests);
                    # its async variant is private and experimental. About once an hour, so
                    # it runs in a thread rather than blocking the event loop.
                    await asyncio.to_thread(self._credential.refresh, self._request)
                    self._stale = False
        self.header = f"Bearer {self._credential.token}"

    def invalidate(self) -> None:
        """FCM refused the token (401): fetch a new one before the next batch."""
        self._stale = True

    def close(self) -> None:
        self._session.close()  # closes idle pooled sockets only: nothing to wait for


@dataclass(slots=True)
class FcmStats:
    """How the channel batched its sends (for tests, benchmarks and operators)."""

    batches: int = 0
    messages: int = 0
    largest_batch: int = 0


_Pending = tuple[bytes, "asyncio.Future[DeliveryResult]"]
"""One send waiting for its batch: the request body (`{"message": ...}`) and its caller."""


class FcmChannel(Channel[MaybeBadged[DeviceRecord]]):
    """Channel `mobile`: FCM pushes to each active installation with an FCM token."""

    name = MOBILE
    max_payload_bytes: Final = 4096
    """FCM's limit for a message's payload; Herald counts the whole message but the token."""

    def __init__(
        self,
        devices: DeviceStore,
        credentials_path: Path,
        endpoint: str = "https://fcm.googleapis.com",
        *,
        batch_window: float = 0.002,
        connections: int = 128,
        timeout_seconds: float = 30.0,
        template_cache_size: int = 64,
        clock: Callable[[], float] = time.time,
        unread_counts: UnreadCounts | None = None,
    ) -> None:
        self._unread_counts = unread_counts
        try:
            # Reads and checks the service-account file now: a bad file stops start-up.
            credential = service_account.Credentials.from_service_account_file(
                str(credentials_path), scopes=FCM_SCOPES
            )
        except (OSError, ValueError) as exc:
            raise SettingsError(f"FIREBASE_CREDENTIALS: {exc}") from None
        if not credential.project_id:
            raise SettingsError("FIREBASE_CREDENTIALS: the service account names no project_id")
        if not endpoint.startswith(("https://", "http://")):
            raise SettingsError(f"FCM_ENDPOINT must be an http(s) URL, not {endpoint!r}")
        self._devices = devices
        self._endpoint = endpoint.rstrip("/")
        self._window = batch_window
        self._timeout = timeout_seconds
        self._clock = clock
        self._project_id = str(credential.project_id)
        self._url = URL(self._endpoint + FCM_SEND_PATH.format(self._project_id))
        self._http = LeanHttpClient(max_connections_per_origin=connections, user_agent="Herald")
        self._token = _AccessToken(credential)
        self._closed = False
        self._templates: OrderedDict[tuple[str, int, str], messaging.Message | str] = OrderedDict()
        self._template_cache_size = template_cache_size
        self._contents: OrderedDict[tuple[str, int, str, int | None], tuple[bytes, bytes]] = (
            OrderedDict()
        )
        self._queue: list[_Pending] = []
        self._timer: asyncio.TimerHandle | None = None
        self._batches: set[asyncio.Task[None]] = set()
        self._dead = DeadTokens("FCM", devices.remove_fcm_token)
        self.stats = FcmStats()

    @property
    def project_id(self) -> str:
        return self._project_id

    # ------------------------------------------------------------------ Channel

    async def targets(self, user_ids: Sequence[str]) -> dict[str, list[Target]]:
        found = await self._devices.targets_for(user_ids)
        return {user: [Target(key) for key in keys] for user, keys in found.items()}

    def pace(self, target: MaybeBadged[DeviceRecord]) -> Pace | None:
        return None  # FCM's quota answers 429 + Retry-After, which is retried

    async def load(self, jobs: Sequence[DeliveryJob]) -> dict[int, MaybeBadged[DeviceRecord]]:
        found = await self._devices.get_many([(job.user_id, job.target) for job in jobs])
        targets: dict[int, DeviceRecord] = {}
        for job in jobs:
            device = found.get((job.user_id, job.target))
            if device is not None and device.active:
                targets[job.id] = device
        return await with_badges(targets, jobs, self._unread_counts)

    async def send(
        self, job: DeliveryJob, target: MaybeBadged[DeviceRecord], notification: NotificationRecord
    ) -> DeliveryResult:
        device, unread = unwrap(target)
        token = device.fcm_token
        if token is None:
            return DeliveryResult.skipped(APNS_NOT_CONFIGURED)
        if not token:
            return DeliveryResult.failed("invalid-message: the FCM token is empty")
        template = self._template(notification, device.platform)
        if isinstance(template, str):
            return DeliveryResult.failed(template)
        key = (notification.id, notification.version, device.platform, unread)
        try:
            before, after = self._content(key, template, unread)
        except ValueError as exc:  # the badge made it invalid (never seen; the SDK decides)
            return _as_result(map_fcm_error(exc))
        # The device's token goes into the shared content: one JSON string per device.
        result = await self._submit(before + json.dumps(token).encode() + after)
        return self._dead.note(job, token, result)

    async def retire(self, job: DeliveryJob, reason: str) -> None:
        await self._dead.retire(job, reason)

    async def aclose(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._queue = self._queue, []
        for _, future in pending:
            if not future.done():
                future.set_result(DeliveryResult.retry("shutting down"))
        if self._batches:
            await asyncio.wait(self._batches, timeout=self._timeout)
        self._closed = True
        await self._http.aclose()
        self._token.close()

    # ---------------------------------------------------------------- internals

    def _template(self, notification: NotificationRecord, platform: str) -> messaging.Message | str:
        """The message content for one notification version and platform (without a token),
        or why it cannot be sent to anyone (then nothing is tried)."""
        key = (notification.id, notification.version, platform)
        template = self._templates.get(key)
        if template is None:
            try:
                template = build_message(
                    notification.event,
                    notification.id,
                    notification.version,
                    platform,
                    limit=self.max_payload_bytes - _BADGE_ROOM,
                    now=self._clock(),
                )
            except ValueError as exc:
                log.warning("notification %s cannot be sent through FCM: %s", notification.id, exc)
                template = _as_result(map_fcm_error(exc)).reason or "invalid-message"
            self._templates[key] = template
            if len(self._templates) > self._template_cache_size:
                self._templates.popitem(last=False)
        return template

    def _content(
        self,
        key: tuple[str, int, str, int | None],
        template: messaging.Message,
        unread: int | None,
    ) -> tuple[bytes, bytes]:
        """The request body (`{"message": ...}`, as FCM v1 takes it) around the token's JSON
        string, encoded once per notification version, platform and unread count."""
        content = self._contents.get(key)
        if content is None:
            # str() is the SDK's public encoder (the message's JSON, null fields left out); it
            # validates too. It costs ~150 µs a message; splicing a token in costs ~1 µs. The
            # placeholder token is random, so no content can contain it.
            message = _badged(template, unread)
            placeholder = f"herald-{secrets.token_hex(16)}"
            message.token = placeholder  # see _assemble: `token=` would warn
            before, after = str(message).split(json.dumps(placeholder))
            content = (f'{{"message":{before}'.encode(), f"{after}}}".encode())
            self._contents[key] = content
            if len(self._contents) > 8 * self._template_cache_size:
                self._contents.popitem(last=False)
        return content

    def _submit(self, body: bytes) -> asyncio.Future[DeliveryResult]:
        future: asyncio.Future[DeliveryResult] = asyncio.get_running_loop().create_future()
        self._queue.append((body, future))
        if len(self._queue) >= MAX_BATCH:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self._window, self._flush)
        return future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        while self._queue:
            batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            task = asyncio.create_task(self._send_batch(batch), name="herald-fcm-batch")
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)

    async def _send_batch(self, batch: list[_Pending]) -> None:
        stats = self.stats
        stats.batches += 1
        stats.messages += len(batch)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        try:
            if self._closed:
                raise RuntimeError("the FCM channel is closed")
            await self._token.ensure()
            # FCM v1 takes one message per request; the batch's requests go out together, over
            # as many pooled keep-alive connections as the client allows.
            await asyncio.gather(*(self._send_one(m, f) for m, f in batch))
        except asyncio.CancelledError:
            _resolve_all(batch, DeliveryResult.retry("cancelled"))
            raise
        except Exception as exc:
            if not isinstance(exc, google.auth.exceptions.GoogleAuthError):
                log.warning("an FCM batch of %d failed as a whole: %s", len(batch), exc)
            else:
                log.warning("no OAuth token for FCM: %s", exc)
            _resolve_all(batch, _as_result(map_fcm_error(exc)))

    async def _send_one(self, body: bytes, future: asyncio.Future[DeliveryResult]) -> None:
        """POST one message to FCM's `messages:send` and settle its caller's future."""
        try:
            headers = {
                "Authorization": self._token.header,
                "Content-Type": "application/json; charset=UTF-8",
            }
            answer = await self._http.request(
                "POST", self._url, headers, body, timeout=self._timeout
            )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            result = _as_result(map_fcm_error(exc))
        else:
            if 200 <= answer.status < 300:
                result = DeliveryResult.delivered(_message_name(answer.body))
            else:
                refusal = fcm_refusal(answer.status, answer.headers, answer.body)
                if refusal.code == "UNAUTHENTICATED":
                    self._token.invalidate()
                result = _as_result(map_fcm_error(refusal))
        if not future.done():
            future.set_result(result)


def _message_name(body: bytes) -> str | None:
    """The message's id from FCM's answer (`projects/{project}/messages/{id}`)."""
    try:
        name = json.loads(body).get("name")
    except (ValueError, AttributeError):
        return None
    return name if isinstance(name, str) else None


def _resolve_all(batch: list[_Pending], result: DeliveryResult) -> None:
    for _, future in batch:
        if not future.done():
            future.set_result(result)
