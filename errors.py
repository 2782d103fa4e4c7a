"""Herald's exception tree, translated from library exceptions where they enter our code.

    HeraldError
    ├── SettingsError                 bad or missing configuration, raised at start-up
    ├── AuthError                     a caller's credentials could not be accepted
    │   ├── TokenRejected(status)     an Entra ID token that is not valid here: 401 (signature,
    │   │                             expiry, issuer, audience) or 403 (valid, but without the role)
    │   └── IdentityProviderUnavailable  the tenant's signing keys could not be fetched: 503
    ├── StoreError                    a store could not do what was asked
    │   ├── ConcurrencyConflict       an etag (If-Match) no longer matches: someone else wrote first
    │   ├── NotFound                  the record does not exist
    │   ├── NotOwner(field)           the record belongs to another user, and only its owner (or a
    │   │                             backend) may change it: nothing was written
    │   └── StoreUnavailable          the database (or queue) cannot be reached now: 503
    ├── SourceError                   an event source's service (Microsoft Graph, its token
    │   │                             endpoint) refused or failed a call: `status`, `code`
    │   ├── SourceNotFound            the resource, subscription or sync state is gone
    │   └── SourceUnavailable(after)  throttled or down even after retries: try again later
    ├── AudienceError                 one part of an audience (a group, a team, a channel) could
    │   │                             not be listed
    │   ├── AudiencePartFailed(reason)  never will be (gone, forbidden): counted, not retried
    │   └── AudienceUnavailable(after)  not now (throttled, down): the expansion waits
    ├── TransportError                an outbound HTTP exchange produced no answer to read
    │   │                             (outbound/errors.py maps every HTTP library's exceptions to
    │   │                             these); `retryable` is False for InvalidRequest only
    │   ├── ConnectFailed             no connection (DNS, refused, unreachable, proxy): nothing sent
    │   │   └── TlsFailed             the TLS handshake or the peer's certificate failed
    │   ├── TimedOut                  the connect or answer deadline passed
    │   ├── ConnectionLost            the connection broke mid-exchange (the peer may have acted)
    │   ├── BadAnswer                 not HTTP, garbled, or over the size limit
    │   └── InvalidRequest            cannot be sent as given (also a ValueError): never retried
    └── DeliveryError                 one send to one target did not succeed
        ├── TargetGone                the target will never accept a delivery again
        │                             (bot uninstalled or blocked, conversation deleted, token
        │                             unregistered): deactivate it, never retry
        ├── RetryLater(after)         a transient refusal (throttled, 5xx, network); `after` is the
        │                             server's Retry-After in seconds when it gave one
        ├── DeliveryFailed            a permanent refusal of this message (bad payload): not retried
        └── ChannelUnavailable        the channel is not configured on this instance

Each channel maps its SDK's or HTTP client's exceptions to these in one place, the way httpx
maps httpcore's, so the outbox can decide retry/dead/failed without knowing any SDK. A failed
HTTP exchange is read once, by outbound/errors.py's `map_transport_error`, whichever client
made it; the caller then says what it means for it (a retry, a 503, a failed delivery).
"""

from __future__ import annotations

__all__ = [
    "AudienceError",
    "AudiencePartFailed",
    "AudienceUnavailable",
    "AuthError",
    "ChannelUnavailable",
    "ConcurrencyConflict",
    "DeliveryError",
    "DeliveryFailed",
    "HeraldError",
    "IdentityProviderUnavailable",
    "NotFound",
    "NotOwner",
    "RetryLater",
    "SettingsError",
    "SourceError",
    "SourceNotFound",
    "SourceUnavailable",
    "StoreError",
    "StoreUnavailable",
    "TargetGone",
    "TokenRejected",
]


class HeraldError(Exception):
    """Root of every error Herald raises on purpose."""


class SettingsError(HeraldError):
    """Configuration that Herald cannot start with; the message names the setting."""


class AuthError(HeraldError):
    """Credentials that could not be accepted; never carries the credential itself."""


class TokenRejected(AuthError):
    """A bearer token that is not valid for this API; `reason` is safe to show the caller."""

    def __init__(self, reason: str, *, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class IdentityProviderUnavailable(AuthError):
    """The identity provider's metadata or signing keys could not be had: try again later."""


class StoreError(HeraldError):
    """A store operation failed."""


class ConcurrencyConflict(StoreError):
    """The record changed since it was read (etag mismatch); the caller must re-read."""


class NotFound(StoreError):
    """The record does not exist."""


class NotOwner(StoreError):
    """A write on behalf of one user met a record (an installation, a push token, a browser's
    endpoint) that belongs to another; `field` names it in the API's spelling."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field


class StoreUnavailable(StoreError):
    """The database or queue cannot be reached now (not yet connected, or down): try later."""


class SourceError(HeraldError):
    """A call to an event source's service failed; `status` is the HTTP status (0: none)."""

    def __init__(self, message: str, *, status: int = 0, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class SourceNotFound(SourceError):
    """What the call was about does not exist (any more)."""


class SourceUnavailable(SourceError):
    """A transient failure that retries did not overcome; try again after `after` seconds
    when the service said so."""

    def __init__(
        self, message: str, *, after: float | None = None, status: int = 0, code: str = ""
    ) -> None:
        super().__init__(message, status=status, code=code)
        self.after = after


class AudienceError(HeraldError):
    """Part of an audience could not be listed; `reason` is short and safe to show a backend."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AudiencePartFailed(AudienceError):
    """The part can never be listed (no such group, no permission, bot not in the team)."""


class AudienceUnavailable(AudienceError):
    """The part cannot be listed now; try again, no sooner than `after` seconds when given."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class DeliveryError(HeraldError):
    """A delivery to one target did not succeed; subclasses say what to do next."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TargetGone(DeliveryError):
    """The target is permanently unreachable; deactivate it."""


class RetryLater(DeliveryError):
    """A transient failure; try again, no sooner than `after` seconds when given."""

    def __init__(self, reason: str, after: float | None = None) -> None:
        super().__init__(reason)
        self.after = after


class DeliveryFailed(DeliveryError):
    """This message can never be delivered to this target (e.g. rejected payload)."""


class ChannelUnavailable(DeliveryError):
    """The channel is switched off on this instance."""
