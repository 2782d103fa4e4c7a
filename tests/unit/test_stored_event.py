"""The stored event: what stores keep round-trips, and rows stored under looser rules than
today's still load (read leniently), while a post is held to today's rules."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from notifications.event import MAX_CARD_BYTES, Event, StoredEvent


def _document(**fields: Any) -> dict[str, Any]:
    return {
        "id": "n1",
        "type": "case.assigned",
        "title": "Case 4711",
        "recipients": {"users": ["ada@contoso.com"]},
        **fields,
    }


def test_what_the_api_stores_round_trips_unchanged() -> None:
    posted = Event.model_validate(
        _document(
            text="Ünïcode ✓",
            expiresAt="2030-01-31T17:00:00Z",
            sendAt="2030-01-31T09:00:00+01:00",
            data={"nested": [1, {"a": None}]},
            acknowledge={"text": "Got it"},
            prompt={"text": "More?", "choices": ["Yes", "No"]},
        )
    )
    document = posted.document()
    stored = StoredEvent.from_document(document)
    assert stored.document() == document
    assert stored.id == "n1"
    assert stored.send_at is not None and stored.send_at.isoformat() == "2030-01-31T09:00:00+01:00"
    assert stored.acknowledge is not None and stored.acknowledge.text == "Got it"


def test_a_resend_link_is_kept_but_not_sent_to_recipients() -> None:
    stored = StoredEvent.from_document(_document(resendOf="n0"))
    assert stored.resend_of == "n0"
    assert stored.document()["resendOf"] == "n0"
    content = stored.content()
    assert "resendOf" not in content and "recipients" not in content
    assert content["id"] == "n1"


def test_a_row_stored_under_looser_rules_still_loads_as_it_was() -> None:
    card = {"type": "AdaptiveCard", "body": [{"type": "TextBlock", "text": "x" * MAX_CARD_BYTES}]}
    old = _document(
        title="T" * 300,
        card=card,
        recipients={"users": [" padded "], "teams": ["not-a-team-id"]},
        retired="a key this version no longer knows",
    )
    with pytest.raises(ValidationError):
        Event.model_validate({k: v for k, v in old.items() if k != "retired"})

    stored = StoredEvent.from_document(old)

    assert stored.title == "T" * 300
    assert stored.card == card
    assert stored.recipients.users == [" padded "]
    assert stored.recipients.teams == ["not-a-team-id"]
    assert "retired" not in stored.document()


@pytest.mark.parametrize(
    "fields",
    [
        {"title": 5},
        {"severity": "critical"},
        {"expiresAt": "tomorrow"},
        {"recipients": {"users": "ada"}},
        {"recipients": None},
    ],
)
def test_leniency_never_loosens_types(fields: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        StoredEvent.from_document(_document(**fields))


def test_a_post_is_held_to_todays_rules() -> None:
    with pytest.raises(ValidationError) as caught:
        Event.model_validate(_document(title="T" * 300))
    assert caught.value.errors()[0]["type"] == "string_too_long"
