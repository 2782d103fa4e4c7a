"""The preferences card, what its Save does, and the text commands that do the same.

Saving the card replaces the whole document, guarded by the etag the card was built with: if
anything changed the preferences since (the API, another card, a text command), the submit is
not applied and the user sees the current state instead, so nobody's change is lost. Text
commands change one setting of the latest document (PreferencesService.update).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.schema import Attachment
from pydantic import ValidationError

from dialogs.calendar import CalendarFlow
from dialogs.cards import ADAPTIVE_CARD
from dialogs.channel_links import link_markdown, links_to_offer
from dialogs.commands import Command, Verb
from dialogs.preference_cards import (
    INPUT_MUTED,
    INPUT_QUIET_FROM,
    INPUT_QUIET_TO,
    INPUT_TIME_ZONE,
    PreferencesView,
    card_fields_digest,
    preferences_card,
)
from dialogs.services import DialogServices, sender_id
from errors import ConcurrencyConflict, NotFound
from notifications.problems import first_problem
from preferences.model import CHANNELS, QuietHours, UserPreferences
from preferences.service import CHANNEL_LABELS, Snapshot, describe_changes, summary_lines
from preferences.text import parse_quiet_hours, parse_time_of_day, resolve_time_zone

__all__ = ["CardInputError", "PreferencesFlow", "preferences_from_card"]

log = logging.getLogger(__name__)

_INTRO = (
    "Here are your notification settings. Change them on the card and press **Save**, or type "
    "commands such as `mute training.due`, `quiet 22:00-07:00`, `timezone Europe/Berlin` or "
    "`mobile off`."
)
_NOTHING_CHANGED = "Nothing changed."
_EVENT_TYPE = re.compile(r"[a-z0-9][a-z0-9._-]{0,99}")
"""The event contract's rule for `type` (api/schemas.py), lower-cased as preferences keep it."""
_TARGET_NOUNS = {"conversation": "chat", "mobile": "device", "webpush": "browser"}


