"""The main dialog: reads a command from a message and answers it, or starts the dialog it needs.

One-turn commands (help, status, settings, history, the text preference commands) are answered
here; `start` / `stop` begin the consent dialogs, and the bot begins this dialog with
`MainOptions` to welcome someone or to take up a question a notification asked.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from botbuilder.core import TurnContext
from botbuilder.dialogs import (
    ComponentDialog,
    DialogTurnResult,
    WaterfallDialog,
    WaterfallStepContext,
)

from dialogs.calendar import CALENDAR_DIALOG, CalendarDialog, CalendarFlow
from dialogs.commands import Command, Verb, parse
from dialogs.consent import (
    OPT_IN_DIALOG,
    OPT_OUT_DIALOG,
    WELCOME_TEXT,
    ConsentFlow,
    OptInDialog,
    OptInOptions,
    OptOutDialog,
)
from dialogs.help import HELP_TEXT
from dialogs.history import HistoryFlow
from dialogs.preferences_flow import PreferencesFlow
from dialogs.prompt_dialog import (
    PROMPT_DIALOG,
    ProactivePromptDialog,
    PromptAnswers,
    PromptDialogOptions,
)
from dialogs.services import DialogServices, sender_id
from errors import NotFound
from preferences.service import consent_text, summary_lines

__all__ = ["HELP_TEXT", "MAIN_DIALOG", "MainDialog", "MainOptions", "status_text"]

MAIN_DIALOG: Final = "MainDialog"
_ROUTE: Final = "MainDialog.route"

_SETTING_VERBS: Final = frozenset(
    {Verb.MUTE, Verb.UNMUTE, Verb.QUIET, Verb.QUIET_OFF, Verb.TIME_ZONE, Verb.CHANNEL}
)
_NOT_UNDERSTOOD: Final = "I didn't understand that. Type **help** to see what I can do."


def status_text(
    user_id: str,
    opted_in: bool | None,
    conversations: int,
    unread: int,
    *,
    opt_in_required: bool = False,
    settings: list[str] | None = None,
) -> str:
    consent = consent_text(opted_in, opt_in_required=opt_in_required)
    lines = [
        f"Your Herald id: `{user_id}`",
        f"Notifications: {consent}.",
        f"I can reach you in {conversations} conversation(s).",
        f"Unread notifications: {unread}.",
    ]
    if settings:
        lines.append("Settings: " + "; ".join(settings[1:]) + ".")
    return "\n\n".join(lines)


@dataclass
class MainOptions:
    """Why the main dialog starts when it is not simply to answer a message."""

    welcome: bool = False
    """A conversation with the bot just opened: greet, and ask for consent if never asked."""
    first_contact: bool = False
    """This message is the first Herald hears from this person (no welcome was sent)."""
    prompt: PromptDialogOptions | None = None
    """Take up a question a notification asked."""


class MainDialog(ComponentDialog):
    """Routes one message to the command it names."""

    def __init__(
        self,
        services: DialogServices,
        *,
        consent: ConsentFlow,
        preferences: PreferencesFlow,
        history: HistoryFlow,
        answers: PromptAnswers,
        calendar: CalendarFlow | None = None,
    ) -> None:
        super().__init__(MAIN_DIALOG)
        self._services = services
        self._consent = consent
        self._preferences = preferences
        self._history = history
        self._calendar = calendar
        self.add_dialog(WaterfallDialog(_ROUTE, [self._route, self._done]))
        self.add_dialog(OptInDialog(services, consent, commands=self.answer_command))
        self.add_dialog(OptOutDialog(services, consent, commands=self.answer_command))
        self.add_dialog(ProactivePromptDialog(answers, commands=self.answer_command))
        if calendar is not None:
            self.add_dialog(CalendarDialog(calendar, commands=self.answer_command))
        self.initial_dialog_id = _ROUTE

    async def _route(self, step: WaterfallStepContext) -> DialogTurnResult:
        options = step.options if isinstance(step.options, MainOptions) else MainOptions()
        if options.prompt is not None:
            return await step.begin_dialog(PROMPT_DIALOG, options.prompt)
        if options.welcome:
            return await self._welcome(step)
        command = parse(step.context.activity.text)
        if options.first_contact and command.verb in (Verb.GREETING, Verb.UNKNOWN):
            # Someone new whose client sent no conversationUpdate (Direct Line, some Web Chat
            # set-ups): their "hi" gets the welcome, with the consent question. A first message
            # that is a command is simply answered; `start` asks any time.
            return await self._welcome(step)
        started = await self._run(step, command)
        if started is not None:
            return started
        return await step.end_dialog()

    async def _done(self, step: WaterfallStepContext) -> DialogTurnResult:
        return await step.end_dialog()

    async def _never_asked(self, step: WaterfallStepContext) -> bool:
        user_id = sender_id(step.context)
        if user_id is None:
            return False
        try:
            return (await self._services.preferences.read(user_id)).prefs.opted_in is None
        except NotFound:
            return False

    async def _opted_in(self, step: WaterfallStepContext) -> bool:
        user_id = sender_id(step.context)
        if user_id is None:
            return False
        try:
            return (await self._services.preferences.read(user_id)).prefs.opted_in is True
        except NotFound:
            return False

    async def _welcome(self, step: WaterfallStepContext) -> DialogTurnResult:
        if await self._never_asked(step):
            return await step.begin_dialog(OPT_IN_DIALOG, OptInOptions(welcome=True))
        await step.context.send_activity(WELCOME_TEXT)
        return await step.end_dialog()

    async def _run(self, step: WaterfallStepContext, command: Command) -> DialogTurnResult | None:
        """Answer a one-turn command, or begin the dialog it needs (returned)."""
        context = step.context
        verb = command.verb
        if await self.answer_command(context, command):
            return None
        if verb in (Verb.HELP, Verb.GREETING):
            await context.send_activity(HELP_TEXT)
        elif verb is Verb.OPT_IN:
            if await self._opted_in(step):
                await context.send_activity(
                    "You're already getting notifications. Type **settings** to change them."
                )
            elif await self._never_asked(step):
                return await step.begin_dialog(OPT_IN_DIALOG, OptInOptions())
            else:
                # They said no (or stop) before, and `start` is what we told them to type to
                # have notifications back: it is the answer, not a reason to ask again.
                await self._consent.set(context, True)
        elif verb is Verb.OPT_OUT:
            return await step.begin_dialog(OPT_OUT_DIALOG)
        elif verb is Verb.CALENDAR and self._calendar is not None:
            return await step.begin_dialog(CALENDAR_DIALOG)
        elif verb is Verb.CANCEL:
            await context.send_activity("There's nothing to cancel.")
        else:
            await context.send_activity(_NOT_UNDERSTOOD)
        return None

    async def answer_command(self, context: TurnContext, command: Command) -> bool:
        """Answer a command that needs no dialog (status, settings, history, a setting).

        Also what a waiting dialog does with such a command before asking its question again,
        so that a pending question never locks anybody out of their settings.
        """
        verb = command.verb
        if verb is Verb.STATUS:
            await context.send_activity(await self._status(context))
        elif verb is Verb.PREFERENCES:
            await self._preferences.show(context)
        elif verb is Verb.HISTORY:
            await self._history.show(context)
        elif verb is Verb.INBOX:
            await self._history.inbox(context)
        elif verb is Verb.MARK_ALL_READ:
            await self._history.mark_all_read(context)
        elif verb in _SETTING_VERBS:
            await self._preferences.apply_text(context, command)
        elif verb is Verb.CALENDAR and command.on is not None and self._calendar is not None:
            await self._calendar.set(context, command.on)
        else:
            return False
        return True

    async def _status(self, context: TurnContext) -> str:
        user_id = sender_id(context)
        if user_id is None:
            return "I can't tell who you are in this channel."
        try:
            prefs = (await self._services.preferences.read(user_id)).prefs
        except NotFound:
            return "I don't know you yet. Say **hi** first."
        references = await self._services.conversations.for_users([user_id])
        # The same count the inbox page and every push's badge show (read anywhere counts).
        unread = (await self._services.inbox.unread_counts([user_id])).get(user_id, 0)
        required = self._services.policy.opt_in_required
        settings = summary_lines(prefs, opt_in_required=required)
        if self._calendar is not None and self._calendar.available:
            settings.append((await self._calendar.note(user_id)).rstrip("."))
        return status_text(
            user_id,
            prefs.opted_in,
            len(references.get(user_id, [])),
            unread,
            opt_in_required=required,
            settings=settings,
        )
