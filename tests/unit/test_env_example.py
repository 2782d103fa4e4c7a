""".env.example lists every setting of config.Settings with its real default."""

from __future__ import annotations

import re
from pathlib import Path

from config import Settings
from tools.env_example import render

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / ".env.example"


def test_the_committed_file_is_what_the_model_writes() -> None:
    assert EXAMPLE.read_text(encoding="utf-8") == render(), (
        "regenerate it: .venv/bin/python -m tools.env_example > .env.example"
    )


def test_every_setting_is_there_once() -> None:
    names = re.findall(r"^# ([A-Za-z_]+)=", EXAMPLE.read_text(encoding="utf-8"), re.M)
    assert sorted(names) == sorted(Settings.environment_names())


def test_every_default_given_is_the_models_default(tmp_path: Path) -> None:
    """Uncomment every line that has a value: the settings are exactly the defaults."""
    lines = [
        line[2:]
        for line in EXAMPLE.read_text(encoding="utf-8").splitlines()
        if re.match(r"^# [A-Za-z_]+=.+", line)
    ]
    assert len(lines) > 30
    env_file = tmp_path / ".env"
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from_file = Settings.from_env({}, env_file=env_file)
    defaults = Settings.from_env({}, env_file=None)
    assert from_file.model_dump() == defaults.model_dump()


def test_copied_as_it_is_it_changes_nothing(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(EXAMPLE.read_text(encoding="utf-8"), encoding="utf-8")
    assert (
        Settings.from_env({}, env_file=env_file).model_dump()
        == Settings.from_env({}, env_file=None).model_dump()
    )
