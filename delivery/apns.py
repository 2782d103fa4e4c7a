"""The APNs channel: native pushes to iOS devices straight to Apple, by device token.

iOS apps built like the Dynamics device-registration plugin register an `apnsToken` only;
this channel reaches them without FCM. It authenticates with a provider token (token-based
authentication: an ES256 JWT signed with the team's `.p8` key, `kid` = key id, `iss` = team id)
and sends `POST /3/device/{token}` over HTTP/2 (delivery/http2.py says why not a general
client), to the production host, or to the development (sandbox) host for a device whose
registration says `distribution: debug` (or `development`): a debug build's token is valid
there only. Both hosts are settings (APNS_ENDPOINT, APNS_SANDBOX_ENDPOINT), so tests point them
at a stand-in on loopback; APNS_CA_FILE names the only CAs trusted for them.

The provider token is made once and shared by every connection and both hosts; it is reused
for 50 minutes (APNs refuses one older than an hour) and never replaced sooner than 20 minutes
after the last one (more often is `429 TooManyProviderTokenUpdates`). When APNs answers
`ExpiredProviderToken` (a clock that jumped), a new one is made once, if 20 minutes have passed,
and the push is sent again with it; the other pushes refused with the old token use the new one.

What goes to a device (one payload per notification version and badge, cached):

- `aps.alert` title and body (the event's text); `aps.thread-id` and the `apns-collapse-id`
  header from the notification id, so an update replaces the notification on screen;
- `apns-push-type: alert`; `apns-priority` from `urgency` (10 for high and normal, 5 for low,
  1 for very-low: Apple's "prioritise power"); `aps.interruption-level` likewise
  (`time-sensitive`, `active`, `passive`); `apns-expiration` from `expiresAt`;
- `aps.badge`: the person's unread count in Herald's history (read per leased batch, one query);
- `aps.mutable-content: 1` and `herald.image` when the event has an icon, for the app's
  notification service extension to attach it;
- custom keys, as FCM puts data keys into an iOS payload (so one app handles both paths):
  `herald.id`, `herald.version`, `herald.type`, `herald.severity`, `herald.url` (the link) and
  the event's `data` (strings; other values as JSON).

The payload is kept within APNs' 4,096 bytes (by the builder shared with FCM,
delivery/mobile_payload.py): the text is cut first (keeping a readable start), then the event's
data and the image go, then the rest of the text, the link, and the title last; a push is never
refused for its size.

Answers: `BadDeviceToken`, `Unregistered`/`ExpiredToken` (410) and `DeviceTokenNotForTopic` →
the APNs token is removed from the installation (`deadTargets`); `TooManyRequests`, 5xx,
`TooManyProviderTokenUpdates`, timeouts and lost connections → retried with the worker's backoff
(a request the server says it never processed, e.g. under a GOAWAY, is sent again at once on
another connection); credentials APNs refuses (`InvalidProviderToken`, ...) and other 4xx →
`failed` with APNs' reason.
"""

from __future__ import annotations

import json
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from delivery.channel import Channel, DeliveryResult, Pace, Target
from delivery.dead_tokens import DeadTokens
from delivery.http2 import ConnectionLost, Http2Origin, NotProcessed
from delivery.mobile import MOBILE
from delivery.mobile_payload import ACKNOWLEDGE_CATEGORY, Fitted, custom_keys, fit_push
from delivery.outbox import DeliveryJob
from delivery.payload import collapse_id, encode_json
from errors import SettingsError
from notifications.event import Notice
from storage.devices import DeviceRecord, DeviceStore
from storage.protocols import InboxStore
from storage.records import NotificationRecord

__all__ = [
    "DEAD_REASONS",
    "MAX_PAYLOAD",
    "ApnsChannel",
    "ApnsConfig",
    "ApnsStats",
    "ApnsTarget",
    "ProviderToken",
    "build_payload",
    "uses_sandbox",
]

log = logging.getLogger(__name__)

MAX_PAYLOAD: Final = 4096
"""APNs' limit for a (non-VoIP) notification's payload, in bytes."""
TOKEN_REUSE_SECONDS: Final = 50 * 60
"""A provider token is used this long (APNs refuses one whose iat is over an hour old)."""
TOKEN_MIN_REFRESH_SECONDS: Final = 20 * 60
"""... and never replaced sooner than this after the last one (TooManyProviderTokenUpdates)."""
SANDBOX_DISTRIBUTIONS: Final = frozenset({"debug", "development"})
"""Registrations with these `distribution` values get their pushes from the sandbox host."""

