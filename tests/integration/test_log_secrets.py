"""No secret in any log line, the access log included (issue 11, case 4).

The whole page and API flow runs with secrets the test knows: the inbox link the bot sends
(opened, read, renewed), the push consent link (opened, a browser registered with its token and
its own auth secret), a device registered with its link token and FCM token, an operator link
(issued with the API key, opened, renewed), the API key itself and an Entra ID access token (a
valid one and a forged one), plus the mistakes a client makes (a token in a query string of an
API call, a wrong token). Every logger is captured at DEBUG, `aiohttp.access` included, and no
secret may appear in any record - not whole, not its signature.

The second test does the same for `python app.py` (the access log as `web.run_app` writes it)
by reading what the process wrote.
"""

from __future__ import annotations

import json
import logging
import re
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from api.link_tokens import LinkTokens
from logs import JsonFormatter, quiet_libraries, redact
from tests.conftest import HeraldFactory
from tests.harness import API_KEY, Emulator, HeraldProcess, RunningHerald
from tests.integration.chat import chat
from tests.integration.devices import device_body, fcm_token
from tests.peers.connector import ConnectorStandIn
from tests.peers.graph import EntraStandIn
from tests.peers.tls import self_signed
from tests.peers.webpush import WebPushTesting

API = "6d3c1f7e-8a51-4d0b-9a47-5f0f4e2c9b10"
ROLE = "Notifications.Send"
SENDER = "crm-backend"
LINK = re.compile(r"https?://[^\s)\]]+\?token=([A-Za-z0-9_.-]+)")
LINK_SECRET = "link-secret-for-the-log-test-0123456789"


