"""Mobile devices: the registration record and the store Protocol every backend implements.

One record per app installation (`installationId`), owned by one user, carrying the push
tokens of that installation (an FCM registration token, and for iOS possibly an APNs device
token) and the metadata the app reported, kept for support and audits. Registering an
installation again replaces its tokens and metadata (and its owner, when someone else signed in
on that phone); a token can belong to one installation only, so registering it elsewhere takes
it away from the installation that had it.

An installation whose tokens are all gone (FCM said UNREGISTERED, or the token moved to another
installation) stays on record, inactive, with why and when its token was removed, until the app
registers again or someone deletes it.

A user acting for themselves (with the bot's link token) may register, move and delete only
their own installations and tokens (`owner_only`, `delete(user_id=...)`); moving one that is
another user's takes a backend (DESIGN: Security).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

__all__ = [
    "DEVICE_METADATA",
    "DeviceRecord",
    "DeviceRegistration",
    "DeviceStore",
    "DeviceUpsert",
    "Platform",
    "TokenRemoval",
]

Platform = Literal["android", "ios", "web"]

DEVICE_METADATA: tuple[str, ...] = (
    "appId",
    "appVersion",
    "appBuild",
    "distribution",
    "hardware",
    "os",
    "osVersion",
    "model",
    "language",
    "timeZone",
)
"""The metadata fields a registration carries, in the API's spelling."""

MOVED = "moved-to-another-installation"
"""Why a token was removed when another installation registered it."""


@dataclass(frozen=True, slots=True)
class TokenRemoval:
    """Why and when an installation lost a push token."""

    reason: str
    at: float


@dataclass(frozen=True, slots=True)
class DeviceRegistration:
    """What an app sends when it registers (or re-registers) an installation."""

    installation_id: str
    user_id: str
    platform: Platform
    fcm_token: str | None
    apns_token: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)

    def __repr__(self) -> str:  # push tokens address a phone: keep them out of logs
        return (
            f"DeviceRegistration(installation_id={self.installation_id!r}, "
            f"user_id={self.user_id!r}, platform={self.platform!r})"
        )


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A registered installation as stored."""

    installation_id: str
    user_id: str
    platform: Platform
    fcm_token: str | None
    apns_token: str | None
    metadata: dict[str, str]
    active: bool
    """False once the installation has no token left: nothing can reach it."""
    created_at: float
    updated_at: float
    token_removed: TokenRemoval | None = None
    """The last time a token of this installation was removed, until it registers again."""

    @property
    def target(self) -> str:
        """The delivery target key: the installation id."""
        return self.installation_id

    def __repr__(self) -> str:
        return (
            f"DeviceRecord(installation_id={self.installation_id!r}, user_id={self.user_id!r}, "
            f"platform={self.platform!r}, active={self.active})"
        )


@dataclass(frozen=True, slots=True)
class DeviceUpsert:
    """What a registration did."""

    device: DeviceRecord
    created: bool
    """A new installation (False: an installation Herald had, updated)."""
    previous_user_id: str | None = None
    """Whose the installation was before, when it changed hands."""
    displaced: tuple[str, ...] = ()
    """Other installations that held one of its tokens and lost it."""


class DeviceStore(Protocol):
    """Registered installations, keyed by installation id, each owned by one user."""

    async def upsert(
        self, registration: DeviceRegistration, *, owner_only: bool = False
    ) -> DeviceUpsert:
        """Create or replace the installation (owner, tokens, metadata), atomically.

        A token another installation holds is removed from it (and that installation is
        deactivated if it has no token left). `created_at` is kept for a known installation.

        `owner_only` (a user acting for themselves, not a backend): the installation must be
        new or already `registration.user_id`'s, and each token free or held by an installation
        of that same user; otherwise `NotOwner` (field `installationId`, `fcmToken` or
        `apnsToken`) and nothing is written. The check is part of the write, so of two users
        racing for one new installation only one gets it.
        """
        ...

    async def get(self, installation_id: str) -> DeviceRecord | None: ...

    async def for_user(self, user_id: str) -> list[DeviceRecord]:
        """A user's installations, active or not, oldest registration first."""
        ...

    async def delete(self, installation_id: str, *, user_id: str | None = None) -> bool:
        """Forget the installation; with `user_id`, only if it is that user's (as one step, so
        an installation that moved meanwhile is kept). True if it was removed."""
        ...

    async def targets_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """Installation ids of each user's active installations with an FCM token (users
        without any are absent): what the FCM channel can send to."""
        ...

    async def apns_only_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """Installation ids of each user's active installations that have only an APNs token."""
        ...

    async def fcm_only_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """Installation ids of each user's active installations that have only an FCM token
        (what nothing reaches while only APNs is configured)."""
        ...

    async def apns_targets_for(self, user_ids: Sequence[str]) -> dict[str, list[str]]:
        """Installation ids of each user's active installations with an APNs token (an FCM
        token or not): what the APNs channel can send to."""
        ...

    async def get_many(
        self, keys: Sequence[tuple[str, str]]
    ) -> dict[tuple[str, str], DeviceRecord]:
        """Installations by (user_id, installation id); a pair whose installation now belongs
        to another user (or is gone) is absent, so a delivery planned for the phone's previous
        owner never reaches its new one."""
        ...

    async def remove_fcm_token(self, installation_id: str, token: str, reason: str) -> bool:
        """Remove the installation's FCM token if it is still `token` (a token registered
        since is kept), recording why; deactivates an installation left with no token.
        True if the token was removed."""
        ...

    async def remove_apns_token(self, installation_id: str, token: str, reason: str) -> bool:
        """The same for the installation's APNs device token."""
        ...
