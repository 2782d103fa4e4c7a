"""Calendar notifications: "Notify me about changes to my calendar" — Allowed / Not allowed.

`CalendarFlow.set` is what the card buttons do whenever they are clicked (and what `calendar on`
/ `calendar off` and opting out do); `CalendarDialog` asks the question when someone types
`calendar`, and ends up calling the same method. Who can have it: people with an Entra ID
account (Teams), on a Herald connected to Microsoft Graph; everybody else is told why not.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from botbuilder.core import TurnContext
from botbuilder.dialogs import DialogTurnResult, WaterfallDialog, WaterfallStepContext

from dialogs.choice_prompt import (
    CHOICE_PROMPT,
    Choice,
    ChoicePrompt,
    ChoicePromptOptions,
    choice_activity,
)
from dialogs.interruptible import CommandHandler, InterruptibleDialog
from dialogs.preference_cards import (
    ACTION_CALENDAR_ALLOW,
    ACTION_CALENDAR_DENY,
    CARD_VERSION,
    submit,
)
from dialogs.services import DialogServices, sender_id
from sources.graph_source import CalendarState, CalendarUnavailable
from storage.graph_subscriptions import is_entra_id

__all__ = [
    "ALLOWED",
    "CALENDAR_DIALOG",
    "NOT_ALLOWED",
    "CalendarDialog",
    "CalendarFlow",
    "calendar_card",
    "calendar_status",
]

CALENDAR_DIALOG: Final = "CalendarDialog"
_STEPS: Final = "CalendarDialog.steps"

ALLOWED: Final = "Allowed"
NOT_ALLOWED: Final = "Not allowed"
QUESTION: Final = "Notify me about changes to my calendar?"
EXPLANATION: Final = (
    "I can tell you here when a meeting in your Outlook calendar is added, moved, changed or "
    "cancelled. I only look at your calendar's changes, through Microsoft 365, and you can "
    "stop it any time (**calendar off**, or **stop** for everything)."
)
NO_ENTRA_ID: Final = (
    "Calendar notifications need a Microsoft 365 work account, as you have in Teams. In this "
    "chat (the Emulator or Web Chat) I can't tell whose calendar it would be, so I can't offer "
    "them here."
)
OPTED_OUT: Final = (
    "You've turned off all notifications, so I won't watch your calendar either. Type "
    "**start** first, then **calendar**."
)
SOURCE_OFF: Final = (
    "Calendar notifications are switched off on this Herald: it isn't connected to "
    "Microsoft 365 (Microsoft Graph) yet. Your administrator can set that up."
)
_UNKNOWN_SENDER: Final = "I can't tell who you are in this channel."


def _date(epoch: float | None) -> str:
    if epoch is None:
        return ""
    return datetime.fromtimestamp(epoch, UTC).strftime("%a %d %b %H:%M UTC")


def calendar_status(state: CalendarState) -> str:
    """The state in a few words ("on (renews itself; next by Tue 18 Jun 09:00 UTC)")."""
    if not state.available:
        return "not available on this Herald"
    if not state.eligible:
        return "not available in this chat"
    if state.status == "active":
        return f"on (renews itself; current subscription runs to {_date(state.expires_at)})"
    if state.status == "pending":
        problem = f": {state.last_error}" if state.last_error else ""
        return f"on, still being set up with Microsoft 365{problem}"
    return "off"


def calendar_card(state: CalendarState | None = None) -> dict[str, Any]:
    """The question with Allowed / Not allowed buttons (they work whenever clicked)."""
    body: list[dict[str, Any]] = [
        {
            "type": "TextBlock",
            "text": "Calendar notifications",
            "weight": "Bolder",
            "size": "Medium",
            "wrap": True,
        },
        {"type": "TextBlock", "text": EXPLANATION, "wrap": True},
    ]
    if state is not None:
        body.append(
            {
                "type": "TextBlock",
                "text": f"Right now: {calendar_status(state)}.",
                "isSubtle": True,
                "wrap": True,
            }
        )
    body.append({"type": "TextBlock", "text": QUESTION, "weight": "Bolder", "wrap": True})
    return {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "fallbackText": f"{EXPLANATION.replace('**', '')} {QUESTION} Reply allowed or not allowed.",
        "body": body,
        "actions": [
            submit(ALLOWED, {"action": ACTION_CALENDAR_ALLOW}, style="positive"),
            submit(NOT_ALLOWED, {"action": ACTION_CALENDAR_DENY}),
        ],
    }


def _choices() -> list[Choice]:
    return [
        Choice(
            ALLOWED,
            ["allow", "yes", "y", "on", "notify me", "yes please"],
            {"action": ACTION_CALENDAR_ALLOW},
        ),
        Choice(
            NOT_ALLOWED,
            ["not allowed", "don't allow", "dont allow", "no", "n", "off", "deny"],
            {"action": ACTION_CALENDAR_DENY},
        ),
    ]


class CalendarFlow:
    """Shows and changes whether Herald watches the person's calendar."""

    def __init__(self, services: DialogServices) -> None:
        self._services = services

    @property
    def available(self) -> bool:
        """This Herald is connected to Microsoft Graph."""
        calendar = self._services.calendar
        return calendar is not None and calendar.enabled

    def unavailable(self, user_id: str | None) -> str | None:
        """Why this person cannot have calendar notifications here, or None if they can."""
        calendar = self._services.calendar
        if user_id is None:
            return _UNKNOWN_SENDER
        if not is_entra_id(user_id):
            return NO_ENTRA_ID
        if calendar is None or not calendar.enabled:
            return SOURCE_OFF
        return None

    async def state(self, user_id: str) -> CalendarState | None:
        calendar = self._services.calendar
        return None if calendar is None else await calendar.state(user_id)

    async def note(self, user_id: str) -> str:
        """One line for the settings card and `status`."""
        calendar = self._services.calendar
        if calendar is None or not calendar.enabled:
            return "Calendar changes: not available on this Herald."
        if not is_entra_id(user_id):
            return "Calendar changes: not available in this chat (Teams only)."
        return f"Calendar changes: {calendar_status(await calendar.state(user_id))}."

    async def show(self, context: TurnContext) -> None:
        """The question as a card, without waiting for an answer (its buttons do the work)."""
        user_id = sender_id(context)
        reason = self.unavailable(user_id)
        if reason is not None or user_id is None:
            await context.send_activity(reason or _UNKNOWN_SENDER)
            return
        state = await self.state(user_id)
        await context.send_activity(
            choice_activity(
                f"{QUESTION} Reply **allowed** or **not allowed**.",
                _choices(),
                calendar_card(state),
            )
        )

    async def set(self, context: TurnContext, allowed: bool) -> None:
        user_id = sender_id(context)
        reason = self.unavailable(user_id) if allowed else None
        calendar = self._services.calendar
        if reason is not None or user_id is None:
            await context.send_activity(reason or _UNKNOWN_SENDER)
            return
        if calendar is None:
            await context.send_activity(SOURCE_OFF)
            return
        before = await calendar.state(user_id)
        try:
            after = await calendar.set_allowed(user_id, allowed)
        except CalendarUnavailable as exc:
            await context.send_activity(
                {"no-entra-id": NO_ENTRA_ID, "opted-out": OPTED_OUT}.get(exc.reason, SOURCE_OFF)
            )
            return
        await context.send_activity(self._outcome(before, after))

    @staticmethod
    def _outcome(before: CalendarState, after: CalendarState) -> str:
        if not after.allowed:
            if before.allowed or before.status != "off":
                return (
                    "OK: calendar notifications are off, and I've stopped watching your "
                    "calendar. Type **calendar** to turn them back on."
                )
            return "Calendar notifications are already off."
        if after.status == "active":
            if before.status == "active":
                return "Calendar notifications are already on. Type **calendar off** to stop them."
            return (
                "Done ✅ I'll tell you here when meetings in your calendar are added, moved, "
                "changed or cancelled. Type **calendar off** to stop."
            )
        problem = f" ({after.last_error})" if after.last_error else ""
        return (
            "I've noted that you want calendar notifications, but I couldn't set them up with "
            f"Microsoft 365 yet{problem}. I'll keep trying; type **calendar** to see how it's "
            "going."
        )

    async def opt_out(self, user_id: str) -> bool:
        """Stop watching the calendar of someone who opted out of everything; True if it was
        on. Never raises: opting out must work even when Graph does not answer."""
        calendar = self._services.calendar
        if calendar is None or not is_entra_id(user_id):
            return False
        try:
            before = await calendar.state(user_id)
            if not before.allowed:
                return False
            await calendar.set_allowed(user_id, False)
        except Exception:  # recorded by the source; maintenance finishes the removal
            return True
        return True


