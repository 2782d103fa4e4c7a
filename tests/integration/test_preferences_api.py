"""GET/PUT /api/users/{id}/preferences: the document, its ETag, and optimistic concurrency."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.harness import Emulator, RunningHerald
from tests.integration.chat import Chat, call, chat, teams_chat
from tests.peers.connector import ConnectorStandIn, Member

DEFAULT = {
    "optedIn": None,
    "channels": {"conversation": True, "mobile": True, "webpush": True},
    "mutedTypes": [],
    "quietHours": None,
    "timeZone": None,
    "updatedAt": None,
}


async def someone(herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn) -> Chat:
    """Someone who met the bot and left the consent question open (cancel)."""
    c = chat(herald, emulator, connector, local_timezone=None)
    await c.join()
    await c.say("cancel")
    return c


def path(c: Chat) -> str:
    return f"/api/users/{c.user.key}/preferences"


async def test_get_answers_the_default_document_with_a_quoted_etag(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await someone(herald, emulator, connector)
    code, body, headers = await call(herald, "GET", path(c))
    assert code == 200
    assert body == DEFAULT
    etag = headers["ETag"]
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2
    assert headers["Cache-Control"] == "no-store"

    code, _, again = await call(herald, "GET", path(c), headers={"If-None-Match": etag})
    assert (code, again["ETag"]) == (304, etag)


async def test_put_replaces_the_document_and_returns_the_new_etag(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await someone(herald, emulator, connector)
    _, body, headers = await call(herald, "GET", path(c))
    wanted = {
        **body,
        "optedIn": True,
        "channels": {"conversation": True, "mobile": False, "webpush": True},
        "mutedTypes": ["Training.Due", "case.assigned", "training.due"],
        "quietHours": {"start": "22:00", "end": "07:00"},
        "timeZone": "Europe/Berlin",
    }
    code, saved, put_headers = await call(
        herald, "PUT", path(c), json=wanted, headers={"If-Match": headers["ETag"]}
    )
    assert code == 200, saved
    assert saved["mutedTypes"] == ["case.assigned", "training.due"]  # normalised
    assert saved["updatedAt"] is not None  # set by Herald, whatever was sent
    assert put_headers["ETag"] != headers["ETag"]
    code, read, get_headers = await call(herald, "GET", path(c))
    assert read == saved and get_headers["ETag"] == put_headers["ETag"]

    # The bot reads the same document.
    [status] = await c.say("status")
    assert "Muted types: case.assigned, training.due" in status["text"]
    assert "Quiet hours: 22:00–07:00" in status["text"]


async def test_put_needs_if_match(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await someone(herald, emulator, connector)
    code, body, _ = await call(herald, "PUT", path(c), json=DEFAULT)
    assert code == 428
    assert body["error"]["code"] == "precondition_required"
    assert body["error"]["field"] == "If-Match"


async def test_a_stale_etag_gets_412_and_changes_nothing(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await someone(herald, emulator, connector)
    _, body, headers = await call(herald, "GET", path(c))
    first = {**body, "mutedTypes": ["a"]}
    code, _, _ = await call(
        herald, "PUT", path(c), json=first, headers={"If-Match": headers["ETag"]}
    )
    assert code == 200
    _, current, current_headers = await call(herald, "GET", path(c))

    for stale in (headers["ETag"], f"W/{current_headers['ETag']}", '"nope"'):
        code, error, _ = await call(
            herald, "PUT", path(c), json={**body, "mutedTypes": ["b"]}, headers={"If-Match": stale}
        )
        assert code == 412, stale
        assert error["error"]["code"] == "precondition_failed"
    _, after, after_headers = await call(herald, "GET", path(c))
    assert after == current and after_headers["ETag"] == current_headers["ETag"]

    # A list of tags matches if any does; `*` matches whatever is current.
    listed = f'"old", {current_headers["ETag"]}'
    code, _, _ = await call(herald, "PUT", path(c), json=first, headers={"If-Match": listed})
    assert code == 200
    code, _, _ = await call(herald, "PUT", path(c), json=first, headers={"If-Match": "*"})
    assert code == 200


async def test_invalid_documents_get_400_naming_the_field(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await someone(herald, emulator, connector)
    _, body, headers = await call(herald, "GET", path(c))
    cases: list[tuple[Any, str | None, str]] = [
        ({**body, "timeZone": "Mars/Base"}, "timeZone", "invalid_field"),
        (
            {**body, "quietHours": {"start": "25:00", "end": "07:00"}},
            "quietHours.start",
            "invalid_field",
        ),
        ({**body, "quietHours": {"start": "07:00", "end": "07:00"}}, "quietHours", "invalid_field"),
        ({**body, "channels": {"conversation": "maybe"}}, "channels.conversation", "invalid_field"),
        ({**body, "mutedTypes": [""]}, "mutedTypes", "invalid_field"),
        ({**body, "muted": ["a"]}, "muted", "unknown_field"),
        ([1, 2], None, "invalid_body"),
        # Issue 11 (8): the schema says date-time or null, and a number was taken.
        ({**body, "updatedAt": 0}, "updatedAt", "invalid_field"),
        ({**body, "updatedAt": 1900000000.5}, "updatedAt", "invalid_field"),
        ({**body, "updatedAt": "2030-01-01 10:00:00Z"}, "updatedAt", "invalid_field"),
        ({**body, "updatedAt": "yesterday"}, "updatedAt", "invalid_field"),
        ({**body, "timeZone": 0}, "timeZone", "invalid_field"),
    ]
    for document, field, code_name in cases:
        code, error, _ = await call(
            herald, "PUT", path(c), json=document, headers={"If-Match": headers["ETag"]}
        )
        assert code == 400, (document, error)
        assert error["error"]["code"] == code_name, error
        assert error["error"]["field"] == field, error
    _, after, after_headers = await call(herald, "GET", path(c))
    assert after == body and after_headers["ETag"] == headers["ETag"]


async def test_unknown_users_get_404_and_aliases_work(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    code, error, _ = await call(herald, "GET", "/api/users/nobody/preferences")
    assert (code, error["error"]["code"]) == (404, "not_found")
    code, error, _ = await call(
        herald, "PUT", "/api/users/nobody/preferences", json=DEFAULT, headers={"If-Match": "*"}
    )
    assert code == 404

    c = teams_chat(herald, emulator, connector)
    connector.set_roster(
        c.user.conversation_id,
        [
            Member(
                id=c.user.id,
                name="Grace",
                aad_object_id=c.user.aad_object_id,
                email="grace@contoso.com",
                tenant_id=c.user.tenant_id,
            )
        ],
    )
    await c.say("status")
    for _ in range(100):
        code, body, _ = await call(herald, "GET", "/api/users/Grace@Contoso.com/preferences")
        if code == 200:
            break
        await asyncio.sleep(0.05)
    assert code == 200 and body == DEFAULT


async def test_without_an_api_key_nothing_is_readable(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await someone(herald, emulator, connector)
    code, _ = await herald.request("GET", path(c), auth=False)
    assert code == 401


async def test_two_concurrent_writers_with_the_same_etag_one_wins(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await someone(herald, emulator, connector)
    for round_ in range(5):
        _, body, headers = await call(herald, "GET", path(c))
        writers = [
            call(
                herald,
                "PUT",
                path(c),
                json={**body, "mutedTypes": [f"writer{w}.round{round_}"]},
                headers={"If-Match": headers["ETag"]},
            )
            for w in range(2)
        ]
        results = await asyncio.gather(*writers)
        codes = sorted(code for code, _, _ in results)
        assert codes == [200, 412], results
        winner = next(saved for code, saved, _ in results if code == 200)
        _, final, _ = await call(herald, "GET", path(c))
        assert final == winner  # the loser changed nothing


async def test_what_the_schema_allows_is_taken_and_means_one_thing(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    # Issue 11 (8): `"timeZone": ""` is a string, as the schema allows, and was refused.
    # It means no time zone, like null: quiet hours are read in UTC, and it reads back as null.
    c = await someone(herald, emulator, connector)
    _, body, headers = await call(herald, "GET", path(c))
    code, saved, headers = await call(
        herald, "PUT", path(c), json={**body, "timeZone": "Europe/Berlin"},
        headers={"If-Match": headers["ETag"]},
    )
    assert code == 200 and saved["timeZone"] == "Europe/Berlin"
    code, saved, headers = await call(
        herald, "PUT", path(c),
        json={**saved, "timeZone": "", "updatedAt": "2030-01-01T10:00:00.5+02:00"},
        headers={"If-Match": headers["ETag"]},
    )
    assert code == 200, saved
    assert saved["timeZone"] is None
    assert saved["updatedAt"] != "2030-01-01T10:00:00.5+02:00"  # set by Herald, as documented
    _, again, _ = await call(herald, "GET", path(c))
    assert again == saved
