"""Send a notification to Herald from a shell, and optionally follow its delivery.

    python -m tools.notify --type it.outage --title "Mail is down" --all --follow
    python -m tools.notify --to ada@contoso.com --to grace@contoso.com --type case.assigned \\
        --title "Case 4711" --text "Customer: Contoso" --link https://crm.example.com/cases/4711
    python -m tools.notify --file event.json --follow

The API key comes from --api-key or HERALD_API_KEY; or, for a Herald that accepts Entra ID
tokens, an access token is fetched with msal's client-credentials flow from --tenant,
--client-id, --client-secret and --scope (or HERALD_TENANT_ID, HERALD_CLIENT_ID,
HERALD_CLIENT_SECRET, HERALD_SCOPE; --authority-host / HERALD_AUTHORITY_HOST for national
clouds, --ca-file / HERALD_CA_FILE to trust exactly one CA file). The server comes from --url or
HERALD_URL (default http://localhost:3978). --page-link prints a link to the notification's
live delivery page that works without an API key for HERALD_LINK_MINUTES. Exit status: 0
accepted (and, with --follow, completed with nothing failed), 1 delivered with failures or dead
targets, 2 rejected or unreachable, 3 --follow gave up (--timeout) before delivery completed,
4 completed but nobody was reached because every recipient is unknown to Herald.

Run it with the project's Python (`.venv/bin/python -m tools.notify`, or `make notify
ARGS="..."`): it needs httpx from requirements.txt.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

try:
    import httpx
except ModuleNotFoundError as missing:  # run with a Python other than the project's
    sys.stderr.write(
        f"notify: {missing.name} is not installed for {sys.executable}: run it with the "
        "project's Python, .venv/bin/python -m tools.notify (make run creates .venv)\n"
    )
    raise SystemExit(2) from None

__all__ = ["build_event", "entra_token", "main"]

_BAR_WIDTH = 30

EXIT_OK = 0
EXIT_FAILURES = 1
EXIT_REJECTED = 2
EXIT_GAVE_UP = 3
EXIT_NOBODY = 4
_UNKNOWN_USER = "skipped:unknown-user"


def build_event(args: argparse.Namespace) -> dict[str, Any]:
    """The event body from a JSON file and/or the command-line fields (flags win)."""
    event: dict[str, Any] = {}
    if args.file:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        loaded = json.loads(text)
        if not isinstance(loaded, dict):
            raise ValueError("the event file must hold one JSON object")
        event.update(loaded)
    for field in ("id", "type", "title", "text", "severity", "icon", "urgency"):
        value = getattr(args, field)
        if value is not None:
            event[field] = value
    if args.link is not None:
        event["url"] = args.link
    if args.expires_at:
        event["expiresAt"] = args.expires_at
    if args.data:
        event["data"] = json.loads(args.data)
    if args.all:
        event["recipients"] = {"all": True}
    elif args.to:
        event["recipients"] = {"users": list(dict.fromkeys(args.to))}
    return event


class TokenError(Exception):
    """No access token could be had from Entra ID (the message says why, never a secret)."""


def entra_token(args: argparse.Namespace) -> str:
    """An access token for Herald's API from Entra ID (client credentials, cached by msal)."""
    import msal  # only needed with Entra ID credentials
    import requests

    missing = [
        flag
        for flag, value in (
            ("--client-id", args.client_id),
            ("--client-secret", args.client_secret),
            ("--scope", args.scope),
        )
        if not value
    ]
    if missing:
        raise TokenError(f"with --tenant, also give {', '.join(missing)}")
    scope = args.scope if args.scope.endswith("/.default") else args.scope.rstrip("/") + "/.default"
    http = requests.Session()
    if args.ca_file:
        # requests would let REQUESTS_CA_BUNDLE override `verify`: the file given decides.
        http.trust_env = False
        http.verify = args.ca_file
    app = msal.ConfidentialClientApplication(
        args.client_id,
        client_credential=args.client_secret,
        authority=f"{args.authority_host.rstrip('/')}/{args.tenant}",
        http_client=http,
        # Never ask Microsoft's public discovery endpoint: the authority is given.
        instance_discovery=False,
    )
    try:
        result: dict[str, Any] = app.acquire_token_for_client(scopes=[scope])
    except Exception as exc:  # requests' and msal's errors: network, TLS, a bad authority
        raise TokenError(f"cannot reach Entra ID: {exc}") from exc
    token = result.get("access_token")
    if not isinstance(token, str) or not token:
        description = str(result.get("error_description", "")).splitlines()[:1]
        raise TokenError(
            f"Entra ID refused a token: {result.get('error', 'unknown_error')}: "
            f"{''.join(description)}"
        )
    return token


