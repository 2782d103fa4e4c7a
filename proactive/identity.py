"""Who an activity is from, in Herald's terms (DESIGN: Identity)."""

from __future__ import annotations

from typing import Any

from botbuilder.core import TurnContext
from botbuilder.schema import Activity
from botframework.connector import Channels

from proactive.codec import dump
from storage.records import StoredReference

__all__ = ["stored_reference", "tenant_of", "user_key"]


def user_key(activity: Activity) -> str | None:
    """The Entra ID object id on Teams, else "{channelId}:{from.id}".

    Only Teams sets `from.aadObjectId` itself; any other channel passes on what its client
    sent (a Direct Line or Web Chat client can put anyone's object id there), so there it
    names nobody.
    """
    sender = activity.from_property
    if sender is None or not sender.id:
        return None
    if activity.channel_id == Channels.ms_teams and sender.aad_object_id:
        return str(sender.aad_object_id)
    return f"{activity.channel_id}:{sender.id}"


def tenant_of(activity: Activity) -> str | None:
    """The tenant of a Teams conversation (conversation.tenantId or channelData.tenant.id)."""
    if activity.conversation is not None and activity.conversation.tenant_id:
        return str(activity.conversation.tenant_id)
    data: Any = activity.channel_data
    if isinstance(data, dict):
        tenant = data.get("tenant")
        if isinstance(tenant, dict) and tenant.get("id"):
            return str(tenant["id"])
    return None


def stored_reference(activity: Activity, user_id: str) -> StoredReference:
    """The conversation reference of an inbound activity, ready to store."""
    reference = TurnContext.get_conversation_reference(activity)
    tenant = tenant_of(activity)
    if tenant and reference.conversation is not None and not reference.conversation.tenant_id:
        reference.conversation.tenant_id = tenant
    return StoredReference(
        user_id=user_id,
        channel_id=str(activity.channel_id),
        conversation_id=str(activity.conversation.id),
        service_url=str(activity.service_url),
        reference=dump(reference),
        tenant_id=tenant,
    )
