"""The README's quick start, run as a newcomer runs it, so that it cannot drift again.

Herald starts as `make run` starts it (`python app.py`, a fresh data dir, no key configured) on
a free port; the banner must be the one the README shows (key and port aside), and every shell
block of *Send your first notification* runs in bash exactly as written — the key pasted from
the banner into the `export` line, `localhost:3978` pointed at this Herald's port, the CLI's
default URL likewise (HERALD_URL) — and must exit 0 and print what its `# →` comments say.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
from pathlib import Path

import aiohttp

from tests.harness import ROOT, free_port

README = ROOT / "README.md"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def blocks(text: str, language: str) -> list[str]:
    """The fenced blocks of `language` ("" for none), in order."""
    found: list[str] = []
    current: list[str] | None = None
    kind = ""
    for line in text.splitlines():
        if line.startswith("```"):
            if current is None:
                current, kind = [], line[3:].strip()
            else:
                if kind == language:
                    found.append("\n".join(current) + "\n")
                current = None
        elif current is not None:
            current.append(line)
    return found


async def start_like_make_run(data_dir: Path, port: int) -> tuple[asyncio.subprocess.Process, Path]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("HERALD_", "Microsoft", "COSMOS_", "AZURE_"))
    }
    env.update({"PORT": str(port), "HERALD_DATA_DIR": str(data_dir)})
    out = data_dir.parent / "stdout.txt"
    with out.open("wb") as sink:
        process = await asyncio.create_subprocess_exec(
            str(ROOT / ".venv" / "bin" / "python"), "app.py", cwd=str(ROOT), env=env,
            stdout=sink, stderr=subprocess.DEVNULL,
        )
    async with aiohttp.ClientSession() as http:
        for _ in range(300):
            assert process.returncode is None, out.read_text()
            try:
                async with http.get(f"http://127.0.0.1:{port}/readyz") as response:
                    if response.status == 200:
                        return process, out
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError(f"herald did not start: {out.read_text()}")


def expectations(block: str) -> list[tuple[int, str]]:
    """(index of the command before it, the text it promises) for each `# → ...` comment."""
    found = []
    commands = 0
    for line in block.splitlines():
        if line.startswith("curl ") or line.startswith(".venv/"):
            commands += 1
        match = re.match(r"# → (\{.*)", line)
        if match:
            promised = match.group(1).split("...")[0].split(" (")[0]
            found.append((commands - 1, promised))
    return found


async def test_the_readme_quick_start_runs_as_written(tmp_path: Path) -> None:
    port = free_port()
    process, stdout = await start_like_make_run(tmp_path / "data", port)
    try:
        banner = stdout.read_text(encoding="utf-8").splitlines()
        [key_line] = [line for line in banner if "export HERALD_API_KEY=" in line]
        key = key_line.split("=", 1)[1]
        assert key.startswith("hk_")

        # The banner the README shows is the banner Herald prints.
        quick_start = section("Quick start")
        [shown] = blocks(quick_start, "")
        printed = "\n".join(banner).replace(key, "hk_...").replace(str(port), "3978")
        assert shown.strip() == printed.strip()
        assert "make run" in blocks(quick_start, "sh")[0]

        first = section("Send your first notification")
        runnable = blocks(first, "sh")
        assert len(runnable) >= 3
        assert runnable[0].strip() == "export HERALD_API_KEY=hk_..."
        script = "\n".join(runnable).replace("hk_...", key).replace(
            "localhost:3978", f"127.0.0.1:{port}"
        )
        # Each command's output on lines of its own, to check it against its comment.
        marked = re.sub(r"^(curl |\.venv/)", r"echo '@@command'; \1", script, flags=re.M)
        result = await asyncio.to_thread(
            subprocess.run,
            ["bash", "-euo", "pipefail", "-c", marked + "\necho"],
            cwd=str(ROOT),
            env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "HOME": str(tmp_path),
                "HERALD_URL": f"http://127.0.0.1:{port}",
            },
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 0, result.stdout + result.stderr
        outputs = result.stdout.split("@@command\n")[1:]
        promised = [e for block in runnable for e in expectations(block)]
        assert promised, "the README promises no output"
        offset = 0
        for block in runnable:
            for index, text in expectations(block):
                got = re.sub(r"\s", "", outputs[offset + index])
                assert re.sub(r"\s", "", text) in got, (text, outputs[offset + index])
            offset += sum(
                1 for line in block.splitlines() if line.startswith(("curl ", ".venv/"))
            )
        assert "created" in outputs[-1] and "completed" in outputs[-1]  # the CLI, followed
    finally:
        process.terminate()
        await process.wait()
