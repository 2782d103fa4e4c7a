"""The README's table of contents and the docs it points to stay true."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")


def anchor(title: str) -> str:
    """GitHub's anchor for a heading."""
    return re.sub(r"[^\w\- ]", "", title.strip().lower()).replace(" ", "-")


def test_the_contents_list_every_section_in_order() -> None:
    contents = re.search(r"^## Contents\n(.*?)(?=^## )", README, re.M | re.S)
    assert contents
    listed = re.findall(r"^ *- \[(.+?)\]\(#(.+?)\)$", contents.group(1), re.M)
    headings = [
        title for title in re.findall(r"^#{2,3} (.+)$", README, re.M) if title != "Contents"
    ]
    assert [title for title, _ in listed] == headings, "update ## Contents"
    assert all(target == anchor(title) for title, target in listed)


def test_the_first_sections_are_for_a_newcomer() -> None:
    sections = re.findall(r"^## (.+)$", README, re.M)
    assert sections[:4] == [
        "Contents", "Prerequisites", "Quick start", "Send your first notification"
    ]


def test_linked_docs_exist() -> None:
    for target in re.findall(r"\]\((docs/[^)#]+)\)", README):
        assert (ROOT / target).is_file(), target
    for name in ("architecture.md", "operations.md", "benchmarks.md"):
        assert f"docs/{name}" in README


def test_one_name_for_the_api_key_in_examples() -> None:
    assert "$HERALD_KEY" not in README
    assert "\npython -m tools.notify" not in README
    assert "Bearer $HERALD_API_KEY" in README
