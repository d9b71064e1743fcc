"""Stage cli: running a batch of jobs (encode, decode, colorize): the plan of files, progress on
stderr, one line per failure, the summary. Several files run as a pipeline (io/overlap.py): read
and written on worker threads while the nets run here, reported in input order.

The command modules decide what to run; this module runs it the same way for each, so every file
is attempted, failures are recorded, and the exit code says whether any failed.
"""
from __future__ import annotations

import io
import json
import os
import sys
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, closing, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from invgray_cli.io import paths as batch
from invgray_cli.io.paths import FileRecord, InputItem, Job
from invgray_cli.errors import InvgrayError, is_out_of_memory
from invgray_cli.untrusted import printable

if TYPE_CHECKING:
    from invgray_cli.io.images import ImageHeader

PROG = "invgray"
DEBUG_ENV = "INVGRAY_DEBUG"

OUT_OF_MEMORY = ("out of memory: the image needs more than this machine has free; try a smaller --tile "
                 "(e.g. --tile 256), --device cpu if a GPU ran out, or a lower --max-pixels to refuse images this large")

OnTile = Callable[[int, int], None]
T = TypeVar("T")
Timed = tuple[float, T]  # (when the job's reading began, what a stage made of it): its record's seconds


def message_line(kind: str, message: str) -> str:
    """``invgray: error: ...`` on one line, control characters escaped (messages quote file names
    and text from files); a ``debug`` traceback stays as it is."""
    return message.rstrip("\n") if kind == "debug" else f"{PROG}: {kind}: {printable(str(message).strip())}"


def say(kind: str, message: str) -> None:
    """One message line on stderr."""
    click.echo(message_line(kind, message), err=True)


def debug_enabled(argv: list[str] | None = None) -> bool:
    """``invgray --debug`` (or INVGRAY_DEBUG=1): show tracebacks of unexpected errors."""
    if os.environ.get(DEBUG_ENV, "") not in ("", "0"):
        return True
    ctx = click.get_current_context(silent=True)
    if ctx is not None:
        return bool(ctx.find_root().params.get("debug"))
    return "--debug" in (argv or [])


def failure_line(exc: Exception, label: str | None = None) -> str:
    """What the user is told about ``exc``: its cause where the machine or the file system is at
    fault (prefixed with ``label``, the file), "a bug in invgray" only for the rest."""
    if isinstance(exc, InvgrayError):
        return str(exc)
    if is_out_of_memory(exc):
        return f"{label}: {OUT_OF_MEMORY}" if label else OUT_OF_MEMORY
    if isinstance(exc, OSError):  # e.g. writing to a closed pipe: the system's word for it
        where = label or exc.filename
        return f"{where}: {exc.strerror or exc}" if where else str(exc.strerror or exc)
    return internal_error_line(exc)


def internal_error_line(exc: BaseException) -> str:
    detail = str(exc).splitlines()[0] if str(exc) else ""
    return (f"unexpected {type(exc).__name__}{': ' + detail if detail else ''} "
            f"(a bug in invgray: rerun as `invgray --debug ...` for the traceback and report it)")


@dataclass(frozen=True)
class RunOptions:
    """What encode, decode and colorize are told about their files, besides the model choice."""

    output: str | None
    force: bool
    skip_existing: bool
    max_pixels: int | None  # None = no limit
    quiet: bool
    as_json: bool


def run_options(output: str | None, force: bool, skip_existing: bool, max_pixels: int | None, quiet: bool,
                as_json: bool) -> RunOptions:
    """The options as given (``--max-pixels``: None is the default limit, 0 none)."""
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


def header_of(path: Path) -> ImageHeader | None:
    """The image header of ``path``, None when it cannot be read (processing it will say why)."""
    from invgray_cli.io.images import read_header

    try:
        return read_header(path)
    except InvgrayError:
        return None


def check_color_output(path: Path) -> None:
    """A usage error unless ``path``'s extension names a colour image format invgray writes."""
    from invgray_cli.io.writing import format_for_path

    try:
        format_for_path(path)
    except InvgrayError as e:
        raise click.BadParameter(str(e), param_hint="-o/--output") from None


class LoadOnce:
    """Call ``load`` on first use and remember its value, or its InvgrayError, for the rest of the run
    (a run whose files are all skipped loads no model)."""

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


