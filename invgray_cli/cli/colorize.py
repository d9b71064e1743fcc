"""Stage cli: ``invgray colorize``, colour guessed for grays that carry no hidden code, a shell over
``colorize.session.ColorizerCodec``.

The colouriser takes ``--device`` and ``--threads`` from the shared set; it runs in fp32 and tiles
very large images by its own U-Net's margin, so ``--precision`` and ``--tile`` are not offered.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from invgray_cli.cli.options import NetOptions, check_colorizer_choice, file_options, net_options
from invgray_cli.cli.runner import (OnTile, LoadOnce, RunOptions, check_color_output, file_record, finish, plan,
                                    read_source, run_jobs, say, write_output)
from invgray_cli.colorize.palette import (DEFAULT_PALETTE_SIZE, MAX_PALETTE_COLOURS, Rgb, check_palette_size, hex_colour,
                                          parse_palette)
from invgray_cli.errors import InvgrayError
from invgray_cli.io import paths
from invgray_cli.io.paths import FileRecord, Job

if TYPE_CHECKING:
    from invgray_cli.io.images import ColorImage


@dataclass(frozen=True)
class ColourisedFile:
    """What the command's record says of one colourised image."""

    width: int
    height: int
    model: str
    warning: str | None


def colorize_input_warning(image: ColorImage) -> str | None:
    """What colorize tells the user given an image it is not for (an invgray gray, a colour photo)."""
    from invgray_cli.io.chunk import CHUNK_KEY
    from invgray_cli.io.images import is_effectively_gray

    if CHUNK_KEY in image.text:
        return ("an invgray gray (it carries invgray's chunk): `invgray decode` restores its hidden colour; "
                "colorize only guesses colours")
    if not is_effectively_gray(image.rgb):
        return "a colour photo: colorize colourises grays, so its colours were replaced by ones guessed from its luma"
    return None


@click.command("colorize")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@file_options("Default: NAME.colorized.png beside each input.")
@click.option("--hint", "hint_texts", multiple=True, metavar="X,Y,#RRGGBB",
              help="The colour around pixel (X, Y) of the input (repeatable).")
@click.option("--hints", "hints_file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help='A JSON list of {"x": int, "y": int, "color": "#rrggbb"}.')
@click.option("--palette", "palette_text", default=None, metavar="#RRGGBB,...",
              help=f"Colours present in the picture, without positions (at most {MAX_PALETTE_COLOURS}).")
@click.option("--reference", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="PHOTO",
              help="Take the palette from this colour photo: its --palette-size dominant colours.")
@click.option("--palette-size", type=click.IntRange(1, MAX_PALETTE_COLOURS), default=None, metavar="N",
              help=f"With --reference: how many of its dominant colours (default {DEFAULT_PALETTE_SIZE}).")
@net_options(precision=False, tile=False)
@click.option("--colorizer", "colorizer_name", default=None, metavar="NAME",
              help="Shipped colouriser: its name, or its tag alone (see `invgray models`; default: the first).")
@click.option("--colorizer-weights", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="A colouriser weights file instead of the shipped one.")
def colorize_command(inputs: tuple[str, ...], opts: RunOptions, hint_texts: tuple[str, ...], hints_file: Path | None,
                     palette_text: str | None, reference: Path | None, palette_size: int | None, net: NetOptions,
                     colorizer_name: str | None, colorizer_weights: Path | None) -> None:
    """Colourise grays that carry no hidden code (old photos, scans, other tools' grays).

    A colour photo is taken as its BT.601 luma. The output keeps the input's tones: its luma is the
    gray. Hints say which colour a spot has; a palette (--palette, --reference) which colours the
    picture holds, for a colouriser trained with palette planes. Both apply to every input.
    """
    started = time.perf_counter()
    from invgray_cli.colorize.session import ColorizerCodec, check_hints, parse_hint, read_hints_file

    try:
        hints = [parse_hint(text) for text in hint_texts] + (read_hints_file(hints_file) if hints_file else [])
    except InvgrayError as e:
        raise click.BadParameter(str(e), param_hint="--hint/--hints") from None
    check_colorizer_choice(colorizer_name, colorizer_weights)
    palette = read_palette(palette_text, reference, palette_size, opts.max_pixels)
    if reference is not None and not opts.quiet:
        say("note", f"the palette: {', '.join(map(hex_colour, palette))}")
    jobs = plan(inputs, opts, paths.COLORIZED_SUFFIX, check_color_output)

    from invgray_cli.colour import plain_gray
    from invgray_cli.io.images import read_color
    from invgray_cli.io.writing import alpha_loss_warning, format_for_path, write_color

    net.use_threads()
    colorizer = LoadOnce(lambda: ColorizerCodec.load(colorizer_name, colorizer_weights, device=net.device or "auto",
                                                     palette=bool(palette)))
    if palette:
        try:
            colorizer().check_palette(palette)
        except InvgrayError as e:
            raise click.UsageError(str(e)) from None

    def process(job: Job, on_tile: OnTile | None) -> FileRecord:
        t0 = time.perf_counter()
        image = read_color(read_source(job.item), max_pixels=opts.max_pixels)
        gray = plain_gray(image.rgb)
        check_hints(hints, gray.shape[1], gray.shape[0], job.item.label)
        model = colorizer()
        rgb = model.colorize_array(gray, hints, palette)
        fmt = "PNG" if job.output is None else format_for_path(job.output)
        size, _ = write_output(job.output, lambda dest: write_color(rgb, image.alpha, dest, format=fmt),
                               force=opts.force)
        warnings = (colorize_input_warning(image), alpha_loss_warning(image.alpha, fmt))
        done = (size, ColourisedFile(rgb.shape[1], rgb.shape[0], model.name, "; ".join(w for w in warnings if w) or None))
        return file_record(job, done, t0)

    results = run_jobs("colorize", jobs, process, opts)
    finish("colorize", "colourised", results, opts, started, colorizer.loaded())


def read_palette(palette_text: str | None, reference: Path | None, palette_size: int | None,
                 max_pixels: int | None) -> list[Rgb]:
    """The palette of --palette and --reference together (a usage error when it cannot be read)."""
    from invgray_cli.colorize.session import reference_palette

    if palette_size is not None and reference is None:
        raise click.UsageError("--palette-size counts the colours taken from --reference; it needs --reference")
    try:
        palette = parse_palette(palette_text) if palette_text is not None else []
    except InvgrayError as e:
        raise click.BadParameter(str(e), param_hint="--palette") from None
    if reference is not None:
        try:
            palette += reference_palette(reference, palette_size or DEFAULT_PALETTE_SIZE, max_pixels)
        except InvgrayError as e:
            raise click.BadParameter(str(e), param_hint="--reference") from None
    try:
        check_palette_size(len(palette))
    except InvgrayError as e:
        raise click.UsageError(f"--palette and --reference together: {e}") from None
    return palette
