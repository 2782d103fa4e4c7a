"""The Channel protocol every delivery channel implements, its result type and the registry."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol, TypeVar, runtime_checkable

from delivery.outbox import DeliveryJob
from storage.records import NotificationRecord

__all__ = [
    "UNPACED",
    "AnyChannel",
    "Channel",
    "ChannelRegistry",
    "ConversationCreator",
    "DeliveryResult",
    "Pace",
    "Retracting",
    "Target",
    "TargetT",
    "UnreachableTargets",
]

UNPACED = ""
"""The lane of deliveries no rate limit paces (Web Push, FCM, APNs, the Emulator, Web Chat)."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where the router may send to one person, and the lane its sends queue in.

    A lane is the rate limit the send shares with others (Teams: one per app per tenant); the
    outbox keeps it with the delivery so a lane that has no budget now is skipped when jobs are
    leased instead of holding the jobs of every other lane back.
    """

    key: str
    lane: str = UNPACED


@dataclass(frozen=True, slots=True)
class Pace:
    """The rate limits one send must fit: its lane's (tenant) and its conversation's."""

    lane: str
    conversation: str


@dataclass(frozen=True, slots=True)
class DeliveryResult:
    """The outcome of one send, never a bare bool: the outbox needs to know why."""

    status: Literal["delivered", "retry", "dead", "failed", "skipped"]
    reason: str | None = None
    retry_after: float | None = None
    remote_id: str | None = None

    @classmethod
    def delivered(cls, remote_id: str | None = None, how: str | None = None) -> DeliveryResult:
        """Sent; `how` says how the target was reached when it is worth counting (a chat
        created first: delivery/reach.py)."""
        return cls("delivered", reason=how, remote_id=remote_id)

    @classmethod
    def retry(cls, reason: str, after: float | None = None) -> DeliveryResult:
        return cls("retry", reason=reason, retry_after=after)

    @classmethod
    def dead(cls, reason: str) -> DeliveryResult:
        return cls("dead", reason=reason)

    @classmethod
    def failed(cls, reason: str) -> DeliveryResult:
        return cls("failed", reason=reason)

    @classmethod
    def skipped(cls, reason: str) -> DeliveryResult:
        return cls("skipped", reason=reason)


TargetT = TypeVar("TargetT")
"""What a channel's `load` gives for one delivery and its `pace`, `send` and `retract` take
back: a stored conversation, a push subscription, a device."""


class Channel(Protocol[TargetT]):
    """One way of reaching a person (Teams chat, mobile push, Web Push), generic in what it
    loads for a delivery (its target type).

    `targets` tells the router where each user can be reached (and in which lane); `load`
    fetches the targets of a leased batch in one go; `pace` says which rate limits a loaded
    target's sends must fit (None: none), so the worker waits for budget *before* it gives the
    send a slot; `send` delivers one notification to one target and maps every failure to a
    DeliveryResult; `retire` deactivates a target that is gone for good.
    """

    name: str

    async def targets(self, user_ids: Sequence[str]) -> dict[str, list[Target]]: ...

    async def load(self, jobs: Sequence[DeliveryJob]) -> Mapping[int, TargetT]: ...

    def pace(self, target: TargetT) -> Pace | None: ...

    async def send(
        self, job: DeliveryJob, target: TargetT, notification: NotificationRecord
    ) -> DeliveryResult: ...

    async def retire(self, job: DeliveryJob, reason: str) -> None: ...

    async def aclose(self) -> None: ...


AnyChannel = Channel[Any]
"""A channel of any target type: what the registry holds, side by side. The worker hands each
target only to the channel that loaded it (by the job's channel name), which is what keeps
this one erasure of the target type sound."""


_TargetIn = TypeVar("_TargetIn", contravariant=True)


@runtime_checkable
class Retracting(Protocol[_TargetIn]):
    """A channel that can take back what it sent (Teams: delete the message). A recalled
    notification's delivered jobs that carry a `remote_id` are queued again and the worker
    calls `retract` instead of `send`, in the same lane and budget as a send."""

    async def retract(self, job: DeliveryJob, target: _TargetIn) -> DeliveryResult: ...


class UnreachableTargets(Protocol):
    """Targets people registered that this instance cannot send to (a channel, or a kind of
    target, that is not configured here), each with the reason. The router records them as
    skipped with that reason, so they are counted, not reported as `no-target`."""

    name: str

    async def unreachable(self, user_ids: Sequence[str]) -> dict[str, list[tuple[str, str]]]:
        """(target, reason) pairs of each user that has any."""
        ...


class ConversationCreator(Protocol):
    """A channel that can reach a person it has no conversation with: the router gives people
    Herald never met, whom a directory lists as Entra ID users of a tenant, this target, and
    the channel creates their chat when it sends (delivery/reach.py)."""

    name: str

    def creatable(self, user_id: str, tenant_id: str) -> Target | None:
        """The target that creates `user_id`'s chat at send time; None if it cannot."""
        ...


class ChannelRegistry:
    """The channels switched on in this instance, built once in app.py."""

    def __init__(self, channels: Sequence[AnyChannel] = ()) -> None:
        self._channels: dict[str, AnyChannel] = {}
        self._unreachable: list[UnreachableTargets] = []
        self._creator: ConversationCreator | None = None
        for channel in channels:
            self.register(channel)

    def register_unreachable(self, source: UnreachableTargets) -> None:
        """Targets of channel `source.name` that no registered channel can reach."""
        self._unreachable.append(source)

    @property
    def unreachable(self) -> list[UnreachableTargets]:
        return list(self._unreachable)

    def register_creator(self, creator: ConversationCreator) -> None:
        """The channel that reaches people without a stored conversation (one at most)."""
        if self._creator is not None:
            raise ValueError("a conversation creator is registered twice")
        self._creator = creator

    @property
    def creator(self) -> ConversationCreator | None:
        return self._creator

    def register(self, channel: AnyChannel) -> None:
        if channel.name in self._channels:
            raise ValueError(f"channel {channel.name!r} is registered twice")
        self._channels[channel.name] = channel

    def get(self, name: str) -> AnyChannel | None:
        return self._channels.get(name)

    @property
    def names(self) -> list[str]:
        return list(self._channels)

    def __iter__(self) -> Iterator[AnyChannel]:
        return iter(self._channels.values())

    async def aclose(self) -> None:
        for channel in self._channels.values():
            await channel.aclose()
