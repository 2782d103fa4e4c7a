"""Herald's ActivityHandler: remembers who it talks to, runs dialogs, renders notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from botbuilder.core import ActivityHandler, ConversationState, TurnContext, UserState
from botbuilder.core.teams import TeamsInfo
from botbuilder.dialogs import Dialog, DialogSet, DialogTurnStatus
from botbuilder.schema import ChannelAccount
from pydantic import ValidationError

from api.schemas import BroadcastValue, first_problem
from dialogs.cards import notification_activity
from proactive.adapter import BROADCAST_EVENT, BROADCAST_TURN_KEY, BroadcastTurn
from proactive.identity import stored_reference, tenant_of, user_key
from storage.protocols import ConversationStore, UserStore
from storage.records import UserRecord

__all__ = ["HeraldBot"]

log = logging.getLogger(__name__)

WELCOME_TEXT = (
    "Hi, I'm Herald 👋 From now on I'll bring you notifications from your company's systems "
    "right here. Type **help** to see what I can do."
)


class HeraldBot(ActivityHandler):
    """The bot of the Proactive Notifications sample, grown up.

    Inbound turns save the sender's conversation reference and run the main dialog with state
    in the store. BroadcastEvent turns (from the delivery worker, or posted to /api/messages)
    render the notification as an Adaptive Card, or edit the card sent for an earlier version.
    """

    def __init__(
        self,
        *,
        users: UserStore,
        conversations: ConversationStore,
        conversation_state: ConversationState,
        user_state: UserState,
        dialog: Dialog,
        alias_timeout: float = 5.0,
    ) -> None:
        self._users = users
        self._conversations = conversations
        self._conversation_state = conversation_state
        self._user_state = user_state
        self._dialog = dialog
        self._dialog_state = conversation_state.create_property("DialogState")
        self._alias_timeout = alias_timeout
        self._alias_known: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()

    async def aclose(self) -> None:
        for task in list(self._background):
            task.cancel()
        for task in list(self._background):
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def on_turn(self, turn_context: TurnContext) -> None:
        if BROADCAST_TURN_KEY in turn_context.turn_state:
            # Delivery turns touch no conversation state: they must stay cheap at fan-out.
            await super().on_turn(turn_context)
            return
        await self._remember(turn_context)
        await super().on_turn(turn_context)
        await self._conversation_state.save_changes(turn_context)
        await self._user_state.save_changes(turn_context)

    async def _remember(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        user_id = user_key(activity)
        if user_id is None or activity.conversation is None or not activity.service_url:
            return
        if activity.from_property is not None and activity.from_property.role == "bot":
            return
        await self._users.upsert_user(
            UserRecord(
                user_id=user_id,
                channel_id=str(activity.channel_id),
                name=activity.from_property.name if activity.from_property else None,
                tenant_id=tenant_of(activity),
            )
        )
        await self._conversations.upsert(stored_reference(activity, user_id))
        if activity.channel_id == "msteams" and user_id not in self._alias_known:
            self._alias_known.add(user_id)
            task = asyncio.create_task(self._learn_aliases(turn_context, user_id))
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _learn_aliases(self, turn_context: TurnContext, user_id: str) -> None:
        """Record the Teams roster's email and UPN so backends can address people by them."""
        try:
            async with asyncio.timeout(self._alias_timeout):
                member = await TeamsInfo.get_member(
                    turn_context, turn_context.activity.from_property.id
                )
            aliases = tuple(
                str(a)
                for a in (
                    getattr(member, "email", None),
                    getattr(member, "user_principal_name", None),
                )
                if a
            )
            if aliases:
                await self._users.upsert_user(
                    UserRecord(user_id=user_id, channel_id="msteams", aliases=aliases)
                )
        except Exception as exc:  # best effort: the roster may be unavailable
            self._alias_known.discard(user_id)
            log.info("could not read the roster entry of %s: %r", user_id, exc)

    async def on_message_activity(self, turn_context: TurnContext) -> None:
        dialogs = DialogSet(self._dialog_state)
        dialogs.add(self._dialog)
        dialog_context = await dialogs.create_context(turn_context)
        result = await dialog_context.continue_dialog()
        if result.status == DialogTurnStatus.Empty:
            await dialog_context.begin_dialog(self._dialog.id)

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(member.id != bot_id for member in members_added):
            await turn_context.send_activity(WELCOME_TEXT)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await turn_context.send_activity(WELCOME_TEXT)

    async def on_event_activity(self, turn_context: TurnContext) -> None:
        if turn_context.activity.name == BROADCAST_EVENT:
            await self._on_broadcast(turn_context)

    async def _on_broadcast(self, turn_context: TurnContext) -> None:
        turn: BroadcastTurn | None = turn_context.turn_state.get(BROADCAST_TURN_KEY)
        value: Any = turn_context.activity.value
        if turn is None:
            # Posted to /api/messages by a client: validate it like the API would.
            try:
                value = BroadcastValue.model_validate(value).document()
            except ValidationError as exc:
                problem = first_problem(exc)
                await turn_context.send_activity(
                    f"I could not show that notification: {problem.field}: {problem.message}"
                )
                return
        activity = notification_activity(value)
        if turn is not None and turn.update_activity_id:
            activity.id = turn.update_activity_id
            await turn_context.update_activity(activity)
            turn.activity_id = turn.update_activity_id
            return
        response = await turn_context.send_activity(activity)
        if turn is not None:
            turn.activity_id = response.id if response is not None else None
