"""Adaptive Cards for consent and preferences, and the submit data their buttons carry.

Every button is an ``Action.Submit`` whose data names an ``action`` (plus what it needs, such as
the etag of the preferences it showed), so a click is understood whenever it arrives: right
away, days later, or after a restart, whether or not a dialog is waiting for it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from dialogs.cards import PROMPT_ANSWER
from dialogs.channel_links import ChannelLink
from preferences.model import CHANNELS, UserPreferences
from preferences.service import CHANNEL_LABELS, summary_lines

__all__ = [
    "ACTION_CALENDAR_ALLOW",
    "ACTION_CALENDAR_DENY",
    "ACTION_KEEP",
    "ACTION_MARK_ALL_READ",
    "ACTION_OPT_IN",
    "ACTION_OPT_OUT",
    "ACTION_PROMPT_ANSWER",
    "ACTION_SAVE_PREFERENCES",
    "ACTION_SHOW_CALENDAR",
    "ACTION_SHOW_PREFERENCES",
    "CARD_VERSION",
    "INPUT_MUTED",
    "INPUT_QUIET_FROM",
    "INPUT_QUIET_TO",
    "INPUT_TIME_ZONE",
    "PreferencesView",
    "card_fields_digest",
    "consent_card",
    "consent_explanation",
    "opt_out_card",
    "preferences_card",
    "submit",
]

CARD_VERSION: Final = "1.4"

ACTION_OPT_IN: Final = "optIn"
ACTION_OPT_OUT: Final = "optOut"
ACTION_KEEP: Final = "keepNotifications"
ACTION_SAVE_PREFERENCES: Final = "savePreferences"
ACTION_SHOW_PREFERENCES: Final = "showPreferences"
ACTION_PROMPT_ANSWER: Final = PROMPT_ANSWER
ACTION_MARK_ALL_READ: Final = "markAllRead"
ACTION_CALENDAR_ALLOW: Final = "calendarAllow"
ACTION_CALENDAR_DENY: Final = "calendarDeny"
ACTION_SHOW_CALENDAR: Final = "showCalendar"

# Input ids of the preferences card (the keys its submit value carries besides the data).
INPUT_MUTED: Final = "mutedTypes"
INPUT_QUIET_FROM: Final = "quietFrom"
INPUT_QUIET_TO: Final = "quietTo"
INPUT_TIME_ZONE: Final = "timeZone"


def submit(title: str, data: Mapping[str, Any], *, style: str | None = None) -> dict[str, Any]:
    action: dict[str, Any] = {"type": "Action.Submit", "title": title, "data": dict(data)}
    if style:
        action["style"] = style
    return action


def _card(
    body: list[dict[str, Any]], actions: list[dict[str, Any]], fallback: str
) -> dict[str, Any]:
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "fallbackText": fallback,
        "body": body,
        "actions": actions,
    }


def _text(text: str, **style: Any) -> dict[str, Any]:
    return {"type": "TextBlock", "text": text, "wrap": True, **style}


def consent_explanation(*, opt_in_required: bool) -> str:
    """What Herald will send, and how to change it later: the heart of the consent question."""
    rule = (
        "I'll only send you something once you say yes."
        if opt_in_required
        else "Unless you say no, you'll get them."
    )
    return (
        "I bring you notifications from your company's systems (tasks assigned to you, "
        "trainings due, outages, announcements) here in this chat, and on your phone or in "
        f"your browser if you set that up. {rule} You can mute types, set quiet hours or turn "
        "everything off at any time: type **settings** or **stop**."
    )


def consent_card(*, opt_in_required: bool) -> dict[str, Any]:
    explanation = consent_explanation(opt_in_required=opt_in_required)
    return _card(
        [
            _text("Notifications from Herald", weight="Bolder", size="Medium"),
            _text(explanation),
            _text("Would you like to receive them?", weight="Bolder"),
        ],
        [
            submit("Yes, notify me", {"action": ACTION_OPT_IN}, style="positive"),
            submit("No, thanks", {"action": ACTION_OPT_OUT}),
        ],
        f"{explanation} Would you like to receive them? Reply yes or no.",
    )


def opt_out_card() -> dict[str, Any]:
    question = (
        "Turn off all notifications? You won't get anything from me until you type **start**."
    )
    return _card(
        [_text(question)],
        [
            submit("Yes, turn them off", {"action": ACTION_OPT_OUT}, style="destructive"),
            submit("No, keep them", {"action": ACTION_KEEP}),
        ],
        question.replace("**", "") + " Reply yes or no.",
    )


@dataclass(frozen=True, slots=True)
class PreferencesView:
    """Everything the preferences card shows."""

    prefs: UserPreferences
    etag: str
    channel_notes: Mapping[str, str]
    """Per channel: how it reaches this person ("1 conversation", "no device registered")."""
    offered_types: Sequence[str]
    """Types to offer for muting: those received so far and those already muted."""
    critical_types: frozenset[str] = frozenset()
    opt_in_required: bool = False
    channel_links: Mapping[str, ChannelLink] = field(default_factory=dict)
    """Per channel: a link to set it up outside the chat (a button under its toggle)."""
    calendar_note: str | None = None
    """Whether Herald watches the person's calendar (None: no calendar section)."""


