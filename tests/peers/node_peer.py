"""Node.js test peers from tests/peers/node (pinned by its package-lock.json, installed by
`make test` with `npm ci`): finding node and the package, and running a peer script.

A peer script prints one JSON line `{"port": N}` once it listens on 127.0.0.1 and exits when
its stdin closes, so it never outlives the test run that started it. A missing node or package
is an error naming the command to run, never a skip.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
from pathlib import Path
from typing import Self

NODE_DIR = Path(__file__).resolve().parent / "node"


def node_for(package: str) -> str:
    """The node executable, once `package` is known to be installed."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError(f"node is not installed: {package} needs Node.js 20")
    if not (NODE_DIR / "node_modules" / package).is_dir():
        raise RuntimeError(
            f"{package} is not installed: run `npm ci --prefix {NODE_DIR}` (make test does)"
        )
    return node


class NodePeer:
    """A peer script, started and stopped synchronously (usually one per test session)."""

    def __init__(self, script: str, package: str) -> None:
        self._script = script
        self._package = package
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, port: int = 0, timeout: float = 60.0) -> int:
        """Start on `port` (0: any free one); the port it listens on."""
        self._process = subprocess.Popen(
            [node_for(self._package), str(NODE_DIR / self._script), str(port)],
            cwd=str(NODE_DIR),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        assert self._process.stdout is not None
        ready, _, _ = select.select([self._process.stdout], [], [], timeout)
        line = self._process.stdout.readline() if ready else b""
        if not line:
            self.stop()
            raise RuntimeError(f"{self._script} did not start listening")
        self.port = int(json.loads(line)["port"])
        return self.port

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def stop(self) -> None:
        if self._process is None:
            return
        if self._process.stdin is not None:
            self._process.stdin.close()  # the script exits when its stdin closes
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()
        self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
