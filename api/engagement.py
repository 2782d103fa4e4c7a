"""Read and acknowledged, reported from outside the chat and the inbox page.

- `POST /api/notifications/{id}/read` and `.../acknowledge`: the mobile app (with the link
  token the bot gave its user, purpose `devices`, the one it registers its installation with)
  or a backend (API key or Entra ID token, naming `userId`). Surface `mobile` for the app,
  `api` for a backend.
- `POST /api/push/read` and `/api/push/acknowledge`: the browser's service worker, when the
  person clicks a Herald notification (or its acknowledge action). It proves whose browser it
  is the way it re-registers: with its subscription's endpoint and auth secret, which only
  that browser and Herald know (RFC 8291). Surface `webpush`.

Each is idempotent: read keeps the first time and surface, an acknowledgement is recorded
once (`first` says whether this call recorded it).
"""

from __future__ import annotations

import hmac
from typing import Final, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from api.auth import from_backend
from api.devices import DEVICES_PURPOSE
from api.http import ApiProblem, iso, model_response, path_param
from api.link_tokens import LinkTokenError, LinkTokens
from api.notifications import NOTIFICATION_ID, notification_id_parameter
from api.push import SubscriptionProof
from api.routing import (
    DATE_TIME,
    SELF_AUTHENTICATED,
    UNAUTHORIZED,
    Answer,
    Body,
    Route,
    backend_or_link,
    body,
    error,
    json_body,
)
from api.schemas import NotificationId, RecipientKey
from engagement import AckOutcome, EngagementService
from storage.protocols import UserStore
from storage.subscriptions import SubscriptionStore, subscription_id

__all__ = [
    "DEVICE_LINK",
    "ENGAGEMENT_REQUESTS",
    "EngagementApi",
    "PushEngagement",
    "UserEngagement",
]

PUSH_READ_PATH: Final = "/api/push/read"
PUSH_ACK_PATH: Final = "/api/push/acknowledge"
DEVICE_LINK: Final = backend_or_link(lambda request: DEVICES_PURPOSE)
"""The mobile app's reports: a backend, or the app's `devices` link token. (The service
worker's reports are self-authenticated: they check the subscription's secret.)"""


Surface = Literal["inbox", "chat", "teams", "teams-receipt", "webpush", "mobile", "api"]


class ReadAnswer(Answer):
    """Read: when it was first read (a repeat keeps that time)."""

    id: str
    userId: str
    read: Literal[True]
    readAt: str = Field(json_schema_extra=DATE_TIME)
    unread: int = Field(ge=0, description="The person's unread count now (for a badge).")


class AcknowledgeAnswer(Answer):
    """The acknowledgement as recorded: the first one stands."""

    id: str
    userId: str
    acknowledged: Literal[True]
    acknowledgedAt: str = Field(json_schema_extra=DATE_TIME)
    acknowledgedVia: Surface = Field(description="Where it was first acknowledged.")
    first: bool = Field(description="Whether this call recorded it (false: it already was).")
    unread: int = Field(ge=0, description="The person's unread count now (for a badge).")


class InboxAcknowledged(Answer):
    id: str
    acknowledged: Literal[True]
    acknowledgedAt: str = Field(json_schema_extra=DATE_TIME)
    acknowledgedVia: Surface
    first: bool

class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class UserEngagement(_Strict):
    """The body of POST /api/notifications/{id}/read and .../acknowledge (may be empty with
    the app's link token: it names the person)."""

    user_id: RecipientKey | None = Field(
        None,
        alias="userId",
        description="Whose read or acknowledgement this is (id or alias): required with an API "
        "key; with the app's link token it must be the token's user.",
    )


class PushEngagement(SubscriptionProof):
    """What the service worker reports: which notification, and its subscription (endpoint
    and auth secret) as proof of whose browser it is."""

    id: NotificationId = Field(description="The notification's id (the push payload's `id`).")


ENGAGEMENT_REQUESTS: Final = (UserEngagement, PushEngagement)


