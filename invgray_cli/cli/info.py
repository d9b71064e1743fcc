"""Stage cli: ``invgray info``, the facts decode reads of a gray, and the path decode takes on them.

It reads every fact (decode reads only those its decision needs) through the codec's own
``read_facts`` and ``deciding_row``, so info and decode cannot disagree.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from invgray_cli.cli.options import json_option
from invgray_cli.cli.runner import read_source, say
from invgray_cli.errors import InvgrayError
from invgray_cli.io import paths
from invgray_cli.io.paths import InputItem
from invgray_cli.untrusted import printable

GRAY_MODES = frozenset({"L", "LA", "La", "1", "I", "I;16", "I;16B", "I;16L"})
CHUNK_LABELS = {"model": "model", "sha256": "weights sha256", "format": "invgray format", "version": "written by invgray"}


def gray_facts(source: Any) -> dict[str, Any]:
    """The decision's record of a gray (or why there is none) as JSON-ready values."""
    from invgray_cli.codec.decode import DecodeOptions, colorizer_ships, deciding_row, read_facts
    from invgray_cli.codec.model_choice import codec_for_gray
    from invgray_cli.io.images import read_gray

    gray = read_gray(source)
    try:
        codec, _ = codec_for_gray(gray.text, device="cpu")
    except InvgrayError as e:  # decode would refuse it the same way
        return {"model": None, "decode_path": "refuse", "decode_rule": str(e)}
    facts = read_facts(codec, gray, complete=True)
    row = deciding_row(facts, DecodeOptions(), colorizer_ships())
    pattern, blocks = facts.sync_pattern, facts.block_code
    return {
        "model": codec.info.name, "jpeg": facts.jpeg, "lossy": facts.lossy,
        "sync_pattern": {"found": pattern.found, "confidence": round(pattern.confidence, 2),
                         "moved": pattern.found and not pattern.frame.is_identity,
                         "what": pattern.frame.describe() if pattern.found else None,
                         "lines_cut": {side: lines if read else None for side, lines, read in
                                       zip(("top", "left", "bottom", "right"), pattern.cuts, pattern.read)}
                         if pattern.found else None},
        "code": None if facts.code is None else {"confidence": round(facts.code.confidence, 4),
                                                 "asked": facts.code_in_question},
        "block_code": {"found": blocks.found, "confidence": round(blocks.confidence, 3),
                       "version": blocks.version if blocks.found else None},
        "decode_path": row.path.value, "decode_rule": row.when,
    }


def file_facts(file: str) -> dict[str, Any]:
    """One file's record: its header, its chunk, and for a gray the decision's facts."""
    from dataclasses import asdict

    from invgray_cli.io.chunk import parse_chunk
    from invgray_cli.io.images import read_header

    source = read_source(InputItem(None if file == paths.STDIO else Path(file), Path(file)))
    header = read_header(source)
    chunk = parse_chunk(header.text)
    record: dict[str, Any] = {"input": file, "width": header.width, "height": header.height, "mode": header.mode,
                              "format": header.format, "invgray": None if chunk is None else asdict(chunk)}
    if header.mode in GRAY_MODES or chunk is not None:  # a gray, or one stored as RGB (WebP has no gray mode)
        try:
            record |= gray_facts(source)
        except InvgrayError as e:  # pixels it will not read (e.g. over --max-pixels): the header facts only
            record["error"] = str(e)
    return record


def describe(record: dict[str, Any]) -> list[str]:
    """The record as lines for a person; text from the file escaped."""
    from invgray_cli.codec.block_code import CODE_FOUND
    from invgray_cli.codec.decode import PATH_WORDS, DecodePath
    from invgray_cli.codec.sync_pattern import FOUND
    from invgray_cli.models.detector import CODE_THRESHOLD

    lines = [f"{printable(record['input'])}: {record['width']}x{record['height']} {record['format']} {record['mode']}"]
    chunk = record["invgray"]
    for key, label in CHUNK_LABELS.items():
        if chunk is not None:
            lines.append(f"  {label}: {printable(chunk[key])}")
    if chunk is not None and chunk["strength"] < 1.0:
        lines.append(f"  pattern strength: {chunk['strength']:.3f} (weakened by the gray floor; decode scales it back)")
    if chunk is None:
        lines.append("  no invgray chunk: " + ("not written by `invgray encode`, or re-saved by another tool"
                                               if record["mode"] in GRAY_MODES else "a colour image, not an invgray gray"))
    if "decode_path" not in record:
        return lines + ([f"  not read: {printable(record['error'])}"] if "error" in record else [])
    if (pattern := record.get("sync_pattern")) is not None:
        where = pattern["what"] if pattern["found"] else "none (made before invgray 0.2, or not by invgray)"
        lines.append(f"  sync pattern: {where} (confidence {pattern['confidence']:.1f}, found at {FOUND:g})")
    if (code := record.get("code")) is not None:
        model = printable(record["model"])
        verdict = f"{model}'s" if code["confidence"] >= CODE_THRESHOLD else f"none that {model} can read"
        unasked = "" if code.get("asked", True) else "; decode does not ask: the chunk says invgray wrote it"
        lines.append(f"  colour code: {verdict} (confidence {code['confidence']:.2f}{unasked})")
    if (blocks := record.get("block_code")) is not None:
        where = f"found (version {blocks['version']})" if blocks["found"] else "none read"
        lines.append(f"  block code: {where} (confidence {blocks['confidence']:.2f}, found at {CODE_FOUND:g})")
    path = DecodePath(record["decode_path"])
    words = "refused" if path is DecodePath.REFUSE and record["model"] is None else PATH_WORDS[path]
    lines.append(f"  decode: {words} [{record['decode_path']}: {printable(record['decode_rule'])}]")
    return lines


@click.command("info")
@click.argument("files", nargs=-1, required=True, metavar="FILE...")
@json_option
def info_command(files: tuple[str, ...], as_json: bool) -> None:
    """What decode sees in each gray: its chunk (model, weights, format), its sync pattern, colour
    code and block code, and the path decode takes on them."""
    records = [readable_facts(file) for file in files]
    if as_json:
        from invgray_cli.report import envelope, model_facts

        click.echo(json.dumps(envelope("invgray-info", "what decode reads of each gray and the path it takes",
                                       model_facts(None, None), "cpu", records), indent=2))
    for record in records:
        if "width" not in record:
            say("error", record["error"])
        elif not as_json:
            click.echo("\n".join(describe(record)))
    if any("width" not in record for record in records):
        raise SystemExit(1)


def readable_facts(file: str) -> dict[str, Any]:
    """``file_facts``, or for a file that cannot be read (not an image, a damaged chunk) the error
    that names it: the other files are still described."""
    try:
        return file_facts(file)
    except InvgrayError as e:
        return {"input": file, "error": str(e) if file in str(e) else f"{file}: {e}"}
