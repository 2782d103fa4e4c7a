"""A stand-in for the Bot Framework Bot Connector service, on loopback.

Herald's bot and delivery workers talk to the Bot Connector REST API at an activity's
``serviceUrl`` (the Emulator and Teams provide it). Tests and benchmarks need that peer to be
real HTTP over real sockets -- so the SDK path and Herald's lean sender are exercised exactly as
in production -- yet scriptable: it must be able to answer the way Teams does when a user blocked
the bot (403), a conversation is gone (404), or the bot is throttled (429 + ``Retry-After``).

Two ways to use it:

* in pytest: ``async with ConnectorStandIn() as connector:`` then point the bot's
  ``serviceUrl`` at ``connector.url``; every request is recorded (:class:`Recorded`) and can be
  awaited with :meth:`ConnectorStandIn.wait_for`;
* standalone, as a fast sink for benchmarks:
  ``python -m tests.peers.connector --port 0 [--teams-limits] [--quiet]`` prints
  ``LISTENING http://127.0.0.1:<port>`` and keeps counters only (``GET /_stats``,
  ``POST /_arrivals`` for the first arrival of given conversations, ``POST /_reset``).

Routes (``{conversationId}`` may be URL-encoded; Teams ids such as ``19:x@thread.v2;messageid=1``
work either way):

* ``POST /v3/conversations`` -- create conversation
* ``POST /v3/conversations/{conversationId}/activities`` -- send to conversation
* ``POST /v3/conversations/{conversationId}/activities/{activityId}`` -- reply to activity
* ``PUT /v3/conversations/{conversationId}/activities/{activityId}`` -- update activity
* ``DELETE /v3/conversations/{conversationId}/activities/{activityId}`` -- delete activity
* ``GET /v3/conversations/{conversationId}/members[/{memberId}]`` -- roster
* ``GET /v3/conversations/{conversationId}/pagedmembers`` -- paged roster (Teams)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import logging
import math
import signal
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from aiohttp import web

from tests.peers.loopback import LoopbackServer

__all__ = [
    "DEFAULT_TENANT",
    "ERROR_CODES",
    "ERROR_MESSAGES",
    "ConnectorStandIn",
    "Counters",
    "Member",
    "Recorded",
    "TeamsLimits",
    "TenantCounters",
    "main",
]

DEFAULT_TENANT: Final = "default"
"""Tenant charged for activities that name none (Emulator, Web Chat)."""

Kind = Literal["send", "reply", "update", "delete", "create", "members", "member"]

ERROR_CODES: Final[Mapping[int, str]] = {
    # Default code per status, as Teams / the Bot Connector answer them ("Status codes from bot
    # conversational APIs"), so Herald's error mapping is tested against realistic bodies.
    400: "BadArgument",
    401: "Unauthorized",
    403: "BotNotInConversationRoster",
    404: "ConversationNotFound",
    409: "Conflict",
    412: "PreconditionFailed",
    413: "MessageSizeTooBig",
    429: "Throttled",
    500: "ServiceError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}
"""Default ``error.code`` per status; pass ``code=`` to :meth:`ConnectorStandIn.fail` for others
(403 alone has ``BotNotInConversationRoster``, ``ConversationBlockedByUser``,
``BotDisabledByAdmin``)."""

ERROR_MESSAGES: Final[Mapping[str, str]] = {
    "BadArgument": "The request was invalid.",
    "BadSyntax": "The body is not valid JSON.",
    "MissingProperty": "The activity has no type.",
    "Unauthorized": "Authorization has been denied for this request.",
    "BotNotInConversationRoster": "The bot is not part of the conversation roster.",
    "ConversationBlockedByUser": "User blocked the conversation with the bot.",
    "BotDisabledByAdmin": "The tenant admin disabled this bot.",
    "ConversationNotFound": "Conversation not found.",
    "ActivityNotFoundInConversation": "The activity was not found in the conversation.",
    "MemberNotFoundInConversation": "The member was not found in the conversation.",
    "Conflict": "The request conflicts with the current state.",
    "PreconditionFailed": "Precondition failed, please try again.",
    "MessageSizeTooBig": "Message size too big.",
    "Throttled": "Too many requests.",
    "ServiceError": "An internal server error occurred.",
    "BadGateway": "Bad gateway.",
    "ServiceUnavailable": "The service is temporarily unavailable.",
    "GatewayTimeout": "The gateway timed out.",
}
"""``error.message`` per known code, used when a script gives a code but no message."""

_LOG = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class TeamsLimits:
    """Teams-like throttling: token buckets per conversation and per tenant.

    Each bucket holds ``rate`` tokens (at least one) and refills continuously at ``rate`` per
    second; an activity POST/PUT takes one token from its conversation's and its tenant's bucket,
    or gets 429 with ``Retry-After`` when either is empty. Teams publishes the limits as "per bot
    per thread" and "per app per tenant"; the defaults are their one-second figures.
    """

    per_conversation: float = 7.0
    per_tenant: float = 50.0


@dataclass(frozen=True, slots=True)
class Member:
    """One roster entry, serialised like Teams' ``TeamsChannelAccount``."""

    id: str
    name: str
    aad_object_id: str | None = None
    email: str | None = None
    user_principal_name: str | None = None
    tenant_id: str | None = None
    given_name: str | None = None
    surname: str | None = None
    user_role: str | None = "user"

    def to_json(self) -> dict[str, str]:
        """The wire form: camelCase keys, absent fields left out as the service does."""
        pairs = {
            "id": self.id,
            "name": self.name,
            "aadObjectId": self.aad_object_id,
            "email": self.email,
            "userPrincipalName": self.user_principal_name,
            "tenantId": self.tenant_id,
            "givenName": self.given_name,
            "surname": self.surname,
            "userRole": self.user_role,
        }
        return {key: value for key, value in pairs.items() if value is not None}


