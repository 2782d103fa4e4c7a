"""Test harness: Herald served on a real socket, and an Emulator-like client that talks to it.

`RunningHerald` builds the real app with `create_app` and serves it on 127.0.0.1 (ephemeral
port); it can be stopped and started again on the same data directory to test restarts.
`Emulator` posts activities to /api/messages the way the Bot Framework Emulator (or Teams) does,
with the Bot Connector stand-in as the service URL, so the bot's replies arrive there.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import socket
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from app import HERALD, Herald, create_app
from config import Settings
from logs import AccessLog

API_KEY = "test-key-0123456789"
ROOT = Path(__file__).resolve().parent.parent


class HeraldClient:
    """Calls Herald's HTTP API as a backend (with the test API key) would."""

    url = ""
    http: aiohttp.ClientSession | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        auth: bool = True,
    ) -> tuple[int, Any]:
        """One API call; returns (status, parsed JSON body or text)."""
        assert self.http is not None
        hdrs = dict(headers or {})
        if auth:
            hdrs.setdefault("Authorization", f"Bearer {API_KEY}")
        async with self.http.request(
            method, self.url + path, json=json, data=data, headers=hdrs
        ) as response:
            text = await response.text()
            try:
                body: Any = await response.json(content_type=None) if text else None
            except ValueError:
                body = text
            return response.status, body

    async def post_event(self, event: dict[str, Any]) -> tuple[int, Any]:
        return await self.request("POST", "/api/notifications", json=event)

    async def status(self, notification_id: str) -> dict[str, Any]:
        code, body = await self.request("GET", f"/api/notifications/{notification_id}")
        assert code == 200, body
        assert isinstance(body, dict)
        return body

    async def wait_status(
        self, notification_id: str, predicate: Any = None, timeout: float = 10.0
    ) -> dict[str, Any]:
        """Poll the status endpoint until `predicate(status)` (default: completed)."""
        check = predicate or (lambda s: s["status"] == "completed")
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            body = await self.status(notification_id)
            if check(body):
                return body
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"status never matched: {body}")
            await asyncio.sleep(0.02)


def herald_env(data_dir: Path, env: Mapping[str, str] | None = None) -> dict[str, str]:
    return {
        "HERALD_DATA_DIR": str(data_dir),
        "HERALD_API_KEYS": API_KEY,
        "HERALD_RETRY_BASE_SECONDS": "0.05",
        # web-push-testing, the push service of the tests, listens on loopback (on a port
        # chosen when it starts).
        "WEBPUSH_ALLOWED_HOSTS": "127.0.0.1:*,localhost:*",
        "HERALD_LOG_LEVEL": "DEBUG",
        **(env or {}),
    }


