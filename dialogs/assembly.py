"""The bot's conversation flows, built once and shared: the main dialog (typed commands) and
the card actions (buttons on Adaptive Cards) run the same consent, preferences, history, prompt
answer, calendar and engagement flows, so a button and a command never behave differently."""

from __future__ import annotations

from dataclasses import dataclass

from dialogs.calendar import CalendarFlow
from dialogs.card_actions import CardActions
from dialogs.consent import ConsentFlow
from dialogs.engagement_flow import EngagementFlow
from dialogs.history import HistoryFlow
from dialogs.main_dialog import MainDialog
from dialogs.preferences_flow import PreferencesFlow
from dialogs.prompt_dialog import PromptAnswers
from dialogs.services import DialogServices
from engagement import EngagementService

__all__ = ["Dialogs", "build_dialogs"]


@dataclass(frozen=True, slots=True)
class Dialogs:
    main: MainDialog
    card_actions: CardActions
    engagement: EngagementFlow


def build_dialogs(services: DialogServices, engagement: EngagementService) -> Dialogs:
    consent = ConsentFlow(services)
    preferences = PreferencesFlow(services)
    history = HistoryFlow(services)
    answers = PromptAnswers(services)
    calendar = CalendarFlow(services)
    engagement_flow = EngagementFlow(services, engagement)
    return Dialogs(
        main=MainDialog(
            services,
            consent=consent,
            preferences=preferences,
            history=history,
            answers=answers,
            calendar=calendar,
        ),
        card_actions=CardActions(
            consent, preferences, answers, history, calendar=calendar, engagement=engagement_flow
        ),
        engagement=engagement_flow,
    )
