"""Stage cli: the options commands share, each declared once, and the groups they come in.

Every command that runs a net takes its ``--device``, ``--precision``, ``--tile`` and ``--threads``
from :func:`net_options` (those that apply to it), and hands them on as one :class:`NetOptions`;
the codec model is chosen by :func:`model_options` (``--model``, ``--weights``, ``--gray-floor``)
as one :class:`ModelChoice`. A mistake in any of them gets one message and exit code 2 whichever
command it is. :func:`option_group` is the one way options become a small frozen value, and
:class:`RenamedOptions` reads an option's old spelling with a one-line note.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from invgray_cli.cli.runner import run_options, say

if TYPE_CHECKING:
    from invgray_cli.codec.nets import Codec

SMALLEST_TILE = 32  # = tiling.MIN_TILE (not imported: that module needs torch, the CLI starts without it)

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


# ---------------------------------------------------------------- checks


def check_device(ctx: click.Context | None, param: click.Parameter | None, value: str) -> str:
    spec = value.strip().lower()
    head, _, index = spec.partition(":")
    if spec in ("auto", "cpu", "cuda") or (head == "cuda" and index.isdigit()):
        return spec
    raise click.BadParameter(f"'{value}' is not a device; use auto, cpu, cuda or cuda:N")


def check_devices(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> str | None:
    """Comma-separated devices (bench times each), every one checked as ``--device`` is elsewhere."""
    if value is None:
        return None
    names = [name for name in value.split(",") if name.strip()]
    if not names:
        raise click.BadParameter("give at least one of auto, cpu, cuda, cuda:N")
    return ",".join(check_device(ctx, param, name) for name in names)


def check_tile(ctx: click.Context | None, param: click.Parameter | None, value: int | None) -> int | None:
    if value is None or value == 0 or value >= SMALLEST_TILE:
        return value
    raise click.BadParameter(f"{value} is too small: below {SMALLEST_TILE} pixels the halo around each tile dominates "
                             f"and the run gets many times slower; use 0 (whole image) or at least {SMALLEST_TILE}")


def check_model_name(ctx: click.Context | None, param: click.Parameter | None, value: str | None) -> str | None:
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


# ---------------------------------------------------------------- groups


def option_group(target: str, build: Callable[..., Any], options: Sequence[Decorator]) -> Decorator:
    """Declare ``options`` on a command and pass it one value for them all, ``build(**their values)``,
    as the parameter ``target``: a command reads ``net.device`` instead of taking ten loose arguments."""
    names = _param_names(options)

    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(command)
        def grouped(*args: Any, **kwargs: Any) -> Any:
            kwargs[target] = build(**{name: kwargs.pop(name) for name in names})
            return command(*args, **kwargs)

        for option in reversed(options):
            grouped = option(grouped)
        return grouped

    return decorate


def _param_names(options: Sequence[Decorator]) -> list[str]:
    """The parameter names ``options`` declare (read off a throwaway function they decorate)."""
    def probe() -> None:
        """Only carries the parameters."""

    for option in options:
        option(probe)
    return [param.name for param in getattr(probe, "__click_params__", []) if param.name]


def stack(options: Sequence[Decorator]) -> Decorator:
    """Several option decorators as one, in the order given (as if written one above the other)."""
    def decorate(command: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


# ---------------------------------------------------------------- where and how a net runs


@dataclass(frozen=True)
class NetOptions:
    """Where and how a command's nets run. ``device``: one device, or for bench a comma-separated
    list (None: bench's default, cpu and cuda when present); ``tile`` None: chosen from the device."""

    device: str | None = "auto"
    precision: str = "auto"
    tile: int | None = None
    threads: int | None = None

    def use_threads(self) -> None:
        """Let torch use ``--threads`` CPU threads (not given: torch's own choice)."""
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)


DEVICE_METAVAR = "auto|cpu|cuda[:N]"
device_option = click.option("--device", default="auto", show_default=True, metavar=DEVICE_METAVAR,
                             callback=check_device, help="Where the network runs.")
devices_option = click.option("--device", default=None, metavar=DEVICE_METAVAR + "[,...]", callback=check_devices,
                              help="Devices to time, comma-separated (default: cpu, and cuda when present).")
precision_option = click.option(
    "--precision", type=click.Choice(["auto", "fp32", "fp16"], case_sensitive=False), default="auto", show_default=True,
    help="What the nets compute in: auto = fp16 on CUDA (within 0.01 dB of fp32 there), fp32 on the CPU.")
tile_option = click.option("--tile", type=click.IntRange(min=0), default=None, metavar="N", callback=check_tile,
                           help="Tile edge in pixels (default: chosen from the device; 0 = whole image at once).")
threads_option = click.option("--threads", type=click.IntRange(min=1), default=None, metavar="N",
                              help="CPU threads torch uses (default: torch's own choice).")


def net_options(*, precision: bool = True, tile: bool = True, many_devices: bool = False) -> Decorator:
    """``--device``, ``--threads`` and, where the command's nets take them, ``--precision`` and
    ``--tile``, passed as ``net: NetOptions``. Training takes neither of the last two: it runs fp32
    (bf16 autocast on CUDA) on crops."""
    options = [devices_option if many_devices else device_option]
    options += [precision_option] if precision else []
    options += [tile_option] if tile else []
    return option_group("net", NetOptions, [*options, threads_option])


