"""Stage 1 (io): the ``invgray`` chunk: what a gray file says about the model that wrote it.

A PNG gray carries it as a text chunk, a JPEG gray as its comment:
``{"format", "model", "sha256", "version"}``, and ``"strength"`` when the gray floor weakened the
hidden pattern (decode then strengthens it back). The format version says what the gray holds:
1 (invgray < 0.2) the nets' gray alone; 2 also the sync pattern; 3 also its edge marks. A reader
that does not know ``strength`` decodes the weakened pattern as it is (paler, less exact colour).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from invgray_cli import __version__
from invgray_cli.errors import InvgrayError
from invgray_cli.untrusted import parse_json, shown

FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)
EDGE_MARKED_FORMAT = 3
CHUNK_KEY = "invgray"
SHA_PREFIX_LENGTH = 16
SHA_PREFIX_PATTERN = re.compile(r"[0-9a-fA-F]{1,64}")  # an empty prefix would match every weights file
MAX_CHUNK_BYTES = 1 << 16  # ours is about 100 bytes; a --weights file's name is copied into it
MIN_STRENGTH = 0.01  # the guard's grid is 1/64; less would amplify 8-bit rounding 100-fold
DAMAGED = "the invgray chunk of this gray is damaged"


@dataclass(frozen=True)
class ChunkInfo:
    format: int
    model: str
    sha256: str  # prefix of the weights file's sha256
    version: str  # invgray version that wrote the gray
    strength: float = 1.0  # what the gray floor left of the hidden pattern (1: the net's own)


def make_chunk(model: str, sha256: str, strength: float = 1.0) -> dict[str, str]:
    """The text a gray written now by the model ``model`` (weights ``sha256``) carries; a pattern
    ``strength`` under 1 (but above 0: nothing is left to strengthen at 0) is written too."""
    payload: dict[str, object] = {"format": FORMAT_VERSION, "model": model, "sha256": sha256[:SHA_PREFIX_LENGTH],
                                  "version": __version__}
    if 0.0 < strength < 1.0:
        payload["strength"] = round(strength, 6)
    return {CHUNK_KEY: json.dumps(payload, separators=(",", ":"))}


def parse_chunk(text: dict[str, str] | None) -> ChunkInfo | None:
    """The invgray chunk in a file's text, None when there is none; a damaged chunk (not bounded
    JSON, a field missing or of the wrong type, an empty weights digest) or an unknown format is
    refused with one line."""
    raw = None if text is None else text.get(CHUNK_KEY)
    if raw is None:
        return None
    payload = parse_json(raw, f"{DAMAGED}: it", max_bytes=MAX_CHUNK_BYTES, max_depth=4)
    if not isinstance(payload, dict):
        raise InvgrayError(damaged("not the JSON object invgray writes"))
    fmt = payload.get("format")
    if type(fmt) is not int or fmt < 1:  # bool is an int to Python, but `true` is no format number
        raise InvgrayError(damaged(f"its format is {shown(fmt)}, not a format number 1, 2, ..."))
    if fmt not in READABLE_FORMATS:
        raise InvgrayError(
            f"this gray uses invgray format {shown(fmt)}, but invgray {__version__} reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))} only; upgrade invgray to decode it"
        )
    model, sha256, version = payload.get("model"), payload.get("sha256"), payload.get("version", "?")
    if not isinstance(model, str) or not model:
        raise InvgrayError(damaged(f"its model is {shown(model)}, not a model name"))
    if not isinstance(sha256, str) or not SHA_PREFIX_PATTERN.fullmatch(sha256):
        raise InvgrayError(damaged(f"its weights sha256 is {shown(sha256)}, not 1 to 64 hex digits"))
    if not isinstance(version, str):
        raise InvgrayError(damaged(f"its version is {shown(version)}, not an invgray version"))
    strength = payload.get("strength", 1.0)
    if type(strength) not in (int, float) or not MIN_STRENGTH <= strength <= 1.0:
        raise InvgrayError(damaged(f"its pattern strength is {shown(strength)}, not a number from {MIN_STRENGTH} to 1"))
    return ChunkInfo(fmt, model, sha256.lower(), version, float(strength))


def damaged(why: str) -> str:
    return f"{DAMAGED} ({why})"


def has_edge_marks(chunk: ChunkInfo | None) -> bool:
    """Whether a gray's sync pattern may carry edge marks: its chunk says format 3 or later, or it
    has no chunk (a gray that lost it was most likely made by this version)."""
    return chunk is None or chunk.format >= EDGE_MARKED_FORMAT