DEAD_REASONS: Final = frozenset(
    {"BadDeviceToken", "Unregistered", "ExpiredToken", "DeviceTokenNotForTopic"}
)
"""The token is no good for this app and environment: it is removed from the installation."""
_RETRY_REASONS: Final = frozenset(
    {
        "TooManyRequests",
        "TooManyProviderTokenUpdates",
        "InternalServerError",
        "ServiceUnavailable",
        "Shutdown",
        "IdleTimeout",
    }
)
_CREDENTIAL_REASONS: Final = frozenset(
    {
        "InvalidProviderToken",
        "MissingProviderToken",
        "UnrelatedKeyIdInToken",
        "BadEnvironmentKeyInToken",
        "BadCertificate",
        "BadCertificateEnvironment",
        "Forbidden",
        "TopicDisallowed",
        "BadTopic",
    }
)
_PRIORITY: Final = {"high": "10", "normal": "10", "low": "5", "very-low": "1"}
_INTERRUPTION: Final = {
    "high": "time-sensitive",
    "normal": "active",
    "low": "passive",
    "very-low": "passive",
}
_MAX_REASON: Final = 200


def uses_sandbox(device: DeviceRecord) -> bool:
    """Whether the device's token belongs to APNs' development environment."""
    return device.metadata.get("distribution", "").strip().lower() in SANDBOX_DISTRIBUTIONS


@dataclass(frozen=True, slots=True)
class ApnsConfig:
    """What the channel needs to talk to APNs, from the settings."""

    key_file: Path
    key_id: str
    team_id: str
    bundle_id: str
    endpoint: str = "https://api.push.apple.com"
    sandbox_endpoint: str = "https://api.sandbox.push.apple.com"
    ca_file: Path | None = None

    @classmethod
    def from_settings(cls, settings: Any) -> ApnsConfig | None:
        """None unless APNs is configured (config.py checks the settings come together)."""
        if not settings.apns_configured:
            return None
        return cls(
            key_file=settings.apns_key_file,
            key_id=settings.apns_key_id,
            team_id=settings.apns_team_id,
            bundle_id=settings.apns_bundle_id,
            endpoint=settings.apns_endpoint,
            sandbox_endpoint=settings.apns_sandbox_endpoint,
            ca_file=settings.apns_ca_file,
        )