@dataclass(frozen=True, slots=True)
class Recorded:
    """One request the stand-in answered (library mode only).

    ``activity_id`` is the id of the activity the request created or changed: the new id for a
    send/reply/create (``None`` when it failed), the path id for an update/delete.
    ``reply_to_id`` is the path id of a reply. ``at`` is ``time.monotonic()`` on arrival.
    """

    method: str
    path: str
    conversation_id: str | None
    activity_id: str | None
    body: dict[str, Any]
    headers: dict[str, str]
    at: float
    kind: Kind = "send"
    status: int = 200
    reply_to_id: str | None = None
    tenant_id: str | None = None
    authorization: str | None = None

    @property
    def ok(self) -> bool:
        """True when the stand-in accepted the request (2xx)."""
        return 200 <= self.status < 300


@dataclass(slots=True)
class TenantCounters:
    """What happened to one tenant's traffic."""

    accepted: int = 0
    updates: int = 0
    throttled: int = 0


@dataclass(slots=True)
class Counters:
    """Counters kept in every mode; cheap enough for a 10,000-message benchmark.

    ``accepted`` counts accepted sends and replies; ``updates``/``deletes``/``created`` their own
    kinds; ``throttled`` every 429 answered (scripted or Teams limits); ``failed`` every other
    non-2xx answer by status (401 included).
    """

    accepted: int = 0
    throttled: int = 0
    updates: int = 0
    deletes: int = 0
    created: int = 0
    requests: int = 0
    failed: dict[int, int] = field(default_factory=dict)
    per_conversation: dict[str, int] = field(default_factory=dict)
    first_by_conversation: dict[str, float] = field(default_factory=dict)
    per_tenant: dict[str, TenantCounters] = field(default_factory=dict)
    first_accept_at: float | None = None
    last_accept_at: float | None = None

    def tenant(self, tenant_id: str) -> TenantCounters:
        """The counters of ``tenant_id``, created on first use."""
        counters = self.per_tenant.get(tenant_id)
        if counters is None:
            counters = self.per_tenant[tenant_id] = TenantCounters()
        return counters

    def to_json(self) -> dict[str, Any]:
        """The ``GET /_stats`` body (times are the server's ``time.monotonic()``)."""
        span = (
            self.last_accept_at - self.first_accept_at
            if self.first_accept_at is not None and self.last_accept_at is not None
            else None
        )
        return {
            "accepted": self.accepted,
            "throttled": self.throttled,
            "updates": self.updates,
            "deletes": self.deletes,
            "created": self.created,
            "requests": self.requests,
            "failed": {str(status): n for status, n in sorted(self.failed.items())},
            "perConversation": dict(self.per_conversation),
            "perTenant": {
                tenant: {"accepted": c.accepted, "updates": c.updates, "throttled": c.throttled}
                for tenant, c in self.per_tenant.items()
            },
            "firstAcceptAt": self.first_accept_at,
            "lastAcceptAt": self.last_accept_at,
            "acceptSpanSeconds": span,
            "now": time.monotonic(),
        }


@dataclass(frozen=True, slots=True)
class _Answer:
    """A scripted non-2xx answer."""

    status: int
    code: str
    message: str
    retry_after: float | None = None
    delay: float = 0.0


@dataclass(slots=True)
class _Script:
    answer: _Answer
    remaining: int | None  # None: answer like this until cleared


