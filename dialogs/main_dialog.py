"""The main dialog: reads a command from a message and answers it.

The opt-in, preference and history dialogs (a later issue) hang off this one; here it answers
`help` and `status` and says what it did not understand.
"""

from __future__ import annotations

from typing import Final

from botbuilder.dialogs import (
    ComponentDialog,
    DialogTurnResult,
    WaterfallDialog,
    WaterfallStepContext,
)

from proactive.identity import user_key
from storage.protocols import ConversationStore, InboxStore, UserStore

__all__ = ["HELP_TEXT", "MAIN_DIALOG", "MainDialog", "status_text"]

MAIN_DIALOG: Final = "MainDialog"
_ROUTE: Final = "MainDialog.route"

HELP_TEXT: Final = (
    "I'm Herald. I deliver notifications from your company's systems here, "
    "to your phone or to your browser, wherever you prefer.\n\n"
    "- **help**: what I can do\n"
    "- **status**: how I reach you and how many notifications you haven't read"
)


def status_text(user_id: str, opted_in: bool | None, conversations: int, unread: int) -> str:
    consent = {True: "on", False: "off (you opted out)", None: "on (default)"}[opted_in]
    return (
        f"Your Herald id: `{user_id}`\n\n"
        f"Notifications: {consent}.\n\n"
        f"I can reach you in {conversations} conversation(s).\n\n"
        f"Unread notifications: {unread}."
    )


class MainDialog(ComponentDialog):
    """Routes one message to the command it names."""

    def __init__(
        self, users: UserStore, conversations: ConversationStore, inbox: InboxStore
    ) -> None:
        super().__init__(MAIN_DIALOG)
        self._users = users
        self._conversations = conversations
        self._inbox = inbox
        self.add_dialog(WaterfallDialog(_ROUTE, [self._route]))
        self.initial_dialog_id = _ROUTE

    async def _route(self, step: WaterfallStepContext) -> DialogTurnResult:
        text = (step.context.activity.text or "").strip().lower()
        if text in ("help", "?", "hi", "hello"):
            await step.context.send_activity(HELP_TEXT)
        elif text == "status":
            await step.context.send_activity(await self._status(step))
        else:
            await step.context.send_activity(
                "I didn't understand that. Type **help** to see what I can do."
            )
        return await step.end_dialog()

    async def _status(self, step: WaterfallStepContext) -> str:
        user_id = user_key(step.context.activity)
        if user_id is None:
            return "I can't tell who you are in this channel."
        prefs, _ = await self._users.get_preferences(user_id)
        opted_in = prefs.get("optedIn") if prefs else None
        references = await self._conversations.for_users([user_id])
        unread = await self._inbox.list(user_id, unread_only=True, limit=1000)
        return status_text(user_id, opted_in, len(references.get(user_id, [])), len(unread))
