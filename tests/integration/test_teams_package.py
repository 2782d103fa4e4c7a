"""The Teams app package: built by `python -m deployment.teams.build` as an operator would run it,
checked by Microsoft's own manifest validator (tests/peers/teams_manifest.py) and by Teams'
icon rules read from the PNGs themselves."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from dialogs.commands import Verb, parse
from tests.peers.teams_manifest import SCHEMAS, Validation, validate

ROOT = Path(__file__).resolve().parents[2]
TEAMS = ROOT / "deployment" / "teams"
APP_ID = "0b6f8b4e-3c1a-4d7e-9f20-6a5b4c3d2e1f"
BOT_ID = "5f0e2d1c-7b6a-4e39-8d27-c1b0a9f8e7d6"
HOST = "herald.example.com"


def run_build(
    cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The build script in a child process, from `cwd` (where a `.env` would be read)."""
    return subprocess.run(
        [sys.executable, "-m", "deployment.teams.build", *args],
        cwd=str(cwd),
        env={
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "PYTHONPATH": str(ROOT),
            **(env or {}),
        },
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@dataclass(frozen=True)
class Image:
    width: int
    height: int
    pixels: list[tuple[int, int, int, int]]


def read_png(data: bytes) -> Image:
    """Decode an 8-bit RGB/RGBA, non-interlaced PNG (what Teams icons are) into RGBA pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, b""
    chunks: dict[bytes, bytes] = {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert zlib.crc32(kind + body) & 0xFFFFFFFF == crc, f"bad CRC in {kind!r}"
        chunks.setdefault(kind, body)
        if kind == b"IDAT":
            idat += body
        pos += 12 + length
    assert next(iter(chunks)) == b"IHDR" and b"IEND" in chunks
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[b"IHDR"])
    assert depth == 8 and colour in (2, 6) and interlace == 0, "unsupported PNG layout"
    channels = 4 if colour == 6 else 3
    stride = width * channels
    raw = zlib.decompress(idat)
    assert len(raw) == height * (stride + 1)
    rows: list[bytearray] = []
    previous = bytearray(stride)
    for y in range(height):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - corner
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - corner)
                guess = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + guess) & 0xFF
            else:
                assert kind == 0, f"unknown filter {kind}"
        rows.append(line)
        previous = line
    pixels = [
        (row[i], row[i + 1], row[i + 2], row[i + 3] if channels == 4 else 255)
        for row in rows
        for i in range(0, stride, channels)
    ]
    return Image(width, height, pixels)


@dataclass(frozen=True)
class Built:
    zip: Path
    names: list[str]
    manifest_path: Path
    manifest: dict[str, Any]
    files: dict[str, bytes]
    validation: Validation


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """The package built once for this module, unpacked, and run through the validator."""
    work = tmp_path_factory.mktemp("teams")
    out = work / "dist" / "herald-teams.zip"
    result = run_build(
        work, "--app-id", APP_ID, "--bot-id", BOT_ID, "--host", HOST, "--out", str(out)
    )
    assert result.returncode == 0, result.stderr
    assert out.is_file()
    with zipfile.ZipFile(out) as archive:
        names = archive.namelist()
        files = {name: archive.read(name) for name in names}
        archive.extractall(work / "unzipped")
    manifest_path = work / "unzipped" / "manifest.json"
    return Built(
        zip=out,
        names=names,
        manifest_path=manifest_path,
        manifest=json.loads(files["manifest.json"]),
        files=files,
        validation=validate(manifest_path),
    )


def test_the_zip_holds_manifest_and_icons_at_its_root(built: Built) -> None:
    assert sorted(built.names) == ["color.png", "manifest.json", "outline.png"]
    assert built.manifest["icons"] == {"color": "color.png", "outline": "outline.png"}


def test_microsofts_validator_accepts_the_built_manifest(built: Built) -> None:
    assert built.validation.errors == []
    assert built.validation.schema == "build/json-schemas/teams/v1.30/MicrosoftTeams.schema.json"


def test_the_manifest_is_on_the_newest_stable_schema_bundled(built: Built) -> None:
    stable = [
        tuple(int(part) for part in path.name[1:].split("."))
        for path in SCHEMAS.iterdir()
        if path.name.startswith("v") and path.name[1:].replace(".", "").isdigit()
    ]
    newest = ".".join(str(part) for part in max(stable))
    assert built.manifest["manifestVersion"] == newest
    assert built.manifest["$schema"] == (
        f"https://developer.microsoft.com/json-schemas/teams/v{newest}/MicrosoftTeams.schema.json"
    )


def test_ids_and_host_are_filled_in(built: Built) -> None:
    manifest = built.manifest
    assert "{{" not in built.files["manifest.json"].decode()
    assert manifest["id"] == APP_ID
    (bot,) = manifest["bots"]
    assert bot["botId"] == BOT_ID
    # personal: each person's chat; team: channel posts and rosters (recipients.channels/teams)
    assert bot["scopes"] == ["personal", "team"]
    assert bot["supportsFiles"] is False and bot["isNotificationOnly"] is False
    assert manifest["validDomains"] == [HOST]
    assert manifest["developer"]["privacyUrl"] == f"https://{HOST}/"
    assert manifest["version"] == "1.0.0"


def test_the_bot_asks_for_read_receipts_of_its_chats(built: Built) -> None:
    """Teams sends a bot read receipts (event `application/vnd.microsoft.readReceipt`) only
    with this resource-specific consent, which needs the app's Entra ID id."""
    manifest = built.manifest
    assert manifest["webApplicationInfo"] == {"id": BOT_ID}
    assert manifest["authorization"]["permissions"]["resourceSpecific"] == [
        {"name": "ChatMessageReadReceipt.Read.Chat", "type": "Application"}
    ]


def test_icons_follow_teams_rules(built: Built) -> None:
    colour = read_png(built.files["color.png"])
    outline = read_png(built.files["outline.png"])
    assert (colour.width, colour.height) == (192, 192)
    assert (outline.width, outline.height) == (32, 32)
    # Full colour: opaque everywhere, more than a glyph on a background.
    assert all(alpha == 255 for *_, alpha in colour.pixels)
    assert len({pixel[:3] for pixel in colour.pixels}) > 2
    # Outline: white where anything is drawn, transparent elsewhere; and something is drawn.
    assert all(a == 0 or (r, g, b) == (255, 255, 255) for r, g, b, a in outline.pixels), (
        "the outline icon may only be white on transparent"
    )
    assert any(a == 255 for *_, a in outline.pixels) and any(a == 0 for *_, a in outline.pixels)
    # The zip carries the committed files as they are.
    assert built.files["color.png"] == (TEAMS / "color.png").read_bytes()
    assert built.files["outline.png"] == (TEAMS / "outline.png").read_bytes()


def test_every_command_in_the_menu_is_understood_by_the_bot() -> None:
    template = json.loads((TEAMS / "manifest.json").read_text(encoding="utf-8"))
    (commands,) = template["bots"][0]["commandLists"]
    titles = [command["title"] for command in commands["commands"]]
    assert titles and len(titles) <= 10  # Teams shows at most 10 in the command menu
    for command in commands["commands"]:
        assert len(command["title"]) <= 32 and len(command.get("description", "")) <= 128
    for title in titles:
        assert parse(title).verb is not Verb.UNKNOWN, f"the bot does not understand {title!r}"
    assert {"help", "preferences", "history", "opt in", "opt out"} <= set(titles)


def _broken(manifest: dict[str, Any], how: str) -> dict[str, Any]:
    broken: dict[str, Any] = json.loads(json.dumps(manifest))
    if how == "no developer":
        del broken["developer"]
    elif how == "unknown version":
        broken["manifestVersion"] = "1.99"
    elif how == "bot id not a GUID":
        broken["bots"][0]["botId"] = "herald-bot"
    elif how == "colour name":
        broken["accentColor"] = "blue"
    elif how == "schema of another version":
        broken["manifestVersion"] = "1.29"
    return broken


@pytest.mark.parametrize(
    ("how", "expected"),
    [
        ("no developer", "developer"),
        ("unknown version", "/manifestVersion"),
        ("bot id not a GUID", "/bots/0/botId"),
        ("colour name", "/accentColor"),
        ("schema of another version", "/$schema"),
    ],
)
def test_the_validator_reports_a_broken_manifest(
    built: Built, tmp_path: Path, how: str, expected: str
) -> None:
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(_broken(built.manifest, how)), encoding="utf-8")
    result = validate(path)
    assert result.errors, f"{how}: the validator found nothing wrong"
    assert any(expected in error for error in result.errors), result.errors


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--app-id", "not-a-guid", "--bot-id", BOT_ID, "--host", HOST], "--app-id"),
        (["--app-id", APP_ID, "--bot-id", "1234", "--host", HOST], "--bot-id"),
        (["--bot-id", BOT_ID, "--host", HOST], "--app-id is required"),
        (["--app-id", APP_ID, "--bot-id", BOT_ID, "--host", f"https://{HOST}/"], "host name only"),
        (["--app-id", APP_ID, "--bot-id", BOT_ID, "--host", "localhost"], "not a public host"),
        (["--app-id", APP_ID, "--bot-id", BOT_ID, "--host", HOST, "--version", "1.0"], "--version"),
        (["--app-id", APP_ID, "--host", HOST], "no bot id"),
    ],
)
def test_bad_input_exits_2_and_writes_nothing(
    tmp_path: Path, args: list[str], message: str
) -> None:
    result = run_build(tmp_path, *args, "--out", "herald-teams.zip")
    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_bot_id_and_host_default_to_herald_settings(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        f"MicrosoftAppId={BOT_ID.upper()}\nHERALD_PUBLIC_URL=https://herald.contoso.com\n",
        encoding="utf-8",
    )
    result = run_build(tmp_path, "--app-id", APP_ID)
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(tmp_path / "herald-teams.zip") as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["bots"][0]["botId"] == BOT_ID
    assert manifest["validDomains"] == ["herald.contoso.com"]

    other = "9d8c7b6a-5f4e-4d3c-8b2a-1f0e9d8c7b6a"
    result = run_build(
        tmp_path, "--app-id", APP_ID, "--out", "env.zip", env={"MicrosoftAppId": other}
    )
    assert result.returncode == 0, result.stderr
    with zipfile.ZipFile(tmp_path / "env.zip") as archive:
        assert json.loads(archive.read("manifest.json"))["bots"][0]["botId"] == other


