"""One small prompt for every question Herald asks: pick one of a few answers.

It takes the answer typed (case-insensitive, or the choice's number: ``1``, ``2``), tapped as a
suggested action (which types it), or clicked on an Adaptive Card (an ``Action.Submit`` whose
data is the choice's ``submit``); anything else is answered with the question again. Its state is
a dataclass in the dialog stack, so a question asked before a restart is still answered after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Final

from botbuilder.core import MessageFactory, TurnContext
from botbuilder.dialogs import (
    Dialog,
    DialogContext,
    DialogInstance,
    DialogState,
    DialogTurnResult,
)
from botbuilder.schema import (
    ActionTypes,
    Activity,
    ActivityTypes,
    Attachment,
    CardAction,
    InputHints,
    SuggestedActions,
)

from dialogs.cards import ADAPTIVE_CARD

__all__ = [
    "CHOICE_PROMPT",
    "Choice",
    "ChoicePrompt",
    "ChoicePromptOptions",
    "ChoicePromptState",
    "choice_activity",
    "normalise_text",
    "recognize",
    "submit_matches",
    "waiting_choice",
]

CHOICE_PROMPT: Final = "HeraldChoicePrompt"
_STATE: Final = "choicePrompt"

_MENTION: Final = re.compile(r"<at>.*?</at>", re.IGNORECASE | re.DOTALL)
_NUMBER: Final = re.compile(r"#?(\d{1,2})[.)]?")


@dataclass
class Choice:
    """One answer: what it is called, other words for it, and the card data that picks it."""

    value: str
    synonyms: list[str] = field(default_factory=list)
    submit: dict[str, Any] | None = None


@dataclass
class ChoicePromptOptions:
    """What to ask. With `silent`, the question (and its card) was already sent elsewhere."""

    text: str
    choices: list[Choice]
    intro: str | None = None
    """Sent instead of `text` when first asking (a welcome, a reminder); re-prompts use `text`."""
    card: dict[str, Any] | None = None
    silent: bool = False


@dataclass
class ChoicePromptState:
    """The prompt's state on the dialog stack."""

    options: ChoicePromptOptions
    retries: int = 0


def normalise_text(text: str | None) -> str:
    """Typed input, compared the way people mean it: no mention, case or trailing punctuation."""
    cleaned = _MENTION.sub(" ", text or "")
    return " ".join(cleaned.split()).strip(" .!?").lower()


def submit_matches(value: Any, submit: dict[str, Any] | None) -> bool:
    """Whether a card submit `value` carries every field of `submit` (inputs may add more)."""
    if not isinstance(value, dict) or not submit:
        return False
    return all(value.get(k) == v for k, v in submit.items())


def recognize(activity: Activity, choices: list[Choice]) -> Choice | None:
    """The choice `activity` picks, if it picks exactly one."""
    if isinstance(activity.value, dict):
        for choice in choices:
            if submit_matches(activity.value, choice.submit):
                return choice
    text = normalise_text(activity.text)
    if not text:
        return None
    for choice in choices:
        names = [choice.value, *choice.synonyms]
        if any(normalise_text(name) == text for name in names):
            return choice
    number = _NUMBER.fullmatch(text)
    if number is not None:
        index = int(number[1]) - 1
        return choices[index] if 0 <= index < len(choices) else None
    return None


def _numbered(choices: list[Choice]) -> str:
    return ", ".join(f"**{i}.** {c.value}" for i, c in enumerate(choices, start=1))


def choice_activity(
    text: str, choices: list[Choice], card: dict[str, Any] | None = None
) -> Activity:
    """A question with the choices as suggested actions (imBack: tapping one types it)."""
    activity = MessageFactory.text(text, input_hint=InputHints.expecting_input)
    activity.suggested_actions = SuggestedActions(
        actions=[
            CardAction(type=ActionTypes.im_back, title=c.value, value=c.value) for c in choices
        ]
    )
    if card is not None:
        activity.attachments = [Attachment(content_type=ADAPTIVE_CARD, content=card)]
    return activity


class ChoicePrompt(Dialog):
    """Waits for one of the choices in `ChoicePromptOptions`; ends with the chosen value."""

    def __init__(self, dialog_id: str = CHOICE_PROMPT) -> None:
        super().__init__(dialog_id)

    async def begin_dialog(
        self, dialog_context: DialogContext, options: object = None
    ) -> DialogTurnResult:
        if not isinstance(options, ChoicePromptOptions) or not options.choices:
            raise TypeError("ChoicePrompt needs ChoicePromptOptions with at least one choice")
        dialog_context.active_dialog.state[_STATE] = ChoicePromptState(options)
        if not options.silent:
            question = options.intro or options.text
            await dialog_context.context.send_activity(
                choice_activity(question, options.choices, options.card)
            )
        return Dialog.end_of_turn

    async def continue_dialog(self, dialog_context: DialogContext) -> DialogTurnResult:
        activity = dialog_context.context.activity
        if activity.type != ActivityTypes.message:
            return Dialog.end_of_turn
        state: ChoicePromptState = dialog_context.active_dialog.state[_STATE]
        choice = recognize(activity, state.options.choices)
        if choice is not None:
            return await dialog_context.end_dialog(choice.value)
        state.retries += 1
        await self._ask_again(dialog_context.context, state, retry=True)
        return Dialog.end_of_turn

    async def reprompt_dialog(self, context: TurnContext, instance: DialogInstance) -> None:
        await self._ask_again(context, instance.state[_STATE], retry=False)

    @staticmethod
    async def _ask_again(context: TurnContext, state: ChoicePromptState, *, retry: bool) -> None:
        options = state.options
        lead = "Sorry, I need one of the answers. " if retry else ""
        await context.send_activity(
            choice_activity(
                f"{lead}{options.text}\n\nReply {_numbered(options.choices)} "
                "(or type **cancel**).",
                options.choices,
            )
        )


def waiting_choice(dialog_context: DialogContext) -> ChoicePromptState | None:
    """The state of the ChoicePrompt the conversation is waiting on, however deeply nested."""
    stack = dialog_context.stack
    while stack:
        instance = stack[0]
        state = instance.state or {}
        if instance.id == CHOICE_PROMPT and isinstance(state.get(_STATE), ChoicePromptState):
            found: ChoicePromptState = state[_STATE]
            return found
        inner = state.get("dialogs")
        if not isinstance(inner, DialogState):
            return None
        stack = inner.dialog_stack
    return None
