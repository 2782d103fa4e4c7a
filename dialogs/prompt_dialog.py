"""Proactive prompts: a question an event asks ("Benefits enrollment just opened — would you
like to know more?"), and where its answers go.

The question is sent on the notification's card (dialogs/cards.py) by the delivery turn, which
then only queues it (storage: PromptStore) — it never writes the conversation's dialog state, so
it can neither break a dialog the user is in nor lose a race with the user's own turn. The
user's next turn takes the newest queued question up as a `ProactivePromptDialog` (silently,
when no dialog is active: the card already asked), or, if they are mid-dialog, after that
dialog ends (with a short reminder). Buttons on the card are answered whenever they are
clicked, through `PromptAnswers.record`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final

from botbuilder.core import TurnContext
from botbuilder.dialogs import DialogTurnResult, WaterfallDialog, WaterfallStepContext

from dialogs.cards import PROMPT_ANSWER, prompt_of
from dialogs.choice_prompt import CHOICE_PROMPT, Choice, ChoicePrompt, ChoicePromptOptions
from dialogs.interruptible import CommandHandler, InterruptibleDialog
from dialogs.services import DialogServices, conversation_key, sender_id

__all__ = [
    "PROMPT_DIALOG",
    "AnswerOutcome",
    "ProactivePromptDialog",
    "PromptAnswers",
    "PromptDialogOptions",
]

PROMPT_DIALOG: Final = "ProactivePromptDialog"
_STEPS: Final = "ProactivePromptDialog.steps"


class AnswerOutcome(Enum):
    RECORDED = "recorded"
    UNKNOWN_QUESTION = "unknown-question"
    NOT_A_CHOICE = "not-a-choice"
    NOT_A_RECIPIENT = "not-a-recipient"


@dataclass
class PromptDialogOptions:
    """Which question to wait for an answer to."""

    notification_id: str
    text: str
    choices: list[str] = field(default_factory=list)
    silent: bool = True
    """The card already asked (the newest question): wait without a message."""


_MESSAGES: Final[dict[AnswerOutcome, str]] = {
    AnswerOutcome.UNKNOWN_QUESTION: "Sorry, I couldn't record that answer: I don't know that "
    "question (any more).",
    AnswerOutcome.NOT_A_CHOICE: "Sorry, that is not one of the answers to that question.",
    AnswerOutcome.NOT_A_RECIPIENT: "Sorry, I couldn't record that answer: that question wasn't "
    "sent to you.",
}


class PromptAnswers:
    """Checks and records answers; the one way an answer reaches the store."""

    def __init__(self, services: DialogServices) -> None:
        self._services = services

    async def record(
        self, user_id: str, notification_id: str, choice: str
    ) -> tuple[AnswerOutcome, str | None]:
        """Record `choice` (matched case-insensitively) if the notification asked the user."""
        notification = await self._services.notifications.get(notification_id)
        prompt = prompt_of(notification.event) if notification is not None else None
        if prompt is None:
            return AnswerOutcome.UNKNOWN_QUESTION, None
        wanted = choice.strip().casefold()
        canonical = next((c for c in prompt[1] if c.casefold() == wanted), None)
        if canonical is None:
            return AnswerOutcome.NOT_A_CHOICE, None
        if not await self._services.inbox.contains(user_id, notification_id):
            return AnswerOutcome.NOT_A_RECIPIENT, None
        await self._services.prompts.record_answer(
            notification_id, user_id, canonical, self._services.clock()
        )
        return AnswerOutcome.RECORDED, canonical

    async def answer(self, context: TurnContext, notification_id: str, choice: str) -> None:
        """Record an answer given in this conversation and tell the user."""
        user_id = sender_id(context)
        if user_id is None:
            await context.send_activity("I can't tell who you are in this channel.")
            return
        outcome, canonical = await self.record(user_id, notification_id, choice)
        if outcome is AnswerOutcome.RECORDED:
            key = conversation_key(context.activity)
            if key is not None:
                await self._services.prompts.discard(key, notification_id)
            await context.send_activity(f"Thanks! I've noted your answer: **{canonical}**.")
        else:
            await context.send_activity(_MESSAGES[outcome])


class ProactivePromptDialog(InterruptibleDialog):
    """Waits for a typed answer to a question a notification asked."""

    help_text = (
        "A notification asked you a question. Answer with one of its choices (or use the "
        "buttons on its card), or type **cancel** to skip it."
    )

    def __init__(self, answers: PromptAnswers, *, commands: CommandHandler | None = None) -> None:
        super().__init__(PROMPT_DIALOG, commands=commands)
        self._answers = answers
        self.add_dialog(WaterfallDialog(_STEPS, [self._ask, self._record]))
        self.add_dialog(ChoicePrompt())
        self.initial_dialog_id = _STEPS

    async def _ask(self, step: WaterfallStepContext) -> DialogTurnResult:
        options: PromptDialogOptions = step.options
        return await step.prompt(
            CHOICE_PROMPT,
            ChoicePromptOptions(
                text=options.text,
                intro=f"Earlier I asked: {options.text}",
                choices=[
                    Choice(
                        choice,
                        submit={
                            "action": PROMPT_ANSWER,
                            "notificationId": options.notification_id,
                            "choice": choice,
                        },
                    )
                    for choice in options.choices
                ],
                silent=options.silent,
            ),
        )

    async def _record(self, step: WaterfallStepContext) -> DialogTurnResult:
        options: PromptDialogOptions = step.options
        await self._answers.answer(step.context, options.notification_id, str(step.result))
        return await step.end_dialog()
