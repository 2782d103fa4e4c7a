"""Consent: the opt-in question, the opt-out confirmation, and the one place consent is saved.

`ConsentFlow.set` is what a consent button does whenever it is clicked; the two dialogs ask the
question when someone arrives or types `start` / `stop`, and end up calling the same method.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from botbuilder.core import TurnContext
from botbuilder.dialogs import DialogTurnResult, WaterfallDialog, WaterfallStepContext

from dialogs.calendar import CalendarFlow
from dialogs.channel_links import link_markdown, links_to_offer
from dialogs.choice_prompt import CHOICE_PROMPT, Choice, ChoicePrompt, ChoicePromptOptions
from dialogs.interruptible import CommandHandler, InterruptibleDialog
from dialogs.preference_cards import (
    ACTION_KEEP,
    ACTION_OPT_IN,
    ACTION_OPT_OUT,
    consent_card,
    opt_out_card,
)
from dialogs.services import DialogServices, sender_id
from errors import NotFound

__all__ = [
    "OPT_IN_DIALOG",
    "OPT_OUT_DIALOG",
    "WELCOME_TEXT",
    "ConsentFlow",
    "OptInDialog",
    "OptInOptions",
    "OptOutDialog",
]

OPT_IN_DIALOG: Final = "OptInDialog"
OPT_OUT_DIALOG: Final = "OptOutDialog"
_OPT_IN_STEPS: Final = "OptInDialog.steps"
_OPT_OUT_STEPS: Final = "OptOutDialog.steps"

WELCOME_TEXT: Final = (
    "Hi, I'm Herald 👋 From now on I can bring you notifications from your company's systems "
    "right here. Type **help** to see what I can do."
)
_YES: Final = "Yes"
_NO: Final = "No"
_YES_WORDS: Final = ["y", "yes please", "sure", "ok", "okay", "opt in", "start", "notify me"]
_NO_WORDS: Final = ["n", "no thanks", "nope"]


@dataclass
class OptInOptions:
    """How to ask: as the welcome of someone new, or because they typed `start`."""

    welcome: bool = False


class ConsentFlow:
    """Saves a yes or no and says what it means; used by buttons and dialogs alike."""

    def __init__(self, services: DialogServices) -> None:
        self._services = services

    async def set(self, context: TurnContext, opted_in: bool) -> None:
        user_id = sender_id(context)
        if user_id is None:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        try:
            update = await self._services.preferences.update(
                user_id, lambda prefs: prefs.model_copy(update={"opted_in": opted_in})
            )
        except NotFound:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        if opted_in:
            text = (
                "You're in ✅ I'll send you notifications here. Type **settings** to choose "
                "channels, mute types or set quiet hours."
                if update.changed
                else "You're already getting notifications. Type **settings** to change them."
            )
            if update.changed:  # channels set up outside the chat, offered once, on yes
                links = await links_to_offer(self._services, user_id, update.after)
                text += "".join(f"\n\n{link_markdown(link)}" for link in links)
        else:
            text = (
                "Done: I've turned off all notifications. Type **start** whenever you want them "
                "back."
                if update.changed
                else "Your notifications are already off. Type **start** to turn them back on."
            )
            # Opting out of everything also ends the watch on their calendar (Microsoft Graph).
            if await CalendarFlow(self._services).opt_out(user_id):
                text += " I've also stopped watching your calendar (type **calendar** to resume)."
        await context.send_activity(text)


class OptInDialog(InterruptibleDialog):
    """Explains what Herald sends and asks for consent."""

    help_text = (
        "I'm asking whether you want notifications from me. Answer **yes** or **no** (you can "
        "change your mind any time with **start** and **stop**), or type **cancel** to decide "
        "later."
    )

    def __init__(
        self,
        services: DialogServices,
        consent: ConsentFlow,
        *,
        commands: CommandHandler | None = None,
    ) -> None:
        super().__init__(OPT_IN_DIALOG, commands=commands)
        self._services = services
        self._consent = consent
        self.add_dialog(WaterfallDialog(_OPT_IN_STEPS, [self._ask, self._save]))
        self.add_dialog(ChoicePrompt())
        self.initial_dialog_id = _OPT_IN_STEPS

    async def _ask(self, step: WaterfallStepContext) -> DialogTurnResult:
        options = step.options if isinstance(step.options, OptInOptions) else OptInOptions()
        required = self._services.policy.opt_in_required
        lead = "Hi, I'm Herald 👋 " if options.welcome else ""
        question = "Would you like to receive notifications from me?"
        return await step.prompt(
            CHOICE_PROMPT,
            ChoicePromptOptions(
                text=question,
                intro=(
                    f"{lead}I can bring you notifications from your company's systems here"
                    f"{' once you say yes' if required else ''}. {question} "
                    "Reply **yes** or **no**, or type **help**."
                ),
                choices=[
                    Choice(_YES, _YES_WORDS, {"action": ACTION_OPT_IN}),
                    Choice(_NO, _NO_WORDS, {"action": ACTION_OPT_OUT}),
                ],
                card=consent_card(opt_in_required=required),
            ),
        )

    async def _save(self, step: WaterfallStepContext) -> DialogTurnResult:
        await self._consent.set(step.context, step.result == _YES)
        return await step.end_dialog()


class OptOutDialog(InterruptibleDialog):
    """Confirms before turning every notification off."""

    help_text = (
        "I'm checking before I turn off all your notifications. Answer **yes** to turn them off "
        "or **no** to keep them, or type **cancel**."
    )

    def __init__(
        self,
        services: DialogServices,
        consent: ConsentFlow,
        *,
        commands: CommandHandler | None = None,
    ) -> None:
        super().__init__(OPT_OUT_DIALOG, commands=commands)
        self._services = services
        self._consent = consent
        self.add_dialog(WaterfallDialog(_OPT_OUT_STEPS, [self._confirm, self._save]))
        self.add_dialog(ChoicePrompt())
        self.initial_dialog_id = _OPT_OUT_STEPS

    async def _confirm(self, step: WaterfallStepContext) -> DialogTurnResult:
        user_id = sender_id(step.context)
        if user_id is not None:
            current = await self._services.preferences.read(user_id)
            if current.prefs.opted_in is False:
                await step.context.send_activity(
                    "Your notifications are already off. Type **start** to turn them back on."
                )
                return await step.end_dialog()
        question = "Turn off all notifications?"
        return await step.prompt(
            CHOICE_PROMPT,
            ChoicePromptOptions(
                text=question,
                intro=(
                    f"{question} You won't get anything from me until you type **start**. "
                    "Reply **yes** or **no**."
                ),
                choices=[
                    Choice(
                        _YES, ["y", "turn them off", "stop", "opt out"], {"action": ACTION_OPT_OUT}
                    ),
                    Choice(_NO, ["n", "keep them", "keep"], {"action": ACTION_KEEP}),
                ],
                card=opt_out_card(),
            ),
        )

    async def _save(self, step: WaterfallStepContext) -> DialogTurnResult:
        if step.result == _YES:
            await self._consent.set(step.context, False)
        else:
            await step.context.send_activity("OK, your notifications stay on. Nothing changed.")
        return await step.end_dialog()
