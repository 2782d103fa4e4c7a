"""A recording, fault-injecting HTTPS proxy in front of the Cosmos DB stand-in.

Herald's Cosmos stores talk to it exactly as to Cosmos DB (TLS on 127.0.0.1, endpoint discovery
on, as in production); it forwards every request to `@vercel/cosmosdb-server` and records it
(method, path, headers, JSON body, the status it answered, when it arrived). Faults answer
chosen requests the way the service does when it throttles or is down, without forwarding them:
`429` with `x-ms-retry-after-ms` and substatus 3200, `503`, each with Cosmos DB's error body
`{"code", "message"}`.

The stand-in advertises its own address as the account's read and write location; the proxy
rewrites that to its own, as a reverse proxy rewrites `Location`, or the SDK would go around it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiohttp import web

from tests.peers.tls import self_signed

__all__ = ["CosmosProxy", "Fault", "Seen"]

_HOP_BY_HOP: Final = frozenset(
    {"host", "connection", "keep-alive", "transfer-encoding", "content-length",
     "accept-encoding", "content-encoding", "te", "trailer", "upgrade"}
)

_MESSAGES: Final = {
    429: (
        "TooManyRequests",
        "Request rate is large. More Request Units may be needed, so no changes were made. "
        "Please retry this request later. Learn more: http://aka.ms/cosmosdb-error-429",
    ),
    503: (
        "ServiceUnavailable",
        "The request failed because the service is unavailable. Please retry the request.",
    ),
    408: ("RequestTimeout", "The request timed out."),
}


@dataclass(slots=True)
class Seen:
    """One request as the proxy received it, and what it answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any
    at: float
    status: int = 0

    @property
    def is_query(self) -> bool:
        return self.headers.get("x-ms-documentdb-isquery", "").lower() == "true"


@dataclass(slots=True)
class Fault:
    """Answer `times` requests matching `method` and `path` (a regex searched in the path;
    `query` narrows to queries or non-queries) with `status`; `times=None`: every one."""

    method: str
    path: str
    status: int
    times: int | None = 1
    retry_after_ms: int | None = None
    query: bool | None = None
    hits: list[Seen] = field(default_factory=list)

    def matches(self, seen: Seen) -> bool:
        if self.times is not None and len(self.hits) >= self.times:
            return False
        if self.query is not None and seen.is_query != self.query:
            return False
        return seen.method == self.method and re.search(self.path, seen.path) is not None

    def response(self, seen: Seen) -> web.Response:
        code, text = _MESSAGES.get(self.status, ("Error", "Injected failure."))
        activity = str(uuid.uuid4())
        headers = {"x-ms-activity-id": activity, "x-ms-request-charge": "0"}
        if self.status == 429:
            headers["x-ms-substatus"] = "3200"  # throttled on request units
        if self.retry_after_ms is not None:
            headers["x-ms-retry-after-ms"] = str(self.retry_after_ms)
        body = {
            "code": code,
            "message": f'Message: {{"Errors":["{text}"]}}\r\nActivityId: {activity}, '
            f"Request URI: {seen.path}, RequestStats: , SDK: herald-test-proxy",
        }
        return web.json_response(body, status=self.status, headers=headers)


class CosmosProxy:
    """HTTPS on 127.0.0.1 in front of `upstream` (the stand-in's endpoint, `https://host:port/`).

    Use as `async with CosmosProxy(upstream, tmp_dir) as proxy:`; `proxy.endpoint` is what a
    CosmosConfig points at (with verify_tls=False: the certificate is made at test time)."""

    def __init__(self, upstream: str, directory: Path) -> None:
        self.upstream = upstream.rstrip("/")
        self._directory = directory
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        *,
        times: int | None = 1,
        retry_after_ms: int | None = None,
        query: bool | None = None,
    ) -> Fault:
        """Inject a fault (see `Fault`); it applies from the next request on."""
        fault = Fault(method, path, status, times, retry_after_ms, query)
        self.faults.append(fault)
        return fault

    def heal(self) -> None:
        """Remove every fault: from now on everything is forwarded."""
        self.faults.clear()

    def requests(self, method: str, path: str, *, query: bool | None = None) -> list[Seen]:
        """What was received matching `method` and the `path` regex, in order."""
        return [
            s for s in self.seen
            if s.method == method and re.search(path, s.path)
            and (query is None or s.is_query == query)
        ]

    async def __aenter__(self) -> CosmosProxy:
        tls = self_signed(self._directory, "herald-cosmos-proxy")
        self._client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=False), trust_env=False, auto_decompress=False
        )
        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=tls.server_context())
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw
        seen = Seen(
            method=request.method,
            path=request.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
            at=time.monotonic(),
        )
        self.seen.append(seen)
        for fault in self.faults:
            if fault.matches(seen):
                fault.hits.append(seen)
                seen.status = fault.status
                return fault.response(seen)
        response = await self._forward(request, raw)
        seen.status = response.status
        return response

    async def _forward(self, request: web.Request, raw: bytes) -> web.Response:
        assert self._client is not None
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        async with self._client.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=raw
        ) as upstream:
            content = await upstream.read()
            answer = {
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP
            }
        if request.method == "GET" and request.path == "/":
            # The database account: its locations name the stand-in; name the proxy instead.
            upstream_netloc = self.upstream.split("://", 1)[1]
            content = content.replace(
                upstream_netloc.encode(), f"127.0.0.1:{self.port}".encode()
            )
        return web.Response(status=upstream.status, headers=answer, body=content)