class ProviderToken:
    """The ES256 JWT APNs authenticates the provider by, shared by all connections."""

    def __init__(
        self, key: ec.EllipticCurvePrivateKey, key_id: str, team_id: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._key = key
        self._key_id = key_id
        self._team_id = team_id
        self._clock = clock
        self._token: str | None = None
        self._iat = 0
        self.minted = 0
        """Tokens made so far (tests, benchmarks)."""

    def current(self) -> str:
        """The token to send now: the one in use, or a new one when it is 50 minutes old."""
        now = self._clock()
        if self._token is None or now - self._iat >= TOKEN_REUSE_SECONDS:
            self._mint(now)
        assert self._token is not None
        return self._token

    def expired(self, token: str) -> float | None:
        """APNs refused `token` as expired. None if a new token is in place now (made here,
        or already by another push refused with the same one); else the seconds until one
        may be made (APNs allows a new token 20 minutes after the last)."""
        if token != self._token:
            return None
        now = self._clock()
        wait = self._iat + TOKEN_MIN_REFRESH_SECONDS - now
        if wait > 0:
            return wait
        self._mint(now)
        return None

    def _mint(self, now: float) -> None:
        # Strictly after the last one: a token made again in the same second would be the
        # same claims, and APNs told us those are expired.
        self._iat = max(int(now), self._iat + 1)
        self._token = jwt.encode(
            {"iss": self._team_id, "iat": self._iat},
            self._key,
            algorithm="ES256",
            headers={"kid": self._key_id},
        )
        self.minted += 1


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The `.p8` key (PKCS#8 PEM, P-256) Apple hands out; SettingsError if it is not one."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError, TypeError) as exc:
        raise SettingsError(f"APNS_KEY_FILE: cannot read an APNs key from {path}: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise SettingsError(f"APNS_KEY_FILE: {path} is not a P-256 (ES256) key")
    return key


def _origin(url: str, name: str, context: ssl.SSLContext, connections: int) -> Http2Origin:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise SettingsError(f"{name} must be an https URL without a path, not {url!r}")
    return Http2Origin(
        parts.hostname, parts.port or 443, context, connections=connections,
        name=parts.netloc,
    )


def _reserved(key: str) -> bool:
    """APNs keeps `aps` for itself; every other custom key reaches the app."""
    return key == "aps"


def _expires_at(event: Notice) -> int | None:
    return None if event.expires_at is None else int(event.expires_at.timestamp())


def _assemble(
    fitted: Fitted,
    event: Notice,
    notification_id: str,
    version: int,
    badge: int | None,
) -> bytes:
    alert: dict[str, str] = {}
    if fitted.title:
        alert["title"] = fitted.title
    if fitted.body:
        alert["body"] = fitted.body
    aps: dict[str, Any] = {
        "alert": alert,
        "thread-id": collapse_id(notification_id),
        "interruption-level": _INTERRUPTION.get(event.urgency or "normal", "active"),
    }
    if badge is not None:
        aps["badge"] = badge
    if fitted.image:
        aps["mutable-content"] = 1
    if event.acknowledge is not None and event.acknowledge.text:
        # The app registers an action for this category; it reports the acknowledgement to
        # POST /api/notifications/{id}/acknowledge with its link token (as with FCM).
        aps["category"] = ACKNOWLEDGE_CATEGORY
    document: dict[str, Any] = {"aps": aps}
    # As FCM puts data keys into an iOS payload, so one app handles both paths.
    document.update(custom_keys(fitted, event, notification_id, version, image=True))
    return encode_json(document)


def build_payload(
    event: Notice,
    notification_id: str,
    version: int,
    *,
    badge: int | None = None,
    limit: int = MAX_PAYLOAD,
) -> bytes:
    """The notification's APNs payload (compact UTF-8 JSON), shrunk to `limit` bytes."""

    def assemble(fitted: Fitted) -> tuple[bytes, int]:
        encoded = _assemble(fitted, event, notification_id, version, badge)
        return encoded, len(encoded)

    return fit_push(event, limit, assemble, reserved=_reserved, name="payload")


@dataclass(frozen=True, slots=True)
class ApnsTarget:
    """A device the APNs channel sends to, with the badge its person's inbox gives."""

    device: DeviceRecord
    badge: int | None


@dataclass(slots=True)
class ApnsStats:
    """What the channel did (tests, benchmarks, operators)."""

    sent: int = 0
    resent: int = 0
    """Requests sent again at once because the server said it never processed them."""
    token_refusals: int = 0


def _short(text: str) -> str:
    return text if len(text) <= _MAX_REASON else text[: _MAX_REASON - 1] + "…"


class ApnsChannel(Channel[ApnsTarget]):
    """Channel `mobile` for APNs: pushes to each active installation with an APNs token.

    Alone (FCM off) it is registered as `mobile`; with FCM on, delivery/mobile.py's
    `MobilePush` gives each device to one of the two.
    """

    name = MOBILE

    def __init__(
        self,
        devices: DeviceStore,
        inbox: InboxStore,
        config: ApnsConfig,
        *,
        connections: int = 8,
        timeout_seconds: float = 30.0,
        payload_cache_size: int = 256,
        clock: Callable[[], float] = time.time,
    ) -> None:
        key = _load_key(config.key_file)  # a bad key stops start-up here
        if not config.key_id or not config.team_id or not config.bundle_id:
            raise SettingsError("APNs needs APNS_KEY_ID, APNS_TEAM_ID and APNS_BUNDLE_ID")
        context = ssl.create_default_context(
            cafile=str(config.ca_file) if config.ca_file is not None else None
        )
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        self._production = _origin(config.endpoint, "APNS_ENDPOINT", context, connections)
        self._sandbox = _origin(
            config.sandbox_endpoint, "APNS_SANDBOX_ENDPOINT", context, connections
        )
        self._devices = devices
        self._inbox = inbox
        self._topic = config.bundle_id
        self._timeout = timeout_seconds
        self._clock = clock
        self.token = ProviderToken(key, config.key_id, config.team_id, clock)
        self._payloads: OrderedDict[tuple[str, int, int | None], bytes | str] = OrderedDict()
        self._payload_cache_size = payload_cache_size
        self._dead = DeadTokens("APNs", devices.remove_apns_token)
        self.stats = ApnsStats()

    @property
    def origins(self) -> tuple[Http2Origin, Http2Origin]:
        """The production and the sandbox host (tests look at their connections)."""
        return self._production, self._sandbox

    # ------------------------------------------------------------------ Channel

    async def targets(self, user_ids: Sequence[str]) -> dict[str, list[Target]]:
        found = await self._devices.apns_targets_for(user_ids)
        return {user: [Target(key) for key in keys] for user, keys in found.items()}

    def pace(self, target: ApnsTarget) -> Pace | None:
        return None  # APNs has no per-tenant budget; TooManyRequests is per device, retried

    async def load(self, jobs: Sequence[DeliveryJob]) -> dict[int, ApnsTarget]:
        found = await self._devices.get_many([(job.user_id, job.target) for job in jobs])
        pairs = [(job, found.get((job.user_id, job.target))) for job in jobs]
        return await self.targets_of(
            [(job, device) for job, device in pairs if device is not None and device.active]
        )

    async def targets_of(
        self, pairs: Sequence[tuple[DeliveryJob, DeviceRecord]]
    ) -> dict[int, ApnsTarget]:
        """The loaded targets of a leased batch's APNs deliveries, with their badges (one
        unread count for the whole batch)."""
        sendable = [(job, device) for job, device in pairs if device.apns_token]
        if not sendable:
            return {}
        try:
            counts = await self._inbox.unread_counts([job.user_id for job, _ in sendable])
        except Exception:  # no badge is better than no push
            log.warning("could not count unread entries for APNs badges", exc_info=True)
            return {job.id: ApnsTarget(device, None) for job, device in sendable}
        return {job.id: ApnsTarget(device, counts.get(job.user_id, 0)) for job, device in sendable}

    async def send(
        self, job: DeliveryJob, target: ApnsTarget, notification: NotificationRecord
    ) -> DeliveryResult:
        device = target.device
        token = device.apns_token
        if token is None:
            return DeliveryResult.dead("no-apns-token")
        payload = self._payload(notification, target.badge)
        if isinstance(payload, str):
            return DeliveryResult.failed(payload)
        event = notification.event
        urgency = event.urgency or "normal"
        headers = [
            ("apns-topic", self._topic),
            ("apns-push-type", "alert"),
            ("apns-priority", _PRIORITY.get(urgency, "10")),
            ("apns-collapse-id", collapse_id(notification.id)),
        ]
        expires = _expires_at(event)
        if expires is not None:
            headers.append(("apns-expiration", str(max(expires, 0))))
        origin = self._sandbox if uses_sandbox(device) else self._production
        return self._dead.note(job, token, await self._post(origin, token, headers, payload))

    async def retire(self, job: DeliveryJob, reason: str) -> None:
        await self._dead.retire(job, reason)

    async def aclose(self) -> None:
        await self._production.aclose()
        await self._sandbox.aclose()

    # ---------------------------------------------------------------- internals

    def _payload(self, notification: NotificationRecord, badge: int | None) -> bytes | str:
        """The payload for one notification version and badge, or why it cannot be sent."""
        key = (notification.id, notification.version, badge)
        payload = self._payloads.get(key)
        if payload is None:
            try:
                payload = build_payload(
                    notification.event, notification.id, notification.version, badge=badge
                )
            except ValueError as exc:
                log.warning("notification %s cannot be sent to APNs: %s", notification.id, exc)
                payload = _short(f"invalid-payload: {exc}")
            self._payloads[key] = payload
            if len(self._payloads) > self._payload_cache_size:
                self._payloads.popitem(last=False)
        return payload

    async def _post(
        self,
        origin: Http2Origin,
        device_token: str,
        headers: list[tuple[str, str]],
        payload: bytes,
    ) -> DeliveryResult:
        path = f"/3/device/{device_token}"
        refreshed = resent = False
        while True:
            provider_token = self.token.current()
            try:
                answer = await origin.request(
                    "POST",
                    path,
                    [*headers, ("authorization", f"bearer {provider_token}")],
                    payload,
                    timeout=self._timeout,
                )
            except NotProcessed as exc:
                if resent:
                    return DeliveryResult.retry(_short(f"connection: {exc}"))
                resent = True  # never processed: sending it again cannot duplicate it
                self.stats.resent += 1
                continue
            except TimeoutError:
                return DeliveryResult.retry("timeout")
            except ssl.SSLError as exc:
                log.warning("TLS with %s failed: %s", origin.name, exc)
                return DeliveryResult.retry(_short(f"tls: {exc}"))
            except (ConnectionLost, OSError) as exc:
                return DeliveryResult.retry(_short(f"connection: {exc}"))
            self.stats.sent += 1
            if answer.status == 200:
                return DeliveryResult.delivered(
                    answer.headers.get("apns-unique-id") or answer.headers.get("apns-id")
                )
            reason = _reason(answer.status, answer.body)
            if reason == "ExpiredProviderToken":
                self.stats.token_refusals += 1
                wait = self.token.expired(provider_token)
                if wait is None and not refreshed:
                    refreshed = True
                    continue
                return DeliveryResult.retry(reason, wait)
            return _result(answer.status, reason)


def _reason(status: int, body: bytes) -> str:
    try:
        document = json.loads(body) if body else {}
    except ValueError:
        document = {}
    reason = document.get("reason") if isinstance(document, dict) else None
    return str(reason) if reason else f"HTTP {status}"


def _result(status: int, reason: str) -> DeliveryResult:
    """What an APNs error answer means for the delivery."""
    if reason in DEAD_REASONS or status == 410:
        return DeliveryResult.dead(reason)
    if reason in _RETRY_REASONS or status == 429 or status >= 500:
        return DeliveryResult.retry(reason)
    if reason in _CREDENTIAL_REASONS:
        log.warning("APNs refused Herald's credentials or topic: %s (see APNS_*)", reason)
    return DeliveryResult.failed(_short(reason))
