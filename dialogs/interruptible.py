"""The base of every dialog that waits for an answer: `help` and `cancel` work inside it.

`help` explains what the dialog is asking and asks again; the dialog keeps waiting. `cancel`
ends every dialog of the conversation (and forgets questions queued behind them) and says so.
Other one-turn commands (`status`, `settings`, `mute x`...) are answered too, and then the
question is asked again: a question left open never locks anybody out of their settings.
An input that is one of the waiting question's answers is always taken as the answer.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Final

from botbuilder.core import TurnContext
from botbuilder.dialogs import ComponentDialog, DialogContext, DialogTurnResult, DialogTurnStatus
from botbuilder.schema import ActivityTypes

from dialogs.choice_prompt import normalise_text, recognize, waiting_choice
from dialogs.commands import Command, parse
from dialogs.help import HELP_TEXT

CommandHandler = Callable[[TurnContext, Command], Awaitable[bool]]
"""Answers a one-turn command; False if the command is not one of those."""

__all__ = [
    "CANCELLED_KEY",
    "CANCELLED_TEXT",
    "CANCEL_WORDS",
    "HELP_WORDS",
    "CommandHandler",
    "InterruptibleDialog",
    "was_cancelled",
]

HELP_WORDS: Final = frozenset({"help", "what", "huh"})
"""Normalised (see `normalise_text`); a bare "?" normalises to "" and counts as help too."""
CANCEL_WORDS: Final = frozenset({"cancel", "never mind", "nevermind", "quit", "exit", "abort"})
CANCELLED_KEY: Final = "herald.dialogsCancelled"
"""Turn state flag: the user cancelled; the bot ends all dialogs and drops queued prompts."""
CANCELLED_TEXT: Final = (
    "OK, I've cancelled that. Nothing was changed. Type **help** to see what I can do."
)


def was_cancelled(context: TurnContext) -> bool:
    return bool(context.turn_state.get(CANCELLED_KEY))


class InterruptibleDialog(ComponentDialog):
    """A ComponentDialog that answers `help` and `cancel` before its inner dialogs see them."""

    help_text: str = "I'm waiting for your answer to my question."

    def __init__(self, dialog_id: str, *, commands: CommandHandler | None = None) -> None:
        super().__init__(dialog_id)
        self._commands = commands

    async def on_continue_dialog(self, inner_dc: DialogContext) -> DialogTurnResult:
        interrupted = await self._interrupt(inner_dc)
        if interrupted is not None:
            return interrupted
        return await super().on_continue_dialog(inner_dc)

    async def _interrupt(self, inner_dc: DialogContext) -> DialogTurnResult | None:
        activity = inner_dc.context.activity
        if activity.type != ActivityTypes.message or not activity.text:
            return None
        waiting = waiting_choice(inner_dc)
        if waiting is not None and recognize(activity, waiting.options.choices) is not None:
            return None
        text = normalise_text(activity.text)
        if text in HELP_WORDS or text == "":
            await inner_dc.context.send_activity(f"{self.help_text}\n\n{HELP_TEXT}")
            await inner_dc.reprompt_dialog()
            return DialogTurnResult(DialogTurnStatus.Waiting)
        if text in CANCEL_WORDS:
            await inner_dc.cancel_all_dialogs()
            inner_dc.context.turn_state[CANCELLED_KEY] = True
            await inner_dc.context.send_activity(CANCELLED_TEXT)
            return DialogTurnResult(DialogTurnStatus.Cancelled)
        if self._commands is not None and await self._commands(
            inner_dc.context, parse(activity.text)
        ):
            await inner_dc.reprompt_dialog()
            return DialogTurnResult(DialogTurnStatus.Waiting)
        return None
