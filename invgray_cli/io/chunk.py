"""The ``invgray`` chunk: what a gray file says about the model that wrote it.

A PNG gray carries it as a text chunk, a JPEG gray as its comment:
``{"format", "model", "sha256", "version"}``. The format version says what the gray holds:
1 (invgray < 0.2) the nets' gray alone; 2 also the sync pattern; 3 also its edge marks.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from invgray_cli import __version__
from invgray_cli.errors import InvgrayError

FORMAT_VERSION = 3
READABLE_FORMATS = (1, 2, 3)
EDGE_MARKED_FORMAT = 3
CHUNK_KEY = "invgray"
SHA_PREFIX_LENGTH = 16


@dataclass(frozen=True)
class ChunkInfo:
    format: int
    model: str
    sha256: str  # prefix of the weights file's sha256
    version: str  # invgray version that wrote the gray


def make_chunk(model: str, sha256: str) -> dict[str, str]:
    """The text a gray written now by the model ``model`` (weights ``sha256``) carries."""
    payload = {"format": FORMAT_VERSION, "model": model, "sha256": sha256[:SHA_PREFIX_LENGTH], "version": __version__}
    return {CHUNK_KEY: json.dumps(payload, separators=(",", ":"))}


def parse_chunk(text: dict[str, str] | None) -> ChunkInfo | None:
    """The invgray chunk in a file's text, None when there is none; refuses unknown formats."""
    raw = None if text is None else text.get(CHUNK_KEY)
    if raw is None:
        return None
    try:
        payload = json.loads(raw)
        fmt = payload["format"]
    except (ValueError, TypeError, KeyError):
        raise InvgrayError("the invgray chunk of this gray is damaged (not the JSON invgray writes)") from None
    if fmt not in READABLE_FORMATS:
        raise InvgrayError(
            f"this gray uses invgray format {fmt}, but invgray {__version__} reads formats "
            f"{', '.join(map(str, READABLE_FORMATS))} only; upgrade invgray to decode it"
        )
    try:
        return ChunkInfo(int(fmt), str(payload["model"]), str(payload["sha256"]).lower(), str(payload.get("version", "?")))
    except (KeyError, TypeError):
        raise InvgrayError("the invgray chunk of this gray is damaged (missing model or sha256)") from None


def has_edge_marks(chunk: ChunkInfo | None) -> bool:
    """Whether a gray's sync pattern may carry edge marks: its chunk says format 3 or later, or it
    has no chunk (a gray that lost it was most likely made by this version)."""
    return chunk is None or chunk.format >= EDGE_MARKED_FORMAT