class Captured(logging.Handler):
    """Every record of every logger, kept as the record (message and exception)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def lines(self) -> list[str]:
        text_formatter = logging.Formatter()
        out: list[str] = []
        for record in self.records:
            out.append(f"{record.name}: {record.getMessage()}")
            if record.exc_info:
                out.append(text_formatter.formatException(record.exc_info))
            if record.stack_info:
                out.append(record.stack_info)
        return out


@pytest.fixture
def captured() -> Iterator[Captured]:
    root = logging.getLogger()
    handler = Captured()
    names = ("", "aiohttp.access", "aiosqlite", "azure")
    levels = {name: logging.getLogger(name).level for name in names}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    logging.getLogger("aiohttp.access").setLevel(logging.DEBUG)
    # As `python app.py` sets them at HERALD_LOG_LEVEL=DEBUG (configure_logging).
    quiet_libraries(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)


@pytest.fixture
async def entra(tmp_path: Path) -> AsyncIterator[tuple[EntraStandIn, dict[str, str]]]:
    tls = self_signed(tmp_path / "tls")
    async with EntraStandIn(tls) as standin:
        standin.add_api(API)
        standin.add_client(SENDER, "crm-secret-value", {API: (ROLE,)})
        env = {
            "HERALD_AUTH_TENANT_ID": standin.tenant,
            "HERALD_AUTH_AUDIENCE": API,
            "HERALD_AUTH_AUTHORITY_HOST": standin.url,
            "HERALD_AUTH_CA_FILE": str(tls.cert_file),
        }
        yield standin, env


def variants(secret: str) -> list[str]:
    """The secret, and for a signed token its signature alone (a leak of half a token is one)."""
    parts = [secret]
    if secret.count(".") in (1, 2):
        signature = secret.rsplit(".", 1)[1]
        if len(signature) >= 20:
            parts.append(signature)
    return parts


def assert_no_secret(lines: list[str], known: dict[str, str]) -> None:
    leaks = [
        (name, line[:300])
        for line in lines
        for name, secret in known.items()
        for part in variants(secret)
        if part in line
    ]
    assert leaks == [], "\n".join(f"{name}: {line}" for name, line in leaks)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def link_token(messages: list[dict[str, Any]], path: str) -> str:
    for message in messages:
        for match in LINK.finditer(json.dumps(message)):
            if path in match.group(0):
                return match.group(1)
    raise AssertionError(f"no {path} link in {messages}")


async def test_the_page_and_api_flow_logs_no_secret(
    herald_factory: HeraldFactory,
    connector: ConnectorStandIn,
    push_service: WebPushTesting,
    entra: tuple[EntraStandIn, dict[str, str]],
    captured: Captured,
) -> None:
    standin, entra_env = entra
    herald: RunningHerald = await herald_factory(
        HERALD_LINK_SECRET=LINK_SECRET, HERALD_LOG_LEVEL="DEBUG", **entra_env
    )
    known: dict[str, str] = {"API key": API_KEY, "link secret": LINK_SECRET}

    # The bot's links, as a person gets them in the chat.
    c = chat(herald, Emulator(herald, connector.url), connector)
    await c.join()
    push = link_token(await c.say("yes"), "/push/")
    inbox = link_token(await c.say("inbox"), "/inbox/")
    known |= {"push link token": push, "inbox link token": inbox}

    # The inbox page: opened (and its old address), read, renewed, read with the new token.
    for path in (f"/inbox?token={inbox}", f"/inbox/?token={inbox}"):
        status, _ = await herald.request("GET", path, auth=False)
        assert status == 200
    status, _ = await herald.request("GET", "/api/inbox", headers=bearer(inbox), auth=False)
    assert status == 200
    status, renewed = await herald.request(
        "POST", "/api/inbox/token", headers=bearer(inbox), auth=False
    )
    assert status == 200
    known["renewed inbox token"] = renewed["token"]
    status, _ = await herald.request(
        "GET", "/api/inbox?limit=5", headers=bearer(renewed["token"]), auth=False
    )
    assert status == 200
    # Mistakes: the token in the query of an API call, and a tampered token.
    status, _ = await herald.request("GET", f"/api/inbox?token={inbox}", auth=False)
    assert status == 401
    status, _ = await herald.request(
        "GET", "/api/inbox", headers=bearer(inbox[:-4] + "AAAA"), auth=False
    )
    assert status == 401

    # The push consent page, and a browser registered with the link's token.
    status, _ = await herald.request("GET", f"/push/?token={push}", auth=False)
    assert status == 200
    browser = await push_service.subscribe(herald.herald.vapid.public_key)
    known["push auth secret"] = browser.auth
    status, body = await herald.request(
        "POST",
        "/api/push/subscriptions",
        json={"subscription": browser.to_json(), "token": push},
        auth=False,
    )
    assert status == 201, body

    # A phone registered with its devices link token.
    devices = herald.herald.links.issue(c.user.key, "devices")
    phone = device_body(c.user.key, installation_id="log-test-phone", fcm=fcm_token())
    known |= {"devices link token": devices, "FCM token": phone["fcmToken"]}
    status, body = await herald.request(
        "POST", "/api/devices", json=phone, headers=bearer(devices), auth=False
    )
    assert status == 201, body
    status, _ = await herald.request(
        "GET", f"/api/devices?userId={c.user.key}&token={devices}", headers=bearer(devices),
        auth=False,
    )
    assert status == 200

    # A notification (API key), its operator link: issued, opened, used, renewed.
    status, accepted = await herald.post_event(
        {"id": "log-test", "type": "case.assigned", "title": "Case 4711",
         "recipients": {"users": [c.user.key]}}
    )
    assert status == 202, accepted
    await herald.wait_status("log-test")
    status, link = await herald.request("POST", "/api/notifications/log-test/link")
    assert status == 200
    operator = link["token"]
    known["operator link token"] = operator
    status, _ = await herald.request("GET", f"/notifications/log-test?token={operator}", auth=False)
    assert status == 200
    status, _ = await herald.request(
        "GET", "/api/notifications/log-test", headers=bearer(operator), auth=False
    )
    assert status == 200
    status, again = await herald.request(
        "POST", "/api/notifications/log-test/link", headers=bearer(operator), auth=False
    )
    assert status == 200
    known["renewed operator token"] = again["token"]

    # Entra ID: a valid access token, and one signed by someone else.
    token = standin.access_token(SENDER, API, (ROLE,))
    forged = token.rsplit(".", 1)[0] + "." + secrets.token_urlsafe(256)
    known |= {"Entra ID token": token, "forged Entra ID token": forged}
    status, _ = await herald.request(
        "GET", "/api/notifications/log-test", headers=bearer(token), auth=False
    )
    assert status == 200
    status, _ = await herald.request(
        "GET", "/api/notifications/log-test", headers=bearer(forged), auth=False
    )
    assert status == 401
    # A wrong API key.
    wrong_key = "hk_" + secrets.token_urlsafe(24)
    known["wrong API key"] = wrong_key
    status, _ = await herald.request(
        "GET", "/api/notifications/log-test", headers=bearer(wrong_key), auth=False
    )
    assert status == 401

    access = [r for r in captured.records if r.name == "aiohttp.access"]
    assert len(access) >= 20  # the access log was on, and saw the flow
    assert any("/inbox/?token=" in r.getMessage() for r in access)
    assert_no_secret(captured.lines(), known)
    formatter = JsonFormatter()
    assert_no_secret([formatter.format(r) for r in captured.records], known)


def test_the_redaction_of_log_text_masks_what_looks_like_a_credential() -> None:
    token = LinkTokens(LINK_SECRET.encode(), 900).issue("ada", "inbox")
    text = (
        f"GET /inbox/?token={token}&limit=5 Authorization: Bearer {API_KEY} "
        f'{{"auth": "AAAAAAAAAAAAAAAAAAAAAA", "fcmToken": "abc:APA91b{"x" * 120}"}} '
        f"https://x.example/cb?code=secret-code&state=1&sig=abc"
    )
    masked = redact(text)
    for secret in (token, API_KEY, "AAAAAAAAAAAAAAAAAAAAAA", "x" * 120, "secret-code", "sig=abc"):
        assert secret not in masked, secret
    assert "limit=5" in masked and "state=1" in masked


async def test_python_app_py_writes_an_access_log_without_tokens(
    tmp_path: Path, connector: ConnectorStandIn
) -> None:
    process = HeraldProcess(
        tmp_path / "data",
        {"HERALD_LINK_SECRET": LINK_SECRET, "HERALD_LOG_LEVEL": "DEBUG",
         "HERALD_LOG_FORMAT": "json"},
    )
    links = LinkTokens(LINK_SECRET.encode(), 900)
    inbox = links.issue("emulator:ada", "inbox")
    push = links.issue("emulator:ada", "webpush")
    operator = links.issue("n-1", "operator:n-1")
    try:
        await process.start()
        for path in (
            f"/inbox/?token={inbox}",
            f"/push/?token={push}",
            f"/notifications/n-1?token={operator}",
            f"/api/inbox?token={inbox}",
        ):
            await process.request("GET", path, auth=False)
        await process.request("GET", "/api/inbox", headers=bearer(inbox), auth=False)
        await process.request("POST", "/api/inbox/token", headers=bearer(inbox), auth=False)
        await process.request("GET", "/api/notifications/n-1")  # the API key
    finally:
        await process.close()
    written = process.log.read_text()
    access = [
        line for line in written.splitlines()
        if line.startswith("{") and json.loads(line)["logger"] == "aiohttp.access"
    ]
    assert any("/inbox/?token=" in line for line in access), written[-3000:]
    assert any("/api/notifications/n-1" in line for line in access)
    assert_no_secret(
        written.splitlines(),
        {"inbox": inbox, "push": push, "operator": operator, "API key": API_KEY,
         "link secret": LINK_SECRET},
    )
