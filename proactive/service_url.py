"""Which `serviceUrl`s Herald talks to (DESIGN: Security).

An activity's serviceUrl is where the bot's replies, and later its proactive messages, are
POSTed. Herald checks it when an activity arrives and again before every call to the Bot
Connector, so a reference stored by an older version (or edited in the database) cannot be used
either. Everywhere: an `http` or `https` URL with a host, printable ASCII without white space
(nothing that could reach the request line or a header), no user name or password, and no
IPv4 address in a form only the C resolver understands (`2130706433`, `0x7f.1`, `127.1` are
127.0.0.1 to `getaddrinfo` but to no allow-list). In Emulator mode, where nobody vouches for an
activity, the host must also be one of the allowed ones (loopback by default).
"""

from __future__ import annotations

import ipaddress
import socket
from collections import OrderedDict
from collections.abc import Iterable
from typing import Final

from yarl import URL

__all__ = ["LOOPBACK_HOSTS", "ServiceUrlPolicy", "UnsafeServiceUrl", "parse_host_rule"]

LOOPBACK_HOSTS: Final = ("localhost", "127.0.0.0/8", "::1")
"""The default hosts of Emulator mode: this machine."""

_SCHEMES: Final = frozenset({"http", "https"})

HostRule = str | ipaddress.IPv4Network | ipaddress.IPv6Network


class UnsafeServiceUrl(ValueError):
    """A serviceUrl Herald will not send to; the message says why."""


def _host_name(text: str) -> str | None:
    """`text` as a lower-cased DNS name without the root dot, or None if it is none."""
    name = text.lower().removesuffix(".")
    if not name or len(name) > 253:
        return None
    for label in name.split("."):
        if not (
            0 < len(label) <= 63
            and label.isascii()
            and label.replace("-", "").replace("_", "").isalnum()
            and not label.startswith("-")
            and not label.endswith("-")
        ):
            return None
    return name


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def parse_host_rule(text: str) -> HostRule:
    """A host name (lower-cased) or an IP network (an address is a network of one)."""
    value = text.strip().strip("[]")
    try:
        return ipaddress.ip_network(value, strict=False)
    except ValueError:
        pass
    name = _host_name(value)
    if name is None:
        raise ValueError(f"{text!r} is neither a host name nor an IP address or network")
    return name


def _legacy_ipv4(host: str) -> bool:
    """True for the IPv4 spellings inet_aton takes and ipaddress does not (decimal, hex,
    octal, fewer than four parts): getaddrinfo turns them into addresses silently."""
    try:
        socket.inet_aton(host)
    except OSError:
        return False
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return True
    return False


_ACCEPTED_CACHE: Final = 1024


class ServiceUrlPolicy:
    """Checks serviceUrls; `allowed_hosts` None means any host (Bot Framework mode, where the
    channel's signed token vouches for the serviceUrl)."""

    def __init__(self, allowed_hosts: Iterable[str] | None = None) -> None:
        self._any_host = allowed_hosts is None
        rules = [parse_host_rule(h) for h in allowed_hosts or ()]
        self._names = frozenset(r for r in rules if isinstance(r, str))
        self._networks = tuple(r for r in rules if not isinstance(r, str))
        self._described = ", ".join(str(h) for h in allowed_hosts or ())
        # URLs already accepted: a broadcast checks the same few service URLs thousands of
        # times a second, and the rules never change while the process runs.
        self._accepted: OrderedDict[str, URL] = OrderedDict()

    def check(self, service_url: object) -> URL:
        """The parsed URL, or UnsafeServiceUrl saying what is wrong with it."""
        if isinstance(service_url, str) and (known := self._accepted.get(service_url)):
            return known
        url = self._check(service_url)
        assert isinstance(service_url, str)
        self._accepted[service_url] = url
        if len(self._accepted) > _ACCEPTED_CACHE:
            self._accepted.popitem(last=False)
        return url

    def _check(self, service_url: object) -> URL:
        if not isinstance(service_url, str) or not service_url:
            raise UnsafeServiceUrl("a serviceUrl is required")
        if len(service_url) > 2048:
            raise UnsafeServiceUrl("the serviceUrl is longer than 2,048 characters")
        if not service_url.isascii() or not service_url.isprintable() or " " in service_url:
            raise UnsafeServiceUrl(
                "the serviceUrl must be printable ASCII without spaces (percent-encode the rest)"
            )
        try:
            url = URL(service_url, encoded=True)
            port = url.port
        except (ValueError, TypeError) as exc:
            raise UnsafeServiceUrl(f"the serviceUrl is not a URL: {exc}") from None
        if url.scheme not in _SCHEMES:
            raise UnsafeServiceUrl("the serviceUrl must be an http or https URL")
        host = url.raw_host or ""
        if not host or port == 0:
            raise UnsafeServiceUrl("the serviceUrl has no host")
        if url.raw_user is not None or url.raw_password is not None:
            raise UnsafeServiceUrl("the serviceUrl may not carry a user name or password")
        if _legacy_ipv4(host):
            raise UnsafeServiceUrl("the serviceUrl's host is an IPv4 address in a legacy form")
        address = _ip(host)
        name = _host_name(host) if address is None else None
        if address is None and name is None:
            raise UnsafeServiceUrl("the serviceUrl's host is neither a host name nor an IP address")
        if not self._any_host and not (
            name in self._names
            if address is None
            else any(address in network for network in self._networks)
        ):
            raise UnsafeServiceUrl(
                f"in Emulator mode the serviceUrl's host must be one of {self._described} "
                "(HERALD_EMULATOR_SERVICE_HOSTS)"
            )
        return url
