"""Build the Teams app package: manifest.json, color.png and outline.png in one zip.

    python -m deployment.teams.build --app-id <guid> --bot-id <guid> \\
        --host herald.example.com --out herald-teams.zip

The template `manifest.json` beside this file holds placeholders that are filled in here:

    {{TEAMS_APP_ID}}        --app-id: the Teams app's own id (a GUID you make once and keep)
    {{MicrosoftAppId}}      --bot-id: the bot's Entra ID app id; default: MicrosoftAppId from
                            the environment or .env, as Herald itself reads it
    {{HERALD_PUBLIC_HOST}}  --host: where Herald is reached (validDomains); default: the host of
                            HERALD_PUBLIC_URL when that is https
    {{APP_VERSION}}         --version (default 1.0.0): raise it for every upload of a change
    {{DEVELOPER_NAME}}      --developer-name (default Herald)
    {{WEBSITE_URL}}, {{PRIVACY_URL}}, {{TERMS_URL}}
                            --website-url, --privacy-url, --terms-url (default https://<host>/)

The result is checked before it is written (no placeholder left, ids and icons as Teams wants
them); the zip is byte-for-byte the same for the same input. Exit status: 0 written, 2 bad
input (nothing written), 1 the zip could not be written.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import struct
import sys
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, TextIO
from urllib.parse import urlsplit

__all__ = ["PackageError", "Parameters", "build", "main", "render"]

HERE: Final = Path(__file__).resolve().parent
TEMPLATE: Final = "manifest.json"
ICON_SIZES: Final = {"color": 192, "outline": 32}
"""Pixel sizes Teams requires of the icons the manifest names (square)."""

_PLACEHOLDER: Final = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
_GUID: Final = re.compile(r"[0-9a-fA-F]{8}-(?:[0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}")
_SEMVER: Final = re.compile(r"(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)\.(?:0|[1-9][0-9]*)")
_LABEL: Final = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_ZIP_TIME: Final = (1980, 1, 1, 0, 0, 0)


class PackageError(ValueError):
    """Input that cannot make a valid package; the message says which and why."""


def guid(value: str, option: str) -> str:
    """`value` as a lower-case GUID, or PackageError naming `option`."""
    text = value.strip()
    if not text:
        raise PackageError(
            f"{option} is required: a GUID (make one with: "
            "python -c 'import uuid; print(uuid.uuid4())')"
        )
    if not _GUID.fullmatch(text):
        raise PackageError(
            f"{option}: {value!r} is not a GUID (expected 8-4-4-4-12 hexadecimal digits, "
            "e.g. 00000000-0000-0000-0000-000000000000)"
        )
    return text.lower()


def host_name(value: str, option: str = "--host") -> str:
    """`value` as a public DNS host name (lower case), or PackageError naming `option`."""
    host = value.strip().lower().removesuffix(".")
    if not host:
        raise PackageError(f"{option} is required: the public host name Herald is reached at")
    if "://" in host or any(c in host for c in "/:?#@"):
        raise PackageError(
            f"{option}: give the host name only, e.g. herald.example.com (not {value!r})"
        )
    labels = host.split(".")
    if (
        len(host) > 253
        or len(labels) < 2
        or not all(_LABEL.fullmatch(label) for label in labels)
        or labels[-1].isdigit()
    ):
        raise PackageError(
            f"{option}: {value!r} is not a public host name (Teams needs one such as "
            "herald.example.com; no IP addresses, no localhost)"
        )
    return host


def https_url(value: str, option: str) -> str:
    """`value` if it is an absolute https URL, or PackageError naming `option`."""
    parts = urlsplit(value.strip())
    if parts.scheme != "https" or not parts.hostname:
        raise PackageError(f"{option}: {value!r} is not an https URL")
    return value.strip()


@dataclass(frozen=True)
class Parameters:
    """What the template's placeholders are filled with, validated."""

    app_id: str
    bot_id: str
    host: str
    version: str = "1.0.0"
    developer_name: str = "Herald"
    website_url: str = ""
    privacy_url: str = ""
    terms_url: str = ""

    def __post_init__(self) -> None:
        if not _SEMVER.fullmatch(self.version):
            raise PackageError(f"--version: {self.version!r} is not MAJOR.MINOR.PATCH, e.g. 1.0.0")
        if not self.developer_name.strip() or len(self.developer_name) > 32:
            raise PackageError("--developer-name: 1 to 32 characters")

    def values(self) -> dict[str, str]:
        home = f"https://{self.host}/"
        return {
            "TEAMS_APP_ID": self.app_id,
            "MicrosoftAppId": self.bot_id,
            "HERALD_PUBLIC_HOST": self.host,
            "APP_VERSION": self.version,
            "DEVELOPER_NAME": self.developer_name,
            "WEBSITE_URL": self.website_url or home,
            "PRIVACY_URL": self.privacy_url or home,
            "TERMS_URL": self.terms_url or home,
        }


def render(template: Any, values: Mapping[str, str]) -> Any:
    """`template` (parsed JSON) with every `{{NAME}}` in its strings replaced by values[NAME].

    Substituting in parsed strings, not in the file's text, keeps a value from ever changing
    the JSON's structure."""
    if isinstance(template, dict):
        return {render(key, values): render(value, values) for key, value in template.items()}
    if isinstance(template, list):
        return [render(item, values) for item in template]
    if isinstance(template, str):

        def fill(match: re.Match[str]) -> str:
            name = match[1]
            if name not in values:
                raise PackageError(f"the template names an unknown placeholder {{{{{name}}}}}")
            return values[name]

        return _PLACEHOLDER.sub(fill, template)
    return template


