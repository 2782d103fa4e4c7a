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

from tests.peers.node_peer import NodePeer

# Azurite's well-known development account (public, documented by Microsoft).
DEV_ACCOUNT = "devstoreaccount1"
DEV_KEY = (
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)
# Any base64 string is a key to the Cosmos DB stand-in (it checks no signatures).
COSMOS_KEY = "aGVyYWxkLXRlc3Qta2V5LW5vdC1hLXNlY3JldA=="


class CosmosServer(NodePeer):
    """@vercel/cosmosdb-server on 127.0.0.1 (self-signed TLS: COSMOS_VERIFY_TLS=false)."""

    def __init__(self) -> None:
        super().__init__("cosmosdb-server.js", "@vercel/cosmosdb-server")

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}/"



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
