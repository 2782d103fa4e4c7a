"""The producer CLI against a running Herald (real socket)."""

from __future__ import annotations

import asyncio
import io
import itertools
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


async def test_follow_that_gives_up_exits_3_and_writes_each_line_once(
    herald: RunningHerald, emulator: Emulator, connector: ConnectorStandIn
) -> None:
    user = emulator.user()
    await emulator.join(user)
    await connector.wait_for(1)
    connector.slow(user.conversation_id, 8.0)  # the send stays in flight
    try:
        code, out, err = await run_cli(
            "--url", herald.url, "--to", user.key, "--type", "case.assigned",
            "--title", "Case 4711", "--id", "cli-slow", "--follow", "--timeout", "2",
        )
    finally:
        connector.slow(user.conversation_id, 0)
    assert code == 3, (out, err)
    assert "gave up after 2 s" in err and "cli-slow" in err
    progress = [line for line in out.splitlines() if line.startswith("[")]
    assert progress, out
    # Polled every 0.5 s for 2 s, but not a terminal: a line only when it changed.
    assert all(a != b for a, b in itertools.pairwise(progress)), progress
    assert len(progress) < 4


async def test_every_recipient_unknown_exits_4(herald: RunningHerald) -> None:
    code, out, err = await run_cli(
        "--url", herald.url, "--to", "nobody@contoso.com", "--to", "emulator:ghost",
        "--type", "case.assigned", "--title", "Case 4711", "--follow", "--timeout", "20",
    )
    assert code == 4, (out, err)
    assert "nobody was reached: 2 recipient(s) unknown" in err


async def test_the_key_variable_of_the_server_works_for_the_cli_too(
    herald: RunningHerald,
) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.notify", "--url", herald.url, "--all",
        "--type", "it.outage", "--title", "Mail is down",
        cwd=str(ROOT), stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env={"HERALD_API_KEYS": f" {API_KEY} ,other", "PATH": "/usr/bin:/bin"},
    )
    out, err = await process.communicate()
    assert process.returncode == 0, err
    assert b"created" in out


async def test_without_the_projects_python_it_says_which_to_use(tmp_path: Path) -> None:
    # A Python without httpx: the system's, in isolated mode (no user site, no venv).
    process = await asyncio.create_subprocess_exec(
        "/usr/bin/python3", "-I", "-c",
        "import sys; sys.path.insert(0, sys.argv[1]); import tools.notify", str(ROOT),
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    if b"httpx" not in err and process.returncode == 0:
        return  # this machine's system Python has httpx: nothing to show
    assert process.returncode == 2
    assert b".venv/bin/python -m tools.notify" in err
