"""Stage 3 (codec): encode and decode files (paths, bytes or binary streams): read by the input policy, run through
the one encode pipeline or the one decode decision, written atomically.

Each file is three steps, so that a folder can overlap them (io/overlap.py): read (``read_color``,
``read_gray``), the nets and the stages around them (``encode_read_photos``, ``restore_read_grays``,
on batches), and write (``write_gray``, ``write_restored``). ``encode_file`` and ``decode_file`` do
the three in turn for one file.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from invgray_cli.codec.block_code import LOWEST_KEEPING_QUALITY, MIN_MACROBLOCKS, block_code_fits
from invgray_cli.codec.decode import DecodeOptions, DecodePath, Restored, decode_grays, restore
from invgray_cli.codec.encode import EncodedGray, encode_photos, held_warning
from invgray_cli.codec.model_choice import NO_CHUNK_WARNING, chunk_mismatch_warning, codec_for_gray
from invgray_cli.codec.nets import Codec
from invgray_cli.codec.tiling import ProgressFn
from invgray_cli.errors import InvgrayError
from invgray_cli.io.chunk import parse_chunk
from invgray_cli.io.images import DEFAULT_MAX_PIXELS, ColorImage, GrayImage, Source, read_color, read_gray, source_name
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


@dataclass(frozen=True)
class EncodedPhoto:
    """A photo and the gray the codec made of it, waiting to be written (by :func:`write_gray`)."""

    photo: ColorImage
    encoded: EncodedGray
    chunk: dict[str, str]  # the text the gray carries
    model: str
    held: str | None  # what the gray floor did to the hidden colour, for the user


def encode_read_photos(codec: Codec, photos: list[ColorImage], block_code: bool,
                       on_tile: ProgressFn | None = None) -> list[EncodedPhoto]:
    """The grays of photos as read (same-size photos share a net call), each with its chunk."""
    encoded = encode_photos(codec, [photo.rgb for photo in photos], block_code, on_tile)
    return [EncodedPhoto(photo, gray, codec.chunk_text(gray.strength), codec.info.name,
                         held_warning(gray.strength, codec.info.gray_floor)) for photo, gray in zip(photos, encoded)]


def write_gray(item: EncodedPhoto, dest: Destination, jpeg_quality: int | None = None,
               lossless_format: str | None = None) -> WrittenImage:
    """Write an encoded photo's gray (atomically when ``dest`` is a path): a PNG; a lossless TIFF or
    WebP (``lossless_format``); or with ``jpeg_quality`` a JPEG (no alpha). Each carries the chunk."""
    colour, gray = item.photo, item.encoded.gray
    if jpeg_quality is not None:
        write_gray_jpeg(gray, item.chunk, dest, jpeg_quality)
    elif lossless_format is not None:
        write_gray_lossless(gray, colour.alpha, item.chunk, dest, lossless_format)
    else:
        write_gray_png(gray, colour.alpha, item.chunk, dest)
    animation = None if colour.pages == 1 else f"an animation of {colour.pages} frames: only the first is encoded"
    alpha_dropped = ("a JPEG gray has no transparency: the alpha is dropped; write .png to keep it"
                     if jpeg_quality is not None and colour.alpha is not None else None)
    unreadable = item.encoded.block_code and (not block_code_fits(*gray.shape)
                                              or (jpeg_quality or 100) < LOWEST_KEEPING_QUALITY)
    return WrittenImage(gray.shape[1], gray.shape[0], colour.alpha is not None and jpeg_quality is None, item.model,
                        joined(animation, item.held, alpha_dropped, CODE_LOST_WARNING if unreadable else None))


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
    item = encode_read_photos(codec, [colour], with_code, on_tile)[0]
    return write_gray(item, dest, jpeg_quality, lossless_format)


@dataclass(frozen=True)
class RestoredGray:
    """A gray and the colour decode restored from it, waiting to be written (by :func:`write_restored`)."""

    gray: GrayImage
    restored: Restored
    choice_warning: str | None  # about the model that decoded it (said only when the gray carried a code)


def restore_read_grays(grays: list[tuple[str, GrayImage, Codec, str | None]], options: DecodeOptions = DecodeOptions(),
                       on_tile: ProgressFn | None = None) -> list[RestoredGray]:
    """Restore grays as read, each given as (its name, the gray, the codec that decodes it, what to
    say of that choice). One gray goes through ``restore``; several through ``decode_grays`` per
    codec, where same-size grays on their grid share a net call. A gray decode refuses is named."""
    if len(grays) == 1:
        name, gray, codec, warning = grays[0]
        try:
            return [RestoredGray(gray, restore(codec, gray, options, on_tile), warning)]
        except InvgrayError as exc:  # refused: say which gray
            raise InvgrayError(f"{name}: {exc}") from None
    restored: list[RestoredGray | None] = [None] * len(grays)
    by_codec: dict[int, list[int]] = {}
    for index, (_, _, codec, _) in enumerate(grays):
        by_codec.setdefault(id(codec), []).append(index)
    for indices in by_codec.values():
        codec = grays[indices[0]][2]
        for index, colour in zip(indices, decode_grays(codec, [grays[i][1] for i in indices], options, on_tile)):
            restored[index] = RestoredGray(grays[index][1], colour, grays[index][3])
    return restored


def write_restored(item: RestoredGray, dest: Destination, format: str | None = None) -> WrittenImage:
    """Write the restored colour (format from ``format`` or the extension; PNG to a stream)."""
    restored, alpha = item.restored, item.gray.alpha
    fmt = (format or (format_for_path(dest) if isinstance(dest, (str, Path)) else "PNG")).upper()
    write_color(restored.rgb, alpha, dest, fmt)
    return WrittenImage(restored.rgb.shape[1], restored.rgb.shape[0], alpha is not None, restored.model,
                        joined(item.choice_warning if restored.coded else None, restored.warning,
                               alpha_loss_warning(alpha, fmt)), restored.path)


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
    item = restore_read_grays([(source_name(source), gray, codec, warning)], options, on_tile)[0]
    return write_restored(item, dest, format)


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