def file_record(job: Job, done: tuple[int, Any], started: float) -> FileRecord:
    """The record of a written file, from ``write_output``'s (bytes, what the codec says of the image)."""
    size, result = done
    output = None if job.output is None else str(job.output)
    path = getattr(result, "decode_path", None)
    return FileRecord(job.item.label, output, "ok", bytes=size, width=result.width, height=result.height,
                      seconds=round(time.perf_counter() - started, 4), model=result.model, warning=result.warning,
                      decode_path=path and path.value)


def read_source(item: InputItem) -> Path | io.BytesIO:
    """The input as imageio reads it: a path, or stdin's bytes."""
    if item.source is not None:
        return item.source
    data = sys.stdin.buffer.read()
    if not data:
        raise InvgrayError("<stdin>: input is empty; pipe an image into it")
    stream = io.BytesIO(data)
    stream.name = "<stdin>"
    return stream


def write_output(output: Path | None, write: Callable[[Path | io.BytesIO], T], *, force: bool) -> tuple[int, T]:
    """Write via ``write`` to a path (atomically, by imageio) or to stdout; returns the byte count
    and what ``write`` returned. Without ``force`` the path is claimed only if no file has its name,
    in one step, so a run racing this one for the name is never overwritten (OutputExists)."""
    if output is not None:
        from invgray_cli.io.filesystem import keeping_existing_files

        with nullcontext() if force else keeping_existing_files():
            value = write(output)
        return output.stat().st_size, value
    buffer = io.BytesIO()
    value = write(buffer)
    stdout = sys.stdout.buffer
    stdout.write(buffer.getvalue())
    stdout.flush()
    return buffer.tell(), value


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


def bar_label(text: str) -> str:
    """A file name as a progress bar shows it: control characters and rich markup (``[bold]``) escaped."""
    from rich.markup import escape

    return escape(printable(text))


def _tile_callback(progress: Any, label: str) -> tuple[OnTile | None, Callable[[], None]]:
    """(on_tile for the codec, cleanup). A tile bar appears only when an image needs several tiles."""
    if progress is None:
        return None, lambda: None
    task: list[int] = []

    def on_tile(done: int, total: int) -> None:
        if total <= 1:
            return
        if not task:
            task.append(progress.add_task(f"  tiles of {bar_label(label)}", total=total))
        progress.update(task[0], completed=done, total=total)

    def cleanup() -> None:
        if task:
            progress.remove_task(task[0])

    return on_tile, cleanup


def folder_workers(device: str) -> int:
    """Threads each for reading and writing while the nets run on ``device`` (io/overlap.py says
    why so many); a device that cannot be used fails each file when its codec loads, as before."""
    from invgray_cli.devices import resolve_device
    from invgray_cli.io.overlap import default_workers

    try:
        kind = resolve_device(device).type
    except InvgrayError:
        kind = "cpu"
    return default_workers(kind)


Process = Callable[[Job, OnTile | None], FileRecord]
Emit = Callable[[str, str], None]


@dataclass(frozen=True)
class JobStages:
    """A command's work on each job, in the three stages of a folder run (io/overlap.py): ``read``
    (the input read and decoded) and ``write`` (the output written, giving the job's record) run on
    worker threads; ``run`` (the nets) gets a batch of (job, what was read) on the main thread."""

    read: Callable[[Job], Any]
    run: Callable[[list[tuple[Job, Any]], OnTile | None], list[Any]]
    write: Callable[[Job, Any], FileRecord]

    @classmethod
    def in_one_step(cls, process: Process) -> JobStages:
        """A command whose whole work on a job is one call, on the main thread."""
        return cls(read=lambda job: None, run=lambda group, on_tile: [process(job, on_tile) for job, _ in group],
                   write=lambda job, record: record)


def failed_record(job: Job, exc: Exception, emit: Emit) -> FileRecord:
    """A failed job's record: what the user is told of ``exc`` (its traceback too with --debug, when a bug)."""
    error = failure_line(exc, job.item.label)
    if debug_enabled() and error == internal_error_line(exc):
        emit("debug", "".join(traceback.format_exception(exc)))
    return FileRecord(job.item.label, None if job.output is None else str(job.output), "failed", error=error)


Running = Callable[[Job], AbstractContextManager[OnTile | None]]


