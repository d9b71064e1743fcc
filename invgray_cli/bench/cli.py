"""``invgray bench``: the command."""
from __future__ import annotations

from typing import TYPE_CHECKING

import click

from invgray_cli.bench.measure import parse_devices, parse_sizes
from invgray_cli.bench.runs import random_codec, run_bench
from invgray_cli.bench.table import render_table
from invgray_cli.cli.options import model_option

if TYPE_CHECKING:
    from invgray_cli.codec.nets import Codec

DEFAULT_SIZES = "256,512,1024"


@click.command("bench")
@click.option("--sizes", default=DEFAULT_SIZES, show_default=True, help="Square edges N or WxH, comma-separated.")
@click.option("--device", "devices", help="Comma-separated: cpu, cuda, cuda:N (default: cpu, and cuda if present).")
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True, help="Timed runs per measurement.")
@click.option("--warmup", type=click.IntRange(min=0), default=1, show_default=True, help="Untimed runs before timing.")
@click.option("--tile", type=click.IntRange(min=0), help="Tile edge in pixels, 0 = whole image (default: from the device).")
@click.option("--weights", type=click.Path(dir_okay=False), help="A weights file of your own.")
@model_option()
@click.option("--random", "random_init", is_flag=True, help="Time the default architecture with random weights.")
@click.option("--paper", is_flag=True, help="Also time the random-weight rebuild of the paper's network.")
@click.option("--batch", type=click.IntRange(min=1), default=1, show_default=True,
              help="Images of each size per encode/decode call (the batch path a GPU wants).")
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No progress or table on stderr.")
def bench_command(
    sizes: str,
    devices: str | None,
    repeats: int,
    warmup: int,
    tile: int | None,
    weights: str | None,
    model_name: str | None,
    random_init: bool,
    paper: bool,
    batch: int,
    as_json: bool,
    quiet: bool,
) -> None:
    """Time encode and decode per image size and device, beside the paper's Table 3."""
    import json

    from rich.console import Console

    if random_init and (weights or model_name):
        raise click.UsageError("--random times random weights; leave out --weights/--model, or --random")
    size_list = parse_sizes(sizes)
    device_list = parse_devices(devices)
    console = Console(stderr=True, quiet=quiet)

    def load_codec(device: str) -> Codec:
        from invgray_cli.codec.nets import Codec

        if random_init:
            return random_codec(device, tile)
        return Codec.load(model=model_name, weights=weights, device=device, tile=tile)

    with console.status("benchmarking", spinner="dots") as status:
        report = run_bench(size_list, device_list, load_codec, warmup=warmup, repeats=repeats, paper=paper,
                           on_step=lambda text: status.update(f"benchmarking {text}"), batch=batch)
    console.print(render_table(report))
    if as_json:
        click.echo(json.dumps(report, indent=2))
