"""Stage cli: ``invgray eval``, a shell over ``eval.evaluate``: the codec measured on folders of
photos (``evaluate_folder``), or with ``--colorize`` the colouriser (``evaluate_colorization``);
a table on stderr and the one JSON envelope on stdout."""
from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

from invgray_cli.cli.options import (ModelChoice, NetOptions, check_colorizer_choice, json_option, model_options,
                                     net_options, option_group, quiet_option)
from invgray_cli.cli.runner import say
from invgray_cli.colorize.palette import MAX_PALETTE_COLOURS
from invgray_cli.errors import InvgrayError

JpegSaves = int | tuple[int, ...]  # a quality, or the qualities of saves in turn


def parse_jpeg_saves(text: str) -> JpegSaves:
    """``"75"`` -> 75; ``"90,75"`` -> (90, 75): saved at 90, then re-saved at 75."""
    try:
        qualities = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise click.BadParameter(f"'{text}' is not a JPEG quality or a list of them (e.g. 75 or 90,75)",
                                 param_hint="--jpeg") from None
    if not all(1 <= q <= 100 for q in qualities):
        raise click.BadParameter(f"'{text}': JPEG qualities are 1-100", param_hint="--jpeg")
    return qualities[0] if len(qualities) == 1 else qualities


@dataclass(frozen=True)
class CodecMeasures:
    """What eval measures of the codec beside the lossless round trip, and where strips go."""

    jpeg_qualities: tuple[JpegSaves, ...] = ()
    block_code: bool = False
    save_dir: str | None = None

    def asked(self) -> bool:
        return bool(self.jpeg_qualities or self.block_code or self.save_dir)


@dataclass(frozen=True)
class ColorizeMeasures:
    """``--colorize``: the colouriser measured instead, with these hint counts and palette sizes."""

    colorize: bool = False
    hint_counts: tuple[int, ...] = ()
    palette_sizes: tuple[int, ...] = ()
    colorizer_name: str | None = None
    colorizer_weights: str | None = None


codec_measure_options = option_group("measures", CodecMeasures, [
    click.option("--jpeg", "jpeg_qualities", multiple=True, metavar="Q[,Q2...]",
                 callback=lambda ctx, param, values: tuple(parse_jpeg_saves(v) for v in values),
                 help="Also restore from the gray re-saved as a JPEG of quality Q, or saved at Q and re-saved "
                      "at Q2... (repeatable)."),
    click.option("--jpeg-safe", "block_code", is_flag=True,
                 help="Encode with the JPEG-safe block code, as every JPEG gray (and `encode --jpeg-safe`) is."),
    click.option("--save-dir", type=click.Path(file_okay=False),
                  help="Write input | gray | restored | difference per image here."),
])
colorize_measure_options = option_group("colorizing", ColorizeMeasures, [
    click.option("--colorize", "colorize", is_flag=True,
                 help="Measure the colouriser instead: each photo's luma colourised with --hints N random hints."),
    click.option("--hints", "hint_counts", multiple=True, type=click.IntRange(min=0), metavar="N",
                 help="With --colorize: random true-colour hints per image (repeatable; default 0)."),
    click.option("--palette", "palette_sizes", multiple=True, type=click.IntRange(1, MAX_PALETTE_COLOURS), metavar="N",
                 help="With --colorize: also each photo's own N dominant colours as a palette, no hints "
                      "(repeatable; a colouriser with palette planes)."),
    click.option("--colorizer", "colorizer_name", default=None, metavar="NAME",
                 help="With --colorize: a shipped colouriser, its name or tag (default: the first)."),
    click.option("--colorizer-weights", type=click.Path(dir_okay=False), default=None, metavar="PATH",
                 help="With --colorize: a colouriser weights file instead of the shipped one."),
])


