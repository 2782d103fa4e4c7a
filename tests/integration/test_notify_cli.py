"""The producer CLI against a running Herald (real socket)."""

from __future__ import annotations

import asyncio
import io
import json
import sys
from pathlib import Path

from tests.harness import API_KEY, ROOT, Emulator, RunningHerald
from tests.peers.connector import ConnectorStandIn


async def run_cli(*args: str) -> tuple[int, str, str]:
    """`python -m tools.notify ...` in a child process, as a backend team would run it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.notify",
        *args,
        cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={"HERALD_API_KEY": API_KEY, "PATH": "/usr/bin:/bin"},
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_send_to_a_user_and_follow_until_done(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    await emulator.join(user)
    await connector.wait_for(1)
    code, out, err = await run_cli(
        "--url",
        herald.url,
        "--to",
        user.key,
        "--id",
        "cli-1",
        "--type",
        "case.assigned",
        "--title",
        "Case 4711",
        "--text",
        "Contoso",
        "--link",
        "https://crm.example.com/4711",
        "--follow",
        "--timeout",
        "20",
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("cli-1  created  version 1  recipients 1")
    assert "completed" in lines[-1] and "delivered 1" in lines[-1]
    status = await herald.status("cli-1")
    assert status["counters"]["delivered"] == 1


async def test_event_from_a_file_with_flags_overriding(
    herald: RunningHerald, tmp_path: Path
) -> None:
    event = tmp_path / "event.json"
    event.write_text(
        json.dumps(
            {"id": "cli-2", "type": "it.outage", "title": "from file", "recipients": {"all": True}}
        )
    )
    code, out, _ = await run_cli("--url", herald.url, "--file", str(event), "--title", "flag")
    assert code == 0
    assert out.startswith("cli-2  created")
    code, body = await herald.request("GET", "/api/notifications/cli-2")
    assert body["title"] == "flag"


async def test_rejected_events_and_missing_key_exit_2(herald: RunningHerald) -> None:
    code, _, err = await run_cli("--url", herald.url, "--title", "no type", "--all")
    assert code == 2 and "400" in err and "type" in err
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tools.notify",
        "--url",
        herald.url,
        "--all",
        cwd=str(ROOT),
        stderr=asyncio.subprocess.PIPE,
        env={"PATH": "/usr/bin:/bin"},
    )
    _, err_bytes = await process.communicate()
    assert process.returncode == 2 and b"HERALD_API_KEY" in err_bytes


def test_progress_line_counts() -> None:
    from tools.notify import _progress

    line = _progress(
        {
            "status": "delivering",
            "counters": {
                "queued": 2,
                "retrying": 1,
                "delivered": 6,
                "skipped": 1,
                "failed": 0,
                "deadTargets": 0,
            },
        }
    )
    assert "7/10" in line and "delivering" in line
    assert io.StringIO().isatty() is False
