"""Time msrest against proactive.codec per activity: `.venv/bin/python -m bench.codec`.

Serialising: ConnectorClient's `_serialize.body(activity, "Activity")` (what a send costs in the
SDK) and `Activity.serialize()`, against `codec.dump`. Loading: `Activity.deserialize` and
`ConversationReference.deserialize` against `codec.load`. The activity is a Teams message with
an Adaptive Card. Prints microseconds per call and the ratio.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from botbuilder.schema import (
    Activity,
    ActivityTypes,
    Attachment,
    ChannelAccount,
    ConversationAccount,
    ConversationReference,
    Mention,
)
from botframework.connector.aio import ConnectorClient
from botframework.connector.auth import MicrosoftAppCredentials

from proactive.codec import dump, load


def card_activity() -> Activity:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "version": "1.5",
        "body": [
            {"type": "TextBlock", "text": "Invoice 4711 is due — €1.234,50", "wrap": True},
            {
                "type": "FactSet",
                "facts": [{"title": f"Fact {i}", "value": f"Value {i}"} for i in range(8)],
            },
            {"type": "Image", "url": "https://example.invalid/logo.png", "size": "Small"},
        ],
        "actions": [
            {"type": "Action.OpenUrl", "title": "Open", "url": "https://example.invalid/4711"},
            {"type": "Action.Submit", "title": "Acknowledge", "data": {"ack": True, "id": 4711}},
        ],
    }
    return Activity(
        type=ActivityTypes.message,
        timestamp=dt.datetime.now(dt.UTC),
        service_url="https://smba.trafficmanager.net/emea/",
        channel_id="msteams",
        from_property=ChannelAccount(id="28:bot", name="Herald"),
        recipient=ChannelAccount(id="29:user", name="Ada", aad_object_id="aad"),
        conversation=ConversationAccount(
            id="a:1XyzAbC", tenant_id="tenant", conversation_type="personal", is_group=False
        ),
        text="<at>Ada</at>, invoice 4711 is due",
        summary="Invoice due",
        entities=[Mention(mentioned=ChannelAccount(id="29:user", name="Ada"), text="<at>Ada</at>")],
        attachments=[
            Attachment(content_type="application/vnd.microsoft.card.adaptive", content=card)
        ],
        channel_data={"notification": {"alert": True}},
    )


def per_call(call: Callable[[], object], budget_s: float = 1.0) -> float:
    """Seconds per call: the best of five rounds of as many calls as fit the budget."""
    call()
    start = time.perf_counter()
    count = 0
    while time.perf_counter() - start < budget_s / 10:
        call()
        count += 1
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(count):
            call()
        best = min(best, (time.perf_counter() - start) / count)
    return best


def report(label: str, reference: Callable[[], object], codec: Callable[[], object]) -> None:
    slow, fast = per_call(reference), per_call(codec)
    print(
        f"{label:<44} msrest {slow * 1e6:8.1f} us  codec {fast * 1e6:6.1f} us  x{slow / fast:5.1f}"
    )


def main() -> None:
    logging.disable(logging.WARNING)  # msrest warns per naive datetime; none here, but be sure
    activity = card_activity()
    client = ConnectorClient(MicrosoftAppCredentials(None, None), base_url="http://127.0.0.1:1")
    assert dump(activity) == client._serialize.body(activity, "Activity")
    as_json = json.loads(json.dumps(dump(activity)))
    reference = ConversationReference(
        activity_id="1",
        user=ChannelAccount(id="29:user", aad_object_id="aad"),
        bot=ChannelAccount(id="28:bot", name="Herald"),
        conversation=ConversationAccount(id="a:1XyzAbC", tenant_id="tenant"),
        channel_id="msteams",
        service_url="https://smba.trafficmanager.net/emea/",
    )
    reference_json = json.loads(json.dumps(dump(reference)))

    print(f"card activity: {len(json.dumps(as_json))} bytes of JSON")
    report(
        "send body: _serialize.body(activity) / dump",
        lambda: client._serialize.body(activity, "Activity"),
        lambda: dump(activity),
    )
    report("activity.serialize() / dump", activity.serialize, lambda: dump(activity))
    report(
        "Activity.deserialize / load",
        lambda: Activity.deserialize(as_json),
        lambda: load(Activity, as_json),
    )
    report(
        "ConversationReference.deserialize / load",
        lambda: ConversationReference.deserialize(reference_json),
        lambda: load(ConversationReference, reference_json),
    )


if __name__ == "__main__":
    main()
