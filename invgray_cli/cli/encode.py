"""Stage cli: ``invgray encode``, colour photos to grays, a shell over ``codec.files`` (read, encode, write).

It plans the files (invgray's own grays are refused: encoding a gray hides no colour), loads the
one Codec of the run when the first file needs it, and writes each gray as PNG, or as TIFF, WebP
or JPEG when ``-o`` names one.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

import click

from invgray_cli.cli.info import GRAY_MODES
from invgray_cli.cli.options import ModelChoice, NetOptions, file_options, model_options, net_options
from invgray_cli.cli.runner import (JobStages, LoadOnce, OnTile, RunOptions, Timed, file_record, finish, folder_workers,
                                    header_of, plan, read_source, run_jobs, write_output)
from invgray_cli.io import paths
from invgray_cli.io.paths import FileRecord, Job

if TYPE_CHECKING:  # annotations only: the command imports these when it runs
    from invgray_cli.codec.files import EncodedPhoto
    from invgray_cli.io.images import ColorImage

GRAY_BY_CHUNK = "an invgray gray (it carries invgray's chunk), which `invgray decode` restores"
GRAY_BY_NAME = "a gray named like an invgray gray, which `invgray decode` restores"
# -o suffixes a gray may have: lossless PNG, TIFF and WebP carry it whole, JPEG its block code
GRAY_OUTPUT_SUFFIXES = (".png", ".tif", ".tiff", ".webp", ".jpg", ".jpeg")


def invgray_gray(path: Path) -> str | None:
    """Why encode does not take ``path``: an invgray gray, told by its chunk or by a gray's name."""
    from invgray_cli.io.chunk import CHUNK_KEY

    header = header_of(path)
    if header is None:
        return None
    if CHUNK_KEY in header.text:
        return GRAY_BY_CHUNK
    if path.name.lower().endswith(paths.GRAY_SUFFIX) and header.mode in GRAY_MODES:
        return GRAY_BY_NAME
    return None


def named_gray_refusal(path: Path) -> str | None:
    """Encode refuses a gray the user names: encoding a gray again hides no colour, and a decoded
    gray given to encode is almost always a slip for decode."""
    reason = invgray_gray(path)
    if reason is None:
        return None
    rename = " (if it is a photo of yours, rename it)" if reason == GRAY_BY_NAME else ""
    return f"is {reason}; encoding it would hide no colour, so it is not encoded{rename}"


def check_gray_output(path: Path) -> None:
    if path.suffix.lower() not in GRAY_OUTPUT_SUFFIXES:
        raise click.BadParameter(f"{path}: invgray writes a gray as .png, .tif or .webp (lossless, carrying its "
                                 "chunk) or as .jpg (lossy: keeps the coarse block code), not as "
                                 f"'{path.suffix or 'no extension'}'", param_hint="-o/--output")


@click.command("encode")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@file_options()
@net_options()
@model_options()
@click.option("--quality", type=click.IntRange(1, 100), default=None, metavar="Q",
              help="JPEG quality of a .jpg gray (default: 90).")
@click.option("--jpeg-safe", is_flag=True,
              help="Add the block code to PNG grays too: a JPEG of the gray then keeps a coarse copy of the "
                   "colour (costs some PNG quality, see README). JPEG grays always carry it.")
def encode_command(inputs: tuple[str, ...], opts: RunOptions, net: NetOptions, choice: ModelChoice,
                   quality: int | None, jpeg_safe: bool) -> None:
    """Encode colour photos into gray PNGs that hide their colour.

    INPUT may be files, folders (recursive), quoted globs or '-' for stdin; invgray grays are not
    encoded again (decode restores them). With -o NAME.tif or NAME.webp the gray is a lossless TIFF
    or WebP carrying the chunk as a PNG does. With -o NAME.jpg the
    gray is a JPEG carrying the JPEG-safe block code, written by the chosen model; decode restores
    its colour through that model's JPEG decoder where one ships (see `invgray models`).
    """
    started = time.perf_counter()
    jobs = plan(inputs, opts, paths.GRAY_SUFFIX, check_gray_output, refuse=invgray_gray,
                refuse_named=named_gray_refusal)

    from invgray_cli.codec.files import DEFAULT_JPEG_QUALITY, encode_read_photos, write_gray
    from invgray_cli.io.images import read_color
    from invgray_cli.io.writing import is_jpeg_name, lossless_gray_format

    as_jpeg = len(jobs) == 1 and jobs[0].output is not None and is_jpeg_name(jobs[0].output)
    if quality is not None and not as_jpeg:
        raise click.UsageError("--quality is for a JPEG gray: give one input and -o NAME.jpg")
    net.use_threads()
    codec = LoadOnce(lambda: choice.load(net))  # the one Codec of this run, loaded when the first file needs it
    jpeg_quality = (quality or DEFAULT_JPEG_QUALITY) if as_jpeg else None
    block_code = jpeg_safe or as_jpeg

    def read(job: Job) -> Timed[ColorImage]:
        return time.perf_counter(), read_color(read_source(job.item), opts.max_pixels)

    def run(group: list[tuple[Job, Timed[ColorImage]]], on_tile: OnTile | None) -> list[Timed[EncodedPhoto]]:
        made = encode_read_photos(codec(), [photo for _, (_, photo) in group], block_code, on_tile)
        return [(began, item) for (_, (began, _)), item in zip(group, made)]

    def write(job: Job, made: Timed[EncodedPhoto]) -> FileRecord:
        began, item = made
        lossless = None if job.output is None else lossless_gray_format(job.output)
        done = write_output(job.output, lambda dest: write_gray(item, dest, jpeg_quality, lossless), force=opts.force)
        return file_record(job, done, began)

    results = run_jobs("encode", jobs, JobStages(read, run, write), opts, folder_workers(net.device or "auto"))
    finish("encode", "encoded", results, opts, started, codec.loaded())
