"""Card buttons, handled whenever they are clicked.

An `Action.Submit` arrives as a message whose `value` is the button's data (plus the card's
inputs), as Teams, Web Chat and the Emulator send it. The data names an `action`; this module
does that action without needing any dialog to be waiting, so a card clicked after a restart,
or long after it was sent, still works. (When a dialog *is* waiting for exactly that click, the
bot lets the dialog take it; see HeraldBot.)
"""

from __future__ import annotations

from typing import Any

from botbuilder.core import TurnContext

from dialogs.calendar import CalendarFlow
from dialogs.cards import ACKNOWLEDGE, MARK_READ
from dialogs.consent import ConsentFlow
from dialogs.engagement_flow import EngagementFlow
from dialogs.history import HistoryFlow
from dialogs.preference_cards import (
    ACTION_CALENDAR_ALLOW,
    ACTION_CALENDAR_DENY,
    ACTION_KEEP,
    ACTION_MARK_ALL_READ,
    ACTION_OPT_IN,
    ACTION_OPT_OUT,
    ACTION_PROMPT_ANSWER,
    ACTION_SAVE_PREFERENCES,
    ACTION_SHOW_CALENDAR,
    ACTION_SHOW_PREFERENCES,
)
from dialogs.preferences_flow import PreferencesFlow
from dialogs.prompt_dialog import PromptAnswers

__all__ = ["CardActions", "card_action"]


def card_action(value: Any) -> str | None:
    """The `action` a card submit names, if the activity is one."""
    if isinstance(value, dict) and isinstance(value.get("action"), str):
        return str(value["action"])
    return None


class CardActions:
    """Does what a Herald card button says."""

    def __init__(
        self,
        consent: ConsentFlow,
        preferences: PreferencesFlow,
        answers: PromptAnswers,
        history: HistoryFlow,
        *,
        calendar: CalendarFlow | None = None,
        engagement: EngagementFlow | None = None,
    ) -> None:
        self._engagement = engagement
        self._consent = consent
        self._preferences = preferences
        self._answers = answers
        self._history = history
        self._calendar = calendar

    async def handle(self, context: TurnContext, value: dict[str, Any]) -> None:
        action = card_action(value)
        if action == ACTION_OPT_IN:
            await self._consent.set(context, True)
        elif action == ACTION_OPT_OUT:
            await self._consent.set(context, False)
        elif action == ACTION_KEEP:
            await context.send_activity("OK, your notifications stay on. Nothing changed.")
        elif action == ACTION_SAVE_PREFERENCES:
            await self._preferences.save_card(context, value)
        elif action == ACTION_SHOW_PREFERENCES:
            await self._preferences.show(context)
        elif action == ACTION_PROMPT_ANSWER:
            notification_id, choice = value.get("notificationId"), value.get("choice")
            if not isinstance(notification_id, str) or not isinstance(choice, str):
                await context.send_activity("Sorry, that button is missing its answer.")
                return
            await self._answers.answer(context, notification_id, choice)
        elif action == ACTION_MARK_ALL_READ:
            await self._history.mark_all_read(context)
        elif action in (MARK_READ, ACKNOWLEDGE) and self._engagement is not None:
            notification_id = value.get("notificationId")
            if not isinstance(notification_id, str) or not notification_id:
                await context.send_activity("Sorry, that button does not say which notification.")
            elif action == MARK_READ:
                await self._engagement.mark_read(context, notification_id)
            else:
                await self._engagement.acknowledge(context, notification_id)
        elif action in (ACTION_CALENDAR_ALLOW, ACTION_CALENDAR_DENY) and self._calendar:
            await self._calendar.set(context, action == ACTION_CALENDAR_ALLOW)
        elif action == ACTION_SHOW_CALENDAR and self._calendar is not None:
            await self._calendar.show(context)
        else:
            await context.send_activity(
                "Sorry, I don't know that button (it may be from an older version of me). "
                "Type **help** to see what I can do."
            )
