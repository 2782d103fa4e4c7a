"""Serving Herald from the command line: the listening socket, the banner, the server loop.

The socket is bound before anything is printed or opened, so a second Herald on a busy port
says so in one line and exits, instead of a banner and then a traceback.
"""

from __future__ import annotations

import errno
import gc
import socket
from collections.abc import Callable

from aiohttp import web

from config import Settings
from logs import AccessLog

__all__ = ["announce", "listen", "listen_problem", "serve"]


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    return socket.create_server((host, port), family=family, backlog=1024)


def listen_problem(settings: Settings, exc: OSError) -> str:
    where = f"{settings.host}:{settings.port}"
    if exc.errno == errno.EADDRINUSE:
        return (
            f"port {settings.port} is in use ({where}): is Herald already running? "
            "Stop it, or start this one with another PORT (e.g. PORT=3979 make run)."
        )
    return f"cannot listen on {where}: {exc.strerror or exc}"


def announce(
    settings: Settings, generated_api_key: str | None, write: Callable[[str], object]
) -> None:
    """How to connect, and the generated API key the one time it exists in the clear."""
    mode = "Emulator mode (no MicrosoftAppId)" if settings.emulator_mode else "Azure Bot mode"
    write(f"Herald on http://{settings.host}:{settings.port}/api/messages — {mode}")
    write(f"Start page: {settings.public_url.rstrip('/')}/")
    if generated_api_key:
        write("A backend API key was generated (stored hashed; shown only this once).")
        write("Paste this line into the shell you send notifications from:")
        write(f"    export HERALD_API_KEY={generated_api_key}")
        write("(the key goes in 'Authorization: Bearer <key>'; set HERALD_API_KEYS to choose keys)")


def serve(app: web.Application, listener: socket.socket) -> None:
    """Serve until interrupted (SIGINT/SIGTERM), the access log without secrets."""
    # Everything built so far (the SDK, pydantic models, the app) lives as long as the process:
    # moving it out of the collector's view keeps full collections short during a broadcast.
    gc.collect()
    gc.freeze()
    web.run_app(app, sock=listener, print=None, access_log_class=AccessLog)