_WHO = (
    " Credentials: the mobile app's link token (purpose devices, the one it registers "
    "with: the person is the token's; surface `mobile`), or a backend's API key with "
    "`userId` (surface `api`), as Authorization: Bearer."
)
_NOT_OBJECT = "the body is a JSON object"
# Without a body, the app's report names nobody (its token does) and the browser's proves nothing
# (the model says what is missing).
_USER_BODY = Body(UserEngagement, required=False, absent_is_empty=True, not_object=_NOT_OBJECT)
_FORBIDDEN = error("A link token for another user than userId.")
_BROWSER = (
    " The service worker proves whose browser it is with its subscription's endpoint and "
    "auth secret (no other credential). Surface `webpush`."
)
_PROOF = Body(PushEngagement, absent_is_empty=True, not_object=_NOT_OBJECT)
_BAD_PROOF = error("No subscription Herald holds has that endpoint and secret.")


class EngagementApi:
    """Read and acknowledge for the mobile app, backends and the browser's service worker."""

    def __init__(
        self,
        engagement: EngagementService,
        users: UserStore,
        subscriptions: SubscriptionStore,
        tokens: LinkTokens,
    ) -> None:
        self._engagement = engagement
        self._users = users
        self._subscriptions = subscriptions
        self._tokens = tokens

    def routes(self) -> list[Route]:
        return [
            Route(
                "POST",
                "/api/notifications/{id}/read",
                self.read,
                DEVICE_LINK,
                doc={
                    "operationId": "readNotification",
                    "summary": "The person read the notification (the mobile app opened it).",
                    "description": "Idempotent: the first read's time and surface are kept. Read "
                    "anywhere is read everywhere: inbox pages update live, unread counts and "
                    "badges follow." + _WHO,
                    "parameters": [notification_id_parameter()],
                    "responses": {
                        "200": {"description": "Read.", "content": json_body(ReadAnswer)},
                        "400": error("Not a valid notification id or body (userId missing with "
                                     "an API key)."),
                        "401": UNAUTHORIZED,
                        "403": _FORBIDDEN,
                        "404": error("No such user, or the person has no such notification (not a "
                                     "recipient, or past the history's retention)."),
                        "413": error("Body too large."),
                        "415": error("Body is not application/json."),
                    },
                },
                body=_USER_BODY,
            ),
            Route(
                "POST",
                "/api/notifications/{id}/acknowledge",
                self.acknowledge,
                DEVICE_LINK,
                doc={
                    "operationId": "acknowledgeNotification",
                    "summary": "The person acknowledged the notification (its `acknowledge` "
                    "button in the mobile app).",
                    "description": "Recorded once, with time and surface; a repeat (from any "
                    "surface) answers the first record with `first: false`. Implies read." + _WHO,
                    "parameters": [notification_id_parameter()],
                    "responses": {
                        "200": {
                            "description": "Acknowledged.",
                            "content": json_body(AcknowledgeAnswer),
                        },
                        "400": error("Not a valid notification id or body."),
                        "401": UNAUTHORIZED,
                        "403": _FORBIDDEN,
                        "404": error("No such user, or the person has no such notification (or it "
                                     "was recalled)."),
                        "409": error("The notification asks for no acknowledgement."),
                        "413": error("Body too large."),
                        "415": error("Body is not application/json."),
                    },
                },
                body=_USER_BODY,
            ),
            Route(
                "POST",
                PUSH_READ_PATH,
                self.push_read,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "readFromBrowser",
                    "summary": "A click on a browser notification: read.",
                    "description": "Idempotent." + _BROWSER,
                    "security": [],
                    "responses": {
                        "200": {"description": "Read.", "content": json_body(ReadAnswer)},
                        "400": error("Not a valid body."),
                        "401": _BAD_PROOF,
                        "404": error("The browser's person has no such notification."),
                        "413": error("Body too large."),
                        "415": error("Body is not application/json."),
                    },
                },
                body=_PROOF,
            ),
            Route(
                "POST",
                PUSH_ACK_PATH,
                self.push_acknowledge,
                SELF_AUTHENTICATED,
                doc={
                    "operationId": "acknowledgeFromBrowser",
                    "summary": "The browser notification's acknowledge action.",
                    "description": "Recorded once." + _BROWSER,
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Acknowledged.",
                            "content": json_body(AcknowledgeAnswer),
                        },
                        "400": error("Not a valid body."),
                        "401": _BAD_PROOF,
                        "404": error("The browser's person has no such notification."),
                        "409": error("The notification asks for no acknowledgement."),
                        "413": error("Body too large."),
                        "415": error("Body is not application/json."),
                    },
                },
                body=_PROOF,
            ),
        ]

    async def _person(self, request: web.Request, body: UserEngagement) -> tuple[str, str]:
        """(user id, surface) of a report by the app or a backend."""
        if from_backend(request):
            if body.user_id is None:
                raise ApiProblem(
                    400, "missing_field", "userId is required with an API key", "userId"
                )
            resolved = await self._users.resolve([body.user_id])
            if body.user_id not in resolved:
                raise ApiProblem(
                    404, "not_found", f"no user with id or alias {body.user_id!r}", "userId"
                )
            return resolved[body.user_id], "api"
        # The middleware let the request through with a valid `devices` link token.
        _, _, credential = request.headers.get("Authorization", "").partition(" ")
        try:
            user_id = self._tokens.verify(credential.strip(), DEVICES_PURPOSE)
        except LinkTokenError as exc:  # checked by the middleware already; kept for safety
            raise ApiProblem(401, "unauthorized", f"invalid link token ({exc.reason})") from exc
        if body.user_id is not None and body.user_id != user_id:
            raise ApiProblem(403, "forbidden", "the link token was issued to another user",
                             "userId")
        return user_id, "mobile"

    async def _browser(self, request: web.Request) -> tuple[str, str]:
        """(user id, notification id) of a service worker's report, proven by the
        subscription's auth secret."""
        proof = await body(request, PushEngagement)
        found = await self._subscriptions.get(subscription_id(proof.endpoint))
        if found is None or not hmac.compare_digest(found.auth, proof.auth):
            raise ApiProblem(
                401, "invalid_proof", "that is no subscription Herald holds (or the wrong secret)"
            )
        return found.user_id, proof.id

    async def read(self, request: web.Request) -> web.Response:
        notification_id = path_param(request, "id", NOTIFICATION_ID)
        report = await body(request, UserEngagement)
        user_id, via = await self._person(request, report)
        return await self._read(user_id, notification_id, via)

    async def acknowledge(self, request: web.Request) -> web.Response:
        notification_id = path_param(request, "id", NOTIFICATION_ID)
        report = await body(request, UserEngagement)
        user_id, via = await self._person(request, report)
        outcome = await self._engagement.acknowledge(user_id, notification_id, via)
        return await self._acknowledged(user_id, notification_id, outcome)

    async def push_read(self, request: web.Request) -> web.Response:
        user_id, notification_id = await self._browser(request)
        return await self._read(user_id, notification_id, "webpush")

    async def push_acknowledge(self, request: web.Request) -> web.Response:
        user_id, notification_id = await self._browser(request)
        outcome = await self._engagement.acknowledge(user_id, notification_id, "webpush")
        return await self._acknowledged(user_id, notification_id, outcome)

    async def _read(self, user_id: str, notification_id: str, via: str) -> web.Response:
        read_at, unread = await self._engagement.read_counted(user_id, notification_id, via)
        if read_at is None:
            raise ApiProblem(
                404, "not_found", "this person has no such notification (or it expired)", "id"
            )
        return model_response(
            ReadAnswer,
            {
                "id": notification_id,
                "userId": user_id,
                "read": True,
                "readAt": iso(read_at, seconds=True),
                "unread": unread,
            }
        )

    async def _acknowledged(
        self, user_id: str, notification_id: str, outcome: AckOutcome
    ) -> web.Response:
        ack = outcome.acknowledgement
        if outcome.status == "not-asked":
            raise ApiProblem(
                409, "not_acknowledgeable", "this notification asks for no acknowledgement", "id"
            )
        if ack is None:  # not-in-inbox, recalled
            raise ApiProblem(
                404, "not_found", "this person has no such notification (or it was recalled)",
                "id",
            )
        return model_response(
            AcknowledgeAnswer,
            {
                "id": notification_id,
                "userId": user_id,
                "acknowledged": True,
                "acknowledgedAt": iso(ack.acknowledged_at, seconds=True),
                "acknowledgedVia": ack.via,
                "first": ack.first,
                "unread": await self._engagement.unread(user_id),
            }
        )
