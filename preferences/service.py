"""Reading and writing one person's preferences, the way every writer must: with the etag.

The chat (dialogs and card submits) and the API both go through :class:`PreferencesService`,
so the rule DESIGN.md asks for holds for all of them: two writers never lose each other's
update. Whole-document writes (the API's PUT, a submitted preferences card) carry the etag of
what the writer saw and fail with :class:`~errors.ConcurrencyConflict` when it is stale;
one-field changes (``mute training.due``, a consent button) are applied to the latest document
and retried on a conflict, which cannot lose anybody's change either.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from pydantic import ValidationError

from errors import ConcurrencyConflict, NotFound
from preferences.model import CHANNELS, UserPreferences
from storage.protocols import UserStore

__all__ = [
    "CHANNEL_LABELS",
    "PreferencesService",
    "Snapshot",
    "Update",
    "consent_text",
    "describe_changes",
    "summary_lines",
]

log = logging.getLogger(__name__)

CHANNEL_LABELS: Final[dict[str, str]] = {
    "conversation": "Chat",
    "mobile": "Mobile push",
    "webpush": "Browser push",
}
"""What people call each channel, in cards, confirmations and text commands."""

_UPDATE_ATTEMPTS: Final = 5


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A user's preferences as stored (the default when none are), with the etag to write back."""

    prefs: UserPreferences
    etag: str
    stored: bool


@dataclass(frozen=True, slots=True)
class Update:
    """What a write changed: the document before and after, and the new etag."""

    before: UserPreferences
    after: UserPreferences
    etag: str

    @property
    def changed(self) -> bool:
        return _comparable(self.before) != _comparable(self.after)


def _comparable(prefs: UserPreferences) -> UserPreferences:
    return prefs.model_copy(update={"updated_at": None})


class PreferencesService:
    """Preferences of users the store knows; every write is etag-guarded."""

    def __init__(
        self,
        users: UserStore,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._users = users
        self._clock = clock

    async def read(self, user_id: str) -> Snapshot:
        """The user's preferences; NotFound if the user is unknown."""
        document, etag = await self._users.get_preferences(user_id)
        if document is None:
            return Snapshot(UserPreferences.default(), etag, stored=False)
        try:
            prefs = UserPreferences.from_json_dict(document)
        except ValidationError:
            # Written by an older or buggy writer; show defaults rather than fail every turn.
            log.warning("stored preferences of %s are invalid; using defaults", user_id)
            prefs = UserPreferences.default()
        return Snapshot(prefs, etag, stored=True)

    async def replace(self, user_id: str, prefs: UserPreferences, if_match: str | None) -> Snapshot:
        """Write the whole document if `if_match` is still current (None: unconditionally).

        Raises ConcurrencyConflict on a stale etag and NotFound for an unknown user.
        """
        saved = prefs.model_copy(update={"updated_at": self._clock()})
        etag = await self._users.put_preferences(user_id, saved.to_json_dict(), if_match)
        return Snapshot(saved, etag, stored=True)

    async def update(
        self, user_id: str, change: Callable[[UserPreferences], UserPreferences]
    ) -> Update:
        """Apply `change` to the latest document, retrying when someone wrote in between.

        Nothing is written when `change` changes nothing. `change` may raise ValueError (or a
        pydantic ValidationError) to refuse; the document is then left as it was.
        """
        for _ in range(_UPDATE_ATTEMPTS):
            current = await self.read(user_id)
            # Re-validated: `change` may have used model_copy(update=...), which checks nothing.
            wanted = UserPreferences.from_json_dict(
                change(current.prefs.model_copy(deep=True)).to_json_dict()
            )
            if _comparable(wanted) == _comparable(current.prefs):
                return Update(current.prefs, current.prefs, current.etag)
            try:
                saved = await self.replace(user_id, wanted, current.etag)
            except ConcurrencyConflict:
                continue
            return Update(current.prefs, saved.prefs, saved.etag)
        raise ConcurrencyConflict(f"preferences of {user_id!r} kept changing; try again")

    async def adopt_time_zone(self, user_id: str, zone: str) -> bool:
        """Store `zone` (a client's guess) if the user has none; never overwrite a choice.

        Best effort: an invalid zone, an unknown user or a concurrent write leave things as
        they are. True if the zone was stored.
        """
        try:
            current = await self.read(user_id)
            if current.prefs.time_zone is not None:
                return False
            guessed = UserPreferences.from_json_dict(
                {**current.prefs.to_json_dict(), "timeZone": zone}
            )
            await self.replace(user_id, guessed, current.etag)
        except (ValidationError, ConcurrencyConflict, NotFound):
            return False
        return True


def _on_off(value: bool) -> str:
    return "on" if value else "off"


def _quiet(prefs: UserPreferences) -> str:
    if prefs.quiet_hours is None:
        return "off"
    return f"{prefs.quiet_hours.start}–{prefs.quiet_hours.end}"


def _zone(prefs: UserPreferences) -> str:
    return prefs.time_zone or "UTC (not set)"


def consent_text(opted_in: bool | None, *, opt_in_required: bool = False) -> str:
    """Whether notifications are on, in words, for what the person said (or did not say)."""
    if opted_in is True:
        return "on"
    if opted_in is False:
        return "off (you opted out)"
    return "off until you opt in" if opt_in_required else "on (default)"


def describe_changes(
    before: UserPreferences, after: UserPreferences, *, opt_in_required: bool = False
) -> list[str]:
    """One line per setting that differs, in words a person reads ("Mobile push: off")."""
    lines: list[str] = []
    if before.opted_in != after.opted_in:
        consent = consent_text(after.opted_in, opt_in_required=opt_in_required)
        lines.append(f"Notifications: {consent}")
    for channel in CHANNELS:
        old, new = before.channels.is_enabled(channel), after.channels.is_enabled(channel)
        if old != new:
            lines.append(f"{CHANNEL_LABELS[channel]}: {_on_off(new)}")
    muted = sorted(set(after.muted_types) - set(before.muted_types))
    unmuted = sorted(set(before.muted_types) - set(after.muted_types))
    if muted:
        lines.append(f"Muted: {', '.join(muted)}")
    if unmuted:
        lines.append(f"Unmuted: {', '.join(unmuted)}")
    if before.quiet_hours != after.quiet_hours:
        lines.append(f"Quiet hours: {_quiet(after)}")
    if before.time_zone != after.time_zone:
        lines.append(f"Time zone: {_zone(after)}")
    return lines


def summary_lines(prefs: UserPreferences, *, opt_in_required: bool = False) -> list[str]:
    """The whole document, one line per setting, for text-only clients."""
    consent = consent_text(prefs.opted_in, opt_in_required=opt_in_required)
    channels = ", ".join(
        f"{CHANNEL_LABELS[c]} {_on_off(prefs.channels.is_enabled(c))}" for c in CHANNELS
    )
    return [
        f"Notifications: {consent}",
        f"Channels: {channels}",
        f"Muted types: {', '.join(prefs.muted_types) or 'none'}",
        f"Quiet hours: {_quiet(prefs)}",
        f"Time zone: {_zone(prefs)}",
    ]