class CardInputError(ValueError):
    """A preferences card submit that cannot be saved; `field` names the input."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _string(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value).strip()


def _toggle(value: Any, current: bool, field: str) -> bool:
    text = _string(value).lower()
    if text == "":
        return current
    if text in ("true", "on", "1"):
        return True
    if text in ("false", "off", "0"):
        return False
    raise CardInputError(field, f"{field} must be on or off")


def preferences_from_card(current: UserPreferences, value: dict[str, Any]) -> UserPreferences:
    """The document a submitted preferences card asks for (inputs as Teams sends them: toggles
    as "true"/"false", a multi-select as "a,b", times as "HH:MM", absent or "" when empty)."""
    channels = {
        channel: _toggle(value.get(channel), current.channels.is_enabled(channel), channel)
        for channel in CHANNELS
    }
    muted_raw = value.get(INPUT_MUTED, ",".join(current.muted_types))
    if isinstance(muted_raw, list):
        muted = [_string(t) for t in muted_raw]
    else:
        muted = [t.strip() for t in _string(muted_raw).split(",")]
    muted = [t for t in muted if t]
    start, end = _string(value.get(INPUT_QUIET_FROM)), _string(value.get(INPUT_QUIET_TO))
    quiet: QuietHours | None = None
    if start or end:
        if not (start and end):
            raise CardInputError(
                INPUT_QUIET_FROM if not start else INPUT_QUIET_TO,
                "quiet hours need both a start and an end (or leave both empty for none)",
            )
        try:
            quiet = QuietHours(start=parse_time_of_day(start), end=parse_time_of_day(end))
        except ValidationError as exc:
            raise CardInputError(INPUT_QUIET_FROM, first_problem(exc).message) from exc
        except ValueError as exc:
            raise CardInputError(INPUT_QUIET_FROM, str(exc)) from exc
    zone_text = _string(value.get(INPUT_TIME_ZONE))
    try:
        zone = resolve_time_zone(zone_text) if zone_text else None
    except ValueError as exc:
        raise CardInputError(INPUT_TIME_ZONE, str(exc)) from exc
    try:
        return UserPreferences.from_json_dict(
            {
                **current.to_json_dict(),
                "channels": channels,
                "mutedTypes": muted,
                "quietHours": quiet.model_dump(by_alias=True) if quiet else None,
                "timeZone": zone,
            }
        )
    except ValidationError as exc:
        problem = first_problem(exc)
        raise CardInputError(problem.field or INPUT_MUTED, problem.message) from exc


class PreferencesFlow:
    """Shows, saves and changes one person's preferences in a conversation."""

    def __init__(self, services: DialogServices) -> None:
        self._services = services

    @property
    def _required(self) -> bool:
        return self._services.policy.opt_in_required

    async def _channel_notes(self, user_id: str) -> dict[str, str]:
        notes: dict[str, str] = {}
        for name in CHANNELS:
            channel = self._services.channels.get(name)
            if channel is None:
                notes[name] = "Not set up on this Herald yet."
                continue
            count = len((await channel.targets([user_id])).get(user_id, []))
            noun = _TARGET_NOUNS[name]
            if count == 0:
                notes[name] = (
                    "No device registered." if name == "mobile" else f"No {noun} registered."
                )
            else:
                notes[name] = f"Reaches you in {count} {noun}{'s' if count != 1 else ''}."
        return notes

    async def view(self, user_id: str, snapshot: Snapshot) -> PreferencesView:
        received = await self._services.inbox.types(user_id)
        offered = sorted(set(received) | set(snapshot.prefs.muted_types))
        calendar = CalendarFlow(self._services)
        calendar_note = await calendar.note(user_id) if calendar.available else None
        return PreferencesView(
            prefs=snapshot.prefs,
            etag=snapshot.etag,
            channel_notes=await self._channel_notes(user_id),
            offered_types=offered,
            critical_types=self._services.policy.critical_types,
            opt_in_required=self._required,
            channel_links={
                name: make(user_id)
                for name, make in self._services.channel_links.items()
                if self._services.channels.get(name) is not None
            },
            calendar_note=calendar_note,
        )

    async def show(self, context: TurnContext, intro: str = _INTRO) -> None:
        user_id = sender_id(context)
        if user_id is None:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        try:
            snapshot = await self._services.preferences.read(user_id)
        except NotFound:
            await context.send_activity("I don't know you yet. Say **hi** first.")
            return
        card = preferences_card(await self.view(user_id, snapshot))
        activity = MessageFactory.text(intro)
        activity.attachments = [Attachment(content_type=ADAPTIVE_CARD, content=card)]
        await context.send_activity(activity)

    async def save_card(self, context: TurnContext, value: dict[str, Any]) -> None:
        """Apply a submitted preferences card, if nothing changed since it was shown."""
        user_id = sender_id(context)
        if user_id is None:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        current = await self._services.preferences.read(user_id)
        shown_etag = _string(value.get("etag"))
        shown = _string(value.get("shown"))
        if shown_etag != current.etag and shown and shown == card_fields_digest(current.prefs):
            # Changed since, but not in anything this card edits (consent, say): apply it.
            shown_etag = current.etag
        if shown_etag != current.etag:
            await self.show(
                context,
                "Your settings were changed somewhere else after this card was shown, so I "
                "didn't apply it (nothing was lost). Here they are as they are now:",
            )
            return
        try:
            wanted = preferences_from_card(current.prefs, value)
        except CardInputError as exc:
            await context.send_activity(
                f"I couldn't save your settings: {exc.message}. Nothing was changed."
            )
            return
        changes = describe_changes(current.prefs, wanted, opt_in_required=self._required)
        if not changes:
            await context.send_activity(_NOTHING_CHANGED)
            return
        try:
            await self._services.preferences.replace(user_id, wanted, shown_etag)
        except ConcurrencyConflict:
            await self.show(
                context,
                "Your settings changed while I was saving this card, so I didn't apply it. "
                "Here they are as they are now:",
            )
            return
        switched_on = [
            name
            for name in CHANNELS
            if wanted.channels.is_enabled(name) and not current.prefs.channels.is_enabled(name)
        ]
        await self._refresh_card(context, user_id)
        await context.send_activity(
            _saved(changes) + await self._offers(user_id, wanted, switched_on)
        )

    async def _refresh_card(self, context: TurnContext, user_id: str) -> None:
        """Update the card that was saved in place, so that it shows the settings as saved
        (and a later Save from it carries the new etag). Best effort: a client that cannot
        update messages still gets the confirmation."""
        card_id = context.activity.reply_to_id
        if not card_id:
            return
        try:
            snapshot = await self._services.preferences.read(user_id)
            card = preferences_card(await self.view(user_id, snapshot))
            activity = MessageFactory.text(_INTRO)
            activity.attachments = [Attachment(content_type=ADAPTIVE_CARD, content=card)]
            activity.id = card_id
            await context.update_activity(activity)
        except Exception as exc:  # the save itself succeeded
            log.info("could not update the saved preferences card: %r", exc)

    async def apply_text(self, context: TurnContext, command: Command) -> None:
        """A text command that changes one setting (mute, quiet, timezone, channel on/off)."""
        user_id = sender_id(context)
        if user_id is None:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        try:
            change = _change_for(command)
            update = await self._services.preferences.update(user_id, change)
        except ValidationError as exc:
            await context.send_activity(
                f"Sorry, {first_problem(exc).message}. I kept your previous setting."
            )
            return
        except ValueError as exc:
            await context.send_activity(f"Sorry, {exc}. I kept your previous setting.")
            return
        except NotFound:
            await context.send_activity("I don't know you yet. Say **hi** first.")
            return
        changes = describe_changes(update.before, update.after, opt_in_required=self._required)
        offers = ""
        if command.verb is Verb.CHANNEL and command.on:
            offers = await self._offers(user_id, update.after, [command.argument])
        if not changes:
            await context.send_activity(
                f"{_NOTHING_CHANGED} {_already(command)}".strip() + offers
            )
            return
        note = offers
        if command.verb is Verb.MUTE and self._services.policy.is_critical(command.argument):
            note = (
                f"\n\n{command.argument.lower()} is critical here: urgent ones still come through."
            )
        await context.send_activity(_saved(changes) + note)

    async def _offers(
        self, user_id: str, prefs: UserPreferences, channels: Sequence[str]
    ) -> str:
        """Links for the channels just switched on that reach the person nowhere yet."""
        links = await links_to_offer(self._services, user_id, prefs, channels)
        return "".join(f"\n\n{link_markdown(link)}" for link in links)

    def summary(self, prefs: UserPreferences) -> list[str]:
        return summary_lines(prefs, opt_in_required=self._required)


