"""The live pages: /inbox/ (a person's notifications) and /notifications/{id} (an operator's
view of one notification's delivery), plain HTML/JS/CSS from web/, no build step.

Served like the push consent page (api/push_page.py): read once at start-up, from memory, with
headers that keep the token a page arrives with to itself (no Referer, no caching of the page,
no framing, only its own scripts and only its own origin to talk to). The pages hold no data:
they read everything from /api/ with the token or API key they were opened with.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web
from pydantic import ValidationError

from api.notifications import NOTIFICATION_ID
from api.push_page import WEB_DIR
from api.routing import PUBLIC, Route

__all__ = ["LivePages"]

_ASSETS: Final[dict[str, tuple[str, str]]] = {
    "/inbox/": ("inbox.html", "text/html"),
    "/inbox/inbox.js": ("inbox.js", "text/javascript"),
    "/inbox/inbox.css": ("inbox.css", "text/css"),
    "/operator/operator.js": ("operator.js", "text/javascript"),
    "/operator/operator.css": ("operator.css", "text/css"),
}
_OPERATOR_PAGE: Final = "operator.html"

_SECURITY_HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' https: data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
}


def _response(body: bytes, content_type: str) -> web.Response:
    headers = dict(_SECURITY_HEADERS)
    # A page's URL may carry a token: never stored. Scripts are revalidated on each load.
    headers["Cache-Control"] = "no-store" if content_type == "text/html" else "no-cache"
    return web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)


class LivePages:
    """Serves the inbox and operator pages and their scripts and styles."""

    def __init__(self, web_dir: Path = WEB_DIR) -> None:
        self._files = {
            path: ((web_dir / name).read_bytes(), content_type)
            for path, (name, content_type) in _ASSETS.items()
        }
        self._operator = (web_dir / _OPERATOR_PAGE).read_bytes()

    def routes(self) -> list[Route]:
        return [
            Route("GET", "/inbox", self.inbox_redirect, PUBLIC),
            Route("GET", "/notifications/{id}", self.operator, PUBLIC),
            *(Route("GET", path, self.asset, PUBLIC) for path in _ASSETS),
        ]

    async def inbox_redirect(self, request: web.Request) -> web.StreamResponse:
        location = "/inbox/" + (f"?{request.query_string}" if request.query_string else "")
        raise web.HTTPPermanentRedirect(location, headers={"Referrer-Policy": "no-referrer"})

    async def asset(self, request: web.Request) -> web.Response:
        body, content_type = self._files[request.path]
        return _response(body, content_type)

    async def operator(self, request: web.Request) -> web.Response:
        """The same page for every notification: its script reads the id from the address."""
        try:
            NOTIFICATION_ID.validate_python(request.match_info["id"])
        except ValidationError:
            raise web.HTTPNotFound(text="no such notification page") from None
        return _response(self._operator, "text/html")