# ---------------------------------------------------------------- which model


@dataclass(frozen=True)
class ModelChoice:
    """The codec model a command runs: a shipped one by name (None: the default) or a weights file,
    held to ``gray_floor`` (None: the model's own floor)."""

    model_name: str | None = None
    weights: Path | None = None
    gray_floor: float | None = None

    def load(self, net: NetOptions, device: str | None = None) -> Codec:
        """The Codec on ``device`` (default ``net.device``), at ``net``'s tile and precision."""
        from invgray_cli.codec.nets import Codec

        codec = Codec.load(self.model_name, self.weights, device=device or net.device or "auto", tile=net.tile,
                           precision=net.precision)
        return codec if self.gray_floor is None else codec.with_gray_floor(self.gray_floor)


def model_choice(model_name: str | None = None, weights: Path | None = None,
                 gray_floor: float | None = None) -> ModelChoice:
    if model_name and weights:
        raise click.UsageError("--model and --weights both name the model; give one")
    return ModelChoice(model_name, weights, gray_floor)


MODEL_HELP = "Shipped model to use: its name, or its tag alone where that is unique (see `invgray models`; default: the first)."


def model_option(help_text: str = MODEL_HELP) -> Decorator:
    """``--model NAME``, checked against the zoo when the command line is read."""
    return click.option("--model", "model_name", default=None, metavar="NAME", callback=check_model_name,
                        help=help_text)


def weights_option(help_text: str = "Use this weights file instead of a shipped model.") -> Decorator:
    """``--weights PATH``: a user's own weights file (its loader says when it is missing or no file)."""
    return click.option("--weights", type=click.Path(path_type=Path), default=None, metavar="PATH", help=help_text)


gray_floor_option = click.option(
    "--gray-floor", type=click.FloatRange(0.0, 0.999), default=None, metavar="F",
    help="Keep each gray's structure term vs luma at least F, weakening the hidden colour where needed "
         "(default: the model's own floor; 0 = off).")


def model_options(*, gray_floor: bool = True, model_help: str = MODEL_HELP,
                  weights_help: str = "Use this weights file instead of a shipped model.") -> Decorator:
    """``--model``, ``--weights`` and (encode, eval) ``--gray-floor``, passed as ``choice: ModelChoice``."""
    options = [model_option(model_help), weights_option(weights_help)] + ([gray_floor_option] if gray_floor else [])
    return option_group("choice", model_choice, options)


# ---------------------------------------------------------------- output


json_option = click.option("--json", "as_json", is_flag=True, help="Print a machine-readable report on stdout.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress, tables, notes or summary on stderr (errors still show).")
BESIDE = "Default: beside each input (stdin goes to stdout)."


def file_options(default_output: str = BESIDE) -> Decorator:
    """What a command that writes one image per input is told about its files (encode, decode,
    colorize), passed as ``opts: RunOptions``."""
    return option_group("opts", run_options, [
        click.option("-o", "--output", metavar="PATH",
                     help="Output file for one input, folder for several (tree mirrored), '-' for stdout. "
                          + default_output),
        click.option("--force", is_flag=True, help="Overwrite existing outputs."),
        click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone (resume a batch)."),
        click.option("--max-pixels", type=click.IntRange(min=0), default=None, metavar="N",
                     help="Refuse images larger than N pixels (decompression-bomb guard; default ~89 MP; 0 = no limit)."),
        quiet_option,
        json_option,
    ])


# ---------------------------------------------------------------- old spellings


class RenamedOptions(click.Command):
    """A command that still reads its options' old spellings (``renamed``: old -> new), hidden from
    ``--help``, with a one-line note on stderr for each one met."""

    def __init__(self, *args: Any, renamed: Mapping[str, str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.renamed = dict(renamed or {})

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, new_spellings(args, self.renamed, self.name or ""))


def new_spellings(args: list[str], renamed: Mapping[str, str], command: str) -> list[str]:
    """``args`` with every old option name (``--old`` or ``--old=VALUE``) written the new way; the
    arguments after ``--`` are left as they are."""
    out: list[str] = []
    noted: set[str] = set()
    for index, arg in enumerate(args):
        if arg == "--":
            return out + args[index:]
        name, equals, value = arg.partition("=")
        if name in renamed:
            if name not in noted:
                say("note", f"`{command} {name}` is now {renamed[name]}; the old name will go in a later version")
                noted.add(name)
            arg = renamed[name] + equals + value
        out.append(arg)
    return out


def check_colorizer_choice(name: str | None, weights: Path | str | None) -> None:
    """Usage errors for --colorizer: with --colorizer-weights, or naming no shipped colouriser."""
    from invgray_cli.colorize.session import find_colorizer
    from invgray_cli.errors import InvgrayError

    if name is None:
        return
    if weights is not None:
        raise click.UsageError("--colorizer names a shipped colouriser and --colorizer-weights a file: give one")
    try:
        find_colorizer(name)
    except InvgrayError as e:
        raise click.BadParameter(str(e), param_hint="--colorizer") from None