def _progress(status: dict[str, Any]) -> str:
    counters = status.get("counters", {})
    done = sum(counters.get(k, 0) for k in ("delivered", "skipped", "failed", "deadTargets"))
    total = done + counters.get("queued", 0) + counters.get("retrying", 0)
    share = done / total if total else 0.0
    filled = int(share * _BAR_WIDTH)
    bar = "#" * filled + "-" * (_BAR_WIDTH - filled)
    return (
        f"[{bar}] {done}/{total} {status.get('status', '?'):<10} "
        f"delivered {counters.get('delivered', 0)}  skipped {counters.get('skipped', 0)}  "
        f"failed {counters.get('failed', 0)}  dead {counters.get('deadTargets', 0)}  "
        f"retrying {counters.get('retrying', 0)}"
    )


def follow(
    client: httpx.Client,
    notification_id: str,
    out: TextIO,
    *,
    interval: float = 0.5,
    timeout: float | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Poll the status until completed, drawing a progress line; returns the last status.

    On a terminal the line is redrawn in place; otherwise (a log, a pipe, CI) a line is written
    only when it differs from the one before, so waiting adds nothing to the log."""
    started = time.monotonic()
    interactive = out.isatty()
    last = ""
    while True:
        response = client.get(f"/api/notifications/{notification_id}")
        response.raise_for_status()
        status: dict[str, Any] = response.json()
        line = _progress(status)
        if interactive:
            out.write("\r" + line)
        elif line != last:
            out.write(line + "\n")
        last = line
        out.flush()
        if status.get("status") == "completed":
            if interactive:
                out.write("\n")
            return status
        if timeout is not None and time.monotonic() - started > timeout:
            if interactive:
                out.write("\n")
            return status
        sleep(interval)


def _key_from_environment() -> str | None:
    """HERALD_API_KEY; on the server's own machine, the first of its HERALD_API_KEYS."""
    key = os.environ.get("HERALD_API_KEY", "").strip()
    if key:
        return key
    keys = [k.strip() for k in os.environ.get("HERALD_API_KEYS", "").split(",") if k.strip()]
    return keys[0] if keys else None


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m tools.notify", description="Post a notification to Herald."
    )
    parser.add_argument("--url", default=os.environ.get("HERALD_URL", "http://localhost:3978"))
    parser.add_argument(
        "--api-key",
        default=_key_from_environment(),
        help="default: HERALD_API_KEY (the line Herald prints at its first start), else the "
        "first of the server's HERALD_API_KEYS",
    )
    entra = parser.add_argument_group("Entra ID (instead of an API key)")
    entra.add_argument("--tenant", default=os.environ.get("HERALD_TENANT_ID"))
    entra.add_argument("--client-id", default=os.environ.get("HERALD_CLIENT_ID"))
    entra.add_argument("--client-secret", default=os.environ.get("HERALD_CLIENT_SECRET"))
    entra.add_argument(
        "--scope",
        default=os.environ.get("HERALD_SCOPE"),
        help="Herald's API: its Application ID URI or client id (/.default is added)",
    )
    entra.add_argument(
        "--authority-host",
        default=os.environ.get("HERALD_AUTHORITY_HOST", "https://login.microsoftonline.com"),
    )
    entra.add_argument("--ca-file", default=os.environ.get("HERALD_CA_FILE"))
    parser.add_argument("--file", help="event JSON file ('-' for stdin); flags override it")
    parser.add_argument("--id", help="idempotency key: re-posting it updates the notification")
    parser.add_argument("--type")
    parser.add_argument("--title")
    parser.add_argument("--text")
    parser.add_argument("--severity", choices=["info", "warning", "error"])
    parser.add_argument("--link", help="https link the card opens (the event's url)")
    parser.add_argument("--icon")
    parser.add_argument("--urgency", choices=["very-low", "low", "normal", "high"])
    parser.add_argument("--expires-at", help="ISO 8601 with offset, e.g. 2026-12-01T09:00Z")
    parser.add_argument("--data", help="JSON object passed to the push channels")
    audience = parser.add_mutually_exclusive_group()
    audience.add_argument("--to", action="append", help="user id or alias (repeatable)")
    audience.add_argument("--all", action="store_true", help="everybody Herald knows")
    parser.add_argument("--follow", action="store_true", help="show progress until done")
    parser.add_argument(
        "--page-link",
        action="store_true",
        help="print a link to the live delivery page (works without a key for a while)",
    )
    parser.add_argument("--timeout", type=float, default=None, help="stop following after N s")
    return parser


