"""The one map from HTTP libraries' exceptions to Herald's own transport errors.

Herald's outbound calls go through its lean client (`outbound.http`: asyncio sockets, ssl,
httptools); some still go through libraries (aiohttp, httpx under Microsoft Graph and Entra,
requests inside msal and google-auth). Each used to catch its own set of exceptions, so the same
failure (a refused connection, a timeout) could be a retry in one channel and a crash in
another. Here every exception a client can raise for a failed exchange becomes one of:

    TransportError                  no answer could be had: `reason` says what went wrong
    ├── ConnectFailed               no connection (DNS, refused, unreachable, proxy): nothing
    │   │                           was sent
    │   └── TlsFailed               the TLS handshake or the peer's certificate failed
    ├── TimedOut                    the connect or answer deadline passed
    ├── ConnectionLost              the connection broke mid-exchange (reset, closed early)
    ├── BadAnswer                   an answer that is not HTTP, garbled, or over the size limit
    └── InvalidRequest              a request that cannot be sent as given (not an http(s) URL,
                                    a line break in a header): retrying changes nothing

`retryable` says whether the same request may succeed later (all but InvalidRequest). An HTTP
status is an answer, not a transport error: callers read those themselves.
"""

from __future__ import annotations

import socket
import ssl
from typing import ClassVar, Final

import aiohttp
import httptools
import httpx

from errors import HeraldError

__all__ = [
    "BadAnswer",
    "ConnectFailed",
    "ConnectionLost",
    "InvalidRequest",
    "TimedOut",
    "TlsFailed",
    "TransportError",
    "kind_of",
    "map_transport_error",
]


class TransportError(HeraldError):
    """An outbound HTTP exchange that produced no answer to read."""

    retryable: ClassVar[bool] = True
    label: ClassVar[str] = "transport error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class ConnectFailed(TransportError):
    """No connection could be opened; the request was not sent."""

    label = "connect failed"


class TlsFailed(ConnectFailed):
    """The TLS handshake or the certificate check failed."""

    label = "TLS failed"


class TimedOut(TransportError):
    """The deadline for connecting or for the whole answer passed."""

    label = "timed out"


class ConnectionLost(TransportError):
    """The connection broke before the whole answer arrived; the peer may have acted on it."""

    label = "connection lost"


class BadAnswer(TransportError):
    """What came back is not a usable HTTP answer (garbled, too large, a protocol error)."""

    label = "bad answer"


class InvalidRequest(TransportError, ValueError):
    """The request cannot be sent as given; never retried. A ValueError too, as before."""

    retryable = False
    label = "invalid request"


_RULES: Final[tuple[tuple[type[BaseException], type[TransportError]], ...]] = (
    # aiohttp (Web Push before it moved, and anything else on a ClientSession), most specific
    # first: several of its types are also OSError / TimeoutError subclasses.
    (aiohttp.ClientSSLError, TlsFailed),
    (aiohttp.ServerFingerprintMismatch, TlsFailed),
    (aiohttp.ClientConnectorError, ConnectFailed),
    (aiohttp.ServerTimeoutError, TimedOut),
    (aiohttp.ClientConnectionError, ConnectionLost),
    (aiohttp.ClientPayloadError, BadAnswer),
    (aiohttp.ClientResponseError, BadAnswer),
    (aiohttp.RedirectClientError, BadAnswer),
    (aiohttp.InvalidURL, InvalidRequest),
    (aiohttp.NonHttpUrlClientError, InvalidRequest),
    (aiohttp.UploadAbortedError, ConnectionLost),
    (aiohttp.ClientError, ConnectionLost),
    # httpx (Microsoft Graph, Entra)
    (httpx.TimeoutException, TimedOut),
    (httpx.ConnectError, ConnectFailed),
    (httpx.ProxyError, ConnectFailed),
    (httpx.NetworkError, ConnectionLost),
    (httpx.RemoteProtocolError, BadAnswer),
    (httpx.LocalProtocolError, InvalidRequest),
    (httpx.UnsupportedProtocol, InvalidRequest),
    (httpx.DecodingError, BadAnswer),
    (httpx.TooManyRedirects, BadAnswer),
    (httpx.InvalidURL, InvalidRequest),
    (httpx.ProtocolError, BadAnswer),
    (httpx.RequestError, ConnectionLost),
    # httptools (the lean client's parser)
    (httptools.HttpParserError, BadAnswer),
    # the standard library under the lean client (asyncio, socket, ssl)
    (TimeoutError, TimedOut),
    (ssl.SSLError, TlsFailed),
    (ssl.CertificateError, TlsFailed),
    (socket.gaierror, ConnectFailed),
    (ConnectionRefusedError, ConnectFailed),
    (ConnectionError, ConnectionLost),
    (OSError, ConnectionLost),
)


def kind_of(exc_type: type[BaseException]) -> type[TransportError] | None:
    """Which transport error an exception type maps to; None for one that is not a failed
    exchange (a programming error, an HTTP status)."""
    if issubclass(exc_type, TransportError):
        return exc_type
    for library_type, kind in _RULES:
        if issubclass(exc_type, library_type):
            return kind
    return None


def map_transport_error(exc: BaseException) -> TransportError:
    """Herald's transport error for a library's exception; raise it `from exc`. An exception
    no rule knows becomes a plain TransportError (still retried) rather than escaping."""
    if isinstance(exc, TransportError):
        return exc
    kind = kind_of(type(exc)) or TransportError
    detail = str(exc).strip()
    reason = f"{kind.label} ({type(exc).__name__}{': ' + detail[:120] if detail else ''})"
    return kind(reason)
