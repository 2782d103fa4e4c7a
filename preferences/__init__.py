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

__all__ = [
    "CHANNELS",
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
    "QuietHours",
    "Urgency",
    "UserPreferences",
    "decide",
    "quiet_window_end",
]
