"""Logs carry request and notification ids and never a secret; /metrics tells the story."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from logs import JsonFormatter
from tests.conftest import HeraldFactory
from tests.harness import API_KEY, Emulator
from tests.peers.connector import ConnectorStandIn

SECRETS = ("app-password-not-for-logs", "link-secret-not-for-logs-0123456789")


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


async def test_logs_are_tagged_and_never_hold_secrets(
    herald_factory: HeraldFactory, connector: ConnectorStandIn, json_logs: io.StringIO
) -> None:
    herald = await herald_factory(
        MicrosoftAppPassword=SECRETS[0], HERALD_LINK_SECRET=SECRETS[1]
    )
    emulator = Emulator(herald, connector.url)
    user = emulator.user()
    await emulator.join(user)
    connector.fail(user.conversation_id, 503, times=1)
    code, _ = await herald.request(
        "POST", "/api/notifications", headers={"X-Request-Id": "req-42"},
        json={"id": "logged-1", "type": "it.outage", "title": "Mail is down",
              "recipients": {"users": [user.key]}},
    )
    assert code == 202
    await herald.wait_status("logged-1")
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert lines, "nothing was logged"
    assert all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    assert any(line.get("requestId") == "req-42" for line in lines)
    tagged = [line for line in lines if line.get("notificationId") == "logged-1"]
    assert tagged, "no log line names the notification"
    text = json_logs.getvalue()
    for secret in (*SECRETS, API_KEY):
        assert secret not in text


async def test_request_ids_are_echoed_or_made(herald_factory: HeraldFactory) -> None:
    herald = await herald_factory()
    assert herald.http is not None
    async with herald.http.get(herald.url + "/healthz", headers={"X-Request-Id": "abc-1"}) as r:
        assert r.headers["X-Request-Id"] == "abc-1"
    async with herald.http.get(herald.url + "/healthz", headers={"X-Request-Id": "bad id\t"}) as r:
        made = r.headers["X-Request-Id"]
        assert made != "bad id\t" and len(made) == 32
    async with herald.http.get(herald.url + "/api/notifications/x") as r:  # 401, still tagged
        assert r.status == 401 and r.headers.get("X-Request-Id")


async def test_metrics_count_outcomes_latency_and_depth(
    herald_factory: HeraldFactory, connector: ConnectorStandIn
) -> None:
    herald = await herald_factory()
    emulator = Emulator(herald, connector.url)
    user = emulator.user()
    await emulator.join(user)
    connector.fail(user.conversation_id, 503, times=1)
    await herald.post_event({"id": "m-1", "type": "it.outage", "title": "x",
                             "recipients": {"users": [user.key, "ghost"]}})
    await herald.wait_status("m-1")
    code, text = await herald.request("GET", "/metrics", auth=False)
    assert code == 200
    assert 'herald_deliveries_total{channel="conversation",outcome="delivered"} 1' in text
    assert 'herald_deliveries_total{channel="conversation",outcome="retry"} 1' in text
    assert 'herald_delivery_retries_total{channel="conversation"} 1' in text
    assert 'herald_delivery_latency_seconds_count{channel="conversation"} 1' in text
    assert 'herald_delivery_latency_seconds_bucket{channel="conversation",le="+Inf"} 1' in text
    assert "# TYPE herald_queue_depth gauge" in text
    assert "herald_deliveries_in_flight 0" in text