def _strings(node: Any) -> list[str]:
    """Every key and string value in parsed JSON."""
    if isinstance(node, dict):
        return [s for k, v in node.items() for s in (str(k), *_strings(v))]
    if isinstance(node, list):
        return [s for item in node for s in _strings(item)]
    return [node] if isinstance(node, str) else []


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height from a PNG's IHDR chunk."""
    if data[:8] != b"\x89PNG\r\n\x1a\n" or data[12:16] != b"IHDR":
        raise PackageError("not a PNG file")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def check(manifest: Mapping[str, Any], parameters: Parameters, source: Path) -> dict[str, bytes]:
    """Raise PackageError unless `manifest` is complete; the icon files it names, read."""
    # Looked for in the strings: the JSON text of nested objects ends in "}}" by itself.
    left = sorted({m for s in _strings(manifest) for m in re.findall(r"\{\{[^}]*\}\}", s)})
    if left:
        raise PackageError(f"placeholders left in the manifest: {', '.join(left)}")
    if manifest.get("id") != parameters.app_id:
        raise PackageError("the manifest's id is not the app id given")
    bots = manifest.get("bots") or [{}]
    if bots[0].get("botId") != parameters.bot_id:
        raise PackageError("the manifest's botId is not the bot id given")
    icons: dict[str, bytes] = {}
    for kind, size in ICON_SIZES.items():
        name = str(manifest.get("icons", {}).get(kind, ""))
        path = source / name
        if not name or "/" in name or not path.is_file():
            raise PackageError(f"icon {kind!r}: {name!r} is missing beside the template")
        data = path.read_bytes()
        if png_size(data) != (size, size):
            raise PackageError(f"icon {name}: {png_size(data)} pixels, Teams needs {size}x{size}")
        icons[name] = data
    return icons


def build(parameters: Parameters, out: Path, source: Path = HERE) -> dict[str, Any]:
    """Write the package to `out` from the template in `source`; the manifest written."""
    template = json.loads((source / TEMPLATE).read_text(encoding="utf-8"))
    manifest: dict[str, Any] = render(template, parameters.values())
    icons = check(manifest, parameters, source)
    files = {TEMPLATE: (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode()}
    files.update(icons)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with zipfile.ZipFile(partial, "w") as archive:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    partial.replace(out)
    return manifest


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m deployment.teams.build",
        description="Build the Teams app package (manifest.json, color.png, outline.png).",
    )
    parser.add_argument("--app-id", default="", help="the Teams app's id (GUID; keep it)")
    parser.add_argument(
        "--bot-id", default=None, help="the bot's Entra ID app id (default: MicrosoftAppId)"
    )
    parser.add_argument(
        "--host", default=None, help="public host name (default: from HERALD_PUBLIC_URL)"
    )
    parser.add_argument("--out", type=Path, default=Path("herald-teams.zip"))
    parser.add_argument("--version", default="1.0.0", help="app version, MAJOR.MINOR.PATCH")
    parser.add_argument("--developer-name", default="Herald")
    parser.add_argument("--website-url", default="", help="default: https://<host>/")
    parser.add_argument("--privacy-url", default="", help="default: https://<host>/")
    parser.add_argument("--terms-url", default="", help="default: https://<host>/")
    return parser


def _from_settings(environ: Mapping[str, str]) -> tuple[str, str]:
    """MicrosoftAppId and HERALD_PUBLIC_URL as Herald would read them (environment, then .env)."""
    # Imported here: with every id given, the build needs nothing beyond the standard library.
    from config import Settings
    from errors import SettingsError

    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        raise PackageError(f"cannot read the settings for the defaults: {exc}") from None
    return settings.app_id, settings.public_url


def parameters_from(args: argparse.Namespace, environ: Mapping[str, str]) -> Parameters:
    """Validated parameters from the command line, defaults from Herald's settings."""
    app_id = guid(args.app_id, "--app-id")
    bot_id, public_url = ("", "")
    if args.bot_id is None or args.host is None:
        bot_id, public_url = _from_settings(environ)
    if args.bot_id is not None:
        bot_id = guid(args.bot_id, "--bot-id")
    elif not bot_id:
        raise PackageError(
            "no bot id: pass --bot-id (make teams-package: TEAMS_BOT_ID=<MicrosoftAppId>) or set "
            "MicrosoftAppId (environment or .env)"
        )
    else:
        bot_id = guid(bot_id, "MicrosoftAppId")
    if args.host is not None:
        host = host_name(args.host)
    else:
        parts = urlsplit(public_url)
        if parts.scheme != "https" or not parts.hostname:
            raise PackageError(
                f"no host: pass --host (HERALD_PUBLIC_URL {public_url!r} is not a public "
                "https address)"
            )
        host = host_name(parts.hostname, "HERALD_PUBLIC_URL")
    return Parameters(
        app_id=app_id,
        bot_id=bot_id,
        host=host,
        version=args.version.strip(),
        developer_name=args.developer_name.strip(),
        website_url=https_url(args.website_url, "--website-url") if args.website_url else "",
        privacy_url=https_url(args.privacy_url, "--privacy-url") if args.privacy_url else "",
        terms_url=https_url(args.terms_url, "--terms-url") if args.terms_url else "",
    )


def main(
    argv: Sequence[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    stdout, stderr = out or sys.stdout, err or sys.stderr
    args = _parser().parse_args(argv)
    try:
        parameters = parameters_from(args, os.environ if environ is None else environ)
        manifest = build(parameters, args.out)
    except PackageError as exc:
        stderr.write(f"teams package: {exc}\n")
        return 2
    except OSError as exc:
        stderr.write(f"teams package: {exc}\n")
        return 1
    stdout.write(
        f"wrote {args.out}: Teams app {parameters.app_id} v{manifest['version']}, "
        f"bot {parameters.bot_id}, host {parameters.host}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
