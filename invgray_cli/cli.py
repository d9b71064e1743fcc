"""The ``invgray`` command line: a thin shell over imageio, codec and the batch rules.

Nothing heavy is imported at module level (torch, numpy, Pillow come in inside the
commands), so ``invgray --version`` and ``invgray --help`` answer at once.
"""
from __future__ import annotations

import importlib
import importlib.util
import io
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import click

from . import __version__, batch
from .batch import FileResult, InputItem
from .errors import InvgrayError

PROG = "invgray"
DEBUG_ENV = "INVGRAY_DEBUG"
# Commands owned by other modules, imported only when asked for (and listed only if present).
LAZY_COMMANDS = {
    "eval": ("invgray_cli.evaluate", "eval_command"),
    "bench": ("invgray_cli.bench", "bench_command"),
    "train": ("invgray_cli.train.cli", "train_command"),
}

OnTile = Callable[[int, int], None]
CHUNK_LABELS = {"model": "model", "sha256": "weights sha256", "format": "invgray format", "version": "written by invgray"}
GRAY_MODES = frozenset({"L", "LA", "La", "1", "I", "I;16", "I;16B", "I;16L"})


# ---------------------------------------------------------------- messages


def say(kind: str, message: str) -> None:
    """One line on stderr: ``invgray: error: ...``; newlines in ``message`` are folded."""
    click.echo(f"{PROG}: {kind}: {' '.join(str(message).split())}", err=True)


def _fail(message: str, code: int) -> NoReturn:
    say("error", message)
    sys.exit(code)


def _usage_line(error: click.UsageError) -> str:
    message = error.format_message()
    command = error.ctx.command_path if error.ctx is not None else PROG
    return f"{message.rstrip('.')}; see '{command} --help'"


def debug_enabled(argv: list[str] | None = None) -> bool:
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        return True
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        return bool(ctx.find_root().params.get("debug"))
    return "--debug" in (argv or [])


def internal_error_line(exc: BaseException) -> str:
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return (f"unexpected {type(exc).__name__}{': ' + detail if detail else ''} "
            f"(this is a bug in invgray; rerun with --debug for the traceback and report it)")


# ---------------------------------------------------------------- the group


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


def _module_exists(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@click.group(cls=InvgrayGroup, context_settings={"help_option_names": ["-h", "--help"]})
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


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name=PROG)


# ---------------------------------------------------------------- encode / decode


@dataclass(frozen=True)
class RunOptions:
    output: str | None
    force: bool
    skip_existing: bool
    device: str
    tile: int | None
    weights: Path | None
    max_pixels: int | None
    quiet: bool
    as_json: bool


@dataclass(frozen=True)
class Job:
    """One input with where it goes: ``output`` None is stdout; ``skip``/``error`` are decided up front."""

    item: InputItem
    output: Path | None
    skip: bool = False
    error: str | None = None


