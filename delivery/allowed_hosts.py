"""The push services Herald may send to (WEBPUSH_ALLOWED_HOSTS): hosts *and* ports.

A browser's subscription names the URL Herald posts each push to, so whoever registers one
could aim Herald's requests anywhere (an internal service, a cloud metadata endpoint). Herald
posts only to hosts the operator allows, on the ports the operator allows, checked when a
subscription is registered and again before every send (the list may have changed since).

An entry is `host` (that host and its subdomains; an IP address only itself) on the scheme's
default port (443 for https, 80 for http), `host:port` on that port only, or `host:*` on any
port (for a push service on the same machine whose port changes, as in the tests). IPv6
addresses are written in brackets when a port follows: `[::1]:8080`, `[::1]:*`; a bare `::1`
means the default port.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

__all__ = ["AllowedHosts"]

_DEFAULT_PORTS: Final = {"https": 443, "http": 80}


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class _Entry:
    host: str
    port: int | None
    """None: the scheme's default port; see `any_port`."""
    any_port: bool

    @classmethod
    def parse(cls, text: str) -> _Entry:
        entry = text.strip().lower().lstrip(".")
        host, port = entry, ""
        if entry.startswith("["):
            host, bracket, rest = entry[1:].partition("]")
            if not bracket or (rest and not rest.startswith(":")):
                raise ValueError(f"{text!r} is not host, host:port or [ipv6]:port")
            port = rest[1:]
        elif entry.count(":") == 1:
            host, _, port = entry.partition(":")
        if not host or any(c in host for c in "/?#@[] \t") or (":" in host and not _is_ip(host)):
            raise ValueError(f"{text!r} is not a host name or address (host, host:port, host:*)")
        if port == "*":
            return cls(host, None, True)
        if not port:
            return cls(host, None, False)
        if not (port.isascii() and port.isdigit() and 0 < int(port) < 65536):
            raise ValueError(f"{text!r}: the port must be a number from 1 to 65535, or *")
        return cls(host, int(port), False)

    def host_matches(self, host: str) -> bool:
        return host == self.host or (not _is_ip(self.host) and host.endswith("." + self.host))

    def matches(self, host: str, port: int, default_port: int) -> bool:
        if not self.host_matches(host):
            return False
        return self.any_port or port == (default_port if self.port is None else self.port)

    def __str__(self) -> str:
        shown = f"[{self.host}]" if ":" in self.host else self.host
        if self.any_port:
            return f"{shown}:*"
        return shown if self.port is None else f"{shown}:{self.port}"


class AllowedHosts:
    """WEBPUSH_ALLOWED_HOSTS, parsed once: `refusal(url)` says why Herald must not post there."""

    def __init__(self, entries: Iterable[str]) -> None:
        self._entries = tuple(_Entry.parse(e) for e in entries if e.strip())

    def __repr__(self) -> str:
        return f"AllowedHosts({', '.join(str(e) for e in self._entries)})"

    def refusal(self, url: str) -> str | None:
        """None if `url` is on an allowed host and port, else the reason (for the API's 400 and
        a delivery's failure)."""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            return "the endpoint is not a valid URL"
        host = (parts.hostname or "").lower()
        default = _DEFAULT_PORTS.get(parts.scheme)
        if not host or default is None:
            return "the endpoint is not an http(s) URL with a host"
        actual = default if port is None else port
        if any(e.matches(host, actual, default) for e in self._entries):
            return None
        shown = f"[{host}]" if ":" in host else host
        if any(e.host_matches(host) for e in self._entries):
            return (
                f"port {actual} of {shown} is not one Herald sends to (WEBPUSH_ALLOWED_HOSTS "
                "allows that host on other ports only)"
            )
        return f"{shown!r} is not a push service this Herald sends to (WEBPUSH_ALLOWED_HOSTS)"
