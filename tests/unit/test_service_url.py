"""proactive/service_url.py and the HTTP client under the Bot Connector calls: what Herald
will send to. (The endpoint and the delivery path are tested end to end in
tests/integration/test_messages_trust.py.)"""

from __future__ import annotations

import pytest
from yarl import URL

from outbound.http import LeanHttpClient
from proactive.service_url import LOOPBACK_HOSTS, ServiceUrlPolicy, UnsafeServiceUrl

ANY = ServiceUrlPolicy()
LOOPBACK = ServiceUrlPolicy(LOOPBACK_HOSTS)


@pytest.mark.parametrize(
    "url",
    [
        "https://smba.trafficmanager.net/emea/",
        "https://directline.botframework.com/",
        "http://127.0.0.1:3979",
        "https://example.com:8443/a/b?c=d",
        "http://[2001:db8::1]:80/",
    ],
)
def test_any_host_in_bot_framework_mode(url: str) -> None:
    assert ANY.check(url).scheme in ("http", "https")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("gopher://127.0.0.1:70/", "http or https"),
        ("ftp://127.0.0.1/", "http or https"),
        ("file:///etc/passwd", "http or https"),
        ("//127.0.0.1/", "http or https"),
        ("http://", "no host"),
        ("http://127.0.0.1:0/", "no host"),
        ("http://127.0.0.1:65536/", "not a URL"),
        ("http://127.0.0.1/a b", "without spaces"),
        ("http://127.0.0.1/\r\nHost: x", "without spaces"),
        ("http://127.0.0.1/\x00", "without spaces"),
        ("http://127.0.0.1/caf\u00e9", "ASCII"),
        ("http://user:pw@127.0.0.1/", "user name or password"),
        ("http://2130706433/", "legacy form"),
        ("http://0x7f000001/", "legacy form"),
        ("http://0177.0.0.1/", "legacy form"),
        ("http://127.1/", "legacy form"),
        ("http://a..b/", "neither a host name"),
        ("http://-x/", "neither a host name"),
        ("", "required"),
        ("x" * 3000, "longer than"),
    ],
)
def test_what_no_mode_sends_to(url: str, reason: str) -> None:
    with pytest.raises(UnsafeServiceUrl, match=reason):
        ANY.check(url)


@pytest.mark.parametrize(
    "url",
    ["http://localhost:1/", "http://LOCALHOST.:1/", "http://127.0.0.1/", "http://127.9.9.9/",
     "http://[::1]:9/", "http://[::ffff:127.0.0.1]/"],
)
def test_emulator_mode_sends_to_loopback(url: str) -> None:
    LOOPBACK.check(url)


@pytest.mark.parametrize(
    "url",
    ["http://10.0.0.1/", "http://169.254.169.254/", "http://[fd00::1]/", "http://[::ffff:10.0.0.1]/",
     "http://localhost.example.com/", "http://example.com/", "http://0.0.0.0/"],
)
def test_emulator_mode_sends_nowhere_else(url: str) -> None:
    with pytest.raises(UnsafeServiceUrl, match="HERALD_EMULATOR_SERVICE_HOSTS"):
        LOOPBACK.check(url)


def test_the_allowed_hosts_are_names_and_networks() -> None:
    policy = ServiceUrlPolicy(["botconnector.internal", "10.20.0.0/16"])
    policy.check("http://BotConnector.Internal:80/")
    policy.check("https://10.20.3.4/")
    with pytest.raises(UnsafeServiceUrl):
        policy.check("https://10.21.0.1/")
    with pytest.raises(ValueError, match="neither a host name"):
        ServiceUrlPolicy(["http://x/"])


@pytest.mark.parametrize(
    "url",
    ["gopher://127.0.0.1:9/x", "ftp://127.0.0.1:9/", "/relative", "http://127.0.0.1:9/a b",
     "http://127.0.0.1:9/\u00e9"],
)
async def test_the_http_client_speaks_http_to_http_urls_only(url: str) -> None:
    # Refused before any connection is made (nothing listens on port 9 anyway).
    client = LeanHttpClient()
    try:
        with pytest.raises(ValueError):
            await client.request("POST", URL(url, encoded=True), {}, b"{}", timeout=5)
    finally:
        await client.aclose()
