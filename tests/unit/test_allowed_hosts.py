"""WEBPUSH_ALLOWED_HOSTS: hosts and ports (issue 11, case 6: any port of an allowed host was
accepted, so a subscription could aim Herald's pushes at another service on that host)."""

from __future__ import annotations

import pytest

from delivery.allowed_hosts import AllowedHosts

HOSTS = AllowedHosts(
    ["fcm.googleapis.com", "push.example.com:8443", "127.0.0.1:*", "[::1]:9000", "::2", ".x.test"]
)


@pytest.mark.parametrize(
    "url",
    [
        "https://fcm.googleapis.com/fcm/send/abc",
        "https://fcm.googleapis.com:443/fcm/send/abc",
        "https://eu.fcm.googleapis.com/x",  # a subdomain
        "https://push.example.com:8443/send",
        "http://127.0.0.1:41843/notify/1",
        "http://127.0.0.1/x",
        "http://[::1]:9000/x",
        "https://[::2]/x",
        "https://a.x.test/x",
    ],
)
def test_allowed(url: str) -> None:
    assert HOSTS.refusal(url) is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://fcm.googleapis.com:8443/x", "port 8443"),  # any port was accepted
        ("https://fcm.googleapis.com:80/x", "port 80"),
        ("https://push.example.com/send", "port 443"),  # only the port named
        ("http://[::1]:9001/x", "port 9001"),
        ("https://fcm.googleapis.com.evil.test/x", "not a push service"),
        ("https://googleapis.com/x", "not a push service"),
        ("https://1.127.0.0.1/x", "not a push service"),  # no "subdomains" of an address
        ("http://localhost:41843/x", "not a push service"),
        ("ftp://fcm.googleapis.com/x", "http(s)"),
        ("https://fcm.googleapis.com:99999/x", "not a valid URL"),
    ],
)
def test_refused_with_the_reason(url: str, why: str) -> None:
    reason = HOSTS.refusal(url)
    assert reason is not None and why in reason, reason


@pytest.mark.parametrize(
    "entry", ["push.example.com:0", "push.example.com:https", "[::1", "a/b", "[::1]x", "h:1:2:x"]
)
def test_entries_that_are_no_host_or_port_are_refused(entry: str) -> None:
    with pytest.raises(ValueError):
        AllowedHosts([entry])