def _saved(changes: list[str]) -> str:
    return "Saved ✅\n\n" + "\n".join(f"- {line}" for line in changes)


def _already(command: Command) -> str:
    if command.verb is Verb.MUTE:
        return f"{command.argument.lower()} was already muted."
    if command.verb is Verb.UNMUTE:
        return f"{command.argument.lower()} wasn't muted."
    if command.verb is Verb.CHANNEL:
        return f"{CHANNEL_LABELS[command.argument]} was already {'on' if command.on else 'off'}."
    return ""


def _change_for(command: Command) -> Callable[[UserPreferences], UserPreferences]:
    """The change a command makes; ValueError (before anything is read) for bad input."""
    verb = command.verb
    if verb is Verb.MUTE or verb is Verb.UNMUTE:
        type_ = command.argument.strip().lower()
        if not _EVENT_TYPE.fullmatch(type_):
            raise ValueError(
                f"{command.argument!r} is not a notification type (they look like training.due)"
            )

        def mute(prefs: UserPreferences) -> UserPreferences:
            types = set(prefs.muted_types)
            if verb is Verb.MUTE:
                types.add(type_)
            else:
                types.discard(type_)
            return prefs.model_copy(update={"muted_types": sorted(types)})

        return mute
    if verb is Verb.QUIET:
        quiet = parse_quiet_hours(command.argument)
        return lambda prefs: prefs.model_copy(update={"quiet_hours": quiet})
    if verb is Verb.QUIET_OFF:
        return lambda prefs: prefs.model_copy(update={"quiet_hours": None})
    if verb is Verb.TIME_ZONE:
        zone = resolve_time_zone(command.argument)
        return lambda prefs: prefs.model_copy(update={"time_zone": zone})
    if verb is Verb.CHANNEL:
        channel, on = command.argument, bool(command.on)

        def switch(prefs: UserPreferences) -> UserPreferences:
            channels = prefs.channels.model_copy(update={channel: on})
            return prefs.model_copy(update={"channels": channels})

        return switch
    raise ValueError(f"{verb.value} does not change a setting")
