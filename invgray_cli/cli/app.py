"""The ``invgray`` command line: a thin shell over imageio, codec and the batch rules.

Nothing heavy is imported at module level (torch, numpy, Pillow come in inside the
commands), so ``invgray --version`` and ``invgray --help`` answer at once.
"""
from __future__ import annotations

import importlib
import importlib.util
import io
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

import click

from invgray_cli import __version__

from invgray_cli.io import paths as batch
from invgray_cli.io.paths import FileRecord, InputItem, Job
from invgray_cli.errors import InvgrayError
from invgray_cli.cli.options import device_option, gray_floor_option, model_option, precision_option, tile_option, with_floor
from invgray_cli.cli.runner import (
    PROG,
    OnTile,
    RunOptions,
    debug_enabled,
    failure_line,
    finish,
    internal_error_line,
    read_source,
    run_jobs,
    say,
    write_output,
)

if TYPE_CHECKING:  # annotations only: the commands import these when they run
    from invgray_cli.codec.files import WrittenImage
    from invgray_cli.io.images import ColorImage, ImageHeader

# Commands owned by other modules, imported only when asked for (and listed only if present).
LAZY_COMMANDS = {
    "info": ("invgray_cli.cli.info", "info_command"),
    "eval": ("invgray_cli.eval.evaluate", "eval_command"),
    "bench": ("invgray_cli.bench", "bench_command"),
    "train": ("invgray_cli.train.cli", "train_command"),
    "train-colorizer": ("invgray_cli.train.cli", "train_colorizer_command"),
    "train-detector": ("invgray_cli.train.cli", "train_detector_command"),
    "train-frames": ("invgray_cli.train.cli", "train_frames_command"),
    "train-jpeg-decoder": ("invgray_cli.train.cli", "train_jpeg_decoder_command"),
}

from invgray_cli.cli.info import GRAY_MODES  # noqa: E402  (no torch: info imports it lazily)


# ---------------------------------------------------------------- the group


def _fail(message: str, code: int) -> NoReturn:
    say("error", message)
    sys.exit(code)


def _usage_line(error: click.UsageError) -> str:
    message = error.format_message()
    command = error.ctx.command_path if error.ctx is not None else PROG
    return f"{message.rstrip('.')}; see '{command} --help'"