def test_the_same_input_builds_the_same_zip(built: Built, tmp_path: Path) -> None:
    again = tmp_path / "again.zip"
    result = run_build(
        tmp_path, "--app-id", APP_ID, "--bot-id", BOT_ID, "--host", HOST, "--out", str(again)
    )
    assert result.returncode == 0, result.stderr
    assert again.read_bytes() == built.zip.read_bytes()


def test_the_readmes_make_command_builds_the_package_as_written(tmp_path: Path) -> None:
    """`make teams-package ...` exactly as the README writes it, on a developer's machine
    (no MicrosoftAppId anywhere), with the placeholders filled in."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    [line] = [ln for ln in readme.splitlines() if ln.startswith("make teams-package ")]
    command = line.split("#")[0].replace("<GUID>", APP_ID).replace("<MicrosoftAppId>", BOT_ID)
    out = tmp_path / "herald-teams.zip"
    result = subprocess.run(
        # -o: the venv is set up already (a fresh checkout's requirements.txt is newer).
        [*command.split(), f"TEAMS_PACKAGE={out}", "-o", ".venv/.runtime"],
        cwd=str(ROOT),
        env={"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    with zipfile.ZipFile(out) as archive:
        manifest = json.loads(archive.read("manifest.json"))
    assert manifest["bots"][0]["botId"] == BOT_ID
    assert manifest["validDomains"] == [HOST]


def test_without_a_bot_id_the_error_names_the_make_variable(tmp_path: Path) -> None:
    result = run_build(tmp_path, "--app-id", APP_ID, "--host", HOST)
    assert result.returncode == 2
    assert "TEAMS_BOT_ID=<MicrosoftAppId>" in result.stderr