class RunningHerald(HeraldClient):
    """The Herald app on a real port in this process, restartable on the same data directory."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = herald_env(data_dir, env)
        self._runner: web.AppRunner | None = None
        self.app: web.Application | None = None

    @property
    def herald(self) -> Herald:
        assert self.app is not None
        return self.app[HERALD]

    async def start(self) -> None:
        settings = Settings.from_env(self.env, env_file=None)
        self.app = create_app(settings)
        # The access log as `python app.py` writes it (logs.AccessLog: no secrets).
        self._runner = web.AppRunner(self.app, handle_signals=False, access_log_class=AccessLog)
        await self._runner.setup()
        # PORT, when given, is kept across restarts (a URL given out, e.g. to Graph, stays valid).
        site = web.TCPSite(self._runner, "127.0.0.1", int(self.env.get("PORT", "0")))
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.url = f"http://{host}:{port}"
        if self.http is None:
            self.http = aiohttp.ClientSession(trust_env=False)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
            self.app = None

    async def restart(self) -> None:
        await self.stop()
        await self.start()

    async def close(self) -> None:
        await self.stop()
        if self.http is not None:
            await self.http.close()
            self.http = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class HeraldProcess(HeraldClient):
    """`python app.py` in a child process, as `make run` starts it; can be killed (SIGKILL)."""

    def __init__(self, data_dir: Path, env: Mapping[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = herald_env(data_dir, env)
        self.process: asyncio.subprocess.Process | None = None
        self.log = data_dir.parent / f"{data_dir.name}.log"

    async def start(self, timeout: float = 30.0, *, ready: str = "/readyz") -> None:
        """Start and wait until `ready` answers 200 (/healthz: serving, maybe not ready)."""
        port = int(self.env["PORT"]) if "PORT" in self.env else free_port()
        self.url = f"http://127.0.0.1:{port}"
        env = {**os.environ, **self.env, "PORT": str(port), "HOST": "127.0.0.1"}
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable, str(ROOT / "app.py"), cwd=str(ROOT), env=env,
                stdout=log, stderr=log,
            )
        if self.http is None:
            self.http = aiohttp.ClientSession(trust_env=False)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            if self.process.returncode is not None:
                raise RuntimeError(f"herald exited: {self.log.read_text()[-2000:]}")
            try:
                code, _ = await self.request("GET", ready, auth=False)
                if code == 200:
                    return
            except aiohttp.ClientError:
                pass
            if asyncio.get_running_loop().time() > deadline:
                raise RuntimeError(f"herald did not start: {self.log.read_text()[-2000:]}")
            await asyncio.sleep(0.1)

    async def kill(self) -> None:
        """Crash: SIGKILL, no shutdown handlers run."""
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    async def close(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.terminate()
            try:
                await asyncio.wait_for(self.process.wait(), 10)
            except TimeoutError:
                await self.kill()
        if self.http is not None:
            await self.http.close()
            self.http = None


@dataclass
class EmulatedUser:
    """A person in a 1:1 conversation with the bot."""

    id: str
    name: str
    conversation_id: str
    channel_id: str = "emulator"
    aad_object_id: str | None = None
    tenant_id: str | None = None
    local_timezone: str | None = "Europe/Berlin"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """Herald's user id for this person (DESIGN: Identity: the Entra ID object id on
        Teams only)."""
        if self.channel_id == "msteams" and self.aad_object_id:
            return self.aad_object_id
        return f"{self.channel_id}:{self.id}"


class Emulator:
    """Posts activities to Herald as the Bot Framework Emulator (or Teams) would."""

    BOT_ID = "herald-bot"

    def __init__(self, herald: HeraldClient, service_url: str) -> None:
        self._herald = herald
        self.service_url = service_url
        self._ids = itertools.count(1)

    def user(self, name: str = "Ada", **kwargs: Any) -> EmulatedUser:
        user_id = str(uuid.uuid4())
        return EmulatedUser(
            id=user_id, name=name, conversation_id=f"{uuid.uuid4()}|livechat", **kwargs
        )

    def teams_user(self, name: str = "Grace", tenant_id: str = "tenant-1") -> EmulatedUser:
        return EmulatedUser(
            id=f"29:1{uuid.uuid4().hex}",
            name=name,
            conversation_id=f"a:1{uuid.uuid4().hex}",
            channel_id="msteams",
            aad_object_id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            local_timezone=None,
        )

    def activity(self, user: EmulatedUser, type_: str, **fields: Any) -> dict[str, Any]:
        now = datetime.now(UTC)
        sender: dict[str, Any] = {"id": user.id, "name": user.name, "role": "user"}
        conversation: dict[str, Any] = {"id": user.conversation_id}
        activity: dict[str, Any] = {
            "type": type_,
            "id": f"act-{next(self._ids)}",
            "channelId": user.channel_id,
            "serviceUrl": self.service_url,
            "timestamp": now.isoformat().replace("+00:00", "Z"),
            "from": sender,
            "recipient": {"id": self.BOT_ID, "name": "Herald", "role": "bot"},
            "conversation": conversation,
            "locale": "en-US",
        }
        if user.local_timezone:
            activity["localTimezone"] = user.local_timezone
        if user.aad_object_id:
            sender["aadObjectId"] = user.aad_object_id
        if user.channel_id == "msteams":
            conversation.update({"conversationType": "personal", "tenantId": user.tenant_id})
            activity["channelData"] = {"tenant": {"id": user.tenant_id}}
            activity["recipient"] = {"id": f"28:{self.BOT_ID}", "name": "Herald"}
        activity.update(fields)
        return activity

    async def post(self, activity: dict[str, Any], **kwargs: Any) -> int:
        status, _ = await self._herald.request(
            "POST", "/api/messages", json=activity, auth=False, **kwargs
        )
        return status

    async def join(self, user: EmulatedUser) -> int:
        """What the Emulator sends when a conversation opens: both members added."""
        return await self.post(
            self.activity(
                user,
                "conversationUpdate",
                membersAdded=[
                    {"id": self.BOT_ID, "name": "Herald"},
                    {"id": user.id, "name": user.name},
                ],
            )
        )

    async def say(self, user: EmulatedUser, text: str, **fields: Any) -> int:
        return await self.post(self.activity(user, "message", text=text, **fields))
