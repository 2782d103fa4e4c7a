"""The Azure stand-ins of the tests, from pinned npm packages, on 127.0.0.1.

- `@vercel/cosmosdb-server` 1.0.1 as Cosmos DB, over HTTPS with keep-alive, started (and
  patched: a read of a missing document answers 404, not 500) by
  tests/peers/node/cosmosdb-server.js;
- `azurite` as Azure Storage Queues, in memory, telemetry never started, by
  tests/peers/node/azurite-queue.js.

Both print `{"port": N}` once listening and exit when their stdin closes. The npm packages are
installed by `make test` (`npm ci` in tests/peers/node); without them the fixtures fail with the
command to run, they never skip.
"""

from __future__ import annotations

import json
import select
import shutil
import subprocess
from pathlib import Path

NODE_DIR = Path(__file__).resolve().parent / "node"

# Azurite's well-known development account (public, documented by Microsoft).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# Any base64 string is a key to the Cosmos DB stand-in (it checks no signatures).
COSMOS_KEY = "aGVyYWxkLXRlc3Qta2V5LW5vdC1hLXNlY3JldA=="


class NodePeer:
    """A node script from tests/peers/node, started and stopped synchronously."""

    def __init__(self, script: str, package: str) -> None:
        self._script = script
        self._package = package
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    def start(self, port: int = 0, timeout: float = 60.0) -> int:
        node = shutil.which("node")
        if node is None:
            raise RuntimeError("node is not installed: the Azure stand-ins need Node.js 20")
        if not (NODE_DIR / "node_modules" / self._package).is_dir():
            raise RuntimeError(
                f"{self._package} is not installed: run `npm ci --prefix {NODE_DIR}`"
                " (make test does)"
            )
        self._process = subprocess.Popen(
            [node, str(NODE_DIR / self._script), str(port)],
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


class CosmosServer(NodePeer):
    """@vercel/cosmosdb-server on 127.0.0.1 (self-signed TLS: COSMOS_VERIFY_TLS=false)."""

    def __init__(self) -> None:
        super().__init__("cosmosdb-server.js", "@vercel/cosmosdb-server")

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}/"

    def __enter__(self) -> CosmosServer:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class AzuriteQueues(NodePeer):
    """azurite's Queue service on 127.0.0.1, in memory."""

    def __init__(self) -> None:
        super().__init__("azurite-queue.js", "azurite")

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};"
            f"QueueEndpoint=http://127.0.0.1:{self.port}/{DEV_ACCOUNT};"
        )

    def __enter__(self) -> AzuriteQueues:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