class CalendarDialog(InterruptibleDialog):
    """Asks "Notify me about changes to my calendar?" and saves the answer."""

    help_text = (
        "I'm asking whether I should tell you about changes to your calendar. Answer "
        "**allowed** or **not allowed**, or type **cancel**."
    )

    def __init__(self, flow: CalendarFlow, *, commands: CommandHandler | None = None) -> None:
        super().__init__(CALENDAR_DIALOG, commands=commands)
        self._flow = flow
        self.add_dialog(WaterfallDialog(_STEPS, [self._ask, self._save]))
        self.add_dialog(ChoicePrompt())
        self.initial_dialog_id = _STEPS

    async def _ask(self, step: WaterfallStepContext) -> DialogTurnResult:
        user_id = sender_id(step.context)
        reason = self._flow.unavailable(user_id)
        if reason is not None or user_id is None:
            await step.context.send_activity(reason or _UNKNOWN_SENDER)
            return await step.end_dialog()
        state = await self._flow.state(user_id)
        now = f" Right now: {calendar_status(state)}." if state is not None else ""
        return await step.prompt(
            CHOICE_PROMPT,
            ChoicePromptOptions(
                text=QUESTION,
                intro=f"{EXPLANATION}{now}\n\n{QUESTION} Reply **allowed** or **not allowed**.",
                choices=_choices(),
                card=calendar_card(state),
            ),
        )

    async def _save(self, step: WaterfallStepContext) -> DialogTurnResult:
        await self._flow.set(step.context, step.result == ALLOWED)
        return await step.end_dialog()
