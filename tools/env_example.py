"""Write `.env.example`: every setting Herald reads, its default and what it is, from
`config.Settings` itself (a test checks the committed file is exactly this output, so it cannot
drift from the model).

    .venv/bin/python -m tools.env_example > .env.example

Every line is commented out: copied to `.env` as it is, the file changes nothing; uncomment a
line to set it. `.env` is read from the working directory, after the environment.
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import PurePath
from typing import Any

from pydantic import SecretStr

from config import Settings

__all__ = ["default_text", "render"]

_HEADER = """\
# Herald's settings, each with its default (tools/env_example.py writes this file from
# config.py). Copy it to .env and uncomment what you change: the environment wins over .env.
# With none set, `make run` starts in Emulator mode on http://localhost:3978 with SQLite in
# ./data and prints a generated API key (README: Quick start).
"""


def default_text(value: Any) -> str:
    """A default as it would be written in `.env` (lists comma-separated, booleans lower case,
    no value for secrets and optional files)."""
    if value is None:
        return ""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list | frozenset):
        return ",".join(str(v) for v in value)
    if isinstance(value, PurePath):
        return str(value)
    return str(value)


def render() -> str:
    parts = [_HEADER]
    for name, field in Settings.model_fields.items():
        env_name = field.alias or name
        description = (field.description or "").replace("`", "")
        comment = textwrap.wrap(description, width=96) or [""]
        lines = [f"# {line}".rstrip() for line in comment]
        lines.append(f"# {env_name}={default_text(field.default)}")
        parts.append("\n".join(lines) + "\n")
    return "\n".join(parts)


if __name__ == "__main__":
    sys.stdout.write(render())