@click.command("eval")
@click.argument("paths", nargs=-1, required=True, type=click.Path())
@model_options(weights_help="A weights file of your own instead of a shipped model.")
@net_options()
@codec_measure_options
@colorize_measure_options
@click.option("--limit", type=click.IntRange(min=1), help="Evaluate only the first N images.")
@json_option
@quiet_option
def eval_command(paths: tuple[str, ...], choice: ModelChoice, net: NetOptions, measures: CodecMeasures,
                 colorizing: ColorizeMeasures, limit: int | None, as_json: bool, quiet: bool) -> None:
    """Measure restored-colour and gray quality on PATHS (images or folders, recursive)."""
    check_colorize_options(colorizing, choice, net, measures)
    net.use_threads()
    if colorizing.colorize:
        from invgray_cli.colorize.session import ColorizerCodec
        from invgray_cli.eval.evaluate import evaluate_colorization, render_colorize_table

        colorizer = ColorizerCodec.load(colorizing.colorizer_name, colorizing.colorizer_weights,
                                        device=net.device or "auto", palette=bool(colorizing.palette_sizes))
        if colorizing.palette_sizes:
            try:
                colorizer.check_takes_palette()
            except InvgrayError as e:
                raise click.UsageError(f"--palette: {e}") from None
        report = evaluate_colorization(paths, colorizer, colorizing.hint_counts or (0,), limit=limit,
                                       palette_sizes=colorizing.palette_sizes)
        show_report(report, render_colorize_table(report), quiet, as_json)
        return

    from invgray_cli.eval.evaluate import evaluate_folder, render_eval_table

    codec = choice.load(net)
    with eval_progress(quiet) as on_image:
        report = evaluate_folder(paths, codec, save_dir=measures.save_dir, on_image=on_image, limit=limit,
                                 jpeg_qualities=measures.jpeg_qualities, block_code=measures.block_code)
    show_report(report, render_eval_table(report, per_image=report["results"]["count"] <= 100), quiet, as_json)


def check_colorize_options(colorizing: ColorizeMeasures, choice: ModelChoice, net: NetOptions,
                           measures: CodecMeasures) -> None:
    """Usage errors for options of one kind of eval given to the other."""
    if colorizing.hint_counts and not colorizing.colorize:
        raise click.UsageError("--hints counts colourisation hints; it needs --colorize")
    if colorizing.palette_sizes and not colorizing.colorize:
        raise click.UsageError("--palette sizes a colourisation palette; it needs --colorize")
    codec_asked = measures.asked() or choice != ModelChoice() or net.tile is not None or net.precision != "auto"
    if colorizing.colorize and codec_asked:
        raise click.UsageError("--colorize measures the colouriser: --jpeg, --jpeg-safe, --save-dir, --weights, --model, "
                               "--gray-floor, --tile and --precision are for the codec (use --colorizer-weights)")
    if (colorizing.colorizer_weights or colorizing.colorizer_name) and not colorizing.colorize:
        raise click.UsageError("--colorizer and --colorizer-weights choose the colouriser; they need --colorize")
    check_colorizer_choice(colorizing.colorizer_name, colorizing.colorizer_weights)


@contextmanager
def eval_progress(quiet: bool) -> Iterator[Callable[[int, int, dict], None]]:
    """A transient progress bar on stderr while eval runs (none with -q or off a terminal); gives the
    ``on_image`` callback ``evaluate_folder`` calls after each image."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True, quiet=quiet)
    progress = Progress(TextColumn("eval"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                        TextColumn("{task.description}"), console=console, transient=True,
                        disable=quiet or not console.is_terminal)
    with progress:
        task = progress.add_task("", total=None)

        def on_image(index: int, total: int, record: dict) -> None:
            progress.update(task, completed=index + 1, total=total, description=Path(record["input"]).name)

        yield on_image


def show_report(report: dict, table: Any, quiet: bool, as_json: bool) -> None:
    """The table and notes on stderr (failures even with -q), the report on stdout with --json, and
    exit 1 when any image failed."""
    from rich.console import Console

    console = Console(stderr=True, quiet=quiet)
    results = report["results"]
    console.print(table)
    for note in results["skipped"]:
        console.print(f"note: {note}", highlight=False, markup=False)
    for failure in results["failed"]:
        say("error", failure["error"])
    if as_json:
        click.echo(json.dumps(report, indent=2, allow_nan=False))
    if results["failed"]:
        click.get_current_context().exit(1)
