"""`make test` on a fresh machine: tools/prerequisites.sh installs what it can, says what not.

Each case runs the script with a PATH of stand-ins (tmp_path/bin): `id` says who we are,
`apt-get` records what it was asked to install (nothing is installed, nothing is fetched), and
node, npm and chromium exist or not.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tools" / "prerequisites.sh"


def machine(tmp_path: Path, *, uid: int, have: tuple[str, ...]) -> tuple[Path, Path]:
    """A bin directory with `id`, `apt-get` and the tools in `have`; and the apt-get log."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "apt-get.log"

    def tool(name: str, body: str) -> None:
        path = bin_dir / name
        path.write_text(f"#!/bin/sh\n{body}\n")
        path.chmod(0o755)

    tool("id", f"echo {uid}")
    tool("apt-get", f'echo "$*" >> {log}')
    for name in have:
        tool(name, "exit 0")
    return bin_dir, log


def run(bin_dir: Path, mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["/bin/sh", str(SCRIPT), mode],
        env={"PATH": str(bin_dir), "PYTHON": sys.executable},  # only the stand-ins
        capture_output=True,
        text=True,
        check=False,
    )


def test_everything_there_says_nothing(tmp_path: Path) -> None:
    bin_dir, log = machine(tmp_path, uid=1000, have=("node", "npm", "chromium"))
    result = run(bin_dir, "test")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert not log.exists()


def test_without_root_one_line_says_what_to_install(tmp_path: Path) -> None:
    bin_dir, log = machine(tmp_path, uid=1000, have=("node", "npm"))
    result = run(bin_dir, "test")
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "make test needs chromium: install them (Debian/Ubuntu: sudo apt-get install -y "
        "chromium), then run make test again"
    ]
    assert not log.exists()


def test_as_root_it_installs_chromium_and_node_with_apt_get(tmp_path: Path) -> None:
    bin_dir, log = machine(tmp_path, uid=0, have=())
    result = run(bin_dir, "test")
    assert result.returncode == 0, result.stderr
    assert "installing nodejs npm chromium with apt-get" in result.stderr
    assert log.read_text().splitlines() == ["update -qq", "install -y -qq nodejs npm chromium"]


def test_make_run_needs_no_browser_or_node(tmp_path: Path) -> None:
    bin_dir, log = machine(tmp_path, uid=1000, have=())
    result = run(bin_dir, "run")
    assert (result.returncode, result.stderr) == (0, "")
    assert not log.exists()


def test_the_makefile_checks_before_it_builds() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert "test: test-prerequisites $(VENV)/.dev" in makefile
    assert "\tPYTHON=$(PYTHON) sh tools/prerequisites.sh run\n\t$(PYTHON) -m venv" in makefile
