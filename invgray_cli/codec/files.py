"""Stage 3 (codec): encode and decode files (paths, bytes or binary streams): read by the input policy, run through
the one encode pipeline or the one decode decision, written atomically.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from invgray_cli.codec.block_code import LOWEST_KEEPING_QUALITY, MIN_MACROBLOCKS, block_code_fits
from invgray_cli.codec.decode import DecodeOptions, DecodePath, restore
from invgray_cli.codec.encode import encode_photos, held_warning
from invgray_cli.codec.model_choice import NO_CHUNK_WARNING, chunk_mismatch_warning, codec_for_gray
from invgray_cli.codec.nets import Codec
from invgray_cli.codec.tiling import ProgressFn
from invgray_cli.errors import InvgrayError
from invgray_cli.io.chunk import parse_chunk
from invgray_cli.io.images import DEFAULT_MAX_PIXELS, GrayImage, Source, read_color, read_gray, source_name
from invgray_cli.io.writing import (alpha_loss_warning, format_for_path, lossless_gray_format, write_color,
                                    write_gray_jpeg, write_gray_lossless, write_gray_png)

Destination = str | Path | BinaryIO
DEFAULT_JPEG_QUALITY = 90
CODE_LOST_WARNING = (f"too small (under {MIN_MACROBLOCKS} blocks of 16 px) or too low a JPEG quality (under "
                     f"{LOWEST_KEEPING_QUALITY}) for its block code: a JPEG of it keeps no colour")


@dataclass(frozen=True)
class WrittenImage:
    """What encode or decode wrote, for the per-file record."""

    width: int
    height: int
    alpha: bool
    model: str
    warning: str | None = None  # for the user: what was lost or assumed ("; "-joined)
    decode_path: DecodePath | None = None  # the path decode took (None for encode)


def joined(*warnings: str | None) -> str | None:
    return "; ".join(w for w in warnings if w) or None


def encode_file(source: Source, dest: Destination, codec: Codec, *, max_pixels: int | None = DEFAULT_MAX_PIXELS,
                on_tile: ProgressFn | None = None, jpeg_quality: int | None = None,
                block_code: bool | None = None, lossless_format: str | None = None) -> WrittenImage:
    """Read a photo, encode it and write the gray (atomically when ``dest`` is a path): a PNG; a
    lossless TIFF or WebP (``lossless_format``, by default from a path's extension); or with
    ``jpeg_quality`` a JPEG (no alpha). Each carries the chunk. ``block_code`` (by default: for a
    JPEG) adds the JPEG-safe coarse colour (block_code.py)."""
    if lossless_format is None and isinstance(dest, (str, Path)):
        lossless_format = lossless_gray_format(dest)
    colour = read_color(source, max_pixels)
    with_code = block_code if block_code is not None else jpeg_quality is not None
    encoded = encode_photos(codec, [colour.rgb], with_code, on_tile)[0]
    gray = encoded.gray
    if jpeg_quality is not None:
        write_gray_jpeg(gray, codec.chunk_text(encoded.strength), dest, jpeg_quality)
    elif lossless_format is not None:
        write_gray_lossless(gray, colour.alpha, codec.chunk_text(encoded.strength), dest, lossless_format)
    else:
        write_gray_png(gray, colour.alpha, codec.chunk_text(encoded.strength), dest)
    animation = None if colour.pages == 1 else f"an animation of {colour.pages} frames: only the first is encoded"
    alpha_dropped = ("a JPEG gray has no transparency: the alpha is dropped; write .png to keep it"
                     if jpeg_quality is not None and colour.alpha is not None else None)
    unreadable = with_code and (not block_code_fits(*gray.shape) or (jpeg_quality or 100) < LOWEST_KEEPING_QUALITY)
    return WrittenImage(gray.shape[1], gray.shape[0], colour.alpha is not None and jpeg_quality is None, codec.info.name,
                        joined(animation, held_warning(encoded.strength, codec.info.gray_floor), alpha_dropped,
                               CODE_LOST_WARNING if unreadable else None))


def decode_file(source: Source, dest: Destination, *, codec: Codec | None = None, format: str | None = None,
                max_pixels: int | None = DEFAULT_MAX_PIXELS, on_tile: ProgressFn | None = None,
                model: str | None = None, weights: str | Path | None = None, device: str = "auto",
                tile: int | None = None, precision: str = "auto",
                choose: Callable[[GrayImage], tuple[Codec, str | None]] | None = None,
                options: DecodeOptions = DecodeOptions()) -> WrittenImage:
    """Read a gray, decode it and write the colour image (format from ``format`` or the extension).

    The codec: ``codec`` if given; else ``choose(gray)`` (e.g. a caller's cache of loaded models);
    else the one the gray's chunk names. The returned warning is for the user.
    """
    gray = read_gray(source, max_pixels)
    codec, warning = codec_and_warning(gray, codec, choose, model=model, weights=weights, device=device, tile=tile,
                                       precision=precision)
    try:
        restored = restore(codec, gray, options, on_tile)
    except InvgrayError as exc:  # refused: say which gray
        raise InvgrayError(f"{source_name(source)}: {exc}") from None
    fmt = (format or (format_for_path(dest) if isinstance(dest, (str, Path)) else "PNG")).upper()
    write_color(restored.rgb, gray.alpha, dest, fmt)
    return WrittenImage(restored.rgb.shape[1], restored.rgb.shape[0], gray.alpha is not None, restored.model,
                        joined(warning if restored.coded else None, restored.warning,
                               alpha_loss_warning(gray.alpha, fmt)), restored.path)


def codec_and_warning(gray: GrayImage, codec: Codec | None = None,
                      choose: Callable[[GrayImage], tuple[Codec, str | None]] | None = None,
                      **load: object) -> tuple[Codec, str | None]:
    """The codec that decodes ``gray`` (the given one, ``choose``'s, or the one its chunk names)
    and what the user should hear about that choice."""
    if codec is not None:
        warning = chunk_mismatch_warning(gray.text, codec.info)
        if warning is None and parse_chunk(gray.text) is None:
            warning = NO_CHUNK_WARNING.format(model=f"model '{codec.info.name}'")
        return codec, warning
    if choose is not None:
        return choose(gray)
    return codec_for_gray(gray.text, **load)
