"""What a typed message asks for: the text path of every dialog, for clients without cards.

`parse` is a pure function from text to a `Command`, so the vocabulary is tested without a bot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Final

from dialogs.choice_prompt import normalise_text

__all__ = ["CHANNEL_WORDS", "Command", "Verb", "parse"]


class Verb(Enum):
    HELP = "help"
    GREETING = "greeting"
    STATUS = "status"
    PREFERENCES = "preferences"
    HISTORY = "history"
    INBOX = "inbox"
    MARK_ALL_READ = "mark-all-read"
    OPT_IN = "opt-in"
    OPT_OUT = "opt-out"
    MUTE = "mute"
    UNMUTE = "unmute"
    QUIET = "quiet"
    QUIET_OFF = "quiet-off"
    TIME_ZONE = "time-zone"
    CHANNEL = "channel"
    CALENDAR = "calendar"
    CANCEL = "cancel"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Command:
    verb: Verb
    argument: str = ""
    """What follows the command word, as typed (case kept: time zones and types need it)."""
    on: bool | None = None
    """For CHANNEL and CALENDAR: switch on (True) or off (False); None for CALENDAR: ask."""


CHANNEL_WORDS: Final[dict[str, str]] = {
    "conversation": "conversation",
    "chat": "conversation",
    "teams": "conversation",
    "teams chat": "conversation",
    "mobile": "mobile",
    "phone": "mobile",
    "mobile push": "mobile",
    "webpush": "webpush",
    "web push": "webpush",
    "browser": "webpush",
    "browser push": "webpush",
}
"""How people name the channels in commands such as `mobile off`."""

_EXACT: Final[dict[str, Verb]] = {
    "help": Verb.HELP,
    "": Verb.HELP,  # a bare "?"
    "commands": Verb.HELP,
    "hi": Verb.GREETING,
    "hello": Verb.GREETING,
    "hey": Verb.GREETING,
    "status": Verb.STATUS,
    "preferences": Verb.PREFERENCES,
    "preference": Verb.PREFERENCES,
    "prefs": Verb.PREFERENCES,
    "settings": Verb.PREFERENCES,
    "history": Verb.HISTORY,
    "inbox": Verb.INBOX,
    "my inbox": Verb.INBOX,
    "open inbox": Verb.INBOX,
    "open my inbox": Verb.INBOX,
    "mark all read": Verb.MARK_ALL_READ,
    "mark all as read": Verb.MARK_ALL_READ,
    "read all": Verb.MARK_ALL_READ,
    "opt in": Verb.OPT_IN,
    "opt-in": Verb.OPT_IN,
    "optin": Verb.OPT_IN,
    "start": Verb.OPT_IN,
    "subscribe": Verb.OPT_IN,
    "opt out": Verb.OPT_OUT,
    "opt-out": Verb.OPT_OUT,
    "optout": Verb.OPT_OUT,
    "stop": Verb.OPT_OUT,
    "unsubscribe": Verb.OPT_OUT,
    "quiet off": Verb.QUIET_OFF,
    "quiet hours off": Verb.QUIET_OFF,
    "no quiet hours": Verb.QUIET_OFF,
    "cancel": Verb.CANCEL,
}

_CALENDAR: Final[dict[str, bool | None]] = {
    "calendar": None,
    "my calendar": None,
    "calendar notifications": None,
    "calendar on": True,
    "calendar off": False,
}
"""Calendar notifications (Microsoft Graph): ask, or switch them directly."""

_WITH_ARGUMENT: Final = re.compile(
    r"(?P<word>mute|unmute|quiet hours|quiet|timezone|time zone|tz)\s+(?P<arg>.+)",
    re.IGNORECASE | re.DOTALL,
)
_ARGUMENT_VERBS: Final[dict[str, Verb]] = {
    "mute": Verb.MUTE,
    "unmute": Verb.UNMUTE,
    "quiet": Verb.QUIET,
    "quiet hours": Verb.QUIET,
    "timezone": Verb.TIME_ZONE,
    "time zone": Verb.TIME_ZONE,
    "tz": Verb.TIME_ZONE,
}
_SWITCH: Final = re.compile(
    r"(?:(?:turn|switch)\s+(?P<pre>on|off)\s+(?P<name1>.+)|(?P<name2>.+?)\s+(?P<post>on|off))",
)


def parse(text: str | None) -> Command:
    """The command `text` names; `UNKNOWN` (with the text) if it names none."""
    if not (text or "").strip():
        return Command(Verb.UNKNOWN)
    normal = normalise_text(text)
    if normal in _CALENDAR:
        return Command(Verb.CALENDAR, on=_CALENDAR[normal])
    verb = _EXACT.get(normal)
    if verb is not None:
        return Command(verb)
    raw = " ".join((text or "").split()).strip(" .!")
    match = _WITH_ARGUMENT.fullmatch(raw)
    if match is not None:
        argument = match["arg"].strip()
        if match["word"].lower().startswith("quiet") and normalise_text(argument) == "off":
            return Command(Verb.QUIET_OFF)
        return Command(_ARGUMENT_VERBS[match["word"].lower()], argument)
    switch = _SWITCH.fullmatch(normal)
    if switch is not None:
        name = (switch["name1"] or switch["name2"] or "").strip()
        name = name.removeprefix("channel ").removesuffix(" channel").strip()
        state = switch["pre"] or switch["post"]
        if name in CHANNEL_WORDS:
            return Command(Verb.CHANNEL, CHANNEL_WORDS[name], on=state == "on")
    return Command(Verb.UNKNOWN, raw)
