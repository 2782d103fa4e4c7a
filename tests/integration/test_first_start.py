"""`make run` as a newcomer meets it: a busy port, the key to copy, links on the right port."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from pathlib import Path

from config import Settings
from tests.harness import ROOT, HeraldProcess, free_port


async def run_app(env: dict[str, str], timeout: float = 30.0) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, str(ROOT / "app.py"), cwd=str(ROOT),
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_a_busy_port_is_one_clear_line_before_any_banner(tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        code, out, err = await run_app(
            {"HOST": "127.0.0.1", "PORT": str(port), "HERALD_DATA_DIR": str(tmp_path / "data")}
        )
    assert code == 3
    assert out == ""  # no banner, no key
    assert err.splitlines() == [
        f"herald: port {port} is in use (127.0.0.1:{port}): is Herald already running? Stop "
        "it, or start this one with another PORT (e.g. PORT=3979 make run)."
    ]
    assert "Traceback" not in err
    assert not (tmp_path / "data" / "api-keys.sha256").exists()  # nothing generated


async def test_a_second_herald_on_the_port_of_a_running_one(tmp_path: Path) -> None:
    first = HeraldProcess(tmp_path / "one", {"PORT": str(free_port())})
    await first.start()
    try:
        port = first.env["PORT"]
        code, out, err = await run_app(
            {"HOST": "127.0.0.1", "PORT": port, "HERALD_DATA_DIR": str(tmp_path / "two")}
        )
        assert code == 3 and out == ""
        assert f"port {port} is in use" in err and "Traceback" not in err
        status, _ = await first.request("GET", "/healthz", auth=False)
        assert status == 200  # the running one is untouched
    finally:
        await first.close()


def test_the_public_url_follows_the_port_unless_set() -> None:
    assert Settings.from_env({}, env_file=None).public_url == "http://localhost:3978"
    assert Settings.from_env({"PORT": "4000"}, env_file=None).public_url == (
        "http://localhost:4000"
    )
    assert Settings.from_env(
        {"PORT": "4000", "HERALD_PUBLIC_URL": "https://herald.contoso.com"}, env_file=None
    ).public_url == "https://herald.contoso.com"


async def test_links_the_bot_hands_out_point_at_the_port_it_listens_on(tmp_path: Path) -> None:
    port = free_port()
    herald = HeraldProcess(tmp_path / "data", {"PORT": str(port)})
    await herald.start()
    try:
        code, body = await herald.request(
            "POST",
            "/api/notifications",
            json={"id": "n1", "type": "t.x", "title": "x", "recipients": {"all": True}},
        )
        assert code == 202, body
        code, link = await herald.request("POST", "/api/notifications/n1/link")
        assert code == 200, link
        assert link["url"].startswith(f"http://localhost:{port}/notifications/n1?token=")
    finally:
        await herald.close()
