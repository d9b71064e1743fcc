"""Stage cli: ``invgray decode``, grays back to colour, a shell over ``codec.files`` (read, restore, write).

Each gray names its model in its chunk; decode loads one Codec per model the run's grays ask for,
and the codec's one decision (``codec/decode.py``) picks each gray's path.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from invgray_cli.cli.info import GRAY_MODES
from invgray_cli.cli.options import ModelChoice, NetOptions, file_options, net_options, weights_option
from invgray_cli.cli.runner import (JobStages, LoadOnce, OnTile, RunOptions, Timed, check_color_output, file_record,
                                    finish, folder_workers, header_of, plan, read_source, run_jobs, write_output)
from invgray_cli.errors import InvgrayError
from invgray_cli.io import paths
from invgray_cli.io.paths import FileRecord, Job

if TYPE_CHECKING:  # annotations only: the command imports these when it runs
    from invgray_cli.codec.files import RestoredGray
    from invgray_cli.io.images import GrayImage


def colour_in_folder(path: Path) -> str | None:
    """Decode passes over colour photos found in folders (encode's inputs beside its grays)."""
    from invgray_cli.io.chunk import CHUNK_KEY

    header = header_of(path)
    if header is None or header.mode in GRAY_MODES or CHUNK_KEY in header.text:  # a WebP gray is RGB
        return None
    return "a colour image, not an invgray gray"


@click.command("decode")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@file_options()
@net_options()
@weights_option("Decode with this weights file instead of the model each gray's chunk names.")
@click.option("--no-fallback", is_flag=True,
              help="Refuse a gray that carries no colour code instead of colourising it.")
@click.option("--find-frame", is_flag=True,
              help="Only for grays made before invgray 0.2, which carry no sync pattern, and have lost "
                   "their chunk: search for a crop, mirror or turn and decode on the grid found "
                   "(experimental and slow: right for about half of detailed photos, wrong on smooth "
                   "or flat ones; see README). Newer grays need no option: their sync pattern shows it.")
def decode_command(inputs: tuple[str, ...], opts: RunOptions, net: NetOptions, weights: Path | None,
                   no_fallback: bool, find_frame: bool) -> None:
    """Restore colour photos from invgray gray PNGs.

    The model is the one named in each gray's chunk (or --weights). A gray with no chunk and no
    code (a plain gray, or a coded one re-compressed or resized) is colourised instead, with a note.
    A gray that was cropped, mirrored or turned is decoded on its code's grid, found by its sync
    pattern, with no option (--find-frame is for old grays without one). Output is PNG unless -o
    names another extension (e.g. -o photo.jpg). Colour images met in folders are skipped.
    """
    started = time.perf_counter()
    jobs = plan(inputs, opts, paths.COLOR_SUFFIX, check_color_output, refuse=colour_in_folder)

    from invgray_cli.codec.decode import DecodeOptions
    from invgray_cli.codec.files import restore_read_grays, write_restored
    from invgray_cli.codec.model_choice import choose_model, chunk_mismatch_warning
    from invgray_cli.io.images import read_gray

    options = DecodeOptions(fallback=not no_fallback, search_frame=find_frame)
    loaders: dict[Any, LoadOnce] = {}  # one Codec per model the grays' chunks ask for
    net.use_threads()

    def codec_for(gray: Any, label: str) -> tuple[Any, str | None]:
        try:
            spec, warning = choose_model(gray.text, weights=weights)
        except InvgrayError as e:  # the gray's own chunk is at fault: say which gray
            raise InvgrayError(f"{label}: {e}") from None
        if spec not in loaders:
            loaders[spec] = LoadOnce(lambda: ModelChoice(spec.name, spec.weights).load(net))
        model = loaders[spec]()
        return model, warning or chunk_mismatch_warning(gray.text, model.info)

    def read(job: Job) -> Timed[GrayImage]:
        return time.perf_counter(), read_gray(read_source(job.item), opts.max_pixels)

    def run(group: list[tuple[Job, Timed[GrayImage]]], on_tile: OnTile | None) -> list[Timed[RestoredGray]]:
        grays = [(job.item.label, gray, *codec_for(gray, job.item.label)) for job, (_, gray) in group]
        made = restore_read_grays(grays, options, on_tile)
        return [(began, item) for (_, (began, _)), item in zip(group, made)]

    def write(job: Job, made: Timed[RestoredGray]) -> FileRecord:
        began, item = made
        return file_record(job, write_output(job.output, lambda dest: write_restored(item, dest), force=opts.force),
                           began)

    results = run_jobs("decode", jobs, JobStages(read, run, write), opts, folder_workers(net.device or "auto"))
    finish("decode", "decoded", results, opts, started, [c for load in loaders.values() for c in load.loaded()])
