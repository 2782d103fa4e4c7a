"""Secrets Herald generates on first start (the API key's hash, the link-token key, the VAPID
key) are kept in files only the service account can read.

One way to create them for all three: the file is written under a temporary name created with
mode 600 (never readable by others, not even for a moment), flushed, then linked into place
atomically. Two processes starting together on one data directory (two workers of a container,
`make run` twice) therefore agree on one secret: the second finds the first's file complete
and uses it, instead of overwriting it or reading it half written.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from pathlib import Path

__all__ = ["read_or_create_private"]


def read_or_create_private(path: Path, make: Callable[[], bytes]) -> tuple[bytes, bool]:
    """The file's content, and whether this call created it (with `make()`)."""
    try:
        return path.read_bytes(), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    data = make()
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)  # fails if another process got there first
        except FileExistsError:
            return path.read_bytes(), False
        return data, True
    finally:
        temporary.unlink(missing_ok=True)
