"""clone() is copy.copy for msrest models."""

from __future__ import annotations

from copy import copy

from botbuilder.schema import Activity, Attachment, ChannelAccount, ConversationAccount

from proactive.encoding import clone


def test_clone_equals_copy_copy() -> None:
    activity = Activity(
        type="message",
        text="hi",
        conversation=ConversationAccount(id="c"),
        from_property=ChannelAccount(id="u"),
        attachments=[Attachment(content_type="x", content={"a": 1})],
    )
    activity.additional_properties = {"extra": True}
    cloned, copied = clone(activity), copy(activity)
    assert type(cloned) is Activity
    assert cloned.__dict__ == copied.__dict__
    assert cloned is not activity
    assert cloned.conversation is activity.conversation  # shallow, like copy.copy
    cloned.text = "changed"
    assert activity.text == "hi"
