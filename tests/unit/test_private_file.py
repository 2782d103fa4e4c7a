"""Secrets generated on first start: private from the first byte, and one secret however many
processes start together on one data directory."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

from private_file import read_or_create_private

ROOT = Path(__file__).resolve().parents[2]


def test_created_with_mode_600_and_read_back_afterwards(tmp_path: Path) -> None:
    path = tmp_path / "data" / "secret.key"
    data, created = read_or_create_private(path, lambda: b"first")
    assert (data, created) == (b"first", True)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_or_create_private(path, lambda: b"second") == (b"first", False)
    assert [p.name for p in path.parent.iterdir()] == ["secret.key"]  # no temporary left


def test_the_file_is_never_readable_by_others_even_with_a_permissive_umask(
    tmp_path: Path,
) -> None:
    old = os.umask(0)
    try:
        read_or_create_private(tmp_path / "k", lambda: b"x")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


def test_processes_starting_together_agree_on_one_secret(tmp_path: Path) -> None:
    path = tmp_path / "link-secret.key"
    script = (
        "import os, sys; from pathlib import Path; from private_file import read_or_create_private;"
        "data, created = read_or_create_private(Path(sys.argv[1]), lambda: os.urandom(32));"
        "print(data.hex(), created)"
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(path)], cwd=ROOT, stdout=subprocess.PIPE, text=True
        )
        for _ in range(8)
    ]
    answers = [child.communicate(timeout=60)[0].split() for child in children]
    assert {secret for secret, _ in answers} == {path.read_bytes().hex()}
    assert [created for _, created in answers].count("True") == 1
