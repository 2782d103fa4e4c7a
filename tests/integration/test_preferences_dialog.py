"""The preferences card, its Save, the text commands, and the time-zone guess, turn by turn."""

from __future__ import annotations

import asyncio
from typing import Any

from tests.conftest import HeraldFactory
from tests.harness import Emulator, RunningHerald
from tests.integration.chat import Chat, button, call, card_texts, chat, inputs, teams_chat
from tests.peers.connector import ConnectorStandIn


async def ready(herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn) -> Chat:
    """Someone who said yes and has received a `training.due` and a `case.assigned`."""
    c = chat(herald, emulator, connector)
    await c.join()
    await c.say("yes")
    for n, type_ in enumerate(("training.due", "case.assigned")):
        await herald.post_event(
            {
                "id": f"seed-{c.user.id}-{n}",
                "type": type_,
                "title": f"A {type_}",
                "recipients": {"users": [c.user.key]},
            }
        )
        await c.wait_new(1)
    return c


async def settings_card(c: Chat) -> dict[str, Any]:
    [message] = await c.say("settings")
    return message


async def test_card_shows_the_current_state(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await ready(herald, emulator, connector)
    message = await settings_card(c)
    assert "mute training.due" in message["text"]  # the text path is named for card-less clients
    fields = inputs(message)
    assert {k: fields[k]["value"] for k in ("conversation", "mobile", "webpush")} == {
        "conversation": "true",
        "mobile": "true",
        "webpush": "true",
    }
    texts = card_texts(message)
    assert "Reaches you in 1 chat." in texts
    # Each push channel this Herald has says it reaches nobody yet; one it lacks says so.
    registered = set(herald.herald.channels.names)
    assert "No browser registered." in texts  # webpush: always on
    assert texts.count("Not set up on this Herald yet.") == len({"mobile", "webpush"} - registered)
    assert [ch["value"] for ch in fields["mutedTypes"]["choices"]] == [
        "case.assigned",
        "training.due",
    ]
    assert fields["mutedTypes"]["value"] == ""
    assert fields["quietFrom"]["value"] == fields["quietTo"]["value"] == ""
    assert fields["timeZone"]["value"] == "Europe/Berlin"  # guessed from localTimezone
    _, etag = await c.preferences()
    save = button(message, "Save")
    assert save["action"] == "savePreferences" and save["etag"] == etag.strip('"')
    assert len(save["shown"]) == 32  # what the card edits, to accept it after a consent click
    assert "Time zone: Europe/Berlin" in message["attachments"][0]["content"]["fallbackText"]


async def test_save_applies_everything_at_once_and_says_what_changed(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await ready(herald, emulator, connector)
    message = await settings_card(c)
    [saved] = await c.click(
        button(message, "Save"),
        conversation="true",
        mobile="false",
        webpush="true",
        mutedTypes="training.due,case.assigned",
        quietFrom="22:00",
        quietTo="07:00",
        timeZone="America/New_York",
    )
    assert saved["text"].splitlines() == [
        "Saved ✅",
        "",
        "- Mobile push: off",
        "- Muted: case.assigned, training.due",
        "- Quiet hours: 22:00–07:00",
        "- Time zone: America/New_York",
    ]
    prefs, _ = await c.preferences()
    assert prefs["channels"] == {"conversation": True, "mobile": False, "webpush": True}
    assert prefs["mutedTypes"] == ["case.assigned", "training.due"]
    assert prefs["quietHours"] == {"start": "22:00", "end": "07:00"}
    assert prefs["timeZone"] == "America/New_York"
    assert prefs["optedIn"] is True  # the card does not touch consent

    # The same card again: its etag is stale now, even if the values are the same.
    [refused] = await c.click(button(message, "Save"), mobile="true")
    assert "changed somewhere else" in refused["text"]
    assert inputs(refused)["mobile"]["value"] == "false"  # the current state is shown
    [fresh_save] = await c.click(
        button(refused, "Save"), **{k: v["value"] for k, v in inputs(refused).items()}
    )
    assert fresh_save["text"] == "Nothing changed."


async def test_save_with_empty_inputs_clears_them(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await ready(herald, emulator, connector)
    await c.say("quiet 22:00-07:00")
    await c.say("mute case.assigned")
    message = await settings_card(c)
    # Web Chat sends empty inputs as ""; Teams may leave them out: both mean "none".
    [saved] = await c.click(button(message, "Save"), mutedTypes="", quietFrom="", timeZone="")
    assert "- Unmuted: case.assigned" in saved["text"]
    assert "- Quiet hours: off" in saved["text"]
    assert "- Time zone: UTC (not set)" in saved["text"]
    prefs, _ = await c.preferences()
    assert (prefs["mutedTypes"], prefs["quietHours"], prefs["timeZone"]) == ([], None, None)


async def test_invalid_card_input_is_refused_and_the_previous_values_kept(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await ready(herald, emulator, connector)
    message = await settings_card(c)
    before, _ = await c.preferences()
    save = button(message, "Save")
    for card_inputs, expected in (
        ({"timeZone": "Mars/Olympus_Mons", "mobile": "false"}, "don't know the time zone"),
        ({"quietFrom": "25:00", "quietTo": "07:00"}, "not a time of day"),
        ({"quietFrom": "22:00", "quietTo": ""}, "both a start and an end"),
        ({"quietFrom": "07:00", "quietTo": "07:00"}, "different start and end"),
        ({"mobile": "maybe"}, "mobile must be on or off"),
    ):
        [answer] = await c.click(save, **card_inputs)
        assert answer["text"].startswith("I couldn't save your settings:"), answer["text"]
        assert expected in answer["text"]
        assert answer["text"].endswith("Nothing was changed.")
        assert (await c.preferences())[0] == before


async def test_text_commands_change_one_setting_each(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await ready(herald, emulator, connector)
    expectations = [
        ("mute training.due", "- Muted: training.due"),
        ("mute Training.Due", "Nothing changed. training.due was already muted."),
        ("quiet 22:00-07:00", "- Quiet hours: 22:00–07:00"),
        ("quiet 10pm to 6:30am", "- Quiet hours: 22:00–06:30"),
        ("timezone europe/berlin", "Nothing changed."),
        ("timezone Asia/Tokyo", "- Time zone: Asia/Tokyo"),
        ("mobile off", "- Mobile push: off"),
        ("turn off browser", "- Browser push: off"),
        ("teams off", "- Chat: off"),
        ("chat on", "- Chat: on"),
        ("unmute training.due", "- Unmuted: training.due"),
        ("quiet off", "- Quiet hours: off"),
    ]
    for text, expected in expectations:
        [answer] = await c.say(text)
        assert expected in answer["text"], (text, answer["text"])
    prefs, _ = await c.preferences()
    assert prefs["channels"] == {"conversation": True, "mobile": False, "webpush": False}
    assert prefs["mutedTypes"] == []
    assert prefs["quietHours"] is None
    assert prefs["timeZone"] == "Asia/Tokyo"


async def test_invalid_text_input_keeps_the_previous_value(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = await ready(herald, emulator, connector)
    await c.say("quiet 22:00-07:00")
    before, _ = await c.preferences()
    for text, expected in (
        ("timezone Mars/Olympus_Mons", "I don't know the time zone 'Mars/Olympus_Mons'"),
        ("timezone posix/Europe/Berlin", "I don't know the time zone"),
        ("quiet 25:00-07:00", "'25:00' is not a time of day"),
        ("quiet 22:00", "write them like 22:00-07:00"),
        ("quiet 7-7", "different start and end"),
        ("quiet 13pm-2am", "13 pm does not exist"),
        ("mute training due now", "is not a notification type"),
    ):
        [answer] = await c.say(text)
        assert expected in answer["text"], (text, answer["text"])
        assert answer["text"].endswith("I kept your previous setting.")
    assert (await c.preferences())[0] == before


async def test_muting_a_critical_type_says_urgent_ones_still_come(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    herald = await herald_factory(HERALD_CRITICAL_TYPES="security.alert")
    c = chat(herald, Emulator(herald, connector.url), connector)
    await c.join()
    await c.say("yes")
    [answer] = await c.say("mute security.alert")
    assert "- Muted: security.alert" in answer["text"]
    assert "urgent ones still come through" in answer["text"]


async def test_time_zone_is_guessed_once_and_never_overwrites_a_choice(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    c = chat(herald, emulator, connector, local_timezone="America/Chicago")
    await c.join()
    assert (await c.preferences())[0]["timeZone"] == "America/Chicago"
    await c.say("timezone Asia/Tokyo")
    c.user.local_timezone = "Europe/Lisbon"
    await c.say("status")
    await herald.restart()  # a fresh process has no memory of having checked
    await c.say("status")
    assert (await c.preferences())[0]["timeZone"] == "Asia/Tokyo"

    nobody = chat(herald, emulator, connector, local_timezone="Not/AZone")
    await nobody.join()
    assert (await nobody.preferences())[0]["timeZone"] is None
    teams = teams_chat(herald, emulator, connector)  # Teams gives no localTimezone here
    await teams.say("status")
    assert (await teams.preferences())[0]["timeZone"] is None


async def test_card_save_racing_an_api_write_loses_nothing(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    """The card and a backend both start from the same etag and write at once: exactly one
    wins, the other is told, and the stored document is the winner's, whole."""
    for _ in range(5):
        c = await ready(herald, emulator, connector)
        message = await settings_card(c)
        prefs, etag = await c.preferences()
        api_doc = {**prefs, "mutedTypes": ["case.assigned"], "updatedAt": None}
        card_click = c.click(button(message, "Save"), mobile="false")
        api_put = call(
            herald,
            "PUT",
            f"/api/users/{c.user.key}/preferences",
            json=api_doc,
            headers={"If-Match": etag},
        )
        [card_answer], (code, _, _) = await asyncio.gather(card_click, api_put)
        final, _ = await c.preferences()
        card_won = card_answer["text"].startswith("Saved")
        api_won = code == 200
        assert card_won != api_won, (card_answer["text"], code)
        if card_won:
            assert code == 412
            assert (final["channels"]["mobile"], final["mutedTypes"]) == (False, [])
        else:
            assert "changed" in card_answer["text"] and inputs(card_answer)
            assert (final["channels"]["mobile"], final["mutedTypes"]) == (True, ["case.assigned"])
