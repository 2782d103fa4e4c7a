"""Herald's exception tree, translated from library exceptions where they enter our code.

    HeraldError
    ├── SettingsError                 bad or missing configuration, raised at start-up
    ├── StoreError                    a store could not do what was asked
    │   ├── ConcurrencyConflict       an etag (If-Match) no longer matches: someone else wrote first
    │   └── NotFound                  the record does not exist
    ├── SourceError                   an event source's service (Microsoft Graph, its token
    │   │                             endpoint) refused or failed a call: `status`, `code`
    │   ├── SourceNotFound            the resource, subscription or sync state is gone
    │   └── SourceUnavailable(after)  throttled or down even after retries: try again later
    └── DeliveryError                 one send to one target did not succeed
        ├── TargetGone                the target will never accept a delivery again
        │                             (bot uninstalled or blocked, conversation deleted, token
        │                             unregistered): deactivate it, never retry
        ├── RetryLater(after)         a transient refusal (throttled, 5xx, network); `after` is the
        │                             server's Retry-After in seconds when it gave one
        ├── DeliveryFailed            a permanent refusal of this message (bad payload): not retried
        └── ChannelUnavailable        the channel is not configured on this instance

Each channel maps its SDK's or HTTP client's exceptions to these in one place, the way httpx
maps httpcore's, so the outbox can decide retry/dead/failed without knowing any SDK.
"""

from __future__ import annotations

__all__ = [
    "ChannelUnavailable",
    "ConcurrencyConflict",
    "DeliveryError",
    "DeliveryFailed",
    "HeraldError",
    "NotFound",
    "RetryLater",
    "SettingsError",
    "SourceError",
    "SourceNotFound",
    "SourceUnavailable",
    "StoreError",
    "TargetGone",
]


class HeraldError(Exception):
    """Root of every error Herald raises on purpose."""


class SettingsError(HeraldError):
    """Configuration that Herald cannot start with; the message names the setting."""


class StoreError(HeraldError):
    """A store operation failed."""


class ConcurrencyConflict(StoreError):
    """The record changed since it was read (etag mismatch); the caller must re-read."""


class NotFound(StoreError):
    """The record does not exist."""


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
