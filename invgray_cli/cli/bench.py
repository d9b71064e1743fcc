"""Stage cli: ``invgray bench``, a shell over ``bench.runs.run_bench``: encode and decode timed per
image size and device, with the shared ``--device`` (several, comma-separated), ``--precision``,
``--tile`` and ``--threads``; the report names the precision each device ran in."""
from __future__ import annotations

import json
from typing import TYPE_CHECKING

import click

from invgray_cli.cli.options import (ModelChoice, NetOptions, json_option, model_options, net_options,
                                     quiet_option)

if TYPE_CHECKING:
    from invgray_cli.codec.nets import Codec

DEFAULT_SIZES = "256,512,1024"


@click.command("bench")
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True, help="Square edges N or WxH, comma-separated.")
@net_options(many_devices=True)
@model_options(gray_floor=False, weights_help="A weights file of your own.")
@click.option("--random", "random_init", is_flag=True, help="Time the default architecture with random weights.")
@click.option("--paper", is_flag=True, help="Also time the random-weight rebuild of the paper's network.")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="Timed runs per measurement.")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True, help="Untimed runs before timing.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images of each size per encode/decode call (the batch path a GPU wants).")
@json_option
@quiet_option
def bench_command(sizes: str, net: NetOptions, choice: ModelChoice, random_init: bool, paper: bool, repeats: int,
                  warmup: int, batch: int, as_json: bool, quiet: bool) -> None:
    """Time encode and decode per image size and device, beside the paper's Table 3."""
    from rich.console import Console

    from invgray_cli.bench.measure import parse_devices, parse_sizes
    from invgray_cli.bench.runs import random_codec, run_bench
    from invgray_cli.bench.table import render_bench_tables

    if random_init and choice != ModelChoice():
        raise click.UsageError("--random times random weights; leave out --weights/--model, or --random")
    size_list = parse_sizes(sizes)
    device_list = parse_devices(net.device)
    net.use_threads()
    console = Console(stderr=True, quiet=quiet)

    def load_codec(device: str) -> Codec:
        if random_init:
            return random_codec(device, net.tile, net.precision)
        return choice.load(net, device)

    with console.status("benchmarking", spinner="dots") as status:
        report = run_bench(size_list, device_list, load_codec, warmup=warmup, repeats=repeats, paper=paper,
                           on_step=lambda text: status.update(f"benchmarking {text}"), batch=batch)
    console.print(render_bench_tables(report))
    if as_json:
        click.echo(json.dumps(report, indent=2))
