"""Summarise a py-spy raw (collapsed-stack) profile of Herald: where the CPU went.

``py-spy record --format raw --threads`` writes one line per distinct stack:
``thread (<tid>): <name>;frame;frame;... <samples>`` with frames as ``function (file:line)``.
Idle threads are not sampled (py-spy's default), so every sample is a thread on the CPU and a
share below is a share of Herald's busy CPU time (all threads).

Printed:

* samples per thread (the event loop thread vs aiosqlite's connection threads);
* *inclusive* share of Herald's own functions (a function counts once per sample whose stack
  contains it) -- "how much would go away if this call were free";
* the same for every function below the event loop's scaffolding (asyncio, threading, the
  app's entry point), so SDK and library calls made on Herald's behalf are named too;
* *self* share by package of the innermost frame (aiohttp, msrest, botbuilder, json, ...) and
  the top innermost functions -- "who actually burns the cycles".

Run: ``python bench/profile_summary.py FILE [--top 15]``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Profile", "load", "main", "render"]

HERALD_PACKAGES = frozenset(
    {
        "api", "bots", "delivery", "dialogs", "engagement", "notifications", "outbound",
        "preferences", "proactive", "storage", "sources",
    }
)
HERALD_MODULES = frozenset(
    {
        "app.py", "server.py", "lifecycle.py", "config.py", "errors.py", "logs.py",
        "retry_after.py", "private_file.py",
    }
)
# Frames every busy sample passes through; they say nothing about where the cost is.
SCAFFOLDING = frozenset({"app.py", "server.py", "threading.py", "selectors.py"})
SCAFFOLDING_PACKAGES = frozenset({"asyncio", "aiohttp/web.py"})

_LINE = re.compile(r"^thread \((?P<tid>[^)]*)\): (?P<stack>.*) (?P<count>\d+)$")
_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")


@dataclass
class Profile:
    """Aggregated samples of one profile."""

    total: int = 0
    threads: Counter[str] = field(default_factory=Counter)
    herald_inclusive: Counter[str] = field(default_factory=Counter)
    inclusive: Counter[str] = field(default_factory=Counter)
    self_package: Counter[str] = field(default_factory=Counter)
    self_function: Counter[str] = field(default_factory=Counter)


def is_herald(file: str) -> bool:
    first = file.split("/", 1)[0]
    return file in HERALD_MODULES or (first in HERALD_PACKAGES and "/" in file)


def is_scaffolding(file: str) -> bool:
    return (
        file in SCAFFOLDING
        or file.split("/", 1)[0] in SCAFFOLDING_PACKAGES
        or file in SCAFFOLDING_PACKAGES
    )


def package_of(file: str) -> str:
    if is_herald(file):
        return "herald (" + file.split("/", 1)[0] + ")"
    if "/" not in file:
        return file.removesuffix(".py") or "?"
    return file.split("/", 1)[0]


def load(path: Path) -> Profile:
    profile = Profile()
    for raw in path.read_text(errors="replace").splitlines():
        match = _LINE.match(raw)
        if match is None:
            continue
        count = int(match["count"])
        name, *frames = match["stack"].split(";")
        profile.total += count
        profile.threads[name.split(" (", 1)[0]] += count
        parsed = [m for m in (_FRAME.match(f) for f in frames) if m is not None]
        if not parsed:
            profile.self_package["<no python frame>"] += count
            continue
        seen: set[str] = set()
        for frame in parsed:
            file = frame["file"]
            key = f"{frame['func']} ({file})"
            if key in seen or is_scaffolding(file):
                continue
            seen.add(key)
            profile.inclusive[key] += count
            if is_herald(file):
                profile.herald_inclusive[key] += count
        leaf = parsed[-1]
        profile.self_package[package_of(leaf["file"])] += count
        profile.self_function[f"{leaf['func']} ({leaf['file']})"] += count
    return profile


def render(profile: Profile, top: int = 15) -> list[str]:
    if not profile.total:
        return ["  (no samples)"]

    def pct(n: int) -> str:
        return f"{100 * n / profile.total:5.1f} %"

    lines = [f"  {profile.total:,} samples (busy threads only)", "  by thread:"]
    lines += [f"    {pct(n)}  {name}" for name, n in profile.threads.most_common()]
    lines.append("  Herald functions, inclusive (share of all busy samples):")
    lines += [f"    {pct(n)}  {name}" for name, n in profile.herald_inclusive.most_common(top)]
    lines.append("  any function below the event loop, inclusive:")
    lines += [f"    {pct(n)}  {name}" for name, n in profile.inclusive.most_common(top)]
    lines.append("  self time by package of the innermost frame:")
    lines += [f"    {pct(n)}  {name}" for name, n in profile.self_package.most_common(top)]
    lines.append("  self time, top innermost functions:")
    lines += [f"    {pct(n)}  {name}" for name, n in profile.self_function.most_common(top)]
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Summarise a py-spy raw profile of Herald.")
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=15)
    args = parser.parse_args(argv)
    print("\n".join(render(load(args.file), args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
