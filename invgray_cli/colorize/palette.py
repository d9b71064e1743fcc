"""Stage colorize: palette hints, the colours present in a picture without their positions (seed 002).

A palette comes from the user (``--palette "#3366cc,#d9b38c"``) or from another colour photo
(``--reference``: its dominant colours, ``dominant.py``). Pure Python, so that the command line can
state its limits without importing numpy.
"""
from __future__ import annotations

import re

from invgray_cli.errors import InvgrayError

Rgb = tuple[int, int, int]

MAX_PALETTE_COLOURS = 8  # the most a palette holds: training draws palettes of 0-8 colours, so the net knows no more
DEFAULT_PALETTE_SIZE = 5  # dominant colours taken from a --reference photo
PALETTE_ITEM = re.compile(r"\s*#?([0-9a-fA-F]{6})\s*")


def parse_palette(text: str) -> list[Rgb]:
    """``"#3366cc,#d9b38c"`` -> [(51, 102, 204), (217, 179, 140)], or a one-line error."""
    colours = []
    for item in text.split(","):
        match = PALETTE_ITEM.fullmatch(item)
        if match is None:
            raise InvgrayError(f"palette colour '{item.strip()[:20]}' is not #RRGGBB (e.g. #3366cc,#d9b38c)")
        colours.append(tuple(bytes.fromhex(match[1])))
    check_palette_size(len(colours))
    return colours


def hex_colour(rgb: Rgb) -> str:
    """(51, 102, 204) -> "#3366cc", as --palette takes it."""
    return "#" + bytes(rgb).hex()


def check_palette_size(count: int) -> None:
    """A one-line error for a palette of more than MAX_PALETTE_COLOURS colours."""
    if count > MAX_PALETTE_COLOURS:
        raise InvgrayError(f"a palette of {count} colours; at most {MAX_PALETTE_COLOURS} are used")