def _codec_options(command: Callable) -> Callable:
    """The options encode and decode share."""
    options = [
        click.argument("inputs", nargs=-1, required=True, metavar="INPUT..."),
        click.option("-o", "--output", metavar="PATH",
                     help="Output file for one input, folder for several (tree mirrored), '-' for stdout. "
                          "Default: beside each input (stdin goes to stdout)."),
        click.option("--force", is_flag=True, help="Overwrite existing outputs."),
        click.option("--skip-existing", is_flag=True, help="Leave existing outputs alone (resume a batch)."),
        click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda[:N]"),
        click.option("--tile", type=click.IntRange(min=0), default=None, metavar="N",
                     help="Tile edge in pixels (default: chosen from the device; 0 = whole image at once)."),
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


def _run_options(output: str | None, force: bool, skip_existing: bool, device: str, tile: int | None,
                 weights: Path | None, max_pixels: int | None, quiet: bool, as_json: bool) -> RunOptions:
    if force and skip_existing:
        raise click.UsageError("--force and --skip-existing contradict each other; choose one")
    if max_pixels is None:
        from .imageio import DEFAULT_MAX_PIXELS

        max_pixels = DEFAULT_MAX_PIXELS
    return RunOptions(output, force, skip_existing, device, tile, weights, max_pixels or None, quiet, as_json)


def plan_jobs(inputs: tuple[str, ...], opts: RunOptions, suffix: str,
              check_output: Callable[[Path], None]) -> tuple[list[Job], list[str], bool]:
    """Expand the inputs and decide, before any model is loaded, where each goes and whether it may.

    Returns (jobs in input order, notes, many). ``check_output`` validates a single named output file.
    """
    if batch.STDIO in inputs and len(inputs) > 1:
        raise click.UsageError("'-' (stdin) must be the only input")
    out_folder = Path(opts.output) if opts.output not in (None, batch.STDIO) else None
    expansion = batch.expand_inputs(inputs, own_suffix=suffix, exclude=out_folder)
    many = len(inputs) > 1 or any(item.discovered for item in expansion.items)
    if many and opts.output == batch.STDIO:
        raise click.UsageError("-o - (stdout) takes a single input")
    if many and out_folder is not None and out_folder.exists() and not out_folder.is_dir():
        raise click.UsageError(f"-o {out_folder} is a file; with several inputs -o must be a folder")
    if not expansion.items and not expansion.missing:
        raise InvgrayError(f"no images found in {' '.join(inputs)}")

    jobs = [Job(InputItem(Path(arg), Path(arg)), None, error=why) for arg, why in expansion.missing]
    creates_folder = out_folder is not None and (many or (opts.output or "").endswith(("/", os.sep)))
    taken: dict[Path, str] = {}
    for item in expansion.items:
        output = batch.output_path_for(item, opts.output, suffix, many)
        if output is None:
            if opts.as_json:
                raise click.UsageError("--json prints on stdout, so the image cannot go there; use -o FILE")
            if sys.stdout.isatty():
                raise click.UsageError("refusing to write an image to the terminal; pipe it or use -o FILE")
            jobs.append(Job(item, None))
            continue
        if not many and not output.is_dir() and not creates_folder:
            check_output(output)
        jobs.append(_plan_output(item, output, opts, creates_folder, taken))
    return jobs, expansion.notes, many


def _plan_output(item: InputItem, output: Path, opts: RunOptions, creates_folder: bool,
                 taken: dict[Path, str]) -> Job:
    try:
        other = batch.find_collision(output, taken)
        if other is not None:
            raise InvgrayError(f"{item.label}: its output {output} is also the output of {other}; rename one input")
        action = batch.check_overwrite(item.source, output, opts.force, opts.skip_existing)
        if action == "write":
            batch.check_parent(output, create=creates_folder)
    except InvgrayError as e:
        return Job(item, output, error=str(e))
    taken[output.resolve()] = item.label
    return Job(item, output, skip=action == "skip")


def read_source(item: InputItem) -> Path | io.BytesIO:
    """The input as imageio reads it: a path, or stdin's bytes."""
    if item.source is not None:
        return item.source
    data = click.get_binary_stream("stdin").read()
    if not data:
        raise InvgrayError("<stdin>: input is empty; pipe an image into it")
    stream = io.BytesIO(data)
    stream.name = "<stdin>"
    return stream


def write_output(output: Path | None, write: Callable[[Path | io.BytesIO], None]) -> int:
    """Write via ``write`` to a path (atomically, by imageio) or to stdout; returns the byte count."""
    if output is not None:
        write(output)
        return output.stat().st_size
    buffer = io.BytesIO()
    write(buffer)
    stdout = click.get_binary_stream("stdout")
    stdout.write(buffer.getvalue())
    stdout.flush()
    return buffer.tell()


@contextmanager
def progress_bars(enabled: bool) -> Iterator[Any]:
    """A rich Progress on stderr, or None when hidden (-q, or stderr is not a terminal)."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), console=Console(stderr=True))
    with progress:
        yield progress


def _tile_callback(progress: Any, label: str) -> tuple[OnTile | None, Callable[[], None]]:
    """(on_tile for the codec, cleanup). A tile bar appears only when an image needs several tiles."""
    if progress is None:
        return None, lambda: None
    task: list[int] = []

    def on_tile(done: int, total: int) -> None:
        if total <= 1:
            return
        if not task:
            task.append(progress.add_task(f"  tiles of {label}", total=total))
        progress.update(task[0], completed=done, total=total)

    def cleanup() -> None:
        if task:
            progress.remove_task(task[0])

    return on_tile, cleanup


Process = Callable[[Job, OnTile | None], FileResult]


def run_jobs(command: str, jobs: list[Job], process: Process, opts: RunOptions) -> list[FileResult]:
    """Process every job, reporting per file; a failure is recorded and the rest still run."""
    results: list[FileResult] = []
    reported: set[str] = set()
    show = not opts.quiet and sys.stderr.isatty()
    with progress_bars(show) as progress:
        files_task = progress.add_task(command, total=len(jobs)) if progress is not None else None
        for job in jobs:
            output = None if job.output is None else str(job.output)
            if job.error is not None:
                result = FileResult(job.item.label, output, "failed", error=job.error)
            elif job.skip:
                result = FileResult(job.item.label, output, "skipped", error="output exists (--skip-existing)")
            else:
                on_tile, cleanup = _tile_callback(progress, job.item.rel.name)
                try:
                    result = process(job, on_tile)
                except InvgrayError as e:
                    result = FileResult(job.item.label, output, "failed", error=str(e))
                except MemoryError:
                    result = FileResult(job.item.label, output, "failed",
                                        error=f"{job.item.label}: out of memory; try a smaller --tile")
                except Exception as e:
                    if debug_enabled():
                        traceback.print_exc()
                    result = FileResult(job.item.label, output, "failed", error=internal_error_line(e))
                finally:
                    cleanup()
            if result.status == "failed" and result.error not in reported:
                reported.add(result.error or "")
                say("error", result.error or "failed")
            elif result.status == "skipped" and not opts.quiet:
                say("note", f"skipped {job.item.label}: {output} exists")
            results.append(result)
            if progress is not None:
                progress.advance(files_task)
    return results


def finish(command: str, verb: str, results: list[FileResult], opts: RunOptions, started: float,
           **extra: object) -> None:
    """Summary line on stderr, JSON on stdout, and the exit code."""
    if opts.as_json:
        click.echo(json.dumps(batch.summary(command, results, version=__version__, **extra), indent=2))
    counts = batch.summary(command, results)["counts"]
    if not opts.quiet:
        tail = "".join(f", {counts[k]} {k}" for k in ("skipped", "failed") if counts[k])
        plural = "" if counts["ok"] == 1 else "s"
        say("done", f"{verb} {counts['ok']} file{plural}{tail} in {time.perf_counter() - started:.1f} s")
    click.get_current_context().exit(batch.exit_code(results))


def _notes(notes: list[str], quiet: bool) -> None:
    if not quiet:
        for note in notes:
            say("note", note)


def _check_gray_output(path: Path) -> None:
    if path.suffix.lower() != ".png":
        raise click.BadParameter(f"{path}: a gray must be a PNG (lossy formats destroy the hidden colour); "
                                 "use a name ending in .png", param_hint="-o/--output")


def _check_color_output(path: Path) -> None:
    from .imageio import format_for_path

    try:
        format_for_path(path)
    except InvgrayError as e:
        raise click.BadParameter(str(e), param_hint="-o/--output") from None


@cli.command("encode")
@_codec_options
@click.option("--model", "model_name", default=None, metavar="NAME",
              help="Shipped model to use (see `invgray models`; default: the first).")
def encode_command(inputs: tuple[str, ...], output: str | None, force: bool, skip_existing: bool, device: str,
                   tile: int | None, weights: Path | None, max_pixels: int | None, quiet: bool, as_json: bool,
                   model_name: str | None) -> None:
    """Encode colour photos into gray PNGs that hide their colour.

    INPUT may be files, folders (recursive), quoted globs or '-' for stdin.
    """
    started = time.perf_counter()
    opts = _run_options(output, force, skip_existing, device, tile, weights, max_pixels, quiet, as_json)
    if model_name and weights:
        raise click.UsageError("--model and --weights both name the model; give one")
    jobs, notes, _ = plan_jobs(inputs, opts, batch.GRAY_SUFFIX, _check_gray_output)
    _notes(notes, quiet)

    from . import imageio
    from .codec import Codec

    loaded: list[Any] = []  # the one Codec of this run, loaded when the first file needs it

    def codec() -> Any:
        if not loaded:
            loaded.append(_load_once(lambda: Codec.load(model=model_name, weights=weights, device=device, tile=tile)))
        return loaded[0]()

    def process(job: Job, on_tile: OnTile | None) -> FileResult:
        t0 = time.perf_counter()
        image = imageio.read_color(read_source(job.item), max_pixels=opts.max_pixels)
        model = codec()
        gray = model.encode_array(image.rgb, on_tile=on_tile)
        size = write_output(job.output, lambda dest: imageio.write_gray_png(gray, image.alpha, model.chunk_text(), dest))
        return _ok(job, size, gray.shape, t0, model.info.name)

    results = run_jobs("encode", jobs, process, opts)
    finish("encode", "encoded", results, opts, started)


@cli.command("decode")
@_codec_options
def decode_command(inputs: tuple[str, ...], output: str | None, force: bool, skip_existing: bool, device: str,
                   tile: int | None, weights: Path | None, max_pixels: int | None, quiet: bool,
                   as_json: bool) -> None:
    """Restore colour photos from invgray gray PNGs.

    The model is the one named in each gray's chunk (or --weights). Output is PNG unless
    -o names another extension (e.g. -o photo.jpg).
    """
    started = time.perf_counter()
    opts = _run_options(output, force, skip_existing, device, tile, weights, max_pixels, quiet, as_json)
    jobs, notes, _ = plan_jobs(inputs, opts, batch.COLOR_SUFFIX, _check_color_output)
    _notes(notes, quiet)

    from . import imageio
    from .codec import Codec, chunk_mismatch_warning, choose_model

    loaders: dict[Any, Callable[[], Any]] = {}  # one Codec per model the grays' chunks ask for

    def codec_for(text: dict[str, str]) -> tuple[Any, str | None]:
        spec, warning = choose_model(text, weights=weights)
        if spec not in loaders:
            loaders[spec] = _load_once(lambda: Codec.load(spec.name, spec.weights, device=device, tile=tile))
        model = loaders[spec]()
        return model, warning or chunk_mismatch_warning(text, model.info)

    def process(job: Job, on_tile: OnTile | None) -> FileResult:
        t0 = time.perf_counter()
        image = imageio.read_gray(read_source(job.item), max_pixels=opts.max_pixels)
        model, warning = codec_for(image.text)
        if warning:
            say("warning", f"{job.item.label}: {warning}")
        rgb = model.decode_array(image.gray, on_tile=on_tile)
        fmt = "PNG" if job.output is None else None
        size = write_output(job.output, lambda dest: imageio.write_color(rgb, image.alpha, dest, format=fmt))
        return _ok(job, size, rgb.shape, t0, model.info.name)

    results = run_jobs("decode", jobs, process, opts)
    finish("decode", "decoded", results, opts, started)


def _load_once(load: Callable[[], Any]) -> Callable[[], Any]:
    """Call ``load`` on first use and remember its value, or its InvgrayError, for the rest of the run."""
    memo: list[tuple[Any, InvgrayError | None]] = []

    def get() -> Any:
        if not memo:
            try:
                memo.append((load(), None))
            except InvgrayError as e:
                memo.append((None, e))
        value, error = memo[0]
        if error is not None:
            raise InvgrayError(str(error))
        return value

    return get


def _ok(job: Job, size: int, shape: tuple[int, ...], t0: float, model: str) -> FileResult:
    output = None if job.output is None else str(job.output)
    return FileResult(job.item.label, output, "ok", bytes=size, width=int(shape[1]), height=int(shape[0]),
                      seconds=round(time.perf_counter() - t0, 4), model=model)


# ---------------------------------------------------------------- info / models


@cli.command("info")
@click.argument("file", metavar="FILE")
@click.option("--json", "as_json", is_flag=True, help="Print the facts as JSON on stdout.")
def info_command(file: str, as_json: bool) -> None:
    """What the invgray chunk of a gray PNG says (model, weights, format), or that it has none."""
    from .codec import parse_chunk

    size, mode, fmt, text = read_header(read_source(InputItem(None if file == batch.STDIO else Path(file), Path(file))))
    chunk = parse_chunk(text)
    facts: dict[str, Any] = {"file": file, "width": size[0], "height": size[1], "mode": mode, "format": fmt,
                             "invgray": None if chunk is None else _chunk_facts(chunk)}
    if as_json:
        click.echo(json.dumps(facts, indent=2))
        return
    click.echo(f"{file}: {size[0]}x{size[1]} {fmt} {mode}")
    if chunk is not None:
        for key, label in CHUNK_LABELS.items():
            click.echo(f"  {label}: {facts['invgray'].get(key)}")
    elif mode in GRAY_MODES:
        click.echo("no invgray chunk: not written by `invgray encode`, or re-saved by another tool "
                   "(decode would warn and use the default model)")
    else:
        click.echo("no invgray chunk: a colour image, not an invgray gray (encode it to make one)")


def read_header(source: Path | io.BytesIO) -> tuple[tuple[int, int], str, str, dict[str, str]]:
    """(size, mode, format, text chunks) from an image's header, checking its chunks but decoding no pixel.

    Text chunks are those before the pixel data, where invgray writes its own.
    """
    from PIL import Image, UnidentifiedImageError

    name = str(getattr(source, "name", source))
    if isinstance(source, Path):
        if not source.exists():
            raise InvgrayError(f"{source}: no such file")
        if source.is_dir():
            raise InvgrayError(f"{source}: is a directory, expected an image file")
        if source.stat().st_size == 0:
            raise InvgrayError(f"{source}: file is empty")
    saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # no pixel is decoded: no bomb to fear
    try:
        with Image.open(source) as image:
            facts = image.size, image.mode, str(image.format), {
                str(k): v for k, v in image.info.items() if isinstance(v, str)}
            image.verify()
    except UnidentifiedImageError:
        raise InvgrayError(f"{name}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise InvgrayError(f"{name}: truncated or corrupt image ({str(e).splitlines()[0] or type(e).__name__})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = saved
    return facts


def _chunk_facts(chunk: Any) -> dict[str, Any]:
    from dataclasses import asdict, is_dataclass

    facts = asdict(chunk) if is_dataclass(chunk) else dict(vars(chunk))
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in facts.items()}


@cli.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the registry as JSON on stdout.")
def models_command(as_json: bool) -> None:
    """List the shipped weights (the first is the default)."""
    from dataclasses import asdict

    from .models.registry import list_models, weights_dir

    entries = list_models()
    if as_json:
        rows = [{**asdict(e), "default": i == 0} for i, e in enumerate(entries)]
        click.echo(json.dumps({"weights_dir": str(weights_dir()), "models": rows}, indent=2))
        return
    if not entries:
        click.echo(f"no shipped weights (looked in {weights_dir()}); pass --weights PATH to encode/decode")
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"invgray models ({weights_dir()})")
    for column in ("name", "file", "sha256", "divisibility", "receptive field", "description", "default"):
        table.add_column(column, no_wrap=column != "description")
    for i, e in enumerate(entries):
        table.add_row(e.name, e.file, e.sha256[:12], str(e.divisibility), f"{e.receptive_field} px",
                      e.description, "*" if i == 0 else "")
    Console(width=None if sys.stdout.isatty() else 240).print(table)  # piped: no truncated columns


if __name__ == "__main__":
    main()