class _TokenBucket:
    """Continuous-refill token bucket; ``clock`` is injected so tests can freeze time."""

    __slots__ = ("capacity", "rate", "stamp", "tokens")

    def __init__(self, rate: float, now: float) -> None:
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self.tokens = self.capacity
        self.stamp = now

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self) -> float:
        """Seconds until one token is available (0 when one is)."""
        # The tolerance keeps float noise (7 * (1/7) < 1.0) from turning a due token into a 429.
        return 0.0 if self.tokens >= 1.0 - 1e-9 else (1.0 - self.tokens) / self.rate


def _error_body(code: str, message: str) -> bytes:
    return json.dumps({"error": {"code": code, "message": message}}).encode()


def _format_retry_after(seconds: float) -> str:
    # Real services send whole seconds; fractions are allowed here so tests can stay fast.
    return str(int(seconds)) if float(seconds).is_integer() else repr(float(seconds))


def _tenant_of(body: Mapping[str, Any]) -> str | None:
    """Tenant of an activity or ConversationParameters, the places Teams puts it."""
    conversation = body.get("conversation")
    if isinstance(conversation, dict):
        # Teams sends "tenantId"; botbuilder-schema 4.x serialises the same field as "tenantID".
        tenant = conversation.get("tenantId") or conversation.get("tenantID")
        if isinstance(tenant, str) and tenant:
            return tenant
    tenant = body.get("tenantId")
    if isinstance(tenant, str) and tenant:
        return tenant
    channel_data = body.get("channelData")
    if isinstance(channel_data, dict):
        tenant_info = channel_data.get("tenant")
        if isinstance(tenant_info, dict):
            tenant = tenant_info.get("id")
            if isinstance(tenant, str) and tenant:
                return tenant
    return None


class _Failure(Exception):
    """Raised inside a handler to answer with the Bot Connector error shape."""

    def __init__(self, answer: _Answer) -> None:
        super().__init__(answer.code)
        self.answer = answer


