"""Command-line options shared by the commands that run a net (encode, decode, eval, bench, train): declared and checked in one place,
so one mistake gets one message and one exit code (2, a usage error) whichever command it is."""
from __future__ import annotations

from collections.abc import Callable

import click

SMALLEST_TILE = 32  # = tiling.MIN_TILE (not imported: that module needs torch, the CLI starts without it)


def check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    spec = value.strip().lower()
    head, _, index = spec.partition(":")
    if spec in ("auto", "cpu", "cuda") or (head == "cuda" and index.isdigit()):
        return spec
    raise click.BadParameter(f"'{value}' is not a device; use auto, cpu, cuda or cuda:N")


def check_tile(ctx: click.Context, param: click.Parameter, value: int | None) -> int | None:
    if value is None or value == 0 or value >= SMALLEST_TILE:
        return value
    raise click.BadParameter(f"{value} is too small: below {SMALLEST_TILE} pixels the halo around each tile dominates "
                             f"and the run gets many times slower; use 0 (whole image) or at least {SMALLEST_TILE}")


def check_model_name(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """The full name of the shipped codec model ``value`` names (its tag alone will do), or a usage
    error with the closest name. Imports the zoo (and torch) only when --model is given."""
    if value is None:
        return None
    from invgray_cli.errors import InvgrayError
    from invgray_cli.models.zoo import find_entry

    try:
        return find_entry(value).name
    except InvgrayError as e:
        raise click.BadParameter(str(e)) from None


def model_option(help_text: str = "Shipped model to use: its name, or its tag alone where that is unique "
                                  "(see `invgray models`; default: the first).") -> Callable:
    """``--model NAME``, checked against the zoo when the command line is read."""
    return click.option("--model", "model_name", default=None, metavar="NAME", callback=check_model_name,
                        help=help_text)


def with_floor(codec, floor: float | None):
    """``codec`` holding the --gray-floor the user gave (None: the model's own)."""
    return codec if floor is None else codec.with_gray_floor(floor)


device_option = click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]",
                             callback=check_device, help="Where the network runs.")
gray_floor_option = click.option(
    "--gray-floor", type=click.FloatRange(0.0, 0.999), default=None, metavar="F",
    help="Keep each gray's structure term vs luma at least F, weakening the hidden colour where needed "
         "(default: the model's own floor; 0 = off).")
tile_option = click.option("--tile", type=click.IntRange(min=0), default=None, metavar="N", callback=check_tile,
                           help="Tile edge in pixels (default: chosen from the device; 0 = whole image at once).")
precision_option = click.option(
    "--precision", type=click.Choice(["auto", "fp32", "fp16"], case_sensitive=False), default="auto", show_default=True,
    help="What the nets compute in: auto = fp16 on CUDA (within 0.01 dB of fp32 there), fp32 on the CPU.")
