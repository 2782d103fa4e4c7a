"""What an activity posted to /api/messages must look like before the SDK sees it.

botbuilder deserialises almost anything and fails later, inside the turn, with a traceback
(no `conversation`, `conversation.id: null`, `membersAdded: [null]`...). The parts of an
activity the SDK and Herald rely on are checked here first, so a malformed activity is a 400
naming the field, and nothing of it is stored. Everything else passes through untouched
(`extra="allow"`): channels add fields, and the SDK reads the activity itself.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationInfo,
    field_validator,
)

from proactive.service_url import ServiceUrlPolicy

__all__ = ["CHANNEL_ID_PATTERN", "InboundActivity"]

CHANNEL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
"""Channel ids as the Bot Framework names them (`msteams`, `emulator`, `webchat`,
`directline`...): no colon, which would make `{channelId}:{from.id}` user keys ambiguous."""

Id = Annotated[str, StringConstraints(min_length=1, max_length=1024)]
"""Ids of people, bots and conversations: they end up in keys and in connector URLs."""
Text = Annotated[str, StringConstraints(max_length=1024)]


class _Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class Account(_Open):
    """A ChannelAccount (`from`, `recipient`, an entry of `membersAdded`)."""

    id: Id
    name: Text | None = None
    aadObjectId: Text | None = None
    role: Text | None = None


class Conversation(_Open):
    id: Id
    tenantId: Text | None = None
    conversationType: Text | None = None


class InboundActivity(_Open):
    """The envelope of an inbound activity; validate with
    `model_validate(body, context={"service_urls": ServiceUrlPolicy})`."""

    type: Annotated[str, StringConstraints(min_length=1, max_length=64)]
    channelId: Annotated[str, StringConstraints(pattern=CHANNEL_ID_PATTERN)]
    serviceUrl: str
    conversation: Conversation
    # Optional, but never null (_not_null): the SDK reads these without looking.
    from_: Account | None = Field(None, alias="from")
    recipient: Account | None = None
    membersAdded: list[Account] | None = None
    membersRemoved: list[Account] | None = None
    reactionsAdded: list[dict[str, Any]] | None = None
    reactionsRemoved: list[dict[str, Any]] | None = None
    attachments: list[dict[str, Any]] | None = None
    entities: list[dict[str, Any]] | None = None
    id: Text | None = None
    replyToId: Text | None = None
    name: Text | None = None
    text: str | None = None
    locale: Text | None = None
    localTimezone: Text | None = None
    deliveryMode: Text | None = None

    @field_validator(
        "from_", "membersAdded", "membersRemoved", "reactionsAdded", "reactionsRemoved",
        mode="before",
    )
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        # Runs only for fields the activity has: leaving one out is fine, null is not.
        if value is None:
            raise ValueError("may be left out, but not null")
        return value

    @field_validator("serviceUrl")
    @classmethod
    def _service_url(cls, value: str, info: ValidationInfo) -> str:
        policy = (info.context or {}).get("service_urls")
        if not isinstance(policy, ServiceUrlPolicy):
            raise TypeError("validate with context={'service_urls': ServiceUrlPolicy}")
        policy.check(value)
        return value