class InvgrayGroup(click.Group):
    """A click group that turns every failure into one line and a stated exit code.

    0 success, 1 a file or the run failed, 2 usage error, 130 interrupted. Unexpected
    exceptions show a traceback only with ``--debug`` (or INVGRAY_DEBUG=1).
    """

    def list_commands(self, ctx: click.Context) -> list[str]:
        lazy = [name for name, (module, _) in LAZY_COMMANDS.items() if _module_exists(module)]
        return sorted(set(super().list_commands(ctx)) | set(lazy))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is None and cmd_name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[cmd_name]
            if _module_exists(module):
                command = getattr(importlib.import_module(module), attr)
        return command

    def main(self, args: Any = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        try:
            rv = super().main(argv, prog_name or PROG, complete_var, standalone_mode=False, **extra)
        except _NO_ARGS_IS_HELP as e:  # bare `invgray`: the help, as click < 8.2 did
            click.echo(e.ctx.get_help() if e.ctx is not None else e.format_message())
            rv = 0
        except click.UsageError as e:
            _fail(_usage_line(e), 2)
        except click.ClickException as e:
            _fail(e.format_message(), e.exit_code)
        except click.Abort:
            _fail("interrupted", 130)
        except InvgrayError as e:
            _fail(str(e), 1)
        except Exception as e:
            line = failure_line(e)
            if debug_enabled(argv) and line == internal_error_line(e):
                raise
            _fail(line, 1)
        code = rv if isinstance(rv, int) else 0
        if standalone_mode:
            sys.exit(code)
        return code


_NO_ARGS_IS_HELP = getattr(click.exceptions, "NoArgsIsHelpError", ())  # click >= 8.2


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@click.group(PROG, cls=InvgrayGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, "-V", "--version", prog_name=PROG, message="%(prog)s %(version)s")
@click.option("--debug", is_flag=True, help="Show tracebacks of unexpected errors.")
def cli(debug: bool) -> None:
    """invgray: colour photos to ordinary-looking 8-bit gray PNGs that restore their colour.

    \b
      invgray encode photo.jpg            -> photo.gray.png
      invgray decode photo.gray.png       -> photo.color.png
      invgray encode photos/ -o grays/    (folders mirrored, recursive)
      cat a.jpg | invgray encode - | invgray decode - > a.png
    """


def exit_on_sigterm() -> None:
    """SIGTERM (kill, a job scheduler's timeout) unwinds like Ctrl-C, so a half-written output's
    temporary file is removed on the way out; exit status 143 as the shell reports a TERM."""
    import signal
    import threading

    def unwind(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, unwind)


def main() -> None:
    """Console-script entry point."""
    exit_on_sigterm()
    cli.main(prog_name=PROG)


# ---------------------------------------------------------------- encode / decode


def _codec_options(command: Callable) -> Callable:
    """The options encode and decode share."""
    options = [
        click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
        click.option("-o", "--output", metavar="PATH",
                     help="Output file for one input, folder for several (tree mirrored), '-' for stdout. "
                          "Default: beside each input (stdin goes to stdout)."),
        click.option("--force", is_flag=True, help="Overwrite existing outputs."),
        click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone (resume a batch)."),
        device_option,
        tile_option,
        precision_option,
        click.option("--weights", type=click.Path(path_type=Path), default=None, metavar="PATH",
                     help="Use this weights file instead of a shipped model."),
        click.option("--max-pixels", type=click.IntRange(min=0), default=None, metavar="N",
                     help="Refuse images larger than N pixels (decompression-bomb guard; default ~89 MP; 0 = no limit)."),
        click.option("-q", "--quiet", is_flag=True, help="No progress, notes or summary on stderr."),
        click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _run_options(output: str | None, force: bool, skip_existing: bool, max_pixels: int | None, quiet: bool,
                 as_json: bool) -> RunOptions:
    if max_pixels is None:
        from invgray_cli.io.images import DEFAULT_MAX_PIXELS

        max_pixels = DEFAULT_MAX_PIXELS
    return RunOptions(output, force, skip_existing, max_pixels or None, quiet, as_json)


def plan(inputs: tuple[str, ...], opts: RunOptions, suffix: str, check_output: Callable[[Path], None],
         refuse: batch.Refuse | None = None, refuse_named: batch.Refuse | None = None) -> list[Job]:
    """The jobs of this run (see batch.plan_jobs), files passed over in folders among them as
    skipped jobs (run_jobs sums them up); a single named output is checked."""
    refusal = None
    if opts.as_json:
        refusal = "--json prints on stdout, so the image cannot go there; use -o FILE"
    elif sys.stdout.isatty():
        refusal = "refusing to write an image to the terminal; pipe it or use -o FILE"
    try:
        jobs, many = batch.plan_jobs(inputs, opts.output, suffix, force=opts.force,
                                     skip_existing=opts.skip_existing, stdout_refusal=refusal,
                                     refuse=refuse, refuse_named=refuse_named)
    except batch.UsageProblem as e:
        raise click.UsageError(str(e)) from None
    if not many and jobs[0].output is not None and jobs[0].item.problem is None:
        check_output(jobs[0].output)
    return jobs


def _header(path: Path) -> ImageHeader | None:
    """The image header of ``path``, None when it cannot be read (processing it will say why)."""
    from invgray_cli.io.images import read_header

    try:
        return read_header(path)
    except InvgrayError:
        return None


def _colour_in_folder(path: Path) -> str | None:
    """Decode passes over colour photos found in folders (encode's inputs beside its grays)."""
    from invgray_cli.io.chunk import CHUNK_KEY

    header = _header(path)
    if header is None or header.mode in GRAY_MODES or CHUNK_KEY in header.text:  # a WebP gray is RGB
        return None
    return "a colour image, not an invgray gray"


GRAY_BY_CHUNK = "an invgray gray (it carries invgray's chunk), which `invgray decode` restores"
GRAY_BY_NAME = "a gray named like an invgray gray, which `invgray decode` restores"


def _invgray_gray(path: Path) -> str | None:
    """Why encode does not take ``path``: an invgray gray, told by its chunk or by a gray's name."""
    from invgray_cli.io.chunk import CHUNK_KEY

    header = _header(path)
    if header is None:
        return None
    if CHUNK_KEY in header.text:
        return GRAY_BY_CHUNK
    if path.name.lower().endswith(batch.GRAY_SUFFIX) and header.mode in GRAY_MODES:
        return GRAY_BY_NAME
    return None


def _named_gray_refusal(path: Path) -> str | None:
    """Encode refuses a gray the user names: encoding a gray again hides no colour, and a decoded
    gray given to encode is almost always a slip for decode."""
    reason = _invgray_gray(path)
    if reason is None:
        return None
    rename = " (if it is a photo of yours, rename it)" if reason == GRAY_BY_NAME else ""
    return f"is {reason}; encoding it would hide no colour, so it is not encoded{rename}"


# -o suffixes a gray may have: lossless PNG, TIFF and WebP carry it whole, JPEG its block code
GRAY_OUTPUT_SUFFIXES = (".png", ".tif", ".tiff", ".webp", ".jpg", ".jpeg")


def _check_gray_output(path: Path) -> None:
    if path.suffix.lower() not in GRAY_OUTPUT_SUFFIXES:
        raise click.BadParameter(f"{path}: invgray writes a gray as .png, .tif or .webp (lossless, carrying its "
                                 "chunk) or as .jpg (lossy: keeps the coarse block code), not as "
                                 f"'{path.suffix or 'no extension'}'", param_hint="-o/--output")


def _check_color_output(path: Path) -> None:
    from invgray_cli.io.images import format_for_path

    try:
        format_for_path(path)
    except InvgrayError as e:
        raise click.BadParameter(str(e), param_hint="-o/--output") from None


@cli.command("encode")
@_codec_options
@model_option()
@gray_floor_option
@click.option("--quality", type=click.IntRange(1, 100), default=None, metavar="Q",
              help="JPEG quality of a .jpg gray (default: 90).")
@click.option("--jpeg-safe", is_flag=True,
              help="Add the block code to PNG grays too: a JPEG of the gray then keeps a coarse copy of the "
                   "colour (costs some PNG quality, see README). JPEG grays always carry it.")
def encode_command(inputs: tuple[str, ...], output: str | None, force: bool, skip_existing: bool, device: str,
                   tile: int | None, precision: str, weights: Path | None, max_pixels: int | None, quiet: bool, as_json: bool,
                   model_name: str | None, gray_floor: float | None, quality: int | None, jpeg_safe: bool) -> None:
    """Encode colour photos into gray PNGs that hide their colour.

    INPUT may be files, folders (recursive), quoted globs or '-' for stdin; invgray grays are not
    encoded again (decode restores them). With -o NAME.tif or NAME.webp the gray is a lossless TIFF
    or WebP carrying the chunk as a PNG does. With -o NAME.jpg the
    gray is a JPEG carrying the JPEG-safe block code, written by the chosen model; decode restores
    its colour through that model's JPEG decoder where one ships (see `invgray models`).
    """
    started = time.perf_counter()
    opts = _run_options(output, force, skip_existing, max_pixels, quiet, as_json)
    if model_name and weights:
        raise click.UsageError("--model and --weights both name the model; give one")
    jobs = plan(inputs, opts, batch.GRAY_SUFFIX, _check_gray_output, refuse=_invgray_gray,
                refuse_named=_named_gray_refusal)

    from invgray_cli.io import images as imageio
    from invgray_cli.codec.files import DEFAULT_JPEG_QUALITY, encode_file
    from invgray_cli.codec.nets import Codec

    as_jpeg = len(jobs) == 1 and jobs[0].output is not None and imageio.is_jpeg_name(jobs[0].output)
    if quality is not None and not as_jpeg:
        raise click.UsageError("--quality is for a JPEG gray: give one input and -o NAME.jpg")

    # the one Codec of this run, loaded when the first file needs it (not at all if every file is skipped)
    codec = LoadOnce(lambda: with_floor(Codec.load(model=model_name, weights=weights, device=device, tile=tile,
                                                     precision=precision), gray_floor))

    def process(job: Job, on_tile: OnTile | None) -> FileRecord:
        t0 = time.perf_counter()
        model = codec()
        jpeg_quality = (quality or DEFAULT_JPEG_QUALITY) if as_jpeg else None
        lossless = None if job.output is None else imageio.lossless_gray_format(job.output)

        def encode_into(dest: io.BytesIO) -> WrittenImage:
            made = io.BytesIO() if lossless else dest  # a PNG gray first, then the same gray as TIFF or WebP
            written = encode_file(read_source(job.item), made, model, max_pixels=opts.max_pixels, on_tile=on_tile,
                                  jpeg_quality=jpeg_quality, block_code=jpeg_safe or None)
            if lossless:
                gray = imageio.read_gray(made.getvalue(), max_pixels=None)
                imageio.write_gray_lossless(gray.gray, gray.alpha, gray.text, dest, lossless)
            return written

        done = write_output(job.output, encode_into, force=opts.force)
        return _ok(job, done, t0)

    results = run_jobs("encode", jobs, process, opts)
    finish("encode", "encoded", results, opts, started, codec.loaded())


@cli.command("decode")
@_codec_options
@click.option("--no-fallback", is_flag=True,
              help="Refuse a gray that carries no colour code instead of colourising it.")
@click.option("--find-frame", is_flag=True,
              help="Only for grays made before invgray 0.2, which carry no sync pattern, and have lost "
                   "their chunk: search for a crop, mirror or turn and decode on the grid found "
                   "(experimental and slow: right for about half of detailed photos, wrong on smooth "
                   "or flat ones; see README). Newer grays need no option: their sync pattern shows it.")
def decode_command(inputs: tuple[str, ...], output: str | None, force: bool, skip_existing: bool, device: str,
                   tile: int | None, precision: str, weights: Path | None, max_pixels: int | None, quiet: bool,
                   as_json: bool, no_fallback: bool, find_frame: bool) -> None:
    """Restore colour photos from invgray gray PNGs.

    The model is the one named in each gray's chunk (or --weights). A gray with no chunk and no
    code (a plain gray, or a coded one re-compressed or resized) is colourised instead, with a note.
    A gray that was cropped, mirrored or turned is decoded on its code's grid, found by its sync
    pattern, with no option (--find-frame is for old grays without one). Output is PNG unless -o
    names another extension (e.g. -o photo.jpg). Colour images met in folders are skipped.
    """
    started = time.perf_counter()
    opts = _run_options(output, force, skip_existing, max_pixels, quiet, as_json)
    jobs = plan(inputs, opts, batch.COLOR_SUFFIX, _check_color_output, refuse=_colour_in_folder)

    from invgray_cli.codec.nets import Codec
    from invgray_cli.codec.model_choice import chunk_mismatch_warning, choose_model
    from invgray_cli.codec.decode import DecodeOptions
    from invgray_cli.codec.files import decode_file

    options = DecodeOptions(fallback=not no_fallback, search_frame=find_frame)
    loaders: dict[Any, LoadOnce] = {}  # one Codec per model the grays' chunks ask for

    def codec_for(gray: Any, label: str) -> tuple[Any, str | None]:
        try:
            spec, warning = choose_model(gray.text, weights=weights)
        except InvgrayError as e:  # the gray's own chunk is at fault: say which gray
            raise InvgrayError(f"{label}: {e}") from None
        if spec not in loaders:
            loaders[spec] = LoadOnce(lambda: Codec.load(spec.name, spec.weights, device=device, tile=tile,
                                                        precision=precision))
        model = loaders[spec]()
        return model, warning or chunk_mismatch_warning(gray.text, model.info)

    def process(job: Job, on_tile: OnTile | None) -> FileRecord:
        t0 = time.perf_counter()
        done = write_output(job.output, lambda dest: decode_file(
            read_source(job.item), dest, max_pixels=opts.max_pixels, on_tile=on_tile,
            choose=lambda gray: codec_for(gray, job.item.label), options=options), force=opts.force)
        return _ok(job, done, t0)

    results = run_jobs("decode", jobs, process, opts)
    finish("decode", "decoded", results, opts, started, [c for load in loaders.values() for c in load.loaded()])


@cli.command("colorize")
@click.argument("inputs", nargs=-1, required=True, metavar="INPUT...")
@click.option("-o", "--output", metavar="PATH",
              help="Output file for one input, folder for several (tree mirrored), '-' for stdout. "
                   "Default: NAME.colorized.png beside each input.")
@click.option("--hint", "hint_texts", multiple=True, metavar="X,Y,#RRGGBB",
              help="The colour around pixel (X, Y) of the input (repeatable).")
@click.option("--hints", "hints_file", type=click.Path(dir_okay=False, path_type=Path), default=None, metavar="FILE",
              help='A JSON list of {"x": int, "y": int, "color": "#rrggbb"}.')
@click.option("--force", is_flag=True, help="Overwrite existing outputs.")
@click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone (resume a batch).")
@device_option
@click.option("--colorizer-weights", type=click.Path(path_type=Path), default=None, metavar="PATH",
              help="A colouriser weights file instead of the shipped one.")
@click.option("--max-pixels", type=click.IntRange(min=0), default=None, metavar="N",
              help="Refuse images larger than N pixels (default ~89 MP; 0 = no limit).")
@click.option("-q", "--quiet", is_flag=True, help="No progress, notes or summary on stderr.")
@click.option("--json", "as_json", is_flag=True, help="Print a machine-readable summary on stdout.")
def colorize_command(inputs: tuple[str, ...], output: str | None, hint_texts: tuple[str, ...], hints_file: Path | None,
                     force: bool, skip_existing: bool, device: str, colorizer_weights: Path | None,
                     max_pixels: int | None, quiet: bool, as_json: bool) -> None:
    """Colourise grays that carry no hidden code (old photos, scans, other tools' grays).

    A colour photo is taken as its BT.601 luma. The output keeps the input's tones: its luma is the
    gray. Hints say which colour a spot has; they apply to every input.
    """
    started = time.perf_counter()
    opts = _run_options(output, force, skip_existing, max_pixels, quiet, as_json)
    from invgray_cli.colorize.session import ColorizerCodec, check_hints, parse_hint, read_hints_file

    try:
        hints = [parse_hint(text) for text in hint_texts] + (read_hints_file(hints_file) if hints_file else [])
    except InvgrayError as e:
        raise click.BadParameter(str(e), param_hint="--hint/--hints") from None
    jobs = plan(inputs, opts, batch.COLORIZED_SUFFIX, _check_color_output)

    import numpy as np

    from invgray_cli.io import images as imageio
    from invgray_cli.metrics import luma_bt601

    colorizer = LoadOnce(lambda: ColorizerCodec.load(weights=colorizer_weights, device=device))

    def process(job: Job, on_tile: OnTile | None) -> FileRecord:
        t0 = time.perf_counter()
        image = imageio.read_color(read_source(job.item), max_pixels=opts.max_pixels)
        gray = np.round(luma_bt601(image.rgb)).astype(np.uint8)
        check_hints(hints, gray.shape[1], gray.shape[0], job.item.label)
        model = colorizer()
        rgb = model.colorize_array(gray, hints)
        fmt = "PNG" if job.output is None else imageio.format_for_path(job.output)
        size, _ = write_output(job.output, lambda dest: imageio.write_color(rgb, image.alpha, dest, format=fmt),
                               force=opts.force)
        warnings = (_colorize_input_warning(image), imageio.alpha_loss_warning(image.alpha, fmt))
        done = (size, ColourisedFile(rgb.shape[1], rgb.shape[0], model.name, "; ".join(w for w in warnings if w) or None))
        return _ok(job, done, t0)

    results = run_jobs("colorize", jobs, process, opts)
    finish("colorize", "colourised", results, opts, started, colorizer.loaded())


def _colorize_input_warning(image: ColorImage) -> str | None:
    """What colorize tells the user given an image it is not for (an invgray gray, a colour photo)."""
    from invgray_cli.io.chunk import CHUNK_KEY
    from invgray_cli.io.images import is_effectively_gray

    if CHUNK_KEY in image.text:
        return ("an invgray gray (it carries invgray's chunk): `invgray decode` restores its hidden colour; "
                "colorize only guesses colours")
    if not is_effectively_gray(image.rgb):
        return "a colour photo: colorize colourises grays, so its colours were replaced by ones guessed from its luma"
    return None


@dataclass(frozen=True)
class ColourisedFile:
    width: int
    height: int
    model: str
    warning: str | None


class LoadOnce:
    """Call ``load`` on first use and remember its value, or its InvgrayError, for the rest of the run."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self._load = load
        self._memo: list[tuple[Any, InvgrayError | None]] = []

    def __call__(self) -> Any:
        if not self._memo:
            try:
                self._memo.append((self._load(), None))
            except InvgrayError as e:
                self._memo.append((None, e))
        value, error = self._memo[0]
        if error is not None:
            raise InvgrayError(str(error))
        return value

    def loaded(self) -> list[Any]:
        """The value when it was loaded, for the report; [] when never asked for or it failed."""
        return [value for value, error in self._memo if error is None]


def _ok(job: Job, done: tuple[int, Any], t0: float) -> FileRecord:
    """The summary line of a written file, from ``write_output``'s (bytes, codec FileRecord)."""
    size, result = done
    output = None if job.output is None else str(job.output)
    return FileRecord(job.item.label, output, "ok", bytes=size, width=result.width, height=result.height,
                      seconds=round(time.perf_counter() - t0, 4), model=result.model, warning=result.warning,
                      decode_path=getattr(result, "decode_path", None) and result.decode_path.value)


# ---------------------------------------------------------------- info / models


def _zoo_record(entry: Any, default: bool) -> dict[str, Any]:
    """One zoo entry for `models --json`: its fields, its role's key, and its file's size (None: missing)."""
    from dataclasses import fields

    from invgray_cli.models.zoo import weights_dir

    path = weights_dir() / entry.file
    record = {field.name: getattr(entry, field.name) for field in fields(entry)}
    return {**record, "role": entry.role.key, "default": default, "bytes": path.stat().st_size if path.is_file() else None}


def _zoo_lines(entry: Any, record: dict[str, Any], width: int) -> list[str]:
    """One zoo entry for people: name, role and size; what it is; its file and facts."""
    import textwrap

    role = entry.role.words + (f" of {entry.serves}" if entry.serves else "  (default)" if record["default"] else "")
    size = "file missing" if record["bytes"] is None else f"{record['bytes'] / 1e6:.2f} MB"
    facts = [size, f"file {record['file']}", f"sha256 {record['sha256'][:12]}", f"card {record['card']}"]
    if record["divisibility"] is not None:
        facts += [f"divisibility {record['divisibility']}", f"receptive field {record['receptive_field']} px"]
    indent = {"initial_indent": "  ", "subsequent_indent": "  "}
    return ["", textwrap.fill(f"{record['name']}  {role}", width, subsequent_indent="  "),
            textwrap.fill(record["description"], width, **indent), textwrap.fill("  ".join(facts), width, **indent)]


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the zoo as JSON on stdout.")
def models_command(as_json: bool) -> None:
    """List every shipped weights file: codec models (the first is the default), the companions
    each model's decode uses (code detector, edge decoder, JPEG decoder, frame judge) and the
    colourisers, with their role and size."""
    import shutil

    from invgray_cli.models.zoo import CODEC, ROLES, default_entry, entries, weights_dir

    defaults = {role: default_entry(role) for role in ROLES}  # a companion is no one's choice, so no default
    records = [_zoo_record(entry, entry.serves is None and defaults[entry.role] is entry) for entry in entries()]
    if as_json:
        from invgray_cli.report import envelope, model_facts

        model = defaults[CODEC]
        results = {"weights_dir": str(weights_dir()), "entries": records}
        click.echo(json.dumps(envelope("invgray-models", "every shipped weights file: codec models, their "
                                       "companions and colourisers", model_facts(model and model.name,
                                       model and model.sha256), None, results), indent=2))
        return
    if not records:
        click.echo(f"no shipped weights (looked in {weights_dir()}); pass --weights PATH to encode/decode")
        return
    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    click.echo(f"shipped weights in {weights_dir()}:")
    for entry, record in zip(entries(), records):
        click.echo("\n".join(_zoo_lines(entry, record, width)))

if __name__ == "__main__":
    main()
