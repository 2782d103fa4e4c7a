"""Preferences: what each person asked for, and the rules that turn it into send/skip/defer."""

from __future__ import annotations

from preferences.model import CHANNELS, ChannelName, ChannelPreferences, QuietHours, UserPreferences
from preferences.rules import (
    DEFERRED_QUIET_HOURS,
    SKIP_EXPIRED,
    SKIP_MUTED,
    SKIP_NOT_OPTED_IN,
    SKIP_OPTED_OUT,
    SKIP_PREFERENCE,
    URGENCIES,
    Action,
    Decision,
    DeliveryPolicy,
    EventFacts,
    Urgency,
    decide,
    quiet_window_end,
)
from preferences.service import (
    CHANNEL_LABELS,
    PreferencesService,
    Snapshot,
    Update,
    consent_text,
    describe_changes,
    summary_lines,
)
from preferences.text import parse_quiet_hours, parse_time_of_day, resolve_time_zone

__all__ = [
    "CHANNELS",
    "CHANNEL_LABELS",
    "DEFERRED_QUIET_HOURS",
    "SKIP_EXPIRED",
    "SKIP_MUTED",
    "SKIP_NOT_OPTED_IN",
    "SKIP_OPTED_OUT",
    "SKIP_PREFERENCE",
    "URGENCIES",
    "Action",
    "ChannelName",
    "ChannelPreferences",
    "Decision",
    "DeliveryPolicy",
    "EventFacts",
    "PreferencesService",
    "QuietHours",
    "Snapshot",
    "Update",
    "Urgency",
    "UserPreferences",
    "consent_text",
    "decide",
    "describe_changes",
    "parse_quiet_hours",
    "parse_time_of_day",
    "quiet_window_end",
    "resolve_time_zone",
    "summary_lines",
]
