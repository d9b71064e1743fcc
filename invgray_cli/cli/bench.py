"""Stage cli: ``invgray bench``, a shell over ``bench.runs.run_bench``: encode and decode timed per
image size and device, with the shared ``--device`` (several, comma-separated), ``--precision``,
``--tile`` and ``--threads``; the report names the precision each device ran in. With ``--folder``,
a shell over ``bench.folder.run_folder_bench``: a folder of photos encoded and decoded as the
commands do, one file at a time and overlapped."""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click
from click.core import ParameterSource

from invgray_cli.cli.options import (ModelChoice, NetOptions, json_option, model_options, net_options,
                                     quiet_option)

if TYPE_CHECKING:
    from invgray_cli.codec.nets import Codec

DEFAULT_SIZES = "256,512,1024"
REPEATS = 5
FOLDER_REPEATS = 1  # a folder is many images already


def check_folder_options(ctx: click.Context, folder: Path | None, paper: bool, workers: int | None) -> None:
    """--folder times the folder's photos: --sizes and --paper are for synthetic images, --workers for a folder."""
    if folder is None:
        if workers is not None:
            raise click.UsageError("--workers is for a folder run; give --folder DIR")
        return
    if paper or ctx.get_parameter_source("sizes") is ParameterSource.COMMANDLINE:
        raise click.UsageError("--folder times the photos in DIR; leave out --sizes and --paper, or --folder")


@click.command("bench")
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True, help="Square edges N or WxH, comma-separated.")
@net_options(many_devices=True)
@model_options(gray_floor=False, weights_help="A weights file of your own.")
@click.option("--random", "random_init", is_flag=True, help="Time the default architecture with random weights.")
@click.option("--paper", is_flag=True, help="Also time the random-weight rebuild of the paper's network.")
@click.option("--repeats", type=click.IntRange(min=1), default=None,
              help=f"Timed runs per measurement (default: {REPEATS}; with --folder {FOLDER_REPEATS}).")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True, help="Untimed runs before timing.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images of each size per encode/decode call (the batch path a GPU wants); with --folder, "
                   "same-size photos per net call in the overlapped run.")
@click.option("--folder", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None, metavar="DIR",
              help="Encode and decode the photos in DIR (recursive) as `invgray encode/decode DIR -o OUT` do, one "
                   "file at a time and overlapped: images/s, MP/s and where the time goes.")
@click.option("--workers", type=click.IntRange(min=0), default=None, metavar="N",
              help="With --folder: threads each for reading and writing in the overlapped run "
                   "(default: what encode and decode use on the device).")
@json_option
@quiet_option
def bench_command(sizes: str, net: NetOptions, choice: ModelChoice, random_init: bool, paper: bool,
                  repeats: int | None, warmup: int, batch: int, folder: Path | None, workers: int | None, as_json: bool,
                  quiet: bool) -> None:
    """Time encode and decode per image size and device, beside the paper's Table 3; or with
    --folder, a folder of your photos as the commands encode and decode it."""
    from rich.console import Console

    from invgray_cli.bench.measure import parse_devices, parse_sizes
    from invgray_cli.bench.runs import random_codec, run_bench
    from invgray_cli.bench.table import render_bench_tables

    if random_init and choice != ModelChoice():
        raise click.UsageError("--random times random weights; leave out --weights/--model, or --random")
    check_folder_options(click.get_current_context(), folder, paper, workers)
    size_list = parse_sizes(sizes)
    device_list = parse_devices(net.device)
    net.use_threads()
    console = Console(stderr=True, quiet=quiet)

    def load_codec(device: str) -> Codec:
        if random_init:
            return random_codec(device, net.tile, net.precision)
        return choice.load(net, device)

    with console.status("benchmarking", spinner="dots") as status:
        def on_step(text: str) -> None:
            status.update(f"benchmarking {text}")

        if folder is not None:
            from invgray_cli.bench.folder import run_folder_bench
            from invgray_cli.bench.table import render_folder_tables

            report = run_folder_bench(folder, device_list, load_codec, workers, batch, repeats or FOLDER_REPEATS,
                                      warmup, on_step)
            tables = render_folder_tables(report)
        else:
            report = run_bench(size_list, device_list, load_codec, warmup=warmup, repeats=repeats or REPEATS,
                               paper=paper, on_step=on_step, batch=batch)
            tables = render_bench_tables(report)
    console.print(tables)
    if as_json:
        click.echo(json.dumps(report, indent=2))
