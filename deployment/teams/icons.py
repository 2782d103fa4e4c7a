"""Draw the Teams app icons (a bell) and write them as PNGs, with the standard library only.

    python -m deployment.teams.icons            # rewrites deployment/teams/{color,outline}.png
    python -m deployment.teams.icons --out DIR

Teams wants two icons in the app package: `color.png`, 192x192 full colour (the glyph should
sit within the middle 96x96; Teams rounds the corners itself), and `outline.png`, 32x32, white
on a transparent background and nothing else. Both are drawn from one shape, sampled 4x4 per
pixel for smooth edges; the output depends only on this file, so it can be regenerated.
"""

from __future__ import annotations

import argparse
import math
import struct
import sys
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Final

__all__ = ["ACCENT", "COLOR_SIZE", "OUTLINE_SIZE", "color_icon", "outline_icon", "png", "write"]

HERE: Final = Path(__file__).resolve().parent
COLOR_SIZE: Final = 192
OUTLINE_SIZE: Final = 32
ACCENT: Final = (0x3B, 0x5B, 0xDB)
"""Herald's blue: the colour icon's background and the manifest's `accentColor` (#3B5BDB)."""
_BADGE: Final = (0xFF, 0xB0, 0x20)
_WHITE: Final = (0xFF, 0xFF, 0xFF)
_SAMPLES: Final = 4

Shape = Callable[[float, float], bool]
"""Whether a point of the unit square (0..1 both ways, y downwards) is inside."""

RGBA = tuple[int, int, int, int]


def _bell(x: float, y: float) -> bool:
    """A bell: knob, dome, flared body, rim and clapper, filling the unit square."""
    cx = 0.5
    dx = abs(x - cx)
    if math.hypot(dx, y - 0.08) <= 0.07:  # knob
        return True
    if y <= 0.38:  # dome: the upper half of a circle
        return math.hypot(dx, y - 0.38) <= 0.27
    if y <= 0.76:  # body widening from the dome to the rim
        return dx <= 0.27 + (y - 0.38) / 0.38 * 0.15
    if y <= 0.84:  # rim with rounded ends
        return dx <= 0.42 or math.hypot(dx - 0.42, y - 0.80) <= 0.04
    return math.hypot(dx, y - 0.87) <= 0.11  # clapper


def _badge(x: float, y: float) -> bool:
    """The "something new" dot at the bell's upper right."""
    return math.hypot(x - 0.84, y - 0.2) <= 0.15


def _badge_gap(x: float, y: float) -> bool:
    """A ring of background around the dot, so it stands apart from the bell."""
    return math.hypot(x - 0.84, y - 0.2) <= 0.2


def _coverage(shape: Shape, px: int, py: int, size: int, box: tuple[float, float, float]) -> float:
    """How much of pixel (px, py) the shape covers, drawn into `box` (left, top, side) pixels."""
    left, top, side = box
    hits = 0
    for sy in range(_SAMPLES):
        for sx in range(_SAMPLES):
            x = (px + (sx + 0.5) / _SAMPLES - left) / side
            y = (py + (sy + 0.5) / _SAMPLES - top) / side
            if 0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 and shape(x, y):
                hits += 1
    return hits / (_SAMPLES * _SAMPLES)


def _mix(under: tuple[int, int, int], over: tuple[int, int, int], amount: float) -> RGBA:
    r, g, b = (round(u + (o - u) * amount) for u, o in zip(under, over, strict=True))
    return (r, g, b, 255)


def color_icon(size: int = COLOR_SIZE) -> list[list[RGBA]]:
    """The full-colour icon: a white bell with an amber dot on Herald's blue, fully opaque."""
    side = size * 0.5  # the glyph stays within the middle half, as Teams asks
    box = ((size - side) / 2, (size - side) / 2, side)
    rows = []
    for py in range(size):
        row = []
        for px in range(size):
            pixel = _mix(ACCENT, _WHITE, _coverage(_bell, px, py, size, box))
            gap = _coverage(_badge_gap, px, py, size, box)
            if gap:
                pixel = _mix(pixel[:3], ACCENT, gap)
                pixel = _mix(pixel[:3], _BADGE, _coverage(_badge, px, py, size, box))
            row.append(pixel)
        rows.append(row)
    return rows


def outline_icon(size: int = OUTLINE_SIZE) -> list[list[RGBA]]:
    """The outline icon: the bell in white on transparent (edges as partial alpha, still white)."""
    side = size - 4.0
    box = (2.0, 2.0, side)
    return [
        [(255, 255, 255, round(255 * _coverage(_bell, px, py, size, box))) for px in range(size)]
        for py in range(size)
    ]


def png(pixels: Sequence[Sequence[RGBA]]) -> bytes:
    """An 8-bit RGBA PNG (colour type 6, no interlace, filter 0 on every row)."""
    height, width = len(pixels), len(pixels[0])

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    raw = b"".join(b"\x00" + b"".join(struct.pack("4B", *pixel) for pixel in row) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def write(directory: Path = HERE) -> list[Path]:
    """Write color.png and outline.png into `directory`; the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, pixels in (("color.png", color_icon()), ("outline.png", outline_icon())):
        path = directory / name
        path.write_bytes(png(pixels))
        written.append(path)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m deployment.teams.icons", description="Draw the Teams app icons."
    )
    parser.add_argument("--out", type=Path, default=HERE, help="directory (default: beside this)")
    args = parser.parse_args(argv)
    for path in write(args.out):
        sys.stdout.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