class ConnectorStandIn(LoopbackServer):
    """A Bot Connector service on ``host:port`` (``port=0``: an ephemeral port).

    Options:
        teams_limits: enforce Teams-like token buckets (429 + ``Retry-After``).
        require_token: when set, /v3 requests without ``Authorization: Bearer <token>`` get 401.
        record: keep a :class:`Recorded` per request (turned off by the benchmark sink).
        clock: time source of the rate limiter, injectable for deterministic tests.
        access_log: log each request through aiohttp's access logger.
    """

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        teams_limits: TeamsLimits | None = None,
        require_token: str | None = None,
        record: bool = True,
        clock: Callable[[], float] = time.monotonic,
        access_log: bool = False,
    ) -> None:
        super().__init__(host, port)
        self.teams_limits = teams_limits
        self.require_token = require_token
        self.record = record
        self.clock = clock
        self.access_log = access_log
        self.recorded: list[Recorded] = []
        self.counters = Counters()
        self._expected_auth = f"Bearer {require_token}" if require_token is not None else None
        self._rosters: dict[str, dict[str, Member]] = {}
        self._activity_ids: dict[str, set[str]] = {}
        self._one_to_one: dict[tuple[str, str], str] = {}
        # Reach (issue 13): with `require_installation`, a 1:1 chat can be created only with a
        # member the bot's app is installed for (`install`); others get 403, as in Teams.
        self.require_installation = False
        self._installed: set[tuple[str, str]] = set()
        self._team_channels: dict[str, list[dict[str, str]]] = {}
        self._scripts: dict[str | None, deque[_Script]] = {}
        self._global_failure: _Answer | None = None
        self._delays: dict[str | None, float] = {}
        self._conversation_buckets: dict[str, _TokenBucket] = {}
        self._tenant_buckets: dict[str, _TokenBucket] = {}
        self._waiters: list[tuple[Callable[[], bool], asyncio.Future[None]]] = []
        # Ids are a per-instance random prefix plus a counter: unique across stand-ins and
        # restarts, and cheaper than a uuid4 per activity on the benchmark path.
        self._id_prefix = f"1:{uuid.uuid4().hex[:12]}"
        self._id_counter = itertools.count(1)

    # ----------------------------------------------------------------- lifetime

    def make_app(self) -> web.Application:
        """The aiohttp application; exposed so a test can mount it elsewhere if it must."""
        app = web.Application()
        conversation = "/v3/conversations/{conversation_id}"
        app.router.add_post("/v3/conversations", self._create_conversation)
        app.router.add_post(conversation + "/activities", self._send)
        app.router.add_post(conversation + "/activities/{activity_id}", self._reply)
        app.router.add_put(conversation + "/activities/{activity_id}", self._update)
        app.router.add_delete(conversation + "/activities/{activity_id}", self._delete)
        app.router.add_get(conversation + "/members", self._members)
        app.router.add_get(conversation + "/pagedmembers", self._paged_members)
        app.router.add_get(conversation + "/members/{member_id}", self._member)
        app.router.add_get("/v3/teams/{team_id}/conversations", self._channels)
        app.router.add_get("/_stats", self._stats)
        app.router.add_post("/_arrivals", self._arrivals)
        app.router.add_post("/_reset", self._reset)
        return app

    def access_logger(self) -> logging.Logger | None:
        return _LOG if self.access_log else None

    # ------------------------------------------------------------ configuration

    def set_roster(self, conversation_id: str, members: Iterable[Member]) -> None:
        """Replace the members ``GET .../members`` returns for ``conversation_id``."""
        self._rosters[conversation_id] = {member.id: member for member in members}

    def add_member(self, conversation_id: str, member: Member) -> None:
        """Add (or replace) one member of ``conversation_id``'s roster."""
        self._rosters.setdefault(conversation_id, {})[member.id] = member

    def install(self, member_id: str, tenant: str | None = None) -> str:
        """The bot's app is installed for `member_id`: creating their 1:1 chat works from
        now on. Returns the chat's conversation id (what Graph's `installedApps/{id}/chat`
        gives)."""
        key = (tenant or DEFAULT_TENANT, member_id)
        self._installed.add(key)
        existing = self._one_to_one.get(key)
        if existing is None:
            existing = self._one_to_one[key] = f"a:{uuid.uuid4().hex}"
        return existing

    def set_team_channels(self, team_id: str, channels: Iterable[tuple[str, str | None]]) -> None:
        """The channels `GET /v3/teams/{team_id}/conversations` lists: (id, name); the General
        channel's id is the team's and it has no name."""
        self._team_channels[team_id] = [
            {"id": cid, **({"name": name} if name else {})} for cid, name in channels
        ]

    def fail(
        self,
        conversation_id: str | None,
        status: int = 429,
        *,
        retry_after: float | None = None,
        times: int | None = 1,
        code: str | None = None,
        message: str | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next ``times`` activity POST/PUTs of a conversation with an error.

        ``conversation_id=None`` scripts the next calls of any conversation (and of create
        conversation); a conversation's own script is used first. ``times=None`` keeps failing
        until :meth:`clear_failures` (a permanently blocked user). ``code``/``message`` default to
        :data:`ERROR_CODES`; ``retry_after`` (seconds) becomes the ``Retry-After`` header.
        Calls queue up: ``fail(c, 429); fail(c, 503)`` answers 429, then 503, then succeeds.
        """
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for 'until cleared'")
        answer = self._answer(status, code, message, retry_after, delay)
        queue = self._scripts.setdefault(conversation_id, deque())
        if times is None:
            queue.append(_Script(answer, None))
        else:
            queue.extend(_Script(answer, 1) for _ in range(times))

    def fail_all(
        self,
        status: int | None,
        *,
        retry_after: float | None = None,
        code: str | None = None,
        message: str | None = None,
    ) -> None:
        """Answer every /v3 request with ``status`` until called with ``None`` (an outage)."""
        self._global_failure = (
            None if status is None else self._answer(status, code, message, retry_after, 0.0)
        )

    def slow(self, conversation_id: str | None, seconds: float) -> None:
        """Delay every /v3 answer for ``conversation_id`` (``None``: all) by ``seconds``.

        ``seconds=0`` ends it. Lets a test hold requests in flight (timeouts, concurrency caps).
        """
        if seconds > 0:
            self._delays[conversation_id] = seconds
        else:
            self._delays.pop(conversation_id, None)

    def clear_failures(self) -> None:
        """Forget scripted failures, the global failure and delays."""
        self._scripts.clear()
        self._global_failure = None
        self._delays.clear()

    @staticmethod
    def _answer(
        status: int,
        code: str | None,
        message: str | None,
        retry_after: float | None,
        delay: float,
    ) -> _Answer:
        if not 400 <= status <= 599:
            raise ValueError(f"scripted answers must be errors, got {status}")
        code = code or ERROR_CODES.get(status, "ServiceError")
        message = message or ERROR_MESSAGES.get(code, f"The request failed ({status}).")
        return _Answer(status, code, message, retry_after, delay)

    # ----------------------------------------------------------------- queries

    def sent(self, conversation_id: str | None = None) -> list[Recorded]:
        """Accepted sends and replies (in arrival order), optionally of one conversation."""
        return self._select(("send", "reply"), conversation_id)

    def updates(self, conversation_id: str | None = None) -> list[Recorded]:
        """Accepted activity updates (PUT)."""
        return self._select(("update",), conversation_id)

    def deletes(self, conversation_id: str | None = None) -> list[Recorded]:
        """Accepted activity deletions."""
        return self._select(("delete",), conversation_id)

    def created(self) -> list[Recorded]:
        """Accepted create-conversation calls."""
        return self._select(("create",), None)

    def rejected(self, conversation_id: str | None = None) -> list[Recorded]:
        """Every request answered with an error (scripted, throttled, 401, 404...)."""
        return [
            r
            for r in self.recorded
            if not r.ok and (conversation_id is None or r.conversation_id == conversation_id)
        ]

    def _select(self, kinds: tuple[Kind, ...], conversation_id: str | None) -> list[Recorded]:
        return [
            r
            for r in self.recorded
            if r.ok
            and r.kind in kinds
            and (conversation_id is None or r.conversation_id == conversation_id)
        ]

    async def wait_for(
        self,
        condition: int | Callable[[ConnectorStandIn], bool],
        timeout: float = 5.0,
    ) -> list[Recorded]:
        """Wait until ``condition`` holds and return :meth:`sent` at that moment.

        An ``int`` waits for that many accepted sends (``counters.accepted`` when not recording);
        a callable gets this stand-in and is re-checked after every answered request, so there is
        no polling. Raises ``TimeoutError`` naming what was seen instead.
        """
        if isinstance(condition, int):
            count = condition
            if self.record:

                def check() -> bool:
                    return len(self.sent()) >= count
            else:

                def check() -> bool:
                    return self.counters.accepted >= count
        else:
            predicate = condition

            def check() -> bool:
                return predicate(self)

        if not check():
            future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            waiter = (check, future)
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout(timeout):
                    await future
            except TimeoutError:
                raise TimeoutError(
                    f"connector condition not met within {timeout}s: "
                    f"{len(self.sent())} sent, {self.counters.accepted} accepted, "
                    f"{self.counters.throttled} throttled, failed={self.counters.failed}"
                ) from None
            finally:
                self._waiters.remove(waiter)
        return self.sent()

    def stats(self) -> dict[str, Any]:
        """The same JSON as ``GET /_stats``."""
        return self.counters.to_json()

    def clear(self) -> None:
        """Forget recorded requests (counters, ids and scripts stay)."""
        self.recorded.clear()

    def reset(self) -> None:
        """Back to a fresh server, rosters excepted: recordings, counters, known activity ids,
        scripted failures, delays and rate-limit buckets."""
        self.recorded.clear()
        self.counters = Counters()
        self._activity_ids.clear()
        self._one_to_one.clear()
        self.clear_failures()
        self._conversation_buckets.clear()
        self._tenant_buckets.clear()

    # ---------------------------------------------------------------- handlers

    async def _send(self, request: web.Request) -> web.StreamResponse:
        return await self._activity(request, "send")

    async def _reply(self, request: web.Request) -> web.StreamResponse:
        return await self._activity(request, "reply")

    async def _update(self, request: web.Request) -> web.StreamResponse:
        return await self._activity(request, "update")

    async def _activity(self, request: web.Request, kind: Kind) -> web.StreamResponse:
        """Send, reply and update: the hot path of a broadcast, so kept lean."""
        conversation_id = request.match_info["conversation_id"]
        path_activity_id = request.match_info.get("activity_id")
        at = time.monotonic()
        body: dict[str, Any] = {}
        tenant: str | None = None
        status = 200
        activity_id: str | None = None
        try:
            self._authorize(request)
            if self._delays:  # tested inline: no coroutine per request on the sink path
                await self._delay(conversation_id)
            body = await self._read_activity(request)
            tenant = _tenant_of(body) or DEFAULT_TENANT
            if self._scripts:
                await self._scripted(conversation_id)
            if self.teams_limits is not None:
                self._throttle(conversation_id, tenant)
            counters = self.counters
            if kind == "update":
                assert path_activity_id is not None
                known = self._activity_ids.get(conversation_id)
                if known is None or path_activity_id not in known:
                    raise _Failure(
                        self._answer(404, "ActivityNotFoundInConversation", None, None, 0.0)
                    )
                activity_id = path_activity_id
                counters.updates += 1
                counters.tenant(tenant).updates += 1
                response = web.json_response({"id": activity_id})
            else:
                activity_id = self._new_id()
                self._activity_ids.setdefault(conversation_id, set()).add(activity_id)
                counters.accepted += 1
                counters.tenant(tenant).accepted += 1
                counters.per_conversation[conversation_id] = (
                    counters.per_conversation.get(conversation_id, 0) + 1
                )
                counters.first_by_conversation.setdefault(conversation_id, at)
                if counters.first_accept_at is None:
                    counters.first_accept_at = at
                counters.last_accept_at = at
                response = web.Response(
                    body=b'{"id":"' + activity_id.encode() + b'"}',
                    content_type="application/json",
                )
        except _Failure as failure:
            status = failure.answer.status
            response = self._error_response(failure.answer, tenant)
        self._finish(
            request,
            kind,
            status,
            at,
            conversation_id,
            path_activity_id if kind == "update" else activity_id,
            body,
            tenant,
            reply_to_id=path_activity_id if kind == "reply" else None,
        )
        return response

    async def _delete(self, request: web.Request) -> web.StreamResponse:
        conversation_id = request.match_info["conversation_id"]
        activity_id = request.match_info["activity_id"]
        at = time.monotonic()
        status = 200
        try:
            self._authorize(request)
            await self._delay(conversation_id)
            self._activity_ids.get(conversation_id, set()).discard(activity_id)
            self.counters.deletes += 1
            response = web.Response(status=200)
        except _Failure as failure:
            status = failure.answer.status
            response = self._error_response(failure.answer, None)
        self._finish(request, "delete", status, at, conversation_id, activity_id, {}, None)
        return response

    async def _create_conversation(self, request: web.Request) -> web.StreamResponse:
        at = time.monotonic()
        status = 200
        body: dict[str, Any] = {}
        conversation_id: str | None = None
        activity_id: str | None = None
        tenant: str | None = None
        try:
            self._authorize(request)
            await self._delay(None)
            body = await self._read_json(request)
            tenant = _tenant_of(body)
            await self._scripted(None)
            self._check_installed(body, tenant)
            if self.teams_limits is not None:
                # Creating a conversation counts in the app's per-tenant budget like a send.
                self._throttle_tenant(tenant or DEFAULT_TENANT)
            conversation_id = self._conversation_for(body, tenant)
            result: dict[str, str] = {"id": conversation_id, "serviceUrl": self.url}
            activity = body.get("activity")
            if isinstance(activity, dict):
                # The first message travels with the create call; it is a send in that chat.
                activity_id = self._new_id()
                self._activity_ids.setdefault(conversation_id, set()).add(activity_id)
                result["activityId"] = activity_id
            self.counters.created += 1
            response = web.json_response(result)
        except _Failure as failure:
            status = failure.answer.status
            response = self._error_response(failure.answer, tenant)
        self._finish(request, "create", status, at, conversation_id, activity_id, body, tenant)
        return response

    def _check_installed(self, body: Mapping[str, Any], tenant: str | None) -> None:
        """With `require_installation`: 403 for a 1:1 chat with a member the app is not
        installed for (Teams will not let a bot start a chat with somebody who lacks it)."""
        members = body.get("members")
        if not self.require_installation or body.get("isGroup") or not isinstance(members, list):
            return
        for member in members:
            member_id = member.get("id") if isinstance(member, dict) else None
            if (tenant or DEFAULT_TENANT, member_id) not in self._installed:
                raise _Failure(
                    self._answer(
                        403, "Forbidden", "The bot is not installed for this user.", None, 0.0
                    )
                )

    async def _channels(self, request: web.Request) -> web.StreamResponse:
        """`GET /v3/teams/{teamId}/conversations`: the team's channels (404: unknown team)."""
        team_id = request.match_info["team_id"]
        at = time.monotonic()
        status = 200
        try:
            self._authorize(request)
            channels = self._team_channels.get(team_id)
            if channels is None:
                raise _Failure(self._answer(404, None, None, None, 0.0))
            response = web.json_response({"conversations": channels})
        except _Failure as failure:
            status = failure.answer.status
            response = self._error_response(failure.answer, None)
        self._finish(request, "members", status, at, team_id, None, {}, None)
        return response

    def _new_id(self) -> str:
        return f"{self._id_prefix}{next(self._id_counter):08x}"

    def _conversation_for(self, body: Mapping[str, Any], tenant: str | None) -> str:
        """A new id, except that a 1:1 chat with the same member is reused, as Teams does."""
        members = body.get("members")
        is_group = bool(body.get("isGroup"))
        if not is_group and isinstance(members, list) and len(members) == 1:
            member = members[0]
            member_id = member.get("id") if isinstance(member, dict) else None
            if isinstance(member_id, str):
                key = (tenant or DEFAULT_TENANT, member_id)
                existing = self._one_to_one.get(key)
                if existing is None:
                    existing = self._one_to_one[key] = f"a:{uuid.uuid4().hex}"
                return existing
        return f"19:{uuid.uuid4().hex}@thread.v2" if is_group else f"a:{uuid.uuid4().hex}"

    async def _members(self, request: web.Request) -> web.StreamResponse:
        conversation_id = request.match_info["conversation_id"]
        return await self._roster_call(
            request,
            "members",
            conversation_id,
            None,
            lambda roster: [member.to_json() for member in roster.values()],
        )

    async def _paged_members(self, request: web.Request) -> web.StreamResponse:
        conversation_id = request.match_info["conversation_id"]
        try:
            page_size = max(1, int(request.query.get("pageSize", "200")))
            start = int(request.query.get("continuationToken") or "0")
        except ValueError:
            page_size, start = 200, 0

        def page(roster: dict[str, Member]) -> object:
            members = list(roster.values())
            chunk = members[start : start + page_size]
            more = start + page_size < len(members)
            result: dict[str, object] = {"members": [member.to_json() for member in chunk]}
            if more:
                result["continuationToken"] = str(start + page_size)
            return result

        return await self._roster_call(request, "members", conversation_id, None, page)

    async def _member(self, request: web.Request) -> web.StreamResponse:
        conversation_id = request.match_info["conversation_id"]
        member_id = request.match_info["member_id"]

        def find(roster: dict[str, Member]) -> object:
            member = roster.get(member_id)
            if member is None:
                # Teams also accepts the AAD object id in place of the channel id.
                member = next(
                    (m for m in roster.values() if m.aad_object_id == member_id),
                    None,
                )
            if member is None:
                raise _Failure(self._answer(404, "MemberNotFoundInConversation", None, None, 0.0))
            return member.to_json()

        return await self._roster_call(request, "member", conversation_id, member_id, find)

    async def _roster_call(
        self,
        request: web.Request,
        kind: Kind,
        conversation_id: str,
        member_id: str | None,
        answer: Callable[[dict[str, Member]], object],
    ) -> web.StreamResponse:
        at = time.monotonic()
        status = 200
        try:
            self._authorize(request)
            await self._delay(conversation_id)
            roster = self._rosters.get(conversation_id)
            if roster is None:
                raise _Failure(self._answer(404, None, None, None, 0.0))
            response = web.json_response(answer(roster))
        except _Failure as failure:
            status = failure.answer.status
            response = self._error_response(failure.answer, None)
        self._finish(request, kind, status, at, conversation_id, member_id, {}, None)
        return response

    async def _stats(self, request: web.Request) -> web.StreamResponse:
        return web.json_response(self.stats())

    async def _arrivals(self, request: web.Request) -> web.StreamResponse:
        """``POST /_arrivals {"conversations": [...]}`` → when each first got an accepted
        send (``time.monotonic()``) or null: latencies of single messages in benchmarks."""
        wanted = (await request.json()).get("conversations") or []
        first = self.counters.first_by_conversation
        return web.json_response({c: first.get(c) for c in wanted if isinstance(c, str)})

    async def _reset(self, request: web.Request) -> web.StreamResponse:
        self.reset()
        return web.json_response({"reset": True})

    # ----------------------------------------------------------------- helpers

    def _authorize(self, request: web.Request) -> None:
        failure = self._global_failure
        if self._expected_auth is not None and (
            request.headers.get("Authorization") != self._expected_auth
        ):
            raise _Failure(self._answer(401, None, None, None, 0.0))
        if failure is not None:
            raise _Failure(failure)

    async def _delay(self, conversation_id: str | None) -> None:
        if not self._delays:
            return
        seconds = self._delays.get(conversation_id) or self._delays.get(None)
        if seconds:
            await asyncio.sleep(seconds)

    async def _scripted(self, conversation_id: str | None) -> None:
        """Raise the next scripted answer for this conversation, if any, after its delay."""
        if not self._scripts:
            return
        for key in (conversation_id, None) if conversation_id is not None else (None,):
            queue = self._scripts.get(key)
            if queue:
                script = queue[0]
                if script.remaining is not None:
                    script.remaining -= 1
                    if script.remaining <= 0:
                        queue.popleft()
                if script.answer.delay > 0:
                    await asyncio.sleep(script.answer.delay)
                raise _Failure(script.answer)

    def _throttle(self, conversation_id: str, tenant: str) -> None:
        limits = self.teams_limits
        if limits is None:
            return
        now = self.clock()
        conversation_bucket = self._conversation_buckets.get(conversation_id)
        if conversation_bucket is None:
            conversation_bucket = _TokenBucket(limits.per_conversation, now)
            self._conversation_buckets[conversation_id] = conversation_bucket
        tenant_bucket = self._tenant_buckets.get(tenant)
        if tenant_bucket is None:
            tenant_bucket = self._tenant_buckets[tenant] = _TokenBucket(limits.per_tenant, now)
        conversation_bucket.refill(now)
        tenant_bucket.refill(now)
        wait = max(conversation_bucket.wait(), tenant_bucket.wait())
        if wait > 0:
            # A rejected call takes no token from either bucket, as a caller would expect.
            raise _Failure(self._answer(429, None, None, max(1, math.ceil(wait)), 0.0))
        conversation_bucket.tokens -= 1.0
        tenant_bucket.tokens -= 1.0

    def _throttle_tenant(self, tenant: str) -> None:
        """The per-tenant bucket alone (a call that is in no conversation yet)."""
        limits = self.teams_limits
        assert limits is not None
        now = self.clock()
        bucket = self._tenant_buckets.get(tenant)
        if bucket is None:
            bucket = self._tenant_buckets[tenant] = _TokenBucket(limits.per_tenant, now)
        bucket.refill(now)
        wait = bucket.wait()
        if wait > 0:
            raise _Failure(self._answer(429, None, None, max(1, math.ceil(wait)), 0.0))
        bucket.tokens -= 1.0

    async def _read_json(self, request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            raise _Failure(_Answer(400, "BadSyntax", "The body is not valid JSON.")) from None
        if not isinstance(body, dict):
            raise _Failure(_Answer(400, "BadArgument", "The body must be a JSON object."))
        return body

    async def _read_activity(self, request: web.Request) -> dict[str, Any]:
        body = await self._read_json(request)
        if not isinstance(body.get("type"), str) or not body["type"]:
            raise _Failure(_Answer(400, "MissingProperty", "The activity has no type."))
        return body

    def _error_response(self, answer: _Answer, tenant: str | None) -> web.Response:
        counters = self.counters
        if answer.status == 429:
            counters.throttled += 1
            if tenant is not None:
                counters.tenant(tenant).throttled += 1
        else:
            counters.failed[answer.status] = counters.failed.get(answer.status, 0) + 1
        headers = (
            {"Retry-After": _format_retry_after(answer.retry_after)}
            if answer.retry_after is not None
            else None
        )
        return web.Response(
            status=answer.status,
            body=_error_body(answer.code, answer.message),
            content_type="application/json",
            headers=headers,
        )

    def _finish(
        self,
        request: web.Request,
        kind: Kind,
        status: int,
        at: float,
        conversation_id: str | None,
        activity_id: str | None,
        body: dict[str, Any],
        tenant: str | None,
        *,
        reply_to_id: str | None = None,
    ) -> None:
        """Count, record (library mode) and wake waiters."""
        self.counters.requests += 1
        if self.record:
            self.recorded.append(
                Recorded(
                    method=request.method,
                    path=request.rel_url.raw_path,
                    conversation_id=conversation_id,
                    activity_id=activity_id,
                    body=body,
                    headers=dict(request.headers),
                    at=at,
                    kind=kind,
                    status=status,
                    reply_to_id=reply_to_id,
                    tenant_id=tenant,
                    authorization=request.headers.get("Authorization"),
                )
            )
        if self._waiters:
            for check, future in list(self._waiters):
                if not future.done() and check():
                    future.set_result(None)


# --------------------------------------------------------------------- standalone


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m tests.peers.connector",
        description="Bot Connector stand-in: a counting sink for benchmarks.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--teams-limits", action="store_true", help="enforce Teams token buckets")
    defaults = TeamsLimits()
    parser.add_argument("--per-conversation", type=float, default=defaults.per_conversation)
    parser.add_argument("--per-tenant", type=float, default=defaults.per_tenant)
    parser.add_argument("--require-token", default=None, help="401 without this bearer token")
    parser.add_argument("--quiet", action="store_true", help="no access log on stderr")
    return parser.parse_args(argv)


async def _serve(args: argparse.Namespace) -> None:
    if not args.quiet:
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
    limits = (
        TeamsLimits(per_conversation=args.per_conversation, per_tenant=args.per_tenant)
        if args.teams_limits
        else None
    )
    connector = ConnectorStandIn(
        host=args.host,
        port=args.port,
        teams_limits=limits,
        require_token=args.require_token,
        record=False,
        access_log=not args.quiet,
    )
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stopping.set)
    async with connector:
        # stdout carries only this line, so a parent process can read it to find the port.
        print(f"LISTENING {connector.url}", flush=True)
        await stopping.wait()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m tests.peers.connector``; serves until SIGTERM/SIGINT."""
    args = _parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
