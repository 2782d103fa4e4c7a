"""Microsoft's Teams app manifest validator (npm `@microsoft/app-manifest`), offline.

tests/peers/node/validate-teams-manifest.js validates a manifest against the schema the pinned
package bundles for its `manifestVersion` (never the web: the package's `validateManifest()`
would download `$schema`). The npm packages are installed by `make test` (`npm ci` in
tests/peers/node); without node or the package, `validate` raises with the command to run, so a
test that needs the validator fails, it never skips.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.peers.node_peer import NODE_DIR, node_for

SCRIPT = NODE_DIR / "validate-teams-manifest.js"
PACKAGE = NODE_DIR / "node_modules" / "@microsoft" / "app-manifest"
SCHEMAS = PACKAGE / "build" / "json-schemas" / "teams"


@dataclass(frozen=True)
class Validation:
    """What the validator said: the schema file it used (None: no schema for the version)."""

    manifest_version: str | None
    schema: str | None
    errors: list[str]


def validate(manifest: Path, timeout: float = 60.0) -> Validation:
    """Validate the manifest file; raises if the validator itself could not run."""
    process = subprocess.run(
        [node_for("@microsoft/app-manifest"), str(SCRIPT), str(manifest)],
        cwd=str(NODE_DIR),
        capture_output=True,
        timeout=timeout,
        check=False,
    )
    lines = process.stdout.decode().strip().splitlines()
    if process.returncode not in (0, 1) or not lines:
        raise RuntimeError(
            f"the Teams manifest validator failed (exit {process.returncode}): "
            f"{process.stdout.decode()}{process.stderr.decode()}"
        )
    result = json.loads(lines[-1])
    errors = [str(error) for error in result["errors"]]
    if (process.returncode == 0) != (not errors):
        raise RuntimeError(f"validator exit {process.returncode} disagrees with {result}")
    return Validation(result.get("manifestVersion"), result.get("schema"), errors)
