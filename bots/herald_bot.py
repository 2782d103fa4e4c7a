"""Herald's ActivityHandler: remembers who it talks to, runs dialogs, renders notifications."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections import OrderedDict
from http import HTTPStatus
from typing import Any, Final

from botbuilder.core import (
    ActivityHandler,
    ConversationState,
    InvokeResponse,
    Storage,
    TurnContext,
    UserState,
)
from botbuilder.core.teams import TeamsInfo
from botbuilder.dialogs import Dialog, DialogContext, DialogSet
from botbuilder.schema import Activity, ChannelAccount
from pydantic import ValidationError

from bots.teams import TeamChannels
from dialogs.card_actions import CardActions, card_action
from dialogs.cards import CardState, notification_activity, prompt_of
from dialogs.choice_prompt import submit_matches, waiting_choice
from dialogs.consent import WELCOME_TEXT
from dialogs.engagement_flow import READ_RECEIPT, EngagementFlow
from dialogs.interruptible import was_cancelled
from dialogs.main_dialog import MainOptions
from dialogs.prompt_dialog import PromptDialogOptions
from dialogs.services import DialogServices, conversation_key
from notifications.event import BroadcastValue, read_stored
from notifications.problems import first_problem
from proactive.adapter import BROADCAST_EVENT, BROADCAST_TURN_KEY, BroadcastTurn
from proactive.encoding import clone
from proactive.identity import stored_reference, tenant_of, user_key
from proactive.tenants import TenantServiceUrls
from storage.protocols import ConversationStore, UserStore
from storage.records import PendingPrompt, UserRecord

__all__ = ["WELCOME_TEXT", "HeraldBot"]

log = logging.getLogger(__name__)

_FIRST_CONTACT: Final = "herald.firstContact"
"""Turn state: the sender was not known before this turn."""
_ADAPTIVE_CARD_ACTION: Final = "adaptiveCard/action"
_PERSONAL: Final = frozenset({None, "", "personal"})
"""Conversation types where the bot talks to one person (Emulator and Web Chat give none)."""
_WELCOME_WINDOW: Final = 60.0
"""Seconds after a welcome in which another install or join of that conversation greets no
more: Teams (and Agents Playground) send `installationUpdate` and `conversationUpdate` within
the same millisecond, and a reload of the Playground sends both again."""
_WELCOMED_PREFIX: Final = "herald/welcomed/"


class HeraldBot(ActivityHandler):
    """The bot of the Proactive Notifications sample, grown up.

    Inbound turns save the sender's conversation reference and run the main dialog with state
    in the store. BroadcastEvent turns (from the delivery worker, or posted to /api/messages)
    render the notification as an Adaptive Card, or edit the card sent for an earlier version;
    when the event asks a question (`prompt`), the question is queued for the user's next turn
    (dialogs/prompt_dialog.py says why it is not begun right there).
    """

    def __init__(
        self,
        *,
        users: UserStore,
        conversations: ConversationStore,
        conversation_state: ConversationState,
        user_state: UserState,
        dialog: Dialog,
        card_actions: CardActions,
        services: DialogServices,
        alias_timeout: float = 5.0,
        tenants: TenantServiceUrls | None = None,
        teams: TeamChannels | None = None,
        storage: Storage | None = None,
        engagement: EngagementFlow | None = None,
    ) -> None:
        self._engagement = engagement
        self._tenants = tenants
        self._teams = teams
        self._users = users
        self._storage = storage
        self._conversations = conversations
        self._conversation_state = conversation_state
        self._user_state = user_state
        self._dialog = dialog
        self._card_actions = card_actions
        self._services = services
        self._dialog_state = conversation_state.create_property("DialogState")
        self._dialogs = DialogSet(self._dialog_state)
        self._dialogs.add(dialog)
        self._alias_timeout = alias_timeout
        self._alias_known: set[str] = set()
        self._zone_checked: set[str] = set()
        self._background: set[asyncio.Task[None]] = set()
        self._cards: OrderedDict[int, tuple[object, BroadcastValue, Activity]] = OrderedDict()

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
        try:
            await super().on_turn(turn_context)
        except Exception:
            await self._forget_dialogs(turn_context)
            raise
        await self._conversation_state.save_changes(turn_context)
        await self._user_state.save_changes(turn_context)

    async def _forget_dialogs(self, turn_context: TurnContext) -> None:
        """After a failed turn, start the conversation's dialogs afresh rather than fail the
        same way on every later turn (state is not saved when a turn raises)."""
        log.warning("a turn failed; starting the dialogs of its conversation afresh")
        with contextlib.suppress(Exception):
            await self._conversation_state.load(turn_context, force=True)
            await self._dialog_state.delete(turn_context)
            await self._conversation_state.save_changes(turn_context, force=True)

    async def _remember(self, turn_context: TurnContext) -> None:
        activity = turn_context.activity
        tenant = tenant_of(activity)
        if self._tenants is not None and activity.channel_id == "msteams" and tenant:
            # Where Herald opens chats with this tenant's people who never wrote (delivery/
            # reach.py): the tenant's connector, as its latest activity says.
            await self._tenants.learn(tenant, str(activity.service_url or ""))
        user_id = user_key(activity)
        if user_id is None or activity.conversation is None or not activity.service_url:
            return
        if activity.from_property is not None and activity.from_property.role == "bot":
            return
        created = await self._users.upsert_user(
            UserRecord(
                user_id=user_id,
                channel_id=str(activity.channel_id),
                name=activity.from_property.name if activity.from_property else None,
                tenant_id=tenant_of(activity),
            )
        )
        turn_context.turn_state[_FIRST_CONTACT] = created
        if activity.conversation.conversation_type in _PERSONAL:
            # Only a chat with the bot alone is where this person's notifications go; a team
            # channel or group chat they wrote in is everybody's (channels are stored per team:
            # bots/teams.py).
            await self._conversations.upsert(stored_reference(activity, user_id))
        zone = activity.local_timezone
        if zone and user_id not in self._zone_checked:
            # The client's zone is a guess for quiet hours; a zone the user chose always wins.
            self._zone_checked.add(user_id)
            await self._services.preferences.adopt_time_zone(user_id, str(zone))
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
        """Card clicks first (whether or not a dialog waits for them), then the dialog the
        user is in, then a question a notification asked, then a new command."""
        dialog_context = await self._dialogs.create_context(turn_context)
        value = turn_context.activity.value
        in_dialog = dialog_context.active_dialog is not None
        if card_action(value) is not None:
            waiting = waiting_choice(dialog_context)
            if waiting is not None and any(
                submit_matches(value, choice.submit) for choice in waiting.options.choices
            ):
                await dialog_context.continue_dialog()
            else:
                await self._card_actions.handle(turn_context, value)
        elif dialog_context.active_dialog is not None:
            await dialog_context.continue_dialog()
        else:
            prompt = await self._next_prompt(turn_context)
            if prompt is not None:
                # The card asked already: wait silently, and let this message answer it.
                in_dialog = True
                await dialog_context.begin_dialog(self._dialog.id, MainOptions(prompt=prompt))
                await dialog_context.continue_dialog()
            else:
                first = bool(turn_context.turn_state.get(_FIRST_CONTACT))
                await dialog_context.begin_dialog(
                    self._dialog.id, MainOptions(first_contact=first)
                )
        await self._after_dialogs(turn_context, dialog_context, reminder=in_dialog)

    async def _after_dialogs(
        self, turn_context: TurnContext, dialog_context: DialogContext, *, reminder: bool
    ) -> None:
        """`cancel` ends everything, queued questions included; otherwise, once no dialog is
        active, take up the newest question still waiting: with a reminder if it waited for a
        dialog that ended in this turn, silently (its card is on screen) if not."""
        key = conversation_key(turn_context.activity)
        if was_cancelled(turn_context):
            await dialog_context.cancel_all_dialogs()
            if key is not None:
                await self._services.prompts.clear(key)
            return
        if dialog_context.active_dialog is not None:
            return
        prompt = await self._next_prompt(turn_context)
        if prompt is not None:
            prompt.silent = not reminder
            await dialog_context.begin_dialog(self._dialog.id, MainOptions(prompt=prompt))

    async def _next_prompt(self, turn_context: TurnContext) -> PromptDialogOptions | None:
        """The newest question queued for the sender here that they have not answered yet."""
        key = conversation_key(turn_context.activity)
        user_id = user_key(turn_context.activity)
        if key is None or user_id is None:
            return None
        prompts = self._services.prompts
        while (pending := await prompts.take_newest(key, user_id)) is not None:
            if await prompts.answer_of(pending.notification_id, user_id) is None:
                return PromptDialogOptions(
                    notification_id=pending.notification_id,
                    text=pending.text,
                    choices=list(pending.choices),
                )
        return None

    async def on_conversation_update_activity(self, turn_context: TurnContext) -> None:
        if self._teams is not None:
            await self._teams.on_activity(turn_context)
        await super().on_conversation_update_activity(turn_context)

    async def on_installation_update(self, turn_context: TurnContext) -> None:
        if self._teams is not None:
            await self._teams.on_activity(turn_context)
        await super().on_installation_update(turn_context)

    async def on_members_added_activity(
        self, members_added: list[ChannelAccount], turn_context: TurnContext
    ) -> None:
        bot_id = turn_context.activity.recipient.id if turn_context.activity.recipient else None
        if any(member.id != bot_id for member in members_added):
            await self._welcome(turn_context)

    async def on_installation_update_add(self, turn_context: TurnContext) -> None:
        await self._welcome(turn_context)

    async def _welcome(self, turn_context: TurnContext) -> None:
        """Greet; in a 1:1 chat with someone never asked, the greeting asks for consent."""
        if not await self._claim_welcome(turn_context):
            return  # the other of the pair of install activities greets
        conversation = turn_context.activity.conversation
        if conversation is not None and conversation.conversation_type not in _PERSONAL:
            await turn_context.send_activity(WELCOME_TEXT)
            return
        dialog_context = await self._dialogs.create_context(turn_context)
        if dialog_context.active_dialog is not None:
            return  # already greeted (Teams sends both conversationUpdate and installationUpdate)
        await dialog_context.begin_dialog(self._dialog.id, MainOptions(welcome=True))

    async def _claim_welcome(self, turn_context: TurnContext) -> bool:
        """Whether this turn is the one that greets: a "welcomed" marker per conversation in
        the bot state store, written conditionally so that of two concurrent turns exactly one
        wins, on every backend.

        Teams sends the pair `installationUpdate` + `conversationUpdate`; the Emulator and Web
        Chat only the latter. So a turn does not greet when the *other* kind of activity greeted
        this conversation within the last minute; one of the same kind (the Emulator reopening
        a conversation, a Playground reload) greets again, once per pair.

        The marker is written with the etag it was read with, or, when there is none yet, with
        a fresh etag of our own: the SQLite and Cosmos DB stores create a missing document
        under any etag but refuse (KeyError) a write whose etag is not the stored one, so the
        turn that loses the race to create or renew the marker does not greet. The conversation
        state is not touched before the claim, so the losing turn writes no dialog state over
        the winner's waiting consent question either.
        """
        if self._storage is None:
            return True
        key = conversation_key(turn_context.activity)
        if key is None:
            return True
        marker = _WELCOMED_PREFIX + key
        now = self._services.clock()
        stored = (await self._storage.read([marker])).get(marker)
        etag: str | None = None
        kind = str(turn_context.activity.type)
        if isinstance(stored, dict):
            at = stored.get("at")
            recent = isinstance(at, int | float) and 0 <= now - float(at) < _WELCOME_WINDOW
            if recent and stored.get("kind") != kind:
                return False  # the other activity of the pair greeted
            etag = str(stored.get("e_tag") or "") or None
        try:
            await self._storage.write(
                {marker: {"at": now, "kind": kind, "e_tag": etag or uuid.uuid4().hex}}
            )
        except KeyError:
            return False
        return True

    async def on_invoke_activity(self, turn_context: TurnContext) -> InvokeResponse | None:
        """Herald's cards post Action.Submit (message activities); it implements no Universal
        Actions. So `adaptiveCard/action` gets the answer the SDK gives a bot that does not
        handle it (501) without the SDK parsing the value first: that parsing raises on
        malformed values (an `action` that is a string) and its error answers hold a Python
        exception that cannot be serialised (a 500 with `expectReplies`)."""
        if turn_context.activity.name == _ADAPTIVE_CARD_ACTION:
            return InvokeResponse(status=int(HTTPStatus.NOT_IMPLEMENTED))
        response: InvokeResponse | None = await super().on_invoke_activity(turn_context)
        return response

    async def on_teams_signin_token_exchange(self, turn_context: TurnContext) -> None:
        """ActivityHandler sends `signin/tokenExchange` invokes here but only
        TeamsActivityHandler defines it. Herald signs nobody in: the SDK's answer to a sign-in
        invoke nobody handles (501), instead of an AttributeError in the turn."""
        await self.on_sign_in_invoke(turn_context)

    async def on_event_activity(self, turn_context: TurnContext) -> None:
        if turn_context.activity.name == BROADCAST_EVENT:
            await self._on_broadcast(turn_context)
            await self._queue_prompt(turn_context)
        elif turn_context.activity.name == READ_RECEIPT and self._engagement is not None:
            await self._engagement.read_receipt(turn_context)

    async def _on_broadcast(self, turn_context: TurnContext) -> None:
        turn: BroadcastTurn | None = turn_context.turn_state.get(BROADCAST_TURN_KEY)
        value: object = turn_context.activity.value
        if turn is None:
            # Posted to /api/messages by a client: validate it like the API would.
            try:
                notice = BroadcastValue.model_validate(value)
            except ValidationError as exc:
                problem = first_problem(exc)
                await turn_context.send_activity(
                    f"I could not show that notification: {problem.field}: {problem.message}"
                )
                return
            activity = notification_activity(notice)
        else:
            notice, activity = self._rendered(value)
        if turn is not None and turn.update_activity_id:
            # An edit of a card the person has: keep what they did on it (acknowledged, read).
            state = await self._state_of(turn_context, notice)
            activity = notification_activity(notice, state) if state else clone(activity)
            activity.id = turn.update_activity_id
            await turn_context.update_activity(activity)
            turn.activity_id = turn.update_activity_id
            return
        response = await turn_context.send_activity(activity)
        if turn is not None:
            turn.activity_id = response.id if response is not None else None

    async def _state_of(
        self, turn_context: TurnContext, notice: BroadcastValue
    ) -> CardState | None:
        """The person's engagement with this notification, when the card shows it."""
        notification_id = notice.id
        user_id = user_key(turn_context.activity)
        custom_card_only = bool(notice.card) and notice.acknowledge is None
        if not notification_id or user_id is None or custom_card_only:
            return None
        entry = await self._services.inbox.entry(user_id, notification_id)
        if entry is None or (entry.read_at is None and entry.acknowledged_at is None):
            return None
        return CardState(read=entry.read_at is not None, acknowledged_at=entry.acknowledged_at)

    def _rendered(self, value: object) -> tuple[BroadcastValue, Activity]:
        """The event and card activity of a notification the delivery channel sends, parsed
        and built once for all its recipients.

        The delivery channel passes the same value object to every recipient's turn, so the
        rendering is cached by identity (holding the value, so an id is never reused while
        cached). Sends copy the activity before addressing it; the template stays untouched.
        The value is the stored event (read leniently, as stores read it: it was validated
        when it was posted).
        """
        key = id(value)
        hit = self._cards.get(key)
        if hit is not None and hit[0] is value:
            return hit[1], hit[2]
        notice = read_stored(BroadcastValue, value)
        activity = notification_activity(notice)
        self._cards[key] = (value, notice, activity)
        if len(self._cards) > 64:
            self._cards.popitem(last=False)
        return notice, activity

    async def _queue_prompt(self, turn_context: TurnContext) -> None:
        """After the card with the question went out: queue the question for a dialog.

        One row in the PromptStore, written atomically: no conversation state is read or
        written here, so this cannot conflict with a user's turn, and any failure is logged,
        never raised — the card was sent, and the delivery worker must not send it again.
        """
        value: Any = turn_context.activity.value
        if not isinstance(value, dict) or "prompt" not in value:
            return
        try:
            if BROADCAST_TURN_KEY not in turn_context.turn_state:
                try:
                    notice = BroadcastValue.model_validate(value)
                except ValidationError:
                    return  # _on_broadcast told the sender what is wrong
            else:
                notice = self._rendered(value)[0]
            prompt = prompt_of(notice)
            notification_id = notice.id
            activity = turn_context.activity
            key = conversation_key(activity)
            user_id = user_key(activity)
            if prompt is None or not notification_id or key is None or user_id is None:
                return
            prompts = self._services.prompts
            if await prompts.answer_of(notification_id, user_id) is not None:
                return
            await prompts.queue(
                PendingPrompt(
                    conversation_key=key,
                    notification_id=notification_id,
                    user_id=user_id,
                    text=prompt[0],
                    choices=tuple(prompt[1]),
                    queued_at=self._services.clock(),
                )
            )
        except Exception:
            log.exception("could not queue the prompt of %s", value.get("id"))
