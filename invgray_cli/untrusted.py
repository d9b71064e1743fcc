"""Base: text that came from a file is data: parsed with limits, escaped before it is shown.

Every JSON read from a file (a gray's chunk or JPEG comment, a weights file's metadata, a hints
file) goes through :func:`parse_json`, so a hostile file costs bounded work and gets a one-line
error; every string from a file that reaches a human-readable line goes through :func:`printable`,
so it cannot move the cursor, set the terminal title or forge report lines. ``--json`` output is
exact JSON and needs no escaping.
"""
from __future__ import annotations

import json
from typing import Any

from invgray_cli.errors import InvgrayError

MAX_JSON_BYTES = 1 << 20  # a chunk, a comment or a config is a few hundred bytes
MAX_JSON_DEPTH = 32  # ours nest two levels; Python's parser recurses once per level


def json_depth_exceeds(text: str, limit: int) -> bool:
    """Whether ``text`` opens more than ``limit`` nested arrays or objects (brackets inside strings
    not counted), found without parsing, so it costs one linear pass."""
    depth = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limit:
                return True
        elif char in "]}":
            depth -= 1
    return False


def parse_json(text: str | bytes, what: str, max_bytes: int = MAX_JSON_BYTES, max_depth: int = MAX_JSON_DEPTH) -> Any:
    """``json.loads(text)`` within ``max_bytes`` and ``max_depth``, or an InvgrayError naming ``what``
    (e.g. "the invgray chunk of this gray") and what was wrong with it."""
    if len(text) > max_bytes:
        raise InvgrayError(f"{what} is too large ({len(text):,} bytes; at most {max_bytes:,} are read)")
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise InvgrayError(f"{what} is not UTF-8 text") from None
    if json_depth_exceeds(text, max_depth):
        raise InvgrayError(f"{what} nests deeper than {max_depth} levels: not JSON that invgray writes")
    try:
        return json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InvgrayError(f"{what} is not valid JSON ({str(exc).splitlines()[0]})") from None


# characters that reorder the text around them on screen (bidirectional overrides and isolates)
BIDI_CONTROLS = frozenset("\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: object) -> str:
    """``str(text)`` with control characters (C0, DEL, C1, line/paragraph separators and the
    bidirectional controls) written as escapes (``\\x1b``, ``\\n``, ``\\u202e``), so text from a file
    shows as itself on one line."""
    out = []
    for char in str(text):
        code = ord(char)
        if code < 0x20 or 0x7F <= code < 0xA0 or char in "\u2028\u2029" or char in BIDI_CONTROLS:
            out.append(char.encode("unicode_escape").decode("ascii"))
        else:
            out.append(char)
    return "".join(out)


def shown(value: object, limit: int = 40) -> str:
    """A value read from a file's JSON as a message quotes it: as JSON (so ``true`` and ``"3"`` show
    what they are), cut to ``limit`` characters; ``missing`` for an absent field (None)."""
    if value is None:
        return "missing"
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 3] + "..."