def card_fields_digest(prefs: UserPreferences) -> str:
    """A digest of the settings the preferences card edits (channels, muted types, quiet
    hours, time zone), carried by its Save: a submit whose etag is stale is still applied when
    none of these changed since the card was shown (someone said yes to the consent question
    after asking for the card: that changes the document, not what the card edits)."""
    doc = prefs.to_json_dict()
    edited = {k: doc.get(k) for k in ("channels", "mutedTypes", "quietHours", "timeZone")}
    text = json.dumps(edited, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def preferences_card(view: PreferencesView) -> dict[str, Any]:
    """One card with the whole document; its Save submits all of it with the etag it showed."""
    prefs = view.prefs
    body: list[dict[str, Any]] = [
        _text("Your notification settings", weight="Bolder", size="Medium"),
        _text(summary_lines(prefs, opt_in_required=view.opt_in_required)[0], isSubtle=True),
        _text("Where", weight="Bolder", spacing="Medium"),
    ]
    for channel in CHANNELS:
        body.append(
            {
                "type": "Input.Toggle",
                "id": channel,
                "title": CHANNEL_LABELS[channel],
                "value": "true" if prefs.channels.is_enabled(channel) else "false",
                "valueOn": "true",
                "valueOff": "false",
            }
        )
        note = view.channel_notes.get(channel)
        if note:
            body.append(_text(note, isSubtle=True, size="Small", spacing="None"))
        link = view.channel_links.get(channel)
        if link is not None:
            body.append(
                {
                    "type": "ActionSet",
                    "spacing": "Small",
                    "actions": [{"type": "Action.OpenUrl", "title": link.title, "url": link.url}],
                }
            )
    if view.calendar_note:
        body.extend(
            [
                _text("Calendar", weight="Bolder", spacing="Medium"),
                _text(view.calendar_note, isSubtle=True, size="Small", spacing="None"),
                {
                    "type": "ActionSet",
                    "spacing": "Small",
                    "actions": [
                        submit("Calendar notifications…", {"action": ACTION_SHOW_CALENDAR})
                    ],
                },
            ]
        )
    body.append(_text("Muted types", weight="Bolder", spacing="Medium"))
    if view.offered_types:
        choices = []
        for type_ in view.offered_types:
            title = type_
            if type_ in view.critical_types:
                title += " (critical: urgent ones always come through)"
            choices.append({"title": title, "value": type_})
        body.append(
            {
                "type": "Input.ChoiceSet",
                "id": INPUT_MUTED,
                "isMultiSelect": True,
                "style": "expanded",
                "value": ",".join(prefs.muted_types),
                "choices": choices,
            }
        )
    else:
        body.append(
            _text(
                "You haven't received any notifications yet, so there is nothing to mute.",
                isSubtle=True,
            )
        )
    quiet = prefs.quiet_hours
    body.extend(
        [
            _text("Quiet hours", weight="Bolder", spacing="Medium"),
            _text(
                "Only urgent notifications arrive in this window; the rest wait until it ends. "
                "Leave both empty for none.",
                isSubtle=True,
                size="Small",
            ),
            {
                "type": "ColumnSet",
                "columns": [
                    {
                        "type": "Column",
                        "width": "stretch",
                        "items": [
                            {
                                "type": "Input.Time",
                                "id": INPUT_QUIET_FROM,
                                "label": "From",
                                "value": quiet.start if quiet else "",
                            }
                        ],
                    },
                    {
                        "type": "Column",
                        "width": "stretch",
                        "items": [
                            {
                                "type": "Input.Time",
                                "id": INPUT_QUIET_TO,
                                "label": "To",
                                "value": quiet.end if quiet else "",
                            }
                        ],
                    },
                ],
            },
            {
                "type": "Input.Text",
                "id": INPUT_TIME_ZONE,
                "label": "Time zone (IANA name)",
                "placeholder": "e.g. Europe/Berlin",
                "value": prefs.time_zone or "",
            },
        ]
    )
    fallback = "\n".join(summary_lines(prefs, opt_in_required=view.opt_in_required))
    return _card(
        body,
        [
            submit(
                "Save",
                {
                    "action": ACTION_SAVE_PREFERENCES,
                    "etag": view.etag,
                    "shown": card_fields_digest(prefs),
                },
                style="positive",
            )
        ],
        fallback,
    )
