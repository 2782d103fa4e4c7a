"""GET/PUT /api/users/{id}/preferences: a user's preference document, with etags.

GET answers the document (the default one for a user who never set any) and its `ETag`. PUT
replaces the whole document and needs `If-Match` with that etag (RFC 9110): without it the
answer is 428, with a stale one 412 and nothing changes, so two writers (two backends, or a
backend and the user's own card in chat) never silently overwrite each other.
"""

from __future__ import annotations

from typing import Final
from urllib.parse import quote

from aiohttp import web

from api.http import ApiProblem, json_response, path_param, read_json
from api.routing import BACKEND, Route
from api.users import USER_KEY
from errors import ConcurrencyConflict, NotFound
from preferences.model import UserPreferences
from preferences.service import PreferencesService, Snapshot
from storage.protocols import UserStore

__all__ = ["PreferencesApi", "format_etag", "parse_etags"]

_ANY: Final = "*"


def format_etag(etag: str) -> str:
    """A strong entity tag as a header value."""
    return f'"{etag}"'


def parse_etags(header: str) -> list[str] | None:
    """The entity tags of an If-Match / If-None-Match value; None for `*`.

    Weak tags (`W/"x"`) are kept with their prefix: If-Match compares strongly, so they never
    match an etag Herald issued. An unquoted tag is taken as it is.
    """
    value = header.strip()
    if value == _ANY:
        return None
    tags: list[str] = []
    for part in value.split(","):
        tag = part.strip()
        if not tag:
            continue
        if tag.startswith('"') and tag.endswith('"') and len(tag) >= 2:
            tag = tag[1:-1]
        tags.append(tag)
    return tags


class PreferencesApi:
    """Preferences for backends holding an API key."""

    def __init__(self, users: UserStore, preferences: PreferencesService) -> None:
        self._users = users
        self._preferences = preferences

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/api/users/{id}/preferences", self.get, BACKEND),
            Route("PUT", "/api/users/{id}/preferences", self.put, BACKEND),
        ]

    async def _user(self, request: web.Request) -> str:
        key = path_param(request, "id", USER_KEY)
        resolved = await self._users.resolve([key])
        if key not in resolved:
            raise ApiProblem(404, "not_found", f"no user with id or alias {key!r}", "id")
        return resolved[key]

    async def _read(self, user_id: str) -> Snapshot:
        try:
            return await self._preferences.read(user_id)
        except NotFound as exc:
            raise ApiProblem(404, "not_found", f"no user with id {user_id!r}", "id") from exc

    @staticmethod
    def _answer(snapshot: Snapshot, user_id: str) -> web.Response:
        return json_response(
            snapshot.prefs.to_json_dict(),
            headers={
                "ETag": format_etag(snapshot.etag),
                "Content-Location": f"/api/users/{quote(user_id, safe=':@')}/preferences",
                "Cache-Control": "no-store",
            },
        )

    async def get(self, request: web.Request) -> web.StreamResponse:
        user_id = await self._user(request)
        snapshot = await self._read(user_id)
        if_none_match = request.headers.get("If-None-Match")
        if if_none_match is not None:
            tags = parse_etags(if_none_match)
            # If-None-Match compares weakly: W/"x" matches "x".
            if tags is None or snapshot.etag in (t.removeprefix("W/").strip('"') for t in tags):
                return web.Response(status=304, headers={"ETag": format_etag(snapshot.etag)})
        return self._answer(snapshot, user_id)

    async def put(self, request: web.Request) -> web.Response:
        user_id = await self._user(request)
        if_match = request.headers.get("If-Match")
        if if_match is None or not if_match.strip():
            raise ApiProblem(
                428,
                "precondition_required",
                "send If-Match with the ETag from GET /api/users/{id}/preferences, so that "
                "changes made meanwhile are not overwritten",
                "If-Match",
            )
        wanted = UserPreferences.from_json_dict(await _object(request))
        tags = parse_etags(if_match)
        current = await self._read(user_id)
        if tags is None:
            expected = current.etag  # `*`: the user exists, so any current document matches
        elif current.etag in tags:
            expected = current.etag
        else:
            raise _stale()
        try:
            saved = await self._preferences.replace(user_id, wanted, expected)
        except ConcurrencyConflict as exc:
            raise _stale() from exc
        except NotFound as exc:
            raise ApiProblem(404, "not_found", f"no user with id {user_id!r}", "id") from exc
        return self._answer(saved, user_id)


async def _object(request: web.Request) -> dict[str, object]:
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiProblem(400, "invalid_body", "the preferences document is a JSON object")
    return body


def _stale() -> ApiProblem:
    return ApiProblem(
        412,
        "precondition_failed",
        "the preferences changed since that ETag was read; GET them again and reapply your change",
        "If-Match",
    )