def main(
    argv: Sequence[str] | None = None,
    *,
    out: TextIO | None = None,
    err: TextIO | None = None,
    transport: httpx.BaseTransport | None = None,
) -> int:
    stdout, stderr = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        event = build_event(args)
    except (OSError, ValueError) as exc:
        stderr.write(f"notify: {exc}\n")
        return 2
    if args.tenant:
        try:
            credential = entra_token(args)
        except TokenError as exc:
            stderr.write(f"notify: {exc}\n")
            return 2
    elif args.api_key:
        credential = args.api_key
    else:
        stderr.write("notify: give --api-key (or HERALD_API_KEY), or Entra ID credentials\n")
        return 2
    headers = {"Authorization": f"Bearer {credential}"}
    with httpx.Client(
        base_url=args.url, headers=headers, timeout=30.0, transport=transport, trust_env=False
    ) as client:
        try:
            response = client.post("/api/notifications", json=event)
        except httpx.HTTPError as exc:
            stderr.write(f"notify: cannot reach {args.url}: {exc}\n")
            return 2
        body = response.json() if response.content else {}
        if response.status_code != 202:
            error = body.get("error", {}) if isinstance(body, dict) else {}
            where = f" ({error['field']})" if error.get("field") else ""
            stderr.write(
                f"notify: {response.status_code} {error.get('message', response.text)}{where}\n"
            )
            return 2
        stdout.write(
            f"{body['id']}  {body['outcome']}  version {body['version']}  "
            f"recipients {body['recipients']}\n"
        )
        if args.page_link:
            linked = client.post(f"/api/notifications/{body['id']}/link")
            if linked.status_code == 200:
                stdout.write(f"page: {linked.json()['url']}\n")
            else:
                stderr.write(f"notify: no page link ({linked.status_code})\n")
        if not args.follow:
            return 0
        status = follow(client, body["id"], stdout, timeout=args.timeout)
    return outcome(status, stderr, args.timeout)


def outcome(status: dict[str, Any], stderr: TextIO, timeout: float | None = None) -> int:
    """The exit status for the last status --follow saw (see the module doc)."""
    counters = status.get("counters", {})
    if status.get("status") != "completed":
        stderr.write(
            f"notify: gave up after {timeout or 0:g} s: delivery is still "
            f"{status.get('status')!r}; follow it with GET /api/notifications/{status.get('id')}\n"
        )
        return EXIT_GAVE_UP
    if counters.get("failed", 0) or counters.get("deadTargets", 0):
        return EXIT_FAILURES
    reasons = status.get("reasons") or {}
    reached = sum(counters.get(k, 0) for k in ("delivered", "queued", "retrying"))
    unknown = reasons.get(_UNKNOWN_USER, 0)
    if unknown and not reached and set(reasons) == {_UNKNOWN_USER}:
        stderr.write(
            f"notify: nobody was reached: {unknown} recipient(s) unknown to Herald (a person is "
            "known once they have talked to the bot; `status` in the chat shows their id)\n"
        )
        return EXIT_NOBODY
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
