"""The ``invgray`` command line: a thin shell over imageio, codec and the batch rules.

Nothing heavy is imported at module level (torch, numpy, Pillow come in inside the
commands), so ``invgray --version`` and ``invgray --help`` answer at once.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from dataclasses import dataclass
from typing import Any, NoReturn

import click

from invgray_cli import __version__

from invgray_cli.io import paths as batch
from invgray_cli.io.paths import FileResult, InputItem, Job
from invgray_cli.errors import InvgrayError
from invgray_cli.cli.options import device_option, gray_floor_option, precision_option, tile_option, with_floor
from invgray_cli.cli.runner import (
    PROG,
    OnTile,
    RunOptions,
    debug_enabled,
    finish,
    internal_error_line,
    read_source,
    run_jobs,
    say,
    write_output,
)

# Commands owned by other modules, imported only when asked for (and listed only if present).
LAZY_COMMANDS = {
    "eval": ("invgray_cli.eval.evaluate", "eval_command"),
    "bench": ("invgray_cli.bench", "bench_command"),
    "train": ("invgray_cli.train.cli", "train_command"),
    "train-colorizer": ("invgray_cli.train.cli", "train_colorizer_command"),
    "train-detector": ("invgray_cli.train.cli", "train_detector_command"),
    "train-frames": ("invgray_cli.train.cli", "train_frames_command"),
    "train-jpeg-decoder": ("invgray_cli.train.cli", "train_jpeg_decoder_command"),
}

# measured with `invgray eval ../shared/data/val --jpeg-safe --jpeg 90` on the default model (invisible_v2)
NO_JPEG_MODEL_WARNING = ("this invgray ships no model trained for JPEG grays end to end: a JPEG gray keeps the coarse "
                         "colour of its block code (33.2 dB at quality 90 on our photos, against 39.8 dB from a PNG "
                         "gray); write .png to keep it all")
CHUNK_LABELS = {"model": "model", "sha256": "weights sha256", "format": "invgray format", "version": "written by invgray"}
GRAY_MODES = frozenset({"L", "LA", "La", "1", "I", "I;16", "I;16B", "I;16L"})


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
            if debug_enabled(argv):
                raise
            _fail(internal_error_line(e), 1)
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
         refuse: batch.Refuse | None = None) -> list[Job]:
    """The jobs of this run (see batch.plan_jobs); notes go to stderr, a single named output is checked."""
    refusal = None
    if opts.as_json:
        refusal = "--json prints on stdout, so the image cannot go there; use -o FILE"
    elif sys.stdout.isatty():
        refusal = "refusing to write an image to the terminal; pipe it or use -o FILE"
    try:
        jobs, notes, many = batch.plan_jobs(inputs, opts.output, suffix, force=opts.force,
                                            skip_existing=opts.skip_existing, stdout_refusal=refusal,
                                            refuse=refuse)
    except batch.UsageProblem as e:
        raise click.UsageError(str(e)) from None
    if not many and jobs[0].output is not None and jobs[0].item.problem is None:
        check_output(jobs[0].output)
    if not opts.quiet:
        for note in notes:
            say("note", note)
    return jobs


def _colour_in_folder(path: Path) -> str | None:
    """Decode passes over colour photos found in folders (encode's inputs beside its grays)."""
    from invgray_cli.io.images import read_header

    try:
        mode = read_header(path).mode
    except InvgrayError:
        return None  # unreadable: decoding it will report why
    return None if mode in GRAY_MODES else "a colour image, not an invgray gray"


def _check_gray_output(path: Path) -> None:
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg"):
        raise click.BadParameter(f"{path}: a gray is written as .png (lossless) or .jpg (with the model trained "
                                 "for JPEG); other formats destroy the hidden colour", param_hint="-o/--output")


def _check_color_output(path: Path) -> None:
    from invgray_cli.io.images import format_for_path

    try:
        format_for_path(path)
    except InvgrayError as e:
        raise click.BadParameter(str(e), param_hint="-o/--output") from None


@cli.command("encode")
@_codec_options
@click.option("--model", "model_name", default=None, metavar="NAME",
              help="Shipped model to use (see `invgray models`; default: the first).")
@gray_floor_option
@click.option("--quality", type=click.IntRange(1, 100), default=None, metavar="Q",
              help="JPEG quality of a .jpg gray (default: the model's, 90).")
@click.option("--jpeg-safe", is_flag=True,
              help="Add the block code to PNG grays too: a JPEG of the gray then keeps a coarse copy of the "
                   "colour (costs some PNG quality, see README). JPEG grays always carry it.")
def encode_command(inputs: tuple[str, ...], output: str | None, force: bool, skip_existing: bool, device: str,
                   tile: int | None, precision: str, weights: Path | None, max_pixels: int | None, quiet: bool, as_json: bool,
                   model_name: str | None, gray_floor: float | None, quality: int | None, jpeg_safe: bool) -> None:
    """Encode colour photos into gray PNGs that hide their colour.

    INPUT may be files, folders (recursive), quoted globs or '-' for stdin. With -o NAME.jpg the
    gray is a JPEG carrying the JPEG-safe block code, written by the model trained for JPEG grays
    where one ships (unless --model/--weights say otherwise).
    """
    started = time.perf_counter()
    opts = _run_options(output, force, skip_existing, max_pixels, quiet, as_json)
    if model_name and weights:
        raise click.UsageError("--model and --weights both name the model; give one")
    jobs = plan(inputs, opts, batch.GRAY_SUFFIX, _check_gray_output)

    from invgray_cli.io import images as imageio
    from invgray_cli.codec.codec import DEFAULT_JPEG_QUALITY, Codec, encode_file, model_for_jpeg
    from invgray_cli.models.zoo import jpeg_model_name

    as_jpeg = len(jobs) == 1 and jobs[0].output is not None and imageio.is_jpeg_name(jobs[0].output)
    if quality is not None and not as_jpeg:
        raise click.UsageError("--quality is for a JPEG gray: give one input and -o NAME.jpg")
    if as_jpeg and not (model_name or weights):
        model_name = model_for_jpeg()
        if jpeg_model_name() is None and not quiet:
            say("warning", NO_JPEG_MODEL_WARNING)

    # the one Codec of this run, loaded when the first file needs it (not at all if every file is skipped)
    codec = LoadOnce(lambda: with_floor(Codec.load(model=model_name, weights=weights, device=device, tile=tile,
                                                     precision=precision), gray_floor))

    def process(job: Job, on_tile: OnTile | None) -> FileResult:
        t0 = time.perf_counter()
        model = codec()
        jpeg_quality = (quality or model.info.jpeg_quality or DEFAULT_JPEG_QUALITY) if as_jpeg else None
        done = write_output(job.output, lambda dest: encode_file(read_source(job.item), dest, model,
                                                                 max_pixels=opts.max_pixels, on_tile=on_tile,
                                                                 jpeg_quality=jpeg_quality,
                                                                 block_code=jpeg_safe or None))
        return _ok(job, done, t0)

    results = run_jobs("encode", jobs, process, opts)
    finish("encode", "encoded", results, opts, started, codec.loaded())


@cli.command("decode")
@_codec_options
@click.option("--no-fallback", is_flag=True,
              help="Refuse a gray that carries no colour code instead of colourising it.")
@click.option("--find-frame", is_flag=True,
              help="Look for a crop, mirror or turn of a gray without a chunk and decode on its grid "
                   "(experimental and slow: right for about half of detailed photos, wrong on smooth "
                   "or flat ones; see README).")
def decode_command(inputs: tuple[str, ...], output: str | None, force: bool, skip_existing: bool, device: str,
                   tile: int | None, precision: str, weights: Path | None, max_pixels: int | None, quiet: bool,
                   as_json: bool, no_fallback: bool, find_frame: bool) -> None:
    """Restore colour photos from invgray gray PNGs.

    The model is the one named in each gray's chunk (or --weights). A gray with no chunk and no
    code (a plain gray, or a coded one re-compressed or resized) is colourised instead, with a note.
    --find-frame decodes a gray with no chunk that was cropped, mirrored or turned on its code's
    grid, found in the gray. Output is PNG unless -o names another extension (e.g. -o photo.jpg).
    Colour images met in folders are skipped.
    """
    started = time.perf_counter()
    opts = _run_options(output, force, skip_existing, max_pixels, quiet, as_json)
    jobs = plan(inputs, opts, batch.COLOR_SUFFIX, _check_color_output, refuse=_colour_in_folder)

    from invgray_cli.codec.codec import Codec, chunk_mismatch_warning, choose_model, decode_file

    loaders: dict[Any, LoadOnce] = {}  # one Codec per model the grays' chunks ask for

    def codec_for(gray: Any, label: str) -> tuple[Any, str | None]:
        try:
            spec, warning = choose_model(gray.text, weights=weights, jpeg=gray.jpeg)
        except InvgrayError as e:  # the gray's own chunk is at fault: say which gray
            raise InvgrayError(f"{label}: {e}") from None
        if spec not in loaders:
            loaders[spec] = LoadOnce(lambda: Codec.load(spec.name, spec.weights, device=device, tile=tile,
                                                        precision=precision))
        model = loaders[spec]()
        return model, warning or chunk_mismatch_warning(gray.text, model.info)

    def process(job: Job, on_tile: OnTile | None) -> FileResult:
        t0 = time.perf_counter()
        done = write_output(job.output, lambda dest: decode_file(
            read_source(job.item), dest, max_pixels=opts.max_pixels, on_tile=on_tile,
            choose=lambda gray: codec_for(gray, job.item.label), fallback=not no_fallback, search_frame=find_frame))
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

    def process(job: Job, on_tile: OnTile | None) -> FileResult:
        t0 = time.perf_counter()
        image = imageio.read_color(read_source(job.item), max_pixels=opts.max_pixels)
        gray = np.round(luma_bt601(image.rgb)).astype(np.uint8)
        check_hints(hints, gray.shape[1], gray.shape[0], job.item.label)
        model = colorizer()
        rgb = model.colorize_array(gray, hints)
        fmt = "PNG" if job.output is None else imageio.format_for_path(job.output)
        size, _ = write_output(job.output, lambda dest: imageio.write_color(rgb, image.alpha, dest, format=fmt))
        done = (size, ColourisedFile(rgb.shape[1], rgb.shape[0], model.name, imageio.alpha_loss_warning(image.alpha, fmt)))
        return _ok(job, done, t0)

    results = run_jobs("colorize", jobs, process, opts)
    finish("colorize", "colourised", results, opts, started, colorizer.loaded())


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


def _ok(job: Job, done: tuple[int, Any], t0: float) -> FileResult:
    """The summary line of a written file, from ``write_output``'s (bytes, codec FileResult)."""
    size, result = done
    output = None if job.output is None else str(job.output)
    return FileResult(job.item.label, output, "ok", bytes=size, width=result.width, height=result.height,
                      seconds=round(time.perf_counter() - t0, 4), model=result.model, warning=result.warning)


# ---------------------------------------------------------------- info / models


@cli.command("info")
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON on stdout.")
def info_command(file: str, as_json: bool) -> None:
    """What the invgray chunk of a gray says (model, weights, format), or that it has none, and how
    sure the model's detector is that the gray carries its colour code."""
    from dataclasses import asdict

    from invgray_cli.codec.block_code import CODE_FOUND, read_block_code
    from invgray_cli.codec.codec import code_reading, locate_pattern
    from invgray_cli.io.chunk import parse_chunk
    from invgray_cli.io.images import read_gray, read_header
    from invgray_cli.models.detector import CODE_THRESHOLD
    from invgray_cli.codec.sync_pattern import FOUND

    source = read_source(InputItem(None if file == batch.STDIO else Path(file), Path(file)))
    header = read_header(source)
    chunk = parse_chunk(header.text)
    reading, pattern, blocks = None, None, None
    if header.mode in GRAY_MODES:
        try:
            gray = read_gray(source)
            pattern = locate_pattern(gray)
            reading = code_reading(gray, pattern)
            blocks = read_block_code(gray.gray)
        except InvgrayError:  # pixels it will not read (e.g. over --max-pixels): the header facts only
            pass
    facts: dict[str, Any] = {"file": file, "width": header.width, "height": header.height, "mode": header.mode,
                             "format": header.format, "invgray": None if chunk is None else asdict(chunk),
                             "code": None if reading is None else {"model": reading[0],
                                                                    "confidence": round(reading[1].confidence, 4)},
                             "sync_pattern": None if pattern is None else {
                                 "found": pattern.found, "confidence": round(pattern.confidence, 2),
                                 "moved": pattern.found and not pattern.frame.is_identity,
                                 "what": pattern.frame.describe() if pattern.found else None,
                                 "lines_cut": {side: lines if read else None for side, lines, read in
                                               zip(("top", "left", "bottom", "right"), pattern.cuts, pattern.read)}
                                 if pattern.found else None},
                             "block_code": None if blocks is None else {"found": blocks.found,
                                                                        "confidence": round(blocks.confidence, 3),
                                                                        "version": blocks.version if blocks.found else None}}
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    click.echo(f"{file}: {header.width}x{header.height} {header.format} {header.mode}")
    if reading is not None:
        model, confidence = reading[0], reading[1].confidence
        if confidence >= CODE_THRESHOLD:
            click.echo(f"  colour code: {model}'s (confidence {confidence:.2f})")
        else:
            click.echo(f"  colour code: none that {model} can read (confidence {confidence:.2f}): "
                       "re-compressed, resized, or not made by invgray")
    if pattern is not None:
        where = f"{pattern.frame.describe()}" if pattern.found else "none (made before invgray 0.2, or not by invgray)"
        click.echo(f"  sync pattern: {where} (confidence {pattern.confidence:.1f}, found at {FOUND:g})")
    if blocks is not None:
        where = (f"found (version {blocks.version}): a JPEG of it keeps a coarse colour" if blocks.found else
                 "none read (not written with --jpeg-safe or as a JPEG, under 16 blocks of 16 px, or re-compressed)")
        click.echo(f"  block code: {where} (confidence {blocks.confidence:.2f}, found at {CODE_FOUND:g})")
    if chunk is not None:
        for key, label in CHUNK_LABELS.items():
            click.echo(f"  {label}: {facts['invgray'].get(key)}")
    elif header.mode in GRAY_MODES:
        click.echo("no invgray chunk: not written by `invgray encode`, or re-saved by another tool "
                   "(decode decodes it if it still carries a code, else colourises it)")
    else:
        click.echo("no invgray chunk: a colour image, not an invgray gray (encode it to make one)")


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON on stdout.")
def models_command(as_json: bool) -> None:
    """List the shipped weights (the first is the default)."""
    from dataclasses import asdict

    from invgray_cli.colorize.session import COLORIZERS
    from invgray_cli.models.zoo import list_models, weights_dir

    entries = list_models()
    if as_json:
        rows = [{**asdict(e), "default": i == 0} for i, e in enumerate(entries)]
        colourisers = [{**asdict(e), "default": i == 0} for i, e in enumerate(COLORIZERS)]
        click.echo(json.dumps({"weights_dir": str(weights_dir()), "models": rows, "colorizers": colourisers}, indent=2))
        return
    if not entries:
        click.echo(f"no shipped weights (looked in {weights_dir()}); pass --weights PATH to encode/decode")
        return
    import shutil
    import textwrap

    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    click.echo(f"shipped weights in {weights_dir()}:")
    for i, e in enumerate(entries):
        click.echo(f"\n{e.name}{'  (default)' if i == 0 else ''}")
        click.echo(textwrap.fill(e.description, width, initial_indent="  ", subsequent_indent="  "))
        facts = (f"file {e.file}", f"sha256 {e.sha256[:12]}", f"divisibility {e.divisibility}",
                 f"receptive field {e.receptive_field} px")
        click.echo(textwrap.fill("  ".join(facts), width, initial_indent="  ", subsequent_indent="  "))
    for i, c in enumerate(COLORIZERS):  # `invgray colorize`: grays without a code
        click.echo(f"\n{c.name}  (colouriser{', default' if i == 0 else ''})")
        click.echo(textwrap.fill(c.description, width, initial_indent="  ", subsequent_indent="  "))
        click.echo(f"  file {c.file}  sha256 {c.sha256[:12]}")


if __name__ == "__main__":
    main()
