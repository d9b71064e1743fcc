"""Stage 1 (io): where a run writes and whether it may. Output naming, the overwrite policy, the
plan of a batch (``plan_jobs``) and the per-file records of ``--json``.

Nothing here touches an image's pixels or a model, so every rule is tested on its own. Which files
a run reads is ``inputs.py``.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal, Sequence

from invgray_cli.errors import InvgrayError, OutputExists
from invgray_cli.io.inputs import (COLOR_SUFFIX, COLORIZED_SUFFIX, GRAY_SUFFIX, STDIO, InputItem, Refuse, expand_inputs,
                                   is_image_name, resolved)

# invgray outputs that a folder or glob does not feed back in: encode takes neither its grays nor
# decode's restorations (re-encoding one would collide with its original's gray); decode skips its own.
FOLDER_SKIPS = {GRAY_SUFFIX: (GRAY_SUFFIX, COLOR_SUFFIX, COLORIZED_SUFFIX), COLOR_SUFFIX: (COLOR_SUFFIX, COLORIZED_SUFFIX),
                COLORIZED_SUFFIX: (COLOR_SUFFIX, COLORIZED_SUFFIX)}
_NAME_TAGS = (".gray", ".color")  # stripped from a stem before the new suffix, so a.gray.png -> a.color.png
Status = Literal["ok", "skipped", "failed"]
OUTPUT_EXISTS = "its output exists"  # why --skip-existing skipped a file
Action = Literal["write", "skip"]


class UsageProblem(InvgrayError):
    """The options contradict each other or the inputs (the CLI exits 2, as for click's usage errors)."""


@dataclass(frozen=True)
class Job:
    """One input and where it goes (None = stdout); ``skip`` (and its ``note``, why) and ``error`` are
    decided before any model loads."""

    item: InputItem
    output: Path | None
    skip: bool = False
    error: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class FileRecord:
    """One line of the ``--json`` summary."""

    input: str
    output: str | None
    status: Status
    error: str | None = None
    bytes: int | None = None
    width: int | None = None
    height: int | None = None
    seconds: float | None = None
    model: str | None = None
    warning: str | None = None  # e.g. decoded with the default model because the gray had no chunk
    note: str | None = None  # why a file was skipped
    decode_path: str | None = None  # the path decode took (see codec/decode.py DECISIONS)


def _same_folder(a: Path, b: Path) -> bool:
    return a.is_dir() and b.is_dir() and resolved(a) == resolved(b)


def default_output_name(input_name: str, suffix: str) -> str:
    """``photo.jpg`` -> ``photo.gray.png``; ``photo.gray.png`` -> ``photo.color.png``."""
    stem = Path(input_name).stem if Path(input_name).suffix else input_name
    for tag in _NAME_TAGS:
        if stem.lower().endswith(tag) and len(stem) > len(tag):
            stem = stem[: -len(tag)]
            break
    return stem + suffix


def output_path_for(item: InputItem, output_arg: str | None, suffix: str, many: bool) -> Path | None:
    """Where ``item`` is written; None means stdout.

    No ``-o``: beside the input (stdin goes to stdout). ``-o -``: stdout. Many inputs:
    ``-o`` is a folder and the input's subfolder path is mirrored below it. One input:
    ``-o`` is the file, unless it is an existing folder or ends with a slash.
    """
    name = default_output_name(item.rel.name, suffix)
    if output_arg == STDIO:
        return None
    if output_arg is None:
        return None if item.source is None else item.source.parent / name
    out = Path(output_arg)
    if many:
        return out / item.rel.parent / name
    if out.is_dir() or output_arg.endswith(("/", os.sep)):
        return out / name
    return out


def same_file(a: Path, b: Path) -> bool:
    """True when ``a`` and ``b`` name one file (links and hard links included)."""
    if resolved(a) == resolved(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_overwrite(source: Path | None, output: Path, force: bool, skip_existing: bool) -> Action:
    """Decide whether ``output`` may be written: never over its input, never silently over a file."""
    if source is not None and same_file(source, output):
        raise InvgrayError(f"output {output} would replace its input; choose another output with -o")
    if output.is_dir():
        raise InvgrayError(f"output {output} is a folder; give a file name or use -o DIR with several inputs")
    if output.exists() or output.is_symlink():
        if skip_existing:
            return "skip"
        if not force:
            raise OutputExists(output)
    return "write"


def check_parent(output: Path, create: bool) -> None:
    """The folder of ``output`` must exist; with ``create`` (the -o DIR tree) it is made."""
    parent = output.parent
    if parent.is_dir():
        return
    if parent.exists():
        raise InvgrayError(f"cannot write {output}: {parent} is not a folder")
    if not create:
        raise InvgrayError(f"folder {parent} does not exist; create it first or choose another -o")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InvgrayError(f"cannot create folder {parent}: {e.strerror or e}") from e


def find_collision(output: Path, taken: dict[Path, str]) -> str | None:
    """The input already writing to ``output`` in this run, if any (``taken``: resolved output -> input)."""
    return taken.get(resolved(output))


def plan_jobs(inputs: Sequence[str], output_arg: str | None, suffix: str, *, force: bool = False,
              skip_existing: bool = False, stdout_refusal: str | None = None,
              refuse: Refuse | None = None, refuse_named: Refuse | None = None) -> tuple[list[Job], bool]:
    """Expand ``inputs`` and decide where each file goes and whether it may be written there.

    Returns (jobs, many): the jobs in input order, then a skipped job for each file passed over in
    a folder (so the report names them); ``many`` is true for several inputs or a folder, when
    ``-o`` names a folder. Contradictory options raise :class:`UsageProblem`; a problem with one
    file (exists, would replace its input, same output as another, refused) becomes that job's
    ``error`` so the rest still run. Output folders are created here only for ``-o DIR``.
    ``stdout_refusal``, when stdout cannot take an image (--json, a terminal), is the message;
    ``refuse`` passes over files found in folders (see :func:`expand_inputs`); ``refuse_named``
    says why a file the user named is not for this command (e.g. encode given an invgray gray).
    """
    if force and skip_existing:
        raise UsageProblem("--force and --skip-existing contradict each other; choose one")
    if STDIO in inputs and len(inputs) > 1:
        raise UsageProblem("'-' (stdin) must be the only input")
    out_folder = Path(output_arg) if output_arg not in (None, STDIO) else None
    # -o naming an input folder itself writes beside the inputs (own outputs are skipped by name)
    exclude = None if out_folder is not None and any(_same_folder(out_folder, Path(arg)) for arg in inputs) else out_folder
    expansion = expand_inputs(inputs, skip_suffixes=FOLDER_SKIPS[suffix], exclude=exclude, refuse=refuse)
    many = len(inputs) > 1 or any(item.discovered for item in expansion.items)
    if many and out_folder is not None and not out_folder.exists() and is_image_name(out_folder):
        raise UsageProblem(f"-o {out_folder} looks like a file name, but several inputs need an output folder; "
                           "give a folder (e.g. -o grays/)")
    if many and output_arg == STDIO:
        raise UsageProblem("-o - (stdout) takes a single input")
    if many and out_folder is not None and out_folder.exists() and not out_folder.is_dir():
        raise UsageProblem(f"-o {out_folder} is a file; with several inputs -o must be a folder")
    if not expansion.items:
        found = f"no images found in {' '.join(inputs)}"
        raise InvgrayError(f"{found}: {summarise_skips([(s.reason, s.rel.as_posix()) for s in expansion.skipped])}"
                           if expansion.skipped else found)
    creates_folder = out_folder is not None and (many or str(output_arg).endswith(("/", os.sep)))
    jobs: list[Job] = []
    taken: dict[Path, str] = {}
    for item in expansion.items:
        output = None if item.problem else output_path_for(item, output_arg, suffix, many)
        refusal = None
        if refuse_named is not None and item.source is not None and not item.discovered and item.problem is None:
            refusal = refuse_named(item.source)
        if item.problem:
            jobs.append(Job(item, None, error=item.problem))
        elif refusal:
            jobs.append(Job(item, output, error=f"{item.label}: {refusal}"))
        elif output is None:
            if stdout_refusal:
                raise UsageProblem(stdout_refusal)
            jobs.append(Job(item, None))
        else:
            jobs.append(_plan_output(item, output, force, skip_existing, creates_folder, taken))
    passed_over = [Job(InputItem(s.path, s.rel, discovered=True), None, skip=True, note=s.reason)
                   for s in expansion.skipped]
    return jobs + passed_over, many


def _plan_output(item: InputItem, output: Path, force: bool, skip_existing: bool, creates_folder: bool,
                 taken: dict[Path, str]) -> Job:
    try:
        other = find_collision(output, taken)
        if other is not None:
            raise InvgrayError(f"{item.label}: its output {output} is also the output of {other}; rename one input")
        action = check_overwrite(item.source, output, force, skip_existing)
        if action == "write":
            check_parent(output, create=creates_folder)
    except InvgrayError as e:
        return Job(item, output, error=str(e))
    taken[resolved(output)] = item.label
    return Job(item, output, skip=action == "skip", note=OUTPUT_EXISTS if action == "skip" else None)


def summarise_skips(skips: Sequence[tuple[str, str]], shown: int = 3, listed_in: str | None = None) -> str:
    """One line for many skipped files, from (reason, name) pairs: the count, then per reason (in
    the order met) the first ``shown`` names and how many more; ``listed_in`` names where the
    rest are listed, said when some are left out."""
    names: dict[str, list[str]] = {}
    for reason, name in skips:
        names.setdefault(reason, []).append(name)
    groups = []
    for reason, group in names.items():
        more = f" and {len(group) - shown} more" if len(group) > shown else ""
        groups.append(f"{reason} — {', '.join(group[:shown])}{more}")
    left_out = listed_in is not None and any(len(group) > shown for group in names.values())
    return (f"skipped {len(skips)} file{'' if len(skips) == 1 else 's'}: {'; '.join(groups)}"
            + (f"; {listed_in} lists them all" if left_out else ""))


def summary(results: Sequence[FileRecord]) -> dict:
    """The ``results`` of the ``--json`` report: counts and one record per file."""
    counts = {status: sum(r.status == status for r in results) for status in ("ok", "skipped", "failed")}
    return {"ok": counts["failed"] == 0, "counts": counts, "files": [asdict(r) for r in results]}


def exit_code(results: Sequence[FileRecord]) -> int:
    """0 when nothing failed, 1 when any file failed."""
    return 1 if any(r.status == "failed" for r in results) else 0
