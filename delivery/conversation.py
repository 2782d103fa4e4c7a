"""The conversation channel: a proactive message in the user's chat with the bot.

Keeps the shape of Microsoft's Proactive Notifications sample: each delivery is a
`BroadcastEvent` turn run through the adapter and the bot with the stored reference, so
middleware and the bot's own rendering apply. Teams' published rate limits are honoured by the
worker's scheduler, *before* a send gets a slot: this channel only says which limits a send must
fit (`pace`: its tenant's lane and its conversation) and sends when it is told to.

People an audience names who have no conversation with the bot get one opened at send time
(`creatable` targets; delivery/reach.py), and channel posts are conversations like any other,
stored under their team (delivery/audience.py).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from botbuilder.core import TurnContext
from botbuilder.schema import ConversationReference

from delivery.channel import UNPACED, Channel, DeliveryResult, Pace, Retracting, Target
from delivery.outbox import DeliveryJob
from delivery.reach import NEW_CHAT_PREFIX, NewChat, TeamsReach, new_chat_target
from errors import DeliveryFailed, RetryLater, TargetGone
from proactive.adapter import HeraldAdapter
from proactive.codec import load
from storage.protocols import ConversationStore
from storage.records import NotificationRecord, StoredReference

__all__ = ["ChatTarget", "ConversationChannel", "lane_of"]

Logic = Callable[[TurnContext], Awaitable[Any]]


def lane_of(
    channel_id: str, tenant_id: str | None, service_url: str, throttled: frozenset[str]
) -> str:
    """The rate-limit lane of a conversation: one per app per tenant on a throttled channel
    (Teams' global limit), keyed by the service URL where a reference names no tenant."""
    if channel_id not in throttled:
        return UNPACED
    return f"{channel_id}|{tenant_id or service_url}"


@dataclass(frozen=True, slots=True)
class _Found:
    """A new-chat delivery whose person has a conversation by the time it is sent."""

    ref: StoredReference


ChatTarget: TypeAlias = StoredReference | _Found | NewChat
"""What the conversation channel loads for a delivery: the stored conversation, the chat found
for a new-chat delivery since it was planned, or the chat to create when it is sent."""


def _personal_teams_chat(ref: StoredReference) -> bool:
    conversation = ref.reference.get("conversation") or {}
    return ref.channel_id == "msteams" and conversation.get("conversationType") in (
        None, "personal",
    )


class ConversationChannel(Channel[ChatTarget], Retracting[ChatTarget]):
    """Channel `conversation`: Teams, Web Chat, the Emulator, Direct Line."""

    name = "conversation"

    def __init__(
        self,
        conversations: ConversationStore,
        adapter: HeraldAdapter,
        logic: Logic,
        *,
        throttled_channels: frozenset[str] = frozenset({"msteams"}),
        value_cache_size: int = 64,
        reach: TeamsReach | None = None,
    ) -> None:
        self._reach = reach
        self._conversations = conversations
        self._adapter = adapter
        self._logic = logic
        self._throttled = throttled_channels
        self._values: OrderedDict[tuple[str, int], dict[str, Any]] = OrderedDict()
        self._value_cache_size = value_cache_size

    async def targets(self, user_ids: Sequence[str]) -> dict[str, list[Target]]:
        found = await self._conversations.targets_for(user_ids)
        return {
            user: [
                Target(t.target, lane_of(t.channel_id, t.tenant_id, t.service_url, self._throttled))
                for t in targets
            ]
            for user, targets in found.items()
        }

    def creatable(self, user_id: str, tenant_id: str) -> Target | None:
        """A chat opened at send time, in the tenant's lane (ConversationCreator)."""
        if self._reach is None:
            return None
        return Target(
            new_chat_target(tenant_id), lane_of("msteams", tenant_id, "", self._throttled)
        )

    def pace(self, target: ChatTarget) -> Pace | None:
        if isinstance(target, NewChat):
            lane = lane_of("msteams", target.tenant_id, "", self._throttled)
            return Pace(lane, new_chat_target(target.user_id)) if lane else None
        ref = target.ref if isinstance(target, _Found) else target
        lane = lane_of(ref.channel_id, ref.tenant_id, ref.service_url, self._throttled)
        return Pace(lane, ref.target) if lane else None

    async def load(self, jobs: Sequence[DeliveryJob]) -> dict[int, ChatTarget]:
        stored = [j for j in jobs if not j.target.startswith(NEW_CHAT_PREFIX)]
        found = await self._conversations.get_many([(j.user_id, j.target) for j in stored])
        targets: dict[int, ChatTarget] = {}
        for job in stored:
            ref = found.get((job.user_id, job.target))
            if ref is not None and ref.active:
                targets[job.id] = ref
        new = [j for j in jobs if j.target.startswith(NEW_CHAT_PREFIX)]
        if new and self._reach is not None:
            chats = await self._conversations.for_users(list({j.user_id for j in new}))
            for job in new:
                ref = next((r for r in chats.get(job.user_id, ()) if _personal_teams_chat(r)), None)
                tenant = job.target[len(NEW_CHAT_PREFIX) :]
                targets[job.id] = _Found(ref) if ref is not None else NewChat(job.user_id, tenant)
        return targets

    def _value(self, notification: NotificationRecord) -> dict[str, Any]:
        """The BroadcastEvent value: the event without its (possibly 10,000-long) audience."""
        key = (notification.id, notification.version)
        value = self._values.get(key)
        if value is None:
            value = notification.event.content()  # without `resendOf`: not for the card
            self._values[key] = value
            if len(self._values) > self._value_cache_size:
                self._values.popitem(last=False)
        return value

    async def send(
        self, job: DeliveryJob, target: ChatTarget, notification: NotificationRecord
    ) -> DeliveryResult:
        how: str | None = None
        if isinstance(target, NewChat):
            assert self._reach is not None  # load() makes NewChat targets only with reach
            pace = self.pace(target)
            try:
                ref, how = await self._reach.open_chat(target, pace.lane if pace else "")
            except RetryLater as exc:
                return DeliveryResult.retry(exc.reason, exc.after)
            except DeliveryFailed as exc:
                return DeliveryResult.failed(exc.reason)
        elif isinstance(target, _Found):
            ref, how = target.ref, "stored"
        else:
            ref = target
        try:
            turn = await self._adapter.broadcast(
                load(ConversationReference, ref.reference),
                self._value(notification),
                self._logic,
                update_activity_id=job.remote_id,
            )
        except TargetGone as exc:
            if ref.target != job.target:  # the chat found or opened, not the job's own target
                await self._conversations.deactivate(ref.user_id, ref.target, exc.reason)
            return DeliveryResult.dead(exc.reason)
        except RetryLater as exc:
            # A Retry-After pauses this send's lane and conversation: the worker applies it.
            return DeliveryResult.retry(exc.reason, exc.after)
        except DeliveryFailed as exc:
            return DeliveryResult.failed(exc.reason)
        return DeliveryResult.delivered(turn.activity_id or job.remote_id, how)

    async def retract(self, job: DeliveryJob, target: ChatTarget) -> DeliveryResult:
        """Delete the message sent as `job.remote_id` (a recall): Bot Connector's DELETE
        activity, within the tenant's budget like a send. Already gone counts as deleted."""
        if job.remote_id is None or not isinstance(target, StoredReference):
            return DeliveryResult.skipped("recalled")  # nothing was sent there to take back
        try:
            reference = load(ConversationReference, target.reference)
            await self._adapter.delete_sent(reference, job.remote_id)
        except TargetGone:
            pass  # the message (or the whole chat) is gone already: nothing left to take back
        except RetryLater as exc:
            return DeliveryResult.retry(exc.reason, exc.after)
        except DeliveryFailed as exc:
            return DeliveryResult.failed(exc.reason)
        return DeliveryResult.skipped("deleted")

    async def retire(self, job: DeliveryJob, reason: str) -> None:
        if not job.target.startswith(NEW_CHAT_PREFIX):  # a new chat's was retired in send()
            await self._conversations.deactivate(job.user_id, job.target, reason)

    async def aclose(self) -> None:
        return None