def job_records(jobs: list[Job], stages: JobStages, workers: int, running: Running,
                emit: Emit) -> Iterator[FileRecord]:
    """Each job's record, in input order: a job decided at planning (an error, a skip) at once; the
    rest as the folder pipeline writes them (``workers`` threads each for reading and writing; 0:
    one job at a time on this thread). The nets run each batch within ``running(its first job)``,
    which gives the on_tile for its progress."""
    from invgray_cli.io.overlap import Stages, overlapped

    def run(group: list[tuple[Job, Any]]) -> list[Any]:
        with running(group[0][0]) as on_tile:
            return stages.run(group, on_tile)

    worked = [job for job in jobs if job.error is None and not job.skip]
    with closing(overlapped(worked, Stages(stages.read, run, stages.write), workers if len(worked) > 1 else 0)) as done:
        for job in jobs:
            output = None if job.output is None else str(job.output)
            if job.error is not None:
                yield FileRecord(job.item.label, output, "failed", error=job.error)
            elif job.skip:
                yield FileRecord(job.item.label, output, "skipped", note=job.note)
            else:
                finished = next(done)
                yield finished.result if finished.error is None else failed_record(job, finished.error, emit)


def run_jobs(command: str, jobs: list[Job], work: Process | JobStages, opts: RunOptions,
             workers: int = 0) -> list[FileRecord]:
    """Process every job, reporting per file on stderr in input order; a failure is recorded and
    the rest still run. ``work``: the command's stages, or one call per job; ``workers``: threads
    each for reading and writing while the nets run (0: one job at a time).

    An error message is said once per run (a broken weights file fails every job alike); skipped
    files are summed up in one line at the end (``--json`` lists each).
    """
    stages = work if isinstance(work, JobStages) else JobStages.in_one_step(work)
    results: list[FileRecord] = []
    reported: set[str] = set()
    with progress_bars(not opts.quiet and sys.stderr.isatty()) as progress:
        emit = say if progress is None else _console_say(progress.console)
        files_task = progress.add_task(command, total=len(jobs)) if progress is not None else None

        @contextmanager
        def running(job: Job) -> Iterator[OnTile | None]:
            if progress is not None:
                progress.update(files_task, description=f"{command} {bar_label(job.item.rel.name)}")
            on_tile, cleanup = _tile_callback(progress, job.item.rel.name)
            try:
                yield on_tile
            finally:
                cleanup()

        for result in job_records(jobs, stages, workers, running, emit):
            if result.status == "failed" and result.error not in reported:
                reported.add(result.error or "")
                emit("error", result.error or "failed")
            if result.warning:
                emit("warning", f"{result.input}: {result.warning}")
            results.append(result)
            if progress is not None:
                progress.advance(files_task)
        skips = [(r.note or "skipped", Path(r.input).name) for r in results if r.status == "skipped"]
        if skips and not opts.quiet:
            emit("note", batch.summarise_skips(skips, listed_in="--json"))
    return results


def _console_say(console: Any) -> Emit:
    """``say`` through a live rich console, so lines print above the progress bars."""

    def emit(kind: str, message: str) -> None:
        console.print(message_line(kind, message), markup=False, highlight=False, soft_wrap=True)

    return emit


def finish(command: str, verb: str, results: list[FileRecord], opts: RunOptions, started: float,
           codecs: Sequence[Any] = ()) -> None:
    """Summary line on stderr, JSON on stdout (the shared report shape), and the exit code.

    ``codecs`` are the ones the run loaded: the report names their model, weights and device (a
    run that loaded several, e.g. decode of grays from two models, names each file's model only)."""
    summary = batch.summary(results)
    if opts.as_json:
        from invgray_cli.report import envelope, model_facts

        one = codecs[0] if len(codecs) == 1 else None
        model = model_facts(one.info.name, one.info.sha256) if one is not None else model_facts(None, None)
        devices = sorted({str(c.device) for c in codecs})
        report = envelope(f"invgray-{command}", f"per-file results of invgray {command}", model,
                          devices[0] if len(devices) == 1 else None, summary)
        click.echo(json.dumps(report, indent=2))
    counts = summary["counts"]
    if not opts.quiet:
        tail = "".join(f", {counts[k]} {k}" for k in ("skipped", "failed") if counts[k])
        plural = "" if counts["ok"] == 1 else "s"
        say("done", f"{verb} {counts['ok']} file{plural}{tail} in {time.perf_counter() - started:.1f} s")
    click.get_current_context().exit(batch.exit_code(results))
